"""What Saiten knows about its sources (`scoring.sources.catalogue`, gathered from each
source's Spec): the constructors' defaults are the catalogue's, and a model weighs the same
under every runtime and from the CLI."""

from __future__ import annotations

import inspect

from scoring.cli.score import make_sources
from scoring.sources import catalogue, source_class


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
