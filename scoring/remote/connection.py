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


MAX_BYTES = 4 << 20
"""The most bytes of an answer read (a chat completion with every token's logprobs is well
under 1 MB): past it the answer is refused, whatever it says or claims."""


class TooLarge(Exception):
    """An answer larger than the caller reads (its Content-Length, or the bytes that came)."""

    def __init__(self, size: int | None, limit: int) -> None:
        what = (f"is {size / 1e6:.1f} MB" if size else
                f"went past {limit / 1e6:.1f} MB and was still arriving")
        super().__init__(f"the answer {what}: Saiten reads at most {limit / 1e6:.1f} MB "
                         "(a broken or hostile server)")
        self.size, self.limit = size, limit


def declared_length(headers: Any) -> int | None:
    """The Content-Length a server announced, or None (absent or not a number)."""
    try:
        n = int(headers.get("content-length") or "")
    except ValueError:
        return None
    return n if n >= 0 else None


def read_capped(resp: Any, limit: int, *, timeout: float | None = None,
                t0: float | None = None) -> bytes:
    """The body of `resp` (an http.client response): TooLarge as soon as its declared
    length or the bytes read pass `limit`, SlowAnswer past `timeout` seconds after `t0`."""
    size = declared_length(resp.headers)
    if size is not None and size > limit:
        raise TooLarge(size, limit)
    buf = bytearray()
    while chunk := resp.read1(65536):
        buf += chunk
        if len(buf) > limit:
            raise TooLarge(size, limit)
        if timeout is not None and t0 is not None and time.monotonic() - t0 > timeout:
            raise SlowAnswer(f"answer still arriving after {timeout:.3g} s")
    return bytes(buf)


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
        self._aborted = False

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
             connect_timeout: float, timeout: float, max_bytes: int = MAX_BYTES) -> Answer:
        """POST `body` as JSON; the answer (any status) read within `timeout` seconds and
        `max_bytes` (TooLarge past it: the connection is dropped, nothing more is read)."""
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
                    if self._aborted:  # cancelled while connecting: send nothing
                        raise ConnectionAbortedError("the call was cancelled")
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
                got = read_capped(resp, max_bytes, timeout=timeout, t0=t0)
                resp.close()  # fully read: the connection is ready for the next request
            except BaseException:
                self.close()
                raise
            if resp.will_close:
                self.close()
            return Answer(resp.status, resp.headers, got)
        raise ConnectionResetError("the server closed the connection")

    def close(self) -> None:
        """Close the connection; a request blocked on it in another thread ends at once."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(OSError):
                if conn.sock is not None:
                    conn.sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                conn.close()

    def abort(self) -> None:
        """Close for good (a cancelled call): a request still connecting sends nothing."""
        self._aborted = True
        self.close()


def is_timeout(e: BaseException) -> bool:
    return isinstance(e, (socket.timeout, TimeoutError))


__all__ = ["MAX_BYTES", "USER_AGENT", "Answer", "Connection", "ProxyError", "SlowAnswer",
           "TooLarge", "declared_length", "is_timeout", "proxy_for", "read_capped"]
