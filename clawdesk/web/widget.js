/* Web chat widget for the clawdesk gateway. Vanilla JS, no build step.
 *
 * Flow: get a conversation from the gateway (its id and the token that opens it, kept in
 * localStorage), open the reply WebSocket with the token, then read the history once; every
 * call about the conversation carries the token. The widget remembers the
 * id of the last reply it showed; a reconnecting socket asks for `?after=<that id>` and
 * the gateway replays, from Postgres, every reply sent while the socket was down (or
 * answers "resync" and the widget re-reads the history). Messages are de-duplicated by
 * id (bot messages use the reply id both in the history and on the socket). A token the
 * gateway no longer accepts (socket closed with 1008, or 401/403) starts a new conversation.
 * The shop's name (page title) and welcome come from the tenant's profile
 * (GET /api/web/profile); the texts below are the neutral ones until it answers.
 *
 * Images: picked, dropped on the chat or pasted, one at a time, posted as a multipart
 * form to /api/web/images with the typed text as its caption; the gateway checks size
 * and type and answers a 4xx with the reason, shown under the message.
 * Delivery state: each of the customer's messages shows sending → sent (the gateway
 * took it) → answered (a reply names it, or a later one, as `in_reply_to`), or failed
 * with a retry button; the state is text plus an icon in a polite live region.
 */
(function () {
  "use strict";

  var TEXT = {
    en: {
      title: "Customer support",
      connecting: "Connecting…",
      online: "Online 24/7",
      offline: "Reconnecting…",
      newChat: "New chat",
      langToggle: "中文",
      placeholder: "Type your message…",
      send: "Send",
      typing: "Assistant is typing",
      welcome: "Hi! I'm the virtual assistant. Ask me about orders, shipping, returns, refunds or payments.",
      sources: "Sources",
      handoff: "A human agent will take over this conversation.",
      sending: "Sending…",
      failed: "Not sent. Tap to retry.",
      slow: "This is taking longer than usual. You'll see the answer here as soon as it's ready.",
      helpfulQuestion: "Did this help?",
      helpfulYes: "Yes, this helped",
      helpfulNo: "No, this didn't help",
      helpfulThanks: "Thanks for your feedback.",
      helpfulFailed: "Feedback not sent. Try again.",
      attach: "Attach an image",
      removeImage: "Remove the image",
      imageOnly: "Only images can be sent.",
      imageAlt: "Image you sent",
      replyImageAlt: "Image from support",
      dropHere: "Drop the image to attach it",
      stateSending: "Sending",
      stateSent: "Sent",
      stateAnswered: "Answered",
      stateFailed: "Not sent",
      retry: "Retry",
    },
    zh: {
      title: "在线客服",
      connecting: "连接中…",
      online: "7×24 小时在线",
      offline: "正在重新连接…",
      newChat: "新对话",
      langToggle: "English",
      placeholder: "请输入您的问题…",
      send: "发送",
      typing: "客服正在输入",
      welcome: "您好！我是智能客服，订单、物流、退换货、退款、支付等问题都可以问我。",
      sources: "参考资料",
      handoff: "人工客服将接手此对话。",
      sending: "发送中…",
      failed: "发送失败，点击重试。",
      slow: "处理时间比平时长一些，答复准备好后会显示在这里。",
      helpfulQuestion: "这个回答有帮助吗？",
      helpfulYes: "有帮助",
      helpfulNo: "没有帮助",
      helpfulThanks: "感谢您的反馈。",
      helpfulFailed: "反馈未发送，请重试。",
      attach: "添加图片",
      removeImage: "移除图片",
      imageOnly: "只能发送图片。",
      imageAlt: "您发送的图片",
      replyImageAlt: "客服发送的图片",
      dropHere: "松开即可添加图片",
      stateSending: "发送中",
      stateSent: "已发送",
      stateAnswered: "已回复",
      stateFailed: "发送失败",
      retry: "重试",
    },
  };
  var KEYS = {
    conversation: "clawdesk.conversation_id",
    token: "clawdesk.conversation_token",
    customer: "clawdesk.customer_id",
    lang: "clawdesk.lang",
  };
  var MAX_BACKOFF_MS = 30000;
  var SEND_ATTEMPTS = 5;
  var TYPING_TIMEOUT_MS = 60000;
  var KEEPALIVE_MS = 25000;

  // localStorage throws in some private modes; the chat still works, just not across reloads.
  var store = {
    get: function (key) {
      try { return window.localStorage.getItem(key); } catch (e) { return null; }
    },
    set: function (key, value) {
      try { window.localStorage.setItem(key, value); } catch (e) { /* not persisted */ }
    },
  };

  // crypto.randomUUID needs a secure context; getRandomValues works on plain http too.
  function randomId() {
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) {
      return b.toString(16).padStart(2, "0");
    }).join("");
  }

  function persistentId(key) {
    var id = store.get(key);
    if (!id) { id = randomId(); store.set(key, id); }
    return id;
  }

  function initialLanguage() {
    var saved = store.get(KEYS.lang);
    if (saved && TEXT[saved]) return saved;
    return (navigator.language || "en").toLowerCase().indexOf("zh") === 0 ? "zh" : "en";
  }

  var tenant = new URLSearchParams(window.location.search).get("tenant") || undefined;
  // A stored id without a token is from before tokens: the gateway would refuse it.
  var storedToken = store.get(KEYS.token);
  var state = {
    conversationId: storedToken ? store.get(KEYS.conversation) : null,
    token: storedToken && store.get(KEYS.conversation) ? storedToken : null,
    opening: null,
    customerId: persistentId(KEYS.customer),
    lang: initialLanguage(),
    seen: new Set(),
    lastReplyId: null,
    historyLoaded: false,
    socket: null,
    attempt: 0,
    reconnectTimer: null,
    typingTimer: null,
    status: "connecting",
    image: null, // the File attached to the next message
  };

  var els = {
    list: document.getElementById("messages"),
    form: document.getElementById("composer"),
    input: document.getElementById("input"),
    send: document.getElementById("send"),
    typing: document.getElementById("typing"),
    status: document.getElementById("status"),
    lang: document.getElementById("lang-toggle"),
    newChat: document.getElementById("new-chat"),
    file: document.getElementById("file"),
    attachment: document.getElementById("attachment"),
    chat: document.getElementById("clawdesk-chat"),
  };

  function t(key) { return TEXT[state.lang][key]; }

  /* ---- rendering (textContent only: message text is never parsed as HTML) ---- */

  function applyLanguage() {
    document.documentElement.lang = state.lang === "zh" ? "zh-CN" : "en";
    document.title = t("title");
    document.querySelectorAll("[data-i18n]").forEach(function (el) {
      el.textContent = t(el.getAttribute("data-i18n"));
    });
    document.querySelectorAll("[data-i18n-placeholder]").forEach(function (el) {
      el.placeholder = t(el.getAttribute("data-i18n-placeholder"));
    });
    document.querySelectorAll("[data-i18n-aria-label]").forEach(function (el) {
      el.setAttribute("aria-label", t(el.getAttribute("data-i18n-aria-label")));
    });
    document.querySelectorAll("[data-i18n-alt]").forEach(function (el) {
      el.alt = t(el.getAttribute("data-i18n-alt"));
    });
    els.lang.textContent = t("langToggle");
    setStatus(state.status);
  }

  function setStatus(status) {
    state.status = status;
    els.status.setAttribute("data-state", status);
    els.status.textContent = t(status === "online" ? "online" : status);
  }

  function formatTime(date) {
    return date.toLocaleTimeString(state.lang === "zh" ? "zh-CN" : "en", {
      hour: "2-digit", minute: "2-digit",
    });
  }

  function scrollToEnd() { els.list.scrollTop = els.list.scrollHeight; }

  function addMessage(msg) {
    var item = document.createElement("li");
    item.className = "msg " + msg.author;
    if (msg.id) item.dataset.id = msg.id;
    var bubble = document.createElement("div");
    bubble.className = "bubble";
    (msg.images || []).forEach(function (image) {
      bubble.appendChild(renderImage(image.url, msg.author === "customer" ? "imageAlt" : "replyImageAlt"));
    });
    if (msg.text) {
      var text = document.createElement("span");
      text.className = "text";
      text.textContent = msg.text;
      bubble.appendChild(text);
    }
    item.appendChild(bubble);
    if (msg.sources && msg.sources.length) item.appendChild(renderSources(msg.sources));
    if (msg.handoff) {
      var note = document.createElement("div");
      note.className = "handoff";
      note.setAttribute("data-i18n", "handoff");
      note.textContent = t("handoff");
      item.appendChild(note);
    }
    // "Did this help?" only under the bot's answers: not a human agent's reply, not a
    // handoff notice, and not the widget's own notes (they have no reply id).
    if (msg.author === "bot" && msg.id && !msg.handoff) item.appendChild(renderFeedback(msg.id));
    var meta = document.createElement("div");
    meta.className = "meta";
    meta.textContent = formatTime(msg.timestamp ? new Date(msg.timestamp) : new Date());
    item.appendChild(meta);
    if (msg.author === "customer") item.appendChild(renderDelivery());
    els.list.appendChild(item);
    scrollToEnd();
    return item;
  }

  function renderImage(url, altKey) {
    var img = document.createElement("img");
    img.className = "image";
    img.src = url;
    img.setAttribute("data-i18n-alt", altKey);
    img.alt = t(altKey);
    img.addEventListener("load", scrollToEnd);
    return img;
  }

  /* ---- delivery state of the customer's messages: text + icon, announced politely ---- */

  var DELIVERY = {
    sending: { icon: "◷", key: "stateSending" },
    sent: { icon: "✓", key: "stateSent" },
    answered: { icon: "✓✓", key: "stateAnswered" },
    failed: { icon: "!", key: "stateFailed" },
  };

  function renderDelivery() {
    var box = document.createElement("div");
    box.className = "delivery";
    box.setAttribute("role", "status"); // a polite live region: each change is read out
    var icon = document.createElement("span");
    icon.className = "delivery-icon";
    icon.setAttribute("aria-hidden", "true");
    var label = document.createElement("span");
    label.className = "delivery-label";
    box.appendChild(icon);
    box.appendChild(label);
    return box;
  }

  function setDelivery(item, stateName) {
    var box = item.querySelector(".delivery");
    if (!box) return;
    var shown = DELIVERY[stateName];
    item.dataset.delivery = stateName;
    box.dataset.state = stateName;
    box.querySelector(".delivery-icon").textContent = shown.icon;
    var label = box.querySelector(".delivery-label");
    label.setAttribute("data-i18n", shown.key);
    label.textContent = t(shown.key);
    var retry = box.querySelector(".retry");
    if (retry && stateName !== "failed") retry.remove();
  }

  // A reply answers the message it names and every one sent before it.
  function markAnswered(inReplyTo) {
    var items = els.list.querySelectorAll(".msg.customer");
    var upTo = -1;
    items.forEach(function (item, index) {
      if (inReplyTo && item.dataset.id === inReplyTo) upTo = index;
    });
    if (upTo === -1) upTo = items.length - 1; // unknown id (or none): all so far
    items.forEach(function (item, index) {
      if (index <= upTo && item.dataset.delivery === "sent") setDelivery(item, "answered");
    });
  }

  function renderSources(sources) {
    var box = document.createElement("div");
    box.className = "sources";
    var label = document.createElement("span");
    label.setAttribute("data-i18n", "sources");
    label.textContent = t("sources");
    box.appendChild(label);
    var list = document.createElement("ul");
    sources.forEach(function (source) {
      var li = document.createElement("li");
      li.textContent = source;
      list.appendChild(li);
    });
    box.appendChild(list);
    return box;
  }

  /* ---- "did this help?": one vote per bot answer; a second click replaces it ---- */

  function renderFeedback(replyId) {
    var box = document.createElement("div");
    box.className = "feedback";
    box.setAttribute("role", "group");
    box.setAttribute("data-i18n-aria-label", "helpfulQuestion");
    box.setAttribute("aria-label", t("helpfulQuestion"));
    var question = document.createElement("span");
    question.className = "feedback-question";
    question.setAttribute("data-i18n", "helpfulQuestion");
    question.textContent = t("helpfulQuestion");
    box.appendChild(question);
    [true, false].forEach(function (helpful) {
      var key = helpful ? "helpfulYes" : "helpfulNo";
      var button = document.createElement("button");
      button.type = "button";
      button.className = "feedback-button";
      button.dataset.helpful = String(helpful);
      button.setAttribute("aria-pressed", "false");
      button.setAttribute("data-i18n-aria-label", key);
      button.setAttribute("aria-label", t(key));
      var icon = document.createElement("span");
      icon.setAttribute("aria-hidden", "true");
      icon.textContent = helpful ? "👍" : "👎";
      var label = document.createElement("span");
      label.className = "sr-only";
      label.setAttribute("data-i18n", key);
      label.textContent = t(key);
      button.appendChild(icon);
      button.appendChild(label);
      button.addEventListener("click", function () { sendFeedback(box, replyId, helpful); });
      box.appendChild(button);
    });
    var status = document.createElement("span");
    status.className = "feedback-status";
    status.setAttribute("role", "status");
    box.appendChild(status);
    return box;
  }

  function markFeedback(box, helpful) {
    box.querySelectorAll(".feedback-button").forEach(function (button) {
      button.setAttribute("aria-pressed", String(button.dataset.helpful === String(helpful)));
    });
  }

  function sendFeedback(box, replyId, helpful) {
    var status = box.querySelector(".feedback-status");
    var url = "/api/web/conversations/" + encodeURIComponent(state.conversationId) +
      "/replies/" + encodeURIComponent(replyId) + "/feedback";
    markFeedback(box, helpful); // at once: the click must show even on a slow network
    return fetch(url, {
      method: "POST",
      headers: authorized({ "Content-Type": "application/json", Accept: "application/json" }),
      body: JSON.stringify({ helpful: helpful }),
    }).then(function (res) {
      if (!res.ok) throw new Error("feedback refused: " + res.status);
      status.setAttribute("data-i18n", "helpfulThanks");
      status.textContent = t("helpfulThanks");
    }).catch(function () {
      markFeedback(box, null);
      status.setAttribute("data-i18n", "helpfulFailed");
      status.textContent = t("helpfulFailed");
    });
  }

  function showWelcome() {
    var item = addMessage({ author: "bot", text: t("welcome") });
    item.classList.add("welcome");
    item.querySelector(".bubble .text").setAttribute("data-i18n", "welcome");
    item.querySelector(".meta").remove();
  }

  function setMeta(item, key) {
    var meta = item.querySelector(".meta");
    if (key) {
      meta.setAttribute("data-i18n", key);
      meta.textContent = t(key);
    } else {
      meta.removeAttribute("data-i18n");
      meta.textContent = formatTime(new Date());
    }
  }

  /* ---- typing indicator: on while a sent message waits for its reply ---- */

  function showTyping() {
    els.typing.hidden = false;
    scrollToEnd();
    clearTimeout(state.typingTimer);
    state.typingTimer = setTimeout(function () {
      els.typing.hidden = true;
      addMessage({ author: "bot", text: t("slow") }).querySelector(".meta").remove();
    }, TYPING_TIMEOUT_MS);
  }

  function hideTyping() {
    clearTimeout(state.typingTimer);
    els.typing.hidden = true;
  }

  /* ---- receiving: history and the reply socket ---- */

  function receive(msg) {
    if (msg.id && state.seen.has(msg.id)) return false;
    if (msg.id) state.seen.add(msg.id);
    if (msg.id && msg.author !== "customer") rememberReply(msg.id);
    var item = addMessage(msg);
    if (msg.author === "customer") setDelivery(item, "sent"); // from the history: taken
    return true;
  }

  // The resume point of the next reconnect: the last reply shown. (A reloaded page
  // starts from the whole history, so it need not outlive the page.)
  function rememberReply(id) { state.lastReplyId = id; }

  /* ---- the conversation: created by the gateway, opened by its token ---- */

  function authorized(headers) {
    headers.Authorization = "Bearer " + state.token;
    return headers;
  }

  // One request at a time, shared by whoever needs the conversation first (socket, send).
  function ensureConversation() {
    if (state.token) return Promise.resolve();
    if (state.opening) return state.opening;
    state.opening = fetch("/api/web/conversations", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(tenant ? { tenant_id: tenant } : {}),
    }).then(function (res) {
      if (res.status !== 201) throw new Error("conversation refused: " + res.status);
      return res.json();
    }).then(function (conversation) {
      state.conversationId = conversation.conversation_id;
      state.token = conversation.token;
      store.set(KEYS.conversation, state.conversationId);
      store.set(KEYS.token, state.token);
    });
    state.opening.then(clearOpening, clearOpening);
    return state.opening;
  }

  function clearOpening() { state.opening = null; }

  function forgetConversation() {
    state.conversationId = null;
    state.token = null;
    store.set(KEYS.conversation, "");
    store.set(KEYS.token, "");
  }

  function loadHistory() {
    var conversationId = state.conversationId;
    var url = "/api/web/conversations/" + encodeURIComponent(conversationId) + "/messages";
    return fetch(url, { headers: authorized({ Accept: "application/json" }) })
      .then(function (res) {
        if (res.status === 401 || res.status === 403) { restartConversation(); return []; }
        return res.ok ? res.json() : [];
      })
      .then(function (items) {
        if (conversationId !== state.conversationId) return; // a new chat started meanwhile
        state.historyLoaded = true;
        var gotReply = false;
        items.forEach(function (item) {
          if (!receive(item)) return;
          if (item.author !== "customer") { gotReply = true; markAnswered(null); }
        });
        if (gotReply) hideTyping();
      })
      .catch(function () { /* offline: the next socket open retries */ });
  }

  function connect() {
    clearTimeout(state.reconnectTimer);
    setStatus("connecting");
    ensureConversation().then(openSocket, function () {
      setStatus("offline");
      scheduleReconnect();
    });
  }

  function openSocket() {
    // connect() may run twice while a conversation is being created (timer, "online").
    if (state.socket && state.socket.readyState <= WebSocket.OPEN) return;
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    // Resuming: the gateway first replays what came after the last reply we showed.
    var resume = state.historyLoaded && state.lastReplyId
      ? "&after=" + encodeURIComponent(state.lastReplyId) : "";
    var socket = new WebSocket(
      scheme + window.location.host + "/ws/" + encodeURIComponent(state.conversationId) +
        "?token=" + encodeURIComponent(state.token) + resume
    );
    var keepalive = null;
    state.socket = socket;
    setStatus("connecting");
    socket.onopen = function () {
      state.attempt = 0;
      setStatus("online");
      if (!resume) loadHistory(); // the first open, or nothing to resume from
      // Idle sockets get cut by proxies; the gateway ignores what the client sends.
      keepalive = setInterval(function () {
        if (socket.readyState === WebSocket.OPEN) socket.send("ping");
      }, KEEPALIVE_MS);
    };
    socket.onmessage = function (event) {
      var data;
      try { data = JSON.parse(event.data); } catch (e) { return; }
      if (data.type === "resync") { loadHistory(); return; }
      if (data.type !== "reply") return;
      hideTyping();
      receive({
        id: data.reply_id, author: data.author === "agent" ? "agent" : "bot", text: data.text,
        sources: data.sources, handoff: data.handoff, images: data.images,
      });
      markAnswered(data.in_reply_to);
    };
    socket.onclose = function (event) {
      clearInterval(keepalive);
      if (state.socket !== socket) return; // replaced on purpose (new chat)
      if (event.code === 1008) { restartConversation(); return; } // the token is refused
      setStatus("offline");
      scheduleReconnect();
    };
  }

  function scheduleReconnect() {
    // Exponential backoff with jitter so a restarted gateway is not stampeded.
    var delay = Math.min(MAX_BACKOFF_MS, 500 * Math.pow(2, state.attempt));
    state.attempt += 1;
    clearTimeout(state.reconnectTimer);
    state.reconnectTimer = setTimeout(connect, delay * (0.5 + Math.random() / 2));
  }

  function reconnectNowIfClosed() {
    if (!state.socket || state.socket.readyState === WebSocket.CLOSED) {
      state.attempt = 0;
      connect();
    }
  }

  /* ---- sending: retried with the same client_message_id, which the pipeline dedupes ---- */

  function post(body, attempt) {
    var request = body.image ? {
      // multipart: the browser sets the Content-Type with its boundary
      method: "POST",
      headers: authorized({ Accept: "application/json" }),
      body: imageForm(body),
    } : {
      method: "POST",
      headers: authorized({ "Content-Type": "application/json", Accept: "application/json" }),
      body: JSON.stringify(body),
    };
    return fetch(body.image ? "/api/web/images" : "/api/web/messages", request).then(function (res) {
      if (res.status === 202) return res.json();
      if (res.status === 401 || res.status === 403) restartConversation();
      if (res.status >= 500 && attempt < SEND_ATTEMPTS) return retryPost(body, attempt);
      return res.json().catch(function () { return {}; }).then(function (err) {
        throw { permanent: res.status < 500, message: err.error || res.statusText };
      });
    }, function () {
      if (attempt < SEND_ATTEMPTS) return retryPost(body, attempt);
      throw { permanent: false, message: "network" };
    });
  }

  function imageForm(body) {
    var form = new FormData();
    form.append("file", body.image, body.image.name || "image");
    form.append("client_message_id", body.client_message_id);
    form.append("caption", body.text || "");
    if (body.conversation_id) form.append("conversation_id", body.conversation_id);
    if (body.customer_id) form.append("customer_id", body.customer_id);
    if (body.tenant_id) form.append("tenant_id", body.tenant_id);
    return form;
  }

  function retryPost(body, attempt) {
    return new Promise(function (resolve) {
      setTimeout(resolve, 500 * Math.pow(2, attempt));
    }).then(function () { return post(body, attempt + 1); });
  }

  // The message goes to the conversation there is when it is first sent; its retries
  // (same client_message_id) go to that one too.
  function deliver(item, body) {
    item.classList.remove("failed");
    item.classList.add("pending");
    setMeta(item, "sending");
    setDelivery(item, "sending");
    ensureConversation().then(function () {
      if (body.conversation_id !== state.conversationId) {
        body.conversation_id = state.conversationId;
        body.client_message_id = randomId(); // a new conversation: a new message there
      }
      return post(body, 1);
    }).then(function (accepted) {
      item.classList.remove("pending");
      item.dataset.id = accepted.event_id;
      state.seen.add(accepted.event_id);
      setMeta(item, null);
      setDelivery(item, "sent");
      showTyping();
    }, function (err) {
      item.classList.remove("pending");
      item.classList.add("failed");
      setMeta(item, "failed");
      setDelivery(item, "failed");
      if (err && err.permanent && err.message) {
        var meta = item.querySelector(".meta");
        meta.removeAttribute("data-i18n");
        meta.textContent = err.message; // the gateway's reason, e.g. the image is too large
      }
      var again = function () {
        item.querySelector(".bubble").onclick = null;
        deliver(item, body);
      };
      item.querySelector(".bubble").onclick = again;
      var retry = document.createElement("button");
      retry.type = "button";
      retry.className = "retry";
      retry.setAttribute("data-i18n", "retry");
      retry.textContent = t("retry");
      retry.addEventListener("click", function (event) { event.stopPropagation(); again(); });
      item.querySelector(".delivery").appendChild(retry);
    });
  }

  function send(text, image) {
    var body = {
      conversation_id: null, // set by deliver() once the conversation exists
      customer_id: state.customerId,
      client_message_id: randomId(),
      text: text,
    };
    if (tenant) body.tenant_id = tenant;
    var shown = { author: "customer", text: text };
    if (image) {
      body.image = image;
      shown.images = [{ url: URL.createObjectURL(image) }]; // shown at once, from memory
    }
    deliver(addMessage(shown), body);
  }

  /* ---- attaching an image: picker, drop, paste ---- */

  function attach(file) {
    if (!file) return;
    if (file.type && file.type.indexOf("image/") !== 0) {
      showAttachmentNote(t("imageOnly"));
      return;
    }
    state.image = file;
    els.attachment.textContent = "";
    els.attachment.hidden = false;
    var name = document.createElement("span");
    name.className = "attachment-name";
    name.textContent = file.name || "image";
    var remove = document.createElement("button");
    remove.type = "button";
    remove.id = "remove-image";
    remove.textContent = "×";
    remove.setAttribute("data-i18n-aria-label", "removeImage");
    remove.setAttribute("aria-label", t("removeImage"));
    remove.addEventListener("click", detach);
    els.attachment.appendChild(name);
    els.attachment.appendChild(remove);
    refreshSendButton();
  }

  function showAttachmentNote(text) {
    els.attachment.hidden = false;
    els.attachment.textContent = text;
  }

  function detach() {
    state.image = null;
    els.file.value = "";
    els.attachment.textContent = "";
    els.attachment.hidden = true;
    refreshSendButton();
  }

  function firstFile(list) { return list && list.length ? list[0] : null; }

  els.file.addEventListener("change", function () { attach(firstFile(els.file.files)); });
  els.input.addEventListener("paste", function (event) {
    var file = firstFile(event.clipboardData && event.clipboardData.files);
    if (file) { event.preventDefault(); attach(file); }
  });
  ["dragenter", "dragover"].forEach(function (name) {
    els.chat.addEventListener(name, function (event) {
      event.preventDefault();
      els.chat.classList.add("dragging");
    });
  });
  els.chat.addEventListener("dragleave", function (event) {
    if (event.target === els.chat) els.chat.classList.remove("dragging");
  });
  els.chat.addEventListener("drop", function (event) {
    event.preventDefault();
    els.chat.classList.remove("dragging");
    attach(firstFile(event.dataTransfer && event.dataTransfer.files));
  });

  /* ---- wiring ---- */

  function refreshSendButton() {
    els.send.disabled = els.input.value.trim() === "" && !state.image;
  }

  els.form.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = els.input.value.trim();
    var image = state.image;
    if (!text && !image) return;
    els.input.value = "";
    detach();
    send(text, image);
    els.input.focus();
  });
  els.input.addEventListener("input", refreshSendButton);
  els.input.addEventListener("keydown", function (event) {
    // Enter sends, Shift+Enter is a new line; never while an IME is composing (Chinese input).
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      els.form.requestSubmit();
    }
  });
  els.lang.addEventListener("click", function () {
    state.lang = state.lang === "zh" ? "en" : "zh";
    store.set(KEYS.lang, state.lang);
    applyLanguage();
  });
  // A new, empty conversation (the "New chat" button, or a token the gateway refuses).
  function restartConversation() {
    forgetConversation();
    state.seen = new Set();
    state.lastReplyId = null;
    state.historyLoaded = false;
    hideTyping();
    els.list.textContent = "";
    showWelcome();
    var old = state.socket;
    state.socket = null;
    if (old) old.close();
    state.attempt = 0;
    connect();
  }

  els.newChat.addEventListener("click", restartConversation);
  window.addEventListener("online", reconnectNowIfClosed);
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible") reconnectNowIfClosed();
  });

  // The tenant's names and welcome, from its profile (configuration on the gateway).
  function loadProfile() {
    var url = "/api/web/profile" + (tenant ? "?tenant=" + encodeURIComponent(tenant) : "");
    return fetch(url, { headers: { Accept: "application/json" } })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (profile) {
        if (!profile) return;
        Object.keys(TEXT).forEach(function (lang) {
          if (profile.title && profile.title[lang]) TEXT[lang].title = profile.title[lang];
          if (profile.welcome && profile.welcome[lang]) TEXT[lang].welcome = profile.welcome[lang];
        });
        applyLanguage();
      })
      .catch(function () { /* the neutral texts stay; the chat works without them */ });
  }

  applyLanguage();
  showWelcome();
  loadProfile();
  connect();
})();
