"""Saiten Score Filter's LATENT pass-through and the aggregate's per-image scores, in a real
ComfyUI on the offline sources: the latents come out aligned with the images (noise_mask and
batch_index too), an empty side is blocked, a latent of another batch is a clear error."""

from __future__ import annotations

import pytest
from comfy_harness import REPO
from graphs import Graph

SAMPLES = sorted(p.name for p in (REPO / "samples").iterdir()
                 if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
N = len(SAMPLES)


def indices(line: str) -> list[int]:
    """The image indices in a filter text line ("passed: #0 100, #2 100")."""
    body = line.split(": ", 1)[1]
    return [] if body == "none" else [int(t.split()[0][1:]) for t in body.split(", ")]


def digest(h, node: str) -> dict | None:
    items = h.ui(node).get("digest")
    return items[0] if items else None


def latent_graph(comfy, size: int, extras: str = "both", batch: int = N, **filter_inputs):
    g = Graph(comfy.object_info)
    images = g.add("SaitenSampleImages", size=size)
    latent = g.add("SaitenTestLatent", batch_size=batch, extras=extras)
    agg, flt = g.score([images, 0], latent=[latent, 0], **{"threshold": 85.0, **filter_inputs})
    ids = {"agg": agg, "flt": flt,
           "passed": g.add("SaitenTestDigest", images=[flt, 0], latent=[flt, 4]),
           "rejected": g.add("SaitenTestDigest", images=[flt, 1], latent=[flt, 5]),
           "all": g.add("SaitenTestDigest", images=[images, 0])}
    return g.prompt, ids


@pytest.mark.parametrize("extras", ["both", "one mask", "none"])
def test_latents_follow_their_images(comfy, extras):
    prompt, ids = latent_graph(comfy, {"both": 64, "one mask": 72, "none": 80}[extras], extras)
    h = comfy.run(prompt)
    lines = h.text(ids["flt"]).splitlines()
    yes, no = indices(lines[1]), indices(lines[2])
    assert yes and no and sorted(yes + no) == list(range(N))  # the broken samples fail
    every = digest(h, ids["all"])["images"]
    for side, idx in (("passed", yes), ("rejected", no)):
        d = digest(h, ids[side])
        assert d["images"] == [every[i] for i in idx]            # the images …
        assert d["first_values"] == [float(i) for i in idx]      # … and their own latents
        assert d["latent_shape"] == [len(idx), 4, 8, 8]
        if extras == "both":
            assert d["batch_index"] == [10 + i for i in idx]
            assert d["mask"] == pytest.approx([i / 100 for i in idx])
        elif extras == "one mask":  # one mask for the whole batch stays one mask
            assert d["mask"] == [0.5] and d["batch_index"] is None
        else:
            assert d["mask"] is None and d["batch_index"] is None


def test_an_empty_side_blocks_its_latent_too(comfy):
    prompt, ids = latent_graph(comfy, 88, axis="erotic", threshold=99.5)
    h = comfy.run(prompt)
    assert h.ok and h.message("execution_error") is None
    assert h.ui(ids["passed"]) == {}  # blocked: the digest never ran
    assert digest(h, ids["rejected"])["first_values"] == [float(i) for i in range(N)]


def test_without_a_latent_the_latent_outputs_are_blocked(comfy):
    prompt, ids = latent_graph(comfy, 96)
    del prompt[ids["flt"]]["inputs"]["latent"]
    h = comfy.run(prompt)
    assert h.ok and h.ui(ids["passed"]) == {} and h.ui(ids["rejected"]) == {}


def test_a_latent_of_another_batch_is_a_clear_error(comfy):
    prompt, _ = latent_graph(comfy, 104, batch=3)
    h = comfy.run(prompt, check=False)
    err = h.message("execution_error")
    assert h.status == "error" and err["node_type"] == "SaitenScoreFilter"
    assert f"the latent batch has 3 latents but the image batch has {N} images" \
        in err["exception_message"]


def test_aggregate_scores_has_one_float_per_image(comfy):
    prompt, ids = latent_graph(comfy, 112)
    each, first = "100", "101"
    prompt[each] = {"class_type": "SaitenTestDigest", "inputs": {"value": [ids["agg"], 2]}}
    prompt[first] = {"class_type": "SaitenTestDigest", "inputs": {"value": [ids["agg"], 1]}}
    h = comfy.run(prompt)
    values = [d["value"] for d in h.ui(each)["digest"]]
    assert len(values) == N and h.ui(first)["digest"][0]["value"] == values[0]
    lines = h.text(ids["flt"]).splitlines()
    for i in indices(lines[1]):
        assert values[i] >= 85.0
    for i in indices(lines[2]):
        assert -1.0 <= values[i] < 85.0
