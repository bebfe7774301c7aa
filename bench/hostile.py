"""Hostile servers, files and disks against the CLI: one line per probe (time, peak memory,
what came out), for the before/after figures of issue N.

    python bench/hostile.py                      # every probe, against this checkout
    python bench/hostile.py --repo /tmp/before   # the CLI of another checkout (e.g. main)
    python bench/hostile.py --only huge,gif      # some probes

Each probe runs `python -m scoring` of `--repo` as a subprocess and reads its peak RSS from
`os.wait4` (that process alone); the hostile server is this checkout's
tests/helpers/fakeapi.py, so both checkouts face the same answers. `disk-full` needs root (a
200 KiB tmpfs), `html` needs Chromium.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(HERE / "tests"), str(HERE / "tests" / "comfyui")]

from helpers.fakeapi import ENCODINGS, FAKE_KEY, HOSTILE_VALUES, FakeAPI  # noqa: E402

PY = sys.executable


def run_cli(repo: Path, args: list[str], cwd: Path, timeout: float = 600,
            env: dict[str, str] | None = None) -> dict:
    """`python -m scoring *args` of `repo`: rc, seconds, peak RSS (MB), stdout, stderr."""
    env = {**os.environ, "PYTHONPATH": str(repo), "XAI_API_KEY": FAKE_KEY,
           "SAITEN_CONFIG_DIR": str(cwd / "config"), **(env or {})}
    out, err = cwd / "stdout.txt", cwd / "stderr.txt"
    t0 = time.monotonic()
    with out.open("w") as o, err.open("w") as e:
        p = subprocess.Popen([PY, "-m", "scoring", *args], cwd=cwd, env=env, stdout=o,
                             stderr=e)
        killed = False
        while True:
            pid, status, usage = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - t0 > timeout:
                p.kill()
                killed = True
            time.sleep(0.05)
    rc = os.waitstatus_to_exitcode(status)
    return {"rc": "killed" if killed else rc, "s": time.monotonic() - t0,
            "mb": usage.ru_maxrss / 1024, "stdout": out.read_text(errors="replace"),
            "stderr": err.read_text(errors="replace")}


def images(folder: Path, n: int, size: int = 96, seed: int = 0) -> list[Path]:
    """`n` small photo-like PNGs (smooth gradients + texture: the technical check passes)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    paths = []
    for i in range(n):
        base = np.stack([x * rng.uniform(.3, 1), y * rng.uniform(.3, 1),
                         (x + y) / 2 * rng.uniform(.3, 1)], -1)
        img = np.clip(base + rng.normal(0, .05, base.shape), 0, 1)
        p = folder / f"img{i:04}.png"
        Image.fromarray((img * 255).astype(np.uint8)).save(p)
        paths.append(p)
    return paths


def photos(folder: Path, n: int) -> list[Path]:
    """`n` different crops of a photo with a face: nudenet finds it, so the judge has
    something to read (its prompt is built from the earlier sources' findings)."""
    from skimage import data

    folder.mkdir(parents=True, exist_ok=True)
    a = data.astronaut()
    paths = []
    for i in range(n):
        p = folder / f"photo{i:04}.png"
        Image.fromarray(a[i % 50:i % 50 + 400, (i * 7) % 100:(i * 7) % 100 + 400]).save(p)
        paths.append(p)
    return paths


def judge_args(api: FakeAPI, out: Path, timeout: float = 5) -> list[str]:
    return ["--sources", "nudenet,technical,judge", "--min-sources", "1", "--comfy", "off",
            "--option", f"judge.base_url={api.url}", "--option", f"judge.timeout={timeout}",
            "--option", "judge.backoff=0.05", "--out", str(out)]


def report_rows(out: Path) -> list[dict]:
    """The rows of report.jsonl ([{"corrupt": line}] for a line that is not JSON)."""
    p = out / "report.jsonl"
    rows = []
    for line in p.read_text(errors="replace").splitlines() if p.exists() else []:
        try:
            rows.append(json.loads(line))
        except ValueError:
            rows.append({"corrupt": line[:80]})
    return rows


def probe_huge(repo: Path, tmp: Path, api: FakeAPI, size_mb: int) -> str:
    imgs = photos(tmp / f"huge{size_mb}", 2)
    api.script(default={"kind": "huge", "bytes": size_mb << 20})
    out = tmp / f"out-huge{size_mb}"
    r = run_cli(repo, ["score", str(imgs[0].parent), *judge_args(api, out)], tmp,
                timeout=300)
    rows = report_rows(out)
    jsonl = (out / "report.jsonl").stat().st_size if rows else 0
    why = "; ".join(str(c.get("abstained"))[:70] for x in rows for c in x["cards"]
                    if c["source"] == "grok")
    return (f"huge-answer-{size_mb}MB: rc {r['rc']}, {r['s']:.1f} s, peak {r['mb']:.0f} MB, "
            f"report.jsonl {jsonl / 1e6:.2f} MB, scores {[x['score'] for x in rows]}; "
            f"judge: {why or 'scored'}")


BUILD = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from helpers.hostile_files import big_png, many_frames_gif
kind, path = sys.argv[2], Path(sys.argv[3])
if kind == "gif":
    many_frames_gif(path, frames=300, side=1024)
else:
    big_png(path, 13000, 13000)
"""


def build(kind: str, path: Path) -> float:
    """Write the hostile file in a child process (so this process stays small: a child
    forked from it would count its memory as its own), return its size in KB."""
    subprocess.run([PY, "-c", BUILD, str(HERE / "tests"), kind, str(path)], check=True)
    return path.stat().st_size / 1024


def probe_gif(repo: Path, tmp: Path, api: FakeAPI) -> str:
    d = tmp / "gif"
    d.mkdir()
    kb = build("gif", d / "anim.gif")  # 300 frames of 1024², flat shapes that move
    r = run_cli(repo, ["score", str(d), "--sources", "technical", "--min-sources", "1",
                       "--comfy", "off", "--out", str(tmp / "out-gif")], tmp, timeout=600)
    rows = report_rows(tmp / "out-gif")
    return (f"gif-300x1024²: {kb:.0f} KB file, rc {r['rc']}, {r['s']:.1f} s, peak "
            f"{r['mb']:.0f} MB, {len(rows)} rows ({sum(x['score'] is not None for x in rows)} "
            f"scored){_last_line(r)}")


def _last_line(r: dict) -> str:
    if r["rc"] == 0:
        return ""
    lines = [x for x in r["stderr"].splitlines() if x.strip()]
    return f"; stderr: {lines[-1][:160] if lines else ''!r}"


def probe_png(repo: Path, tmp: Path, api: FakeAPI) -> str:
    d = tmp / "png"
    d.mkdir()
    kb = build("png", d / "big.png")  # 13000² RGB, one flat colour
    r = run_cli(repo, ["score", str(d), "--sources", "technical", "--min-sources", "1",
                       "--comfy", "off", "--out", str(tmp / "out-png")], tmp, timeout=600)
    rows = report_rows(tmp / "out-png")
    what = rows[0]["unscored"] or rows[0]["score"] if rows else "no row"
    return (f"png-13000²: {kb:.0f} KB file, rc {r['rc']}, {r['s']:.1f} s, peak {r['mb']:.0f} MB, "
            f"{str(what)[:120]!r}{_last_line(r)}")


def probe_baseline(repo: Path, tmp: Path, api: FakeAPI) -> str:
    imgs = images(tmp / "one", 1, size=64)
    r = run_cli(repo, ["score", str(imgs[0]), "--sources", "technical", "--min-sources", "1",
                       "--comfy", "off", "--out", str(tmp / "out-one")], tmp)
    return f"baseline (one 64² PNG): rc {r['rc']}, {r['s']:.1f} s, peak {r['mb']:.0f} MB"


def probe_concurrent(repo: Path, tmp: Path, api: FakeAPI, rounds: int) -> str:
    imgs = images(tmp / "conc", 120)
    crashed, total, inconsistent = 0, 0, 0
    errors: set[str] = set()
    for k in range(rounds):
        out = tmp / f"out-conc{k}"
        env = {**os.environ, "PYTHONPATH": str(repo)}
        procs = [subprocess.Popen([PY, "-m", "scoring", "score", str(imgs[0].parent),
                                   "--sources", "technical", "--min-sources", "1",
                                   "--comfy", "off", "--out", str(out)], cwd=tmp, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  text=True) for _ in range(3)]
        for p in procs:
            _, err = p.communicate(timeout=300)
            total += 1
            if p.returncode != 0:
                crashed += 1
                errors.add(err.strip().splitlines()[-1][:120] if err.strip() else "?")
        rows = report_rows(out)
        csv_rows = (out / "report.csv").read_text(errors="replace").count("\n") - 1 \
            if (out / "report.csv").exists() else 0
        if len(rows) != 120 or csv_rows != 120 or list(out.glob("*.tmp*")) or \
                any("corrupt" in r for r in rows):
            inconsistent += 1
    return (f"concurrent: {crashed} of {total} runs crashed ({rounds} rounds of 3 on one "
            f"--out), {inconsistent} rounds left an inconsistent report or a temp file"
            + (f"; {sorted(errors)}" if errors else ""))


def probe_disk_full(repo: Path, tmp: Path, api: FakeAPI) -> str:
    if os.geteuid() != 0:
        return "disk-full: skipped (needs root for a tmpfs)"
    imgs = images(tmp / "full", 60, size=160)
    mnt = tmp / "mnt"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(mnt)], check=True)
    try:
        first = run_cli(repo, ["score", str(imgs[0]), "--sources", "technical",
                               "--min-sources", "1", "--comfy", "off", "--out", str(mnt)],
                        tmp)
        before = (mnt / "report.html").read_bytes() if (mnt / "report.html").exists() else b""
        r = run_cli(repo, ["score", str(imgs[0].parent), "--sources", "technical",
                           "--min-sources", "1", "--comfy", "off", "--batch", "4",
                           "--out", str(mnt)], tmp)
        lines = [x for x in r["stderr"].splitlines() if x.strip()]
        left = sorted(p.name for p in mnt.iterdir() if "tmp" in p.name)
        page = (mnt / "report.html").read_text(errors="replace") if (
            mnt / "report.html").exists() else ""
        says = "partial" in page.lower() or "incomplete" in page.lower()
        kept = "same as before" if page.encode() == before else "replaced"
        intro = page.split("<p>", 1)[-1].split(" images", 1)[0][:12] if page else "none"
        return (f"disk-full: first run rc {first['rc']}; 60 images → rc {r['rc']}, "
                f"{len(r['stderr'].splitlines())} stderr lines, last {lines[-1][:200]!r}, "
                f"temp left {left}, report.html {kept} ({intro} images, says partial: {says})")
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def probe_range(repo: Path, tmp: Path, api: FakeAPI) -> str:
    imgs = photos(tmp / "range", 1)
    got = []
    for value in (150, 99999, 1e300, "100/0.0001"):
        api.script(default={"kind": "ok", "content": json.dumps(
            {"erotic": 50, "composition": 50, "appeal": 50, "typeset": 50, "overall": value,
             "comment": "ok"})})
        out = tmp / f"out-range-{len(got)}"
        run_cli(repo, ["score", str(imgs[0]), *judge_args(api, out)], tmp)
        rows = report_rows(out)
        got.append(f"{value!r}→{rows[0]['score'] if rows else '?'}")
    api.script(default={"kind": "ok", "content": json.dumps({**HOSTILE_VALUES})})
    out = tmp / "out-range-all"
    run_cli(repo, ["score", str(imgs[0]), *judge_args(api, out)], tmp)
    rows = report_rows(out)
    judge = [c for c in rows[0]["cards"] if c["source"] == "grok"] if rows else []
    return (f"out-of-range: overall {', '.join(got)}; every axis hostile → score "
            f"{rows[0]['score'] if rows else '?'}, judge "
            f"{(judge[0].get('abstained') or judge[0]['axes']) if judge else '?'}")


def _decodes_to_key(text: str) -> list[str]:
    """Which encodings of the key (or the Authorization header) appear in `text`."""
    from helpers.fakeapi import encode

    found = []
    for how in ENCODINGS:
        enc = encode(FAKE_KEY, how)
        probe = enc if how not in ("spaced", "split") else enc[:40]
        if probe in text or probe.replace("%", "%25") in text or \
                json.dumps(probe)[1:-1] in text:
            found.append(how)
    return found


def probe_key(repo: Path, tmp: Path, api: FakeAPI) -> str:
    """The judge at http://judge.example (bound to the key in keys.toml, http allowed),
    reached through the fake server acting as the user's HTTP proxy: it echoes the key."""
    imgs = photos(tmp / "key", 1)
    cfg = tmp / "config"
    cfg.mkdir(exist_ok=True)
    (cfg / "keys.toml").write_text('[hosts."judge.example"]\nenv = "XAI_API_KEY"\n'
                                   'http = true\n')
    env = {"HTTP_PROXY": f"http://127.0.0.1:{api.port}",
           "http_proxy": f"http://127.0.0.1:{api.port}", "NO_PROXY": "", "no_proxy": ""}
    leaked, sent = {}, 0
    for how in ENCODINGS:
        api.script(default={"kind": "echo_key", "encoding": how})
        out = tmp / f"out-key-{how}"
        args = judge_args(api, out)
        args[args.index(f"judge.base_url={api.url}")] = "judge.base_url=http://judge.example/v1"
        r = run_cli(repo, ["score", str(imgs[0]), *args], tmp, env=env)
        shared = r["stdout"] + r["stderr"] + "".join(
            (out / f).read_text(errors="replace") for f in ("report.jsonl", "report.csv",
                                                             "report.html")
            if (out / f).exists())
        sent += any("Authorization" in q["headers"] for q in api.requests())
        if hit := _decodes_to_key(shared):
            leaked[how] = hit
    return (f"key-echo: key sent in {sent} of {len(ENCODINGS)} runs, each echoing it "
            f"differently; found in stdout/stderr/report: {sorted(leaked) or 'none'}")


def probe_html(repo: Path, tmp: Path, api: FakeAPI) -> str:
    from cdp import Browser, find_chromium

    chromium = find_chromium()
    if chromium is None:
        return "html: skipped (no chromium)"
    d = tmp / "html"
    names = ["<!--<script>.png", "<img src=x onerror=alert(1)>.png", "a&amp;b<b>.png",
             "x\u2028y\u2029.png", "quote\"'`${}.png", "plain.png"]
    imgs = images(tmp / "html-src", len(names))
    d.mkdir()
    for p, n in zip(imgs, names, strict=True):
        img = Image.open(p)
        from PIL import PngImagePlugin

        info = PngImagePlugin.PngInfo()
        prompt = {"1": {"class_type": "CLIPTextEncode", "inputs": {
            "text": "<!--<script>alert(1)</script>\u2028 & </script>"}}}
        info.add_text("prompt", json.dumps(prompt))
        img.save(d / n, pnginfo=info)
    out = tmp / "out-html"
    r = run_cli(repo, ["score", str(d), "--sources", "technical", "--min-sources", "1",
                       "--comfy", "off", "--out", str(out)], tmp)
    b = Browser(chromium, width=1200, height=800)
    try:
        b.goto((out / "report.html").as_uri())
        time.sleep(2)
        got = b.evaluate("""(() => ({tiles: document.querySelectorAll('#gallery .tile').length,
            rows: document.querySelectorAll('#rows tbody tr').length,
            app: !!window.saitenReport}))()""")
    finally:
        b.close()
    return (f"html: rc {r['rc']}, {len(names)} hostile names → {got['tiles']} tiles drawn, "
            f"{got['rows']} table rows, controls {'work' if got['app'] else 'dead'}")


def probe_truncated(repo: Path, tmp: Path, api: FakeAPI) -> str:
    """Files cut short, filled grey (baseline JPEG), black (PNG), with a colour the picture
    has (palette PNG) and in alternate rows (interlaced GIF)."""
    from skimage import data

    d = tmp / "trunc"
    d.mkdir()
    photo = Image.fromarray(data.astronaut())
    for name, img, fmt, keep in [("cut2.jpg", photo, "JPEG", 0.02),
                                 ("cut5.jpg", photo, "JPEG", 0.05),
                                 ("cut2.png", photo, "PNG", 0.02),
                                 ("cut50-palette.png", photo.convert("P"), "PNG", 0.5),
                                 ("cut50-interlaced.gif", photo.convert("P"), "GIF", 0.5)]:
        buf = io.BytesIO()
        img.save(buf, fmt)
        (d / name).write_bytes(buf.getvalue()[: int(len(buf.getvalue()) * keep)])
    out = tmp / "out-trunc"
    run_cli(repo, ["score", str(d), "--sources", "technical", "--min-sources", "1",
                   "--comfy", "off", "--out", str(out)], tmp)
    return "truncated: " + ", ".join(f"{x['file']} → {x['score']}" + (
        f" ({x['unscored'][:50]})" if x["unscored"] else "") for x in report_rows(out))


INTERRUPT = r"""
import sys, threading, time
import numpy as np
from scoring.sources.judge.judge import Judge
from scoring.sources import ScoreContext, Cancelled
from scoring.core.cards import ScoreCard
j = Judge(base_url=sys.argv[1], timeout=30, max_retries=0)
prior = [[ScoreCard(source="wd", kind="tagger", tags={"1girl": 0.9},
                    extras={"rating": {"questionable": 0.9}})]]
t0 = time.monotonic()
ctx = ScoreContext(prior=prior, interrupted=lambda: time.monotonic() - t0 > float(sys.argv[2]))
try:
    j.score([np.zeros((8, 8, 3), np.float32)], ctx)
    print("no-cancel", time.monotonic() - t0)
except Cancelled:
    print("cancelled", time.monotonic() - t0)
"""


def probe_interrupt(repo: Path, tmp: Path, api: FakeAPI, at: float = 1.0) -> str:
    got = []
    for kind in ({"kind": "huge", "bytes": 200 << 20}, {"kind": "endless"},
                 {"kind": "drip", "interval": 0.5}):
        api.script(default=kind)
        env = {**os.environ, "PYTHONPATH": str(repo), "SAITEN_CONFIG_DIR": str(tmp / "cfg")}
        t0 = time.monotonic()
        r = subprocess.run([PY, "-c", INTERRUPT, api.url, str(at)], env=env, cwd=tmp,
                           capture_output=True, text=True, timeout=600)
        wall = time.monotonic() - t0
        line = (r.stdout.strip().splitlines() or ["?"])[-1].split()
        after = float(line[1]) - at if len(line) == 2 else float("nan")
        got.append(f"{kind['kind']} {line[0]} {after:.2f} s after the cancel (process "
                   f"{wall:.1f} s)")
    return f"interrupt (cancel at {at:g} s): " + "; ".join(got)


PROBES = ("baseline", "huge", "range", "key", "html", "gif", "png", "concurrent", "disk",
          "truncated", "interrupt", "huge400")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repo", type=Path, default=HERE, help="the checkout whose CLI runs")
    p.add_argument("--only", default=",".join(x for x in PROBES if x != "huge400"),
                   help=f"comma-separated of {','.join(PROBES)}")
    p.add_argument("--rounds", type=int, default=6, help="concurrent: rounds of 3 runs")
    p.add_argument("--cancel-at", type=float, default=1.0,
                   help="interrupt: seconds into the call when it is cancelled")
    a = p.parse_args()
    random.seed(0)
    api = FakeAPI()
    try:
        with tempfile.TemporaryDirectory(prefix="saiten-hostile-") as t:
            tmp = Path(t)
            for name in a.only.split(","):
                sub = tmp / name
                sub.mkdir()
                fn = {"baseline": lambda s: probe_baseline(a.repo, s, api),
                      "huge": lambda s: probe_huge(a.repo, s, api, 50),
                      "huge400": lambda s: probe_huge(a.repo, s, api, 400),
                      "range": lambda s: probe_range(a.repo, s, api),
                      "key": lambda s: probe_key(a.repo, s, api),
                      "html": lambda s: probe_html(a.repo, s, api),
                      "gif": lambda s: probe_gif(a.repo, s, api),
                      "png": lambda s: probe_png(a.repo, s, api),
                      "concurrent": lambda s: probe_concurrent(a.repo, s, api, a.rounds),
                      "disk": lambda s: probe_disk_full(a.repo, s, api),
                      "truncated": lambda s: probe_truncated(a.repo, s, api),
                      "interrupt": lambda s: probe_interrupt(a.repo, s, api,
                                                             a.cancel_at)}[name]
                print(fn(sub), flush=True)
    finally:
        api.stop()


if __name__ == "__main__":
    main()
