"""A loader that only accepts what can see: text-only transformers folders are refused (and
not listed), incomplete ones are refused naming the missing files — on real folders that
`save_pretrained` wrote (tests/helpers/models/tiny_hf.py)."""

from __future__ import annotations

import shutil

import pytest
from helpers.models.tiny_hf import VISION, sample_image

from scoring.sources import ScoreContext, SourceError, create
from scoring.sources.vlm.folder import (
    blind_reason,
    check_folder,
    listable,
    missing_files,
    read_config,
)

pytest.importorskip("torch")
pytest.importorskip("transformers")


def test_vision_language_folders_are_accepted_and_listed(folders):
    for name in VISION:
        assert check_folder(folders[name])["model_type"]
        assert listable(folders[name]) and missing_files(folders[name]) == []


def test_a_text_only_model_is_refused_with_the_reason_and_not_listed(folders):
    text = folders["text"]
    reason = blind_reason(text, read_config(text))
    assert "text-only model (Qwen2ForCausalLM, model_type 'qwen2')" in reason
    assert "no vision tower" in reason and "blind" in reason
    assert not listable(text)
    src = create("vlm-transformers", model_dir=text, method="generate")
    with pytest.raises(SourceError, match="text-only model"):
        src.load()
    (card,) = src.score([sample_image(0)], ScoreContext())[0]
    assert not card.ok and "no vision tower" in card.abstained
    assert not src.loaded  # refused before anything was loaded


@pytest.mark.parametrize(("removed", "named"), [
    (["tokenizer.json"], "tokenizer (tokenizer.json or tokenizer.model or vocab.json + "
                         "merges.txt)"),
    (["processor_config.json"], "image processor (preprocessor_config.json or "
                                "processor_config.json)"),
    (["chat_template.jinja"], "chat template (chat_template.jinja or chat_template.json"),
])
def test_a_folder_missing_files_is_refused_naming_them(folders, tmp_path, removed, named):
    folder = tmp_path / "JoyCaption-incomplete"
    shutil.copytree(folders["llava"], folder)
    for f in removed:
        (folder / f).unlink()
    assert listable(folder)  # still offered: choosing it says what is missing
    src = create("vlm-transformers", model_dir=folder, method="generate")
    sheet = src.score([sample_image(0), sample_image(1)], ScoreContext())
    card = sheet[0][0]
    assert all(not c.ok and c.abstained == card.abstained for (c,) in sheet)
    assert named in card.abstained, card.abstained
    assert "JoyCaption-incomplete is incomplete, missing" in card.abstained
    assert not src.loaded


def test_a_chat_template_inside_tokenizer_config_counts(folders, tmp_path):
    import json

    folder = tmp_path / "template-in-config"
    shutil.copytree(folders["llava"], folder)
    template = (folder / "chat_template.jinja").read_text(encoding="utf-8")
    (folder / "chat_template.jinja").unlink()
    config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    (folder / "tokenizer_config.json").write_text(
        json.dumps({**config, "chat_template": template}), encoding="utf-8")
    assert missing_files(folder) == []
