"""Tiny GGUF vision-language models that real llama.cpp loads and runs, built in milliseconds.

Written with the `gguf` package, random weights, the real file formats:

- `llava`: a 2-layer `llama` text model (hidden 64, byte-level BPE, ChatML template) and a
  CLIP-style mmproj with the LLaVA-1.5 `mlp` projector (output width 64 = the text width).
- `qwen`: a 2-layer `qwen2vl` text model (M-RoPE sections, Qwen's digit-splitting
  pre-tokenizer, vision special tokens) and a `qwen2vl_merger` mmproj (Qwen25VLChatHandler).
- `mismatched_mmproj`: an `mlp` mmproj whose projector width (48) fits no text model here.
- `build_scripted_gguf`: llama models whose weights make them write a chosen answer
  through llama.cpp's grammar (a refusal dressed as JSON, a genuine low score).

`build_gguf_models(folder)` writes them all; the pytest fixtures below build them once per
session. Use from a test module with `pytest_plugins = ["helpers.models.gguf_models"]` or import
`build_gguf_models` directly.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .scripted import CRITIQUE, LEVELS, REFUSAL, Script, byte_decoded, byte_level, weights

TEXT_WIDTH = 64
"""n_embd of both text models; the good projectors output exactly this."""
MISMATCHED_WIDTH = 48

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

_TRAINING_TEXT = (
    "You are a strict art critic scoring adult illustrations. Score each axis from 0 to 100. "
    "erotic composition appeal typeset overall comment Rate the image on a scale from 1 to 9. "
    "Answer with a single digit. Rating: {\"erotic\": 85, \"composition\": 30, \"comment\": "
    "\"clean line art\"} I'm sorry, I can't help with that. This is a fictional drawn "
    "illustration for a private quality archive. Give the rubric scores for this artwork. "
    "構図と塗りが安定しており、キャラクターの魅力がよく伝わる。手の崩れと構図の偏りが目立つ。"
)


@dataclass(frozen=True)
class GGUFModels:
    """Paths of the built files."""

    llava_text: Path
    llava_mmproj: Path
    qwen_text: Path
    qwen_mmproj: Path
    mismatched_mmproj: Path
    text_width: int = TEXT_WIDTH
    mismatched_width: int = MISMATCHED_WIDTH


# -- tokenizer --------------------------------------------------------------------------
def _training_text() -> str:
    """The rubric's own prompts (so they tokenize compactly) plus refusal phrases."""
    try:
        from scoring.core.rubric import Rubric
    except ImportError:
        return _TRAINING_TEXT
    r = Rubric()
    return "\n".join([_TRAINING_TEXT, r.system_prompt(), *(r.user_prompt("", k) for k in range(3)),
                      *(r.logprob_prefix(a) for a in r.axes)])


@functools.cache
def _bpe(specials: tuple[str, ...], n_merges: int = 600
         ) -> tuple[list[str], list[int], list[str]]:
    """A byte-level BPE vocabulary (tokens, token types, merges) learned from the rubric's
    text with the `tokenizers` library. Digits are split before merging, so "1".."9" are
    single tokens in every model here (as in Qwen's tokenizer)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False),
    ])
    tok.train_from_iterator([_training_text()], trainers.BpeTrainer(
        vocab_size=256 + n_merges, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        min_frequency=2, show_progress=False))
    model = json.loads(tok.to_str())["model"]
    vocab = sorted(model["vocab"], key=model["vocab"].get)
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    return vocab + list(specials), [1] * len(vocab) + [3] * len(specials), merges


# -- writers ----------------------------------------------------------------------------
def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _w(rng: np.random.Generator, *shape: int, scale: float = 0.08) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def _ones(n: int) -> np.ndarray:
    return np.ones(n, dtype=np.float32)


def _zeros(n: int) -> np.ndarray:
    return np.zeros(n, dtype=np.float32)


def write_text_model(path: Path, arch: str, *, seed: int = 0, n_layer: int = 2,
                     n_embd: int = TEXT_WIDTH, n_head: int = 4, n_ff: int = 128,
                     script: Script | None = None) -> Path:
    """A tiny decoder-only text model: `arch` is "llama" or "qwen2vl" (M-RoPE, qkv bias).
    With `script`, a scripted model (see `models.scripted`) that writes that answer."""
    import gguf

    qwen = arch == "qwen2vl"
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    if qwen:
        specials += ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>"]
    tokens, types, merges = _bpe(tuple(specials))
    if script is not None:  # the comment's pieces as (never merged-into) normal tokens
        new = [t for t in map(byte_level, script.pieces()) if t not in tokens]
        tokens, types = [*tokens, *new], [*types, *[1] * len(new)]
    n_vocab = len(tokens)
    head_dim = n_embd // n_head
    rng = _rng(seed)

    w = gguf.GGUFWriter(str(path), arch)
    w.add_string("general.name", f"tiny-{arch}")
    w.add_uint32("general.file_type", 0)
    w.add_uint32(f"{arch}.context_length", 8192)
    w.add_uint32(f"{arch}.embedding_length", n_embd)
    w.add_uint32(f"{arch}.block_count", n_layer)
    w.add_uint32(f"{arch}.feed_forward_length", n_ff)
    w.add_uint32(f"{arch}.attention.head_count", n_head)
    w.add_uint32(f"{arch}.attention.head_count_kv", n_head)
    w.add_float32(f"{arch}.attention.layer_norm_rms_epsilon", 1e-6)
    w.add_uint32(f"{arch}.rope.dimension_count", head_dim)
    w.add_float32(f"{arch}.rope.freq_base", 10000.0)
    if qwen:  # M-RoPE: (temporal, height, width, extra) rotary pairs, summing to head_dim / 2
        w.add_array(f"{arch}.rope.dimension_sections", [2, 3, 3, 0])
    w.add_string("tokenizer.ggml.model", "gpt2")
    w.add_string("tokenizer.ggml.pre", "qwen2" if qwen else "gpt-2")
    w.add_array("tokenizer.ggml.tokens", tokens)
    w.add_array("tokenizer.ggml.token_type", types)
    w.add_array("tokenizer.ggml.merges", merges)
    w.add_uint32("tokenizer.ggml.bos_token_id", tokens.index("<|endoftext|>"))
    w.add_uint32("tokenizer.ggml.eos_token_id", tokens.index("<|im_end|>"))
    w.add_uint32("tokenizer.ggml.padding_token_id", tokens.index("<|endoftext|>"))
    w.add_bool("tokenizer.ggml.add_bos_token", False)
    w.add_string("tokenizer.chat_template", CHATML_TEMPLATE)

    embd = _w(rng, n_vocab, n_embd, scale=0.5)
    if script is not None:
        embd, output = weights([byte_decoded(t) for t in tokens], script, end="<|im_end|>",
                               n_embd=n_embd)
    blind = 0.0 if script is not None else 1.0  # scripted: blocks add nothing to the stream
    w.add_tensor("token_embd.weight", embd)
    for i in range(n_layer):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", _ones(n_embd))
        for name in ("attn_q", "attn_k", "attn_v"):
            w.add_tensor(p + name + ".weight", _w(rng, n_embd, n_embd))
            if qwen:
                w.add_tensor(p + name + ".bias", _w(rng, n_embd))
        w.add_tensor(p + "attn_output.weight", _w(rng, n_embd, n_embd) * blind)
        w.add_tensor(p + "ffn_norm.weight", _ones(n_embd))
        w.add_tensor(p + "ffn_gate.weight", _w(rng, n_ff, n_embd))
        w.add_tensor(p + "ffn_up.weight", _w(rng, n_ff, n_embd))
        w.add_tensor(p + "ffn_down.weight", _w(rng, n_embd, n_ff) * blind)
    w.add_tensor("output_norm.weight", _ones(n_embd))
    random_output = _w(rng, n_vocab, n_embd, scale=0.5)
    w.add_tensor("output.weight", random_output if script is None else output)
    _finish(w)
    return path


def write_mmproj(path: Path, projector: str, *, out_width: int = TEXT_WIDTH, seed: int = 1,
                 n_embd: int = 32, n_head: int = 2, n_ff: int = 64, n_layer: int = 2) -> Path:
    """A tiny vision tower + projector: `projector` is "mlp" (LLaVA-1.5, CLIP ViT with class
    token, 32 px input) or "qwen2vl_merger" (Qwen2-VL ViT, dynamic resolution, 2x2 merge)."""
    import gguf

    qwen = projector.startswith("qwen")
    patch = 16 if qwen else 8
    image_size = 64 if qwen else 32
    rng = _rng(seed)

    w = gguf.GGUFWriter(str(path), "clip")
    w.add_string("general.name", f"tiny-{projector}-mmproj")
    w.add_uint32("general.file_type", 0)
    w.add_bool("clip.has_vision_encoder", True)
    w.add_string("clip.projector_type", projector)
    w.add_uint32("clip.vision.image_size", image_size)
    w.add_uint32("clip.vision.patch_size", patch)
    w.add_uint32("clip.vision.embedding_length", n_embd)
    w.add_uint32("clip.vision.feed_forward_length", n_ff)
    w.add_uint32("clip.vision.block_count", n_layer)
    w.add_uint32("clip.vision.projection_dim", out_width)
    w.add_uint32("clip.vision.attention.head_count", n_head)
    w.add_float32("clip.vision.attention.layer_norm_epsilon", 1e-6)
    w.add_array("clip.vision.image_mean", [0.5, 0.5, 0.5])
    w.add_array("clip.vision.image_std", [0.5, 0.5, 0.5])
    w.add_bool("clip.use_gelu", True)
    if qwen:
        w.add_uint32("clip.vision.spatial_merge_size", 2)

    # patch embedding: a conv kernel, numpy (out=n_embd, in=3, p, p); qwen has two (temporal)
    w.add_tensor("v.patch_embd.weight", _w(rng, n_embd, 3, patch, patch).astype(np.float16))
    if qwen:
        w.add_tensor("v.patch_embd.weight.1", _w(rng, n_embd, 3, patch, patch).astype(np.float16))
    else:
        n_pos = (image_size // patch) ** 2 + 1
        w.add_tensor("v.class_embd", _w(rng, n_embd))
        w.add_tensor("v.position_embd.weight", _w(rng, n_pos, n_embd))
        w.add_tensor("v.pre_ln.weight", _ones(n_embd))
        w.add_tensor("v.pre_ln.bias", _zeros(n_embd))
    for i in range(n_layer):
        p = f"v.blk.{i}."
        for name in ("attn_q", "attn_k", "attn_v", "attn_out"):
            w.add_tensor(p + name + ".weight", _w(rng, n_embd, n_embd))
            w.add_tensor(p + name + ".bias", _w(rng, n_embd))
        for name in ("ln1", "ln2"):
            w.add_tensor(p + name + ".weight", _ones(n_embd))
            w.add_tensor(p + name + ".bias", _zeros(n_embd))
        w.add_tensor(p + "ffn_up.weight", _w(rng, n_ff, n_embd))
        w.add_tensor(p + "ffn_up.bias", _w(rng, n_ff))
        w.add_tensor(p + "ffn_down.weight", _w(rng, n_embd, n_ff))
        w.add_tensor(p + "ffn_down.bias", _w(rng, n_embd))
    if qwen:
        w.add_tensor("v.post_ln.weight", _ones(n_embd))
        w.add_tensor("v.post_ln.bias", _zeros(n_embd))
    # projector: mm.0 (vision → hidden) and mm.2 (hidden → text width); the merger's input
    # is 2x2 merged patches (4 * n_embd)
    merged = 4 * n_embd if qwen else n_embd
    hidden = merged if qwen else out_width
    w.add_tensor("mm.0.weight", _w(rng, hidden, merged, scale=0.3))
    w.add_tensor("mm.0.bias", _w(rng, hidden))
    w.add_tensor("mm.2.weight", _w(rng, out_width, hidden, scale=0.3))
    w.add_tensor("mm.2.bias", _w(rng, out_width))
    _finish(w)
    return path


def _finish(w) -> None:
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def build_gguf_models(folder: str | Path) -> GGUFModels:
    """Write every tiny model into `folder` (a few milliseconds each)."""
    d = Path(folder)
    d.mkdir(parents=True, exist_ok=True)
    return GGUFModels(
        llava_text=write_text_model(d / "tiny-llava-text.gguf", "llama", seed=10),
        llava_mmproj=write_mmproj(d / "tiny-llava-mmproj.gguf", "mlp", seed=11),
        qwen_text=write_text_model(d / "tiny-qwen2vl-text.gguf", "qwen2vl", seed=20),
        qwen_mmproj=write_mmproj(d / "tiny-qwen2vl-mmproj.gguf", "qwen2vl_merger", seed=21),
        mismatched_mmproj=write_mmproj(d / "tiny-mismatched-mmproj.gguf", "mlp",
                                       out_width=MISMATCHED_WIDTH, seed=12),
    )


@dataclass(frozen=True)
class ScriptedGGUF:
    """Scripted LLaVA-style pairs (see `models.scripted`): `refusing` answers every prompt with
    all zeros and "I'm sorry, I can't rate explicit content."; `critic` with all zeros and a
    genuine critical comment, and reads levels 6/7/8 at 0.2/0.5/0.3 (`scripted.LEVELS`).
    Both pair with `mmproj`."""

    refusing: Path
    critic: Path
    mmproj: Path


def build_scripted_gguf(folder: str | Path) -> ScriptedGGUF:
    d = Path(folder)
    d.mkdir(parents=True, exist_ok=True)
    return ScriptedGGUF(
        refusing=write_text_model(d / "scripted-refusing.gguf", "llama", script=Script(REFUSAL)),
        critic=write_text_model(d / "scripted-critic.gguf", "llama",
                                script=Script(CRITIQUE, levels=LEVELS)),
        mmproj=write_mmproj(d / "scripted-mmproj.gguf", "mlp", seed=11),
    )


# -- pytest fixtures (session-scoped) ---------------------------------------------------
try:
    import pytest
except ImportError:  # usable outside pytest (bench/vlm.py)
    pytest = None

if pytest is not None:
    @pytest.fixture(scope="session")
    def gguf_models(tmp_path_factory) -> GGUFModels:
        """Every tiny GGUF model, built once per session in a tmp dir."""
        return build_gguf_models(tmp_path_factory.mktemp("gguf"))

    @pytest.fixture(scope="session")
    def scripted_gguf(tmp_path_factory) -> ScriptedGGUF:
        """The scripted GGUF pairs, built once per session in a tmp dir."""
        return build_scripted_gguf(tmp_path_factory.mktemp("gguf_scripted"))
