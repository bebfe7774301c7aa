"""Whether a text gives a secret back in any form that decodes to it.

A server (or a model told to) can echo the Authorization header it received: verbatim,
base64 or base64url, URL-encoded, hex, HTML or JSON escaped, letter-spaced, cut into
pieces with words between them, upper/lower case swapped, reversed — and any of these
nested in another. `echoes(text, secrets)` undoes each encoding it finds (to `DEPTH`
levels) and looks for a run of `RUN` characters of a secret, in order, in what came out:
verbatim, or with whatever is not a letter or digit removed, or spread with short gaps.
A long text is looked at in overlapping windows of `MAX_CHECK` characters.
"""

from __future__ import annotations

import base64
import binascii
import html
import re
from collections.abc import Iterable, Iterator
from urllib.parse import unquote

RUN = 8
"""Characters of a secret, in a row, that count as an echo of it."""
GAP = 12
"""Characters allowed between two of a secret's, for an echo split with words between."""
DEPTH = 3
"""Encodings inside encodings undone."""
MAX_CHECK = 8192
"""Characters of a text examined at a time (a longer one: in windows overlapping by
OVERLAP, so an echo across a window's edge is seen whole in the next)."""
OVERLAP = 1024

_B64 = re.compile(r"[A-Za-z0-9+/_=-]{12,}")
_HEX = re.compile(r"(?:[0-9a-fA-F]{2}[\s:-]?){8,}")
_UNI = re.compile(r"\\u([0-9a-fA-F]{4})|\\x([0-9a-fA-F]{2})")
_NOT_ALNUM = re.compile(r"[\W_]+")


def _alnum(text: str) -> str:
    return _NOT_ALNUM.sub("", text).casefold()


def _b64(run: str) -> Iterator[str]:
    """What a run of base64 characters decodes to, from each of its first four starts
    (a run may have picked up a few letters before the encoded part)."""
    for start in range(4):
        part = run[start:].rstrip("=")
        part = part[: len(part) - len(part) % 4 if len(part) % 4 == 1 else len(part)]
        if len(part) < 8:
            return
        padded = part + "=" * (-len(part) % 4)
        for decode in (base64.b64decode, base64.urlsafe_b64decode):
            try:
                raw = decode(padded.replace("-", "+").replace("_", "/")
                             if decode is base64.b64decode else padded)
            except (binascii.Error, ValueError):
                continue
            yield raw.decode("latin-1")
            break


def _hex(run: str) -> Iterator[str]:
    digits = re.sub(r"[\s:-]", "", run)
    for start in (0, 1):
        part = digits[start:]
        part = part[: len(part) // 2 * 2]
        try:
            yield bytes.fromhex(part).decode("latin-1")
        except ValueError:
            continue


def decodings(text: str, depth: int = DEPTH) -> Iterator[str]:
    """`text` and every text it decodes to (nested up to `depth` levels)."""
    seen: set[str] = set()
    todo = [(text[:MAX_CHECK], depth)]
    while todo:
        t, d = todo.pop()
        if t in seen or not t:
            continue
        seen.add(t)
        yield t
        if d == 0:
            continue
        found = [html.unescape(t), t[::-1], t.swapcase()]
        if "%" in t:
            found.append(unquote(t))
        if "\\" in t:
            found.append(_UNI.sub(lambda m: chr(int(m.group(1) or m.group(2), 16)), t))
        squeezed = re.sub(r"\s+", "", t)
        for source in {t, squeezed}:
            for m in _B64.finditer(source):
                found.extend(_b64(m.group(0)))
            for m in _HEX.finditer(source):
                found.extend(_hex(m.group(0)))
        todo.extend((f, d - 1) for f in found if f and f not in seen)


def _runs(secret: str, width: int) -> set[str]:
    return {secret[k:k + width] for k in range(len(secret) - width + 1)}


def _spread(text: str, core: str) -> bool:
    """Whether `core` appears in `text` in order with at most GAP characters between
    consecutive ones (a secret split into short pieces with words between them)."""
    first = core[0]
    at = text.find(first)
    while at >= 0:
        pos, ok = at, True
        for ch in core[1:]:
            nxt = text.find(ch, pos + 1, pos + 2 + GAP)
            if nxt < 0:
                ok = False
                break
            pos = nxt
        if ok:
            return True
        at = text.find(first, at + 1)
    return False


def echoes(text: object, secrets: Iterable[str | None]) -> bool:
    """True when `text`, or anything it decodes to, holds one of `secrets` (a run of RUN of
    its characters, verbatim or spaced out; the whole of it spread with short gaps)."""
    keys = [s for s in secrets if s and len(s) >= RUN]
    if not keys:
        return False
    t = str(text)
    step = MAX_CHECK - OVERLAP
    return any(_echoes(t[at:at + MAX_CHECK], keys) for at in range(0, max(1, len(t)), step))


def _echoes(text: str, keys: list[str]) -> bool:
    pieces = [(_runs(k, RUN), _runs(_alnum(k), RUN), _alnum(k)) for k in keys]
    for form in decodings(text):
        flat = _alnum(form)
        low = form.casefold()
        for verbatim, spaced, core in pieces:
            if any(p in form or p.casefold() in low for p in verbatim):
                return True
            if any(p in flat for p in spaced):
                return True
            if len(core) >= 2 * RUN and len(flat) <= MAX_CHECK and _spread(flat, core):
                return True
    return False


__all__ = ["DEPTH", "GAP", "MAX_CHECK", "OVERLAP", "RUN", "decodings", "echoes"]
