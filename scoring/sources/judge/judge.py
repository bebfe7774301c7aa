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

import json
import os
import re
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ...core.cards import AXES, ScoreCard
from ...core.errors import SourceError
from ...core.images import Image
from ...core.parse import Parsed, excerpt, parse_answer
from ...core.rubric import Rubric, tag_context
from ...remote import (
    DEFAULT_PRICES,
    Budget,
    CostLog,
    Prices,
    Remote,
    RemoteError,
    Streak,
    key_to_send,
)
from ..base import Result, ScoreContext, Source, log
from ..spec import Model, RunOptions, Spec
from .cache import Cache
from .select import prior_score, skipped

XAI_URL = "https://api.x.ai/v1"
DEFAULT_MODEL = "grok-4-1-fast-non-reasoning"
DEFAULT_TIMEOUT = 20.0
"""Seconds per attempt: a fast model answers in 2–5 s; a dead judge opens its circuit
breaker after 3 such attempts, and later images and prompts then cost nothing."""
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


@dataclass(frozen=True)
class JudgeOptions(RunOptions):
    """A judge call's options: sampling, the per-run budget, the cache bypass, G-Eval
    samples and the two-stage selection (`band` of prior scores and/or `top_k`)."""

    temperature: float = 0.2
    max_calls: int = 0
    max_usd: float = 0.0
    force: bool = False
    geval_samples: int = 0
    geval_temperature: float = 1.0
    band: tuple[float, float] | None = None
    top_k: int = 0
    max_tokens: int = 400


SPEC = Spec(
    "judge", "judge", AXES, 1.1, JudgeOptions,
    build={"base_url": XAI_URL, "model": DEFAULT_MODEL, "timeout": DEFAULT_TIMEOUT},
    models=(Model("grok", "grok", 1.1),),
    facts={"capabilities": CAPABILITIES, "prices": DEFAULT_PRICES},
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


class Judge(Source):
    """The text-only judge over any OpenAI-compatible endpoint (xAI by default).

    Build options: the endpoint, model, served folders (a key file there is refused),
    transport limits, cost log, cache and
    price table. Run options (`JudgeOptions`) arrive per call. It reads cards, not images:
    `judge(prior, ctx)` (or `score` with any placeholders, one per image)."""

    spec = SPEC

    def __init__(
        self, *, base_url: str = XAI_URL, model: str = DEFAULT_MODEL,
        forbidden_dirs: Iterable[str] = (), timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = 2, wall_time: float | None = None,
        cost_log: str | os.PathLike[str] | None = None,
        cache: str | os.PathLike[str] | None = None,
        prices: Prices | str | os.PathLike[str] | None = None,
        backoff: float = 0.5, **options: Any,
    ) -> None:
        known = SPEC.model(model)
        if not options.get("label") and known:
            options["label"] = known.label  # the name the default weights use (grok=1.1)
        super().__init__(**options)
        self.base_url, self.model = base_url.rstrip("/"), model
        self.forbidden_dirs = tuple(forbidden_dirs)
        self.timeout = float(timeout)
        self.max_retries, self.wall_time = int(max_retries), wall_time
        self.cost_path, self.cache = cost_log, Cache(cache)
        self.prices = prices if isinstance(prices, Prices) else (
            Prices.at(prices) if prices else Prices())
        self.backoff = backoff
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

    # -- scoring ---------------------------------------------------------------------
    def load(self) -> None:
        if self._key is None:
            hk = key_to_send(self.base_url, self.forbidden_dirs)
            self._key, self.key_note = hk.value, hk.why

    def unload(self) -> None:
        self._key = None

    def _score(self, images: list[Image], ctx: ScoreContext) -> Result:
        n, opts = len(images), ctx.options
        prior = [ctx.prior_cards(i) for i in range(n)]
        unjudged = skipped(prior, n, opts.band, int(opts.top_k))
        costs = CostLog(self.cost_path, [self._key])
        remote = Remote(self.base_url, api_key=self._key, timeout=self.timeout, name="judge",
                        max_retries=self.max_retries, wall_time=self.wall_time,
                        budget=Budget(opts.max_calls or None, opts.max_usd or None),
                        prices=self.prices, cost_log=costs, backoff=self.backoff,
                        drop=rejected_params(self.model), check=assert_text_only)
        prompts: list[str | None] = [None] * n
        streak = Streak("the server")

        def one(i: int, _: Image) -> ScoreCard:
            if i in unjudged:  # by design: the same inputs skip it again
                return self.abstain(unjudged[i], extras={"stable": True})
            msgs = self.messages(prior[i], ctx.rubric)
            if msgs is None:
                return self.abstain("nothing to judge: no prior card has a rating, tags or a "
                                    "comment (put a tagger or VLM before the judge)",
                                    extras={"stable": True})
            prompts[i] = self.prompt_text(msgs)
            skip = streak.skipped()
            if skip:
                return self.abstain(skip)
            try:
                return streak.run(lambda: self._judge(remote, costs, msgs, ctx))
            except RemoteError as e:
                why = remote.redact(e)
                log.warning("saiten: %s abstains on image %d: %s", self.label, i, why)
                return self.abstain(why)

        try:
            sheet = self.each(images, ctx, one)
        finally:
            remote.close()
        return Result(sheet, prompts=prompts, costs=costs,
                      describe="; ".join(x for x in (self.describe(), self.key_note,
                                                     self.cache.problem) if x),
                      cost=f"{opts.label}: {costs.summary()}")

    def _judge(self, remote: Remote, costs: CostLog, msgs: list[dict[str, str]],
               ctx: ScoreContext) -> ScoreCard:
        rubric, opts = ctx.rubric, ctx.options
        samples = max(1, int(opts.geval_samples))
        temperature = opts.geval_temperature if samples > 1 else opts.temperature
        answers, parsed, hits = [], [], 0
        for s in range(samples):
            text, p, hit = self._ask(remote, costs, msgs, ctx, temperature, s)
            hits += hit
            answers.append((text, p))
            if p.ok:
                parsed.append(p)
        extras: dict[str, Any] = {"model": self.model, "cache_hits": hits, "samples": samples}
        text, last = answers[-1]
        raw = excerpt(remote.redact(text))  # a card keeps the start of the answer, no more
        if not parsed:
            return self.abstain(f"{last.why_none()}: {excerpt(raw, 80)!r}", raw=raw,
                                extras={**extras, "problems": last.problems[:10]})
        axes = {a: statistics.fmean(p.axes[a] for p in parsed if a in p.axes)
                for a in rubric.axes if any(a in p.axes for p in parsed)}
        confidence = None
        if len(parsed) > 1:
            spreads = [statistics.pstdev([p.axes[a] for p in parsed if a in p.axes])
                       for a in axes]
            confidence = max(0.0, 1.0 - statistics.fmean(spreads) / 20.0)
            extras["spread"] = max(spreads)
        comment = next((p.comment for p in parsed if p.comment), "")
        invalid = {a: why for p in parsed for a, why in p.invalid.items() if a not in axes}
        if invalid:  # an axis no answer gave a valid value for: it abstains, saying why
            extras["invalid"] = invalid
        return self.card(axes=axes, comment=comment, raw=raw, confidence=confidence,
                         extras=extras)

    def _ask(self, remote: Remote, costs: CostLog, msgs: list[dict[str, str]],
             ctx: ScoreContext, temperature: float, sample: int) -> tuple[str, Parsed, bool]:
        """One answer and what it says: from the cache when allowed and present, else one
        bounded call (read within its time bound, the answer's parsing included)."""
        rubric, opts = ctx.rubric, ctx.options
        axes = tuple(rubric.axes)
        key = Cache.key(model=self.model, system=msgs[0]["content"], user=msgs[1]["content"],
                        temperature=temperature, sample=sample)
        if not opts.force:
            cached = self.cache.get(key)
            if cached is not None:
                costs.add(model=self.model, base_url=self.base_url, prompt_tokens=0,
                               completion_tokens=0, usd=0.0, latency=0.0, cache_hit=True)
                return cached, parse_answer(cached, axes), True
        params = {"model": self.model, "messages": msgs, "temperature": temperature,
                  "max_tokens": int(opts.max_tokens)}
        reply = remote.ask(schema=rubric.json_schema(), cancel=ctx.check,
                           parse=lambda text: parse_answer(text, axes), **params)
        if reply.parsed.ok:
            self.cache.put(key, self.model, reply.content, reply.usage)
        return reply.content, reply.parsed, False


__all__ = ["DEFAULT_MODEL", "DEFAULT_TIMEOUT", "SPEC", "XAI_URL", "Judge", "JudgeOptions",
           "PrivacyError", "assert_text_only", "prior_score", "skipped"]
