"""The judge's answer cache (`scoring.sources.judge.cache`) on real sqlite files: an answer is
found again by the same request's key across instances, and a cache that cannot be used is
a warning, never a failed run."""

from __future__ import annotations

import logging

from scoring.sources.judge.cache import Cache


def key(**change) -> str:
    parts = {"model": "grok", "system": "採点基準", "user": "[wd] tags: 1girl", "temperature": 0.2,
             "sample": 0}
    return Cache.key(**{**parts, **change})


def test_an_answer_is_found_again_by_the_same_request(tmp_path):
    path = tmp_path / "judge" / "cache.sqlite"  # its folder is made
    first = Cache(path)
    assert first.get(key()) is None
    first.put(key(), "grok", '{"overall": 65}', {"prompt_tokens": 500})
    assert Cache(path).get(key()) == '{"overall": 65}'  # another instance, the same file
    assert Cache.key(sample=0, temperature=0.2, user="[wd] tags: 1girl", system="採点基準",
                     model="grok") == key()  # the parts' order does not matter
    for other in ({"model": "o3"}, {"system": "採点基準 "}, {"user": "[wd] tags: 2girls"},
                  {"temperature": 0.9}, {"sample": 1}):
        assert Cache(path).get(key(**other)) is None, other
    first.put(key(), "grok", '{"overall": 70}', {})
    assert Cache(path).get(key()) == '{"overall": 70}'  # a forced call replaces the answer


def test_without_a_path_nothing_is_kept(tmp_path):
    cache = Cache(None)
    cache.put(key(), "grok", "answer", {})
    assert cache.get(key()) is None and list(tmp_path.iterdir()) == []


def test_a_cache_that_cannot_be_used_is_a_warning_not_a_failure(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="saiten")
    corrupt = tmp_path / "corrupt.sqlite"
    corrupt.write_bytes(b"this is not a database" * 50)
    cache = Cache(corrupt)
    cache.put(key(), "grok", "answer", {})
    assert cache.get(key()) is None and "unusable" in caplog.text and "not caching" in caplog.text
    good = tmp_path / "good.sqlite"
    cache = Cache(good)
    cache.put(key(), "grok", "answer", {})
    good.write_bytes(b"broken later" * 100)  # damaged while a run uses it
    assert cache.get(key()) is None and "unreadable" in caplog.text
    cache.put(key(), "grok", "answer", {})
    assert "not written" in caplog.text
