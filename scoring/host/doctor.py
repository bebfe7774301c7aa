"""What this Python can run, for `python -m scoring doctor` and the Saiten Diagnostics node.

`report()` gathers facts into plain JSON-able data — the ONNX Runtime package(s) and their
providers, torch and its CUDA against onnxruntime-gpu's build, llama-cpp-python (GPU offload,
vision bindings), bitsandbytes, transformers, each model folder searched and what is in it,
whether the judge's key is configured (yes/no, never the value) — plus `problems`, each with
its fix. `render()` turns that into text for people. Nothing here installs or downloads.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import platform
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..remote.keys import config_dir
from . import runtimes as R
from .pack import comfyui_root

MODEL_SUFFIXES = (".onnx", ".gguf", ".safetensors")
MAX_LISTED = 30


def _error(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"[:300]


def onnxruntime_facts() -> dict[str, Any]:
    found = R.installed_runtimes()
    facts: dict[str, Any] = {"installed": found, "providers": None, "error": None}
    if found:
        try:
            import onnxruntime

            facts["providers"] = list(onnxruntime.get_available_providers())
        except Exception as e:
            facts["error"] = _error(e)
    if "onnxruntime-gpu" in found:
        facts["gpu_build_cuda"] = R.gpu_build_cuda(found["onnxruntime-gpu"])
    return facts


def torch_facts() -> dict[str, Any]:
    if importlib.util.find_spec("torch") is None:
        return {"version": None}
    try:
        import torch

        gpu = bool(torch.version.cuda) and torch.cuda.is_available()
        return {"version": torch.__version__, "cuda": torch.version.cuda, "gpu": gpu,
                "device": torch.cuda.get_device_name(0) if gpu else None}
    except Exception as e:
        return {"version": R.version("torch"), "error": _error(e)}


def llama_facts() -> dict[str, Any]:
    ver = R.version("llama-cpp-python")
    if ver is None:
        return {"version": None}
    facts: dict[str, Any] = {"version": ver, "gpu_offload": None, "mtmd": None}
    try:
        import llama_cpp

        facts["gpu_offload"] = bool(llama_cpp.llama_supports_gpu_offload())
    except Exception as e:
        facts["error"] = _error(e)
        return facts
    try:
        importlib.import_module("llama_cpp.mtmd_cpp")
        facts["mtmd"] = True
    except Exception as e:
        facts["mtmd"], facts["mtmd_error"] = False, _error(e)
    return facts


def bitsandbytes_facts() -> dict[str, Any]:
    ver = R.version("bitsandbytes")
    if ver is None:
        return {"version": None, "usable": False}
    try:
        importlib.import_module("bitsandbytes")
        return {"version": ver, "usable": True}
    except Exception as e:
        return {"version": ver, "usable": False, "error": _error(e)}


def folder_facts(folder: Path) -> dict[str, Any]:
    """A model folder: whether it exists and the model files / folders at its top."""
    if not folder.is_dir():
        return {"folder": str(folder), "exists": False, "found": []}
    found = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir()
                   if p.is_dir() or p.suffix.lower() in MODEL_SUFFIXES)
    return {"folder": str(folder), "exists": True, "found": found[:MAX_LISTED],
            "more": max(0, len(found) - MAX_LISTED)}


def key_facts(key_env: str, key_file: str) -> dict[str, Any]:
    """Whether the judge's key is configured: yes/no only, never the value."""
    path = Path(key_file).expanduser()
    return {"env": key_env, "env_set": bool(os.environ.get(key_env, "").strip()),
            "key_file": str(path), "key_file_exists": path.is_file()}


def problems(facts: Mapping[str, Any]) -> list[str]:
    """Each problem found, with the command or step that fixes it."""
    out: list[str] = []
    ort, torch = facts["onnxruntime"], facts["torch"]
    found = ort["installed"]
    if not found:
        out.append("No ONNX Runtime is installed: the taggers (NudeNet, WD, CL) cannot run. "
                   "Fix: run install.py in the ComfyUI-Saiten folder with ComfyUI's Python.")
    if len(found) > 1:
        out.append(f"SEVERAL ONNX Runtime builds are installed ({', '.join(found)}): they "
                   "share one `onnxruntime` module and the last installed wins, so GPU "
                   "providers vanish for every pack. Fix: " + R.several_runtimes_fix(found))
    if ort.get("error"):
        out.append(f"onnxruntime does not import: {ort['error']}")
    providers = ort.get("providers") or []
    if "onnxruntime-gpu" in found and ort["providers"] is not None \
            and "CUDAExecutionProvider" not in providers:
        out.append("onnxruntime-gpu is installed but offers no CUDA provider: another build "
                   "shadows it. Fix: " + R.several_runtimes_fix(found))
    cuda = torch.get("cuda")
    major = int(cuda.split(".")[0]) if cuda else None
    built = ort.get("gpu_build_cuda")
    if major and built and major != built:
        fix = R.GPU_BUILDS.get(major)
        out.append(f"torch uses CUDA {cuda} but onnxruntime-gpu {found['onnxruntime-gpu']} is "
                   f"built for CUDA {built}: its CUDA provider may fail to load."
                   + (f" Fix: pip install '{fix}'" if fix else ""))
    if torch.get("gpu") and found and set(found) == {"onnxruntime"} and major in R.GPU_BUILDS:
        out.append(f"torch runs on a GPU but onnxruntime is the CPU build: the taggers run on "
                   f"the CPU. For CUDA: pip uninstall -y onnxruntime && pip install "
                   f"'{R.GPU_BUILDS[major]}'")
    if facts["nudenet_model"] is None:
        out.append("NudeNet's model (320n.onnx) is missing: the offline default cannot run. "
                   "Fix: run install.py, or pip install --no-deps nudenet")
    llama = facts["llama_cpp"]
    if llama.get("version") and llama.get("mtmd") is False:
        out.append("llama-cpp-python has no vision (mtmd) bindings: GGUF VLMs cannot see "
                   "images. Fix: reinstall llama-cpp-python >= 0.3.36")
    return out


def report(folders: Mapping[str, Sequence[Path]] | None = None, *,
           key_env: str = "XAI_API_KEY", key_file: str | None = None) -> dict[str, Any]:
    """Every fact and problem as JSON-able data; `folders` maps a role (tagger, vlm) to the
    folders searched for its models; the key file defaults to the judge's."""
    key_file = key_file or os.environ.get("SAITEN_XAI_KEY_FILE") or str(config_dir() / "xai_key")
    nudenet = R.nudenet_model()
    facts: dict[str, Any] = {
        "python": {"version": platform.python_version(), "executable": sys.executable,
                   "platform": platform.platform()},
        "onnxruntime": onnxruntime_facts(),
        "torch": torch_facts(),
        "llama_cpp": llama_facts(),
        "bitsandbytes": bitsandbytes_facts(),
        "transformers": {"version": R.version("transformers")},
        "nudenet_model": str(nudenet) if nudenet else None,
        "models": {role: [folder_facts(Path(d)) for d in dirs]
                   for role, dirs in (folders or {}).items()},
        "judge_key": key_facts(key_env, key_file),
    }
    facts["problems"] = problems(facts)
    return facts


def _yes(flag: object) -> str:
    return "yes" if flag else "no"


def render(facts: Mapping[str, Any]) -> str:
    """The report as text: problems first (loud), then one section per part."""
    lines: list[str] = []
    issues = facts["problems"]
    if issues:
        lines.append(f"!! {len(issues)} PROBLEM{'S' if len(issues) > 1 else ''}:")
        lines += [f"!! {p}" for p in issues]
    else:
        lines.append("OK: no problems found.")
    py = facts["python"]
    lines += ["", f"Python {py['version']} ({py['executable']})"]
    ort = facts["onnxruntime"]
    names = ", ".join(f"{d} {v}" for d, v in ort["installed"].items()) or "none"
    lines.append(f"ONNX Runtime: {names}")
    if ort.get("providers") is not None:
        lines.append(f"  providers: {', '.join(ort['providers'])}")
    if ort.get("gpu_build_cuda"):
        lines.append(f"  onnxruntime-gpu is built for CUDA {ort['gpu_build_cuda']}")
    t = facts["torch"]
    if t.get("version"):
        gpu = f", GPU: {t['device']}" if t.get("gpu") else ", no GPU visible"
        lines.append(f"torch {t['version']} (CUDA {t.get('cuda') or 'none'}{gpu})")
    else:
        lines.append("torch: not installed")
    lc = facts["llama_cpp"]
    if lc.get("version"):
        lines.append(f"llama-cpp-python {lc['version']}: GPU offload {_yes(lc.get('gpu_offload'))}"
                     f", vision (mtmd) {_yes(lc.get('mtmd'))}")
    else:
        lines.append("llama-cpp-python: not installed (GGUF VLMs unavailable)")
    bnb = facts["bitsandbytes"]
    lines.append(f"bitsandbytes: {bnb['version'] or 'not installed'}"
                 + (f", usable {_yes(bnb['usable'])}" if bnb["version"] else ""))
    lines.append(f"transformers: {facts['transformers']['version'] or 'not installed'}")
    lines.append(f"NudeNet model: {facts['nudenet_model'] or 'MISSING'}")
    for role, folders in facts["models"].items():
        lines.append(f"{role} model folders:")
        for f in folders:
            if not f["exists"]:
                lines.append(f"  {f['folder']}: (does not exist)")
                continue
            more = f" … and {f['more']} more" if f.get("more") else ""
            lines.append(f"  {f['folder']}: {', '.join(f['found']) or '(empty)'}{more}")
    k = facts["judge_key"]
    lines.append(f"judge key: ${k['env']} set: {_yes(k['env_set'])}; "
                 f"{k['key_file']} exists: {_yes(k['key_file_exists'])}")
    return "\n".join(lines)


def default_folders(models: Path | None) -> dict[str, list[Path]]:
    """The model folders ComfyUI's default layout gives the nodes, under `models` (else the
    ComfyUI this pack is installed in)."""
    if models is None:
        root = comfyui_root()
        models = root / "models" if root else None
    if models is None:
        return {}
    return {"tagger": [models / "saiten_tagger", models / "wd14_tagger"],
            "aesthetic": [models / "saiten_aesthetic"],
            "vlm": [models / "saiten_vlm", models / "LLM"],
            "censor": [models / "saiten_censor"], "likeness": [models / "saiten_likeness"]}


def cmd_doctor(args: Any) -> int:
    facts = report(default_folders(Path(args.models) if args.models else None),
                   key_env=args.key_env)
    if args.json:
        import json

        print(json.dumps(facts, indent=2, ensure_ascii=False))
    else:
        print(render(facts))
    return 1 if facts["problems"] else 0


def add_command(sub: Any) -> None:
    """`python -m scoring doctor [--json] [--models DIR] [--key-env NAME]`."""
    d = sub.add_parser("doctor", help="what this Python can run, and the fix for what it cannot")
    d.add_argument("--json", action="store_true", help="print the report as JSON")
    d.add_argument("--models", default=None, metavar="DIR",
                   help="ComfyUI's models folder (default: the ComfyUI this pack is in)")
    d.add_argument("--key-env", default="XAI_API_KEY",
                   help="the judge key's variable NAME (default %(default)s)")
    d.set_defaults(func=cmd_doctor)
