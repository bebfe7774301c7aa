"""A fault-injecting OpenAI-compatible server for tests (stdlib only, 127.0.0.1 only).

Run `python tests/helpers/fakeapi.py --port 0` (prints `PORT <n>`), or use `FakeAPI` which starts it
as a subprocess and drives it over HTTP. `/v1/chat/completions` answers each request with the
next scripted action (then the default one) and records every request (path, headers, raw
body). Control endpoints: `POST /_script` {"actions": [...], "default": {...}},
`GET /_requests`, `POST /_reset`, `POST /_release` (held requests answer).

Actions (dicts with "kind"):
- ok: {"content": str, "usage": {...}} — a chat completion (default content: a rubric JSON)
- delay: {"seconds": s, then ok} — sleep before answering
- hold: {then ok} — answer only once the test calls `release()` (or at the next script/reset,
  or after "seconds", default 600): a server busy for exactly as long as the test needs
- status: {"code": 429|500|..., "retry_after": "1", "message": str} — an error answer
- reset: close the connection without an answer (TCP RST)
- drip: {"interval": s, "content": ...} — a valid answer sent one byte per interval
- junk: a 200 whose body is not JSON
- reject_param: {"param": name} — 400 "Argument not supported: <name>" when the request
  has that parameter, else ok
- reject_json_schema: HTTP 500 when response_format.type == "json_schema" (llama_cpp.server)
- logprobs: {"top": {"7": -0.1, ...}} — per-token logprobs: to a request whose
  response_format has a schema, that JSON with each value a digit carrying these
  top_logprobs (a string value: "comment", default RUBRIC's); else (or with "json": false)
  a one-token answer. Without "top", a server with no logprobs support (logprobs: null)
- redirect: {"code": 307, "location": url} — a redirect answer
- echo_key: a rubric answer whose comment repeats the request's bearer token ({"part":
  [a, b]}: only token[a:b]; "escaped": its first character as a JSON unicode escape;
  "encoding": one of ENCODINGS — the token, or the whole Authorization header for the
  "header-…" ones, base64/base64url/URL-encoded/hex/letter-spaced/split into pieces)
- huge: {"bytes": n, "in": "content"|"body"} — a valid completion of about n bytes, streamed
  with its Content-Length: the rubric JSON with its comment padded ("content"), or a short
  answer with a padded extra field ("body")
- endless: a 200 in chunked encoding that never ends (as fast as the client reads)
- chaos: {"seed": s, "weights": {fault: w}} — each request gets one fault picked from a
  hash of the seed and the request body (the same request, the same fault, in any order):
  ok, status (500), reset, huge, range (overall 150, erotic "100/0.0001"), echo (a random
  encoding), junk, endless

It also works as a plain-http forward proxy (it answers absolute-form request lines), so a
test can see what a proxied request carried.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import random
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

RUBRIC = {"erotic": 60, "composition": 55, "appeal": 70, "typeset": 50, "overall": 65,
          "comment": "線画は安定しているが背景が弱い。"}


FAKE_KEY = "xai-SAITENFAKEKEY-0123456789abcdefDEADBEEF"
"""Set as the API key everywhere; tests assert it never shows up outside the auth header."""


def assert_no_secret(*texts: object, key: str = FAKE_KEY) -> None:
    """Neither the key nor a recognisable part of it appears in any of `texts`."""
    for t in texts:
        s = t if isinstance(t, str) else json.dumps(t, ensure_ascii=False, default=str)
        assert key not in s and key[4:20] not in s, f"key leaked into: {s[:200]}"


ENCODINGS = ("verbatim", "base64", "base64url", "url", "hex", "spaced", "split",
             "header-base64", "header-url", "reversed-case")
"""How `echo_key` can send the key back (each decodes back to it)."""


def encode(token: str, how: str) -> str:
    """`token` as `how` (see ENCODINGS) would echo it."""
    raw = token.encode()
    if how.startswith("header-"):
        raw, how = f"Bearer {token}".encode(), how.split("-", 1)[1]
    if how == "base64":
        return base64.b64encode(raw).decode()
    if how == "base64url":
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")
    if how == "url":
        return "".join(f"%{b:02X}" for b in raw)
    if how == "hex":
        return raw.hex()
    if how == "spaced":
        return " ".join(token)
    if how == "split":
        step = max(1, len(token) // 5)
        return " … ".join(token[i:i + step] for i in range(0, len(token), step))
    if how == "reversed-case":
        return token.swapcase()
    return raw.decode()


HOSTILE_VALUES = {"overall": 150, "erotic": "100/0.0001", "composition": 99999,
                  "appeal": 1e300, "typeset": -5}
"""A rubric answer with every value out of range or not a plain number."""


class State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.actions: list[dict[str, Any]] = []
        self.default: dict[str, Any] = {"kind": "ok"}
        self.requests: list[dict[str, Any]] = []
        self.released = threading.Event()

    def release(self) -> None:
        """Let every held request answer; later holds wait for the next release."""
        with self.lock:
            self.released.set()
            self.released = threading.Event()

    def next_action(self) -> dict[str, Any]:
        with self.lock:
            return self.actions.pop(0) if self.actions else dict(self.default)


STATE = State()


def completion(body: dict[str, Any], content: str, usage: dict[str, int] | None = None,
               logprobs: Any = None) -> bytes:
    prompt_chars = sum(len(json.dumps(m.get("content", ""))) for m in body.get("messages", []))
    usage = usage or {"prompt_tokens": prompt_chars // 4 + 1,
                      "completion_tokens": len(content) // 4 + 1}
    usage = {**usage, "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"]}
    return json.dumps({
        "id": f"chatcmpl-{len(STATE.requests)}", "object": "chat.completion",
        "created": int(time.time()), "model": body.get("model", "fake"),
        "choices": [{"index": 0, "finish_reason": "stop", "logprobs": logprobs,
                     "message": {"role": "assistant", "content": content}}],
        "usage": usage,
    }, ensure_ascii=False).encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _send(self, code: int, data: bytes, headers: dict[str, str] | None = None,
              ctype: str = "application/json") -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _error(self, code: int, message: str, headers: dict[str, str] | None = None) -> None:
        body = {"error": {"message": message, "type": "invalid_request_error", "code": None}}
        self._send(code, json.dumps(body).encode(), headers)

    def _read(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def do_GET(self) -> None:
        if self.path == "/_requests":
            with STATE.lock:
                self._send(200, json.dumps(STATE.requests).encode())
        elif self.path.rstrip("/").endswith("/models"):
            self._send(200, json.dumps({"object": "list", "data": [
                {"id": "fake-judge", "object": "model", "owned_by": "tests"}]}).encode())
        else:
            self._error(404, "not found")

    def do_POST(self) -> None:
        raw = self._read()
        if self.path == "/_script":
            cfg = json.loads(raw or b"{}")
            with STATE.lock:
                STATE.actions = list(cfg.get("actions", []))
                if "default" in cfg:
                    STATE.default = cfg["default"]
            self._send(200, b"{}")
            return
        if self.path == "/_release":
            STATE.release()
            self._send(200, b"{}")
            return
        if self.path == "/_reset":
            STATE.release()
            with STATE.lock:
                STATE.actions, STATE.requests = [], []
                STATE.default = {"kind": "ok"}
            self._send(200, b"{}")
            return
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._error(404, f"no route {self.path}")
            return
        with STATE.lock:
            STATE.requests.append({"path": self.path, "headers": dict(self.headers.items()),
                                   "body": raw.decode("utf-8", "replace"), "time": time.time()})
        try:
            body = json.loads(raw)
        except ValueError:
            self._error(400, "body is not JSON")
            return
        self.act(STATE.next_action(), body)

    def act(self, a: dict[str, Any], body: dict[str, Any]) -> None:
        kind = a.get("kind", "ok")
        content = a.get("content", json.dumps(RUBRIC, ensure_ascii=False))
        if kind == "delay":
            time.sleep(float(a["seconds"]))
            kind = "ok"
        if kind == "hold":
            with STATE.lock:
                released = STATE.released
            released.wait(float(a.get("seconds", 600)))
            kind = "ok"
        if kind == "reject_param":
            if a["param"] in body:
                self._error(400, f"Argument not supported on this model: {a['param']}")
                return
            kind = "ok"
        if kind == "reject_json_schema":
            if (body.get("response_format") or {}).get("type") == "json_schema":
                self._error(500, "1 validation error:\n  {'type': 'literal_error', 'loc': "
                            "('body', 'response_format', 'type'), 'msg': \"Input should be "
                            "'text' or 'json_object'\"}")  # what llama_cpp.server answers
                return
            kind = "ok"
        if kind == "ok":
            self._send(200, completion(body, content, a.get("usage")))
        elif kind == "status":
            headers = {"Retry-After": str(a["retry_after"])} if "retry_after" in a else {}
            self._error(int(a["code"]), a.get("message", f"scripted {a['code']}"), headers)
        elif kind == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
        elif kind == "drip":
            data = completion(body, content)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.flush()
            try:
                for i in range(len(data)):
                    self.wfile.write(data[i:i + 1])
                    self.wfile.flush()
                    time.sleep(float(a.get("interval", 0.2)))
            except OSError:
                pass
            self.close_connection = True
        elif kind == "redirect":
            self._send(int(a.get("code", 307)), b"", {"Location": a["location"]})
        elif kind == "echo_key":  # {"part": [a, b]}: only token[a:b]; "escaped": unicode-escaped
            auth = self.headers.get("Authorization", "")
            token = auth.split(" ", 1)[-1]
            if "part" in a:
                token = token[a["part"][0]:a["part"][1]]
                auth = ""
            if "encoding" in a:
                token, auth = encode(token, a["encoding"]), ""
            echoed = {**RUBRIC, "comment": f"your key {token} looks fine; {auth}"}
            data = completion(body, json.dumps(echoed))
            if a.get("escaped") and token:
                data = data.replace(token.encode(), f"\\u{ord(token[0]):04x}".encode()
                                    + token[1:].encode())
            self._send(200, data)
        elif kind == "huge":
            self._huge(body, int(a.get("bytes", 50 << 20)), a.get("in", "content"))
        elif kind == "endless":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            chunk = b'{"pad": "' + b"x" * 65536
            try:
                while True:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    chunk = b"x" * 65536
            except OSError:
                pass
            self.close_connection = True
        elif kind == "chaos":
            self.act(self._chaos(a, body), body)
        elif kind == "junk":
            self._send(200, b"<html>502 Bad Gateway</html>\x00\xff", ctype="text/html")
        elif kind == "logprobs":
            top = a.get("top")
            if top is None:
                self._send(200, completion(body, a.get("content", "5")))
                return
            best = max(top, key=top.get)
            digit = {"token": best, "logprob": top[best], "bytes": None,
                     "top_logprobs": [{"token": t, "logprob": v, "bytes": None}
                                      for t, v in top.items()]}
            rf = body.get("response_format") or {}
            schema = rf.get("schema") or (rf.get("json_schema") or {}).get("schema") or {}
            props = schema.get("properties") or {}
            keys = list(props)
            if not keys or a.get("json") is False:  # a one-token answer after the prefix
                self._send(200, completion(body, best, logprobs={"content": [digit]}))
                return
            digits = [t for t in top if t.strip().isdigit()] or [best]
            likeliest = max(digits, key=top.get)
            digit = {**digit, "token": likeliest.strip(), "logprob": top[likeliest]}
            tokens = []  # the schema's JSON, each key's value the likeliest scripted digit
            for n, k in enumerate(keys):
                lead = ("{" if n == 0 else ", ") + json.dumps(k) + ": "
                value = digit
                if props[k].get("type") == "string":  # e.g. the comment
                    text = json.dumps(a.get("comment", RUBRIC["comment"]), ensure_ascii=False)
                    value = {"token": text, "logprob": -0.01, "bytes": None, "top_logprobs": []}
                tokens += [{"token": lead, "logprob": -0.01, "bytes": None, "top_logprobs": []},
                           value]
            tokens.append({"token": "}", "logprob": -0.01, "bytes": None, "top_logprobs": []})
            self._send(200, completion(body, "".join(t["token"] for t in tokens),
                                       logprobs={"content": tokens}))
        else:
            self._error(400, f"unknown scripted action {kind!r}")

    def _huge(self, body: dict[str, Any], size: int, where: str) -> None:
        """A valid completion of about `size` bytes, streamed (never held whole)."""
        if where == "body":
            head, tail = completion(body, json.dumps(RUBRIC)).rsplit(b"}", 1)
            head, tail = head + b', "padding": "', b'"}' + tail
        else:
            content = json.dumps({**RUBRIC, "comment": "long @@PAD@@"}, ensure_ascii=False)
            head, tail = completion(body, content).split(b"@@PAD@@")
        pad = max(0, size - len(head) - len(tail))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(head) + pad + len(tail)))
        self.end_headers()
        try:
            self.wfile.write(head)
            block = b"a" * 65536
            for start in range(0, pad, len(block)):
                self.wfile.write(block[:min(len(block), pad - start)])
            self.wfile.write(tail)
            self.wfile.flush()
        except OSError:
            self.close_connection = True

    @staticmethod
    def _chaos(a: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        """The fault for this request: a pure function of the seed and the request."""
        digest = hashlib.sha256(json.dumps([a.get("seed", 0), body], sort_keys=True)
                                .encode()).digest()
        rng = random.Random(digest)
        weights = a.get("weights") or {"ok": 1}
        fault = rng.choices(list(weights), weights=list(weights.values()))[0]
        return {"ok": {"kind": "ok"}, "status": {"kind": "status", "code": 500},
                "reset": {"kind": "reset"}, "junk": {"kind": "junk"},
                "endless": {"kind": "endless"},
                "huge": {"kind": "huge", "bytes": rng.choice([20 << 20, 60 << 20])},
                "range": {"kind": "ok", "content": json.dumps({**RUBRIC, **HOSTILE_VALUES})},
                "echo": {"kind": "echo_key", "encoding": rng.choice(ENCODINGS)},
                }[fault]


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


def serve(port: int) -> None:
    server = Server(("127.0.0.1", port), Handler)
    print(f"PORT {server.server_address[1]}", flush=True)
    server.serve_forever()


class FakeAPI:
    """The fake server in a subprocess (stopped by its PID), driven over HTTP."""

    def __init__(self, port: int = 0) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--port", str(port)],
            stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line.startswith("PORT "):
            self.proc.kill()
            raise RuntimeError(f"fakeapi did not start: {line!r}")
        self.port = int(line.split()[1])
        self.url = f"http://127.0.0.1:{self.port}/v1"

    def _post(self, path: str, data: dict[str, Any]) -> None:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}",
                                     data=json.dumps(data).encode(), method="POST")
        urllib.request.urlopen(req, timeout=10).read()

    def script(self, *actions: dict[str, Any], default: dict[str, Any] | None = None) -> None:
        """Reset the record and queue `actions` (then `default`, else plain ok answers)."""
        self._post("/_reset", {})
        cfg: dict[str, Any] = {"actions": list(actions)}
        if default is not None:
            cfg["default"] = default
        self._post("/_script", cfg)

    def release(self) -> None:
        """Let the requests held by a "hold" action answer."""
        self._post("/_release", {})

    def requests(self) -> list[dict[str, Any]]:
        url = f"http://127.0.0.1:{self.port}/_requests"
        return json.loads(urllib.request.urlopen(url, timeout=10).read())

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r["body"]) for r in self.requests()]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        if self.proc.stdout:
            self.proc.stdout.close()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=0)
    serve(p.parse_args().port)
