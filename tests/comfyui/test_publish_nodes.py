"""Ready to sell, in a real ComfyUI: generate → Publish Check → score → the Score Filter's
publish gate routes publishable / needs work / rejected → Saiten Mosaic fixes the needs-work
branch → a second Publish Check says publishable → the saved PNGs carry the verdict. And
Saiten Likeness against a LoadImage reference gates on the character. Stand-in censor and
CCIP models with the real I/O contracts sit in the folders the nodes register."""

from __future__ import annotations

import numpy as np
from comfy_harness import on_start
from graphs import Graph
from helpers.censor_images import mark, paint_mosaic, scene
from helpers.models.ccip_models import build_ccip
from helpers.models.yolo_models import build_censor
from PIL import Image as PILImage

SIZE = 256       # the 1/100 rule wants 4 px blocks here (never under 4)
BOX = (90, 110, 190, 190)


@on_start
def publish_models(models_dir, env):
    build_censor(models_dir / "saiten_censor" / "censor_detect_v1.0_s", size=320,
                 batch="batch")
    build_ccip(models_dir / "saiten_likeness" / "ccip-caformer-24-randaug-pruned")


def _inputs(comfy) -> dict[str, str]:
    """Prepared images in ComfyUI's input folder: a region mosaicked to the rule, a bare one,
    the character's reference and another character."""
    base = mark(scene(SIZE, SIZE, seed=3), BOX)
    images = {"q_pub.png": paint_mosaic(base, BOX, 6), "q_work.png": base,
              "q_ref.png": scene(SIZE, SIZE, seed=4),
              "q_other.png": (scene(SIZE, SIZE, seed=3) * [0.15, 0.3, 1.0]).astype(np.uint8)}
    for name, img in images.items():
        PILImage.fromarray(img).save(comfy.input_dir / name)
    return {k.removeprefix("q_").removesuffix(".png"): k for k in images}


def test_generate_check_gate_mosaic_and_save(comfy, sd15):
    files = _inputs(comfy)
    g = Graph(comfy.object_info)
    c = g.add("CheckpointLoaderSimple", ckpt_name=sd15)
    pos = g.add("CLIPTextEncode", clip=[c, 1], text="1girl, masterpiece")
    neg = g.add("CLIPTextEncode", clip=[c, 1], text="lowres")
    empty = g.add("EmptyLatentImage", width=SIZE, height=SIZE, batch_size=1)
    ks = g.add("KSampler", model=[c, 0], positive=[pos, 0], negative=[neg, 0],
               latent_image=[empty, 0], seed=5, steps=1, cfg=1.0, sampler_name="euler",
               scheduler="normal", denoise=1.0)
    dec = g.add("VAEDecode", samples=[ks, 0], vae=[c, 2])
    pub = g.add("LoadImage", image=files["pub"])
    work = g.add("LoadImage", image=files["work"])
    two = g.add("ImageBatch", image1=[dec, 0], image2=[pub, 0])
    batch = g.add("ImageBatch", image1=[two, 0], image2=[work, 0])    # generated, pub, work
    check = g.add("SaitenPublishCheck", images=[batch, 0], model="censor_detect_v1.0_s")
    preview = g.add("PreviewImage", images=[check, 1])
    agg, flt = g.score([batch, 0], threshold=60.0, publish=True)
    g.prompt[str(int(agg) - 2)]["inputs"]["scores"] = [check, 0]       # the tagger takes them
    mosaic = g.add("SaitenMosaic", images=[flt, 7], verdicts=[flt, 8])
    again = g.add("SaitenPublishCheck", images=[mosaic, 0], model="censor_detect_v1.0_s",
                  nudenet=False)
    g.add("PreviewImage", images=[again, 1])
    saved = g.add("SaitenSaveImage", images=[flt, 0], verdicts=[flt, 2],
                  filename_prefix="q/passed")
    fixed = g.add("SaitenSaveImage", images=[mosaic, 0], verdicts=[mosaic, 1],
                  filename_prefix="q/fixed")
    rejected = g.add("PreviewImage", images=[flt, 1])
    h = comfy.run(g.prompt, timeout=900)
    assert h.ok, h.message("execution_error") or comfy.log()

    lines = h.text(check).splitlines()
    assert lines[1].startswith("#0 ") and lines[2].startswith("#1 publishable")
    assert lines[3].startswith("#2 needs work: R1 (pussy): needs a mosaic (nothing covers it")
    assert "not a legal judgement" in lines[-1]
    assert len(h.files(preview, "temp")) == 3                      # regions drawn
    text = h.text(flt)
    assert text.splitlines()[0].startswith("passed 1/3"), text
    assert "needs work: #2" in text and "rejected: #0" in text, text
    assert "mosaicked R1 with 4 px blocks" in h.text(mosaic)
    assert "now publishable" in h.text(mosaic)
    assert h.text(again).splitlines()[1].startswith("#0 publishable: 1 region(s) obscured")
    assert len(h.files(rejected, "temp")) == 1

    from scoring.report import read_png_scores
    (good,), (done,) = h.files(saved), h.files(fixed)
    for path in (good, done):
        meta = read_png_scores(path)
        assert meta["decision"]["status"] == "passed", meta
        assert meta["decision"]["publish"] == "publishable" and \
            meta["publish"]["status"] == "publishable", meta
    fixed_px = np.asarray(PILImage.open(done).convert("RGB"))
    assert not np.array_equal(fixed_px[BOX[1]:BOX[3], BOX[0]:BOX[2]],
                              np.asarray(PILImage.open(comfy.input_dir / files["work"]))[
                                  BOX[1]:BOX[3], BOX[0]:BOX[2]])


def test_likeness_gates_on_the_character(comfy):
    files = _inputs(comfy)
    g = Graph(comfy.object_info)
    same = g.add("LoadImage", image=files["work"])
    other = g.add("LoadImage", image=files["other"])
    ref = g.add("LoadImage", image=files["ref"])
    batch = g.add("ImageBatch", image1=[same, 0], image2=[other, 0])
    like = g.add("SaitenLikeness", images=[batch, 0], references=[ref, 0],
                 model="ccip-caformer-24-randaug-pruned")
    tech = g.add("SaitenTechnicalCheck", images=[batch, 0], scores=[like, 0])
    agg = g.add("SaitenEnsembleAggregate", **{"scores.scores0": [tech, 0]})
    flt = g.add("SaitenScoreFilter", images=[batch, 0], verdicts=[agg, 0], threshold=50.0,
                require_character=True)
    kept = g.add("PreviewImage", images=[flt, 0])
    h = comfy.run(g.prompt, timeout=600)
    assert h.ok, h.message("execution_error") or comfy.log()
    lines = h.text(like).splitlines()
    assert "(same character;" in lines[1] and "1 references)" in lines[1]
    assert "(another character?;" in lines[2]
    text = h.text(flt)
    assert text.splitlines()[0].startswith("passed 1/2") and "rejected: #1" in text, text
    assert "another character?" in text and len(h.files(kept, "temp")) == 1
    assert "likeness" in h.text(agg)


def test_the_template_runs_from_the_frontend(comfy, page, sd15):
    """saiten_publish_check as a user runs it (frontend → prompt, shrunk): the random
    model's flat frames have no region (publishable) and are rejected by their score; the
    needs-work branch is blocked, nothing is saved, the queue goes on."""
    from comfy_harness import REPO
    from test_generation_workflows import frontend_prompt, ids, shrink

    path = REPO / "example_workflows" / "saiten_publish_check.json"
    prompt, workflow = frontend_prompt(page, path)
    prompt = shrink(prompt, sd15, 11)
    (check,) = ids(prompt, "SaitenPublishCheck")
    assert prompt[check]["inputs"]["allow_download"] is True
    (flt,) = ids(prompt, "SaitenScoreFilter")
    assert prompt[flt]["inputs"]["publish"] is True
    h = comfy.run(prompt, workflow=workflow, timeout=900)
    assert h.ok, h.message("execution_error") or comfy.log()
    lines = h.text(check).splitlines()
    assert [ln.split(":")[0] for ln in lines[1:5]] == [f"#{i} publishable" for i in range(4)]
    assert h.text(flt).startswith("passed 0/4"), h.text(flt)
    assert all(h.files(s) == [] for s in ids(prompt, "SaitenSaveImage"))
    (mosaic,) = ids(prompt, "SaitenMosaic")
    assert h.ui(mosaic) == {}                                        # blocked: nothing to fix
