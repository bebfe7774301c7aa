"""A text-only remote judge (Grok by default): it reads what the other sources said about an
image — tagger rating and tags, VLM comments — and scores it on the same rubric.

No image data ever goes out: the request is checked structurally before sending. Calls are
bounded (`scoring.remote`), costed (a JSONL record each), cached (an identical prompt is
answered from a sqlite cache with no call; `force` bypasses), and limited by a per-run
budget. Optional: G-Eval style sampling (n answers at a temperature, averaged, spread →
confidence) and a two-stage selection (judge only images whose prior score is in a band or
the top-K; the others get an abstention, which aggregation treats as absent, never 0).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import statistics
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

from ..cards import AXES, ScoreCard
from ..hostkeys import KeyConfigError, key_for
from ..images import Image
from ..parse import is_refusal, parse_answer
from ..remote import (
    Budget,
    BudgetExhausted,
    CostLog,
    Prices,
    Remote,
    RemoteError,
    is_local,
)
from ..rubric import Rubric, tag_context
from .base import ScoreContext, Source, SourceError, log

XAI_URL = "https://api.x.ai/v1"
DEFAULT_MODEL = "grok-4-1-fast-non-reasoning"
DEFAULT_TIMEOUT = 20.0
"""Seconds per attempt: a fast model answers in 2–5 s; a dead judge opens its circuit
breaker after 3 such attempts, and later images and prompts then cost nothing."""
STOP_AFTER = 3
"""Images in a row failing at the server before the rest of the batch is skipped."""

JUDGE_NOTE = (
    "You do not see the image. You receive what other scorers said about it: a tagger's "
    "rating and tags, detectors' findings and vision models' comments. Judge the image on "
    "the rubric from these descriptions alone, weighing agreement between them."
)

CAPABILITIES: tuple[tuple[str, frozenset[str]], ...] = (
    # (model-name pattern, request parameters that model rejects)
    (r"^(o\d|gpt-5)", frozenset({"temperature", "top_p", "presence_penalty", "max_tokens",
                                 "frequency_penalty", "logprobs", "top_logprobs"})),
    (r"^grok-(3-mini|4)(?!.*non-reasoning)", frozenset({"presence_penalty",
                                                         "frequency_penalty", "stop",
                                                         "reasoning_effort"})),
    (r"^grok-4\.20", frozenset({"reasoning_effort"})),
)

_BASE64_RUN = re.compile(r"[A-Za-z0-9+/=]{512,}")


class PrivacyError(SourceError):
    """A judge request would have carried image data; it is never sent."""


def rejected_params(model: str) -> set[str]:
    """The parameters the capability table says `model` rejects."""
    name = model.lower().rsplit("/", 1)[-1]
    return {p for pattern, params in CAPABILITIES if re.search(pattern, name) for p in params}


def assert_text_only(body: Any) -> None:
    """Raise PrivacyError unless every message content is plain text with no image data."""
    for m in body.get("messages", []):
        content = m.get("content")
        if not isinstance(content, str):
            raise PrivacyError("judge request refused: a message has non-text parts")
        low = content.lower()
        if "data:image" in low or ";base64," in low or _BASE64_RUN.search(content):
            raise PrivacyError("judge request refused: the text carries image/base64 data")
    blob = json.dumps(body)
    if "image_url" in blob or "input_image" in blob:
        raise PrivacyError("judge request refused: it names an image part")


def prior_score(cards: Iterable[ScoreCard]) -> float | None:
    """The prior sources' weighted mean `overall` (minus check penalties), or None."""
    num = den = penalty = 0.0
    for c in cards:
        if not c.ok:
            continue
        penalty += c.penalty
        v = c.axes.get("overall")
        if v is not None and c.kind != "check":
            num, den = num + c.weight * v, den + c.weight
    return None if den == 0 else max(0.0, num / den - penalty)


class Cache:
    """A persistent answer cache: sha256(model, system, user, temperature, sample) → text."""

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self.path = Path(path) if path else None
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                with self._db() as db:
                    db.execute("CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, "
                               "model TEXT, answer TEXT, usage TEXT, created REAL)")
            except sqlite3.Error as e:
                log.warning("saiten: judge cache %s unusable (%s); not caching", self.path, e)
                self.path = None

    def _db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=10)

    @staticmethod
    def key(**parts: Any) -> str:
        return hashlib.sha256(json.dumps(parts, sort_keys=True, ensure_ascii=False)
                              .encode()).hexdigest()

    def get(self, key: str) -> str | None:
        if not self.path:
            return None
        try:
            with self._db() as db:
                row = db.execute("SELECT answer FROM answers WHERE key = ?", (key,)).fetchone()
        except sqlite3.Error as e:  # a cache is an optimisation: never fail a run for it
            log.warning("saiten: judge cache %s unreadable (%s)", self.path, e)
            return None
        return row[0] if row else None

    def put(self, key: str, model: str, answer: str, usage: dict[str, Any]) -> None:
        if not self.path:
            return
        try:
            with self._db() as db:
                db.execute("INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?)",
                           (key, model, answer, json.dumps(usage), time.time()))
        except sqlite3.Error as e:
            log.warning("saiten: judge cache %s not written (%s)", self.path, e)


class Judge(Source):
    """The text-only judge over any OpenAI-compatible endpoint (xAI by default)."""

    name: ClassVar[str] = "judge"
    kind: ClassVar[str] = "judge"
    provides: ClassVar[tuple[str, ...]] = AXES
    default_weight: ClassVar[float] = 1.1

    def __init__(
        self, *, base_url: str = XAI_URL, model: str = DEFAULT_MODEL,
        forbidden_dirs: Iterable[str] = (), temperature: float = 0.2,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = 2, wall_time: float | None = None, max_calls: int = 0,
        max_usd: float = 0.0, cost_log: str | os.PathLike[str] | None = None,
        cache: str | os.PathLike[str] | None = None,
        prices: Prices | str | os.PathLike[str] | None = None, force: bool = False,
        geval_samples: int = 0, geval_temperature: float = 1.0,
        band: tuple[float, float] | None = None, top_k: int = 0, max_tokens: int = 400,
        backoff: float = 0.5, **kw: Any,
    ) -> None:
        if not kw.get("label") and "grok" in model.lower():
            kw["label"] = "grok"  # the name the ensemble's weights use (grok=1.1)
        super().__init__(**kw)
        self.base_url, self.model = base_url.rstrip("/"), model
        self.forbidden_dirs = tuple(forbidden_dirs)
        self.temperature, self.timeout = float(temperature), float(timeout)
        self.max_retries, self.wall_time = int(max_retries), wall_time
        self.max_calls, self.max_usd = int(max_calls or 0), float(max_usd or 0.0)
        self.cost_path, self.cache = cost_log, Cache(cache)
        self.prices = prices if isinstance(prices, Prices) else (
            Prices.at(prices) if prices else Prices())
        self.force = bool(force)
        self.geval_samples, self.geval_temperature = int(geval_samples), geval_temperature
        self.band, self.top_k = band, int(top_k)
        self.max_tokens, self.backoff = int(max_tokens), backoff
        self.costs = CostLog(None)
        self.prompts: list[str | None] = []
        """The exact text sent (or that would be sent) per image of the last run."""
        self._key: str | None = None
        self.key_note = ""
        """Where the key came from (or why none is sent), for the node."""

    def describe(self) -> str:
        return f"{self.label}: {self.model} @ {self.base_url} (text only)"

    # -- prompts ---------------------------------------------------------------------
    def messages(self, cards: list[ScoreCard], rubric: Rubric) -> list[dict[str, str]] | None:
        """The chat messages for one image's prior cards, or None when they say nothing."""
        context = tag_context(cards)
        if not context.strip():
            return None
        user = (f"What the other scorers reported about the image:\n{context}\n\n"
                "Score the image on the rubric from these reports.")
        return [{"role": "system", "content": f"{rubric.system_prompt()}\n\n{JUDGE_NOTE}"},
                {"role": "user", "content": user}]

    @staticmethod
    def prompt_text(messages: list[dict[str, str]]) -> str:
        return "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in messages)

    def skipped(self, prior: list[list[ScoreCard]], n: int) -> dict[int, str]:
        """The images the two-stage option leaves unjudged, with the reason for each.

        Judged: prior score within `band`, or among the `top_k` highest, or unknown."""
        if self.band is None and not self.top_k:
            return {}
        scores = {i: prior_score(prior[i] if i < len(prior) else []) for i in range(n)}
        chosen = {i for i, s in scores.items() if s is None}  # nothing known: judge it
        if self.band is not None:
            lo, hi = self.band
            chosen |= {i for i, s in scores.items() if s is not None and lo <= s <= hi}
        if self.top_k:
            ranked = sorted((i for i, s in scores.items() if s is not None),
                            key=lambda i: -scores[i])  # type: ignore[operator]
            chosen |= set(ranked[:self.top_k])
        what = " and ".join(w for w, on in (("band", self.band is not None),
                                            ("top-K", bool(self.top_k))) if on)
        return {i: f"not judged (outside {what}: prior score {scores[i]:.0f})"
                        for i in range(n) if i not in chosen}

    # -- scoring ---------------------------------------------------------------------
    def load(self) -> None:
        if self._key is None:
            try:
                hk = key_for(self.base_url, self.forbidden_dirs)
            except KeyConfigError as e:
                raise SourceError(str(e)) from None
            self._key, self.key_note = hk.value, hk.why
            if hk.value is None and hk.binding is not None and not is_local(self.base_url):
                raise SourceError(hk.why)  # the host has a key, but it is not set

    def unload(self) -> None:
        self._key = None

    def _score(self, images: list[Image], ctx: ScoreContext) -> list[list[ScoreCard]]:
        n = len(images)
        prior = [ctx.prior_cards(i) for i in range(n)]
        skipped = self.skipped(prior, n)
        self.costs = CostLog(self.cost_path, [self._key])
        remote = Remote(self.base_url, api_key=self._key, timeout=self.timeout, name="judge",
                        max_retries=self.max_retries, wall_time=self.wall_time,
                        budget=Budget(self.max_calls or None, self.max_usd or None),
                        prices=self.prices, cost_log=self.costs, backoff=self.backoff,
                        drop=rejected_params(self.model), check=assert_text_only,
                        cancel=ctx.check)
        self.prompts = [None] * n
        down: list[str] = []  # consecutive failures reaching the server

        def one(i: int, _: Image) -> ScoreCard:
            if i in skipped:  # by design: the same inputs skip it again
                return self.abstain(skipped[i], extras={"stable": True})
            msgs = self.messages(prior[i], ctx.rubric)
            if msgs is None:
                return self.abstain("nothing to judge: no prior card has a rating, tags or a "
                                    "comment (put a tagger or VLM before the judge)",
                                    extras={"stable": True})
            self.prompts[i] = self.prompt_text(msgs)
            if len(down) >= STOP_AFTER:
                return self.abstain(f"skipped: the server failed {len(down)} images in a row "
                                    f"({down[-1]})")
            try:
                card = self._judge(remote, msgs, ctx.rubric)
            except RemoteError as e:
                if not isinstance(e, BudgetExhausted):
                    down.append(str(e))
                why = remote.redact(e)
                log.warning("saiten: %s abstains on image %d: %s", self.label, i, why)
                return self.abstain(why)
            down.clear()
            return card

        try:
            return self.each(images, ctx, one)
        finally:
            remote.close()

    def _judge(self, remote: Remote, msgs: list[dict[str, str]], rubric: Rubric) -> ScoreCard:
        samples = max(1, self.geval_samples)
        temperature = self.geval_temperature if self.geval_samples > 1 else self.temperature
        answers, parsed, hits = [], [], 0
        for s in range(samples):
            text, hit = self._ask(remote, msgs, rubric, temperature, s)
            hits += hit
            answers.append(text)
            p = parse_answer(text, tuple(rubric.axes))
            if p.ok:
                parsed.append(p)
        extras: dict[str, Any] = {"model": self.model, "cache_hits": hits, "samples": samples}
        raw = remote.redact(answers[-1])
        if not parsed:
            why = "refused" if is_refusal(answers[-1]) else "no valid score JSON"
            return self.abstain(f"{why}: {raw.strip()[:80]!r}", raw=raw, extras=extras)
        axes = {a: statistics.fmean(p.axes[a] for p in parsed if a in p.axes)
                for a in rubric.axes if any(a in p.axes for p in parsed)}
        confidence = None
        if len(parsed) > 1:
            spreads = [statistics.pstdev([p.axes[a] for p in parsed if a in p.axes])
                       for a in axes]
            confidence = max(0.0, 1.0 - statistics.fmean(spreads) / 20.0)
            extras["spread"] = max(spreads)
        comment = next((p.comment for p in parsed if p.comment), "")
        return self.card(axes=axes, comment=comment, raw=raw, confidence=confidence,
                         extras=extras)

    def _ask(self, remote: Remote, msgs: list[dict[str, str]], rubric: Rubric,
             temperature: float, sample: int) -> tuple[str, bool]:
        """One answer: from the cache when allowed and present, else one bounded call."""
        key = Cache.key(model=self.model, system=msgs[0]["content"], user=msgs[1]["content"],
                        temperature=temperature, sample=sample)
        if not self.force:
            cached = self.cache.get(key)
            if cached is not None:
                self.costs.add(model=self.model, base_url=self.base_url, prompt_tokens=0,
                               completion_tokens=0, usd=0.0, latency=0.0, cache_hit=True)
                return cached, True
        params = {"model": self.model, "messages": msgs, "temperature": temperature,
                  "max_tokens": self.max_tokens}
        reply = remote.ask(schema=rubric.json_schema(), **params)
        if parse_answer(reply.content, tuple(rubric.axes)).ok:
            self.cache.put(key, self.model, reply.content, reply.usage)
        return reply.content, False

    def summary(self) -> str:
        """The last run's cost line for the node."""
        return f"{self.label}: {self.costs.summary()}"


__all__ = ["DEFAULT_MODEL", "XAI_URL", "Judge", "PrivacyError", "assert_text_only",
           "prior_score"]
