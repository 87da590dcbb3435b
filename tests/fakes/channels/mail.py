"""Fake mail servers on loopback: SMTP (aiosmtpd) that keeps what it is sent, and a
minimal IMAP4rev1 server with just what a poller uses (LOGIN, SELECT, UID SEARCH /
FETCH / STORE, LOGOUT)."""

from __future__ import annotations

import re
import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from .server import free_port


@dataclass
class Outbox:
    """What the fake SMTP server accepted."""

    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    refuse_next: list[str] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refuse_next:
            return self.refuse_next.pop(0)
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        return "250 OK"


@contextmanager
def smtp_server() -> Iterator[tuple[str, int, Outbox]]:
    """(host, port, outbox) of a running SMTP server."""
    outbox = Outbox()
    port = free_port()
    controller = Controller(outbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield "127.0.0.1", port, outbox
    finally:
        controller.stop()


@dataclass
class Mailbox:
    """uid → (raw message, seen); credentials the server accepts."""

    username: str
    password: str
    mails: dict[int, tuple[bytes, bool]] = field(default_factory=dict)
    logins: int = 0

    def deliver(self, raw: bytes) -> int:
        uid = max(self.mails, default=0) + 1
        self.mails[uid] = (raw, False)
        return uid

    def seen(self) -> set[int]:
        return {uid for uid, (_, seen) in self.mails.items() if seen}


class _ImapSession(socketserver.StreamRequestHandler):
    mailbox: Mailbox  # set on the subclass made per server

    def handle(self) -> None:
        self._send(b"* OK [CAPABILITY IMAP4rev1] fake IMAP ready")
        while line := self.rfile.readline(65536):
            tag, _, rest = line.decode("utf-8", "replace").rstrip("\r\n").partition(" ")
            command, _, args = rest.partition(" ")
            if not self._dispatch(tag, command.upper(), args):
                return

    def _send(self, *lines: bytes) -> None:
        for line in lines:
            self.wfile.write(line + b"\r\n")

    def _dispatch(self, tag: str, command: str, args: str) -> bool:
        ok = f"{tag} OK {command} completed".encode()
        if command == "CAPABILITY":
            self._send(b"* CAPABILITY IMAP4rev1", ok)
        elif command == "LOGIN":
            user, password = (a.strip('"') for a in args.split(" ", 1))
            if (user, password) != (self.mailbox.username, self.mailbox.password):
                self._send(f"{tag} NO [AUTHENTICATIONFAILED] bad credentials".encode())
            else:
                self.mailbox.logins += 1
                self._send(ok)
        elif command == "SELECT":
            self._send(
                f"* {len(self.mailbox.mails)} EXISTS".encode(),
                b"* 0 RECENT",
                f"{tag} OK [READ-WRITE] SELECT completed".encode(),
            )
        elif command == "UID":
            self._uid(tag, args, ok)
        elif command == "LOGOUT":
            self._send(b"* BYE fake IMAP closing", ok)
            return False
        else:
            self._send(f"{tag} BAD unknown command".encode())
        return True

    def _uid(self, tag: str, args: str, ok: bytes) -> None:
        sub, _, rest = args.partition(" ")
        sub = sub.upper()
        if sub == "SEARCH":
            unseen = [str(u) for u, (_, seen) in sorted(self.mailbox.mails.items()) if not seen]
            self._send(("* SEARCH " + " ".join(unseen)).rstrip().encode(), ok)
        elif sub == "FETCH":
            uid = int(rest.split(" ", 1)[0])
            raw, _ = self.mailbox.mails[uid]
            self.wfile.write(f"* {uid} FETCH (UID {uid} BODY[] {{{len(raw)}}}\r\n".encode())
            self.wfile.write(raw + b")\r\n")
            self._send(ok)
        elif sub == "STORE":
            for uid in re.findall(r"\d+", rest.split(" ", 1)[0]):
                raw, _ = self.mailbox.mails[int(uid)]
                self.mailbox.mails[int(uid)] = (raw, True)
            self._send(ok)
        else:
            self._send(f"{tag} BAD unknown UID command".encode())


@contextmanager
def imap_server(mailbox: Mailbox) -> Iterator[tuple[str, int]]:
    """(host, port) of a running fake IMAP server over `mailbox` (plain text, no TLS)."""
    handler = type("Session", (_ImapSession,), {"mailbox": mailbox})
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield "127.0.0.1", server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
