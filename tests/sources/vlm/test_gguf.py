"""GGUF files without running llama.cpp (`scoring.sources.vlm.gguf`): headers read without
loading, and the pair check — a text model and its mmproj that belong together, or a clear
error naming both files, on which the llama.cpp source abstains."""

from __future__ import annotations

import struct
from dataclasses import replace

import numpy as np
import pytest

from scoring.sources import SourceError
from scoring.sources.vlm.gguf import read_gguf_header, read_pair
from scoring.sources.vlm.llamacpp import LlamaCppVLM

pytest_plugins = ["helpers.models.gguf_models"]  # the session fixture `gguf_models`

IMAGES = [np.random.default_rng(i).random((48, 64, 3), dtype=np.float32) for i in range(2)]


def test_headers_are_read_without_loading(gguf_models):
    meta, shapes = read_gguf_header(gguf_models.llava_mmproj, tensors=True)
    assert meta["clip.projector_type"] == "mlp"
    assert shapes["mm.2.weight"] == (gguf_models.text_width, gguf_models.text_width)
    text_meta, _ = read_gguf_header(gguf_models.qwen_text)
    # keys after the (skipped) vocabulary arrays are still read correctly
    assert "<|im_start|>" in text_meta["tokenizer.chat_template"]
    assert text_meta["tokenizer.ggml.tokens"] > 256  # arrays are reported by length

    llava = read_pair(gguf_models.llava_text, gguf_models.llava_mmproj)
    assert (llava.arch, llava.n_embd, llava.n_layer) == ("llama", gguf_models.text_width, 2)
    assert (llava.projector, llava.projector_width) == ("mlp", gguf_models.text_width)
    assert llava.chat_format() == "llava-1.5"
    qwen = read_pair(gguf_models.qwen_text, gguf_models.qwen_mmproj)
    assert (qwen.arch, qwen.projector, qwen.projector_width) == (
        "qwen2vl", "qwen2vl_merger", gguf_models.text_width)
    assert qwen.chat_format() == "qwen2.5-vl"
    llava.check()
    qwen.check()


def test_mismatched_width_is_a_clear_error_and_the_source_abstains(gguf_models):
    src = LlamaCppVLM(gguf_models.llava_text, gguf_models.mismatched_mmproj)
    with pytest.raises(SourceError) as err:
        src.load()
    msg = str(err.value)
    for part in ("tiny-llava-text.gguf", "tiny-mismatched-mmproj.gguf",
                 str(gguf_models.mismatched_width), str(gguf_models.text_width), "mmproj"):
        assert part in msg
    assert not src.loaded

    sheet = src.score(IMAGES)
    assert len(sheet) == 2
    for cards in sheet:
        assert len(cards) == 1 and not cards[0].ok
        assert cards[0].abstained == msg


@pytest.mark.parametrize("text,proj", [("qwen_text", "llava_mmproj"),
                                       ("llava_text", "qwen_mmproj")])
def test_projector_of_another_family_is_refused(gguf_models, text, proj):
    src = LlamaCppVLM(getattr(gguf_models, text), getattr(gguf_models, proj))
    with pytest.raises(SourceError, match=r"projector type .* does not belong to text arch"):
        src.load()


def test_swapped_or_missing_files_say_so(gguf_models, tmp_path):
    with pytest.raises(SourceError, match="is an mmproj"):
        read_pair(gguf_models.llava_mmproj, gguf_models.llava_text)
    with pytest.raises(SourceError, match="not found"):
        read_pair(tmp_path / "nope.gguf", gguf_models.llava_mmproj)
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a gguf at all")
    with pytest.raises(SourceError, match="cannot read text model"):
        read_pair(junk, gguf_models.llava_mmproj)
    bogus = tmp_path / "bogus-mmproj.gguf"  # GGUF magic, absurd counts: fails fast
    bogus.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 2**62))
    with pytest.raises(SourceError, match=r"cannot read mmproj 'bogus-mmproj\.gguf': corrupt"):
        read_pair(gguf_models.llava_text, bogus)


def test_check_trusts_layer_shapes_and_knows_families(gguf_models):
    good = read_pair(gguf_models.llava_text, gguf_models.llava_mmproj)
    replace(good, projector_width=None).check()  # projector layout unknown: mtmd decides
    replace(good, projector_width=48, projection_dim=64).check()  # converter says it fits
    with pytest.raises(SourceError, match="48-wide"):
        replace(good, projector_width=48, projection_dim=48).check()
    replace(good, arch="gemma3", projector="gemma3").check()  # not a restricted family
    assert replace(good, projector="gemma3").chat_format() == "mtmd"
    with pytest.raises(SourceError, match="qwen3vl_merger"):
        replace(good, arch="qwen2vl", projector="qwen3vl_merger").check()
