"""VLM speed: seconds per image of the logprob method ÷ the generate method, one line.

    python bench/vlm.py                                   # llama.cpp, tiny Qwen2-VL GGUF
    python bench/vlm.py --family llava                    # llama.cpp, tiny LLaVA GGUF
    python bench/vlm.py --model m.gguf --mmproj p.gguf    # llama.cpp, a real model
    python bench/vlm.py --backend transformers [--model-dir DIR]
    python bench/vlm.py --backend http [--base-url URL --model-name NAME]

`--backend http` measures bytes instead: what the OpenAI-compatible source uploads per
image with each method (logprob with its comment, the rater's default), counted by a TCP
proxy in front of the server (a real `llama_cpp.server` on a tiny scripted GGUF by
default), as a multiple of the image's own data URL.

Both methods run on the same loaded model and the same images in one process, alternating
rounds after a warm-up; the median round counts. logprob runs without its optional comment
generation (that is a generate call). The system prompt stays cached between images in both
methods, as in real use. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from scoring.core.images import as_rgb, list_images, load  # noqa: E402
from scoring.sources import ScoreContext, create  # noqa: E402
from scoring.sources.vlm.base import VLMSource  # noqa: E402

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "cat", "immunohistochemistry")


def photos(n: int, folder: str | None) -> list:
    if folder:
        return [load(p) for p in list_images(folder)[:n]]
    from skimage import data

    return [as_rgb(getattr(data, name)()) for name in (PHOTOS * n)[:n]]


def llamacpp_source(args, tmp: Path) -> VLMSource:
    if args.model:
        if not args.mmproj:
            sys.exit("--model needs --mmproj (the paired projector GGUF)")
        model, mmproj = Path(args.model), Path(args.mmproj)
    else:
        from helpers.models.gguf_models import build_gguf_models

        built = build_gguf_models(tmp)
        model, mmproj = ((built.qwen_text, built.qwen_mmproj) if args.family == "qwen"
                         else (built.llava_text, built.llava_mmproj))
    return create("vlm-llamacpp", model_path=model, mmproj_path=mmproj, n_ctx=args.n_ctx,
                  n_threads=args.threads, n_gpu_layers=args.n_gpu_layers,
                  max_pixels=args.max_pixels, comment=False)


def transformers_source(args, tmp: Path) -> VLMSource:
    model_dir = args.model_dir
    if not model_dir:
        try:
            from models import tiny_hf
        except ImportError:
            sys.exit("no --model-dir and no tests/helpers/models/tiny_hf.py to build a tiny model")
        build = tiny_hf.build_qwen2vl if args.family == "qwen" else tiny_hf.build_llava
        model_dir = build(tmp / f"tiny-{args.family}")
    return create("vlm-transformers", model_dir=model_dir, comment=False)


def http_bytes(args, tmp: Path, images: list) -> None:
    """One line: bytes and requests per image of logprob and generate over HTTP."""
    import os

    from helpers.counting_proxy import CountingProxy

    from scoring.sources.vlm.http import data_url

    server = None
    if args.base_url:
        from urllib.parse import urlparse

        url = urlparse(args.base_url)
        upstream, path, model = url.port or 80, url.path or "/v1", args.model_name or "model"
    else:
        from helpers.fixtures_http import LlamaServer, llama_server_missing
        from helpers.models.gguf_models import build_scripted_gguf

        if llama_server_missing():
            sys.exit(llama_server_missing())
        built = build_scripted_gguf(tmp)
        server = LlamaServer(built.critic, "--clip_model_path", str(built.mmproj),
                             "--chat_format", "llava-1-5", log=tmp / "server.log")
        upstream, path, model = server.port, "/v1", "tiny"
    os.environ.setdefault("OPENAI_API_KEY", "sk-local")
    proxy = CountingProxy(upstream)
    from scoring.sources.vlm.http import HttpVLM

    class PerAxis(HttpVLM):
        """The baseline, as logprob was sent before: one request per axis and one for the
        comment, each with the image."""

        def _levels_at_once(self, *args, **kw):
            return {}, ""

    per: dict[str, tuple[float, float]] = {}
    try:
        for method in ("logprob", "per-axis", "generate"):
            kind = PerAxis if method == "per-axis" else HttpVLM
            src = kind(base_url=proxy.url(path), model=model, comment=True, max_tokens=120,
                       method="logprob" if method == "per-axis" else method)
            src.score(images[:1])  # warm-up: the server's response_format is learned once
            proxy.reset()
            sheet = src.score(images)
            src.unload()
            bad = [c.abstained for cards in sheet for c in cards if not c.ok]
            if bad:
                sys.exit(f"{method} abstained: {bad[0]}")
            per[method] = (proxy.sent / len(images), proxy.posts / len(images))
    finally:
        proxy.close()
        if server is not None:
            server.stop()
    image = sum(len(data_url(i)) for i in images) / len(images)
    (lp, lp_n), (axis, axis_n), (gen, _) = (per[m] for m in per)
    where = "llama_cpp.server" if server else args.base_url
    print(f"http bytes sent per image: logprob {lp / 1024:.0f} KiB = {lp / image:.2f}x the "
          f"image ({lp_n:.0f} request), per-axis baseline {axis / 1024:.0f} KiB = "
          f"{axis / image:.2f}x ({axis_n:.0f} requests), logprob/per-axis = {lp / axis:.2f}; "
          f"generate {gen / 1024:.0f} KiB = {gen / image:.2f}x [{len(images)} images, "
          f"PNG data URL {image / 1024:.0f} KiB/img, {model} @ {where}]")


def seconds_per_image(src: VLMSource, method: str, images: list) -> float:
    t = time.perf_counter()
    sheet = src.score(images, ScoreContext(options={"method": method}))
    dt = time.perf_counter() - t
    bad = [c.abstained for cards in sheet for c in cards if not c.ok]
    if bad:
        sys.exit(f"{method} abstained: {bad[0]}")
    return dt / len(images)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backend", choices=["llamacpp", "transformers", "http"],
                    default="llamacpp")
    ap.add_argument("--base-url", help="http: an OpenAI-compatible server's /v1 URL")
    ap.add_argument("--model-name", help="http: the model id the server knows")
    ap.add_argument("--family", choices=["qwen", "llava"], default="qwen",
                    help="which tiny model to build when no model is given")
    ap.add_argument("--model", help="llama.cpp: text model GGUF")
    ap.add_argument("--mmproj", help="llama.cpp: its paired mmproj GGUF")
    ap.add_argument("--model-dir", help="transformers: a model folder")
    ap.add_argument("--images", type=int, default=4, help="images per round")
    ap.add_argument("--folder", help="take the images from this folder")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="llama.cpp threads")
    ap.add_argument("--n-ctx", type=int, default=4096)
    ap.add_argument("--max-pixels", type=int, default=1024 * 1024,
                    help="llama.cpp: images are downscaled to this many pixels")
    ap.add_argument("--n-gpu-layers", default="auto",
                    type=lambda v: v if v == "auto" else int(v))
    args = ap.parse_args()
    if args.images < 2:  # with one image, a method would find the other's image cached
        ap.error("--images must be at least 2")

    images = photos(args.images, args.folder)
    if args.backend == "http":
        with tempfile.TemporaryDirectory() as tmp:
            http_bytes(args, Path(tmp), images)
        return
    with tempfile.TemporaryDirectory() as tmp:
        make = llamacpp_source if args.backend == "llamacpp" else transformers_source
        src = make(args, Path(tmp))
        try:
            src.load()
            for method in ("logprob", "generate"):  # warm-up: first-call costs not counted
                seconds_per_image(src, method, images[:1])
            times: dict[str, list[float]] = {"logprob": [], "generate": []}
            for _ in range(args.rounds):
                for method in times:
                    times[method].append(seconds_per_image(src, method, images))
            where = src.describe()
        finally:
            src.unload()
    lp, gen = (statistics.median(times[m]) for m in ("logprob", "generate"))
    print(f"{args.backend}: logprob {lp:.3f} s/img, generate {gen:.3f} s/img, "
          f"logprob/generate = {lp / gen:.2f} ({gen / lp:.1f}x faster; target >= 5x) "
          f"[{len(images)} images x {args.rounds} rounds, median; {where}]")


if __name__ == "__main__":
    main()
