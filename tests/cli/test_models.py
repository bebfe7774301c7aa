"""`python -m scoring models` in a subprocess: the known models with size, VRAM, licence and
folder, what is installed (known or not), and `models download NAME` from a fake Hub with a
byte progress bar — resumed after an interrupted first try."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.hub import FakeHub
from helpers.models.aesthetic_models import build_anime_aesthetic

REPO = Path(__file__).resolve().parents[2]
NAME = "swinv2pv3_v0_448_ls0.2_x"


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scoring", *args], capture_output=True,
                          text=True, timeout=300, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO), **env})


@pytest.fixture
def models(tmp_path):
    root = tmp_path / "models"
    (root / "saiten_tagger" / "my-own-tagger").mkdir(parents=True)
    (root / "saiten_tagger" / "my-own-tagger" / "model.onnx").write_bytes(b"x")
    (root / "saiten_tagger" / "my-own-tagger" / "selected_tags.csv").write_text("tag_id\n")
    return root


def test_lists_known_and_installed_models(models):
    r = run("models", "--models", str(models), "--json", env={})
    assert r.returncode == 0, r.stderr
    table = {row["name"]: row for row in json.loads(r.stdout)}
    row = table[NAME]
    assert row["family"] == "aesthetic" and row["installed"] is False
    assert row["size"] and row["vram"] and row["licence"] == "openrail"
    assert row["folder"] == str(models / "saiten_aesthetic" / NAME)
    assert table["my-own-tagger"]["installed"] and "not in the catalogue" in table[
        "my-own-tagger"]["note"]
    assert table["qwen2.5-vl-nsfw"]["family"] == "vlm"
    text = run("models", "--models", str(models), env={}).stdout
    assert text.splitlines()[0].split() == ["NAME", "FAMILY", "SIZE", "VRAM", "LICENCE",
                                            "INSTALLED", "FOLDER"]
    assert any(line.startswith(NAME) for line in text.splitlines())


def test_download_shows_size_and_progress_and_resumes(models, tmp_path):
    folder = build_anime_aesthetic(tmp_path / "src", size=32)
    hub = FakeHub({"deepghs/anime_aesthetic": {f"{NAME}/{p.name}": p.read_bytes()
                                               for p in folder.iterdir()}}, lfs_from=256)
    try:
        env = {"HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": ""}
        hub.cut[f"{NAME}/model.onnx"] = 300  # first GET dies early; the transfer resumes
        r = run("models", "download", NAME, "--models", str(models), env=env)
        assert r.returncode == 0, r.stderr
        assert "downloading 3 files" in r.stdout and f"{NAME}: ready in" in r.stdout
        assert "model.onnx" in r.stderr and "B/s" in r.stderr  # a tqdm byte bar
        dest = models / "saiten_aesthetic" / NAME
        assert (dest / "model.onnx").read_bytes() == (folder / "model.onnx").read_bytes()
        ranges = [h.get("range") for m, p, h in hub.requests
                  if m == "GET" and p.startswith("/cdn/")]
        assert "bytes=300-" in ranges
        listed = json.loads(run("models", "--models", str(models), "--json", env=env).stdout)
        assert next(r for r in listed if r["name"] == NAME)["installed"] is True
        again = run("models", "download", NAME, "--models", str(models), env=env)
        assert again.returncode == 0 and "downloading" not in again.stdout
    finally:
        hub.close()


def test_unknown_name_is_a_clear_error(models):
    r = run("models", "download", "no-such-model", "--models", str(models), env={})
    assert r.returncode != 0 and "no known model 'no-such-model'" in r.stderr + r.stdout
