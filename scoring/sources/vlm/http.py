"""Any OpenAI-compatible VLM server as a scorer: Ollama, LM Studio, llama-server, vLLM.

The image goes as a base64 PNG data URL in an `image_url` content part (the server is the
user's own); answers are greedy (temperature 0) with JSON forced through `response_format`
where the server takes it. The logprob method asks every axis, and the comment, in one
request (the image is uploaded once per image) and reads the `top_logprobs` of each digit.
The key is the one bound to the server's host (`scoring.remote.keys`; none for this machine);
redirects are not followed, so the image goes nowhere but `base_url`. Calls are bounded per
attempt (`timeout`), per batch (`remote.Streak`: after a few images in a row fail, the rest
are skipped) and across prompts (the server's circuit breaker). A cancel ends a request in
flight: the call's cancel check travels in a context variable, never on the shared handle.
"""

from __future__ import annotations

import base64
import io
import math
import os
import re
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from typing import Any

from ...core.cards import ScoreCard
from ...core.errors import SourceError
from ...core.images import Image, to_pil
from ...core.parse import extract_json
from ...core.rubric import LEVELS
from ...remote import Remote, RemoteError, Streak, key_to_send
from ..base import ScoreContext
from .base import Ask, VLMSource, model_label, vlm_spec


def questionnaire(prefixes: list[str], *, comment: bool = False) -> tuple[str, list[str]]:
    """One request's text for several logprob questions, and its JSON keys q1…qN: the
    lines every prefix shares, then each question (its answer cue, a last line such as
    "Rating:", left out); with `comment`, the answer also carries the rubric's comment."""
    shared = os.path.commonprefix(prefixes)  # noqa: RUF071
    shared = shared[:shared.rfind("\n") + 1]
    keys = [f"q{k}" for k in range(1, len(prefixes) + 1)]
    lines = []
    for key, prefix in zip(keys, prefixes, strict=True):
        text = prefix[len(shared):].strip()
        head, _, cue = text.rpartition("\n")
        lines.append(f"{key}: {head.strip() if head and cue.rstrip().endswith(':') else text}")
    ask = ("Answer every question with a single digit, as one JSON object with the keys "
           f"{', '.join(keys)}" + (" and comment (as described above)." if comment else "."))
    return "\n".join([shared.strip(), ask, *lines]).strip(), keys


_KEY_BEFORE = re.compile(r'"(\w+)"\s*:\s*$')


def digit_tokens(content: list[dict[str, Any]], levels: Sequence[str]
                 ) -> dict[str, dict[str, Any]]:
    """{JSON key: the logprobs entry of the level digit that answers it} in a JSON answer's
    per-token logprobs (a digit token right after `"key":`); the first MAX_TOKENS tokens
    are read (an answer of digits is a few dozen)."""
    text, out = "", {}
    for token in content[:MAX_TOKENS]:
        if not isinstance(token, dict):
            continue
        piece = str(token.get("token", ""))[:64]
        key = _KEY_BEFORE.search(text)
        if key and piece.strip() in levels and key.group(1) not in out:
            out[key.group(1)] = token
        text = (text + piece)[-128:]  # what a key and its colon need, never the whole answer
    return out


MAX_TOKENS = 4096

_CANCEL: ContextVar[Callable[[], None]] = ContextVar("saiten_vlm_http_cancel",
                                                      default=lambda: None)
"""This call's cancel check (`ScoreContext.check`), for the requests made within it."""


MAX_TOP = 64
"""Alternatives of one token read (a server may send any number)."""


def data_url(image: Image) -> str:
    """The image as a `data:image/png;base64,…` URL."""
    buf = io.BytesIO()
    to_pil(image).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


class HttpVLM(VLMSource):
    """A VLM behind an OpenAI-compatible `/v1/chat/completions` endpoint."""

    spec = vlm_spec("vlm-http", 1.0, {"base_url": "http://127.0.0.1:1234/v1", "model": "",
                                      "timeout": 60.0, "max_retries": 1, "top_logprobs": 20})

    def __init__(self, base_url: str, model: str, *, forbidden_dirs: Sequence[str] = (),
                 timeout: float = spec.build["timeout"],
                 max_retries: int = spec.build["max_retries"],
                 top_logprobs: int = spec.build["top_logprobs"],
                 extra: dict[str, Any] | None = None, **base_kwargs: Any) -> None:
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
            hk = key_to_send(self.base_url, self.forbidden_dirs)
            self.remote = Remote(self.base_url, api_key=hk.value, timeout=self.timeout,
                                 max_retries=self.max_retries, name="VLM server")

    def unload(self) -> None:
        if self.remote is not None:
            self.remote.close()
            self.remote = None

    def describe(self) -> str:
        return f"{self.label}: {self.model} @ {self.base_url}"

    def _score(self, images: list[Image], ctx: ScoreContext) -> list[list[ScoreCard]]:
        one = self._generate if ctx.options.method == "generate" else self._logprob
        streak = Streak(self.base_url)

        def guarded(i: int, img: Image) -> ScoreCard | list[ScoreCard]:
            why = streak.skipped()
            return self.abstain(why) if why else streak.run(lambda: one(img, ctx, i))

        token = _CANCEL.set(ctx.check)  # a cancel also ends a request in flight
        try:
            return self.each(images, ctx, guarded)
        finally:
            _CANCEL.reset(token)

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
        return self._chat(data_url(image), system, user, schema=schema, max_tokens=max_tokens)

    def _chat(self, url: str, system: str, user: str, *, schema: dict | None,
              max_tokens: int) -> str:
        reply = self._remote().ask(
            schema=schema, cancel=_CANCEL.get(), model=self.model, temperature=0.0,
            max_tokens=max_tokens, messages=self._messages(url, system, user), **self.extra)
        return reply.content

    def level_probs(self, image: Image, system: str, prefixes: list[str],
                    levels: Sequence[str]) -> list[dict[str, float]]:
        return self._rate(data_url(image), system, prefixes, levels, None)[0]

    def levels_and_comment(self, image: Image, system: str, prefixes: list[str],
                           ask: Ask | None, ctx: ScoreContext
                           ) -> tuple[list[dict[str, float]], str]:
        """Every question, and the comment, in one request: the image is sent once."""
        ctx.check()
        url = data_url(image)
        dists, raw = self._rate(url, system, prefixes, LEVELS, ask)
        if ask is not None and not raw:  # the answer had no comment: ask for it alone
            ctx.check()
            raw = self._chat(url, system, ask.user, schema=ask.schema, max_tokens=ask.max_tokens)
        return dists, raw

    def _rate(self, url: str, system: str, prefixes: list[str], levels: Sequence[str],
              ask: Ask | None) -> tuple[list[dict[str, float]], str]:
        """(level distributions, the raw answer when it holds the comment): one request, a
        JSON answer `{"q1": digit, …, "comment": …}` forced by a schema, each digit's
        `top_logprobs` renormalised over the level tokens. A question the answer lacks (a
        server that does not force JSON, or gave no logprobs) is asked alone: a
        max_tokens=1 completion after its prefix."""
        found, raw = ({}, "")
        if len(prefixes) > 1 or ask is not None:
            found, raw = self._levels_at_once(url, system, prefixes, levels, ask)
        dists = [found.get(k) or self._levels(self._ask_alone(url, system, prefix).choice,
                                              levels)
                 for k, prefix in enumerate(prefixes)]
        return dists, raw

    def _ask_alone(self, url: str, system: str, prefix: str) -> Any:
        try:
            return self._remote().chat(
                cancel=_CANCEL.get(), model=self.model, temperature=0.0, max_tokens=1,
                logprobs=True, top_logprobs=self.top_logprobs,
                messages=self._messages(url, system, prefix),
                **self.extra)
        except RemoteError as e:
            if getattr(e, "param", None) in ("logprobs", "top_logprobs"):
                raise SourceError(f"{self.base_url} does not return logprobs ({e}); "
                                  "use the generate method") from None
            raise

    def _levels_at_once(self, url: str, system: str, prefixes: list[str],
                        levels: Sequence[str], ask: Ask | None
                        ) -> tuple[dict[int, dict[str, float]], str]:
        """({question index: level distribution} for the questions found in one answer,
        the answer when it holds a comment)."""
        comment = ((ask.schema or {}).get("properties") or {}).get("comment") if ask else None
        user, keys = questionnaire(prefixes, comment=comment is not None)
        props: dict[str, Any] = {k: {"type": "integer", "enum": [int(lv) for lv in levels]}
                                 for k in keys}
        if comment is not None:
            props["comment"] = comment
        budget = 8 * len(keys) + 16 + (ask.max_tokens if comment is not None and ask else 0)
        reply = self._remote().ask(
            schema={"type": "object", "required": list(props), "properties": props},
            cancel=_CANCEL.get(), model=self.model, temperature=0.0, max_tokens=budget,
            logprobs=True,
            top_logprobs=self.top_logprobs, messages=self._messages(url, system, user),
            **self.extra)
        content = (reply.choice.get("logprobs") or {}).get("content") or []
        out = {}
        for key, token in digit_tokens(content, levels).items():
            try:
                out[keys.index(key)] = self._levels({"logprobs": {"content": [token]}}, levels)
            except (ValueError, SourceError):
                continue  # not one of ours, or no level among its top tokens: ask it alone
        has_comment = "comment" in (extract_json(reply.content) or {})
        return out, reply.content if comment is not None and has_comment else ""

    def _levels(self, choice: dict[str, Any], levels: Sequence[str]) -> dict[str, float]:
        content = ((choice.get("logprobs") or {}).get("content") or [])
        if not content:
            raise SourceError(f"{self.base_url} returned no logprobs for {self.model}; the "
                              "server does not support them: use the generate method")
        top = content[0].get("top_logprobs") or [content[0]]
        probs = dict.fromkeys(levels, 0.0)
        for t in top[:MAX_TOP]:
            tok = str(t.get("token", "")).strip()
            lp = t.get("logprob")
            if tok in probs and isinstance(lp, (int, float)) and not isinstance(lp, bool) \
                    and -1e4 <= lp <= 0:  # a log-probability: anything else is no vote
                probs[tok] += math.exp(lp)
        total = sum(probs.values())
        if total <= 0:
            seen = ", ".join(repr(str(t.get("token", ""))) for t in top[:8])
            raise SourceError(f"no level token {levels[0]}–{levels[-1]} among the top "
                              f"{len(top)} next tokens (got {seen})")
        return {k: v / total for k, v in probs.items()}
