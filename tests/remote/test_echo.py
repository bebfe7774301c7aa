"""A secret echoed in any encoding is recognised (issue N.3): every way the fake server can
send the key back, nested encodings, and plain comments that must not be taken for one."""

from __future__ import annotations

import base64
import json
import random
import urllib.parse

import pytest
from helpers.fakeapi import ENCODINGS, FAKE_KEY, RUBRIC, encode

from scoring.remote.echo import MAX_CHECK, decodings, echoes


@pytest.mark.parametrize("how", ENCODINGS)
def test_every_echo_the_fake_server_makes_is_caught(how):
    said = f"your key {encode(FAKE_KEY, how)} looks fine"
    assert echoes(said, [FAKE_KEY])
    assert echoes(json.dumps({"comment": said}), [FAKE_KEY])  # inside a JSON answer too


@pytest.mark.parametrize("text", [
    base64.b64encode(FAKE_KEY.encode().hex().encode()).decode(),            # hex in base64
    urllib.parse.quote(base64.b64encode(FAKE_KEY.encode()).decode()),       # base64, quoted
    "".join(f"&#{ord(c)};" for c in FAKE_KEY),                              # HTML entities
    "".join(f"\\u{ord(c):04x}" for c in FAKE_KEY),                          # JSON escapes
    FAKE_KEY[::-1],                                                         # reversed
    "part one xai-S then AITE and NFAK and EKEY-012 3456 7890 abcd efDE ADBE EF",
    "\n".join(FAKE_KEY[i:i + 3] for i in range(0, len(FAKE_KEY), 3)),      # one piece a line
    "the key: " + base64.b64encode(b"Bearer " + FAKE_KEY.encode()).decode()[5:],  # clipped
])
def test_nested_and_split_echoes_are_caught(text):
    assert echoes(text, [FAKE_KEY])


@pytest.mark.parametrize("text", [
    RUBRIC["comment"],
    "構図と塗りが安定しており、キャラクターの魅力がよく伝わる。" * 40,
    "Clean line art, confident pose; the hands are broken and the crop is off-centre. " * 30,
    json.dumps({**RUBRIC, "comment": "good"}),
    "data:image/png;base64," + base64.b64encode(random.Random(1).randbytes(3000)).decode(),
    "9f3c71e0b2d4a865" * 4,
    "",
])
def test_ordinary_text_is_not_an_echo(text):
    assert not echoes(text, [FAKE_KEY])


def test_short_or_missing_secrets_match_nothing():
    assert not echoes("anything at all", [None, "", "abc"])


def test_a_long_text_is_looked_at_in_bounded_windows():
    """An echo anywhere in a long text is found (in overlapping windows), and what is
    decoded of any one window stays bounded, whatever the text holds."""
    filler = "QUJD" * 2000 + "%41" * 2000 + "ab" * 2000
    hidden = filler * 3 + base64.b64encode(FAKE_KEY.encode()).decode() + filler
    assert echoes(hidden, [FAKE_KEY]) and not echoes(filler * 4, [FAKE_KEY])
    forms = list(decodings(filler * 4))
    assert all(len(t) <= 2 * MAX_CHECK for t in forms) and len(forms) < 200
