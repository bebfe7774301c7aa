"""Any OpenAI-compatible VLM server as a scorer: Ollama, LM Studio, llama-server, vLLM.

The image goes as a base64 PNG data URL in an `image_url` content part (the server is the
user's own); answers are greedy (temperature 0) with JSON forced through `response_format`
where the server takes it. The logprob method reads `top_logprobs` of a one-token answer.
The key is the one bound to the server's host (`scoring.remote.keys`; none for this machine);
redirects are not followed, so the image goes nowhere but `base_url`. Calls are bounded per
attempt (`timeout`), per batch (after `STOP_AFTER` images in a row fail the rest are skipped)
and across prompts (the server's circuit breaker).
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from typing import Any

from ..cards import ScoreCard
from ..errors import SourceError
from ..images import Image, to_pil
from ..remote import KeyConfigError, Remote, RemoteError, key_for
from .base import ScoreContext
from .vlm import VLMSource, model_label, vlm_spec

STOP_AFTER = 3
"""Images in a row failing at the server before the rest of the batch is skipped."""


def data_url(image: Image) -> str:
    """The image as a `data:image/png;base64,…` URL."""
    buf = io.BytesIO()
    to_pil(image).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


class HttpVLM(VLMSource):
    """A VLM behind an OpenAI-compatible `/v1/chat/completions` endpoint."""

    spec = vlm_spec("vlm-http", 1.0, {"base_url": "http://127.0.0.1:1234/v1", "model": "",
                                      "timeout": 60.0})

    def __init__(self, base_url: str, model: str, *, forbidden_dirs: Sequence[str] = (),
                 timeout: float = 60.0, max_retries: int = 1,
                 top_logprobs: int = 20, extra: dict[str, Any] | None = None,
                 **base_kwargs: Any) -> None:
        base_kwargs.setdefault("label", model_label(model) if model else "")
        super().__init__(**base_kwargs)
        if not base_url or not model:
            raise SourceError("vlm-http needs a base_url (e.g. http://127.0.0.1:11434/v1) "
                              "and a model name")
        self.base_url, self.model = base_url.rstrip("/"), model
        self.forbidden_dirs = tuple(forbidden_dirs)
        self.timeout, self.max_retries = float(timeout), int(max_retries)
        self.top_logprobs = int(top_logprobs)
        self.extra = dict(extra or {})
        self.remote: Remote | None = None

    @property
    def loaded(self) -> bool:
        return self.remote is not None

    def load(self) -> None:
        if self.remote is None:
            try:
                hk = key_for(self.base_url, self.forbidden_dirs)
            except KeyConfigError as e:
                raise SourceError(str(e)) from None
            if hk.value is None and hk.binding is not None:
                raise SourceError(hk.why)  # the host has a key, but it is not set
            self.remote = Remote(self.base_url, api_key=hk.value, timeout=self.timeout,
                                 max_retries=self.max_retries, name="VLM server")

    def unload(self) -> None:
        if self.remote is not None:
            self.remote.close()
            self.remote = None

    def describe(self) -> str:
        return f"{self.label}: {self.model} @ {self.base_url}"

    def _score(self, images: list[Image], ctx: ScoreContext) -> list[list[ScoreCard]]:
        self._remote().cancel = ctx.check  # a cancel also ends a request in flight
        one = self._generate if ctx.options.method == "generate" else self._logprob
        down: list[str] = []  # images in a row that failed at the server

        def guarded(i: int, img: Image) -> ScoreCard | list[ScoreCard]:
            if len(down) >= STOP_AFTER:
                return self.abstain(f"skipped: {self.base_url} failed {len(down)} images in "
                                    f"a row ({down[-1]})")
            try:
                got = one(img, ctx, i)
            except RemoteError as e:
                down.append(str(e))
                raise
            down.clear()
            return got

        return self.each(images, ctx, guarded)

    def _remote(self) -> Remote:
        self.load()
        assert self.remote is not None
        return self.remote

    def _messages(self, url: str, system: str, user: str) -> list[dict[str, Any]]:
        return [{"role": "system", "content": system},
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                             {"type": "text", "text": user}]}]

    def chat(self, image: Image, system: str, user: str, *, schema: dict | None,
             max_tokens: int) -> str:
        reply = self._remote().ask(
            schema=schema, model=self.model, temperature=0.0, max_tokens=max_tokens,
            messages=self._messages(data_url(image), system, user), **self.extra)
        return reply.content

    def level_probs(self, image: Image, system: str, prefixes: list[str],
                    levels: Sequence[str]) -> list[dict[str, float]]:
        """One max_tokens=1 completion per prefix (image first, so servers with prefix
        caching encode it once), its `top_logprobs` renormalised over the level tokens."""
        url, remote, out = data_url(image), self._remote(), []
        for prefix in prefixes:
            try:
                reply = remote.chat(model=self.model, temperature=0.0, max_tokens=1,
                                    logprobs=True, top_logprobs=self.top_logprobs,
                                    messages=self._messages(url, system, prefix), **self.extra)
            except RemoteError as e:
                if getattr(e, "param", None) in ("logprobs", "top_logprobs"):
                    raise SourceError(f"{self.base_url} does not return logprobs ({e}); "
                                      "use the generate method") from None
                raise
            out.append(self._levels(reply.choice, levels))
        return out

    def _levels(self, choice: dict[str, Any], levels: Sequence[str]) -> dict[str, float]:
        content = ((choice.get("logprobs") or {}).get("content") or [])
        if not content:
            raise SourceError(f"{self.base_url} returned no logprobs for {self.model}; the "
                              "server does not support them: use the generate method")
        top = content[0].get("top_logprobs") or [content[0]]
        probs = dict.fromkeys(levels, 0.0)
        for t in top:
            tok = str(t.get("token", "")).strip()
            if tok in probs and t.get("logprob") is not None:
                probs[tok] += math.exp(float(t["logprob"]))
        total = sum(probs.values())
        if total <= 0:
            seen = ", ".join(repr(str(t.get("token", ""))) for t in top[:8])
            raise SourceError(f"no level token {levels[0]}–{levels[-1]} among the top "
                              f"{len(top)} next tokens (got {seen})")
        return {k: v / total for k, v in probs.items()}
