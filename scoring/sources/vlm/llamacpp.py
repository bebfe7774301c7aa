"""Local GGUF vision-language models through llama.cpp (llama-cpp-python, optional).

A text GGUF plus its paired mmproj (the vision tower + projector). Before anything is loaded
both headers are read and the pair is checked: the projector must output the text model's
embedding width and belong to its family (a Qwen2-VL merger with a `qwen2vl` model, …) —
a mismatched mmproj is the classic failure and gets a message naming both files.

- generate: the prompt rendered with the family's chat handler template (Qwen2.5-VL, LLaVA,
  or the model's own template through libmtmd), evaluated like the handler does, then greedy
  sampling with JSON forced by a grammar from the rubric's schema (`enum` levels,
  `maxLength` comment). Identical answers to the handler's, but the system prompt stays in
  the KV cache from one image to the next.
- logprob: the system prompt, the image and the text all axes share are evaluated once (the
  system prompt stays cached from one image to the next); for each axis the KV cache is cut
  back to that point and only the axis question is evaluated, then the next-token logits of
  the level digits are read (softmax over those ids only).
"""

from __future__ import annotations

import ctypes
import gc
import hashlib
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage

from ...core.errors import SourceError
from ...core.images import Image, to_uint8
from ..base import log
from . import llamacpp_offload as offload
from .base import VLMSource, model_label, vlm_spec
from .gguf import GGUFPair, read_pair
from .llamacpp_runtime import CHAT_FORMATS, import_llama_cpp, render_split, text_tokens


class LlamaCppVLM(VLMSource):
    """A GGUF VLM (text model + paired mmproj) run by llama.cpp.

    `chat_format`: "auto" (from the pair), "qwen2.5-vl", "llava-1.5" or "mtmd".
    `n_gpu_layers`: "auto" (from the memory policy: all when the model fits, a proportional
    share when not, 0 on CPU or a CPU-only build) or a number (-1 = all).
    `max_pixels`: larger images are downscaled to this many pixels first (0 = never); Qwen
    models spend a token per 28x28 pixels, so this bounds time and context.
    """

    spec = vlm_spec("vlm-llamacpp", 1.0, {"model_path": "", "mmproj_path": "",
                                          "chat_format": "auto", "n_gpu_layers": "auto"},
                    {"chat_format": ("auto", *CHAT_FORMATS)})

    def __init__(
        self, model_path: str | Path, mmproj_path: str | Path, *, chat_format: str = "auto",
        n_gpu_layers: int | str = "auto", n_ctx: int = 4096, n_threads: int | None = None,
        max_pixels: int = 1024 * 1024, **base_kwargs: Any,
    ) -> None:
        base_kwargs.setdefault("label", model_label(Path(model_path).stem, gguf=True))
        super().__init__(**base_kwargs)
        if chat_format != "auto" and chat_format not in CHAT_FORMATS:
            raise SourceError(f"unknown chat_format {chat_format!r}; use 'auto' or one of "
                              f"{', '.join(CHAT_FORMATS)}")
        if n_gpu_layers != "auto" and not isinstance(n_gpu_layers, int):
            raise SourceError(f"n_gpu_layers must be 'auto' or an integer, got {n_gpu_layers!r}")
        self.model_path, self.mmproj_path = Path(model_path), Path(mmproj_path)
        self.chat_format = chat_format
        self.n_gpu_layers = n_gpu_layers
        self.n_ctx = int(n_ctx)
        self.n_threads = n_threads
        self.max_pixels = int(max_pixels)
        self._llm: Any = None
        self._handler: Any = None
        self._pair: GGUFPair | None = None
        self._grammars: dict[str, Any] = {}
        self._prompts: dict[str, tuple[str, str]] = {}
        self._level_ids: dict[tuple[str, ...], list[int]] = {}
        self._kv: list[tuple[tuple, int]] = []  # (chunk, end position) held by the KV cache
        self._offloaded = 0
        self._device = "cpu"

    # -- life cycle ------------------------------------------------------------------
    @property
    def loaded(self) -> bool:
        return self._llm is not None

    @property
    def pair(self) -> GGUFPair:
        """The checked header facts of the two files (read once)."""
        if self._pair is None:
            pair = read_pair(self.model_path, self.mmproj_path)
            pair.check()
            self._pair = pair
        return self._pair

    def memory_bytes(self) -> int:
        """Weights of both files, an f16 KV cache for `n_ctx` tokens, the compute buffers
        and the vision encoder's warm-up."""
        return offload.memory_bytes(self.pair, self.n_ctx, self.max_pixels)

    def resolved_chat_format(self) -> str:
        return self.pair.chat_format() if self.chat_format == "auto" else self.chat_format

    def _gpu_bytes(self, layers: int) -> int:
        """Accelerator memory with `layers` layers offloaded (-1 = all; the mmproj goes along)."""
        return offload.gpu_bytes(self.pair, self.n_ctx, self.max_pixels, layers)

    def _gpu_layers(self, llama_cpp: Any) -> int:
        """Layers to offload: 0 on a CPU-only llama.cpp or a CPU device; the user's number
        (room reserved for it); or "auto": what the memory policy makes room for."""
        self._device = self.memory.device()
        if self._device == "cpu" or not llama_cpp.llama_supports_gpu_offload():
            return 0
        if self.n_gpu_layers != "auto":
            self.memory.reserve(self._gpu_bytes(int(self.n_gpu_layers)), self._device)
            return int(self.n_gpu_layers)
        p = self.pair
        free = self.memory.reserve(self.memory_bytes(), self._device)
        return offload.plan_gpu_layers(p.n_layer, offload.layered_bytes(p, self.n_ctx),
                                       offload.fixed_bytes(p, self.n_ctx, self.max_pixels), free)

    def load(self) -> None:
        if self._llm is not None:
            return
        pair = self.pair  # the files first: a wrong pair is wrong with any runtime
        llama_cpp = import_llama_cpp()
        chat_format = self.resolved_chat_format()
        layers = self._gpu_layers(llama_cpp)
        last = ""
        for n in offload.retry_layers(layers, pair.n_layer):
            try:  # fall back to fewer GPU layers (down to CPU) rather than crash on OOM
                self._open(llama_cpp, chat_format, n)
                break
            except Exception as e:
                last = f"{type(e).__name__}: {e}"  # not `e`: its frames hold the failed model
            self._close()
            gc.collect()  # the failed attempt's GPU weights go before the next attempt loads
            log.warning("saiten: %s: loading with n_gpu_layers=%d failed: %s",
                        self.label, n, last)
        else:
            raise SourceError(f"llama.cpp could not load {pair.model_path.name!r} with "
                              f"{pair.mmproj_path.name!r}: {last}")
        # registered even on the CPU, so the host's "free memory" can evict it from RAM too
        if self._offloaded:
            self.memory.loaded(self, self._gpu_bytes(self._offloaded), self._device)
        else:
            self.memory.loaded(self, self.memory_bytes(), "cpu")

    def _open(self, llama_cpp: Any, chat_format: str, n_gpu_layers: int) -> None:
        formats = llama_cpp.llama_chat_format
        handler_cls = getattr(formats, CHAT_FORMATS[chat_format])
        self._handler = handler_cls(clip_model_path=str(self.mmproj_path), verbose=False)
        gpu = int(self._device.partition(":")[2] or 0) if self._device.startswith("cuda") else 0
        self._llm = llama_cpp.Llama(
            model_path=str(self.model_path), chat_handler=self._handler, n_ctx=self.n_ctx,
            n_gpu_layers=n_gpu_layers, n_threads=self.n_threads, n_threads_batch=self.n_threads,
            split_mode=llama_cpp.LLAMA_SPLIT_MODE_NONE, main_gpu=gpu,  # ComfyUI's GPU alone
            logits_all=False,
            verbose=False,
        )
        self._init_vision(use_gpu=n_gpu_layers != 0)  # a bad mmproj fails now, not per image
        n_layer = self.pair.n_layer
        self._offloaded = n_layer if n_gpu_layers < 0 else min(n_gpu_layers, n_layer)
        if not llama_cpp.llama_supports_gpu_offload():
            self._offloaded = 0

    def _init_vision(self, *, use_gpu: bool) -> None:
        """The handler's libmtmd context, made here so the vision tower stays on the CPU when
        the text model does (the handlers always ask for the GPU); freed with the model."""
        handler, llm = self._handler, self._llm
        mtmd = handler._mtmd_cpp
        params = mtmd.mtmd_context_params_default()
        params.use_gpu = use_gpu
        params.print_timings = False
        params.n_threads = llm.n_threads
        ctx = mtmd.mtmd_init_from_file(str(self.mmproj_path).encode(), llm.model, params)
        if ctx is None:
            raise ValueError(f"libmtmd could not load {self.mmproj_path.name!r} with "
                             f"{self.model_path.name!r}")
        handler.mtmd_ctx = ctx

        def free() -> None:
            if handler.mtmd_ctx is not None:
                mtmd.mtmd_free(handler.mtmd_ctx)
                handler.mtmd_ctx = None

        llm._stack.callback(free)
        if not mtmd.mtmd_support_vision(ctx):
            raise ValueError(f"{self.mmproj_path.name!r} has no vision encoder")

    def _close(self) -> None:
        llm, handler = self._llm, self._handler
        self._llm = self._handler = None
        self._grammars.clear()
        self._prompts.clear()
        self._level_ids.clear()
        self._kv = []
        if llm is not None:
            llm.close()  # frees the context, the model and (via its exit stack) the mtmd context
        if handler is not None and getattr(handler, "mtmd_ctx", None) is not None:
            handler._mtmd_cpp.mtmd_free(handler.mtmd_ctx)
            handler.mtmd_ctx = None

    def unload(self) -> None:
        if self._llm is None and self._handler is None:
            return
        self._close()
        self._offloaded = 0
        self.memory.released(self)

    def describe(self) -> str:
        where = "CPU" if not self._offloaded else f"{self._offloaded} layers on {self._device}"
        try:
            fmt = self.resolved_chat_format()
        except SourceError:  # the files are unreadable: load() will say why
            fmt = self.chat_format
        return (f"{self.label}: {self.model_path.name} + {self.mmproj_path.name} "
                f"(llama.cpp, {fmt}, {where})")

    # -- the two backend calls -------------------------------------------------------
    def _constraint(self, schema: dict | None) -> dict[str, Any]:
        """Completion arguments forcing the answer's form: a grammar from the JSON schema."""
        if schema is None:
            return {}
        key = json.dumps(schema)  # property order matters: it is the order of the answer
        if key not in self._grammars:
            from llama_cpp.llama_grammar import LlamaGrammar

            self._grammars[key] = LlamaGrammar.from_json_schema(key, verbose=False)
        return {"grammar": self._grammars[key]}

    def chat(self, image: Image, system: str, user: str, *, schema: dict | None,
             max_tokens: int) -> str:
        """Greedy answer. The prompt is rendered with the chat handler's template and
        evaluated like the handler does (text and image chunks through libmtmd), keeping the
        system prompt cached from the previous image; then llama.cpp samples from there."""
        self.load()
        head, tail = self._split_prompt(system)
        n = self._eval_head(head + user + tail, image)
        out = self._llm.create_completion(
            prompt=self._llm.input_ids[:n].tolist(), temperature=0.0, top_k=1,
            repeat_penalty=1.0, max_tokens=max_tokens, **self._constraint(schema),
        )
        return out["choices"][0]["text"] or ""

    def level_probs(self, image: Image, system: str, prefixes: list[str],
                    levels: Sequence[str]) -> list[dict[str, float]]:
        self.load()
        llm = self._llm
        ids = self._ids(tuple(levels))
        head, tail = self._split_prompt(system)
        # whole lines all prefixes share (e.g. the tagger's context) join the cached head
        shared = os.path.commonprefix(prefixes) if len(prefixes) > 1 else ""  # noqa: RUF071
        shared = shared[:shared.rfind("\n") + 1]
        try:
            start = self._eval_head(head + shared, image)
            n_vocab = llm.n_vocab()
            out = []
            for prefix in prefixes:
                llm.n_tokens = start  # drop the previous axis; keep system + image + shared
                rest = prefix[len(shared):] + tail
                llm.eval(llm.tokenize(rest.encode(), add_bos=False, special=True))
                logits = np.ctypeslib.as_array(
                    self._llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(n_vocab,))
                picked = logits[ids].astype(np.float64)
                p = np.exp(picked - picked.max())
                p /= p.sum()
                out.append({lv: float(v) for lv, v in zip(levels, p, strict=True)})
            return out
        finally:
            llm.reset()

    # -- logprob helpers --------------------------------------------------------------
    def _rgb(self, image: Image) -> np.ndarray:
        """Clean uint8 RGB, downscaled (aspect kept) to at most `max_pixels`."""
        rgb = to_uint8(image)
        h, w = rgb.shape[:2]
        if self.max_pixels > 0 and h * w > self.max_pixels:
            f = math.sqrt(self.max_pixels / (h * w))
            size = (max(1, int(w * f)), max(1, int(h * f)))
            rgb = np.asarray(PILImage.fromarray(rgb, "RGB").resize(size, PILImage.LANCZOS))
        return rgb

    @property
    def _llama_cpp(self) -> Any:
        return import_llama_cpp()

    def _ids(self, levels: tuple[str, ...]) -> list[int]:
        """The token id of each level; each level must be one token (a leading bare-space
        token, as SentencePiece adds, is tolerated)."""
        if levels not in self._level_ids:
            ids = []
            for lv in levels:
                toks = self._llm.tokenize(lv.encode(), add_bos=False, special=False)
                if len(toks) == 2 and not self._llm.detokenize(toks[:1]).strip():
                    toks = toks[1:]
                if len(toks) != 1:
                    raise SourceError(f"level {lv!r} is {len(toks)} tokens in "
                                      f"{self.model_path.name!r}; the logprob method needs "
                                      "single-token levels (use method 'generate')")
                ids.append(toks[0])
            self._level_ids[levels] = ids
        return self._level_ids[levels]

    def _split_prompt(self, system: str) -> tuple[str, str]:
        """The chat prompt around the user's text: (system + image, end of turn + assistant
        header), rendered with the chat handler's template (cached per system prompt)."""
        if system not in self._prompts:
            self._prompts = {system: self._render_split(system)}  # one rubric at a time
        return self._prompts[system]

    def _render_split(self, system: str) -> tuple[str, str]:
        return render_split(self._llama_cpp, self._llm, self._handler, system,
                            self.model_path.name)

    def _eval_head(self, head: str, image: Image) -> int:
        """Evaluate a prompt with its image into the KV cache (reusing what the last prompt
        left there); return the position after it."""
        llm, mtmd = self._llm, self._handler._mtmd_cpp
        ctx = self._handler.mtmd_ctx
        rgb = np.ascontiguousarray(self._rgb(image))
        h, w = rgb.shape[:2]
        bitmap = mtmd.mtmd_bitmap_init(w, h, rgb.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8)))
        if bitmap is None:
            raise ValueError("llama.cpp could not take the image")
        chunks = mtmd.mtmd_input_chunks_init()
        try:
            text = mtmd.mtmd_input_text()
            raw = head.encode("utf-8")
            text.text, text.text_len = raw, len(raw)
            text.add_special = text.parse_special = True
            arr = (mtmd.mtmd_bitmap_p_ctypes * 1)(bitmap)
            if mtmd.mtmd_tokenize(ctx, chunks, ctypes.byref(text), arr, 1) != 0:
                raise ValueError("llama.cpp could not tokenize the prompt with the image")
            n = mtmd.mtmd_helper_get_n_tokens(chunks)
            if n + 64 > llm.n_ctx():
                raise ValueError(f"prompt and image need {n} tokens but n_ctx is "
                                 f"{llm.n_ctx()}: raise n_ctx or send smaller images")
            return self._eval_chunks(chunks, hashlib.blake2b(rgb.tobytes(), digest_size=16,
                                                             person=b"saiten").digest())
        finally:
            mtmd.mtmd_input_chunks_free(chunks)
            mtmd.mtmd_bitmap_free(bitmap)

    def _eval_chunks(self, chunks: Any, image_key: bytes) -> int:
        """Decode tokenized text+image chunks from position 0; return the position after
        them. The chunks already in the KV cache from the last call (the system prompt, the
        same image, a common start of the text) are kept, not decoded again."""
        mtmd, llm = self._handler._mtmd_cpp, self._llm
        held, self._kv = self._kv, []  # nothing is trusted if this fails half-way
        done: list[tuple[tuple, int]] = []
        pos, reuse = 0, True
        llm.reset()
        for i in range(mtmd.mtmd_input_chunks_size(chunks)):
            chunk = mtmd.mtmd_input_chunks_get(chunks, i)
            text = text_tokens(mtmd, chunk)
            key = ("text", tuple(text)) if text is not None else (
                "image", image_key, mtmd.mtmd_input_chunk_get_n_tokens(chunk))
            old = held[i] if reuse and i < len(held) else None
            if old and old[0] == key:
                done.append(old)
                pos = old[1]
                continue
            reuse = False
            if text is not None:  # text: keep the tokens it shares with the cached one
                same = 0
                if old and old[0][0] == "text":
                    while (same < min(len(text), len(old[0][1]))
                           and text[same] == old[0][1][same]):
                        same += 1
                llm.n_tokens = pos + same
                llm.eval(text[same:])  # also records the ids llama-cpp-python compares
                pos = llm.n_tokens
            else:
                llm._ctx.kv_cache_seq_rm(-1, pos, -1)
                new_past = self._llama_cpp.llama_pos(0)
                if mtmd.mtmd_helper_eval_chunk_single(self._handler.mtmd_ctx, llm.ctx, chunk,
                                                      pos, 0, llm.n_batch, False,
                                                      ctypes.byref(new_past)) != 0:
                    raise ValueError("llama.cpp failed to evaluate the image")
                pos = new_past.value
            done.append((key, pos))
        llm._ctx.kv_cache_seq_rm(-1, pos, -1)
        llm.n_tokens = pos
        self._kv = done
        return pos


__all__ = ["LlamaCppVLM"]
