"""A CLI run's session (`scoring.batch.session`): one report row per file name, rewritten
at most every few seconds, the progress bar at a real terminal (a pty), and on the real CLI
a Ctrl-C that stops after the image in hand and still writes the report."""

from __future__ import annotations

import io
import json
import os
import pty
import signal
import subprocess
import sys

import skimage.data
from helpers.overnight import SOURCES, images
from helpers.reports import page_data
from helpers.run_cli import REPO
from PIL import Image as PILImage

from scoring.batch.runner import Runner
from scoring.batch.session import Progress, Session
from scoring.core.cards import ScoreCard
from scoring.ensemble.aggregate import AggregateSettings, combine
from scoring.report import Entry


def entry(name: str, overall: float) -> Entry:
    return Entry(name, combine([
        ScoreCard(source="a", kind="vlm", provides=("overall",), axes={"overall": overall}),
        ScoreCard(source="technical", kind="check", provides=("overall",))]))


def test_one_row_per_file_and_a_throttled_report(tmp_path):
    now = [100.0]
    s = Session(Runner([], AggregateSettings()), tmp_path, "t", Progress(None, io.StringIO()),
                every=5, clock=lambda: now[0])
    assert s.write() is None  # nothing yet
    s.add([entry("a.png", 10), entry("b.png", 20)])
    assert s.write() is not None
    s.add([entry("a.png", 90)])  # the file changed: its row is replaced, not added
    now[0] += 1
    assert s.write() is None  # too soon
    now[0] += 5
    paths = s.write()
    rows = [json.loads(x) for x in paths["jsonl"].read_text().splitlines()]
    assert [(r["file"], r["score"]) for r in rows] == [("b.png", 20.0), ("a.png", 90.0)]
    assert s.write() is None and s.write(force=True) is not None  # unchanged; forced
    assert s.note() == "2 images: 0 scored, 0 reused from the cache."
    run = page_data(paths["html"])["run"]  # the page words the same numbers in its language
    assert (run["images"], run["scored"], run["reused"]) == (2, 0, 0)


def test_progress_bar_at_a_terminal(tmp_path):
    folder = tmp_path / "night"
    images(folder, 6)
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "120"}
    pid, fd = pty.fork()
    if pid == 0:  # the child: the CLI with a terminal as stdout/stderr
        os.chdir(tmp_path)
        os.execve(sys.executable, [sys.executable, "-m", "scoring", "score", str(folder),
                                   *SOURCES, "--batch", "2", "--comfy", "off", "--out",
                                   str(tmp_path / "out")], env)
    chunks = []
    while True:
        try:
            data = os.read(fd, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    _, status = os.waitpid(pid, 0)
    text = b"".join(chunks).decode(errors="replace")
    assert os.waitstatus_to_exitcode(status) == 0, text
    assert "6/6" in text and "img/s" in text and "100%" in text
    assert "scored 2/6" not in text  # the bar replaces the plain lines


def test_interrupt_still_writes_the_report(tmp_path):
    """Ctrl-C after the first image: the run stops after the image in hand. 40 distinct
    (never served from the cache) 4-Mpx photos take the CLI seconds each handful, so the
    signal always lands long before the last one, however loaded the machine."""
    many = tmp_path / "many"
    many.mkdir()
    photo = io.BytesIO()
    PILImage.fromarray(skimage.data.coffee()).resize((2400, 1600)).save(photo, "JPEG",
                                                                        quality=90)
    for i in range(40):  # the same pixels; bytes after the image's end make each distinct
        (many / f"img{i:02}.jpg").write_bytes(photo.getvalue() + b"%d" % i)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "scoring", "score", str(many), "--sources", "technical",
         "--batch", "1", "--min-sources", "1", "--comfy", "off", "--out", str(tmp_path / "o")],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr.readline().startswith("scored 1/40")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "img00.jpg" in out
    assert "interrupted: reporting the" in err
    done = (tmp_path / "o" / "report.jsonl").read_text().splitlines()
    assert 1 <= len(done) < 40
