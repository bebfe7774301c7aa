"""`python -m scoring score --sources …,censor,likeness` as a real subprocess on real PNGs, with
stand-in models in the real repositories' layouts: the publish verdict and the character
decision per file in the table and the report — the same verdicts the sources give in
process — the rule as an option, and the resume cache keyed by the reference folder's files."""

from __future__ import annotations

import json
import os

import pytest
from helpers.censor_images import mark, paint_mosaic, scene
from helpers.models.ccip_models import build_ccip
from helpers.models.yolo_models import build_censor
from helpers.run_cli import run
from PIL import Image as PILImage

from scoring.core.images import load
from scoring.sources import ScoreContext
from scoring.sources.onnx.censor import CensorSource

BOX = (300, 420, 460, 540)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("publish_cli")
    censor = build_censor(root / "models" / "censor_detect_v1.0_s", size=320).parent
    ccip = build_ccip(root / "models" / "ccip-caformer-24-randaug-pruned").parent
    folder, refs = root / "out", root / "refs"
    folder.mkdir()
    refs.mkdir()
    base = mark(scene(1001, 700, seed=5), BOX)
    images = {"a_mosaic12.png": paint_mosaic(base, BOX, 12), "b_bare.png": base,
              "c_fine3.png": paint_mosaic(base, BOX, 3, (1, 2)),
              "d_clean.png": scene(1001, 700, seed=6),
              "e_other.png": mark((scene(1001, 700, seed=5) * [0.15, 0.3, 1.0]).astype("uint8"),
                                  BOX)}  # another palette: another "character" for the stand-in
    for name, img in images.items():
        PILImage.fromarray(img).save(folder / name)
    for s in (7, 8):
        PILImage.fromarray(scene(600, 500, seed=s)).save(refs / f"ref{s}.png")
    return {"censor": censor, "ccip": ccip, "folder": folder, "refs": refs, "root": root}


def _score(setup, out, *extra):
    return run("score", str(setup["folder"]), "--sources", "technical,censor,likeness",
               "--out", str(out), "--comfy", "off",
               "--option", f"censor.model_path={setup['censor']}",
               "--option", "censor.nudenet=false",
               "--option", f"likeness.model_path={setup['ccip']}",
               "--option", f"likeness.references={setup['refs']}", *extra,
               cwd=setup["root"])


def _rows(out):
    return {r["file"]: r for r in map(json.loads, (out / "report.jsonl").read_text(
        encoding="utf-8").splitlines())}


def test_verdicts_in_the_table_and_report(setup):
    out = setup["root"] / "r1"
    p = _score(setup, out, "--require-publishable", "--require-character")
    assert p.returncode == 0, p.stderr
    rows = _rows(out)
    got = {f: (r["decision"]["status"], r["decision"].get("publish")) for f, r in rows.items()}
    assert got == {"a_mosaic12.png": ("passed", "publishable"),
                   "b_bare.png": ("needs work", "needs work"),
                   "c_fine3.png": ("needs work", "needs work"),
                   "d_clean.png": ("passed", "publishable"),
                   "e_other.png": ("rejected", "needs work")}
    assert "3 px found, 11 px needed" in rows["c_fine3.png"]["decision"]["why"]
    assert "another character" in rows["e_other.png"]["decision"]["why"]
    assert rows["a_mosaic12.png"]["axes"]["likeness"] > 50
    head = p.stdout.splitlines()[0]
    assert "publish" in head and "like" in head
    line = next(ln for ln in p.stdout.splitlines() if ln.startswith("b_bare.png"))
    assert "needs work" in line
    csv_head = (out / "report.csv").read_text(encoding="utf-8").splitlines()[0]
    assert csv_head.startswith("name,score,status,rule,publish,")


def test_the_cli_gives_the_sources_own_verdicts(setup):
    """The report's publish verdicts are those the censor source gives in process."""
    out = setup["root"] / "r2"
    assert _score(setup, out).returncode == 0
    rows = _rows(out)
    src = CensorSource(model_path=setup["censor"], nudenet=False)
    files = sorted(setup["folder"].iterdir())
    mine = src.score([load(f) for f in files], ScoreContext())
    for f, (card,) in zip(files, mine, strict=True):
        cards = [c for c in rows[f.name]["cards"] if c["source"] == "censor"]
        assert cards[0]["extras"]["publish"] == card.extras["publish"], f.name
    src.unload()


def test_rule_option_and_the_reference_folder_keys_the_cache(setup):
    out = setup["root"] / "r3"
    first = _score(setup, out, "--option", "censor.rule=strict x2")
    assert first.returncode == 0, first.stderr
    rows = _rows(out)
    assert rows["a_mosaic12.png"]["decision"]["publish"] == "needs work"   # 22 px needed
    likes = [c for c in rows["a_mosaic12.png"]["cards"] if c["source"] == "likeness"]
    assert likes[0]["extras"]["references"] == 2
    again = _rows(out) if _score(setup, out, "--option", "censor.rule=strict x2"
                                 ).returncode == 0 else None
    assert again and all(r.get("reused") == "cache" for r in again.values())
    extra = setup["refs"] / "ref9.png"
    PILImage.fromarray(scene(600, 500, seed=9)).save(extra)
    os.utime(extra)
    try:
        third = _score(setup, out, "--option", "censor.rule=strict x2")
        assert third.returncode == 0, third.stderr
        likes = [c for c in _rows(out)["a_mosaic12.png"]["cards"] if c["source"] == "likeness"]
        assert likes[0]["extras"]["references"] == 3                      # rescored
    finally:
        extra.unlink()
