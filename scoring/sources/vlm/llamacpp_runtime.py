"""llama-cpp-python, the way the llama.cpp backend uses it: the lazy import with its
install hints, the chat handlers, the prompt rendered around the user's text, and the text
tokens of a libmtmd chunk."""

from __future__ import annotations

import ctypes
import functools
from typing import Any

from ...core.errors import SourceError

INSTALL_HINT = ("llama-cpp-python is not installed: pip install llama-cpp-python "
                "(CUDA: see docs/install.md)")
MIN_VERSION = "0.3.36"
"""The version this backend is tested with (libmtmd chat handlers and helpers)."""

CHAT_FORMATS: dict[str, str] = {
    "qwen2.5-vl": "Qwen25VLChatHandler",
    "llava-1.5": "Llava15ChatHandler",
    "mtmd": "MTMDChatHandler",
}
"""Forcible chat handlers; "auto" picks one from the pair's family (`GGUFPair.chat_format`)."""


_SENTINEL = "\u241fSAITEN_PROMPT\u241f"


@functools.cache
def import_llama_cpp() -> Any:
    """llama_cpp, imported on first use: SourceError with the pip command when it is missing
    or too old for vision models (libmtmd bindings)."""
    try:
        import llama_cpp
    except ImportError as e:
        raise SourceError(INSTALL_HINT) from e
    try:
        import llama_cpp.llama_chat_format as formats
        import llama_cpp.mtmd_cpp as mtmd
        from llama_cpp._logger import llama_log_callback

        for needed in (*CHAT_FORMATS.values(), "Jinja2ChatFormatter"):
            getattr(formats, needed)
        mtmd.mtmd_helper_eval_chunk_single  # noqa: B018
    except (ImportError, AttributeError) as e:
        version = getattr(llama_cpp, "__version__", "?")
        raise SourceError(f"llama-cpp-python {version} is too old for vision GGUFs ({e}): "
                          f"pip install -U \"llama-cpp-python>={MIN_VERSION}\"") from e
    # libmtmd logs every prompt at INFO level: route it through llama-cpp-python's logger
    # (errors only unless verbose), as llama.cpp's own log already is
    mtmd.mtmd_helper_log_set(llama_log_callback, ctypes.c_void_p(0))
    return llama_cpp


def render_split(llama_cpp: Any, llm: Any, handler: Any, system: str,
                 model_name: str) -> tuple[str, str]:
    """The chat prompt around the user's text — (system + image, end of turn + assistant
    header) — rendered with the chat handler's template."""
    formats = llama_cpp.llama_chat_format
    marker = handler._mtmd_cpp.mtmd_default_marker().decode("utf-8")
    messages = [
        {"role": "system", "content": system},
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": marker}},
                                     {"type": "text", "text": _SENTINEL}]},
    ]
    if isinstance(handler, formats.MTMDChatHandler):
        template = handler._get_chat_template(llm)
        messages = handler._get_template_messages(messages, marker)
    else:
        template = handler.CHAT_FORMAT

    def piece(token: int) -> str:
        return llm.detokenize([token]).decode("utf-8", "ignore")

    text = formats.Jinja2ChatFormatter(
        template, eos_token=piece(llm.token_eos()), bos_token=piece(llm.token_bos()),
    )(messages=messages).prompt
    if text.count(_SENTINEL) != 1 or marker not in text.split(_SENTINEL)[0]:
        raise SourceError(f"chat template of {model_name!r} puts the image after "
                          "the question; the logprob method cannot share the image prefix")
    head, tail = text.split(_SENTINEL)
    return head, tail


def text_tokens(mtmd: Any, chunk: Any) -> list[int] | None:
    """The token ids of a text chunk; None for an image chunk."""
    if mtmd.mtmd_input_chunk_get_type(chunk) != mtmd.MTMD_INPUT_CHUNK_TYPE_TEXT:
        return None
    n = ctypes.c_size_t()
    ptr = mtmd.mtmd_input_chunk_get_tokens_text(chunk, ctypes.byref(n))
    return [ptr[i] for i in range(n.value)]


__all__ = ["CHAT_FORMATS", "INSTALL_HINT", "MIN_VERSION", "import_llama_cpp", "render_split",
           "text_tokens"]
