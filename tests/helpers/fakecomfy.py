"""A stand-in for the two ComfyUI routes the CLI uses beside a ComfyUI, on 127.0.0.1.

`GET /queue` answers the next scripted answer (then the default one): "idle", "busy"
(one prompt running), "pending:N", "junk" (not JSON), "odd" (JSON of the wrong shape),
"error" (HTTP 500) or "hang:S" (answers after S seconds). `POST /free` is recorded with its
body and time. Runs in a thread of the test process; the CLI under test is a subprocess.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeComfy:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.script: list[str] = []
        self.default = "idle"
        self.frees: list[tuple[float, dict[str, Any]]] = []
        self.polls: list[tuple[float, str]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, code: int, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path != "/queue":
                    return self._send(404, b"{}")
                with fake.lock:
                    answer = fake.script.pop(0) if fake.script else fake.default
                    fake.polls.append((time.time(), answer))
                kind, _, arg = answer.partition(":")
                if kind == "hang":
                    time.sleep(float(arg))
                    kind = "idle"
                if kind == "junk":
                    return self._send(200, b"<html>not a queue")
                if kind == "odd":
                    return self._send(200, b'{"queue_running": 3, "queue_pending": null}')
                if kind == "error":
                    return self._send(500, b'{"error": "boom"}')
                running = [[0, "p1", {}, {}, []]] if kind == "busy" else []
                pending = [[i, f"q{i}", {}, {}, []] for i in range(int(arg or 0))] \
                    if kind == "pending" else []
                self._send(200, json.dumps({"queue_running": running,
                                            "queue_pending": pending}).encode())

            def do_POST(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n else b""
                if self.path != "/free":
                    return self._send(404, b"{}")
                with fake.lock:
                    fake.frees.append((time.time(), json.loads(raw or b"{}")))
                self._send(200, b"")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.handle_error = lambda *a: None  # a client that gave up (hang) is fine
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def answer(self, *answers: str, default: str = "idle") -> None:
        with self.lock:
            self.script, self.default = list(answers), default
            self.frees.clear()
            self.polls.clear()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
