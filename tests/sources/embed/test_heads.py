"""The aesthetic heads over real (tiny, random) transformers encoders: the authors' weight
files load as they are (and nothing else does), SigLIP's pooling is transformers' own, scores
and confidences are deterministic, and every way in is checked."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers.models.aesthetic_models import build_clip, build_siglip, save_head

from scoring.core.errors import SourceError
from scoring.sources.embed import heads
from scoring.sources.embed.encoders import TransformersEncoder, attention_pool, read_pooling
from scoring.sources.embed.source import AestheticHead


@pytest.fixture(scope="module")
def encoders(tmp_path_factory):
    root = tmp_path_factory.mktemp("enc")
    return {"clip": build_clip(root / "clip"), "siglip": build_siglip(root / "siglip")}


def images(n: int = 4, size: tuple[int, int] = (96, 80)) -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    out = []
    for i in range(n):
        img = rng.random((*size, 3), dtype=np.float32) * 0.3
        img[..., i % 3] += 0.6  # a different dominant colour each
        out.append(np.clip(img, 0, 1))
    return out


@pytest.mark.parametrize(("label", "suffix", "dim"), [
    ("aesthetic-v2.5", ".pth", 64), ("waifu-scorer-v3", ".safetensors", 48),
    ("laion-aesthetic", ".pth", 48)])
def test_each_heads_own_file_format_loads_and_is_identified(tmp_path, label, suffix, dim):
    path = save_head(tmp_path / f"h{suffix}", label, dim)
    head, module, in_dim = heads.load(path)
    assert head.label == label and in_dim == dim and not module.training
    state = heads.read_state(path)
    assert sorted(state) == sorted(heads.build_keys(head))
    if label == "aesthetic-v2.5":
        assert all(v.dtype == torch.bfloat16 for v in state.values())  # as the real file


def test_unknown_or_broken_head_files_are_refused(tmp_path):
    bad = tmp_path / "x.pth"
    torch.save({"fc.weight": torch.zeros(3, 3)}, bad)
    with pytest.raises(SourceError, match="unknown head"):
        heads.load(bad)
    (tmp_path / "junk.pth").write_bytes(b"not a pickle")
    with pytest.raises(SourceError, match="not a readable head"):
        heads.load(tmp_path / "junk.pth")
    evil = tmp_path / "evil.pth"
    torch.save({"layers.0.weight": torch.zeros(1), "code": object()}, evil)
    with pytest.raises(SourceError):  # weights_only: no arbitrary objects
        heads.load(evil)
    with pytest.raises(SourceError, match="not found"):
        heads.load(tmp_path / "missing.pth")


def test_siglip_pooling_is_transformers_own(encoders):
    from transformers import SiglipVisionModel

    model = SiglipVisionModel.from_pretrained(str(encoders["siglip"]), dtype=torch.float32)
    tokens = torch.randn(3, 729, 64)
    want = getattr(model, "vision_model", model).head(tokens)
    got = attention_pool(tokens, read_pooling(encoders["siglip"] / "model.safetensors"),
                         heads=4)
    assert torch.allclose(got, want, atol=1e-4)


def test_a_clip_file_has_no_pooling_head(encoders):
    with pytest.raises(SourceError, match="attention-pooling head"):
        read_pooling(encoders["clip"] / "model.safetensors")


@pytest.mark.parametrize(("label", "family", "dim"), [
    ("waifu-scorer-v3", "clip", 48), ("laion-aesthetic", "clip", 48),
    ("aesthetic-v2.5", "siglip", 64)])
def test_scores_differ_per_image_and_repeat_exactly(tmp_path, encoders, label, family, dim):
    head = save_head(tmp_path / "head.safetensors", label, dim)
    source = AestheticHead(head_path=head, encoder=encoders[family], device="cpu",
                           label=label)
    imgs = images()
    first = source.score(imgs)
    again = source.score(imgs)
    cards = [c[0] for c in first]
    assert all(c.ok and set(c.axes) == {"appeal", "overall"} for c in cards)
    values = [c.axes["appeal"] for c in cards]
    assert len(set(values)) == len(values)                       # the images differ
    assert [c[0].axes for c in again] == [c.axes for c in cards]
    assert all(0.0 <= c.confidence <= 1.0 for c in cards)
    assert [c[0].confidence for c in again] == [c.confidence for c in cards]
    assert cards[0].source == label and cards[0].extras["head"] == label


def test_a_head_on_the_wrong_encoder_says_which_to_connect(tmp_path, encoders):
    head = save_head(tmp_path / "v25.pth", "aesthetic-v2.5", 64)
    result = AestheticHead(head_path=head, encoder=encoders["clip"], device="cpu").score(
        images(1))
    assert "SigLIP so400m-patch14-384" in result[0][0].abstained
    narrow = save_head(tmp_path / "w.safetensors", "waifu-scorer-v3", 768)
    result = AestheticHead(head_path=narrow, encoder=encoders["clip"], device="cpu").score(
        images(1))
    assert "48" in result[0][0].abstained and "768" in result[0][0].abstained


def test_a_broken_image_abstains_alone(tmp_path, encoders):
    head = save_head(tmp_path / "l.pth", "laion-aesthetic", 48)
    imgs = images(3)
    imgs[1] = np.full_like(imgs[1], np.nan)
    sheet = AestheticHead(head_path=head, encoder=encoders["clip"], device="cpu").score(imgs)
    assert sheet[0][0].ok and sheet[2][0].ok
    assert "NaN" in sheet[1][0].abstained


def test_mixed_sizes_score_like_alone(tmp_path, encoders):
    head = save_head(tmp_path / "l.pth", "laion-aesthetic", 48)
    source = AestheticHead(head_path=head, encoder=encoders["clip"], device="cpu",
                           batch_size=2)
    a, b = images(2, (96, 80)), images(2, (64, 128))
    mixed = source.score([a[0], b[0], a[1], b[1]])
    alone = [source.score([x])[0][0].axes for x in (a[0], b[0], a[1], b[1])]
    assert [c[0].axes for c in mixed] == alone


def test_not_a_vision_model_folder(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "llama"}')
    with pytest.raises(SourceError, match="neither CLIP nor SigLIP"):
        TransformersEncoder(tmp_path)
