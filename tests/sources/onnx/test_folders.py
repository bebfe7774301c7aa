"""Model folders of the censor and likeness sources: local first, a known model downloaded
from a real local hub (HF_ENDPOINT) in its repository's layout (one subfolder per model) only
when allowed, and the source runs on what was fetched."""

from __future__ import annotations

import pytest
from helpers.censor_images import as_float, mark, scene
from helpers.models.ccip_models import build_ccip
from helpers.models.yolo_models import build_censor

from scoring.sources import SourceError
from scoring.sources.onnx import censor, folders, likeness

pytest_plugins = ["helpers.hub"]  # hub_env: a fake Hugging Face hub on 127.0.0.1


def _repo_files(repo, name, folder):
    return {f"{repo}:{name}/{p.name}": p.read_bytes() for p in folder.iterdir()}


def test_choices_and_local_first(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    build_censor(a / "mine", size=64)
    build_censor(b / "censor_detect_v1.0_n", size=64)
    (b / "empty").mkdir()
    assert folders.choices(censor.SPEC, [a, b]) == [
        "censor_detect_v1.0_s", "censor_detect_v1.0_n", "mine"]
    assert folders.resolve(censor.SPEC, "mine", [a, b]) == a / "mine" / "model.onnx"
    assert folders.resolve(censor.SPEC, str(b / "censor_detect_v1.0_n"), []) == \
        b / "censor_detect_v1.0_n" / "model.onnx"
    assert folders.choices(likeness.SPEC, [])[0] == "ccip-caformer-24-randaug-pruned"


def test_missing_models_say_what_to_do(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with pytest.raises(SourceError, match=r"put a folder other/ holding model\.onnx and "
                                          r"model_artifacts\.json"):
        folders.resolve(censor.SPEC, "other", [tmp_path])
    with pytest.raises(SourceError, match="downloads are off") as e:
        folders.resolve(likeness.SPEC, "ccip-caformer-24-randaug-pruned", [tmp_path])
    assert "huggingface.co/deepghs/ccip_onnx/tree/main/ccip-caformer-24-randaug-pruned" in \
        str(e.value)


def test_censor_model_downloads_when_allowed_and_runs(tmp_path, hub_env):
    src = build_censor(tmp_path / "src", size=320)
    hub = hub_env(_repo_files(censor.REPO, "censor_detect_v1.0_s", src.parent))
    seen = []
    path = folders.resolve(censor.SPEC, "censor_detect_v1.0_s", [tmp_path / "models"],
                           allow_download=True,
                           feedback={"progress": lambda *a: seen.append(a[0])})
    assert path == tmp_path / "models" / "censor_detect_v1.0_s" / "model.onnx"
    assert {"model.onnx", "model_artifacts.json"} <= set(seen)
    n = len(hub.requests)
    assert folders.resolve(censor.SPEC, "censor_detect_v1.0_s", [tmp_path / "models"],
                           allow_download=True) == path and len(hub.requests) == n
    card = censor.CensorSource(model_path=path, nudenet=False).score(
        [as_float(mark(scene(400, 300), (50, 60, 150, 140)))])[0][0]
    assert card.ok and card.extras["publish"]["regions"][0]["label"] == "pussy"


def test_ccip_model_downloads_when_allowed_and_runs(tmp_path, hub_env):
    name = "ccip-caformer-24-randaug-pruned"
    src = build_ccip(tmp_path / "src")
    hub_env(_repo_files(likeness.REPO, name, src.parent))
    path = folders.resolve(likeness.SPEC, name, [tmp_path / "models"], allow_download=True)
    assert path.name == "model_feat.onnx" and (path.parent / "metrics.json").is_file()
    img = as_float(scene(200, 200))
    card = likeness.LikenessSource(model_path=path).score(
        [img], likeness_ctx([img]))[0][0]
    assert card.ok and card.extras["same_character"]


def likeness_ctx(refs):
    from scoring.sources import ScoreContext
    return ScoreContext(options={"references": refs})
