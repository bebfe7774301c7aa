"""Aesthetic sources' cost beside a tagger: prints ONE line, measured side by side in one
process on this machine, through the same sources the nodes and the CLI use.

Same-compute stand-ins with random weights (nothing is downloaded), exported once to ONNX with
each repository's I/O contract and cached under bench/.cache:
- `anime_aesthetic` swinv2pv3_v0_448: transformers Swinv2 (base, window 14) at 448 → softmax
  over 7 classes, `input`/`output`, plus meta.json and samples.npz;
- the baseline, WD `wd-vit-tagger-v3`: transformers ViT-B/16 at 448 with WD's contract (NHWC
  BGR 0–255 in, 10 861 sigmoid probabilities out);
- with `--heads`: CLIP ViT-L/14 (224) + the LAION head, and SigLIP so400m-patch14-384 + the
  v2.5 head, through the CLI's transformers encoder.
Chunks alternate tagger, aesthetic, tagger, aesthetic (heads after), so outside load hits
both; the ratio is aesthetic ÷ tagger seconds per image.

    python bench/aesthetic.py [--images 8] [--heads]
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from helpers.models.aesthetic_models import META_ORDER, samples, save_head  # noqa: E402

from scoring.sources.embed.source import AestheticHead  # noqa: E402
from scoring.sources.onnx.aesthetic import AnimeAesthetic  # noqa: E402
from scoring.sources.onnx.wd import WDTagger  # noqa: E402

CACHE = ROOT / "bench" / ".cache"
TAGS = 10861


def _export(module, sample, path: Path, inp: str, out: str) -> None:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(module.eval(), (sample,), str(path), input_names=[inp],
                      output_names=[out], dynamic_axes={inp: {0: "n"}, out: {0: "n"}},
                      opset_version=17, dynamo=False)


def aesthetic_standin(folder: Path = CACHE / "swinv2pv3_v0_448_ls0.2_x") -> Path:
    if (folder / "model.onnx").is_file():
        return folder
    import json

    import torch
    from transformers import Swinv2Config, Swinv2ForImageClassification

    torch.manual_seed(0)
    net = Swinv2ForImageClassification(Swinv2Config(
        image_size=448, patch_size=4, embed_dim=128, depths=[2, 2, 18, 2],
        num_heads=[4, 8, 16, 32], window_size=14, num_labels=7))

    class Contract(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, x):
            return torch.softmax(self.net(pixel_values=x).logits, dim=-1)

    _export(Contract(), torch.randn(1, 3, 448, 448), folder / "model.onnx", "input", "output")
    (folder / "meta.json").write_text(json.dumps({"labels": list(META_ORDER)}))
    np.savez(folder / "samples.npz", samples())
    return folder


def tagger_standin(folder: Path = CACHE / "wd-vit-tagger-v3") -> Path:
    if (folder / "model.onnx").is_file():
        return folder
    import torch
    from transformers import ViTConfig, ViTModel

    torch.manual_seed(0)
    vit = ViTModel(ViTConfig(image_size=448, patch_size=16), add_pooling_layer=False)
    head = torch.nn.Linear(768, TAGS)

    class Contract(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.vit, self.head = vit, head

        def forward(self, x):
            rgb = x.flip(-1).permute(0, 3, 1, 2) / 127.5 - 1.0
            return torch.sigmoid(self.head(self.vit(pixel_values=rgb).last_hidden_state[:, 0]))

    _export(Contract(), torch.rand(1, 448, 448, 3) * 255, folder / "model.onnx", "input",
            "output")
    with open(folder / "selected_tags.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["tag_id", "name", "category", "count"])
        for i in range(TAGS):
            w.writerow([i, f"tag_{i}", 9 if i < 4 else 0, TAGS - i])
    return folder


def images(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.random((1216, 832, 3), dtype=np.float32) for _ in range(n)]  # SDXL portrait


def timed(source, imgs: list[np.ndarray]) -> float:
    t = time.perf_counter()
    result = source.score(imgs)
    assert all(c[0].ok for c in result), [c[0].abstained for c in result]
    return (time.perf_counter() - t) / len(imgs)


def head_rows(imgs: list[np.ndarray], tmp: Path) -> list[str]:
    import torch
    from transformers import (
        CLIPVisionConfig,
        CLIPVisionModelWithProjection,
        SiglipVisionConfig,
        SiglipVisionModel,
    )

    rows = []
    for name, cls, config, label, dim in (
            ("CLIP ViT-L/14 + LAION head", CLIPVisionModelWithProjection,
             CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                              num_attention_heads=16, patch_size=14, image_size=224,
                              projection_dim=768, hidden_act="quick_gelu"),
             "laion-aesthetic", 768),
            ("SigLIP so400m-384 + v2.5 head", SiglipVisionModel,
             SiglipVisionConfig(hidden_size=1152, intermediate_size=4304, num_hidden_layers=27,
                                num_attention_heads=16, patch_size=14, image_size=384),
             "aesthetic-v2.5", 1152)):
        torch.manual_seed(0)
        folder = tmp / label
        cls(config).to(torch.float16).save_pretrained(str(folder))
        head = save_head(tmp / f"{label}.pth", label, dim)
        source = AestheticHead(head_path=head, encoder=folder, device="cpu", batch_size=4)
        source.score(imgs[:1])  # load and warm
        rows.append(f"{name} {timed(source, imgs):.2f} s/img")
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=8)
    p.add_argument("--heads", action="store_true", help="also the CLIP/SigLIP heads (slow)")
    args = p.parse_args()
    imgs = images(args.images)
    tagger = WDTagger(model_path=tagger_standin(), device="cpu", batch_size=4)
    aesthetic = AnimeAesthetic(model_path=aesthetic_standin(), device="cpu", batch_size=4)
    for s in (tagger, aesthetic):
        s.score(imgs[:1])  # sessions created, arenas grown
    half = max(1, len(imgs) // 2)
    t = [timed(tagger, imgs[:half]), timed(aesthetic, imgs[:half]),
         timed(tagger, imgs[half:] or imgs[:half]), timed(aesthetic, imgs[half:] or imgs[:half])]
    tag_s, aes_s = (t[0] + t[2]) / 2, (t[1] + t[3]) / 2
    extra = ""
    if args.heads:
        with tempfile.TemporaryDirectory(prefix="saiten-heads-") as tmp:
            extra = "; " + "; ".join(head_rows(imgs[:2], Path(tmp)))
    print(f"aesthetic bench (CPU, {len(imgs)} SDXL-sized images, batch 4): anime_aesthetic "
          f"swinv2 448 stand-in {aes_s:.2f} s/img, WD vit-tagger-v3 stand-in {tag_s:.2f} s/img, "
          f"ratio {aes_s / tag_s:.2f}{extra}")


if __name__ == "__main__":
    main()
