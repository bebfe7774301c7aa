"""A rubric file is read no further than a rubric may be (issue N.8): a 10 MB file and an
endless one (/dev/zero) are refused at once with the reason, never read whole."""

from __future__ import annotations

import os

import pytest

from scoring.core.rubric import MAX_RUBRIC_CHARS, Rubric


def test_a_ten_megabyte_rubric_file_is_refused(tmp_path):
    path = tmp_path / "big.toml"
    path.write_text('guidance = "' + "x" * 10_000_000 + '"\n', encoding="utf-8")
    with pytest.raises(ValueError, match=rf"^big\.toml: rubric file too long: more than "
                       rf"{4 * MAX_RUBRIC_CHARS:,} bytes"):
        Rubric.load(path)


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero on this system")
def test_an_endless_rubric_file_is_refused_not_read_forever():
    with pytest.raises(ValueError, match="rubric file too long"):
        Rubric.load("/dev/zero")


def test_a_ten_megabyte_rubric_text_is_refused_before_it_is_parsed():
    with pytest.raises(ValueError, match="rubric TOML too long: 10,000,017 characters"):
        Rubric.from_toml('guidance = "' + "x" * 10_000_000 + '"\n' + "#" * 3)
