"""The one rule for a path a user or a shared workflow names inside a folder of ours
(`scoring.core.paths.confined`), on real folders and symlinks: relative paths inside are
resolved; absolute, `..`, `~` and Windows shapes are refused by their shape, a symlink out by
where it leads — and no refusal says whether anything exists outside the folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from scoring.core.paths import confined

WHAT, WHERE = "calibration file", "ComfyUI's user directory"


@pytest.fixture
def folders(tmp_path) -> tuple[Path, Path]:
    """A root holding a file, a sub-folder and an empty folder; beside it, `outside` with a
    real file."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "sub").mkdir(parents=True)
    (root / "empty").mkdir()
    outside.mkdir()
    (root / "cal.json").write_text("[]", encoding="utf-8")
    (root / "sub" / "x.json").write_text("[]", encoding="utf-8")
    (outside / "real.json").write_text("[]", encoding="utf-8")
    return root, outside


def refusal(name: str, root: Path, **kw) -> str:
    with pytest.raises(ValueError) as e:
        confined(name, root, what=WHAT, where=WHERE, **kw)
    return str(e.value)


def test_a_relative_path_inside_is_resolved(folders):
    root, _ = folders
    real = root.resolve()
    assert confined("cal.json", root, what=WHAT, where=WHERE) == real / "cal.json"
    assert confined(" sub/x.json ", root, what=WHAT, where=WHERE) == real / "sub" / "x.json"
    assert confined("./sub/x.json", str(root), what=WHAT, where=WHERE) == real / "sub" / "x.json"
    (root / "alias").symlink_to(root / "sub", target_is_directory=True)  # a link inside: fine
    assert confined("alias/x.json", root, what=WHAT, where=WHERE) == real / "sub" / "x.json"


@pytest.mark.parametrize("shape", [
    "{out}/real.json",                      # absolute
    "../outside/real.json", "sub/../../outside/real.json", "sub/../cal.json",  # any `..`
    "~/real.json", "~",                     # a home folder
    "..\\outside\\real.json", "sub\\..\\cal.json",  # Windows separators
    "C:\\outside\\real.json", "C:real.json", "\\\\server\\share\\real.json", "\\real.json",
    "", "   ",
])
def test_shapes_that_could_lead_out_are_refused_before_any_look(folders, shape):
    root, outside = folders
    real = shape.format(out=outside)
    fake = real.replace("real.json", "none.json")
    message = refusal(real, root)
    assert message.startswith(f"{WHAT} ") and f"give a path relative to {WHERE}" in message
    assert message.replace("real", "X") == refusal(fake, root).replace("none", "X")
    assert str(outside) not in message.replace(real, "")  # only the name given is quoted


def test_a_symlink_out_is_refused_whether_its_target_exists_or_not(folders):
    root, outside = folders
    (root / "out.json").symlink_to(outside / "real.json")
    (root / "gone.json").symlink_to(outside / "none.json")
    (root / "dir").symlink_to(outside, target_is_directory=True)
    messages = set()
    for name in ("out.json", "gone.json", "dir/real.json", "dir/none.json", "dir"):
        message = refusal(name, root, file=name != "dir")
        assert f"leads outside {WHERE}" in message and str(outside) not in message
        messages.add(message.replace(repr(name), "X"))
    assert len(messages) == 1
    assert f"leads outside {WHERE}" in refusal(".", root, file=False)  # the root itself


def test_a_file_must_exist_and_be_a_file(folders):
    root, _ = folders
    assert refusal("none.json", root) == f"{WHAT} not found: none.json in {WHERE}"
    assert refusal("sub", root) == f"{WHAT} not found: sub in {WHERE}"


def test_folders_with_file_false(folders):
    root, _ = folders
    real = root.resolve()
    assert confined("empty", root, what=WHAT, where=WHERE, file=False) == real / "empty"
    assert confined("sub/x.json", root, what=WHAT, where=WHERE, file=False) == \
        real / "sub" / "x.json"
    # a folder still to be made (e.g. a report's sub-folder) is fine: nothing is looked at
    assert confined("new/night1", root, what=WHAT, where=WHERE, file=False) == \
        real / "new" / "night1"
    assert "give a path relative to" in refusal("../outside", root, file=False)
