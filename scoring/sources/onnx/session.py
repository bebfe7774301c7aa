"""The one ONNX Runtime session cache: one session per (model file, providers).

Sessions are created lazily, reused by every source and every run that asks for the same
model on the same providers, and dropped by `close`. The provider onnxruntime ACTUALLY
uses is reported (a silent CPU fallback is the classic complaint about taggers), and a GPU
session first asks the host's memory policy for room.
"""

from __future__ import annotations

import importlib.metadata
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...core.errors import SourceError
from ...host.memory import DEFAULT, MemoryPolicy, is_oom
from . import cuda as onnx_cuda

log = logging.getLogger("saiten")

CUDA, CPU = "CUDAExecutionProvider", "CPUExecutionProvider"
MEMORY_FACTOR = 1.5
"""A session on an accelerator needs about this many times its weight files' size."""

_lock = threading.RLock()  # eviction during a session's creation closes other sessions
_threads = 0  # intra-op threads of new sessions (0: onnxruntime's default, one per core)
_cache: dict[tuple[str, tuple[str, ...]], OnnxModel] = {}
_install_warning: str | None = None
_checked_install = False
_preloaded = False


def _ort() -> Any:
    try:
        import onnxruntime
    except ImportError as e:
        raise SourceError("no ONNX Runtime is installed: run install.py in the ComfyUI-Saiten "
                          "folder with ComfyUI's Python (it picks onnxruntime-gpu or "
                          "onnxruntime), or pip install onnxruntime-gpu (CUDA) or onnxruntime "
                          "(CPU), never both") from e
    return onnxruntime


def check_install() -> str | None:
    """A warning when both `onnxruntime` and `onnxruntime-gpu` are installed (the CPU
    package then shadows the GPU one and sessions silently run on the CPU), else None."""
    found = []
    for dist in ("onnxruntime", "onnxruntime-gpu"):
        try:
            importlib.metadata.distribution(dist)
            found.append(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    if len(found) == 2:
        return ("both onnxruntime and onnxruntime-gpu are installed; the CPU package can "
                "shadow the GPU one: pip uninstall -y onnxruntime onnxruntime-gpu && "
                "pip install onnxruntime-gpu")
    return None


def cuda_available() -> bool:
    """Whether this onnxruntime build offers the CUDA provider."""
    return CUDA in _ort().get_available_providers()


def _preload_cuda() -> None:
    """Let onnxruntime-gpu reuse the CUDA/cuDNN libraries torch brought (ort >= 1.21)."""
    global _preloaded
    if _preloaded:
        return
    _preloaded = True
    ort = _ort()
    if hasattr(ort, "preload_dlls"):
        try:
            ort.preload_dlls()
        except Exception as e:  # a failed preload only means ort finds the libraries itself
            log.warning("saiten: onnxruntime.preload_dlls() failed: %s", e)


def pick_device(requested: str, memory: MemoryPolicy) -> str:
    """"auto" → the host's device inside ComfyUI; standalone, CUDA when available."""
    if requested != "auto":
        return requested
    if type(memory) is MemoryPolicy:
        return "cuda" if cuda_available() else "cpu"
    return memory.device()


def providers_for(device: str, limit: int | None = None) -> list[Any]:
    """The provider list for a device: CUDA (its options, the arena under `limit` bytes)
    then CPU, or CPU alone."""
    if device.startswith("cuda") and cuda_available():
        _preload_cuda()
        return [(CUDA, onnx_cuda.provider_options(device, limit)), CPU]
    return [CPU]


def weight_bytes(path: Path) -> int:
    """Size of the model file plus its external-data files next to it."""
    total = path.stat().st_size
    for extra in path.parent.glob(path.name + ".data*"):
        total += extra.stat().st_size
    return total


@dataclass(eq=False)
class OnnxModel:
    """A loaded session and the facts a source needs about it.

    It is also what the host's memory policy sees (`name`, `unload`): evicting it drops
    the cached session, and a source holding it reopens lazily on its next batch.
    """

    path: Path
    session: Any
    nbytes: int
    device: str
    note: str = ""
    memory: MemoryPolicy = field(default=DEFAULT, repr=False)
    reused: int = 0
    """How many times `open_model` returned this session from the cache."""
    baseline: int | None = field(default=None, repr=False)
    """Free bytes on the device before the session was created, until its first run has
    measured what it really takes."""

    @property
    def name(self) -> str:
        return f"onnx:{self.path.parent.name}/{self.path.name}"

    @property
    def closed(self) -> bool:
        return self.session is None

    def unload(self) -> None:
        close(self)

    @property
    def provider(self) -> str:
        """The provider actually running this session (first in onnxruntime's list)."""
        return self.session.get_providers()[0]

    @property
    def input(self) -> Any:
        return self.session.get_inputs()[0]

    @property
    def input_shape(self) -> list[Any]:
        return list(self.input.shape)

    @property
    def output_names(self) -> list[str]:
        return [o.name for o in self.session.get_outputs()]

    @property
    def fixed_batch(self) -> int | None:
        """The batch size baked into the model, or None when the batch dim is dynamic."""
        dim = self.input_shape[0] if self.input_shape else None
        return dim if isinstance(dim, int) and dim > 0 else None

    def describe(self) -> str:
        short = self.provider.replace("ExecutionProvider", "")
        return f"{self.path.name} on {short}" + (f" ({self.note})" if self.note else "")

    def require_input(self, name: str | None, shape: Sequence[int | None]) -> None:
        """Raise SourceError unless the first input matches `name` (None: any) and `shape`
        (None: any size, including dynamic) — the contract of the model format."""
        got = self.input_shape
        ok = name is None or self.input.name == name
        ok = ok and len(got) == len(shape) and all(
            want is None or not isinstance(dim, int) or dim == want
            for dim, want in zip(got, shape, strict=True))
        if not ok:
            want = ["N" if s is None else s for s in shape]
            raise SourceError(
                f"{self.path.name}: input {self.input.name!r} {got} does not match the expected "
                f"{name or 'input'} {want}; is this the right model file for this source?")

    def chunks(self, n: int, batch_size: int) -> list[range]:
        """Index ranges to run `n` images in: `batch_size` at a time on a dynamic-batch
        model, the model's own batch size on a fixed one."""
        size = self.fixed_batch or max(1, int(batch_size))
        return [range(s, min(n, s + size)) for s in range(0, n, size)]

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        """One forward pass on a prepared chunk; a short chunk is padded for a fixed batch."""
        n = batch.shape[0]
        fixed = self.fixed_batch
        if fixed and n != fixed:
            if n > fixed:
                raise ValueError(f"chunk of {n} for a model with a fixed batch of {fixed}")
            pad = np.zeros((fixed - n, *batch.shape[1:]), batch.dtype)
            batch = np.concatenate([batch, pad])
        feed = {self.input.name: np.ascontiguousarray(batch)}
        try:
            outs = self.session.run(None, feed)
        except Exception as e:
            if not (self.device.startswith("cuda") and is_oom(e)):
                raise
            if not self.memory.recover(self, self.device):
                raise SourceError(f"{self.path.name}: out of memory on {self.device} and "
                                  f"nothing left to evict: {e}") from e
            log.warning("saiten: %s: out of memory on %s; evicted, retrying", self.path.name,
                        self.device)
            outs = self.session.run(None, feed)
        if self.baseline is not None:  # the arena has grown to its working size: measure it
            used, self.baseline = _used(self), None
            if used and used != self.nbytes:
                self.nbytes = used
                self.memory.loaded(self, used, self.device)
        return [o[:n] for o in outs]


def use_threads(n: int) -> None:
    """Sessions created from now on in this process compute with `n` threads that sleep
    when idle (0: onnxruntime's default, a spinning thread per core). A Ray worker sharing
    its node with other actors takes its share of the cores, not all of them."""
    global _threads
    _threads = max(0, int(n))


def _session(path: Path, providers: list[Any]) -> Any:
    ort = _ort()
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if _threads:
        opts.intra_op_num_threads = _threads
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=providers)
    except Exception as e:
        text = str(e)
        if "External data" in text or "external data" in text:
            raise SourceError(
                f"{path.name}: its external weights file is missing or unreadable "
                f"(expected {path.name}.data next to it in {path.parent}); download both "
                f"files of the model: {text}") from e
        if "Protobuf parsing failed" in text or "INVALID_PROTOBUF" in text:
            raise SourceError(
                f"{path.name}: not a valid ONNX model (truncated or corrupt download?); "
                f"delete {path} and download it again") from e
        raise SourceError(f"{path.name}: onnxruntime cannot load it: {text}") from e


def _key(path: Path, providers: list[Any]) -> tuple[str, tuple[str, ...]]:
    return str(path), tuple(p if isinstance(p, str) else f"{p[0]}:{p[1]['device_id']}"
                            for p in providers)


def _create(path: Path, device: str, limit: int | None, memory: MemoryPolicy,
            ) -> tuple[Any, str, str]:
    """(session, device, note): on `device`; out of memory creating a CUDA session evicts
    and retries once, then runs on the CPU."""
    if not device.startswith("cuda"):
        return _session(path, providers_for(device)), device, ""
    try:
        return _session(path, providers_for(device, limit)), device, ""
    except SourceError as e:
        if not is_oom(e):
            raise
        if memory.recover(None, device):
            try:
                return _session(path, providers_for(device, limit)), device, ""
            except SourceError as again:
                if not is_oom(again):
                    raise
        note = f"out of memory creating the session on {device}: ran on CPU"
        log.warning("saiten: %s: %s", path.name, note)
        return _session(path, [CPU]), "cpu", note


def _used(model: OnnxModel) -> int | None:
    """What the session really holds on its device: the free bytes before it was created
    less the free bytes now (None when the host cannot say)."""
    now = model.memory.free(model.device)
    if model.baseline is None or now is None or model.baseline <= now:
        return None
    return model.baseline - now


def _cached(path: Path, providers: list[Any]) -> OnnxModel | None:
    with _lock:
        model = _cache.get(_key(path, providers))
        if model is not None:
            model.reused += 1
        return model


def open_model(
    path: str | Path, *, device: str = "auto", memory: MemoryPolicy | None = None,
    factor: float = MEMORY_FACTOR,
) -> OnnxModel:
    """The cached session for `path` on `device`, created on first use.

    A GPU session first reserves about `factor` × the weights' size through `memory`;
    when the host says the room is still short, the session goes to the CPU instead.
    The new session is reported to `memory.loaded`, so the host can evict it.
    """
    global _checked_install, _install_warning
    memory = memory or DEFAULT
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise SourceError(f"model file not found: {path}")
    if not _checked_install:
        _checked_install = True
        _install_warning = check_install()
        if _install_warning:
            log.warning("saiten: %s", _install_warning)
    device = pick_device(device, memory)
    nbytes = int(weight_bytes(path) * factor)
    note = "onnxruntime and onnxruntime-gpu both installed" if _install_warning else ""
    cuda = device.startswith("cuda") and cuda_available()
    if cuda and (why := onnx_cuda.fallback()):  # known before anything is evicted
        note, device, cuda = why, "cpu", False
    model = _cached(path, providers_for(device))
    limit = baseline = None
    if model is None and cuda:
        free = memory.reserve(nbytes, device)
        if free is not None and free < nbytes:
            note = f"{free >> 20} MiB free on {device}, needs {nbytes >> 20} MiB: ran on CPU"
            device, cuda = "cpu", False
            model = _cached(path, providers_for(device))
        else:
            limit, baseline = free, memory.free(device)
    if model is not None:
        return model
    key = _key(path, providers_for(device))
    with _lock:
        session, device, oom_note = _create(path, device, limit, memory)
        model = OnnxModel(path, session, nbytes, device, oom_note or note, memory)
        if device.startswith("cuda") and model.provider != CUDA:
            model.note = (
                f"CUDA requested but onnxruntime runs on {model.provider}: " + (
                    "check that onnxruntime-gpu matches your CUDA/cuDNN" if cuda else
                    "this onnxruntime has no CUDA provider: pip uninstall -y onnxruntime "
                    "&& pip install onnxruntime-gpu"))
            log.warning("saiten: %s: %s", path.name, model.note)
            if cuda:
                onnx_cuda.remember(model.note)
            model.device = "cpu"
        elif baseline is not None and device.startswith("cuda"):
            model.baseline = baseline
        _cache[key] = model
    model.nbytes = _used(model) or nbytes  # measured, not estimated, where the host can say
    memory.loaded(model, model.nbytes, model.device)
    return model


def close(model: OnnxModel) -> None:
    """Drop `model`'s session from the cache and tell its memory policy. Idempotent."""
    with _lock:
        for key, cached_model in list(_cache.items()):
            if cached_model is model:
                del _cache[key]
        if model.session is None:
            return
        model.session = None
    model.memory.released(model)


def cached() -> list[OnnxModel]:
    """The sessions currently cached (for tests and the node's status line)."""
    with _lock:
        return list(_cache.values())


def clear() -> None:
    """Close every cached session."""
    for model in cached():
        close(model)
