"""A random-weight checkpoint shaped exactly like Stable Diffusion 1.5, for a real KSampler in
the tests (TESTING.md): ComfyUI's own UNet, VAE and CLIP classes give the keys and shapes (on
the meta device: nothing is allocated), every tensor is `randn · 0.02` in fp16, written
tensor by tensor (a few MB of RAM for a 2.1 GB file). `CheckpointLoaderSimple` loads it as
SD1.5; what it samples is flat grey.

`checkpoint()` returns the cached file, building it once per machine into
$SAITEN_TEST_CACHE (default ~/.cache/saiten-tests; never in the repository). Building runs
this file as a script with ComfyUI's directory as the working directory (~20 s)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

NAME = "saiten-random-sd15.safetensors"
SEED = 20261201
SD_VAE = {"double_z": True, "z_channels": 4, "resolution": 256, "in_channels": 3,
          "out_ch": 3, "ch": 128, "ch_mult": [1, 2, 4, 4], "num_res_blocks": 2,
          "attn_resolutions": [], "dropout": 0.0}


def cache_dir() -> Path:
    return Path(os.environ.get("SAITEN_TEST_CACHE", "~/.cache/saiten-tests")).expanduser()


def checkpoint(comfy_root: Path, timeout: float = 600) -> Path:
    """The checkpoint file, built first if this machine has none."""
    path = cache_dir() / NAME
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        r = subprocess.run([sys.executable, str(Path(__file__).resolve()), str(path)],
                           cwd=comfy_root, capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0 or not path.is_file():
            raise RuntimeError(f"building {path} failed:\n{r.stdout}\n{r.stderr}")
    return path


def shapes() -> dict[str, tuple[tuple[int, ...], bool]]:
    """Every key of an SD1.5 checkpoint → (shape, is_float). Needs ComfyUI on sys.path."""
    from comfy.cli_args import args

    args.cpu = True  # before comfy.model_management is imported: no CUDA here
    import comfy.ops
    import torch
    from comfy.ldm.models.autoencoder import AutoencoderKL
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel
    from comfy.sd1_clip import SDClipModel

    unet_config = {
        "use_checkpoint": False, "image_size": 32, "out_channels": 4,
        "use_spatial_transformer": True, "legacy": False, "adm_in_channels": None,
        "in_channels": 4, "model_channels": 320, "num_res_blocks": [2, 2, 2, 2],
        "transformer_depth": [1, 1, 1, 1, 1, 1, 0, 0], "channel_mult": [1, 2, 4, 4],
        "transformer_depth_middle": 1, "use_linear_in_transformer": False,
        "context_dim": 768, "num_heads": 8,
        "transformer_depth_output": [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0],
        "use_temporal_attention": False, "use_temporal_resblock": False,
    }
    parts = {}
    with torch.device("meta"):
        parts["model.diffusion_model."] = UNetModel(
            **unet_config, device="meta", operations=comfy.ops.disable_weight_init)
        parts["first_stage_model."] = AutoencoderKL(ddconfig=SD_VAE, embed_dim=4)
        parts["cond_stage_model."] = SDClipModel(device="meta")
    out = {}
    for prefix, module in parts.items():
        for key, t in module.state_dict().items():
            if prefix == "cond_stage_model." and not key.startswith("transformer."):
                continue
            out[prefix + key] = (tuple(t.shape), t.dtype.is_floating_point)
    return out


def write(path: Path) -> None:
    """Stream a safetensors file of random fp16 weights (int tensors: arange) to `path`."""
    import torch

    keys = shapes()
    header, offset = {}, 0
    for key, (shape, is_float) in keys.items():
        size = 2 if is_float else 8
        n = 1
        for d in shape:
            n *= d
        header[key] = {"dtype": "F16" if is_float else "I64", "shape": list(shape),
                       "data_offsets": [offset, offset + n * size]}
        offset += n * size
    header["__metadata__"] = {"saiten": "random-weight SD1.5-shaped test checkpoint"}
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    g = torch.Generator().manual_seed(SEED)
    part = path.with_suffix(".part")
    with part.open("wb") as f:
        f.write(len(raw).to_bytes(8, "little") + raw)
        for shape, is_float in keys.values():
            if is_float:
                t = (torch.randn(shape, generator=g) * 0.02).half()
            else:  # position ids
                t = torch.arange(shape[-1] if shape else 1).expand(shape).contiguous()
            f.write(t.numpy().tobytes())
    os.replace(part, path)


if __name__ == "__main__":
    sys.path.insert(0, os.getcwd())  # ComfyUI's directory
    write(Path(sys.argv[1]))
