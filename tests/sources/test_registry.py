"""One shape for every source: run options travel per call (never stored on the shared
instance), results are returned, one Unavailable, and the catalogue's defaults are the ones
the CLI, the nodes and the constructors use."""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest
from helpers.fakeapi import RUBRIC

from scoring.batch.score_cmd import make_sources
from scoring.sources import (
    ScoreContext,
    SourceError,
    Unavailable,
    catalogue,
    create,
    source_class,
    unavailable,
)
from scoring.sources.vlm.base import VLMOptions

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


def test_unavailable_is_the_one_abstention_shape():
    (card,) = unavailable("cl", "no model here").score([RED])[0]
    assert not card.ok and card.abstained == "no model here"
    assert card.kind == "tagger" and card.provides == ("erotic", "overall")  # CL's own axes
    (cli,) = make_sources(["cl"], lambda _: None)  # no model_path: it cannot start
    assert isinstance(cli, Unavailable) and "--option cl.model_path" in cli.why
    (card,) = cli.score([RED], ScoreContext(options={"method": "generate"}))[0]
    assert card.source == "cl" and card.provides == ("erotic", "overall")


def test_constructor_defaults_are_the_catalogues():
    for name, spec in catalogue.specs().items():
        cls = source_class(name)
        assert (cls.name, cls.kind, cls.provides, cls.default_weight) == (
            spec.name, spec.kind, spec.provides, spec.default_weight)
        params = inspect.signature(cls.__init__).parameters
        for option, default in spec.build.items():
            if option in params and params[option].default is not inspect.Parameter.empty:
                assert params[option].default == default, (name, option)


def test_a_model_weighs_the_same_under_every_runtime_and_from_the_cli():
    weights = catalogue.weights()
    assert {"qwen-gguf": 1.0, "joycaption": 0.9, "wd": 0.8, "grok": 1.1}.items() \
        <= weights.items()  # SPEC's aggregation defaults, now on the cards themselves
    for name in ("vlm-transformers", "vlm-llamacpp", "vlm-http"):
        spec = catalogue.spec(name)
        assert spec.weight_for("joycaption") == 0.9 and spec.label_for(
            "llama-joycaption-beta-one-Q4_K_M", gguf=True) == "joycaption"
    (judge,) = make_sources(["judge"], lambda _: None)
    assert judge.label == "grok" and judge.options().weight == 1.1


def test_the_cli_pairs_a_gguf_by_name_as_the_loader_does(tmp_path):
    from scoring.sources.vlm import files as models

    for name in ("model-Q4_K_M.gguf", "mmproj-model-f16.gguf", "other/m.gguf",
                 "other/mmproj-a.gguf", "other/mmproj-b.gguf"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"GGUF")
    (tmp_path / "tiny-llava").mkdir()
    (tmp_path / "tiny-llava" / "config.json").write_text("{}")
    assert models.list_vlms([tmp_path]) == (
        ["model-Q4_K_M.gguf", "other/m.gguf", "tiny-llava"],
        ["mmproj-model-f16.gguf", "other/mmproj-a.gguf", "other/mmproj-b.gguf"])
    (src,) = make_sources(["vlm-llamacpp"], print,
                          {"vlm-llamacpp": {"model": "model-Q4_K_M.gguf"}}, [tmp_path])
    assert src.mmproj_path == tmp_path / "mmproj-model-f16.gguf"
    assert models.vlm_files("tiny-llava", roots=[tmp_path]) == (
        "vlm-transformers", {"model_dir": str(tmp_path / "tiny-llava")})
    (two,) = make_sources(["vlm-llamacpp"], lambda _: None,
                          {"vlm-llamacpp": {"model": "other/m.gguf"}}, [tmp_path])
    assert isinstance(two, Unavailable) and "choose the mmproj for m.gguf" in two.why
    (named,) = make_sources(["vlm-llamacpp"], print, {"vlm-llamacpp": {
        "model": "other/m.gguf", "mmproj": "other/mmproj-b.gguf"}}, [tmp_path])
    assert named.mmproj_path == tmp_path / "other" / "mmproj-b.gguf"
