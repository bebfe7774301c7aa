"""Saiten's GPU paths on a real NVIDIA card: one PASS / FAIL / SKIP line per check.

    bench/gpu_check.sh            # = python bench/gpu_check.py (≤ 5 minutes, tiny models only)

Needs torch (CUDA build), transformers and a ComfyUI tree ($COMFYUI_PATH, ~/comfy/ComfyUI, or
shared/comfyui/ComfyUI-0.8.0.tar.gz unpacked into a temporary folder); onnxruntime-gpu and
llama-cpp-python are checked where installed. Nothing is downloaded: the models are built
here with random weights. ComfyUI runs on its real CUDA branch (no --cpu); each check
prints its figures. Exit status 1 when a check FAILs. Without CUDA every check is SKIPped
with "CUDA absent" and the exit status is 0.
"""

from __future__ import annotations

import gc
import os
import sys
import tarfile
import tempfile
import time
import traceback
import types
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MiB, GiB = 1 << 20, 1 << 30
TOLERANCE = 100 * MiB


class Skip(Exception):
    """A check that cannot run here, and why."""


def find_comfyui(tmp: Path) -> Path:
    for root in (os.environ.get("COMFYUI_PATH"), "~/comfy/ComfyUI"):
        if root and (Path(root).expanduser() / "comfy" / "model_management.py").is_file():
            return Path(root).expanduser()
    for archive in (REPO / "shared/comfyui/ComfyUI-0.8.0.tar.gz",
                    REPO.parent / "shared/comfyui/ComfyUI-0.8.0.tar.gz"):
        if archive.is_file():
            with tarfile.open(archive) as tar:
                tar.extractall(tmp, filter="data")
            return tmp / "ComfyUI"
    raise Skip("no ComfyUI tree: set COMFYUI_PATH")


class Context:
    """ComfyUI on CUDA, the pack's memory policy, the card's baseline and a scratch folder."""

    Skip = Skip

    def __init__(self, tmp: Path, warm: bool = True) -> None:
        import torch

        self.torch, self.tmp = torch, tmp
        root = find_comfyui(tmp)
        sys.path.insert(0, str(root))
        try:
            import comfy.model_management as mm
            from comfy.model_patcher import ModelPatcher
        except ImportError as e:
            raise Skip(f"ComfyUI cannot be imported here: {e}") from e
        self.mm, self.ModelPatcher = mm, ModelPatcher
        self.dev = mm.get_torch_device()
        # the pack's memory policy alone (not its nodes, which need all of ComfyUI's packages)
        for name, path in (("saiten_pack", REPO), ("saiten_pack.nodes", REPO / "nodes")):
            pkg = types.ModuleType(name)
            pkg.__path__ = [str(path)]
            sys.modules[name] = pkg
        sys.path.insert(0, str(REPO / "tests"))  # the tiny models' builders (`models.*`)
        sys.path.append(str(REPO))  # which read `scoring` (after ComfyUI's own `nodes`)
        from saiten_pack.nodes.shared import comfy_memory

        self.policy, self.SessionPatcher = comfy_memory.POLICY, comfy_memory.SessionPatcher
        self.sources: list = []
        self.diffusion = None
        self.baseline = self.warm_up() if warm else 0

    def warm_up(self) -> int:
        """Free bytes once CUDA, cuBLAS and cuDNN hold their contexts (they stay for the
        process: not a scorer's leak)."""
        torch = self.torch
        for dtype in (torch.float32, torch.float16, torch.bfloat16):
            x = torch.ones(64, 64, device=self.dev, dtype=dtype)
            (x @ x).sum().item()
            conv = torch.nn.Conv3d(3, 8, 2, device=self.dev, dtype=dtype)
            conv(torch.ones(1, 3, 2, 4, 4, device=self.dev, dtype=dtype)).sum().item()
        del x, conv
        gc.collect()
        self.mm.soft_empty_cache()
        return self.free()

    def free(self) -> int:
        self.torch.cuda.synchronize()
        return self.torch.cuda.mem_get_info(self.dev)[0]

    def diffusion_module(self, size: int = 4 * GiB) -> object:
        """A ModelPatcher over a diffusion-sized torch module (fp16, about `size` bytes and
        ≤ 25 % of the card), loaded by ComfyUI's `load_models_gpu`."""
        torch = self.torch
        width = 8192
        total = torch.cuda.mem_get_info(self.dev)[1]
        layers = max(1, int(min(size, total // 4) // (width * width * 2)))
        if self.diffusion is not None and len(self.diffusion.model) != layers:
            self.mm.unload_all_models()
            self.diffusion = None
        if self.diffusion is None:
            module = torch.nn.Sequential(*[
                torch.nn.Linear(width, width, bias=False, device="meta", dtype=torch.float16)
                for _ in range(layers)]).to_empty(device="cpu")
            self.diffusion = self.ModelPatcher(module, load_device=self.dev,
                                               offload_device=torch.device("cpu"))
        self.mm.load_models_gpu([self.diffusion])
        return self.diffusion


def check_comfyui(ctx: Context) -> str:
    mm = ctx.mm
    assert ctx.dev.type == "cuda", f"ComfyUI's device is {ctx.dev}, not CUDA"
    before = ctx.free()
    d = ctx.diffusion_module()
    size = d.model_size()
    took = before - ctx.free()
    assert d.loaded_size() == size, f"loaded {d.loaded_size() >> 20} of {size >> 20} MiB"
    assert took >= 0.9 * size, f"the card lost only {took >> 20} MiB for {size >> 20} MiB"
    return (f"{mm.get_torch_device_name(ctx.dev)}; vram_state {mm.vram_state.name}; "
            f"diffusion stand-in {size / GiB:.2f} GiB resident (card -{took / GiB:.2f} GiB); "
            f"margin {ctx.policy.margin(ctx.dev) / GiB:.2f} GiB; dtype {ctx.policy.dtype('cuda')}")


def check_transformers(ctx: Context) -> str:
    torch = ctx.torch
    from helpers.models.tiny_hf import build_qwen2vl, sample_image
    from saiten_pack.scoring.sources import create

    folder = build_qwen2vl(ctx.tmp / "tiny-qwen2vl")
    vlm = create("vlm-transformers", model_dir=folder, memory=ctx.policy, method="logprob",
                 comment=False)
    ctx.sources.append(vlm)
    sheet = vlm.score([sample_image(0), sample_image(1)])
    assert all(c[0].ok for c in sheet), [c[0] for c in sheet]
    param = next(vlm._model.parameters())
    want = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[
        ctx.policy.dtype("cuda")]
    assert param.device.type == "cuda", f"model on {param.device}"
    assert param.dtype == want, f"{param.dtype}, ComfyUI would choose {want}"
    registered = [lm for lm in ctx.mm.current_loaded_models
                  if isinstance(lm.model, ctx.SessionPatcher)]
    assert registered, "not registered with ComfyUI"
    ctx.mm.free_memory(torch.cuda.mem_get_info(ctx.dev)[1] * 2, ctx.dev)  # all of the card
    assert not vlm.loaded, "ComfyUI's free_memory did not evict it"
    return f"{vlm.describe()} scored 2 images as {param.dtype}; evicted by free_memory"


def check_reservation(ctx: Context) -> str:
    torch = ctx.torch
    d = ctx.diffusion_module()
    size, need = d.model_size(), 512 * MiB
    margin = ctx.policy.margin(ctx.dev)
    # another program takes the card down to less than the scorer needs beside the module
    ballast_bytes = ctx.free() - (need + margin - size // 2)
    ballast = torch.empty(max(0, ballast_bytes), dtype=torch.uint8, device=ctx.dev)
    try:
        got = ctx.policy.reserve(need, "cuda")
        left = d.loaded_size()
    finally:
        del ballast
        torch.cuda.empty_cache()
    assert got is not None and got >= need, f"reserve gave {got}, needed {need}"
    assert left < size, "the diffusion module was not evicted"
    return (f"reserve({need >> 20} MiB) → {got >> 20} MiB usable beside a "
            f"{margin >> 20} MiB margin; diffusion module {size >> 20} → {left >> 20} MiB")


def check_onnxruntime(ctx: Context) -> str:
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise Skip("onnxruntime is not installed") from e
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        raise Skip(f"onnxruntime {ort.__version__} has no CUDA provider (CPU build; "
                   "pip install onnxruntime-gpu)")
    try:
        import numpy as np
        from helpers.models.onnx_models import build_wd, wd_tags
    except ImportError as e:
        raise Skip(f"cannot build the tiny ONNX model: {e}") from e
    from saiten_pack.scoring.sources.onnx import session as onnx_session

    tags = wd_tags()
    folder = build_wd(ctx.tmp / "wd", tags, np.eye(3, len(tags)), np.zeros(len(tags)),
                      size=64)
    model = onnx_session.open_model(folder / "model.onnx", device="cuda", memory=ctx.policy)
    out = model.run(np.full((4, 64, 64, 3), 128.0, np.float32))[0]
    assert model.provider == "CUDAExecutionProvider", f"{model.describe()}"
    assert out.shape[0] == 4
    ctx.mm.unload_all_models()
    assert model.closed, "unload_all_models did not close the session"
    return f"{model.describe()}; registered {model.nbytes >> 20} MiB (measured); evicted"


def check_llamacpp(ctx: Context) -> str:
    try:
        import llama_cpp
    except ImportError as e:
        raise Skip("llama-cpp-python is not installed") from e
    if not llama_cpp.llama_supports_gpu_offload():
        raise Skip("llama-cpp-python is a CPU build (no GPU offload)")
    try:
        from helpers.models.gguf_models import build_gguf_models
    except ImportError as e:
        raise Skip(f"cannot build the tiny GGUF models: {e}") from e
    from helpers.models.tiny_hf import sample_image
    from saiten_pack.scoring.sources import create

    models = build_gguf_models(ctx.tmp / "gguf")
    vlm = create("vlm-llamacpp", model_path=models.qwen_text, mmproj_path=models.qwen_mmproj,
                 memory=ctx.policy, method="logprob", comment=False)
    ctx.sources.append(vlm)
    assert vlm.score([sample_image(0)])[0][0].ok
    where = vlm.describe()
    ctx.mm.unload_all_models()
    assert not vlm.loaded, "unload_all_models did not evict it"
    return f"{where}; evicted"


def check_aesthetic(ctx: Context) -> str:
    import gpu_aesthetic
    from aesthetic import aesthetic_standin

    return gpu_aesthetic.check(ctx, lambda: aesthetic_standin(ctx.tmp / "swinv2pv3") / "model.onnx")


def check_all_gone(ctx: Context) -> str:
    mm = ctx.mm
    mm.unload_all_models()
    ctx.diffusion = None
    gc.collect()
    mm.soft_empty_cache()
    left = [lm.model.model.name for lm in mm.current_loaded_models
            if isinstance(lm.model, ctx.SessionPatcher)]
    loaded = [s.label for s in ctx.sources if s.loaded]
    assert not left and not loaded, f"still registered {left}, still loaded {loaded}"
    drift = ctx.baseline - ctx.free()
    assert abs(drift) <= TOLERANCE, f"VRAM {drift / MiB:+.0f} MiB from the baseline"
    return f"no scorer registered or loaded; VRAM {drift / MiB:+.0f} MiB from the baseline"


CHECKS: list[tuple[str, Callable[[Context], str]]] = [
    ("comfyui-cuda", check_comfyui),
    ("transformers-vlm", check_transformers),
    ("reservation-evicts", check_reservation),
    ("onnxruntime-cuda", check_onnxruntime),
    ("llamacpp-offload", check_llamacpp),
    ("aesthetic-beside-sdxl", check_aesthetic),
    ("all-gone", check_all_gone),
]


def main() -> int:
    try:
        import torch
    except ImportError:
        torch = None
    if torch is None or not torch.cuda.is_available():
        why = ("torch is not installed" if torch is None else
               f"CUDA absent (torch {torch.__version__}: torch.cuda.is_available() is False)")
        print(f"gpu_check: {why}; nothing to check on this machine")
        for name, _ in CHECKS:
            print(f"SKIP {name}: {why}")
        return 0
    failed = 0
    with tempfile.TemporaryDirectory(prefix="saiten-gpu-") as tmp:
        try:
            ctx = Context(Path(tmp))
        except Skip as e:
            print(f"gpu_check: {e}")
            for name, _ in CHECKS:
                print(f"SKIP {name}: {e}")
            return 0
        print(f"gpu_check: torch {torch.__version__}, {torch.cuda.get_device_name(ctx.dev)}, "
              f"{ctx.baseline / GiB:.1f} GiB free at start")
        for name, check in CHECKS:
            start = time.monotonic()
            try:
                detail = check(ctx)
                status = "PASS"
            except Skip as e:
                status, detail = "SKIP", str(e)
            except Exception as e:
                status, detail = "FAIL", f"{type(e).__name__}: {e}"
                failed += 1
                traceback.print_exc(file=sys.stderr)
            print(f"{status} {name}: {detail} [{time.monotonic() - start:.1f} s]", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
