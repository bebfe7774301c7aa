"""Weights that make a real tiny language model write a chosen answer: a scripted model.

With every attention output and MLP down projection zeroed, a decoder's residual stream at
the last position is the embedding of the last token, so the next-token logits are
`output · rmsnorm(embedding[last])`: a table from the previous token to the next one. Each
token gets one of a few orthogonal "state" embeddings, and the output matrix ranks the
tokens per state. Greedy decoding then follows the script wherever the runtime's own
constraint (a llama.cpp grammar, the transformers JSON decoder) leaves a choice:

- the default state ranks the comment first, then end-of-turn, the value digit and the
  closing brace: keys are forced, every integer becomes `value` (the comment cannot go
  there), the comment string opens and the comment's first piece starts it;
- after each comment piece the next one comes first, after the last the closing quote; the
  grammar or the decoder forces the rest of the JSON object and end-of-turn ends it.

The comment is a few new vocabulary tokens, each a piece of the sentence with its spaces
(never produced by the tokenizer from a prompt, since no merge leads to them), each
leading to the next, so the answer is
`{"erotic": 0, …, "overall": 0, "comment": "<comment>"}` for every image and every
prompt: a model that refuses every rewording, or one that gives a genuine low score.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

REFUSAL = "I'm sorry, I can't rate explicit content."
CRITIQUE = "手の崩れが目立つ。"
"""A genuine critical comment on a low score (no refusal)."""
LEVELS = (("6", 0.2), ("7", 0.5), ("8", 0.3))
"""The critic's level distribution (mean 7.1)."""


@dataclass(frozen=True)
class Script:
    """A scripted answer: the comment sentence and the digit every axis gets."""

    comment: str = REFUSAL
    value: str = "0"
    levels: tuple[tuple[str, float], ...] = ()
    """Probabilities of level digits "1".."9" wherever a digit comes next (after "Rating:",
    after a JSON key): what the logprob method must read back. The digits rank below the
    scripted tokens, so generated answers do not change."""

    def pieces(self, most: int = 24) -> list[str]:
        """The comment as new vocabulary tokens of at most `most` UTF-8 bytes each
        (llama-cpp-python detokenizes at most 32 bytes per token), split after spaces."""
        out, cur = [], ""
        for ch in self.comment:
            if cur and (len((cur + ch).encode()) > most or (cur.endswith(" ") and ch != " "
                                                            and len(cur.encode()) > most // 2)):
                out.append(cur)
                cur = ""
            cur += ch
        return [*out, cur]


@functools.cache
def byte_encoder() -> dict[int, str]:
    """GPT-2's byte → printable character map (how byte-level BPE vocabularies store text)."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
            *range(ord("®"), ord("ÿ") + 1)]
    chars, n = list(keep), 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + n)
            n += 1
    return dict(zip(keep, map(chr, chars), strict=True))


def byte_level(text: str) -> str:
    """`text` as a byte-level BPE vocabulary entry."""
    enc = byte_encoder()
    return "".join(enc[b] for b in text.encode("utf-8"))


def byte_decoded(entry: str) -> str:
    """The text of a byte-level BPE vocabulary entry."""
    dec = {c: b for b, c in byte_encoder().items()}
    if not all(c in dec for c in entry):
        return entry  # a special token, stored as it is
    return bytes(dec[c] for c in entry).decode("utf-8", "replace")


def weights(pieces: Sequence[str], script: Script, *, end: str, n_embd: int
            ) -> tuple[np.ndarray, np.ndarray]:
    """(embedding, output) matrices, both (n_vocab, n_embd), for a model whose tokens decode
    to `pieces` (`end` is the end-of-turn token's piece; `script.pieces()` must be there)."""
    chain = script.pieces()
    index = {p: i for i, p in enumerate(pieces)}
    missing = [p for p in (end, *chain, script.value, '"', "}", *dict(script.levels))
               if p not in index]
    if missing:
        raise ValueError(f"the vocabulary lacks {missing}")
    n = len(pieces)
    embedding = np.zeros((n, n_embd), np.float32)
    embedding[:, 0] = 1.0  # state 0: the default; state k: after the k-th comment piece
    for k, piece in enumerate(chain, 1):
        embedding[index[piece]] = np.eye(n_embd, dtype=np.float32)[k]
    # every other token ranks below the scripted ones, in a fixed order (no ties)
    output = np.zeros((n, n_embd), np.float32)
    output[:, :len(chain) + 1] = (-1.0 - np.arange(n) / (4.0 * n))[:, None]
    for rank, piece in enumerate((chain[0], end, script.value, "}")):
        output[index[piece], 0] = 4.0 - rank
    for digit, p in script.levels:  # logits are 8 x these (rmsnorm of a unit vector): ln p
        output[index[digit], 0] = 0.5 + np.log(p) / 8.0
    for k, piece in enumerate([*chain[1:], '"'], 1):
        output[index[piece], k] = 4.0
    return embedding, output
