"""PyTorch's CUDA caching allocator replayed on the tensors a dense HF Transformers decoder allocates.

Why `max_memory_reserved` exceeds `max_memory_allocated` on a long prefill: every size class of the
layer's transients (hidden-size, fp32 norm, MLP intermediate) gets its own segments, and each layer's
DynamicCache K/V are carved by best fit out of the freed transients' blocks, pinning them: once a
segment of the MLP intermediate size holds a cache entry the next layer's gate/up/product no longer fit
in it and a new segment is cut, so the reserve grows in steps of `intermediate x tokens` as the cache
fills. Where those steps fall against the cache's growth decides the reserve (Llama-3.1-8B ~22 % above
its peak allocation, Qwen2.5-7B ~9 %), which a flat fraction cannot follow.

The rules are c10/cuda/CUDACachingAllocator.cpp's (torch 2.11), as modelled in
tests/data/ground-truth/method/hf_meta_trace.py:
- `round_size`: 512-byte granules (kMinBlockSize = 512);
- `get_allocation_size`: <= 1 MiB (kSmallSize) from 2 MiB segments (kSmallBuffer), < 10 MiB
  (kMinLargeAlloc) from 20 MiB segments (kLargeBuffer), larger rounded up to 2 MiB (kRoundLarge);
- `get_free_block`: best fit, smallest block >= size (pools ordered by size then address);
- `should_split`: a large block splits when more than kSmallSize remains, a small one when >= 512 B;
- `free_block` / `try_merge_blocks`: a freed block merges with free neighbours of its segment.
The event sequence is one Llama-style decoder layer as transformers 5.17 runs it (the order traced on
the meta device: RMSNorm in fp32, q/k/v projections, rotary embedding, SDPA with an fp32 logsumexp,
o_proj, residual, gated MLP), then one decode step that `torch.cat`s one token onto every layer's K/V
(`DynamicLayer.update`), which reallocates them.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache

import numpy as np

K_MIN_BLOCK = 512
K_SMALL_SIZE = 1 << 20
K_SMALL_BUFFER = 2 << 20
K_LARGE_BUFFER = 20 << 20
K_MIN_LARGE_ALLOC = 10 << 20
K_ROUND_LARGE = 2 << 20


class _Block:
    __slots__ = ("size", "addr", "prev", "next", "free", "small")

    def __init__(self, size: int, addr: int, small: bool) -> None:
        self.size, self.addr, self.small = size, addr, small
        self.prev: _Block | None = None
        self.next: _Block | None = None
        self.free = True


class CachingAllocator:
    """Enough of CUDACachingAllocator's DeviceCachingAllocator to follow reserved memory."""

    def __init__(self) -> None:
        self.reserved = self.allocated = self.peak_reserved = self.peak_allocated = 0
        self.pools: dict[bool, list[_Block]] = {True: [], False: []}
        self.live: dict[object, _Block] = {}
        self._addr = 0

    def malloc(self, key: object, n: int) -> None:
        size = K_MIN_BLOCK * max(1, -(-n // K_MIN_BLOCK))
        small = size <= K_SMALL_SIZE
        pool = self.pools[small]
        best = None
        for b in pool:
            if b.size >= size and (best is None or (b.size, b.addr) < (best.size, best.addr)):
                best = b
        if best is not None:
            pool.remove(best)
        else:
            seg = K_SMALL_BUFFER if small else K_LARGE_BUFFER if size < K_MIN_LARGE_ALLOC else \
                K_ROUND_LARGE * -(-size // K_ROUND_LARGE)
            best = _Block(seg, self._addr, small)
            self._addr += seg
            self.reserved += seg
            self.peak_reserved = max(self.peak_reserved, self.reserved)
        rest = best.size - size
        if (small and rest >= K_MIN_BLOCK) or (not small and rest > K_SMALL_SIZE):
            tail = _Block(rest, best.addr + size, small)
            tail.prev, tail.next = best, best.next
            if best.next is not None:
                best.next.prev = tail
            best.next = tail
            best.size = size
            pool.append(tail)
        best.free = False
        self.allocated += best.size
        self.peak_allocated = max(self.peak_allocated, self.allocated)
        self.live[key] = best

    def free(self, key: object) -> None:
        b = self.live.pop(key)
        self.allocated -= b.size
        b.free = True
        pool = self.pools[b.small]
        p = b.prev
        if p is not None and p.free:
            pool.remove(p)
            b.addr, b.size, b.prev = p.addr, p.size + b.size, p.prev
            if p.prev is not None:
                p.prev.next = b
        nx = b.next
        if nx is not None and nx.free:
            pool.remove(nx)
            b.size, b.next = b.size + nx.size, nx.next
            if nx.next is not None:
                nx.next.prev = b
        pool.append(b)


def _norm(ev: list[tuple[int, int, int]], x: int, rows: int, key: int) -> int:
    """RMSNorm in fp32 (`hidden_states.to(torch.float32)`, `pow(2).mean(-1)`, `* rsqrt`, `weight *`)
    over `x` 16-bit bytes of `rows` rows; appends its allocations (+1) and frees (-1) and returns the
    key of its output. Order as traced for LlamaRMSNorm in 5.17."""
    f, var = 2 * x, 4 * rows
    a, b, c, d, e, g, i, n = (key + j for j in range(8))
    ev += [(1, a, f), (1, b, f), (1, c, var), (-1, b, 0), (1, d, var), (1, e, var), (-1, d, 0), (1, g, f),
           (-1, e, 0), (-1, a, 0), (1, i, x), (1, n, x), (-1, i, 0), (-1, g, 0), (-1, c, 0)]
    return n


def _rope(ev: list[tuple[int, int, int]], x: int, key: int) -> int:
    """`apply_rotary_pos_emb` on one of q/k (`x * cos + rotate_half(x) * sin`): returns its output key."""
    a, b, c, d, out = (key + j for j in range(5))
    ev += [(1, a, x), (1, b, x // 2), (1, c, x), (-1, b, 0), (1, d, x), (-1, c, 0), (1, out, x), (-1, a, 0),
           (-1, d, 0)]
    return out


def _projection(ev: list[tuple[int, int, int]], x: int, rows: int, normed: bool, key: Iterator[int]) -> int:
    """q_proj or k_proj's output of `x` bytes, then (Qwen3's q_norm/k_norm) its RMSNorm over `rows` head rows,
    the projection freed once normed: returns the key of what attention reads."""
    out = next(key)
    ev.append((1, out, x))
    if normed:
        n = _norm(ev, x, rows, next(key))
        ev.append((-1, out, 0))
        out = n
    return out


def dense_events(tokens: int, hidden: int, n_heads: int, n_kv_heads: int, head_dim: int, inter: int,
                 n_layers: int, qk_norm: bool) -> list[tuple[int, int, int]]:
    """The allocations and frees (kind, key, bytes) of one prefill of `tokens` tokens and one decode step
    through a Llama-style decoder in bf16 with SDPA (logits of the last token only)."""
    t = tokens
    h, q, kv = t * hidden * 2, t * n_heads * head_dim * 2, t * n_kv_heads * head_dim * 2
    ev: list[tuple[int, int, int]] = []
    key = iter(range(10, 1 << 40, 16))
    x = 0  # the embedding output
    r2, r4 = t * head_dim * 2, t * head_dim * 4  # rotary embedding: position ids, freqs, cos and sin
    ev += [(1, x, h), (1, 3, t * 8), (1, 4, t * 8), (-1, 3, 0), (1, 5, t * 4), (1, 6, r2), (1, 7, r4),
           (1, 8, r4), (1, 9, r4), (-1, 8, 0), (1, 8, r4), (1, 3, r4), (-1, 8, 0), (1, 1, r2), (1, 2, r2),
           (-1, 5, 0), (-1, 6, 0), (-1, 7, 0), (-1, 9, 0), (-1, 3, 0)]
    cache: list[tuple[int, int]] = []
    for _ in range(n_layers):
        n = _norm(ev, h, t, next(key))
        kq = _projection(ev, q, t * n_heads, qk_norm, key)
        kk = _projection(ev, kv, t * n_kv_heads, qk_norm, key)
        kvv = next(key)
        ev.append((1, kvv, kv))
        qr = _rope(ev, q, next(key))
        kr = _rope(ev, kv, next(key))
        ck, cv, lse, ao, o, r = (next(key) for _ in range(6))
        # DynamicLayer.update keeps its own K and V; SDPA's flash kernel: output and fp32 logsumexp
        ev += [(-1, kq, 0), (-1, kk, 0), (1, ck, kv), (1, cv, kv), (-1, kr, 0), (-1, kvv, 0),
               (1, lse, t * n_heads * 4), (1, ao, q), (-1, lse, 0), (1, o, h), (-1, ao, 0), (-1, qr, 0),
               (-1, n, 0), (1, r, h), (-1, o, 0)]
        cache.append((ck, cv))
        n2 = _norm(ev, h, t, next(key))
        g, a, u, p, d, r2 = (next(key) for _ in range(6))
        # gated MLP: down_proj(act_fn(gate_proj(x)) * up_proj(x)), then the residual add
        ev += [(1, g, t * inter * 2), (1, a, t * inter * 2), (-1, g, 0), (1, u, t * inter * 2),
               (1, p, t * inter * 2), (-1, a, 0), (-1, u, 0), (1, d, h), (-1, p, 0), (-1, n2, 0), (1, r2, h),
               (-1, d, 0), (-1, r, 0)]
        if x:  # the embedding output stays referenced until the forward returns
            ev.append((-1, x, 0))
        x = r2
    n = _norm(ev, h, t, next(key))
    ev += [(-1, x, 0), (-1, 4, 0), (-1, 0, 0), (-1, 1, 0), (-1, 2, 0), (-1, n, 0)]
    grown = (t + 1) * n_kv_heads * head_dim * 2
    for ck, cv in cache:  # decode: torch.cat([self.keys, key_states], dim=-2) reallocates each entry
        nk, nv = next(key), next(key)
        ev += [(1, nk, grown), (-1, ck, 0), (1, nv, grown), (-1, cv, 0)]
    return ev


@lru_cache(maxsize=256)
def dense_peaks(tokens: int, hidden: int, n_heads: int, n_kv_heads: int, head_dim: int, inter: int,
                n_layers: int, qk_norm: bool) -> tuple[int, int]:
    """(peak reserved, peak allocated) bytes of `dense_events` replayed on the caching allocator."""
    a = CachingAllocator()
    for kind, k, n in dense_events(tokens, hidden, n_heads, n_kv_heads, head_dim, inter, n_layers, qk_norm):
        if kind > 0:
            a.malloc(k, n)
        else:
            a.free(k)
    return a.peak_reserved, a.peak_allocated


#: The sampled contexts of `dense_reserve_fractions`: this many, geometric from `SAMPLE_FROM` tokens.
SAMPLES = 8
SAMPLE_FROM = 2048
#: ... each replayed at this many consecutive 256-token steps, the largest kept. Reserved memory is not
#: monotone in context: a 2 MiB round-up decides whether a cache entry still fits a freed transient block,
#: so a context can need one MLP-intermediate segment (`inter x tokens x 2`) less than a shorter one
#: (Llama-3.2-3B alternates every 256 tokens past 6k; Qwen2.5-7B drops one segment for good past ~21.5k).
SAMPLE_STEPS = 3


@lru_cache(maxsize=64)
def dense_reserve_fractions(hidden: int, n_heads: int, n_kv_heads: int, head_dim: int, inter: int,
                            n_layers: int, qk_norm: bool, per_token: float,
                            max_tokens: int) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """(sampled contexts, reserve fraction at each): replayed peak reserved minus peak allocated over
    `per_token x tokens` (the engine's cache + prefill activations), at `SAMPLES` contexts spread
    geometrically from `SAMPLE_FROM` to `max_tokens`, each the largest over `SAMPLE_STEPS` consecutive
    multiples of 256. A few dozen replays (~0.1 s), once per model shape.

    The fraction is not one number per model: Qwen2.5-7B holds ~29 % above its allocation up to ~20k
    tokens and ~9.5 % beyond, where each layer's cache entry no longer fits the freed MLP blocks and one
    intermediate-size segment is reused for good."""
    shape = (hidden, n_heads, n_kv_heads, head_dim, inter, n_layers, qk_norm)
    top = max(max_tokens, 2 * SAMPLE_FROM)
    points = sorted({256 * max(1, round(float(t) / 256))
                     for t in SAMPLE_FROM * (top / SAMPLE_FROM) ** (np.arange(SAMPLES) / (SAMPLES - 1))})
    fractions = []
    for s in points:
        f = 0.0
        for j in range(SAMPLE_STEPS):
            t = s + 256 * j
            reserved, allocated = dense_peaks(t, *shape)
            f = max(f, (reserved - allocated) / (per_token * t))
        fractions.append(f)
    return tuple(points), tuple(fractions)
