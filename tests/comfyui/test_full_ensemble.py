"""saiten_full_ensemble as shipped: loaded into the real frontend and converted by
`graphToPrompt`, then run with the tiny models the tests build in place of the user's — a WD
v3 ONNX stand-in, a Qwen2-VL GGUF + mmproj through llama.cpp, the judge pointed at the fake
OpenAI-compatible server — on the real KSampler (64 px, 1 step). Every source votes, the
flat frames are blocked, and the key reaches neither the PNGs nor the history."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from comfy_harness import REPO, on_start
from test_generation_workflows import frontend_prompt, ids, shrink

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: fakeapi, fixtures_http

from helpers.fakeapi import FAKE_KEY, assert_no_secret

pytest_plugins = ["helpers.fixtures_http"]
WORKFLOW = REPO / "example_workflows" / "saiten_full_ensemble.json"


@on_start
def _key(models_dir: Path, env: dict[str, str]) -> None:
    env["XAI_API_KEY"] = FAKE_KEY  # the judge's key lives only in the server's environment


@pytest.fixture(scope="module")
def tiny_models(comfy) -> dict[str, str]:
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    from helpers.models.gguf_models import build_gguf_models
    from helpers.models.onnx_models import build_wd, wd_tags

    n = len(wd_tags())
    build_wd(comfy.models_dir / "saiten_tagger" / "wd-tiny", wd_tags(),
             np.zeros((3, n), np.float32), np.full(n, -1.0))
    built = build_gguf_models(comfy.models_dir / "saiten_vlm" / "qwen-gguf-ensemble")
    for extra in (built.llava_text, built.llava_mmproj, built.mismatched_mmproj):
        extra.unlink()
    comfy.refresh_object_info()
    return {"wd": "wd-tiny", "vlm": "qwen-gguf-ensemble/tiny-qwen2vl-text.gguf"}


def test_the_full_ensemble_runs_on_tiny_models(comfy, page, sd15, tiny_models, fakeapi):
    prompt, workflow = frontend_prompt(page, WORKFLOW)
    prompt = shrink(prompt, sd15, seed=77)
    (tag,) = ids(prompt, "SaitenTagger")
    (vlm,) = ids(prompt, "SaitenVLMLoader")
    (judge,) = ids(prompt, "SaitenGrokJudge")
    assert prompt[vlm]["inputs"]["runtime"] == "llama.cpp"
    assert prompt[judge]["inputs"]["key_env"] == "XAI_API_KEY"
    prompt[tag]["inputs"]["model"] = tiny_models["wd"]
    prompt[vlm]["inputs"]["model"] = tiny_models["vlm"]
    prompt[judge]["inputs"].update(base_url=fakeapi.url, model="grok-fake")
    h = comfy.run(prompt, workflow=workflow, timeout=900)

    (agg,) = ids(prompt, "SaitenEnsembleAggregate")
    (flt,) = ids(prompt, "SaitenScoreFilter")
    (show,) = ids(prompt, "SaitenShowScores")
    text = h.text(show)
    lines = [ln for ln in text.splitlines() if ln.startswith("#")]
    assert len(lines) == 4, text
    for ln in lines:  # every source had its say on every image
        for source in ("wd", "technical", "qwen-gguf", "grok"):
            assert source in ln, (source, ln)
    assert h.text(flt).startswith("passed 0/4"), h.text(flt)  # flat frames: blocked
    assert "no content" in h.text(agg)
    bodies = fakeapi.bodies()  # identical flat frames read alike: the judge's cache answers
    assert 1 <= len(bodies) <= 4 and {b["model"] for b in bodies} == {"grok-fake"}
    sent = json.dumps(bodies)
    assert "image_url" not in sent and "base64" not in sent  # text only
    assert_no_secret(json.dumps(h.entry), sent)
