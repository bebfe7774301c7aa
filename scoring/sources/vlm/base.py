"""What every VLM backend shares: the rubric prompts, the two scoring methods, refusals.

A backend (transformers, llama.cpp, OpenAI-compatible HTTP) implements two calls on one
image — `chat` (greedy generation, JSON forced where it can) and `level_probs` (next-token
probabilities of the level digits after an answer prefix) — plus load/unload. This class
turns them into score cards:

- **generate**: ask for the rubric JSON; a refusal or an answer with no scores is retried
  with reworded prompts (`max_attempts` in all), then the source abstains for that image.
- **logprob** (Q-Align / G-Eval): per axis, the probability-weighted mean level 1–9 →
  0–100; the spread of that distribution → the card's confidence. No sampling, no parsing,
  no refusals. An optional short generation supplies the comment.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from ...core.cards import AXES, ScoreCard
from ...core.errors import SourceError
from ...core.images import Image
from ...core.parse import excerpt, parse_answer
from ...core.rubric import LEVELS, level_to_score, tag_context
from ..base import ScoreContext, Source
from ..spec import Model, RunOptions, Spec

METHODS = ("generate", "logprob")

_MAX_LEVEL_STD = 4.0  # the widest spread of a distribution over levels 1–9

QWEN_GGUF = "thesby_Qwen2.5-VL-7B-NSFW-Caption-V3"
TRANSFORMERS_FILES = ("*.json", "*.safetensors", "*.jinja", "*.txt", "*.model", "*.tiktoken")
"""What a transformers model folder needs of its repository (no README, images, other
formats)."""

MODELS = (
    Model("joycaption", "joycaption", 0.9),
    Model("toriigate", "toriigate", 0.9),
    Model("qwen", "qwen-gguf", 1.0, gguf=True),
    Model("thesby_qwen2.5-vl", "qwen-gguf", 1.0, gguf=True,
          repo=f"bartowski/{QWEN_GGUF}-GGUF", folder="qwen2.5-vl-nsfw",
          files=(f"{QWEN_GGUF}-Q4_K_M.gguf", f"mmproj-{QWEN_GGUF}-f16.gguf"),
          size=6_030_000_000, vram="≈6 GB (8 GB: partial offload)",
          licence="apache-2.0 (Qwen2.5-VL)", note="Q4_K_M with its paired mmproj; llama.cpp"),
    Model("joycaption-beta-one", "joycaption", 0.9,
          repo="John6666/llama-joycaption-beta-one-hf-llava-nf4",
          folder="llama-joycaption-beta-one-hf-llava-nf4", patterns=TRANSFORMERS_FILES,
          size=6_000_000_000, vram="≈7 GB (nf4)", licence="llama3.1",
          note="nf4: needs bitsandbytes"),
    Model("toriigate-v0.4-2b", "toriigate", 0.9, repo="Minthy/ToriiGate-v0.4-2B",
          folder="ToriiGate-v0.4-2B", patterns=TRANSFORMERS_FILES, size=4_400_000_000,
          vram="≈6 GB (bf16)", licence="apache-2.0"),
    Model("toriigate-v0.4-7b", "toriigate", 0.9, repo="Minthy/ToriiGate-v0.4-7B",
          folder="ToriiGate-v0.4-7B", patterns=TRANSFORMERS_FILES, size=16_600_000_000,
          vram="≈18 GB (bf16)", licence="apache-2.0"),
)
"""The VLMs the catalogue knows by name, whichever runtime runs them (SPEC's weights), and
the ones it can fetch (sizes as published, approximate)."""


@dataclass(frozen=True)
class VLMOptions(RunOptions):
    """A VLM call's options: the scoring method, whether the taggers' tags go into the
    prompt, whether logprob also writes a comment, retries and the answer length."""

    method: str = "logprob"
    use_tags: bool = True
    comment: bool = True
    max_attempts: int = 3
    max_tokens: int = 320

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise SourceError(f"unknown scoring method {self.method!r}; use one of {METHODS}")
        object.__setattr__(self, "max_attempts", max(1, int(self.max_attempts)))
        object.__setattr__(self, "max_tokens", int(self.max_tokens))


@dataclass(frozen=True)
class Ask:
    """A generate request: the user prompt, the answer's JSON schema and its length."""

    user: str
    schema: dict | None
    max_tokens: int


def vlm_spec(name: str, default_weight: float, build: dict[str, Any],
             choices: dict[str, tuple[Any, ...]] | None = None) -> Spec:
    """The spec of a VLM backend (every VLM shares the options, axes and known models)."""
    return Spec(name, "vlm", AXES, default_weight, VLMOptions, build=build,
                choices={"method": METHODS, **(choices or {})}, models=MODELS)


def model_label(name: str, *, gguf: bool = False) -> str:
    """The cards' source name for a model file or folder: the catalogue's names for the
    models it knows (so their default weights apply), else the name itself."""
    return next((m.label for m in MODELS if m.matches(name, gguf=gguf)), name)


class VLMSource(Source):
    """Base of the VLM backends; subclasses implement `chat`, `level_probs`, load/unload.

    The run options (`VLMOptions`) arrive per call in `ctx.options`."""

    kind: ClassVar[str] = "vlm"
    provides: ClassVar[tuple[str, ...]] = AXES

    # -- what a backend implements -----------------------------------------------------
    @abstractmethod
    def chat(self, image: Image, system: str, user: str, *, schema: dict | None,
             max_tokens: int) -> str:
        """Greedy answer to one image + prompt; JSON forced by `schema` where possible."""

    @abstractmethod
    def level_probs(self, image: Image, system: str, prefixes: list[str],
                    levels: Sequence[str]) -> list[dict[str, float]]:
        """For each prefix, the next-token probabilities of `levels`, renormalised over them.
        The image should be encoded once for all prefixes where the runtime allows."""

    def levels_and_comment(self, image: Image, system: str, prefixes: list[str],
                           ask: Ask | None, ctx: ScoreContext
                           ) -> tuple[list[dict[str, float]], str]:
        """The logprob method's calls: the level distributions after each prefix and, with
        `ask`, the raw answer that holds the comment. Here `level_probs` then `chat` (a local
        runtime keeps the image encoded between them); over HTTP one request does both."""
        ctx.check()
        dists = self.level_probs(image, system, prefixes, LEVELS)
        if ask is None:
            return dists, ""
        ctx.check()
        return dists, self.chat(image, system, ask.user, schema=ask.schema,
                                max_tokens=ask.max_tokens)

    # -- scoring -----------------------------------------------------------------------
    def _score(self, images: list[Image], ctx: ScoreContext) -> list[list[ScoreCard]]:
        one = self._generate if ctx.options.method == "generate" else self._logprob
        return self.each(images, ctx, lambda i, img: one(img, ctx, i))

    def _context(self, ctx: ScoreContext, i: int) -> str:
        return tag_context(ctx.prior_cards(i)) if ctx.options.use_tags else ""

    def _generate(self, image: Image, ctx: ScoreContext, i: int) -> list[ScoreCard]:
        rubric, context, opts = ctx.rubric, self._context(ctx, i), ctx.options
        system, schema = rubric.system_prompt(), rubric.json_schema()
        cards = []
        for r in range(max(1, ctx.repeats)):
            refusals = 0
            for attempt in range(opts.max_attempts):
                ctx.check()
                text = self.chat(image, system, rubric.user_prompt(context, attempt),
                                 schema=schema, max_tokens=opts.max_tokens)
                parsed = parse_answer(text, tuple(rubric.axes))
                refusals += bool(parsed.refusal)
                if parsed.ok:
                    cards.append(self.card(
                        axes=parsed.axes, comment=parsed.comment, raw=excerpt(text), repeat=r,
                        extras={"attempts": attempt + 1, "refusals": refusals,
                                "problems": parsed.problems[:10],
                                **({"invalid": parsed.invalid} if parsed.invalid else {})},
                    ))
                    break
            else:
                n = opts.max_attempts
                said = excerpt(parsed.comment or text, 80)
                why = (f"refused {n} times: {said!r}" if refusals == n else
                       f"{parsed.why_none()} in {n} attempts: {excerpt(text, 80)!r}")
                cards.append(self.abstain(why, raw=excerpt(text), repeat=r,
                                          extras={"attempts": n, "refusals": refusals}))
        return cards

    def _logprob(self, image: Image, ctx: ScoreContext, i: int) -> ScoreCard:
        rubric, context = ctx.rubric, self._context(ctx, i)
        system = rubric.system_prompt()
        axes = [a for a in rubric.axes if a in self.provides]
        intro = f"{context}\n\n" if context else ""
        prefixes = [intro + rubric.logprob_prefix(a) for a in axes]
        opts = ctx.options
        ask = Ask(rubric.user_prompt(context), rubric.json_schema(), opts.max_tokens)
        dists, raw = self.levels_and_comment(image, system, prefixes, ask if opts.comment
                                             else None, ctx)
        scores, confidences = {}, []
        for axis, dist in zip(axes, dists, strict=True):
            mean, std = _moments(dist)
            scores[axis] = level_to_score(mean)
            confidences.append(max(0.0, 1.0 - std / _MAX_LEVEL_STD))
        comment = ""
        extras: dict[str, Any] = {"level_probs": dict(zip(axes, dists, strict=True))}
        if raw:
            said = parse_answer(raw, tuple(rubric.axes))
            if said.refusal:  # the levels are the vote; a refusal is no comment on the image
                extras["comment_refused"] = said.refusal
            else:
                comment = said.comment
        return self.card(axes=scores, comment=comment, raw=excerpt(raw),
                         confidence=sum(confidences) / len(confidences), extras=extras)


def _moments(dist: dict[str, float]) -> tuple[float, float]:
    """Mean and standard deviation of a distribution over level tokens "1".."9"."""
    total = sum(dist.values())
    if total <= 0 or not math.isfinite(total):
        raise SourceError("the model gave no probability to any level token")
    mean = sum(int(k) * p for k, p in dist.items()) / total
    var = sum((int(k) - mean) ** 2 * p for k, p in dist.items()) / total
    return mean, math.sqrt(max(0.0, var))
