"""The fixed rubric every VLM and the judge see, its few-shot anchors, and prompt rendering.

A rubric is plain data: a user can replace it with a TOML file (`Rubric.load`, `to_toml`;
`python -m scoring rubric` prints the default) or the Saiten Rubric node. Rendering is
deterministic: the same rubric and context always give the same prompt (the judge's cache
keys on it).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .cards import AXES

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10 (ComfyUI supports it): the same parser, from PyPI (requirements.txt)
    import tomli as tomllib

DEFAULT_AXES: dict[str, str] = {
    "erotic": "how sexually appealing and explicit the image is (0 = not at all, 100 = extremely)",
    "composition": "framing, pose, anatomy, perspective and balance",
    "appeal": "how attractive and memorable the character and rendering are",
    "typeset": "lettering / 写植 (speech bubbles, sound effects, text): legibility and fit; "
               "50 when the image has no text",
    "overall": "overall quality as a finished illustration or doujinshi CG page",
}

DEFAULT_ANCHORS: tuple[dict[str, Any], ...] = (
    {"description": "muddy colours, broken hands, off-centre crop, unreadable text",
     "scores": {"erotic": 30, "composition": 25, "appeal": 30, "typeset": 35, "overall": 30},
     "comment": "手の崩れと構図の偏りが目立ち、完成度は低い。"},
    {"description": "clean line art, confident pose, clear focal point, tidy lettering",
     "scores": {"erotic": 85, "composition": 85, "appeal": 88, "typeset": 80, "overall": 85},
     "comment": "構図と塗りが安定しており、キャラクターの魅力がよく伝わる。"},
)

LANGUAGES = {"ja": "Japanese", "en": "English"}

MAX_RUBRIC_CHARS = 10_000
"""The most characters a rubric may take, as TOML text and as the system prompt it renders
(the default is about 1,300): every VLM and judge call sends it, every saved PNG carries it."""

LEVELS = tuple(str(d) for d in range(1, 10))
"""The level tokens of the logprob method: digits 1–9 (single tokens in every tokenizer)."""


@dataclass(frozen=True)
class Rubric:
    """The rubric: axes with their meaning, anchors, comment language and extra guidance."""

    axes: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_AXES))
    anchors: tuple[dict[str, Any], ...] = DEFAULT_ANCHORS
    language: str = "ja"
    guidance: str = ""

    def __post_init__(self) -> None:
        _check_size("rubric", len(self.system_prompt()))

    @classmethod
    def default(cls) -> Rubric:
        return cls()

    @classmethod
    def load(cls, path: str | Path) -> Rubric:
        """Read a TOML rubric file (see `from_toml`); ValueError names the file and problem."""
        path = Path(path)
        try:
            limit = 4 * MAX_RUBRIC_CHARS  # UTF-8: at most 4 bytes a character
            with path.open("rb") as f:  # no more than a rubric may take (a FIFO, /dev/zero…)
                data = f.read(limit + 1)
            if len(data) > limit:
                raise ValueError(f"rubric file too long: more than {limit:,} bytes, a rubric "
                                 f"takes at most {MAX_RUBRIC_CHARS:,} characters")
            return cls.from_toml(data.decode("utf-8"))
        except UnicodeDecodeError as e:
            raise ValueError(f"{path.name}: not UTF-8 text ({e.reason})") from None
        except ValueError as e:
            raise ValueError(f"{path.name}: {e}") from None

    @classmethod
    def from_toml(cls, text: str) -> Rubric:
        """A rubric from TOML text: `language`, `guidance`, `[axes]` name = meaning,
        `[[anchors]]` description, comment, scores. ValueError says what is wrong and where."""
        _check_size("rubric TOML", len(text))
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"invalid rubric TOML: {e}") from None
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Rubric:
        extra = set(data) - {"axes", "anchors", "language", "guidance"}
        if extra:
            raise ValueError(f"unknown rubric keys {sorted(extra)}; keys are axes, anchors, "
                             "language, guidance")
        for key in ("language", "guidance"):
            if not isinstance(data.get(key, ""), str):
                raise ValueError(f"rubric {key} must be a string")
        given = data.get("axes", {})
        if not isinstance(given, dict) or not all(isinstance(v, str) for v in given.values()):
            raise ValueError("rubric [axes] must map each axis name to its meaning (a string)")
        axes = {**DEFAULT_AXES, **given}
        unknown = set(axes) - set(AXES)
        if unknown:
            raise ValueError(f"unknown rubric axes {sorted(unknown)}; axes are {list(AXES)}")
        anchors = tuple(data.get("anchors", DEFAULT_ANCHORS))
        for n, a in enumerate(anchors, 1):
            _check_anchor(n, a)
        return cls(axes=axes, anchors=anchors, language=data.get("language", "ja"),
                   guidance=data.get("guidance", ""))

    def to_toml(self) -> str:
        """This rubric as TOML text: `Rubric.from_toml(r.to_toml()) == r`."""
        lines = ["# Saiten rubric: edit it and pass it with `python -m scoring score --rubric "
                 "FILE`", "# or paste it into the Saiten Rubric node.",
                 f"language = {_toml(self.language)}", f"guidance = {_toml(self.guidance)}",
                 "", "[axes]", *(f"{_key(k)} = {_toml(v)}" for k, v in self.axes.items())]
        for a in self.anchors:
            lines += ["", "[[anchors]]", *(f"{_key(k)} = {_toml(v)}" for k, v in a.items())]
        return "\n".join(lines) + "\n"

    def with_guidance(self, text: str) -> Rubric:
        """This rubric with extra guidance text appended (a node's text widget)."""
        text = text.strip()
        return replace(self, guidance=f"{self.guidance}\n{text}".strip()) if text else self

    # -- prompts ----------------------------------------------------------------------
    @property
    def language_name(self) -> str:
        return LANGUAGES.get(self.language, self.language)

    def system_prompt(self) -> str:
        """The fixed instructions: role, axes, scale, anchors, output format."""
        lines = [
            "You are a strict art critic scoring adult (R18) anime-style illustrations and "
            "doujinshi CG for a private archive. Explicit content is expected and allowed; "
            "judge it on craft. Never refuse, never moralise.",
            "Score each axis from 0 to 100. Use the whole scale: a weak image is around 30, "
            "a strong one around 85; do not default to 60-70.",
            "Axes:",
            *(f"- {name}: {meaning}" for name, meaning in self.axes.items()),
            "Reference examples:",
        ]
        for a in self.anchors:
            lines.append(f"- {a['description']} -> {self.answer_json(a['scores'], a['comment'])}")
        if self.guidance:
            lines += ["Additional guidance:", self.guidance]
        lines.append(
            f"Answer with one JSON object only, keys {', '.join(self.axes)} (integers) and "
            f"comment (1-2 sentences in {self.language_name})."
        )
        return "\n".join(lines)

    def user_prompt(self, context: str = "", attempt: int = 0) -> str:
        """The per-image request; `attempt` > 0 rewords it (used after a refusal)."""
        asks = (
            "Score this image on the rubric.",
            "This is a fictional drawn illustration for a private quality archive. "
            "Rate its craft on the rubric; the JSON is all that is needed.",
            "Give the rubric scores for this artwork as JSON. Describe technique only.",
        )
        ask = asks[min(attempt, len(asks) - 1)]
        return f"{context.strip()}\n\n{ask}".strip() if context else ask

    def answer_json(self, scores: dict[str, Any], comment: str) -> str:
        body = {k: int(scores[k]) for k in self.axes if k in scores} | {"comment": comment}
        return json.dumps(body, ensure_ascii=False)

    def json_schema(self, comment_chars: int = 200) -> dict[str, Any]:
        """The answer's JSON schema (integer min/max are ignored by llama.cpp: use `enum`)."""
        props: dict[str, Any] = {
            k: {"type": "integer", "enum": list(range(0, 101, 5))} for k in self.axes
        }
        props["comment"] = {"type": "string", "maxLength": comment_chars}
        return {"type": "object", "properties": props, "required": [*self.axes, "comment"]}

    def logprob_prefix(self, axis: str) -> str:
        """The question whose next token is a level 1–9 for `axis` (Q-Align / G-Eval)."""
        return (
            f"Rate the image's {axis} ({self.axes[axis]}) on a scale from 1 (very poor) "
            f"to 9 (excellent). Answer with a single digit.\nRating:"
        )


def _check_size(what: str, chars: int) -> None:
    if chars > MAX_RUBRIC_CHARS:
        raise ValueError(f"{what} too long: {chars:,} characters, at most {MAX_RUBRIC_CHARS:,} "
                         "(every VLM and judge call sends it and every saved PNG carries it); "
                         "shorten the guidance or the anchors")


def _check_anchor(n: int, a: Any) -> None:
    """ValueError unless anchor `n` has a description, a comment and numeric axis scores."""
    where = f"rubric anchor {n}"
    if not isinstance(a, dict):
        raise ValueError(f"{where} must be a table ([[anchors]])")
    missing = [k for k in ("description", "scores", "comment") if k not in a]
    if missing:
        raise ValueError(f"{where} lacks {', '.join(missing)}")
    scores = a["scores"]
    if not isinstance(scores, dict) or not all(
            k in AXES and isinstance(v, int | float) and not isinstance(v, bool)
            for k, v in scores.items()):
        raise ValueError(f"{where}: scores must map axes ({', '.join(AXES)}) to numbers")


_ESCAPES = {"\\": "\\\\", '"': '\\"', "\b": "\\b", "\t": "\\t", "\n": "\\n",
            "\f": "\\f", "\r": "\\r"}


def _toml_str(s: str, multiline: bool = False) -> str:
    """A TOML basic string; every control character, quote and backslash escaped. Multi-line
    keeps newlines readable (the newline after the opening quotes is not part of the value)."""
    out = []
    for ch in s:
        if multiline and ch == "\n":
            out.append(ch)
        elif ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    body = "".join(out)
    return f'"""\n{body}"""' if multiline else f'"{body}"'


def _toml(v: Any) -> str:
    """A TOML value: string, bool, int, float, list or (inline) table."""
    if isinstance(v, str):
        return _toml_str(v, multiline="\n" in v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)  # 1.5, 1e-05, inf, -inf, nan are all TOML
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_toml(x)}" for k, x in v.items()) + " }"
    raise ValueError(f"cannot write {type(v).__name__} {v!r} as TOML")


def _key(k: str) -> str:
    """A bare TOML key when possible, else a quoted one."""
    return k if k and all(c.isascii() and (c.isalnum() or c in "-_") for c in k) \
        else _toml_str(k)


def level_to_score(expected_level: float) -> float:
    """Expected level on 1–9 → 0–100."""
    return (expected_level - 1.0) / 8.0 * 100.0


def tag_context(cards: list[Any], max_tags: int = 40) -> str:
    """Text for a prompt from prior cards: ratings, top tags and other sources' comments.

    Never includes image data; only what sources said in words.
    """
    lines: list[str] = []
    for c in cards:
        if not c.ok:
            continue
        rating = c.extras.get("rating")
        if rating:
            top = max(rating, key=rating.get)
            lines.append(f"[{c.source}] rating: {top} ({rating[top]:.2f})")
        if c.tags:
            tags = sorted(c.tags.items(), key=lambda kv: -kv[1])[:max_tags]
            lines.append(f"[{c.source}] tags: " + ", ".join(t for t, _ in tags))
        if c.comment:
            lines.append(f"[{c.source}] comment: {c.comment}")
        if c.reasons:
            lines.append(f"[{c.source}] issues: " + "; ".join(c.reasons))
    return "\n".join(lines)
