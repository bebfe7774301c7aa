"""A run that dies while scoring files (killed: SIGKILL, as the out-of-memory killer does)
leaves its record behind; the next run retries those files one at a time and skips a file
that was in hand alone when a run died, until the file changes (issue N.5)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from scoring.batch.crashes import FILE_NAME, Crashes, pid_alive

REPO = Path(__file__).resolve().parents[2]

HOLD = """
import sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from scoring.batch.crashes import Crashes
folder = Path(sys.argv[2])
with Crashes(folder).holding([folder / n for n in sys.argv[3:]]):
    print("holding", flush=True)
    time.sleep(60)
"""


def die_holding(folder: Path, *names: str) -> int:
    """A process that records `names` in hand, then is killed with SIGKILL."""
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(REPO), str(folder), *names],
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None and p.stdout.readline().strip() == "holding"
    os.kill(p.pid, signal.SIGKILL)
    p.wait(10)
    return p.pid


def files(folder: Path, *names: str) -> list[Path]:
    for n in names:
        (folder / n).write_bytes(n.encode())
    return [folder / n for n in names]


def test_a_batch_in_hand_when_a_run_died_is_retried_one_file_at_a_time(tmp_path):
    a, b, c = files(tmp_path, "a.png", "b.png", "c.png")
    pid = die_holding(tmp_path, "a.png", "b.png")
    assert not pid_alive(pid)
    crashes = Crashes(tmp_path)
    assert set(crashes.suspects) == {"a.png", "b.png"} and crashes.crashed == {}
    assert crashes.alone([a, b, c]) == [[a], [b], [c]]
    assert crashes.why_skipped(a) is None  # not known to crash alone yet
    with crashes.holding([a]):
        pass  # a scored alone without dying: no longer a suspect
    assert Crashes(tmp_path).alone([a, b, c]) == [[b], [a, c]]


def test_a_file_in_hand_alone_when_a_run_died_is_skipped_until_it_changes(tmp_path):
    a, b = files(tmp_path, "a.png", "b.png")
    die_holding(tmp_path, "a.png")
    crashes = Crashes(tmp_path)
    why = crashes.why_skipped(a)
    assert why == ("a.png: skipped: a run died while scoring this file (out of memory?); "
                   "it is skipped until the file changes")
    assert crashes.why_skipped(b) is None
    time.sleep(0.01)
    a.write_bytes(b"a new version")
    assert Crashes(tmp_path).why_skipped(a) is None


def test_a_live_run_beside_is_left_alone(tmp_path):
    a, b = files(tmp_path, "a.png", "b.png")
    other = Crashes(tmp_path, pid=os.getppid())  # a live process: another run's record
    with other.holding([a]):
        mine = Crashes(tmp_path)
        assert mine.suspects == {} and mine.crashed == {}
        with mine.holding([b]):
            runs = json.loads((tmp_path / FILE_NAME).read_text())["runs"]
            assert set(runs) == {str(os.getppid()), str(os.getpid())}
    assert json.loads((tmp_path / FILE_NAME).read_text())["runs"] == {}


def test_a_broken_record_is_ignored(tmp_path):
    (tmp_path / FILE_NAME).write_text("{not json")
    assert Crashes(tmp_path).suspects == {}
    assert json.loads((tmp_path / FILE_NAME).read_text()) == {"runs": {}, "suspects": {},
                                                              "crashed": {}}
