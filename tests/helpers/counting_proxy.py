"""A TCP forwarder on 127.0.0.1 that counts what a client sends to a server (stdlib only).

Put it between an HTTP client and any server (`CountingProxy(port).url`) to measure the
bytes a source uploads and the requests it makes, whatever the server is — the fake one or
a real `llama_cpp.server`. Used by tests and by `bench/vlm.py`.
"""

from __future__ import annotations

import contextlib
import socket
import threading


class CountingProxy:
    """Forwards 127.0.0.1:<port> → 127.0.0.1:`upstream`; counts bytes and POSTs sent up."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.sent = 0
        self.posts = 0
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, path: str = "/v1") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def reset(self) -> None:
        with self._lock:
            self.sent = self.posts = 0

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            up = socket.create_connection(("127.0.0.1", self.upstream))
            self._open += [client, up]
            threading.Thread(target=self._pipe, args=(client, up, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(up, client, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, count: bool) -> None:
        try:
            while data := src.recv(65536):
                if count:
                    with self._lock:
                        self.sent += len(data)
                        self.posts += data.count(b"POST /")
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._server.close()
        for s in self._open:
            s.close()
