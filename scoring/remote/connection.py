"""One JSON POST to an OpenAI-compatible server, with the standard library only.

What it sends is exactly what the caller gives: no headers or credentials picked up from the
environment (no OPENAI_ORG_ID / OPENAI_PROJECT_ID / OPENAI_CUSTOM_HEADERS, no .netrc), and
redirects are never followed (a 3xx comes back as it is, so an image is never re-sent to
another server). Proxies are the user's: `HTTP(S)_PROXY` / `ALL_PROXY` with `NO_PROXY`
honoured (through `urllib.request`), and a server on this machine is never reached through a
proxy. The connection is kept open between calls of one `Connection`.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import socket
import ssl
import time
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from .keys import is_loopback

USER_AGENT = "ComfyUI-Saiten"


class ProxyError(Exception):
    """A proxy setting Saiten cannot use (e.g. socks)."""


@dataclass
class Answer:
    status: int
    headers: Any  # http.client.HTTPMessage (case-insensitive .get)
    body: bytes


class SlowAnswer(Exception):
    """Bytes kept arriving past the attempt's time limit."""


def proxy_for(scheme: str, host: str, port: int) -> str | None:
    """The proxy URL the user's settings give for this server, or None (direct)."""
    if is_loopback(host):
        return None
    proxies = urllib.request.getproxies()
    proxy = proxies.get(scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(f"{host}:{port}") or \
            urllib.request.proxy_bypass(host):
        return None
    return proxy if "://" in proxy else f"http://{proxy}"


def _tls() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    try:
        import certifi  # present wherever requests/httpx are; adds Mozilla's roots

        ctx.load_verify_locations(certifi.where())
    except (ImportError, OSError):
        pass
    return ctx


class Connection:
    """A kept-alive connection to one server (through its proxy, if any)."""

    def __init__(self, base_url: str) -> None:
        u = urlsplit(base_url)
        self.scheme, self.host = u.scheme, (u.hostname or "")
        self.port = u.port or (443 if self.scheme == "https" else 80)
        self.base_path = u.path.rstrip("/")
        self.proxy = proxy_for(self.scheme, self.host, self.port)
        self._conn: http.client.HTTPConnection | None = None
        self._proxy_auth: dict[str, str] = {}

    @property
    def via(self) -> str:
        """How requests go, for messages (proxy credentials left out)."""
        if not self.proxy:
            return "direct"
        p = urlsplit(self.proxy)
        return f"via proxy {p.scheme}://{p.hostname}:{p.port or 80}"

    def _open(self, timeout: float) -> http.client.HTTPConnection:
        if self.proxy is None:
            cls = http.client.HTTPSConnection if self.scheme == "https" else \
                http.client.HTTPConnection
            kw = {"context": _tls()} if self.scheme == "https" else {}
            return cls(self.host, self.port, timeout=timeout, **kw)
        p = urlsplit(self.proxy)
        if p.scheme != "http":
            raise ProxyError(f"the proxy for {self.host} is {p.scheme}://, which Saiten "
                             f"cannot use: set an http:// proxy or add {self.host} to NO_PROXY")
        if p.username:
            cred = f"{unquote(p.username)}:{unquote(p.password or '')}".encode()
            self._proxy_auth = {"Proxy-Authorization":
                                "Basic " + base64.b64encode(cred).decode("ascii")}
        if self.scheme == "https":
            conn = http.client.HTTPSConnection(p.hostname or "", p.port or 80,
                                               timeout=timeout, context=_tls())
            conn.set_tunnel(self.host, self.port, headers=self._proxy_auth)
            return conn
        return http.client.HTTPConnection(p.hostname or "", p.port or 80, timeout=timeout)

    def _target(self, path: str) -> str:
        full = f"{self.base_path}/{path.lstrip('/')}"
        if self.proxy and self.scheme == "http":  # absolute form for a forward proxy
            return f"http://{self.host}:{self.port}{full}"
        return full

    def post(self, path: str, body: dict[str, Any], headers: dict[str, str], *,
             connect_timeout: float, timeout: float) -> Answer:
        """POST `body` as JSON; the answer (any status) read within `timeout` seconds."""
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        hdrs = {"Content-Type": "application/json", "Accept": "application/json",
                "User-Agent": USER_AGENT, **headers}
        if self.proxy and self.scheme == "http":
            hdrs.update(self._proxy_auth)
        reused = self._conn is not None
        for _ in range(2):  # a kept-alive connection the server closed: once more, fresh
            if self._conn is None:
                fresh = self._open(min(connect_timeout, timeout))
                try:
                    fresh.connect()
                except BaseException:
                    fresh.close()
                    raise
                self._conn = fresh
            conn = self._conn
            t0 = time.monotonic()
            try:
                if conn.sock is not None:
                    conn.sock.settimeout(timeout)
                conn.request("POST", self._target(path), body=data, headers=hdrs)
                resp = conn.getresponse()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()
                if not reused:
                    raise
                reused = False
                continue
            except BaseException:
                self.close()
                raise
            try:
                buf = bytearray()
                while chunk := resp.read1(65536):
                    buf += chunk
                    if time.monotonic() - t0 > timeout:
                        raise SlowAnswer(f"answer still arriving after {timeout:.3g} s")
                resp.close()  # fully read: the connection is ready for the next request
            except BaseException:
                self.close()
                raise
            if resp.will_close:
                self.close()
            return Answer(resp.status, resp.headers, bytes(buf))
        raise ConnectionResetError("the server closed the connection")

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.close()


def is_timeout(e: BaseException) -> bool:
    return isinstance(e, (socket.timeout, TimeoutError))


__all__ = ["USER_AGENT", "Answer", "Connection", "ProxyError", "SlowAnswer", "is_timeout",
           "proxy_for"]
