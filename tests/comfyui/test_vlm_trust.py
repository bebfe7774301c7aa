"""VLMs you can trust, in a real ComfyUI: a model that refuses in JSON abstains after the
reworded retries and the rater says so; a text-only folder is not listed; a folder missing
its tokenizer is refused naming it."""

from __future__ import annotations

import shutil

import pytest

pytest.importorskip("transformers")

from helpers.models.scripted import REFUSAL, Script
from helpers.models.tiny_hf import build_llava, build_text_only


@pytest.fixture(scope="module")
def trust_comfy(comfy):
    folder = comfy.models_dir / "saiten_vlm"
    build_llava(folder / "refusing-llava", script=Script(REFUSAL))
    build_text_only(folder / "Qwen2-0.5B-Instruct")
    shutil.copytree(folder / "refusing-llava", folder / "no-tokenizer-llava")
    (folder / "no-tokenizer-llava" / "tokenizer.json").unlink()
    comfy.refresh_object_info()
    return comfy


def _options(spec):
    return spec[0] if isinstance(spec[0], list) else spec[1]["options"]


def graph(model: str, method: str = "generate", batch: int = 2) -> dict:
    load = {"runtime": "transformers", "model": model, "mmproj": None, "dtype": "auto",
            "quantization": "none", "n_gpu_layers": -1, "chat_format": "auto",
            "base_url": "http://127.0.0.1:9/v1", "model_name": "",
            "api_key_env": "OPENAI_API_KEY", "keep_loaded": False}
    return {
        "1": {"class_type": "EmptyImage",
              "inputs": {"width": 48, "height": 40, "batch_size": batch, "color": 0xAA3366}},
        "2": {"class_type": "SaitenVLMLoader", "inputs": load},
        "3": {"class_type": "SaitenVLMRater",
              "inputs": {"images": ["1", 0], "vlm": ["2", 0], "method": method,
                         "use_tags": False, "comment": False, "repeats": 1, "weight": 0.0,
                         "label": ""}},
    }


def test_a_text_only_folder_is_not_listed(trust_comfy):
    required = trust_comfy.object_info["SaitenVLMLoader"]["input"]["required"]
    models = _options(required["model"])
    assert "refusing-llava" in models and "no-tokenizer-llava" in models
    assert "Qwen2-0.5B-Instruct" not in models


def test_the_rater_shows_refusals_retried_with_reworded_prompts(trust_comfy):
    prompt = graph("refusing-llava")
    prompt["2"]["inputs"]["mmproj"] = _options(
        trust_comfy.object_info["SaitenVLMLoader"]["input"]["required"]["mmproj"])[0]
    text = trust_comfy.run(prompt).text("3")
    lines = text.splitlines()
    for i in (0, 1):
        assert (f"#{i} refusing-llava: abstained — refused 3 times: {REFUSAL!r} "
                "(3 attempts: 3 refused, reworded prompts)") in lines, text
    assert lines[-1] == "retried with reworded prompts: 2 of 2 cards, 6 refusals in all"


def test_a_folder_without_its_tokenizer_is_refused_naming_it(trust_comfy):
    prompt = graph("no-tokenizer-llava", method="logprob")
    prompt["2"]["inputs"]["mmproj"] = _options(
        trust_comfy.object_info["SaitenVLMLoader"]["input"]["required"]["mmproj"])[0]
    text = trust_comfy.run(prompt).text("3")
    assert text.count("abstained") == 2, text
    assert "no-tokenizer-llava is incomplete, missing tokenizer (tokenizer.json" in text
