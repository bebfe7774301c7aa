"""The README's pictures of the report page: the demo samples scored offline, a few rated from
the keyboard, shot in headless Chromium — one image in Japanese, the gallery in English.

    python scripts/report_screenshots.py [--out docs/images]

Needs Chromium (and fonts-noto-cjk for the Japanese one).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests" / "comfyui")]

from cdp import Browser, find_chromium  # noqa: E402

KEYS = {"ArrowLeft": 37, "ArrowRight": 39, "Enter": 13, "Escape": 27, "Home": 36}


def press(b: Browser, key: str) -> None:
    code = KEYS.get(key, ord(key.upper()) if len(key) == 1 else 0)
    b.send("Input.dispatchKeyEvent", type="keyDown", key=key, windowsVirtualKeyCode=code,
           **({"text": key} if len(key) == 1 else {}))
    b.send("Input.dispatchKeyEvent", type="keyUp", key=key, windowsVirtualKeyCode=code)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", default=str(REPO / "docs" / "images"))
    out = Path(p.parse_args().out)
    work = Path(tempfile.mkdtemp(prefix="saiten-shots-"))
    subprocess.run([sys.executable, "-m", "scoring", "demo", "--out", str(work), "--comfy",
                    "off"], cwd=REPO, check=True, capture_output=True)
    b = Browser(find_chromium(), width=1280, height=800)
    try:
        b.goto((work / "report.html").as_uri())
        b.wait_for("window.saitenReport && window.saitenReport.ready", 60)
        for key in ("5", "4", "f", "3", "x"):  # rate the first images; each key moves on
            press(b, key)
        b.evaluate("(() => { const l = document.getElementById('lang'); l.value = 'en';"
                   " l.dispatchEvent(new Event('change')); return true })()")
        b.screenshot(out / "report-en.png")
        b.evaluate("(() => { const l = document.getElementById('lang'); l.value = 'ja';"
                   " l.dispatchEvent(new Event('change')); return true })()")
        b.evaluate("window.saitenReport.goto(window.saitenReport.E.find(e => "
                   "e.n === 'broken_blurred.jpg').i); true")
        press(b, "Enter")
        b.screenshot(out / "report-ja.png")
    finally:
        b.close()
    print(f"wrote {out / 'report-ja.png'} and {out / 'report-en.png'}")


if __name__ == "__main__":
    main()
