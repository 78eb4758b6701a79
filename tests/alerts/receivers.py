"""Local receivers for alert notifications: an HTTP server in a thread and an asyncio SMTP sink."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class HttpReceiver:
    """Records every POST; answers with the scripted status codes, then 200."""

    url: str
    script: list[int] = field(default_factory=list)
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)


@contextmanager
def http_receiver(script: list[int] | None = None) -> Iterator[HttpReceiver]:
    """Run an HTTP receiver on 127.0.0.1 for the duration of the block."""
    receiver = HttpReceiver(url="")
    receiver.script = list(script or [])
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with lock:
                receiver.requests.append((self.path, dict(self.headers.items()), body))
                status = receiver.script.pop(0) if receiver.script else 200
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@dataclass
class SmtpSink:
    """A minimal SMTP server that keeps every message it is given."""

    port: int = 0
    messages: list[tuple[str, list[str], bytes]] = field(default_factory=list)
    server: asyncio.Server | None = None

    async def start(self) -> None:
        """Listen on 127.0.0.1 (a free port)."""
        self.server = await asyncio.start_server(self._session, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening."""
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        def reply(line: str) -> None:
            writer.write(line.encode() + b"\r\n")

        reply("220 sink ESMTP")
        sender, in_data = "", False
        recipients: list[str] = []
        lines: list[bytes] = []
        while line := await reader.readline():
            if in_data:
                if line.rstrip(b"\r\n") == b".":
                    self.messages.append((sender, recipients, b"".join(lines)))
                    sender, recipients, lines, in_data = "", [], [], False
                    reply("250 queued")
                else:
                    lines.append(line[1:] if line.startswith(b"..") else line)
                continue
            command = line.decode().strip()
            verb = command[:4].upper()
            if verb == "EHLO":
                reply("250-sink")
                reply("250 8BITMIME")
            elif verb == "MAIL":
                sender = command.split(":", 1)[1].strip()
                reply("250 ok")
            elif verb == "RCPT":
                recipients.append(command.split(":", 1)[1].strip())
                reply("250 ok")
            elif verb == "DATA":
                in_data = True
                reply("354 go ahead")
            elif verb == "QUIT":
                reply("221 bye")
                await writer.drain()
                break
            elif verb in ("HELO", "RSET", "NOOP"):
                reply("250 ok")
            else:
                reply("502 not implemented")
            await writer.drain()
        writer.close()
