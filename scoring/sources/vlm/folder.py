"""Whether a transformers model folder can score images, read from its files alone.

A folder scores images only with a vision tower and the files that turn an image and a
prompt into tokens. Without them transformers still loads *something* — a text-only
`Qwen2ForCausalLM` answers every image alike (it never sees them), a folder without its
tokenizer gets an empty one and fails per image with "Mismatch in image token count" —
so the loader refuses such folders up front, saying why, and discovery does not list
text-only ones (`models/LLM`, shared with other packs, is full of them).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ...core.errors import SourceError

VISION_KEYS = ("vision_config", "vision_tower", "visual", "vision_encoder")
"""config.json keys that hold a vision tower's settings (LLaVA, Qwen-VL, Gemma 3, …)."""

REQUIRED_FILES: dict[str, tuple[tuple[str, ...], ...]] = {
    "tokenizer": (("tokenizer.json",), ("tokenizer.model",), ("vocab.json", "merges.txt")),
    "image processor": (("preprocessor_config.json",), ("processor_config.json",)),
}
"""What each part needs: any one of these sets of files (what `save_pretrained` and the
Hugging Face repos of the models we know write)."""

TEMPLATE_FILES = ("chat_template.jinja", "chat_template.json")
TEMPLATE_HOLDERS = ("tokenizer_config.json", "processor_config.json")
"""The chat template is a file of its own, or a `chat_template` key in one of these."""


def read_config(folder: Path) -> dict[str, Any]:
    """config.json of a model folder; SourceError saying what is wrong."""
    path = folder / "config.json"
    if not path.is_file():
        raise SourceError(f"{folder} is not a transformers model folder (no config.json); put "
                          "the files of the Hugging Face repo (config, weights, processor) there")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise SourceError(f"{path}: cannot read config.json ({e})") from e
    if not isinstance(config, dict) or not config.get("model_type"):
        raise SourceError(f"{path}: config.json has no model_type; the folder is incomplete "
                          "or not a transformers model")
    return config


def _image_text_types() -> frozenset[str]:
    """The model types transformers builds as image-text-to-text (empty without it)."""
    try:
        from transformers.models.auto.modeling_auto import (
            MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES as names,
        )
    except ImportError:
        return frozenset()
    return frozenset(names)


def sees_images(config: dict[str, Any]) -> bool:
    """True when the architecture has a vision tower."""
    return (any(k in config for k in VISION_KEYS)
            or config.get("model_type") in _image_text_types())


def blind_reason(folder: Path, config: dict[str, Any]) -> str | None:
    """Why a folder's architecture cannot see images, or None when it can."""
    if sees_images(config):
        return None
    arch = ", ".join(config.get("architectures") or ()) or config.get("model_type")
    return (f"{folder.name} is a text-only model ({arch}, model_type "
            f"{config.get('model_type')!r}): it has no vision tower and would score every "
            "image blind. Choose a vision-language model (JoyCaption, ToriiGate, Qwen2.5-VL…)")


def _has_template(folder: Path) -> bool:
    if any((folder / f).is_file() for f in TEMPLATE_FILES):
        return True
    for name in TEMPLATE_HOLDERS:
        try:
            data = json.loads((folder / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data.get("chat_template"):
            return True
    return False


def missing_files(folder: Path) -> list[str]:
    """The files a folder lacks, each as "part: file (or other file)"; empty when complete."""
    out = []
    for part, choices in REQUIRED_FILES.items():
        if not any(all((folder / f).is_file() for f in files) for files in choices):
            out.append(f"{part} ({' or '.join(' + '.join(files) for files in choices)})")
    if not _has_template(folder):
        out.append(f"chat template ({' or '.join(TEMPLATE_FILES)}, or a chat_template in "
                   f"{' or '.join(TEMPLATE_HOLDERS)})")
    return out


def check_folder(folder: Path) -> dict[str, Any]:
    """config.json of a folder that can score images; SourceError naming what it lacks."""
    config = read_config(folder)
    blind = blind_reason(folder, config)
    if blind:
        raise SourceError(blind)
    missing = missing_files(folder)
    if missing:
        raise SourceError(f"{folder.name} is incomplete, missing " + "; ".join(missing)
                          + ". Download every file of the model's repository into the folder")
    return config


def listable(folder: Path) -> bool:
    """Whether discovery should offer a folder holding config.json: not a text-only model.
    (An incomplete VLM is listed: choosing it says what is missing.)"""
    try:
        return sees_images(read_config(folder))
    except SourceError:
        return True  # a broken config.json is the loader's to explain
