"""Tagger benchmark: prints ONE line of two ratios measured side by side in one process.

On a same-compute stand-in of WD-EVA02-Large (timm `eva02_large_patch14_448`, random
weights, exported once to ONNX with WD v3's I/O contract and cached under bench/.cache):
  (a) Saiten's WD tagger throughput ÷ raw `session.run` on the same preprocessed batch
      (the raw run is the ceiling; target ≥ 0.95).
  (b) Saiten on the batch ÷ the popular peer's path: a new session, the CSV parsed and PIL
      preprocessing for every image (target ≥ 1.65× on a 2-core CPU; far more on a GPU).
Each chunk runs raw, Saiten, the peer (on some of its images), Saiten, raw, so a change in
outside load during the run hits all three alike; (a) counts the better of two runs of raw
and Saiten, (b) the mean of the two Saiten runs around the peer's.

    python bench/tagger.py [--images 16] [--batch-size 8] [--baseline-images 8]

Needs `pip install timm` (export only). Not part of CI: CPU heavy (minutes), 6 GB RAM to
export the 1.28 GB model.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scoring.sources.onnx import session as onnx_session  # noqa: E402
from scoring.sources.onnx import wd  # noqa: E402

ARCH = "eva02_large_patch14_448"
TAGS = 10861  # WD eva02-large v3's selected_tags.csv
CACHE = ROOT / "bench" / ".cache" / ARCH


def build_standin(folder: Path = CACHE) -> Path:
    """model.onnx (NHWC BGR 0–255 → sigmoid probs, dynamic batch) + selected_tags.csv."""
    model = folder / "model.onnx"
    if model.is_file() and (folder / "selected_tags.csv").is_file():
        return model
    try:
        import timm
        import torch
    except ImportError:
        sys.exit("the stand-in is exported with timm: pip install timm")
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "selected_tags.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["tag_id", "name", "category", "count"])
        for i in range(TAGS):
            cat = 9 if i < 4 else (4 if i >= TAGS - 2700 else 0)
            name = ("general", "sensitive", "questionable", "explicit")[i] if i < 4 \
                else f"tag_{i}"
            w.writerow([i, name, cat, TAGS - i])

    class WDContract(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = timm.create_model(ARCH, pretrained=False, num_classes=TAGS).eval()

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # NHWC BGR 0–255
            rgb = x.flip(-1).permute(0, 3, 1, 2) / 127.5 - 1.0
            return torch.sigmoid(self.net(rgb))

    print(f"exporting the {ARCH} stand-in to {model} (once; ~6 GB RAM)…", file=sys.stderr)
    tmp = folder / "model.onnx.tmp"
    with torch.no_grad():
        torch.onnx.export(WDContract(), (torch.zeros(1, 448, 448, 3),), str(tmp),
                          input_names=["input"], output_names=["output"],
                          dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
                          opset_version=17, dynamo=False)
    tmp.replace(model)
    return model


def peer_one_image(model: Path, img: np.ndarray) -> np.ndarray:
    """The popular peer's path for ONE image: new session, CSV parsed, PIL preprocessing."""
    import onnxruntime as ort
    from PIL import Image as PILImage

    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    inp = session.get_inputs()[0]
    size = inp.shape[1]
    with open(model.parent / "selected_tags.csv") as f:
        names = [row[1] for row in list(csv.reader(f))[1:]]
    pil = PILImage.fromarray((img * 255).astype(np.uint8))
    ratio = size / max(pil.size)
    pil = pil.resize(tuple(int(x * ratio) for x in pil.size), PILImage.LANCZOS)
    square = PILImage.new("RGB", (size, size), (255, 255, 255))
    square.paste(pil, ((size - pil.size[0]) // 2, (size - pil.size[1]) // 2))
    x = np.asarray(square, np.float32)[:, :, ::-1][None]
    probs = session.run([session.get_outputs()[0].name], {inp.name: x})[0]
    assert probs.shape[1] == len(names)
    return probs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--baseline-images", type=int, default=8)
    args = ap.parse_args()
    model = build_standin()
    rng = np.random.default_rng(0)
    sizes = [(1216, 832), (832, 1216), (1024, 1024), (1344, 768)]
    images = [rng.random((*sizes[i % 4], 3), dtype=np.float32) for i in range(args.images)]

    tagger = wd.WDTagger(model_path=model, batch_size=args.batch_size, device="cpu")
    tagger.load()
    session = tagger.model.session
    tagger.score(images[:1])  # warm-up: the first run allocates
    chunks = tagger.model.chunks(len(images), args.batch_size)
    per_chunk = -(-args.baseline_images // len(chunks))
    raw_s = saiten_s = saiten_mean_s = peer_s = 0.0
    m = 0

    def raw(chunk: range) -> float:
        batch = np.stack([wd.prepare(images[i], tagger.size) for i in chunk])
        t0 = time.perf_counter()
        session.run(None, {"input": batch})
        return time.perf_counter() - t0

    def saiten(chunk: range) -> float:
        t0 = time.perf_counter()
        sheet = tagger.score([images[i] for i in chunk])
        assert all(c[0].ok for c in sheet), sheet
        return time.perf_counter() - t0

    for chunk in chunks:  # A B C B A per chunk; (a) counts the better run (timeit's min)
        r1, s1 = raw(chunk), saiten(chunk)
        t0 = time.perf_counter()
        for i in list(chunk)[:per_chunk]:
            peer_one_image(model, images[i])
            m += 1
        peer_s += time.perf_counter() - t0
        s2, r2 = saiten(chunk), raw(chunk)
        raw_s, saiten_s = raw_s + min(r1, r2), saiten_s + min(s1, s2)
        saiten_mean_s += (s1 + s2) / 2  # (b): the runs around the peer's, like the peer
    n = len(images)
    tagger.unload()
    onnx_session.clear()

    a = raw_s / saiten_s
    b = (peer_s / m) / (saiten_mean_s / n)
    print(f"tagger bench ({ARCH} stand-in, {tagger_provider()}, {n} images, batch "
          f"{args.batch_size}): (a) Saiten/raw session.run = {a:.3f} (target >= 0.95); "
          f"(b) Saiten/per-image new session = {b:.2f}x (target >= 1.65x) "
          f"[raw {raw_s / n:.2f} s/img, Saiten {saiten_s / n:.2f} s/img, "
          f"per-image {peer_s / m:.2f} s/img over {m}]")


def tagger_provider() -> str:
    return "CUDA" if onnx_session.cuda_available() else "CPU"


if __name__ == "__main__":
    main()
