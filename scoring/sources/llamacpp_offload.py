"""Where a llama.cpp model's layers go: the memory both GGUF files and the KV cache need,
and how many layers to offload when not all of them fit."""

from __future__ import annotations

from ..gguf import GGUFPair


def memory_bytes(pair: GGUFPair, n_ctx: int) -> int:
    """Weights of both files plus an f16 KV cache for `n_ctx` tokens."""
    p = pair
    kv = 2 * 2 * n_ctx * p.n_layer * p.n_embd * p.n_head_kv // max(1, p.n_head)
    return p.model_bytes + p.mmproj_bytes + kv


def gpu_bytes(pair: GGUFPair, n_ctx: int, layers: int) -> int:
    """Accelerator memory with `layers` layers offloaded (-1 = all; the mmproj goes along)."""
    if layers == 0:
        return 0
    total = memory_bytes(pair, n_ctx)
    if layers < 0 or layers >= pair.n_layer:
        return total
    return pair.mmproj_bytes + (total - pair.mmproj_bytes) * layers // pair.n_layer


def plan_gpu_layers(n_layer: int, weights: int, overhead: int, free: int | None) -> int:
    """How many of `n_layer` layers to offload: -1 (all) when the `weights` plus `overhead`
    (mmproj, KV cache) fit in `free` bytes or `free` is unknown; else the share of the layers
    that fits once the overhead is placed; 0 when nothing fits."""
    if free is None or free >= weights + overhead:
        return -1
    room = free - overhead
    return max(0, min(n_layer, int(n_layer * room / max(1, weights))))
