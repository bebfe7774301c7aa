"""Scoring as a stage of a real generation graph: a random-weight SD1.5 checkpoint through
CheckpointLoaderSimple → KSampler → VAE Decode → the offline sources → filter, at 64 px and
2 steps. The flat frames the random model makes are caught; in a batch mixing them with real
photos the passed latents are exactly the passed images' latents; a second KSampler samples
only the winners; the diffusion model and our scorer's stand-in are loaded together and
/free unloads both."""

from __future__ import annotations

from graphs import Graph
from test_filter_latents import indices

SIZE, STEPS, CFG = 64, 1, 1.0  # at cfg 1 ComfyUI skips the unconditional pass


def generator(g: Graph, ckpt: str, batch: int, seed: int) -> dict[str, str]:
    """Checkpoint → prompts → empty latent → KSampler → VAE Decode; node ids by role."""
    c = g.add("CheckpointLoaderSimple", ckpt_name=ckpt)
    pos = g.add("CLIPTextEncode", clip=[c, 1], text="1girl, masterpiece, best quality")
    neg = g.add("CLIPTextEncode", clip=[c, 1], text="lowres, bad anatomy")
    empty = g.add("EmptyLatentImage", width=SIZE, height=SIZE, batch_size=batch)
    ks = g.add("KSampler", model=[c, 0], positive=[pos, 0], negative=[neg, 0],
               latent_image=[empty, 0], seed=seed, steps=STEPS, cfg=CFG,
               sampler_name="euler", scheduler="normal", denoise=1.0)
    dec = g.add("VAEDecode", samples=[ks, 0], vae=[c, 2])
    return {"ckpt": c, "pos": pos, "neg": neg, "ksampler": ks, "decode": dec}


def test_mixed_batch_passed_latents_are_the_passed_images_latents(comfy, sd15):
    g = Graph(comfy.object_info)
    gen = generator(g, sd15, batch=2, seed=1)
    photos = g.add("SaitenSampleImages", size=SIZE)  # 4 photos + 3 broken frames
    mixed = g.add("ImageBatch", image1=[gen["decode"], 0], image2=[photos, 0])
    enc = g.add("VAEEncode", pixels=[mixed, 0], vae=[gen["ckpt"], 2])
    _, flt = g.score([mixed, 0], latent=[enc, 0], threshold=85.0)
    every = g.add("SaitenTestDigest", images=[mixed, 0], latent=[enc, 0])
    passed = g.add("SaitenTestDigest", images=[flt, 0], latent=[flt, 4])
    rejected = g.add("SaitenTestDigest", images=[flt, 1], latent=[flt, 5])
    hires = g.add("KSampler", model=[gen["ckpt"], 0], positive=[gen["pos"], 0],
                  negative=[gen["neg"], 0], latent_image=[flt, 4], seed=2, steps=1,
                  cfg=CFG, sampler_name="euler", scheduler="normal", denoise=0.5)
    second = g.add("SaitenTestDigest", latent=[hires, 0])
    h = comfy.run(g.prompt, timeout=900)

    text = h.text(flt)
    yes, no = (indices(ln) for ln in text.splitlines()[1:3])
    assert {0, 1} <= set(no), text                # both generated (flat) frames rejected
    assert {2, 6, 7, 8} <= set(yes), text         # the four photos pass
    every_d, p, r = (h.ui(n)["digest"][0] for n in (every, passed, rejected))
    for d, idx in ((p, yes), (r, no)):  # the images, and exactly their latents, in order
        assert d["images"] == [every_d["images"][i] for i in idx]
        assert d["latents"] == [every_d["latents"][i] for i in idx]
    assert h.ui(second)["digest"][0]["latent_shape"][0] == len(yes)  # only winners re-sampled


def test_generated_flat_frames_are_caught_and_blocked(comfy, sd15):
    g = Graph(comfy.object_info)
    gen = generator(g, sd15, batch=4, seed=3)
    agg, flt = g.score([gen["decode"], 0], latent=[gen["ksampler"], 0], threshold=60.0)
    save = g.add("SaitenSaveImage", images=[flt, 0], filename_prefix="gen/blocked")
    loaded = g.add("SaitenTestLoadedModels", after=[flt, 1])
    h = comfy.run(g.prompt, timeout=900)
    assert h.text(flt).startswith("passed 0/4"), h.text(flt)
    assert h.ui(save) == {} and h.files(save) == []
    assert h.text(agg).count("flat") >= 4 or h.text(agg).count("no content") >= 4, h.text(agg)

    # while the prompt ran: the diffusion model and our scorer loaded together
    rows = h.ui(loaded)["loaded"]
    kinds = {r["patcher"] for r in rows}
    assert "ModelPatcher" in kinds and "SessionPatcher" in kinds, rows
    names = {(r["patcher"], r["name"].rsplit("/", 1)[-1]) for r in rows}
    assert {("ModelPatcher", "BaseModel"), ("SessionPatcher", "320n.onnx")} <= names, names

    assert comfy.free_until(lambda: not comfy.get("/saiten_test/loaded")["models"])  # both go
    assert comfy.get("/saiten_test/loaded")["models"] == []
    sources = comfy.get("/saiten_test/loaded")["sources"]
    assert {"name": "nudenet", "loaded": False} in sources, sources
