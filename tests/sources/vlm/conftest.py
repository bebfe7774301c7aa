"""The VLM tests' real model folders, built once (tests/helpers/models/tiny_hf.py): tiny
vision-language models as `save_pretrained` writes them, and a text-only one."""

from __future__ import annotations

import pytest
from helpers.models.tiny_hf import VISION, build_text_only


@pytest.fixture(scope="session")
def vlm_folder(tmp_path_factory):
    """A models folder holding one tiny model per architecture, as a user would have it."""
    pytest.importorskip("transformers")
    root = tmp_path_factory.mktemp("saiten_vlm")
    for name, build in VISION.items():
        build(root / f"tiny-{name}")
    return root


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Each tiny vision-language model by architecture, and a text-only LLM ("text")."""
    pytest.importorskip("transformers")
    root = tmp_path_factory.mktemp("vlm_folders")
    made = {name: build(root / f"tiny-{name}") for name, build in VISION.items()}
    made["text"] = build_text_only(root / "Qwen2-0.5B-Instruct")
    return made
