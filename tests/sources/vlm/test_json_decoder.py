"""Schema-shaped greedy JSON decoding for the transformers VLM
(`scoring.sources.vlm.json_decoder`) on a tiny random Qwen2-VL: whatever the weights say,
the answer is one JSON object with the schema's keys in order, integers within the schema's
enum or bounds and strings within their length — also when the token budget runs out."""

from __future__ import annotations

import json

import pytest
from helpers.models.tiny_hf import sample_image

from scoring.sources import create

pytest.importorskip("torch")
pytest.importorskip("transformers")

SCHEMA = {"type": "object", "properties": {
    "mood": {"type": "integer", "enum": [1, 2, 3]},
    "score": {"type": "integer", "minimum": 10, "maximum": 20},
    "note": {"type": "string", "maxLength": 5},
}}


@pytest.mark.parametrize("max_tokens", [64, 2])  # 2: the budget ends before the values do
def test_any_schema_gives_one_object_within_its_bounds(vlm_folder, max_tokens):
    vlm = create("vlm-transformers", model_dir=vlm_folder / "tiny-qwen2vl")
    vlm.load()
    try:
        for seed in range(3):
            text = vlm.chat(sample_image(seed), "You rate images.", "Rate this one.",
                            schema=SCHEMA, max_tokens=max_tokens)
            answer = json.loads(text)
            assert list(answer) == ["mood", "score", "note"], text
            assert answer["mood"] in (1, 2, 3) and 10 <= answer["score"] <= 20
            note = answer["note"]
            assert len(note) <= 5 and note == note.strip() and note.isprintable()
    finally:
        vlm.unload()
