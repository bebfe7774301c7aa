"""The generating example workflows as a user runs them: each file is loaded into ComfyUI's
real frontend, turned into a prompt by `graphToPrompt`, shrunk (64 px, ≤ 2 steps, batch
≤ 4), given the random-weight SD1.5 checkpoint, and run on the real KSampler."""

from __future__ import annotations

import json
import time
import zlib

import pytest
from comfy_harness import REPO

EXAMPLES = REPO / "example_workflows"
GENERATING = sorted(p for p in EXAMPLES.glob("*.json")
                    if '"KSampler"' in p.read_text(encoding="utf-8"))
OFFLINE = [p for p in GENERATING  # user models: test_full_ensemble.py; the publish check
           if '"SaitenVLMLoader"' not in p.read_text(encoding="utf-8")  # (its own routes):
           and '"SaitenPublishCheck"' not in p.read_text(encoding="utf-8")]  # test_publish_nodes


def frontend_prompt(page, path) -> tuple[dict, dict]:
    """(API prompt by the frontend's graphToPrompt, the UI workflow)."""
    workflow = json.loads(path.read_text(encoding="utf-8"))
    page.evaluate(f"window.app.loadGraphData({json.dumps(workflow)})")
    return page.evaluate("window.app.graphToPrompt().then(r => r.output)"), workflow


def shrink(prompt: dict, ckpt: str, seed: int) -> dict:
    """The prompt at test size: 64 px, 1 step at cfg 1 (one UNet call per latent: ComfyUI
    skips the unconditional pass), batch ≤ 4, K ≤ 2, our checkpoint."""
    stamp = str(time.monotonic_ns())
    for node in prompt.values():
        i, kind = node["inputs"], node["class_type"]
        if kind == "CheckpointLoaderSimple":
            i["ckpt_name"] = ckpt
        elif kind == "EmptyLatentImage":
            i.update(width=64, height=64, batch_size=min(i["batch_size"], 4))
        elif kind == "KSampler":
            i.update(steps=1, cfg=1.0, seed=seed)
        elif kind == "SaitenScoreFilter":
            i["top_k"] = min(i["top_k"], 2)
        elif kind == "SaitenSaveImage":
            i["filename_prefix"] = f"{i['filename_prefix']}_{stamp}"
    return prompt


def ids(prompt: dict, kind: str) -> list[str]:
    return [k for k, v in prompt.items() if v["class_type"] == kind]


def test_the_generating_examples_are_there():
    assert {p.stem for p in GENERATING} >= {"saiten_generate_filter", "saiten_best_of_n_hires",
                                            "saiten_full_ensemble", "saiten_publish_check"}
    for p in GENERATING:
        thumb = p.with_suffix(".jpg")
        assert thumb.is_file() and thumb.stat().st_size > 10_000, thumb
        assert thumb.read_bytes()[:3] == b"\xff\xd8\xff"  # a JPEG
        notes = [n for n in json.loads(p.read_text(encoding="utf-8"))["nodes"]
                 if n["type"] == "MarkdownNote"]
        text = notes[0]["widgets_values"][0]
        assert "採点" in text and "Saiten" in text  # Japanese and English


@pytest.mark.parametrize("path", OFFLINE, ids=lambda p: p.stem)
def test_a_generating_example_runs_and_blocks_flat_frames(comfy, page, sd15, path):
    prompt, workflow = frontend_prompt(page, path)
    prompt = shrink(prompt, sd15, zlib.crc32(path.stem.encode()))
    (flt,) = ids(prompt, "SaitenScoreFilter")
    upscale = ids(prompt, "LatentUpscaleBy")
    second = [k for k in ids(prompt, "KSampler")
              if prompt[k]["inputs"]["latent_image"][0] in upscale]
    if second:  # see the second pass's batch
        prompt["900"] = {"class_type": "SaitenTestDigest",
                         "inputs": {"latent": [second[0], 0]}}
    h = comfy.run(prompt, workflow=workflow, timeout=900)
    (save,) = ids(prompt, "SaitenSaveImage")
    (rejected,) = ids(prompt, "PreviewImage")
    batch = next(v["inputs"]["batch_size"] for v in prompt.values()
                 if v["class_type"] == "EmptyLatentImage")
    text = h.text(flt)
    if prompt[flt]["inputs"]["mode"] == "threshold":
        # the random model's flat grey frames: caught by the technical check, never saved
        assert text.startswith(f"passed 0/{batch}"), text
        assert h.ui(save) == {} and h.files(save) == []
        assert len(h.files(rejected, kind="temp")) == batch
    else:
        k = prompt[flt]["inputs"]["top_k"]
        assert text.startswith(f"passed {k}/{batch}"), text
        assert h.ui("900")["digest"][0]["latent_shape"][0] == k  # hires: winners only
        saved = h.files(save)
        assert len(saved) == k and len(h.files(rejected, kind="temp")) == batch - k
        from PIL import Image

        with Image.open(saved[0]) as im:
            assert im.size == (96, 96)  # 64 px × 1.5
            assert json.loads(im.text["saiten"])["score"] is not None
    (agg,) = ids(prompt, "SaitenEnsembleAggregate")
    assert h.text(agg).count("no content") == batch, h.text(agg)
