"""Saiten Diagnostics in a real ComfyUI: it runs alone, lists the folders the Tagger and VLM
Loader really search (ComfyUI's models folder of this server) with what is in them, and says
whether the judge's key variable is set without ever showing the value."""

from __future__ import annotations

import json
from pathlib import Path

from comfy_harness import on_start

SECRET = "xai-NOT-A-REAL-KEY-9876543210zyxwvuZYXWVU"


@on_start
def _key_and_model(models_dir: Path, env: dict[str, str]) -> None:
    env["SAITEN_DIAG_TEST_KEY"] = SECRET
    (models_dir / "saiten_tagger" / "diag-tagger").mkdir(parents=True, exist_ok=True)


def diagnostics(key_env: str) -> dict:
    return {"1": {"class_type": "SaitenDiagnostics", "inputs": {"key_env": key_env}}}


def test_runs_alone_and_reports_the_real_folders(comfy):
    h = comfy.run(diagnostics("SAITEN_DIAG_TEST_KEY"))
    text = h.text("1")
    assert "ONNX Runtime: onnxruntime" in text and "NudeNet model: " in text
    (tagger,) = [line for line in text.splitlines()  # other test files' hooks add theirs
                 if line.strip().startswith(f"{comfy.models_dir / 'saiten_tagger'}: ")]
    assert "diag-tagger/" in tagger.split(": ", 1)[1].split(", "), tagger
    assert f"{comfy.models_dir / 'saiten_vlm'}" in text
    assert "judge key: $SAITEN_DIAG_TEST_KEY set: yes" in text
    assert SECRET not in json.dumps(h.entry) and SECRET not in comfy.log(200_000)
    again = comfy.run(diagnostics("SAITEN_DIAG_TEST_KEY"))  # never served from the cache
    assert again.text("1")


def test_unset_variable_and_a_pasted_key(comfy):
    h = comfy.run(diagnostics("SAITEN_DIAG_UNSET"))
    assert "judge key: $SAITEN_DIAG_UNSET set: no" in h.text("1")
    bad = comfy.run(diagnostics(SECRET), check=False)
    assert bad.status == "error"
    message = bad.message("execution_error")["exception_message"]  # (ComfyUI itself echoes
    assert "NAME of an environment variable" in message and SECRET not in message  # inputs)
