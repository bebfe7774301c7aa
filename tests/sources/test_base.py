"""The interface every source implements (`scoring.sources.base`): a source is built once
from its build options — kept, read-only, as `source.build` — and run per call with its run
options, which travel in the ScoreContext and are never written onto the shared instance."""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers.fakeapi import RUBRIC

from scoring.host.memory import MemoryPolicy
from scoring.sources import ScoreContext, SourceError, create
from scoring.sources.technical import TechnicalCheck
from scoring.sources.vlm.base import VLMOptions
from scoring.sources.vlm.llamacpp import LlamaCppVLM

pytest_plugins = ["helpers.fixtures_http"]

RED = np.zeros((12, 16, 3), np.float32)
RED[..., 0] = 1.0
TOP = {"7": math.log(0.5), "8": math.log(0.25)}


def test_two_calls_with_different_run_options_share_one_source(fakeapi, fake_key):
    src = create("vlm-http", base_url=fakeapi.url, model="fake-vlm", timeout=1.0)
    before = src.defaults
    fakeapi.script()  # rubric JSON answers
    gen = src.score([RED], ScoreContext(options={"method": "generate", "label": "gen",
                                                 "weight": 2.0}))
    fakeapi.script(default={"kind": "logprobs", "top": TOP})
    lp = src.score([RED], ScoreContext(options={"method": "logprob", "comment": False,
                                                "label": "lp"}))
    (g,), (p,) = gen[0], lp[0]
    assert g.source == "gen" and g.weight == 2.0 and g.axes["overall"] == RUBRIC["overall"]
    assert "attempts" in g.extras and "level_probs" not in g.extras
    assert p.source == "lp" and p.weight == 1.0 and "level_probs" in p.extras
    assert gen.label == "gen" and lp.label == "lp" and lp.reused  # loaded by the first call
    assert src.defaults == before and src.label == "fake-vlm"  # nothing written onto it
    assert src.defaults.method == "logprob"


def test_bad_run_options_are_refused_before_anything_runs(fakeapi, fake_key):
    src = create("vlm-http", base_url=fakeapi.url, model="fake-vlm", timeout=1.0)
    with pytest.raises(SourceError, match="unknown scoring method"):
        src.score([RED], ScoreContext(options={"method": "guess"}))
    with pytest.raises(SourceError, match="threshold"):
        src.score([RED], ScoreContext(options={"threshold": 0.5}))
    assert fakeapi.requests() == []
    with pytest.raises(SourceError, match="unknown scoring method"):
        VLMOptions(method="guess")


def test_build_is_what_the_source_was_built_with(tmp_path):
    text, proj = tmp_path / "m-Q4_K_M.gguf", tmp_path / "mmproj-m-f16.gguf"
    for p in (text, proj):
        p.write_bytes(b"GGUF")  # never read: building a source loads nothing
    src = LlamaCppVLM(text, proj, n_gpu_layers=0, method="generate", comment=False,
                      label="mine", memory=MemoryPolicy())
    assert dict(src.build) == {"model_path": text, "mmproj_path": proj, "n_gpu_layers": 0}
    assert src.defaults.method == "generate" and src.label == "mine"  # run options: defaults
    by_name = create("vlm-llamacpp", model_path=text, mmproj_path=proj, n_gpu_layers=0)
    assert by_name.build == src.build  # positional or keyword, the same build
    with pytest.raises(TypeError):
        src.build["n_gpu_layers"] = 8  # read-only
    # options a constructor passes on (`**kw`) are build options too; run options are not
    wd = create("wd", model_path=tmp_path, batch_size=4, device="cpu", weight=2.0,
                keep_loaded=False)
    assert dict(wd.build) == {"model_path": tmp_path, "batch_size": 4, "device": "cpu"}
    assert dict(TechnicalCheck(label="check").build) == {}
