"""Every known model one switch away: the catalogue's facts, and fetching from a fake Hub in the
real repositories' layouts (anime_aesthetic folders, heads from the Hub and from GitHub with a
pinned sha256, a whole transformers folder, the Qwen GGUF with its paired mmproj)."""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pytest
from helpers.models.aesthetic_models import build_anime_aesthetic, save_head
from helpers.models.gguf_models import build_gguf_models

from scoring.core.errors import SourceError
from scoring.sources import create, known
from scoring.sources.vlm.files import vlm_files
from scoring.sources.vlm.gguf import read_pair

QWEN = "bartowski/thesby_Qwen2.5-VL-7B-NSFW-Caption-V3-GGUF"


def test_every_known_model_states_where_it_comes_from_and_what_it_costs():
    every = known.known()
    assert {"swinv2pv3_v0_448_ls0.2_x", "caformer_s36_v0_ls0.2", "aesthetic-v2.5",
            "waifu-scorer-v3", "laion-aesthetic", "qwen2.5-vl-nsfw",
            "llama-joycaption-beta-one-hf-llava-nf4", "ToriiGate-v0.4-2B",
            "ToriiGate-v0.4-7B", "wd-eva02-large-tagger-v3", "cl_tagger_v2"} <= set(every)
    for k in every.values():
        m = k.model
        assert bool(m.repo) != bool(m.url), k.name
        assert m.files or m.patterns, k.name
        assert m.licence and m.vram, k.name
        if m.url:
            assert re.fullmatch(r"[0-9a-f]{64}", m.sha256) and m.size > 0, k.name
            assert m.url.startswith("https://github.com/"), k.name
    qwen = every["qwen2.5-vl-nsfw"].model
    assert qwen.repo == QWEN
    assert [f for f in qwen.files if "mmproj" in f] == [
        "mmproj-thesby_Qwen2.5-VL-7B-NSFW-Caption-V3-f16.gguf"]
    assert [f for f in qwen.files if "mmproj" not in f] == [
        "thesby_Qwen2.5-VL-7B-NSFW-Caption-V3-Q4_K_M.gguf"]
    with pytest.raises(SourceError, match="no known model"):
        known.find("nope")
    assert known.find(QWEN).name == "qwen2.5-vl-nsfw"


@pytest.fixture
def hub(fake_hub):
    return fake_hub


def serve_folder(hub, repo: str, folder, prefix: str = "") -> None:
    hub.add(repo, {prefix + p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()})


def test_the_default_aesthetic_model_lands_in_its_folder_and_scores(hub, tmp_path):
    name = "swinv2pv3_v0_448_ls0.2_x"
    serve_folder(hub, "deepghs/anime_aesthetic", build_anime_aesthetic(tmp_path / "src",
                                                                     size=32), f"{name}/")
    root = tmp_path / "saiten_aesthetic"
    k = known.find(name)
    with pytest.raises(SourceError, match="downloads are off"):
        k.fetch(root, allow=False)
    said: list[str] = []
    dest = k.fetch(root, allow=True, say=said.append)
    assert dest == root / name and sorted(p.name for p in dest.iterdir()) == [
        "meta.json", "model.onnx", "samples.npz"]
    assert name in said[0] or "model.onnx" in said[0]
    source = create("aesthetic", model_path=dest / "model.onnx", device="cpu")
    img = np.full((40, 40, 3), 0.7, np.float32)
    assert source.score([img])[0][0].ok


def test_heads_come_from_the_hub_and_from_github_checked_by_their_pin(hub, tmp_path,
                                                                       monkeypatch):
    waifu = save_head(tmp_path / "w.safetensors", "waifu-scorer-v3", 768)
    hub.add("Eugeoter/waifu-scorer-v3", {"model.safetensors": waifu.read_bytes()})
    root = tmp_path / "saiten_aesthetic"
    dest = known.find("waifu-scorer-v3").fetch(root, allow=True)
    assert (dest / "model.safetensors").read_bytes() == waifu.read_bytes()

    laion = known.find("laion-aesthetic")
    stand_in = save_head(tmp_path / "l.pth", "laion-aesthetic", 768).read_bytes()
    url = hub.publish("christophschuhmann/laion.pth", stand_in)
    pinned = laion.model.__class__(**{**laion.model.__dict__, "url": url,
                                      "size": len(stand_in),
                                      "sha256": hashlib.sha256(stand_in).hexdigest()})
    k = known.Known(laion.name, laion.source, pinned)
    got = k.fetch(root, allow=True)
    assert (got / laion.model.files[0]).read_bytes() == stand_in
    wrong = known.Known("laion-x", laion.source,
                        laion.model.__class__(**{**pinned.__dict__, "folder": "laion-x",
                                                 "sha256": laion.model.sha256}))
    with pytest.raises(SourceError, match="checksum mismatch"):
        wrong.fetch(root, allow=True)       # the real pin never matches a stand-in
    assert not (root / "laion-x" / laion.model.files[0]).exists()


def test_the_qwen_gguf_comes_with_its_paired_mmproj_and_nothing_else(hub, tmp_path):
    tiny = build_gguf_models(tmp_path / "gguf")
    q = known.find("qwen2.5-vl-nsfw").model
    model_file = next(f for f in q.files if "mmproj" not in f)
    proj_file = next(f for f in q.files if "mmproj" in f)
    hub.add(QWEN, {model_file: tiny.qwen_text.read_bytes(),
                   proj_file: tiny.qwen_mmproj.read_bytes(),
                   model_file.replace("Q4_K_M", "Q8_0"): tiny.qwen_text.read_bytes(),
                   "README.md": b"# card"})
    root = tmp_path / "saiten_vlm"
    dest = known.find("qwen2.5-vl-nsfw").fetch(root, allow=True)
    assert sorted(p.name for p in dest.iterdir()) == sorted([model_file, proj_file])
    name, build = vlm_files(f"qwen2.5-vl-nsfw/{model_file}", None, [root])
    assert name == "vlm-llamacpp" and build["mmproj_path"].endswith(proj_file)
    pair = read_pair(build["model_path"], build["mmproj_path"])  # the pair is checked
    assert pair is not None
    assert not hub.gets("Q8_0.gguf") and not hub.gets("README.md")


def test_a_transformers_vlm_folder_is_the_whole_repository(hub, tmp_path):
    repo = known.find("ToriiGate-v0.4-2B").model.repo
    hub.add(repo, {"config.json": b"{}", "model.safetensors": b"x" * 5000,
                   "tokenizer.json": b"{}", "README.md": b"# card",
                   "assets/example.png": b"png"})
    assert [w.name for w in known.find("ToriiGate-v0.4-2B").wanted()][-1] == "config.json"
    dest = known.find("ToriiGate-v0.4-2B").fetch(tmp_path / "saiten_vlm", allow=True)
    assert sorted(p.name for p in dest.iterdir()) == ["config.json", "model.safetensors",
                                                      "tokenizer.json"]
    assert known.find("ToriiGate-v0.4-2B").present(tmp_path / "saiten_vlm")


def test_the_gated_cl_tagger_says_what_to_do(hub, tmp_path):
    k = known.find("cl_tagger_v2")
    hub.add(k.model.repo, {f"{k.model.subfolder}/{f}": b"x" for f in k.model.files})
    hub.gated.add(k.model.repo)
    with pytest.raises(SourceError) as e:
        k.fetch(tmp_path / "saiten_tagger", allow=True)
    assert "accept its terms" in str(e.value) and "HF_TOKEN" in str(e.value)
