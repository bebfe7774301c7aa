"""What a source declares about itself (`scoring.sources.spec`), on the real specs: a known
model is matched by a fragment of its file or folder name (GGUF-only where it says so),
labelled and weighted as the catalogue says, and every option's default is found in one
place — the run options' dataclass, else the build options."""

from __future__ import annotations

import pytest

from scoring.sources import catalogue
from scoring.sources.spec import Model, RunOptions, Spec


def test_a_model_matches_a_fragment_of_its_name_and_its_format():
    qwen = Model("qwen", "qwen-gguf", 1.0, gguf=True)
    assert qwen.matches("thesby_Qwen2.5-VL-7B-NSFW-Caption-V3-Q4_K_M", gguf=True)
    assert not qwen.matches("Qwen2-VL-2B-Instruct")  # a transformers folder: not the GGUF
    joy = Model("joycaption", "joycaption", 0.9)
    assert joy.matches("llama-JoyCaption-beta-one-hf-llava") and joy.matches("joycaption.gguf",
                                                                             gguf=True)
    assert not joy.matches("toriigate-v0.4")


def test_labels_and_weights_of_known_models_and_of_anything_else():
    vlm = catalogue.spec("vlm-llamacpp")
    assert vlm.model("Qwen2.5-VL-7B-Q4_K_M", gguf=True).label == "qwen-gguf"
    assert vlm.model("my-model", gguf=True) is None
    assert vlm.label_for("llama-joycaption-beta-one-Q4_K_M", gguf=True) == "joycaption"
    assert vlm.label_for("my-model") == "my-model"
    assert vlm.weight_for("joycaption") == 0.9 and vlm.weight_for("qwen-gguf") == 1.0
    assert vlm.weight_for("my-model") == vlm.default_weight
    wd = catalogue.spec("wd")  # known models without a weight of their own: the spec's
    assert wd.label_for("wd-eva02-large-tagger-v3") == "wd" and wd.weight_for("wd") == 0.8
    bare = Spec("x", "tagger", ("overall",), 0.7, models=(Model("m", "m"),))
    assert bare.weight_for("m") == 0.7 and bare.options is RunOptions


def test_an_option_default_comes_from_the_run_options_else_the_build():
    vlm = catalogue.spec("vlm-transformers")
    assert vlm.option_default("method") == "logprob" and vlm.option_default("label") == ""
    assert vlm.option_default("dtype") == "auto" and vlm.option_default("model_dir") == ""
    with pytest.raises(KeyError):
        vlm.option_default("no_such_option")
