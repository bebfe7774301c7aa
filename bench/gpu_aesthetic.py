"""gpu_check's aesthetic check: the aesthetic sources' VRAM and time per image on the card,
beside an SDXL-sized diffusion module that ComfyUI keeps resident.

Same-compute stand-ins with random weights (nothing downloaded): anime_aesthetic's swinv2 448
(bench/aesthetic.py's export) on onnxruntime-gpu, and ComfyUI's own CLIP vision models at their
real sizes (clip_vision_config_vitl.json, clip_vision_siglip_384.json) under the LAION and v2.5
heads, through the node's adapter. One line of figures; a Skip where a runtime is missing.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

MiB, GiB = 1 << 20, 1 << 30
SDXL_UNET = 5_135_000_000  # bytes of SDXL's UNet in fp16 (2.57 B parameters)
IMAGES = 16


def _timed(source: Any, images: list) -> float:
    source.score(images[:1])  # load, warm up
    start = time.perf_counter()
    sheet = source.score(images)
    assert all(c[0].ok for c in sheet), [c[0].abstained for c in sheet]
    return 1000 * (time.perf_counter() - start) / len(images)


def _clip_vision(ctx: Any, config: str) -> Any:
    """ComfyUI's ClipVisionModel from its own config, every weight random (fp16 storage)."""
    import comfy.clip_vision

    torch = ctx.torch
    path = Path(comfy.clip_vision.__file__).with_name(config)
    cv = comfy.clip_vision.ClipVisionModel(str(path))
    with torch.no_grad():
        for p in cv.model.parameters():
            p.copy_(torch.randn_like(p, dtype=torch.float32).mul_(0.02).to(p.dtype))
    return cv


def _vram(ctx: Any, run: Any) -> tuple[float, int]:
    """(ms per image, peak bytes the run took on the card)."""
    torch = ctx.torch
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats(ctx.dev)
    before = ctx.free()
    ms = run()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated(ctx.dev)
    return ms, max(peak, before - ctx.free())


def check(ctx: Any, standin: Any) -> str:
    """`standin()` → the anime_aesthetic folder (bench/aesthetic.py's export)."""
    import numpy as np

    try:
        import onnxruntime as ort
    except ImportError as e:
        raise ctx.Skip("onnxruntime is not installed") from e
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        raise ctx.Skip("onnxruntime has no CUDA provider (pip install onnxruntime-gpu)")
    from helpers.models.aesthetic_models import save_head
    from saiten_pack.nodes.shared.clip_vision import ComfyEncoder
    from saiten_pack.scoring.sources import create
    from saiten_pack.scoring.sources.embed.source import AestheticHead

    d = ctx.diffusion_module(SDXL_UNET)
    resident = d.loaded_size()
    rng = np.random.default_rng(0)
    images = [rng.random((1216, 832, 3), dtype=np.float32) for _ in range(IMAGES)]
    rows = []
    onnx = create("aesthetic", model_path=standin(), memory=ctx.policy, device="cuda")
    ms, _ = _vram(ctx, lambda: _timed(onnx, images))
    rows.append(f"anime_aesthetic (swinv2 448, {onnx.provider.replace('ExecutionProvider', '')})"
                f" {ms:.1f} ms/img, {onnx.model.nbytes / GiB:.2f} GiB")
    onnx.unload()
    for name, config, label, dim, pooling in (
            ("CLIP ViT-L/14 + LAION", "clip_vision_config_vitl.json", "laion-aesthetic", 768,
             False),
            ("SigLIP so400m-384 + v2.5", "clip_vision_siglip_384.json", "aesthetic-v2.5", 1152,
             True)):
        cv = _clip_vision(ctx, config)
        pool = _pooling(ctx, 1152) if pooling else None
        head = save_head(ctx.tmp / f"{label}.pth", label, dim)
        source = AestheticHead(head_path=head, encoder=ComfyEncoder(cv, pooling=pool))
        ms, peak = _vram(ctx, lambda s=source: _timed(s, images))
        rows.append(f"{name} {ms:.1f} ms/img, {cv.patcher.model_size() / GiB:.2f} GiB "
                    f"weights, {peak / GiB:.2f} GiB peak")
        del source, cv
        ctx.mm.unload_all_models()
        ctx.mm.soft_empty_cache()
    return (f"{'; '.join(rows)}; beside a {d.model_size() / GiB:.2f} GiB SDXL-sized module "
            f"({resident / GiB:.2f} GiB resident before, {IMAGES} SDXL-sized images)")


def _pooling(ctx: Any, width: int) -> dict[str, Any]:
    """SigLIP's attention-pooling weights, random, at so400m's width."""
    torch = ctx.torch
    r = lambda *shape: torch.randn(*shape) * 0.02  # noqa: E731
    return {"probe": r(1, 1, width), "attention.in_proj_weight": r(3 * width, width),
            "attention.in_proj_bias": r(3 * width), "attention.out_proj.weight": r(width, width),
            "attention.out_proj.bias": r(width), "layernorm.weight": torch.ones(width),
            "layernorm.bias": torch.zeros(width), "mlp.fc1.weight": r(4304, width),
            "mlp.fc1.bias": r(4304), "mlp.fc2.weight": r(width, 4304), "mlp.fc2.bias": r(width)}
