"""VLMs run with Hugging Face transformers: JoyCaption (LLaVA), ToriiGate (Qwen2-VL) and other
image-text-to-text models, in bf16/fp16/fp32 or 4-bit nf4 (bitsandbytes).

The model folder is what `save_pretrained` writes (config.json, weights, processor files).
The architecture is read from config.json and built with the Auto classes. Generation is
greedy; with a JSON schema the answer is decoded as that JSON (keys forced, integers read
digit by digit, strings closed at the quote), so a small or stubborn model still yields a
parseable card. The logprob method encodes the image once per image: the prompt part the
axes share is run once and its key/value cache serves all axis suffixes in one batch.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ...core.errors import SourceError
from ...core.images import Image, to_pil
from ...host.memory import is_oom
from .base import VLMSource, model_label, vlm_spec
from .folder import check_folder
from .json_decoder import JsonDecoder

log = logging.getLogger("saiten")

DTYPES = ("auto", "bf16", "fp16", "fp32")
QUANTIZATIONS = ("none", "nf4")
INSTALL_NF4 = "pip install bitsandbytes accelerate"

_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "fp32": 4, "fp16": 2, "bf16": 2}
_NF4_BYTES_PER_PARAM = 0.6  # 4-bit weights + fp16 norms/embeddings/scales, measured roughly
_OVERHEAD = 1.15  # activations and the key/value cache of one image


def _torch():
    try:
        import torch
        import transformers
    except ImportError as e:
        raise SourceError(f"the transformers runtime is missing ({e}): pip install torch "
                          "transformers") from e
    return torch, transformers


def _dtype_kwarg(transformers: Any) -> str:
    """`from_pretrained`'s precision argument: `dtype` since 4.56, `torch_dtype` before."""
    major, minor = (int(p) for p in transformers.__version__.split(".")[:2])
    return "dtype" if (major, minor) >= (4, 56) else "torch_dtype"


class TransformersVLM(VLMSource):
    """A transformers image-text-to-text model as a scorer.

    `model_dir`: a folder with config.json, weights and processor files. `dtype`: auto (the
    memory policy's choice: ComfyUI's for the card inside ComfyUI), bf16, fp16 or fp32.
    `quantization`: "none" or "nf4" (bitsandbytes 4-bit; a checkpoint that is already
    quantized loads as it is).
    """

    spec = vlm_spec("vlm-transformers", 0.9, {"model_dir": "", "dtype": "auto",
                                              "quantization": "none"},
                    {"dtype": DTYPES, "quantization": QUANTIZATIONS})

    def __init__(self, model_dir: str | Path, *, dtype: str = "auto",
                 quantization: str = "none", label: str | None = None, **kw: Any) -> None:
        if dtype not in DTYPES:
            raise SourceError(f"unknown dtype {dtype!r}; use one of {DTYPES}")
        if quantization not in QUANTIZATIONS:
            raise SourceError(f"unknown quantization {quantization!r}; use one of {QUANTIZATIONS}")
        self.model_dir = Path(model_dir)
        super().__init__(label=label or model_label(self.model_dir.name), **kw)
        self.dtype_option = dtype
        self.quantization = quantization
        self._model: Any = None
        self._processor: Any = None
        self._levels: dict[str, list[int]] = {}
        self._digits: dict[int, str] = {}
        self._device = "cpu"
        self._bytes = 0

    # -- the model folder ----------------------------------------------------------------
    def _config(self) -> dict[str, Any]:
        """config.json of a folder that can score images (see `scoring.sources.vlm.folder`)."""
        d = self.model_dir
        if d.is_file() and d.suffix.lower() == ".gguf":
            raise SourceError(f"{d.name} is a GGUF file: choose the llama.cpp runtime for it")
        if not d.is_dir():
            raise SourceError(f"model folder not found: {d}")
        return check_folder(d)

    @property
    def quantized(self) -> bool:
        """True for a 4-bit model (asked for, or a checkpoint saved quantized)."""
        if self.quantization == "nf4":
            return True
        try:
            return "quantization_config" in self._config()
        except SourceError:
            return False

    def memory_bytes(self) -> int:
        """Weights at the chosen precision plus room for one image's activations."""
        if self._bytes:
            return self._bytes
        try:
            config = self._config()
        except SourceError:
            return 0
        files = list(self.model_dir.glob("*.safetensors")) or list(self.model_dir.glob("*.bin"))
        size = sum(f.stat().st_size for f in files)  # repos with both formats load safetensors
        stored = _BYTES.get(str(config.get("dtype") or config.get("torch_dtype")), 2)
        if "quantization_config" in config:
            return int(size * _OVERHEAD)
        params = size / stored
        per = _NF4_BYTES_PER_PARAM if self.quantization == "nf4" else _BYTES[self._dtype_name()]
        return int(params * per * _OVERHEAD)

    def _dtype_name(self, device: str | None = None) -> str:
        """The precision asked for, or "auto": the host's choice for the device (ComfyUI's
        `should_use_bf16` / `should_use_fp16` inside ComfyUI)."""
        if self.dtype_option != "auto":
            return self.dtype_option
        return self.memory.dtype(device or self.memory.device())

    # -- life cycle ----------------------------------------------------------------------
    @property
    def loaded(self) -> bool:
        return self._model is not None

    def load(self) -> None:
        if self._model is not None:
            return
        config = self._config()
        torch, transformers = _torch()
        device = self.memory.device()
        dtype = getattr(torch, {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}
                        [self._dtype_name(device)])
        nbytes = self.memory_bytes()
        kwargs: dict[str, Any] = {_dtype_kwarg(transformers): dtype}
        if self.quantized:
            self._check_bnb()
            if "quantization_config" not in config:
                kwargs["quantization_config"] = transformers.BitsAndBytesConfig(
                    load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype,
                    bnb_4bit_use_double_quant=True,
                )
            # 4-bit weights cannot be moved: make room first, then load straight onto the device
            free = self.memory.reserve(nbytes, device)
            if free is not None and free < nbytes and not device.startswith("cpu"):
                raise SourceError(f"{self.label}: nf4 needs ~{nbytes / 2**30:.1f} GiB on {device} "
                                  f"but only {free / 2**30:.1f} GiB is free")
            kwargs["device_map"] = {"": device}
        else:  # room first: a model that cannot fit the GPU is refused, never copied to RAM
            free = self.memory.reserve(nbytes, device)
            if free is not None and free < nbytes and not device.startswith("cpu"):
                raise SourceError(
                    f"{self.label}: needs ~{nbytes / 2**30:.1f} GiB in "
                    f"{self._dtype_name(device)} on {device} but only {free / 2**30:.1f} GiB is "
                    "free once ComfyUI evicted what it could. Use quantization nf4 "
                    f"({INSTALL_NF4}), a GGUF of this model with the llama.cpp VLM node "
                    "(layers that do not fit run on the CPU), or a smaller model")
        model_class = self._model_class(config, transformers)
        try:
            processor = transformers.AutoProcessor.from_pretrained(self.model_dir)
            model = model_class.from_pretrained(self.model_dir, **kwargs)
        except (ImportError, ModuleNotFoundError) as e:
            raise SourceError(f"{self.label}: a package the model needs is missing: {e}") from e
        except Exception as e:
            raise SourceError(f"{self.label}: cannot load {self.model_dir}: "
                              f"{type(e).__name__}: {e}") from e
        model.eval()
        if not self.quantized:  # loaded on the CPU (the offload device), room made above
            model = model.to(device)
        self._model, self._processor, self._device, self._bytes = model, processor, device, nbytes
        self._index_tokens()
        self.memory.loaded(self, nbytes, device)

    @staticmethod
    def _model_class(config: dict[str, Any], transformers: Any) -> Any:
        """The class named in config.json when transformers has it, else the Auto class."""
        for arch in config.get("architectures") or ():
            cls = getattr(transformers, arch, None)
            if cls is not None:
                return cls
        return transformers.AutoModelForImageTextToText

    def _check_bnb(self) -> None:
        try:
            import accelerate  # noqa: F401
            import bitsandbytes  # noqa: F401
        except ImportError as e:
            raise SourceError(f"{self.label}: 4-bit nf4 needs bitsandbytes and accelerate "
                              f"({e.name} is missing): {INSTALL_NF4}") from e
        except Exception as e:  # bitsandbytes found no usable backend (CUDA library, CPU build)
            raise SourceError(f"{self.label}: bitsandbytes cannot run here ({e}); reinstall "
                              f"it for this machine ({INSTALL_NF4}) or set quantization to "
                              "none") from e

    def unload(self) -> None:
        if self._model is None:
            return
        self._model = self._processor = None
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:
            pass
        self.memory.released(self)

    def describe(self) -> str:
        prec = "nf4" if self.quantized else self._dtype_name(self._device)
        state = f"on {self._device}" if self.loaded else "not loaded"
        return f"{self.label} (transformers, {prec}) {state}"

    # -- tokens --------------------------------------------------------------------------
    def _index_tokens(self) -> None:
        """Token ids that spell each digit string (with or without a leading space), once."""
        tok = self._processor.tokenizer
        self._digits = {}
        for piece, idx in tok.get_vocab().items():
            if len(piece) > 8:
                continue
            text = tok.convert_tokens_to_string([piece])
            if text.strip().isascii() and text.strip().isdigit():
                self._digits[idx] = text
        self._levels = {}

    def _level_ids(self, levels: Sequence[str]) -> dict[str, list[int]]:
        out = {}
        for level in levels:
            if level not in self._levels:
                ids = [i for i, t in self._digits.items() if t.strip() == level]
                if not ids:
                    ids = [i for i in self._processor.tokenizer.encode(
                        level, add_special_tokens=False)[:1]]
                self._levels[level] = ids
            out[level] = self._levels[level]
        return out

    # -- prompts -------------------------------------------------------------------------
    def _prompt(self, system: str, user: str) -> str:
        """The chat-template text with the image placeholder in the user turn."""
        proc = self._processor
        marker = getattr(proc, "image_token", None) or "<image>"
        convo = [
            {"role": "system", "content": [{"type": "text", "text": system}]},
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": user}]},
        ]
        try:
            text = proc.apply_chat_template(convo, add_generation_prompt=True, tokenize=False)
        except Exception:  # templates that only take string contents (JoyCaption's style)
            text = ""
        if marker in text:
            return text
        plain = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        text = proc.apply_chat_template(plain, add_generation_prompt=True, tokenize=False)
        if marker not in text:  # the template leaves the image to us: put it before the ask
            head, found, tail = text.rpartition(user)
            text = f"{head}{marker}\n{found}{tail}" if found else f"{marker}\n{text}"
        return text

    def _encode(self, image: Image, texts: list[str], tensors: bool = True) -> dict[str, Any]:
        """Processor inputs for the texts, each with the image. The chat template already
        wrote the BOS token where the model wants one: the tokenizer must not add another."""
        bos = self._processor.tokenizer.bos_token
        batch = self._processor(
            text=texts, images=[to_pil(image)] * len(texts),
            return_tensors="pt" if tensors else None, padding=len(texts) > 1,
            add_special_tokens=not (bos and all(t.startswith(bos) for t in texts)),
        )
        return self._to_device(dict(batch)) if tensors else dict(batch)

    def _to_device(self, batch: dict[str, Any]) -> dict[str, Any]:
        import torch

        dtype = next(p.dtype for p in self._model.parameters() if p.is_floating_point())
        out = {}
        for k, v in batch.items():
            if isinstance(v, torch.Tensor):
                v = v.to(self._model.device)
                if v.is_floating_point():
                    v = v.to(dtype)
            out[k] = v
        return out

    # -- the two calls -------------------------------------------------------------------
    def _retry_oom(self, run: Callable[[], Any]) -> Any:
        """`run()`; out of memory asks the host to evict everything else, then runs it once
        more (after the failed call's frames, and the tensors they hold, are gone)."""
        try:
            return run()
        except Exception as e:
            if not is_oom(e):
                raise
            if not self.memory.recover(self, self._device):
                raise SourceError(f"{self.label}: out of memory on {self._device} and "
                                  f"nothing left to evict: {e}") from e
            log.warning("saiten: %s: out of memory on %s; evicted, retrying", self.label,
                        self._device)
        return run()

    def chat(self, image: Image, system: str, user: str, *, schema: dict | None,
             max_tokens: int) -> str:
        return self._retry_oom(lambda: self._chat(image, system, user, schema, max_tokens))

    def _chat(self, image: Image, system: str, user: str, schema: dict | None,
              max_tokens: int) -> str:
        import torch

        inputs = self._encode(image, [self._prompt(system, user)])
        with torch.inference_mode():
            if schema and schema.get("properties"):
                return JsonDecoder(self, inputs).run(schema, max_tokens)
            out = self._model.generate(**inputs, max_new_tokens=max_tokens, do_sample=False)
        return self._processor.tokenizer.decode(out[0, inputs["input_ids"].shape[1]:],
                                                skip_special_tokens=True)

    def level_probs(self, image: Image, system: str, prefixes: list[str],
                    levels: Sequence[str]) -> list[dict[str, float]]:
        return self._retry_oom(lambda: self._level_probs(image, system, prefixes, levels))

    def _level_probs(self, image: Image, system: str, prefixes: list[str],
                     levels: Sequence[str]) -> list[dict[str, float]]:
        import torch

        texts = [self._prompt(system, p) for p in prefixes]
        ids = self._level_ids(levels)
        with torch.inference_mode():
            logits = self._shared_prefix_logits(image, texts)
            probs = torch.softmax(logits.float(), dim=-1).cpu()
        out = []
        for row in probs:
            mass = {lv: float(row[i].sum()) if i else 0.0 for lv, i in ids.items()}
            total = sum(mass.values())
            out.append({lv: m / total for lv, m in mass.items()} if total > 0 else mass)
        return out

    def _shared_prefix_logits(self, image: Image, texts: list[str]):
        """Next-token logits after each text, running the part the texts share (the system
        prompt and the image) once and all the distinct suffixes in one batch."""
        import torch

        tok = self._processor.tokenizer
        first = self._encode(image, texts[:1])
        seqs = [first["input_ids"][0].tolist()]
        seqs += [list(self._encode(image, [t], tensors=False)["input_ids"][0]) for t in texts[1:]]
        seqs = [list(map(int, s)) for s in seqs]
        shared = min(len(s) for s in seqs) - 1
        for s in seqs[1:]:
            shared = next((k for k in range(shared) if s[k] != seqs[0][k]), shared)
        image_ids = {getattr(self._processor, "image_token_id", None),
                     getattr(self._model.config, "image_token_id", None),
                     getattr(self._model.config, "image_token_index", None)} - {None}
        if shared < 1 or any(t in image_ids for s in seqs for t in s[shared:]):
            return self._full_logits(image, texts)  # the image is not in the shared part
        prefill = {k: (v[:, :shared] if k in ("input_ids", "attention_mask", "mm_token_type_ids")
                       else v) for k, v in first.items()}
        cache = self._model(**prefill, use_cache=True, logits_to_keep=1).past_key_values
        tails = [s[shared:] for s in seqs]
        width = max(map(len, tails))
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        batch = torch.tensor([t + [pad] * (width - len(t)) for t in tails],
                             device=self._model.device)
        if len(tails) > 1:
            cache.batch_repeat_interleave(len(tails))
        # right padding: causal attention keeps every real token blind to the pads after it
        logits = self._model(input_ids=batch, past_key_values=cache, use_cache=True).logits
        last = torch.tensor([len(t) - 1 for t in tails], device=logits.device)
        return logits[torch.arange(len(tails), device=logits.device), last]

    def _full_logits(self, image: Image, texts: list[str]):
        import torch

        rows = []
        for t in texts:
            inputs = self._encode(image, [t])
            rows.append(self._model(**inputs, logits_to_keep=1).logits[0, -1])
        return torch.stack(rows)
