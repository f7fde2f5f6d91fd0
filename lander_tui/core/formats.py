"""Storage formats: how many bytes a tensor or a cached token takes in each format.

Every number here is a format fact (block size and bytes per block), not a tuning constant:
GGML types from `ggml/src/ggml-common.h` (see shared/research/estimator-anchors.md §1.10),
KV-cache types as llama.cpp and vLLM store them, and the Hugging Face weight formats
(plain dtypes, GPTQ/AWQ with per-group scales and zeros, bitsandbytes NF4).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from lander_tui.core.errors import LanderError


@dataclass(frozen=True)
class BlockType:
    """A storage type that packs `block` values into `block_bytes` bytes."""

    name: str
    block: int
    block_bytes: int

    @property
    def bits_per_weight(self) -> float:
        return 8.0 * self.block_bytes / self.block

    def nbytes(self, n_elements: int) -> int:
        """Exact bytes for a row-major tensor of `n_elements` (a whole number of blocks)."""
        return -(-n_elements // self.block) * self.block_bytes

    def row_bytes(self, row_len: int) -> int:
        """`ggml_row_size`: bytes of one row of `row_len` values."""
        return self.nbytes(row_len)


# ggml type id -> (name, block elements, bytes per block). Ids match `enum ggml_type`.
_GGML_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("F32", 1, 4),
    1: ("F16", 1, 2),
    2: ("Q4_0", 32, 18),
    3: ("Q4_1", 32, 20),
    6: ("Q5_0", 32, 22),
    7: ("Q5_1", 32, 24),
    8: ("Q8_0", 32, 34),
    9: ("Q8_1", 32, 36),
    10: ("Q2_K", 256, 84),
    11: ("Q3_K", 256, 110),
    12: ("Q4_K", 256, 144),
    13: ("Q5_K", 256, 176),
    14: ("Q6_K", 256, 210),
    15: ("Q8_K", 256, 292),
    16: ("IQ2_XXS", 256, 66),
    17: ("IQ2_XS", 256, 74),
    18: ("IQ3_XXS", 256, 98),
    19: ("IQ1_S", 256, 50),
    20: ("IQ4_NL", 32, 18),
    21: ("IQ3_S", 256, 110),
    22: ("IQ2_S", 256, 82),
    23: ("IQ4_XS", 256, 136),
    24: ("I8", 1, 1),
    25: ("I16", 1, 2),
    26: ("I32", 1, 4),
    27: ("I64", 1, 8),
    28: ("F64", 1, 8),
    29: ("IQ1_M", 256, 56),
    30: ("BF16", 1, 2),
    34: ("TQ1_0", 256, 54),
    35: ("TQ2_0", 256, 66),
    39: ("MXFP4", 32, 17),
}

GGML_TYPES: dict[str, BlockType] = {n: BlockType(n, b, s) for n, b, s in _GGML_TYPES.values()}
GGML_TYPE_BY_ID: dict[int, BlockType] = {i: GGML_TYPES[n] for i, (n, _, _) in _GGML_TYPES.items()}


def ggml_type(name: str) -> BlockType:
    try:
        return GGML_TYPES[name.upper()]
    except KeyError:
        raise LanderError(f"unknown GGML type {name!r}; known: {', '.join(GGML_TYPES)}") from None


# --- KV-cache types --------------------------------------------------------------------------

# llama.cpp `-ctk/-ctv` values (exact ggml block sizes) plus vLLM's fp8 (1 byte per value).
KV_CACHE_TYPES: dict[str, BlockType] = {
    "f32": GGML_TYPES["F32"],
    "f16": GGML_TYPES["F16"],
    "bf16": GGML_TYPES["BF16"],
    "q8_0": GGML_TYPES["Q8_0"],
    "q5_1": GGML_TYPES["Q5_1"],
    "q5_0": GGML_TYPES["Q5_0"],
    "q4_1": GGML_TYPES["Q4_1"],
    "q4_0": GGML_TYPES["Q4_0"],
    "iq4_nl": GGML_TYPES["IQ4_NL"],
    "fp8": BlockType("fp8", 1, 1),
}
KV_ALIASES = {"fp16": "f16", "auto": "f16", "fp8_e4m3": "fp8", "fp8_e5m2": "fp8", "q8": "q8_0", "q4": "q4_0"}


@lru_cache(maxsize=64)
def kv_cache_type(name: str) -> BlockType:
    key = name.strip().lower()
    key = KV_ALIASES.get(key, key)
    try:
        return KV_CACHE_TYPES[key]
    except KeyError:
        raise LanderError(
            f"unknown KV-cache type {name!r}; use one of: {', '.join(KV_CACHE_TYPES)}"
        ) from None


def kv_bytes_per_value(name: str, allowed: tuple[str, ...], engine: str) -> float:
    """Bytes per cached value for an engine that stores its KV cache in one of `allowed` plain types."""
    try:
        kv = kv_cache_type(name)
    except LanderError:
        kv = None
    if kv is None or kv.name not in allowed:
        raise LanderError(f"{engine} KV-cache types are {', '.join(a.lower() for a in allowed)}, not {name}")
    return kv.block_bytes / kv.block


# --- Weight formats ----------------------------------------------------------------------------


@dataclass(frozen=True)
class WeightFormat:
    """How a model's weights are stored, for every engine.

    `kind` is "gguf" (a llama.cpp file type, possibly mixed per tensor), "dtype" (one plain type for
    every matrix), "mxfp4" (native MXFP4 experts, the rest in the checkpoint dtype), "grouped"
    (GPTQ/AWQ: `bits` per weight plus an f16 scale and a packed zero per `group` weights), or "nf4"
    (bitsandbytes: 4 bits plus one absmax per 64, double-quantized).
    """

    name: str
    kind: str
    bits: float = 16.0
    group: int = 0

    def matrix_bytes(self, n_elements: int) -> float:
        """Bytes of one quantizable 2-D weight stored in this format (non-GGUF kinds)."""
        if self.kind == "grouped":
            groups = n_elements / self.group
            # packed ints + one f16 scale + one packed zero point per group (GPTQ/AWQ layout)
            return n_elements * self.bits / 8 + groups * (2 + self.bits / 8)
        if self.kind == "nf4":
            # 4-bit codes + absmax per 64 values quantized to 8 bits, + f32 per 256 absmax (double quant)
            return n_elements * 0.5 + n_elements / 64 + n_elements / (64 * 256) * 4
        return n_elements * self.bits / 8


# GGUF file types (llama_ftype) we can predict. The default type of their big matrices:
GGUF_FTYPE_DEFAULT: dict[str, str] = {
    "F32": "F32",
    "F16": "F16",
    "BF16": "BF16",
    "Q8_0": "Q8_0",
    "Q6_K": "Q6_K",
    "Q5_K_M": "Q5_K",
    "Q5_K_S": "Q5_K",
    "Q5_0": "Q5_0",
    "Q5_1": "Q5_1",
    "Q4_K_M": "Q4_K",
    "Q4_K_S": "Q4_K",
    "Q4_0": "Q4_0",
    "Q4_1": "Q4_1",
    "Q3_K_L": "Q3_K",
    "Q3_K_M": "Q3_K",
    "Q3_K_S": "Q3_K",
    "Q2_K": "Q2_K",
    "Q2_K_S": "Q2_K",
    "IQ4_XS": "IQ4_XS",
    "IQ4_NL": "IQ4_NL",
    "IQ3_M": "IQ3_S",
    "IQ3_S": "IQ3_S",
    "IQ3_XS": "IQ3_S",
    "IQ3_XXS": "IQ3_XXS",
    "IQ2_M": "IQ2_S",
    "IQ2_S": "IQ2_XS",
    "IQ2_XS": "IQ2_XS",
    "IQ2_XXS": "IQ2_XXS",
    "IQ1_M": "IQ1_M",
    "IQ1_S": "IQ1_S",
    "TQ1_0": "TQ1_0",
    "TQ2_0": "TQ2_0",
    "MXFP4_MOE": "MXFP4",
}

# MXFP4: e2m1 + one e8m0 scale per 32 (4.25 bits); NVFP4: e2m1 + one fp8 scale per 16 (4.5 bits).
_DTYPE_BITS = {"FP8": 8, "INT8": 8, "INT4": 4, "NVFP4": 4.5}
_ALIASES = {
    "FP16": "F16",
    "HALF": "F16",
    "FLOAT16": "F16",
    "BFLOAT16": "BF16",
    "BFLOAT": "BF16",
    "FP32": "F32",
    "FLOAT32": "F32",
    "FLOAT": "F32",
    "E4M3": "FP8",
    "FP8_E4M3": "FP8",
    "Q8": "INT8",
    "Q4": "INT4",
    "BNB4": "NF4",
    "BNB-NF4": "NF4",
    "BNB8": "INT8",
}


@lru_cache(maxsize=256)
def weight_format(name: str) -> WeightFormat:
    """Parse a user's quant name: `Q4_K_M`, `BF16`, `FP8`, `GPTQ-4bit`, `AWQ`, `NF4`, `GPTQ-8bit-g64`..."""
    raw = name.strip()
    key = raw.upper().replace("-", "_")
    key = _ALIASES.get(key, key)
    if key in GGUF_FTYPE_DEFAULT:
        return WeightFormat(key, "gguf", ggml_type(GGUF_FTYPE_DEFAULT[key]).bits_per_weight)
    if key in _DTYPE_BITS:
        return WeightFormat(key, "dtype", float(_DTYPE_BITS[key]))
    if key in ("MODELOPT", "FP4"):
        return WeightFormat("NVFP4", "dtype", 4.5)
    if key == "MXFP4":
        # a checkpoint's native MXFP4 experts (gpt-oss): 32 4-bit values + one E8M0 scale byte, other
        # tensors in the checkpoint dtype; llama.cpp's file type for it is MXFP4_MOE
        return WeightFormat("MXFP4", "mxfp4", GGML_TYPES["MXFP4"].bits_per_weight)
    if key == "NF4":
        return WeightFormat("NF4", "nf4", 4.0)
    if key.startswith(("GPTQ", "AWQ")):
        parts = key.split("_")
        bits, group = 4, 128
        for part in parts[1:]:
            if part.endswith("BIT") and part[:-3].isdigit():
                bits = int(part[:-3])
            elif part.startswith("G") and part[1:].isdigit():
                group = int(part[1:])
            elif part.isdigit():
                bits = int(part)
        if bits not in (2, 3, 4, 8) or group <= 0:
            raise LanderError(f"bad grouped quant {name!r}: bits must be 2, 3, 4 or 8 (e.g. GPTQ-4bit-g128)")
        label = f"{parts[0]}-{bits}bit" + ("" if group == 128 else f"-g{group}")
        return WeightFormat(label, "grouped", float(bits), group)
    known = ", ".join(list(GGUF_FTYPE_DEFAULT) + list(_DTYPE_BITS) + ["MXFP4", "NF4", "GPTQ-4bit", "AWQ"])
    raise LanderError(f"unknown quant {name!r}; known: {known}")



# 16/32-bit float formats are valid for every engine (kind "gguf" with a plain default type).
FLOAT_FORMATS = ("F32", "F16", "BF16")


def torch_dtype_format(torch_dtype: str | None) -> str:
    """The weight format a Transformers/vLLM user gets by default: the checkpoint's dtype."""
    return {"float32": "F32", "float16": "F16"}.get(str(torch_dtype or "bfloat16"), "BF16")
