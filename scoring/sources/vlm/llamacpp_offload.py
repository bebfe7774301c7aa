"""Where a llama.cpp model's layers go: the memory both GGUF files, the KV cache and the
compute buffers need, how many layers to offload when not all of them fit, and what to try
when loading fails."""

from __future__ import annotations

from .gguf import GGUFPair

N_UBATCH = 512
"""llama-cpp-python's physical batch: the compute buffers are sized for it."""


def layered_bytes(pair: GGUFPair, n_ctx: int) -> int:
    """What scales with the layers offloaded: the text weights and an f16 KV cache for
    `n_ctx` tokens."""
    p = pair
    kv = 2 * 2 * n_ctx * p.n_layer * p.n_embd * p.n_head_kv // max(1, p.n_head)
    return p.model_bytes + kv


def compute_bytes(pair: GGUFPair, n_ctx: int) -> int:
    """llama.cpp's compute buffers for one batch of N_UBATCH tokens (no flash attention, the
    llama-cpp-python default): f32 logits for each token, one layer's attention scores over
    the context, and the activations."""
    vocab = pair.n_vocab or 152_064  # Qwen's vocabulary when the header does not say
    return 4 * N_UBATCH * (vocab + n_ctx * pair.n_head + 8 * pair.n_embd)


def vision_bytes(pair: GGUFPair, max_pixels: int) -> int:
    """The vision encoder's compute buffer, sized at its warm-up, for an image of `max_pixels`
    (images are downscaled to that first): one layer's attention scores over every patch,
    per head, and the activations."""
    patches = max(1, max_pixels // (pair.vision_patch or 14) ** 2)
    return 4 * patches * (patches * (pair.vision_heads or 16) + 8 * (pair.vision_width or 1280))


def fixed_bytes(pair: GGUFPair, n_ctx: int, max_pixels: int) -> int:
    """What goes to the GPU with any layer: the mmproj, the compute buffers, the vision
    warm-up."""
    return pair.mmproj_bytes + compute_bytes(pair, n_ctx) + vision_bytes(pair, max_pixels)


def memory_bytes(pair: GGUFPair, n_ctx: int, max_pixels: int) -> int:
    """Everything on the GPU with all layers offloaded."""
    return layered_bytes(pair, n_ctx) + fixed_bytes(pair, n_ctx, max_pixels)


def gpu_bytes(pair: GGUFPair, n_ctx: int, max_pixels: int, layers: int) -> int:
    """Accelerator memory with `layers` layers offloaded (-1 = all; the fixed part goes
    along with any)."""
    if layers == 0:
        return 0
    if layers < 0 or layers >= pair.n_layer:
        return memory_bytes(pair, n_ctx, max_pixels)
    return (fixed_bytes(pair, n_ctx, max_pixels)
            + layered_bytes(pair, n_ctx) * layers // pair.n_layer)


def plan_gpu_layers(n_layer: int, weights: int, overhead: int, free: int | None) -> int:
    """How many of `n_layer` layers to offload: -1 (all) when the per-layer `weights` (with
    their KV cache) plus the fixed `overhead` (mmproj, compute buffers, vision warm-up) fit in
    `free` bytes or `free` is unknown; else the share of the layers that fits once the overhead
    is placed; 0 when nothing fits."""
    if free is None or free >= weights + overhead:
        return -1
    room = free - overhead
    return max(0, min(n_layer, int(n_layer * room / max(1, weights))))


def retry_layers(layers: int, n_layer: int) -> list[int]:
    """The n_gpu_layers to try in turn: the plan, half of its layers, then the CPU."""
    if layers == 0:
        return [0]
    half = (n_layer if layers < 0 or layers > n_layer else layers) // 2
    return list(dict.fromkeys((layers, half, 0)))
