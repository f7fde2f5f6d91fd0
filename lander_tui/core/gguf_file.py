"""Read a GGUF file's header (metadata and tensor table) without touching its weights.

A GGUF header tells us everything the llama.cpp estimate needs: the model's shape (its metadata
keys) and the exact type and byte size of every tensor. The header sits at the start of the file,
so the same parser works on a local file and on the first bytes of a Hub file fetched with an
HTTP range request (`read_gguf_header`, which says how many more bytes it needs when the prefix
was too short).

We parse the format with `struct` instead of `gguf.GGUFReader` because the reader memory-maps
and views every tensor (it fails on a prefix and on truncated files) and materializes every
tokenizer string as a numpy array; here the tokenizer lists are only counted.
"""

from __future__ import annotations

import mmap
import re
import struct
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from lander_tui.core.errors import LanderError
from lander_tui.core.formats import GGML_TYPE_BY_ID, GGUF_FTYPE_DEFAULT, BlockType
from lander_tui.core.model_spec import FULL, MLA, RECURRENT, SWA, ModelSpec, MoE, Recurrent
from lander_tui.core.tensors import Tensor

GGUF_MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32
# Arrays longer than this (tokenizer vocabularies, merges, scores) are counted, not kept.
_KEEP_ARRAY = 4096

# GGUF metadata value types (gguf.constants.GGUFValueType): id -> struct format of a scalar.
_SCALAR_FMT = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
               10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9

# GGUF architecture name -> the Hugging Face `model_type` that ModelSpec (and the catalog) use.
GGUF_ARCH_TO_HF = {
    "llama": "llama",
    "llama4": "llama4",
    "mistral3": "mistral3",
    "qwen2": "qwen2",
    "qwen2moe": "qwen2_moe",
    "qwen3": "qwen3",
    "qwen3moe": "qwen3_moe",
    "qwen3next": "qwen3_next",
    "gemma": "gemma",
    "gemma2": "gemma2",
    "gemma3": "gemma3",
    "gemma3n": "gemma3n",
    "deepseek": "deepseek",
    "deepseek2": "deepseek_v2",
    "gpt-oss": "gpt_oss",
    "phi2": "phi",
    "phi3": "phi3",
    "phimoe": "phimoe",
    "falcon": "falcon",
    "falcon-h1": "falcon_h1",
    "chatglm": "chatglm",
    "glm4": "glm4",
    "glm4moe": "glm4_moe",
    "command-r": "cohere",
    "cohere2": "cohere2",
    "starcoder2": "starcoder2",
    "granite": "granite",
    "granitemoe": "granitemoe",
    "granitehybrid": "granitemoehybrid",
    "mamba": "mamba",
    "mamba2": "mamba2",
    "jamba": "jamba",
    "olmo2": "olmo2",
    "olmoe": "olmoe",
    "internlm2": "internlm2",
    "minicpm": "minicpm",
    "exaone": "exaone",
    "ernie4_5": "ernie4_5",
    "ernie4_5-moe": "ernie4_5_moe",
    "hunyuan-moe": "hunyuan_v1_moe",
    "smollm3": "smollm3",
    "seed_oss": "seed_oss",
    "lfm2": "lfm2",
    "nemotron_h": "nemotron_h",
}

# llama.cpp's default sliding-window layer pattern per arch (llama_hparams::set_swa_pattern(n):
# layer il is windowed when il % n < n - 1), used when the file has no explicit pattern key.
_SWA_PATTERN_DEFAULT = {"gemma2": 2, "gemma3": 6, "gpt-oss": 2, "cohere2": 4}
_PURE_RECURRENT = {"mamba", "mamba2", "rwkv6", "rwkv7", "arwkv7", "rwkv6qwen2"}

# llama_ftype ids (gguf.constants.LlamaFileType) -> the file type names users type.
_FTYPE_NAMES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
    11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
    17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS",
    23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S", 29: "IQ2_M",
    30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0", 37: "TQ2_0", 38: "MXFP4_MOE",
    39: "NVFP4", 40: "Q1_0",
}
FTYPE_IDS = {name: i for i, name in _FTYPE_NAMES.items()}

_SPLIT_RE = re.compile(r"^(?P<base>.*)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$", re.IGNORECASE)
_LAYER_RE = re.compile(r"^blk\.(\d+)\.")


class GgufNeedMoreBytes(LanderError):
    """The bytes given end inside the header; `needed` is a lower bound on the prefix length to fetch."""

    def __init__(self, name: str, needed: int, have: int) -> None:
        super().__init__(
            f"{name}: the GGUF header runs past the first {have:,} bytes (needs at least {needed:,})")
        self.needed = needed
        self.have = have


class _Short(Exception):
    """Internal: a read ran past the end of the buffer."""

    def __init__(self, needed: int) -> None:
        self.needed = needed


@dataclass(frozen=True)
class GgufModel:
    """What a GGUF header says: the model's shape, its tensors with exact types and bytes, its file type."""

    spec: ModelSpec
    tensors: tuple[Tensor, ...]
    file_type: str | None
    file_size: int
    data_offset: int
    metadata: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    array_lengths: dict[str, int] = field(default_factory=dict, compare=False, repr=False)
    split_count: int = 1

    @property
    def tensor_bytes(self) -> int:
        """Bytes of all tensor data (what has to be loaded somewhere)."""
        return sum(t.nbytes or 0 for t in self.tensors)

    def type_counts(self) -> dict[str, int]:
        """ggml type -> number of tensors of that type, largest first."""
        return dict(Counter(t.ggml_type or "?" for t in self.tensors).most_common())


# --- the byte-level parser ---------------------------------------------------------------------


class _Buf:
    """A cursor over a bytes-like prefix of the file that raises `_Short` instead of misreading."""

    __slots__ = ("data", "n", "pos")

    def __init__(self, data: Any) -> None:
        self.data = data
        self.n = len(data)
        self.pos = 0

    def need(self, k: int) -> None:
        if self.pos + k > self.n:
            raise _Short(self.pos + k)

    def unpack(self, fmt: str, size: int) -> Any:
        self.need(size)
        v = struct.unpack_from(fmt, self.data, self.pos)[0]
        self.pos += size
        return v

    def u32(self) -> int:
        return int(self.unpack("<I", 4))

    def u64(self) -> int:
        return int(self.unpack("<Q", 8))

    def string(self, limit: int = 1 << 20) -> str:
        n = self.u64()
        if n > limit:
            raise ValueError(f"a {n:,}-byte string in the header")
        self.need(n)
        s = bytes(self.data[self.pos:self.pos + n]).decode("utf-8", errors="replace")
        self.pos += n
        return s


_U64 = struct.Struct("<Q").unpack_from


def _skip_strings(b: _Buf, count: int) -> None:
    """Step over `count` length-prefixed strings (a tokenizer's vocabulary): the hot loop of a header."""
    data, pos, n, unpack = b.data, b.pos, b.n, _U64
    for _ in range(count):
        if pos + 8 > n:
            raise _Short(pos + 8)
        pos += 8 + unpack(data, pos)[0]
    if pos > n:
        raise _Short(pos)
    b.pos = pos


def _scalar_size(vtype: int) -> int:
    return struct.calcsize(_SCALAR_FMT[vtype])


def _value(b: _Buf, vtype: int, key: str, array_lens: dict[str, int]) -> Any:
    if vtype in _SCALAR_FMT:
        return b.unpack(_SCALAR_FMT[vtype], _scalar_size(vtype))
    if vtype == _STRING:
        return b.string()
    if vtype == _ARRAY:
        itype, count = b.u32(), b.u64()
        array_lens[key] = count
        if itype in _SCALAR_FMT:
            size = _scalar_size(itype)
            if count > 1 << 34:
                raise ValueError(f"array {key!r} claims {count:,} items")
            if count > _KEEP_ARRAY:
                b.pos += size * count
                if b.pos > b.n:
                    raise _Short(b.pos)
                return None
            b.need(size * count)
            fmt = "<" + _SCALAR_FMT[itype][1] * count
            vals = list(struct.unpack_from(fmt, b.data, b.pos))
            b.pos += size * count
            return vals
        if itype == _STRING:
            if count > _KEEP_ARRAY:
                _skip_strings(b, count)
                return None
            return [b.string() for _ in range(count)]
        if itype == _ARRAY:  # nested arrays: walk them, keep nothing
            for _ in range(count):
                _value(b, _ARRAY, key + "[]", {})
            return None
        raise ValueError(f"unknown array item type {itype} in {key!r}")
    raise ValueError(f"unknown value type {vtype} for {key!r}")


@dataclass
class _RawTensor:
    name: str
    dims: tuple[int, ...]
    type_id: int
    offset: int


def _parse(data: Any) -> tuple[dict[str, Any], dict[str, int], list[_RawTensor], int]:
    """Parse magic, metadata and tensor infos; returns (metadata, array lengths, tensors, data offset)."""
    b = _Buf(data)
    b.need(4)
    if bytes(data[:4]) != GGUF_MAGIC:
        raise ValueError("it does not start with the GGUF magic bytes (not a GGUF file)")
    b.pos = 4
    version = b.u32()
    if version not in (2, 3):
        raise ValueError(f"GGUF version {version} is not supported (only 2 and 3)")
    n_tensors, n_kv = b.u64(), b.u64()
    if n_tensors > 1 << 24 or n_kv > 1 << 24:
        raise ValueError(f"implausible counts ({n_tensors:,} tensors, {n_kv:,} keys): the header is corrupt")
    meta: dict[str, Any] = {}
    array_lens: dict[str, int] = {}
    for _ in range(n_kv):
        key = b.string(limit=65536)
        vtype = b.u32()
        meta[key] = _value(b, vtype, key, array_lens)
    tensors: list[_RawTensor] = []
    for _ in range(n_tensors):
        name = b.string(limit=65536)
        n_dims = b.u32()
        if n_dims > 8:
            raise ValueError(f"tensor {name!r} has {n_dims} dimensions")
        b.need(8 * n_dims)
        dims = struct.unpack_from(f"<{n_dims}Q", b.data, b.pos)
        b.pos += 8 * n_dims
        type_id, offset = b.u32(), b.u64()
        tensors.append(_RawTensor(name, tuple(int(d) for d in dims), type_id, offset))
    align = meta.get("general.alignment", DEFAULT_ALIGNMENT)
    if not isinstance(align, int) or align <= 0 or align & (align - 1):
        raise ValueError(f"general.alignment {align!r} is not a power of two")
    data_offset = -(-b.pos // align) * align
    return meta, array_lens, tensors, data_offset


def _block_type(type_id: int) -> BlockType:
    bt = GGML_TYPE_BY_ID.get(type_id)
    if bt is not None:
        return bt
    try:  # types newer than our table (the gguf package knows their block sizes)
        from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

        qt = GGMLQuantizationType(type_id)
        block, size = GGML_QUANT_SIZES[qt]
        return BlockType(qt.name, block, size)
    except (ImportError, ValueError, KeyError):
        raise ValueError(f"unknown ggml tensor type id {type_id}") from None


def _tensor(rt: _RawTensor) -> Tensor:
    bt = _block_type(rt.type_id)
    dims = rt.dims or (1,)
    ne0 = dims[0]
    if bt.block > 1 and ne0 % bt.block:
        raise ValueError(f"tensor {rt.name!r}: row of {ne0} is not a whole number of {bt.name} blocks")
    m = _LAYER_RE.match(rt.name)
    layer = int(m.group(1)) if m else None
    n_experts = 0
    others = 1
    for d in dims[1:]:
        others *= d
    rows = others
    if "_exps." in rt.name or rt.name.endswith("_exps"):
        if len(dims) == 3:  # [ne0, ne1, n_expert]
            rows, n_experts = dims[1], dims[2]
        elif len(dims) == 2 and ".bias" in rt.name:  # per-expert bias [ne0, n_expert]
            rows, n_experts = 1, dims[1]
    nbytes = bt.row_bytes(ne0) * others
    return Tensor(rt.name, ne0, rows, layer, n_experts, bt.name, nbytes)


# --- building the model spec -------------------------------------------------------------------


def _num(v: Any) -> int | None:
    """A scalar, or the largest value of a per-layer array."""
    if isinstance(v, list):
        vals = [int(x) for x in v if isinstance(x, int | float)]
        return max(vals) if vals else None
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int | float):
        return int(v)
    return None


def _file_type(meta: dict[str, Any], tensors: Sequence[Tensor]) -> str | None:
    ft = meta.get("general.file_type")
    if isinstance(ft, int) and ft in _FTYPE_NAMES:
        return _FTYPE_NAMES[ft]
    return infer_file_type(tensors)


def infer_file_type(tensors: Sequence[Tensor]) -> str | None:
    """The file type implied by the type holding most matrix weights (Q4_K -> Q4_K_M, llama.cpp's name)."""
    weight: Counter[str] = Counter()
    for t in tensors:
        if t.is_matrix and t.ggml_type:
            weight[t.ggml_type] += t.n_elements
    if not weight:
        return None
    top = weight.most_common(1)[0][0]
    if top in GGUF_FTYPE_DEFAULT:
        return top
    if top == "MXFP4":
        return "MXFP4_MOE"
    if f"{top}_M" in GGUF_FTYPE_DEFAULT:
        return f"{top}_M"
    return top


def _layer_kinds(meta: dict[str, Any], arch: str, n_layers: int, by_layer: dict[int, dict[str, Tensor]],
                 ctx: int) -> tuple[tuple[str, ...], int | None]:
    """Which layers keep a full KV cache, a sliding window or a recurrent state (llama.cpp's rules)."""
    p = arch + "."
    interval = _num(meta.get(p + "full_attention_interval"))
    if interval:
        return tuple(FULL if (i + 1) % interval == 0 else RECURRENT for i in range(n_layers)), None
    if arch in _PURE_RECURRENT:
        return (RECURRENT,) * n_layers, None
    kv = meta.get(p + "attention.head_count_kv")
    if isinstance(kv, list) and len(kv) == n_layers and 0 in kv:
        return tuple(RECURRENT if int(x) == 0 else FULL for x in kv), None
    if any(k.startswith("ssm_") for ts in by_layer.values() for k in ts):
        # hybrids without a per-layer KV-head array: a layer with a mixer and no q/k/v is recurrent
        def recurrent(ts: dict[str, Tensor]) -> bool:
            attn = any(k.split(".")[0] in ("attn_q", "attn_k", "attn_v", "attn_qkv") for k in ts)
            return not attn and any(k.startswith("ssm_") for k in ts)

        return tuple(RECURRENT if recurrent(by_layer.get(i, {})) else FULL for i in range(n_layers)), None
    window = _num(meta.get(p + "attention.sliding_window"))
    if not window:
        return (FULL,) * n_layers, None
    pattern = meta.get(p + "attention.sliding_window_pattern")
    if isinstance(pattern, list) and len(pattern) == n_layers:
        kinds_l = tuple(SWA if x else FULL for x in pattern)
        return kinds_l, (window if SWA in kinds_l else None)
    n = pattern if isinstance(pattern, int) and not isinstance(pattern, bool) else None
    n = n or _SWA_PATTERN_DEFAULT.get(arch)
    if n:
        return tuple(SWA if (n == 0 or i % n < n - 1) else FULL for i in range(n_layers)), window
    if ctx and window >= ctx:
        return (FULL,) * n_layers, None
    return (SWA,) * n_layers, window


def _kind_key(t: Tensor) -> str:
    """`attn_q` for `blk.0.attn_q.weight` but `attn_q.bias` for the bias, so the two stay apart."""
    return t.kind if t.name.endswith(".weight") else t.kind + "." + t.name.rsplit(".", 1)[-1]


def _spec(meta: dict[str, Any], array_lens: dict[str, int], tensors: Sequence[Tensor],
          name: str) -> ModelSpec:
    arch = meta.get("general.architecture")
    if not isinstance(arch, str) or not arch:
        raise ValueError("it has no general.architecture key")
    p = arch + "."

    def get(key: str, default: int | None = None) -> int:
        v = _num(meta.get(p + key))
        if v is None:
            if default is None:
                raise ValueError(f"it lacks {p + key}, which the estimate needs")
            return default
        return v

    by_name = {t.name: t for t in tensors}
    by_layer: dict[int, dict[str, Tensor]] = {}
    for t in tensors:
        if t.layer is not None:
            by_layer.setdefault(t.layer, {})[_kind_key(t)] = t
    H = get("embedding_length")
    L = get("block_count")
    nh = get("attention.head_count", 0)
    nkv = get("attention.head_count_kv", nh)
    if H <= 0 or L <= 0:
        raise ValueError("embedding_length and block_count must be positive")
    ctx = get("context_length", 0)
    kinds, window = _layer_kinds(meta, arch, L, by_layer, ctx)
    if nh <= 0 and RECURRENT not in kinds:
        raise ValueError(f"it lacks {p}attention.head_count, which the estimate needs")
    nh = max(nh, 1)
    nkv = max(nkv, 1)
    head_dim = get("attention.key_length", H // nh)
    head_dim_v = get("attention.value_length", head_dim)
    embd = by_name.get("token_embd.weight")
    out = by_name.get("output.weight")
    vocab = (embd.rows if embd else None) or (out.rows if out else None) \
        or array_lens.get("tokenizer.ggml.tokens") or get("vocab_size", 0)
    ff = get("feed_forward_length", 0)

    layer0 = by_layer.get(next((i for i, k in enumerate(kinds) if k != RECURRENT), 0), {})
    any_layer = {k: t for ts in by_layer.values() for k, t in ts.items()}
    gated = "ffn_gate" in any_layer or "ffn_gate_exps" in any_layer or (
        "ffn_up" in any_layer and ff > 0 and any_layer["ffn_up"].rows == 2 * ff)
    norms = sum(1 for k in ("attn_norm", "attn_norm_2", "ffn_norm", "post_attention_norm", "post_ffw_norm")
                if k in layer0)

    mla = None
    kv_lora = get("attention.kv_lora_rank", 0)
    if kv_lora and not get("attention.key_length_mla", 0):
        # A GGUF converted before the absorbed MLA (no key_length_mla, a fused attn_kv_b): llama.cpp runs it
        # as plain multi-head attention and caches every head's K and V (llama_hparams::is_mla() is false).
        notes_mla = "legacy MLA GGUF (no key_length_mla): llama.cpp caches full per-head K/V, not the latent"
        kv_lora = 0
    else:
        notes_mla = ""
    if kv_lora:
        rope_dim = get("rope.dimension_count")
        k_len = get("attention.key_length_mla", 0) or head_dim
        v_len = get("attention.value_length_mla", 0) or head_dim_v
        q_lora = get("attention.q_lora_rank", 0)
        mla = MLA(kv_lora_rank=kv_lora, q_lora_rank=q_lora or None, qk_rope_head_dim=rope_dim,
                  qk_nope_head_dim=k_len - rope_dim, v_head_dim=v_len)
        head_dim, head_dim_v = k_len, v_len

    moe = None
    n_exp = get("expert_count", 0)
    if n_exp > 1:
        up = any_layer.get("ffn_up_exps")
        eff = get("expert_feed_forward_length", 0) or (up.rows if up else ff)
        sh_up = any_layer.get("ffn_up_shexp")
        n_shared = get("expert_shared_count", 0) or (1 if sh_up else 0)
        shared_ff = sh_up.rows if sh_up else get("expert_shared_feed_forward_length", 0) or eff * n_shared
        if by_layer:
            dense = tuple(i for i in range(L) if "ffn_gate_inp" not in by_layer.get(i, {}))
        else:
            dense = tuple(range(get("leading_dense_block_count", 0)))
        moe = MoE(
            n_experts=n_exp,
            n_used=get("expert_used_count", 1),
            expert_ff=eff,
            n_shared=n_shared,
            shared_ff=shared_ff,
            dense_layers=dense,
            router_bias="ffn_gate_inp.bias" in any_layer,
            expert_bias="ffn_up_exps.bias" in any_layer or "ffn_gate_exps.bias" in any_layer,
            score_bias="exp_probs_b.bias" in any_layer or "exp_probs_b" in any_layer,
        )

    recurrent = None
    if RECURRENT in kinds:
        d_conv = get("ssm.conv_kernel", 0)
        d_inner = get("ssm.inner_size", 0)
        d_state = get("ssm.state_size", 0)
        n_group = get("ssm.group_count", 0)
        rl = by_layer.get(kinds.index(RECURRENT), {})
        params = sum(t.n_elements for k, t in rl.items()
                     if not k.startswith(("ffn", "attn_norm", "post_", "layer_output_norm")))
        # llama_hparams::n_embd_r / n_embd_s
        layout: dict[str, int] = {}
        dt_rank = get("ssm.time_step_rank", 0)
        if arch == "qwen3next" and dt_rank and n_group:  # Gated DeltaNet heads (src/models/qwen3next.cpp)
            layout = {"d_conv": d_conv, "k_heads": n_group, "k_dim": d_state, "v_heads": dt_rank,
                      "v_dim": d_inner // dt_rank}
        recurrent = Recurrent(conv=max(d_conv - 1, 0) * (d_inner + 2 * n_group * d_state),
                              ssm=d_state * d_inner, params=params, **layout)

    rope = ""
    scaling = meta.get(p + "rope.scaling.type")
    if isinstance(scaling, str) and scaling not in ("", "none"):
        rope = f"{scaling} x{meta.get(p + 'rope.scaling.factor', '?')}"
    notes: list[str] = []
    if isinstance(meta.get(p + "attention.head_count_kv"), list):
        vals = {int(x) for x in meta[p + "attention.head_count_kv"] if int(x)}
        if len(vals) > 1:
            notes.append(f"KV heads vary per layer ({min(vals)}..{max(vals)}); the largest is used")

    if notes_mla:
        notes.append(notes_mla)
    label = meta.get("general.name")
    return ModelSpec(
        name=name or (label if isinstance(label, str) and label else "model"),
        arch=GGUF_ARCH_TO_HF.get(arch, arch.replace("-", "_")),
        vocab_size=int(vocab),
        hidden_size=H,
        n_layers=L,
        n_heads=nh,
        n_kv_heads=nkv,
        head_dim=head_dim,
        head_dim_v=head_dim_v,
        intermediate_size=ff or (moe.expert_ff if moe else 4 * H),
        max_context=ctx or 4096,
        tie_embeddings=out is None and embd is not None,
        gated_ffn=gated or not tensors,
        qkv_bias=any(k in any_layer for k in ("attn_q.bias", "attn_qkv.bias")),
        o_bias="attn_output.bias" in any_layer,
        qk_norm="attn_q_norm" in any_layer,
        norms_per_layer=norms or 2,
        norm_bias="attn_norm.bias" in any_layer,
        attn_sinks=any(k.startswith("attn_sinks") for k in any_layer),
        fused_qkv="attn_qkv" in layer0,
        layer_kinds=kinds if len(set(kinds)) > 1 or kinds[0] != FULL else (),
        sliding_window=window,
        moe=moe,
        mla=mla,
        recurrent=recurrent,
        rope=rope,
        exact_params=sum(t.n_elements for t in tensors) or None,
        notes=tuple(notes),
    )


def _build(data: Any, total_size: int | None, name: str, label: str) -> GgufModel:
    try:
        meta, array_lens, raw, data_offset = _parse(data)
        tensors = tuple(_tensor(rt) for rt in raw)
        spec = _spec(meta, array_lens, tensors, label)
    except _Short as short:
        if total_size is not None and len(data) >= total_size:
            raise LanderError(f"{name} is truncated: its header needs at least {short.needed:,} bytes, "
                              f"the file has {total_size:,}") from None
        raise GgufNeedMoreBytes(name, short.needed, len(data)) from None
    except (ValueError, UnicodeDecodeError, struct.error, OverflowError, MemoryError) as err:
        raise LanderError(f"{name} is not a readable GGUF file: {err}") from None
    if total_size is not None and tensors:
        end = max(data_offset + rt.offset + (t.nbytes or 0) for rt, t in zip(raw, tensors, strict=True))
        if end > total_size:
            raise LanderError(
                f"{name} is truncated: its tensors need {end:,} bytes, the file has {total_size:,}")
    kept = {k: v for k, v in meta.items() if v is not None}
    split = meta.get("split.count")
    return GgufModel(
        spec=spec,
        tensors=tensors,
        file_type=_file_type(meta, tensors),
        file_size=total_size if total_size is not None else len(data),
        data_offset=data_offset,
        metadata=kept,
        array_lengths=array_lens,
        split_count=int(split) if isinstance(split, int) and split > 0 else 1,
    )


# --- public API --------------------------------------------------------------------------------


def read_gguf_header(buf: bytes | bytearray | memoryview, total_size: int | None = None,
                     name: str = "model") -> GgufModel:
    """Parse a GGUF header from the first bytes of a file (e.g. an HTTP range answer).

    Raises `GgufNeedMoreBytes` (a `LanderError` with `.needed`) when `buf` ends inside the header,
    so the caller can fetch a longer prefix; `total_size` (the whole file's size) lets us tell a
    truncated file from a short prefix and check the tensor data fits.
    """
    label = _model_label(name)
    return _build(buf, total_size, name, label)


def is_gguf_file(path: str | Path) -> bool:
    """Whether a file starts with the GGUF magic (Ollama keeps its GGUF blobs without an extension)."""
    try:
        with open(path, "rb") as f:
            return f.read(4) == GGUF_MAGIC
    except OSError:
        return False


def read_gguf(path: str | Path) -> GgufModel:
    """Read a local GGUF file's header (weights are not read). Split files are read together."""
    p = Path(path).expanduser()
    first = _read_one(p)
    if first.split_count <= 1:
        return first
    m = _SPLIT_RE.match(p.name)
    if not m:
        return first
    parts = [first] if int(m.group("no")) == 1 else []
    if not parts:
        first_path = p.with_name(f"{m.group('base')}-00001-of-{m.group('count')}.gguf")
        if not first_path.is_file():
            raise LanderError(f"{p.name} is one part of a split GGUF; {first_path.name} is missing")
        parts = [_read_one(first_path)]
    count = int(m.group("count"))
    for i in range(2, count + 1):
        q = p.with_name(f"{m.group('base')}-{i:05d}-of-{m.group('count')}.gguf")
        if not q.is_file():
            raise LanderError(f"split GGUF part {q.name} is missing beside {p.name}")
        parts.append(_read_one(q, spec_needed=False))
    return merge_split(parts)


def read_gguf_metadata(path: str | Path) -> tuple[dict[str, Any], tuple[Tensor, ...]]:
    """A GGUF file's metadata and tensors, for files that describe no language model (a vision projector,
    a LoRA adapter): nothing is read past the tensor table."""
    g = _read_one(Path(path).expanduser(), spec_needed=False)
    return dict(g.metadata), g.tensors


def merge_split(parts: Sequence[GgufModel]) -> GgufModel:
    """One model from the parts of a split GGUF: the first part's metadata, every part's tensors."""
    head = parts[0]
    tensors = tuple(t for part in parts for t in part.tensors)
    spec = _spec(head.metadata, head.array_lengths, tensors, head.spec.name) if len(parts) > 1 else head.spec
    ft = head.file_type if head.metadata.get("general.file_type") is not None else infer_file_type(tensors)
    return replace(head, spec=spec, tensors=tensors, file_type=ft,
                   file_size=sum(part.file_size for part in parts), split_count=len(parts))


def _model_label(name: str) -> str:
    base = Path(name).name
    m = _SPLIT_RE.match(base)
    if m:
        base = m.group("base")
    elif base.lower().endswith(".gguf"):
        base = base[:-5]
    return base or "model"


def _read_one(p: Path, *, spec_needed: bool = True) -> GgufModel:
    name = p.name
    try:
        size = p.stat().st_size
        if size == 0:
            raise LanderError(f"{name} is empty (0 bytes), not a GGUF file")
        with open(p, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            if not spec_needed:
                return _tensors_only(mm, size, name)
            return _build(mm, size, name, _model_label(name))
    except OSError as err:
        raise LanderError(f"cannot read {p}: {err.strerror or err}") from None


def read_gguf_part_header(buf: bytes | bytearray | memoryview, total_size: int | None = None,
                          name: str = "model") -> GgufModel:
    """The header of a later part of a split GGUF: its tensors only (its metadata has no model keys).

    Like `read_gguf_header`, raises `GgufNeedMoreBytes` when `buf` ends inside the header.
    """
    return _tensors_only(buf, total_size, name)


def _tensors_only(data: Any, size: int | None, name: str) -> GgufModel:
    try:
        meta, array_lens, raw, data_offset = _parse(data)
        tensors = tuple(_tensor(rt) for rt in raw)
    except _Short as short:
        if size is not None and len(data) >= size:
            raise LanderError(f"{name} is truncated: its header needs at least {short.needed:,} bytes, "
                              f"the file has {size:,}") from None
        raise GgufNeedMoreBytes(name, short.needed, len(data)) from None
    except (ValueError, UnicodeDecodeError, struct.error, OverflowError) as err:
        raise LanderError(f"{name} is not a readable GGUF file: {err}") from None
    if tensors and size is not None:
        end = max(data_offset + rt.offset + (t.nbytes or 0) for rt, t in zip(raw, tensors, strict=True))
        if end > size:
            raise LanderError(f"{name} is truncated: its tensors need {end:,} bytes, the file has {size:,}")
    placeholder = ModelSpec(name, "split-part", 0, 1, 1, 1, 1, 1, 1, 1, 1)
    return GgufModel(placeholder, tensors, None, size if size is not None else len(data), data_offset,
                     metadata={k: v for k, v in meta.items() if v is not None}, array_lengths=array_lens)
