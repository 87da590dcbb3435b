/* clawdesk agent inbox. Vanilla JS, no build step.
 *
 * Signs in with a tenant API key (kept in sessionStorage, sent as a Bearer token), polls
 * the conversations a human owns, shows the selected one's history, sends replies and
 * hands conversations back to the bot. Text is only ever set with textContent.
 */
(function () {
  "use strict";

  var KEY_STORE = "clawdesk.inbox.key";
  var LIST_EVERY_MS = 3000;
  var DETAIL_EVERY_MS = 2000;
  var AUTHORS = { customer: "Customer", bot: "Bot", agent: "Agent" };

  var els = {};
  ["sign-in", "api-key", "sign-in-error", "sign-in-button", "workspace", "who", "sign-out",
   "conversations", "no-conversations", "placeholder", "detail-header", "detail-title",
   "detail-sub", "ticket", "hand-back", "history", "notice", "composer", "reply-input",
   "reply-send", "reply-image", "reply-image-name"].forEach(function (id) { els[id] = document.getElementById(id); });

  var state = {
    key: null, selected: null, listTimer: null, detailTimer: null, sending: false, pending: null,
    rendered: null, listed: null,
  };

  var store = {
    get: function () { try { return window.sessionStorage.getItem(KEY_STORE); } catch (e) { return null; } },
    set: function (v) { try { window.sessionStorage.setItem(KEY_STORE, v); } catch (e) { /* memory only */ } },
    clear: function () { try { window.sessionStorage.removeItem(KEY_STORE); } catch (e) { /* none */ } },
  };

  function randomId() {
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) {
      return b.toString(16).padStart(2, "0");
    }).join("");
  }

  /* ---- API ---- */

  function api(method, path, body) {
    var headers = { Accept: "application/json", Authorization: "Bearer " + state.key };
    var form = body instanceof FormData; // multipart: the browser sets its boundary
    if (body !== undefined && !form) headers["Content-Type"] = "application/json";
    return fetch(path, {
      method: method, headers: headers,
      body: body === undefined || form ? body : JSON.stringify(body),
    }).then(function (res) {
      return res.json().catch(function () { return {}; }).then(function (data) {
        if (res.status === 401) { signOut(data.error || "Signed out."); throw data; }
        if (!res.ok) throw { status: res.status, error: data.error || res.statusText };
        return data;
      });
    });
  }

  function conversationPath(id) {
    return "/api/inbox/conversations/" + encodeURIComponent(id);
  }

  /* ---- rendering ---- */

  function formatTime(value) {
    return new Date(value).toLocaleString("en", {
      month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
    });
  }

  function badge(ticket) {
    var span = document.createElement("span");
    span.className = "badge " + (ticket ? ticket.status : "none");
    span.textContent = ticket ? ticketLabel(ticket) : "no ticket";
    return span;
  }

  function ticketLabel(ticket) {
    if (ticket.status === "created") return "ticket #" + ticket.ticket_id;
    if (ticket.status === "pending") return "ticket pending";
    if (ticket.status === "not_configured") return "no ticket system";
    return "ticket failed";
  }

  function ticketDetail(ticket) {
    if (!ticket) return "";
    var text = "Handed off (" + ticket.reason + ") " + formatTime(ticket.handed_off_at) + " · ";
    if (ticket.status === "created") return text + "Zendesk ticket #" + ticket.ticket_id;
    if (ticket.status === "not_configured") return text + "no ticket system configured";
    if (ticket.status === "failed") return text + "ticket refused: " + ticket.last_error;
    return text + "ticket not created yet (" + ticket.attempts + " attempts, next " +
      formatTime(ticket.next_attempt_at) + ")" + (ticket.last_error ? ": " + ticket.last_error : "");
  }

  function renderList(conversations) {
    var signature = JSON.stringify(conversations);
    if (signature === state.listed) return; // unchanged: keep the DOM (and any click) as is
    state.listed = signature;
    els.conversations.textContent = "";
    els["no-conversations"].hidden = conversations.length > 0;
    conversations.forEach(function (c) {
      var item = document.createElement("li");
      item.className = "conversation" + (c.id === state.selected ? " selected" : "");
      item.dataset.id = c.id;
      var who = document.createElement("div");
      who.className = "customer";
      who.textContent = c.customer_id;
      who.appendChild(badge(c.ticket));
      var snippet = document.createElement("div");
      snippet.className = "snippet";
      snippet.textContent = c.last_message ? c.last_message.text : "";
      var meta = document.createElement("div");
      meta.className = "meta";
      meta.textContent = c.channel + " · " + formatTime(c.updated_at);
      item.appendChild(who);
      item.appendChild(snippet);
      item.appendChild(meta);
      item.addEventListener("click", function () { select(c.id); });
      els.conversations.appendChild(item);
    });
  }

  function renderDetail(c) {
    els.placeholder.hidden = true;
    els["detail-header"].hidden = false;
    els.history.hidden = false;
    els["detail-title"].textContent = c.customer_id;
    els["detail-sub"].textContent = c.channel + " · " + c.id + " · " +
      (c.status === "human" ? "with a human" : "with the bot");
    els.ticket.textContent = ticketDetail(c.ticket);
    var human = c.status === "human";
    els.composer.hidden = !human;
    els["hand-back"].hidden = !human;
    els.history.dataset.status = c.status;
    // Rebuild the history only when it changed: a rebuild every poll would reset the
    // agent's text selection and flicker.
    // Links to files expire (a few minutes): with files shown, rebuild every two
    // minutes so they stay fresh.
    var withFiles = c.messages.some(function (m) { return (m.attachments || []).length; });
    var epoch = withFiles ? Math.floor(Date.now() / 120000) : 0;
    var signature = c.id + "|" + epoch + "|" + c.messages.map(function (m) {
      return m.id + ":" + (m.delivery || "") + ":" + (m.attachments || []).map(function (a) {
        return a.id;
      }).join("+");
    }).join(",");
    if (signature === state.rendered) return;
    state.rendered = signature;
    var atEnd = els.history.scrollHeight - els.history.scrollTop - els.history.clientHeight < 40;
    els.history.textContent = "";
    c.messages.forEach(function (m) {
      var item = document.createElement("li");
      item.className = "msg " + m.author;
      item.dataset.id = m.id;
      var bubble = document.createElement("div");
      bubble.className = "bubble";
      bubble.textContent = m.text;
      var meta = document.createElement("div");
      meta.className = "meta";
      var delivery = m.author === "customer" ? "" : " · " + (m.delivery || "queued");
      if (m.delivery === "failed" && m.delivery_detail) delivery += ": " + m.delivery_detail;
      meta.textContent = (AUTHORS[m.author] || m.author) + " · " + formatTime(m.timestamp) + delivery;
      item.appendChild(bubble);
      (m.attachments || []).forEach(function (a) { item.appendChild(attachmentView(a)); });
      item.appendChild(meta);
      els.history.appendChild(item);
    });
    if (atEnd) els.history.scrollTop = els.history.scrollHeight;
  }

  // A file the customer sent: a thumbnail for an image, a link for other files (both
  // through the short-lived signed URL the API gives), or why it was refused.
  function attachmentView(a) {
    var box = document.createElement("div");
    box.className = "attachment";
    box.dataset.id = a.id;
    if (!a.url) {
      box.className += " refused";
      box.textContent = "file not kept: " + (a.refused || "unknown").replace(/_/g, " ");
      return box;
    }
    var link = document.createElement("a");
    link.href = a.url;
    link.target = "_blank";
    link.rel = "noopener";
    if ((a.content_type || "").indexOf("image/") === 0) {
      var img = document.createElement("img");
      img.className = "thumb";
      img.src = a.url;
      img.alt = a.kind + " from the customer";
      link.appendChild(img);
    } else {
      var size = a.size_bytes ? " · " + Math.ceil(a.size_bytes / 1024) + " KB" : "";
      link.textContent = "📎 " + (a.filename || a.kind) + " (" + (a.content_type || "file") + size + ")";
    }
    box.appendChild(link);
    return box;
  }

  function notice(text, bad) {
    els.notice.textContent = text || "";
    els.notice.style.color = bad ? "var(--bad)" : "var(--muted)";
  }

  /* ---- polling ---- */

  function refreshList() {
    return api("GET", "/api/inbox/conversations").then(renderList, function () { /* next tick */ });
  }

  function refreshDetail() {
    var id = state.selected;
    if (!id) return Promise.resolve();
    return api("GET", conversationPath(id)).then(function (c) {
      if (id === state.selected) renderDetail(c);
    }, function (err) {
      if (err && err.status === 404) notice("This conversation no longer exists.", true);
    });
  }

  function select(id) {
    state.selected = id;
    state.rendered = null;
    notice("");
    Array.prototype.forEach.call(els.conversations.children, function (item) {
      item.classList.toggle("selected", item.dataset.id === id);
    });
    els.history.scrollTop = els.history.scrollHeight;
    refreshDetail().then(function () { els["reply-input"].focus(); });
  }

  function startPolling() {
    stopPolling();
    refreshList();
    state.listTimer = setInterval(refreshList, LIST_EVERY_MS);
    state.detailTimer = setInterval(refreshDetail, DETAIL_EVERY_MS);
  }

  function stopPolling() {
    clearInterval(state.listTimer);
    clearInterval(state.detailTimer);
  }

  /* ---- actions ---- */

  function sendReply(text) {
    var id = state.selected;
    var image = els["reply-image"].files[0] || null;
    // A retry of the same message keeps its client_message_id, so it is sent only once.
    if (!state.pending || state.pending.text !== text || state.pending.conversation !== id ||
        state.pending.image !== image) {
      state.pending = { text: text, conversation: id, image: image, clientId: randomId() };
    }
    var body = { text: text, client_message_id: state.pending.clientId };
    var path = conversationPath(id) + "/replies";
    if (image) { // an image (the text its caption) goes as a multipart form
      body = new FormData();
      body.append("file", image, image.name || "image");
      body.append("conversation_id", id);
      body.append("client_message_id", state.pending.clientId);
      body.append("caption", text);
      path = "/api/inbox/images";
    }
    state.sending = true;
    refreshSendButton();
    notice("Sending…");
    return api("POST", path, body).then(function () {
      state.pending = null;
      els["reply-input"].value = "";
      els["reply-image"].value = "";
      els["reply-image-name"].textContent = "";
      notice("");
      return refreshDetail();
    }, function (err) {
      notice("Not sent: " + ((err && err.error) || "network error") + ". Press Send to retry.", true);
    }).then(function () {
      state.sending = false;
      refreshSendButton();
    });
  }

  function handBack() {
    var id = state.selected;
    els["hand-back"].disabled = true;
    api("POST", conversationPath(id) + "/hand-back", {}).then(function () {
      notice("Handed back: the bot answers the customer's next message.");
      refreshList();
    }, function (err) {
      notice("Could not hand back: " + ((err && err.error) || "network error"), true);
    }).then(function () { els["hand-back"].disabled = false; });
  }

  function refreshSendButton() {
    var empty = els["reply-input"].value.trim() === "" && !els["reply-image"].files.length;
    els["reply-send"].disabled = state.sending || empty;
  }

  /* ---- signing in and out ---- */

  function signIn(key) {
    state.key = key;
    els["sign-in-button"].disabled = true;
    return api("GET", "/api/inbox/me").then(function (me) {
      store.set(key);
      els["sign-in"].hidden = true;
      els.workspace.hidden = false;
      els["sign-out"].hidden = false;
      els.who.textContent = me.agent + " · " + me.tenant_id;
      startPolling();
    }, function (err) {
      if (err && err.status) els["sign-in-error"].textContent = err.error;
    }).then(function () { els["sign-in-button"].disabled = false; });
  }

  function signOut(message) {
    stopPolling();
    store.clear();
    state.key = null;
    state.selected = null;
    state.listed = null;
    els.workspace.hidden = true;
    els["sign-out"].hidden = true;
    els["sign-in"].hidden = false;
    els.who.textContent = "";
    els["sign-in-error"].textContent = message || "";
  }

  els["sign-in"].addEventListener("submit", function (event) {
    event.preventDefault();
    var key = els["api-key"].value.trim();
    if (key) signIn(key);
  });
  els["sign-out"].addEventListener("click", function () { signOut(""); });
  els["hand-back"].addEventListener("click", handBack);
  els["reply-input"].addEventListener("input", refreshSendButton);
  els["reply-input"].addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      els.composer.requestSubmit();
    }
  });
  els.composer.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = els["reply-input"].value.trim();
    var image = els["reply-image"].files.length;
    if ((text || image) && state.selected && !state.sending) sendReply(text);
  });
  els["reply-image"].addEventListener("change", function () {
    var file = els["reply-image"].files[0];
    els["reply-image-name"].textContent = file ? file.name : "";
    refreshSendButton();
  });

  var saved = store.get();
  if (saved) signIn(saved);
})();
