"""A Hugging Face–style hub on 127.0.0.1 for the download tests (point HF_ENDPOINT at `url`;
the `hub_env(files, gated=False)` fixture does, with `pytest_plugins = ["helpers.hub"]`).

Serves what huggingface_hub and Saiten's transfer read from the real Hub:
- `HEAD|GET /{repo}/resolve/{rev}/{path}`: a small file answers 200 with its git blob sha1 as
  ETag; an LFS file (≥ `lfs_from` bytes) answers 302 to the CDN (a second server, another
  host:port) with `X-Linked-Etag` (sha256) and `X-Linked-Size`, like the Hub;
- `GET /api/models/{repo}/tree/{rev}?recursive=…`: the listing (size, oid, lfs oid/size);
- the CDN serves `/cdn/{sha256}` and files published elsewhere at `/gh/{path}`, with Range.
Gated repositories answer 401 (no token) or 403 (another token) with `X-Error-Code:
GatedRepo`. `cut[name] = n` sends n bytes of the next GET of a file then drops the
connection; `delay` slows every chunk (to cancel mid-file). Every request is recorded with
its headers.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

COMMIT = "0123456789abcdef0123456789abcdef01234567"
GOOD_TOKEN = "hf_goodtoken_for_tests_0123456789"


def git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class _Server:
    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class FakeHub:
    """`repos[repo][path] = bytes`; `urls[path] = bytes` (served by the CDN at /gh/path)."""

    def __init__(self, repos: dict[str, dict[str, bytes]] | None = None, *,
                 gated: tuple[str, ...] = (), lfs_from: int = 1024,
                 token: str = GOOD_TOKEN) -> None:
        self.repos = {r: dict(f) for r, f in (repos or {}).items()}
        self.token = token
        self.urls: dict[str, bytes] = {}
        self.gated = set(gated)
        self.lfs_from = lfs_from
        self.cut: dict[str, int] = {}
        self.delay = 0.0
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self._lock = threading.Lock()
        self.cdn = _Server(self._handler(cdn=True))
        self.hub = _Server(self._handler(cdn=False))
        self.url = self.hub.url

    # -- what is served -----------------------------------------------------------------
    def add(self, repo: str, files: dict[str, bytes]) -> None:
        self.repos.setdefault(repo, {}).update(files)

    def publish(self, path: str, data: bytes) -> str:
        """A file published outside the Hub (a GitHub raw file); returns its URL."""
        self.urls[path] = data
        return f"{self.cdn.url}/gh/{path}"

    def is_lfs(self, data: bytes) -> bool:
        return len(data) >= self.lfs_from

    def _blob(self, sha: str) -> tuple[str, bytes] | None:
        for files in self.repos.values():
            for path, data in files.items():
                if hashlib.sha256(data).hexdigest() == sha:
                    return path, data
        return None

    def close(self) -> None:
        self.hub.close()
        self.cdn.close()

    def gets(self, name: str) -> list[dict[str, str]]:
        """The headers of every GET whose path ends with `name` (either server)."""
        return [h for m, p, h in self.requests if m == "GET" and p.split("?")[0].endswith(name)]

    # -- the servers ----------------------------------------------------------------------
    def _handler(self, *, cdn: bool) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: object) -> None:
                pass

            def _plain(self, code: int, headers: dict[str, str] | None = None,
                       body: bytes = b"") -> None:
                self.send_response(code)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _record(self) -> None:
                with fake._lock:
                    fake.requests.append((self.command, self.path,
                                          {k.lower(): v for k, v in self.headers.items()}))

            def _send_bytes(self, name: str, data: bytes, extra: dict[str, str]) -> None:
                start = 0
                rng = self.headers.get("Range", "")
                if rng.startswith("bytes=") and rng.endswith("-"):
                    start = int(rng[6:-1])
                    if start >= len(data):
                        self._plain(416, {"Content-Range": f"bytes */{len(data)}"})
                        return
                body = data[start:]
                self.send_response(206 if start else 200)
                for k, v in extra.items():
                    self.send_header(k, v)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                if self.command == "HEAD":
                    return
                with fake._lock:
                    cut = fake.cut.pop(name, None)
                if cut is not None:
                    self.wfile.write(body[:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                for i in range(0, len(body), 4096):
                    if fake.delay:
                        time.sleep(fake.delay)
                    self.wfile.write(body[i:i + 4096])

            def _gate(self, repo: str) -> bool:
                if repo not in fake.gated:
                    return True
                auth = self.headers.get("Authorization", "")
                if auth == f"Bearer {fake.token}":
                    return True
                code = 403 if auth else 401
                self._plain(code, {"X-Error-Code": "GatedRepo",
                                   "X-Error-Message": f"Access to model {repo} is restricted."})
                return False

            def do_HEAD(self) -> None:
                self.do_GET()

            def do_GET(self) -> None:
                self._record()
                url = urlsplit(self.path)
                parts = [unquote(p) for p in url.path.lstrip("/").split("/")]
                if cdn:
                    return self._cdn(parts)
                if parts[:2] == ["api", "models"] and "tree" in parts:
                    return self._tree(parts, parse_qs(url.query))
                if len(parts) >= 5 and parts[2] == "resolve":
                    return self._resolve("/".join(parts[:2]), "/".join(parts[4:]))
                self._plain(404, {"X-Error-Code": "RepoNotFound"})

            def _cdn(self, parts: list[str]) -> None:
                if parts[0] == "gh" and "/".join(parts[1:]) in fake.urls:
                    path = "/".join(parts[1:])
                    return self._send_bytes(path, fake.urls[path], {})
                found = fake._blob(parts[1]) if parts[0] == "cdn" and len(parts) > 1 else None
                if found is None:
                    return self._plain(404)
                self._send_bytes(found[0], found[1], {})

            def _resolve(self, repo: str, path: str) -> None:
                if repo not in fake.repos:
                    return self._plain(401, {"X-Error-Code": "RepoNotFound"})
                if not self._gate(repo):
                    return
                data = fake.repos[repo].get(path)
                if data is None:
                    return self._plain(404, {"X-Error-Code": "EntryNotFound"})
                if fake.is_lfs(data):
                    sha = hashlib.sha256(data).hexdigest()
                    return self._plain(302, {"Location": f"{fake.cdn.url}/cdn/{sha}",
                                             "X-Repo-Commit": COMMIT,
                                             "X-Linked-Etag": f'"{sha}"',
                                             "X-Linked-Size": str(len(data)),
                                             "ETag": f'"{git_sha1(data)}"'})
                self._send_bytes(path, data, {"X-Repo-Commit": COMMIT,
                                              "ETag": f'"{git_sha1(data)}"'})

            def _tree(self, parts: list[str], query: dict[str, list[str]]) -> None:
                repo = "/".join(parts[2:4])
                if repo not in fake.repos:
                    return self._plain(401, {"X-Error-Code": "RepoNotFound"})
                if not self._gate(repo):
                    return
                entries = []
                for path, data in sorted(fake.repos[repo].items()):
                    e = {"type": "file", "path": path, "size": len(data), "oid": git_sha1(data)}
                    if fake.is_lfs(data):
                        e["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data),
                                    "pointerSize": 134}
                    entries.append(e)
                body = json.dumps(entries).encode()
                self._plain(200, {"Content-Type": "application/json"}, body)

        return Handler


@pytest.fixture
def fake_hub(monkeypatch, tmp_path):
    """An empty FakeHub behind HF_ENDPOINT (HF_HUB_OFFLINE and HF_TOKEN cleared, an empty
    HF_HOME); add repositories with `fake_hub.add(repo, {path: bytes})`."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    hub = FakeHub()
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    yield hub
    hub.close()


@pytest.fixture
def hub_env(monkeypatch, tmp_path):
    """`start({"owner/repo:path": bytes, …}, gated=False)` → a FakeHub behind HF_ENDPOINT
    (HF_HUB_OFFLINE and HF_TOKEN cleared, an empty HF_HOME); a gated one takes `hf_good`."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    hubs: list[FakeHub] = []

    def start(files: dict[str, bytes], gated: bool = False) -> FakeHub:
        repos: dict[str, dict[str, bytes]] = {}
        for key, data in files.items():
            repo, _, path = key.partition(":")
            repos.setdefault(repo, {})[path] = data
        hub = FakeHub(repos, gated=tuple(repos) if gated else (), token="hf_good")
        hubs.append(hub)
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        return hub

    yield start
    for h in hubs:
        h.close()
