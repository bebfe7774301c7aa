"""Headless Chromium driven over the DevTools protocol (aiohttp websocket, no Playwright):
just enough to open ComfyUI's frontend and evaluate JavaScript in it."""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from comfy_harness import free_port


def find_chromium() -> str | None:
    import os

    return (os.environ.get("CHROMIUM_PATH") or shutil.which("chromium")
            or shutil.which("chromium-browser") or shutil.which("google-chrome"))


class BrowserError(RuntimeError):
    """The page threw, or Chromium did not answer."""


class Browser:
    """One headless Chromium with one page; `evaluate` runs JS there (promises awaited)."""

    def __init__(self, chromium: str, width: int = 2400, height: int = 1100) -> None:
        self.profile = Path(tempfile.mkdtemp(prefix="saiten-chromium-"))
        self.port = free_port()
        self.proc = subprocess.Popen(
            [chromium, "--headless=new", "--no-sandbox", "--disable-gpu",
             "--no-first-run", f"--remote-debugging-port={self.port}",
             f"--user-data-dir={self.profile}", f"--window-size={width},{height}",
             "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        self.errors: list[str] = []  # uncaught exceptions on the page
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future] = {}
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, daemon=True).start()
        target = self._page_target()
        self._call(self._connect(target["webSocketDebuggerUrl"]))
        self.send("Runtime.enable")
        self.send("Page.enable")

    def _page_target(self, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/list",
                                            timeout=5) as r:
                    pages = [t for t in json.loads(r.read()) if t.get("type") == "page"]
                if pages:
                    return pages[0]
            except OSError:
                pass
            time.sleep(0.2)
        raise BrowserError("Chromium's DevTools endpoint did not answer")

    def _call(self, coro: Any, timeout: float = 120) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _connect(self, url: str) -> None:
        import aiohttp

        self._session = aiohttp.ClientSession()
        self._ws = await self._session.ws_connect(url, max_msg_size=0)
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        async for msg in self._ws:
            data = json.loads(msg.data)
            if "id" in data and data["id"] in self._pending:
                self._pending.pop(data["id"]).set_result(data)
            elif data.get("method") == "Runtime.exceptionThrown":
                d = data["params"]["exceptionDetails"]
                self.errors.append(d.get("exception", {}).get("description") or d.get("text"))

    async def _send(self, method: str, params: dict) -> dict:
        i = next(self._ids)
        fut = self._loop.create_future()
        self._pending[i] = fut
        await self._ws.send_str(json.dumps({"id": i, "method": method, "params": params}))
        return await fut

    def send(self, method: str, **params: Any) -> dict:
        """One DevTools command; raises BrowserError on a protocol error."""
        reply = self._call(self._send(method, params))
        if "error" in reply:
            raise BrowserError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def goto(self, url: str, timeout: float = 60) -> None:
        """Navigate to `url` and return once the new document is there: Page.navigate
        answers at once, and until then the old page (the same one, on a reload) is what
        any wait would see."""
        self.evaluate("window.saitenLeaving = true")
        self.send("Page.navigate", url=url)
        self.wait_for("!window.saitenLeaving", timeout)

    def reload(self, timeout: float = 60) -> None:
        """Reload the page as the user's F5 does (from the page itself) and return once the
        new document is there. A navigation the browser starts (`goto`) may put the new
        document in a new renderer process, whose first localStorage read can miss what the
        old page wrote a moment before; a reload stays in the same process."""
        self.evaluate("window.saitenLeaving = true; setTimeout(() => location.reload()); true")
        self.wait_for("!window.saitenLeaving", timeout)

    def evaluate(self, expression: str, timeout: float = 120) -> Any:
        """The JSON value of `expression` (a promise is awaited); page errors raise."""
        res = self._call(self._send("Runtime.evaluate", {
            "expression": expression, "awaitPromise": True, "returnByValue": True,
        }), timeout)
        result = res.get("result", {})
        if "exceptionDetails" in result:
            d = result["exceptionDetails"]
            raise BrowserError(d.get("exception", {}).get("description") or d.get("text"))
        return result.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout: float = 60) -> Any:
        """Poll `expression` until it is truthy; returns its value."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                value = self.evaluate(expression)
            except BrowserError:
                value = None
            if value:
                return value
            time.sleep(0.2)
        raise BrowserError(f"timed out waiting for: {expression}")

    def screenshot(self, path: str | Path) -> Path:
        import base64

        data = self.send("Page.captureScreenshot", format="png")["data"]
        Path(path).write_bytes(base64.b64decode(data))
        return Path(path)

    def close(self) -> None:
        async def shut() -> None:
            await self._ws.close()
            await self._session.close()

        try:
            self._call(shut(), 10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            shutil.rmtree(self.profile, ignore_errors=True)
