"""The report page at 5,000 images: the culling page against the page it replaced, side by side.

    python bench/report_page.py [--images 5000] [--baseline-ref l-landed] [--rounds 3]

Writes one report of `--images` entries (two sources, thumbnails as files) with this tree's
`write_html`, and the same entries with the `write_html` of `--baseline-ref` (the gallery
page before culling), then opens both in one headless Chromium in turns, `--rounds` times,
timing from navigation to a page whose scripts have run. On the culling page it also times a
rating key and an arrow key in the page itself (1,000 presses each). Prints one line.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests" / "comfyui"), str(REPO / "tests")]

from cdp import Browser, find_chromium  # noqa: E402

from scoring.core.cards import ScoreCard  # noqa: E402
from scoring.ensemble.aggregate import combine  # noqa: E402
from scoring.report import Entry, decided, thumbs  # noqa: E402
from scoring.report.html import write_html  # noqa: E402

READY = "window.saitenReport && document.readyState === 'complete'"
KEYS = """(() => { const t0 = performance.now();
  for (let i = 0; i < 1000; i++) document.dispatchEvent(new KeyboardEvent('keydown',
      {key: String(1 + i % 5)}));
  const t1 = performance.now();
  for (let i = 0; i < 1000; i++) document.dispatchEvent(new KeyboardEvent('keydown',
      {key: i % 2 ? 'ArrowLeft' : 'ArrowRight'}));
  return [(t1 - t0) / 1000, (performance.now() - t1) / 1000] })()"""


def baseline_writer(ref: str):
    """`write_html` as it was at `ref`, loaded beside this tree's report package."""
    text = subprocess.run(["git", "-C", str(REPO), "show", f"{ref}:scoring/report/html.py"],
                          check=True, capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp(prefix="saiten-bench-")) / "html_before.py"
    path.write_text(text, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("scoring.report._html_before", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.write_html


def entries(n: int) -> list[Entry]:
    import io

    from PIL import Image as PILImage

    out = []
    for i in range(n):
        buf = io.BytesIO()
        PILImage.new("RGB", (192, 128), (i * 7 % 256, i * 13 % 256, i % 256)).save(buf, "JPEG")
        a, b = float((i * 37) % 101), float((i * 53) % 101)
        v = combine([ScoreCard(source="vlm", kind="vlm", provides=("overall",),
                               axes={"overall": a}, comment="構図は安定している"),
                     ScoreCard(source="cl", kind="tagger", provides=("overall",),
                               axes={"overall": b}),
                     ScoreCard(source="technical", kind="check", provides=("overall",))])
        out.append(Entry(f"{i:05}.png", v, buf.getvalue(), {"prompt": "夜の街", "seed": i}))
    return decided(out)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--images", type=int, default=5000)
    p.add_argument("--baseline-ref", default="l-landed")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    es = entries(args.images)
    work = Path(tempfile.mkdtemp(prefix="saiten-bench-"))
    refs = [thumbs.store(work, e.thumb) for e in es]
    pages = {"cull": write_html(work / "report.html", es, refs=refs),
             "before": baseline_writer(args.baseline_ref)(work / "before.html", es, refs=refs)}
    b = Browser(find_chromium(), width=1400, height=900)
    times: dict[str, list[float]] = {k: [] for k in pages}
    try:
        for _ in range(args.rounds):
            for name, page in pages.items():
                t0 = time.perf_counter()
                b.goto(page.as_uri())
                b.wait_for(READY, timeout=300)
                times[name].append(time.perf_counter() - t0)
        b.goto(pages["cull"].as_uri())
        b.wait_for(READY + " && window.saitenReport.ready", timeout=300)
        rate, move = b.evaluate(KEYS)
    finally:
        b.close()
    cull, before = (statistics.median(times[k]) for k in ("cull", "before"))
    print(f"report page bench ({args.images} images, headless Chromium, median of "
          f"{args.rounds}): culling page opens in {cull:.2f} s vs {before:.2f} s for the page "
          f"before ({args.baseline_ref}) = {cull / before:.2f}x; in the page a rating key "
          f"takes {rate:.1f} ms, an arrow key {move:.1f} ms "
          f"[{pages['cull'].stat().st_size / 1e6:.1f} MB vs "
          f"{pages['before'].stat().st_size / 1e6:.1f} MB]")


if __name__ == "__main__":
    main()
