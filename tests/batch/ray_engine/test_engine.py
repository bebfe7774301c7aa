"""`python -m scoring score --engine ray` on a real Ray cluster on this machine: a head and a
worker node (two `ray start` processes, 1 CPU each), the offline sources and a tiny WD
stand-in over ~200 images. Verdicts, cache and report match the one-process run; a worker
node SIGKILLed mid-run still leaves every image scored exactly once; a rerun reuses every
verdict; a judge keeps one budget, one circuit breaker and one answer cache for the whole
run across its workers; a key stays on the nodes that hold it.

The cluster tests are marked `ray` (`pytest -m "not ray"` leaves them out while iterating);
CI runs them. Without Ray in the Python, `--engine ray` says what to install.
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from helpers.fakeapi import FAKE_KEY, RUBRIC, STATE, Handler, Server
from helpers.hostile_files import cut, many_frames_gif, photo
from helpers.models.onnx_models import build_wd, wd_tags
from helpers.ray_cluster import QUIET, RayCluster, free_port, ray_missing
from helpers.run_cli import REPO
from PIL import Image as PILImage

from scoring.batch.ray_engine.engine import INSTALL, Stage, gpus_for, groups, plan_stages
from scoring.batch.ray_engine.stages import Recipe
from scoring.batch.runner import Planned, Runner
from scoring.core.images import MAX_FRAMES
from scoring.ensemble.aggregate import AggregateSettings
from scoring.remote.breaker import THRESHOLD
from scoring.sources import create, unavailable

pytest_plugins = ["helpers.fixtures_http"]

N_PNG = 195
SOURCES = ("--sources", "nudenet,technical,wd")
KEY_VAR = "SAITEN_TEST_RAY_KEY"


# -- without a cluster -------------------------------------------------------------------
def test_a_gpu_share_follows_the_memory_estimate():
    card = 24 << 30
    assert gpus_for(300 << 20, card) == 0.125  # a tagger: eight share a card
    assert gpus_for(5 << 30, card) == 0.25
    assert gpus_for(40 << 30, card) == 1.0     # never more than one card
    assert gpus_for(0, card) == 1.0            # unknown: a whole card


def test_stages_ask_for_gpus_only_where_the_cluster_has_them(wd_model):
    sources = [create("nudenet"), create("technical"), create("wd", model_path=wd_model),
               create("judge", base_url="http://127.0.0.1:9/v1"),
               unavailable("vlm-http", "cannot start: no model")]
    runner = Runner([Planned(s, None if s.name == "unavailable" else s.name)
                     for s in sources], AggregateSettings())
    recipes = [Recipe.of(s) for s in sources]
    gpu = plan_stages(runner, recipes, {"CPU": 16.0, "GPU": 2.0}, lambda: 24 << 30,
                      node_cpus=8.0)
    assert [(s.kind, s.gpus, s.actors, s.cpus) for s in gpu] == [
        ("model", 0.125, 16, 0.5), ("light", 0.0, 16, 0.25), ("model", 0.125, 16, 0.5),
        ("remote", 0.0, 16, 0.25), ("light", 0.0, 16, 0.25)]
    # two nodes of 1 CPU: one actor of each stage and a decoding task fit on either alone
    cpu = plan_stages(runner, recipes, {"CPU": 2.0}, lambda: pytest.fail("no GPU to probe"),
                      remote_workers=3, node_cpus=1.0)
    assert [(s.kind, s.gpus, s.actors) for s in cpu] == [
        ("model", 0.0, 2), ("light", 0.0, 2), ("model", 0.0, 2), ("remote", 0.0, 3),
        ("light", 0.0, 2)]
    assert sum(s.cpus for s in cpu) + cpu[0].cpus <= 1.0
    assert recipes[4].why == "cannot start: no model"
    assert recipes[2].options == {"model_path": wd_model}  # what it was built with
    assert recipes[3].options["base_url"] == "http://127.0.0.1:9/v1"
    assert recipes[3].label == "grok" == recipes[3].options["label"]


def test_light_sources_ride_along_with_the_one_before_them():
    def stage(kind: str, name: str) -> Stage:
        return Stage(kind, Recipe(name), 0.25)

    stages = [stage("light", "technical"), stage("model", "nudenet"), stage("model", "wd"),
              stage("light", "unavailable"), stage("remote", "judge")]
    assert [(lead.recipe.name, pool) for lead, pool in groups(stages)] == [
        ("nudenet", [0, 1]), ("wd", [2, 3]), ("judge", [4])]
    assert [p for _, p in groups(stages[:1])] == [[0]]


def test_without_ray_the_engine_says_what_to_install(tmp_path, folder):
    shadow = tmp_path / "shadow" / "ray"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError(\"No module named 'ray'\")\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(shadow.parent), str(REPO)])}
    r = subprocess.run([sys.executable, "-m", "scoring", "score", str(folder), "--engine",
                        "ray", "--out", str(tmp_path / "out")], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stdout + r.stderr
    assert INSTALL in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "out" / "report.jsonl").exists()


# -- fixtures ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    """195 PNGs of 64–128 px with some structure, an animated GIF (3 frames), one with more
    frames than are scored (MAX_FRAMES + 2), a JPEG, a PNG cut short and a file that is not
    an image: 200 files, 218 report rows (215 scored, 2 unreadable, 1 for the frames
    skipped)."""
    d = tmp_path_factory.mktemp("archive")
    rng = np.random.default_rng(7)
    for i in range(N_PNG):
        side = 64 + 32 * (i % 3)
        a = rng.integers(0, 255, (side, side, 3), np.uint8)
        a[:, : side // 2] //= 1 + i % 4
        PILImage.fromarray(a).save(d / f"img_{i:03}.png")
    frames = [PILImage.fromarray(np.full((80, 80, 3), c, np.uint8)) for c in (30, 120, 220)]
    frames[0].save(d / "anim.gif", save_all=True, append_images=frames[1:], duration=50)
    PILImage.fromarray(rng.integers(0, 255, (96, 72, 3), np.uint8)).save(d / "photo.jpg")
    (d / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not a png at all")
    many_frames_gif(d / "long.gif", frames=MAX_FRAMES + 2, side=48)
    cut(d / "cut.png", photo()[:128, :128], "a colour of the picture (palette PNG)", 0.5)
    return d


@pytest.fixture(scope="module")
def wd_model(tmp_path_factory) -> Path:
    tags = wd_tags()
    rng = np.random.default_rng(3)
    return build_wd(tmp_path_factory.mktemp("wd") / "wd-tiny-v3", tags,
                    rng.normal(0, 3, (3, len(tags))), rng.normal(0, 1, len(tags)))


def external_ip() -> str | None:
    """This machine's address on its network interface (not loopback), or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent: it only picks the interface
            ip = s.getsockname()[0]
        except OSError:
            return None
    return None if ip.startswith("127.") else ip


@pytest.fixture(scope="module")
def node_config(tmp_path_factory) -> Path:
    """The worker nodes' own configuration: a key bound to the keyed server's host."""
    d = tmp_path_factory.mktemp("node-config")
    return d


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, node_config) -> RayCluster:
    why = ray_missing()
    if why:
        pytest.skip(why)
    env = {"SAITEN_CONFIG_DIR": str(node_config), KEY_VAR: FAKE_KEY,
           "SAITEN_HTTP_COOLDOWN": "600"}
    c = RayCluster(tmp_path_factory.mktemp("ray-logs"), workers=1, env=env)
    try:
        yield c
    finally:
        c.stop()


def driver_env(tmp_path: Path) -> dict[str, str]:
    """The driver's environment: no key, its own (empty) configuration."""
    config = tmp_path / "driver-config"
    config.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in (KEY_VAR, "XAI_API_KEY")}
    return {**env, **QUIET, "PYTHONPATH": str(REPO), "SAITEN_CONFIG_DIR": str(config)}


def score(folder: Path, out: Path, *args: str, address: str | None = None,
          timeout: float = 600) -> subprocess.CompletedProcess[str]:
    engine = ("--engine", "ray", "--address", address) if address else ()
    return subprocess.run(
        [sys.executable, "-m", "scoring", "score", str(folder), "--comfy", "off",
         "--out", str(out), *engine, *args], cwd=out.parent, env=driver_env(out.parent),
        capture_output=True, text=True, timeout=timeout)


def report(out: Path) -> dict[str, dict]:
    rows = [json.loads(x) for x in (out / "report.jsonl").read_text().splitlines()]
    assert len(rows) == len({r["file"] for r in rows}), "a file reported twice"
    return {r["file"]: r for r in rows}


def cards(out: Path) -> dict[tuple[str, str], str]:
    with sqlite3.connect(out / "scores.sqlite") as db:
        return {(i, s): c for i, s, c in db.execute("SELECT image, source, cards FROM cards")}


def verdicts(rows: dict[str, dict]) -> dict[str, dict]:
    """Each row's verdict (what the report says, without where it came from)."""
    return {name: {k: v for k, v in r.items() if k != "reused"} for name, r in rows.items()}


@pytest.fixture(scope="module")
def reference(tmp_path_factory, archive, wd_model) -> Path:
    """The one-process run over the same folder."""
    out = tmp_path_factory.mktemp("local") / "out"
    r = score(archive, out, *SOURCES, "--option", f"wd.model_path={wd_model}")
    assert r.returncode == 0, r.stderr
    assert "218 images: 215 scored, 0 reused from the cache, 2 unreadable" in r.stdout
    return out


# -- on the cluster ----------------------------------------------------------------------
@pytest.mark.ray
def test_same_verdicts_as_one_process_and_a_rerun_reuses_them(cluster, archive, wd_model,
                                                               reference, tmp_path):
    out = tmp_path / "out"
    wd = ("--option", f"wd.model_path={wd_model}")
    r = score(archive, out, *SOURCES, *wd, address=cluster.address)
    assert r.returncode == 0, r.stderr
    assert "218 images: 215 scored, 0 reused from the cache, 2 unreadable" in r.stdout
    assert "200 of 200 files go to the Ray cluster" in r.stderr
    # no GPU: CPU actors, a share of a CPU each so that one of every stage fits on a node;
    # the technical check rides along with NudeNet
    assert "ray: nudenet, technical: up to 2 actors, 0.25 CPU each" in r.stderr
    assert "ray: wd: up to 2 actors, 0.25 CPU each" in r.stderr
    assert verdicts(report(out)) == verdicts(report(reference))
    assert cards(out) == cards(reference)  # the same cache, row for row
    assert list(report(out)) == list(report(reference))  # and the report in path order

    again = score(archive, out, *SOURCES, *wd, address=cluster.address)
    assert again.returncode == 0, again.stderr
    assert "218 images: 0 scored, 215 reused from the cache, 2 unreadable" in again.stdout
    # only what one process decodes again too: the animated files (their frames are cached
    # one by one, each reused), the file cut short and the one that is not an image
    assert "4 of 200 files go to the Ray cluster" in again.stderr
    assert verdicts(report(out)) == verdicts(report(reference))
    assert cards(out) == cards(reference)


@pytest.mark.ray
def test_a_worker_node_killed_mid_run_leaves_every_image_scored_once(cluster, archive,
                                                                     wd_model, reference,
                                                                     tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    worker = cluster.workers[0]
    proc = subprocess.Popen(
        [sys.executable, "-m", "scoring", "score", str(archive), *SOURCES, "--option",
         f"wd.model_path={wd_model}", "--batch", "4", "--comfy", "off", "--out", str(out),
         "--engine", "ray", "--address", cluster.address],
        cwd=tmp_path, env=driver_env(tmp_path), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        done = 0
        deadline = time.monotonic() + 300
        while done < 30 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
            if (out / "scores.sqlite").exists():
                try:
                    with sqlite3.connect(out / "scores.sqlite", timeout=5) as db:
                        done = db.execute("SELECT COUNT(DISTINCT image) FROM cards"
                                          ).fetchone()[0]
                except sqlite3.OperationalError:
                    pass  # the schema is being created
        assert proc.poll() is None, "the run ended before the worker could be killed"
        cluster.kill(worker)  # its raylet and every task and actor on it, at once
        killed_at = done
        stdout, stderr = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
        cluster.add_worker()  # for the tests after this one
    assert proc.returncode == 0, stderr[-3000:]
    assert killed_at < 215 and "has been marked dead" in stdout + stderr, stderr[-3000:]
    assert "218 images: 215 scored, 0 reused from the cache, 2 unreadable" in stdout
    rows = report(out)  # each file exactly once …
    assert verdicts(rows) == verdicts(report(reference))
    assert cards(out) == cards(reference)  # … and each (image, source) once in the cache


def keyed_server(ip: str) -> tuple[Server, str]:
    """The fault-injecting server on this machine's network address (a host a key can be
    bound to: loopback never gets one), run in this process."""
    server = Server((ip, 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://{ip}:{server.server_address[1]}/v1"


def judged(rows: dict[str, dict]) -> list[dict]:
    return [c for r in rows.values() for c in r.get("cards", []) if c["kind"] == "judge"]


def judge_run(wd_model: Path) -> tuple[str, ...]:
    """The WD stand-in before the judge: its rating and tags are what the judge reads."""
    return ("--sources", "technical,wd,judge", "--option", f"wd.model_path={wd_model}",
            "--min-sources", "1", "--batch", "2", "--option", "judge.model=grok-fake",
            "--option", "judge.backoff=0.05")


def distinct(folder: Path, n: int) -> Path:
    """`n` images of distinct colours: the tagger says something different about each, so
    no two judge prompts are the same."""
    folder.mkdir()
    for i in range(n):
        rgb = (i * 37 % 256, i * 91 % 256, 255 - i * 53 % 256)
        PILImage.new("RGB", (64, 64), rgb).save(folder / f"c{i:02}.png")
    return folder


@pytest.mark.ray
def test_a_judge_on_a_fault_server_keeps_one_budget_for_the_run(cluster, fakeapi, wd_model,
                                                                 tmp_path):
    small = distinct(tmp_path / "small", 24)
    # slow answers (the two judge actors overlap), a 500 now and then (a retry is a call)
    fakeapi.script({"kind": "status", "code": 500}, {"kind": "delay", "seconds": 0.6},
                   {"kind": "status", "code": 503}, default={"kind": "delay", "seconds": 0.6})
    out = tmp_path / "out"
    r = score(small, out, *judge_run(wd_model), "--option", f"judge.base_url={fakeapi.url}",
              "--option", "judge.max_calls=9", "--option", "judge.timeout=5",
              address=cluster.address)
    assert r.returncode == 0, r.stderr
    sent = fakeapi.requests()
    assert len(sent) == 9  # never more, whatever the workers did in parallel
    arrivals = sorted(q["time"] for q in sent)
    assert any(b - a < 0.5 for a, b in itertools.pairwise(arrivals)), \
        "no two calls overlapped: the budget was never shared by parallel workers"
    cards_ = judged(report(out))
    assert len(cards_) == 24
    ok = [c for c in cards_ if c["abstained"] is None]
    assert 0 < len(ok) <= 9 - 2  # two of the calls were the 500 and the 503
    assert sum("budget exhausted" in (c["abstained"] or "") for c in cards_) >= 24 - 9


@pytest.mark.ray
def test_a_dead_server_costs_the_run_one_breakers_worth_of_attempts(cluster, fakeapi,
                                                                     wd_model, tmp_path):
    fakeapi.script(default={"kind": "status", "code": 500})
    out = tmp_path / "out"
    r = score(distinct(tmp_path / "small", 20), out, *judge_run(wd_model), "--option",
              f"judge.base_url={fakeapi.url}", address=cluster.address)
    assert r.returncode == 0, r.stderr
    sent = len(fakeapi.requests())
    workers = 2  # the judge's actors: one shared breaker for both
    assert THRESHOLD <= sent <= THRESHOLD + workers - 1, sent
    cards_ = judged(report(out))
    assert cards_ and all(c["abstained"] for c in cards_)
    assert any("unreachable since" in c["abstained"] for c in cards_)


@pytest.mark.ray
def test_the_answer_cache_is_the_runs_and_a_key_stays_on_its_nodes(cluster, node_config,
                                                                    wd_model, tmp_path):
    ip = external_ip()
    if ip is None:
        pytest.skip("this machine has no network address besides loopback")
    server, url = keyed_server(ip)
    host = f"{ip}:{server.server_address[1]}"
    (node_config / "keys.toml").write_text(f'[hosts."{host}"]\nenv = "{KEY_VAR}"\n'
                                           "http = true\n")
    small = distinct(tmp_path / "small", 12)
    cache = tmp_path / "judge_cache.sqlite"
    opts = (*judge_run(wd_model), "--option", f"judge.base_url={url}",
            "--option", f"judge.cache={cache}")
    try:
        with STATE.lock:
            STATE.requests.clear()
        out = tmp_path / "out"
        first = score(small, out, *opts, address=cluster.address)
        assert first.returncode == 0, first.stderr
        with STATE.lock:
            sent = list(STATE.requests)
        # each distinct prompt asked once, whichever worker met it first (two images whose
        # tags read the same are one prompt: the run's cache answered the second)
        prompts = {json.dumps(json.loads(q["body"])["messages"]) for q in sent}
        assert 6 <= len(sent) == len(prompts)
        # the key came from the worker nodes' own configuration, to the host it is bound to
        assert all(q["headers"].get("Authorization") == f"Bearer {FAKE_KEY}" for q in sent)
        ok = [c for c in judged(report(out)) if c["abstained"] is None]
        assert len(ok) == 12 and {c["axes"]["overall"] for c in ok} == {RUBRIC["overall"]}
        # one answer cache for the run, on the driver's side: a rescore asks nobody
        again = score(small, out, *opts, "--rescore", address=cluster.address)
        assert again.returncode == 0, again.stderr
        with STATE.lock:
            assert len(STATE.requests) == len(sent)
        assert all(c["extras"]["cache_hits"] == 1 for c in judged(report(out)))
        with sqlite3.connect(cache) as db:
            assert db.execute("SELECT COUNT(*) FROM answers").fetchone()[0] == len(sent)
    finally:
        server.shutdown()
        (node_config / "keys.toml").unlink()
    # the key is nowhere but in the request headers: not in what the driver printed or
    # wrote, not in any task's payload or log Ray kept
    texts = [first.stdout, first.stderr, again.stdout, again.stderr]
    for f in [*out.rglob("*"), cache, *cluster.session_logs().rglob("*")]:
        if f.is_file():
            data = f.read_bytes()
            assert FAKE_KEY.encode() not in data and FAKE_KEY[4:20].encode() not in data, f
    for t in texts:
        assert FAKE_KEY not in t and FAKE_KEY[4:20] not in t


@pytest.mark.ray
def test_on_a_gpu_node_small_taggers_share_a_card(tmp_path, wd_model):
    """A node that declares one GPU (Ray schedules by it; onnxruntime here still runs on
    the CPU, as there is no GPU to run on): the tiny WD asks for an eighth of it, so eight
    actors could share it. The scores are those of one process."""
    why = ray_missing()
    if why:
        pytest.skip(why)
    images = distinct(tmp_path / "images", 8)
    opts = ("--sources", "wd,technical", "--option", f"wd.model_path={wd_model}",
            "--min-sources", "1")
    local = score(images, tmp_path / "local", *opts)
    assert local.returncode == 0, local.stderr
    gpu = RayCluster(tmp_path / "logs", workers=0, gpus=1)
    try:
        r = score(images, tmp_path / "out", *opts, address=gpu.address)
    finally:
        gpu.stop()
    assert r.returncode == 0, r.stderr
    # the technical check rides along in the tagger's actors (a pool of its own would only
    # add a hop between processes)
    assert "ray: wd, technical: up to 8 actors, 0.333 CPU and 0.125 GPU each" in r.stderr
    assert verdicts(report(tmp_path / "out")) == verdicts(report(tmp_path / "local"))


@pytest.mark.ray
def test_an_address_where_nothing_answers_is_an_error_and_unscored_rows(tmp_path):
    why = ray_missing()
    if why:
        pytest.skip(why)
    images = distinct(tmp_path / "images", 3)
    dead = f"127.0.0.1:{free_port()}"
    out = tmp_path / "out"
    r = score(images, out, "--sources", "technical", address=dead, timeout=120)
    assert r.returncode == 1, r.stderr
    assert f"error: nothing answers at {dead}" in r.stderr and "Traceback" not in r.stderr
    rows = report(out)  # every file is in the report, unscored with the reason
    assert sorted(rows) == ["c00.png", "c01.png", "c02.png"]
    assert all(f"not scored: nothing answers at {dead}" in row["unscored"]
               for row in rows.values())
