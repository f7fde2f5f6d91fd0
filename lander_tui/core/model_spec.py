"""One description of a model's shape, whatever it was read from.

`ModelSpec` is what every engine's memory accounting reads: layer count, heads, head sizes, which
layers hold a full KV cache, a sliding window, a latent (MLA) cache or a constant recurrent state,
MoE experts, vocabulary, tied embeddings. It is built from a Hugging Face `config.json`
(`from_hf_config`), from a GGUF header (`lander_tui.core.gguf_file`), or from the project's own
catalog/cache format (`from_dict`/`to_dict`).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lander_tui.core.errors import LanderError

FULL, SWA, RECURRENT = "full", "swa", "recurrent"

# Architectures whose sliding-window layers llama.cpp really allocates as a small iSWA cache
# (src/llama-model.cpp create_memory; plain Llama/Mistral `sliding_window` is ignored there).
LLAMACPP_SWA_ARCHS = {"gemma2", "gemma3", "gemma3_text", "gpt_oss", "cohere2", "llama4"}


@dataclass(frozen=True)
class MLA:
    """DeepSeek multi-head latent attention: the cache holds one latent of `kv_lora_rank + qk_rope_head_dim`."""

    kv_lora_rank: int
    q_lora_rank: int | None
    qk_rope_head_dim: int
    qk_nope_head_dim: int
    v_head_dim: int


@dataclass(frozen=True)
class MoE:
    """Mixture of experts. All experts are resident; only `n_used` run per token."""

    n_experts: int
    n_used: int
    expert_ff: int
    n_shared: int = 0
    shared_ff: int = 0
    dense_layers: tuple[int, ...] = ()
    router_bias: bool = False
    expert_bias: bool = False
    score_bias: bool = False


@dataclass(frozen=True)
class Recurrent:
    """Constant-size state of a linear-attention/Mamba layer, in values per sequence.

    `conv` is llama.cpp's `n_embd_r` (rolling conv state) and `ssm` its `n_embd_s` (the SSM/delta state).
    `params` is the layer's mixer parameter count (for the parameter total). A Gated DeltaNet layer
    (Qwen3-Next) also keeps its layout, so its tensors can be listed as llama.cpp names them:
    `d_conv` (conv kernel), `k_heads` x `k_dim` (keys), `v_heads` x `v_dim` (values); 0 when unknown.
    """

    conv: int
    ssm: int
    params: int = 0
    d_conv: int = 0
    k_heads: int = 0
    k_dim: int = 0
    v_heads: int = 0
    v_dim: int = 0


@dataclass(frozen=True)
class Vision:
    """A multimodal model's image encoder (a ViT) and its projector into the language model.

    `projector` is llama.cpp's `clip.projector_type` (tools/mtmd/clip-impl.h): "gemma3", "qwen2.5vl_merger",
    "qwen2vl_merger", "pixtral", "mlp" (LLaVA), or another name it knows. `image_size` is the encoder's
    square input (Gemma 3: 896); for dynamic-resolution encoders (Qwen-VL, Pixtral) the side of the largest
    image its preprocessor makes. `merge` is how many patches per side become one language-model token
    (Gemma 3 pools 4 x 4, Qwen-VL merges 2 x 2). `windowed`: window attention (Qwen2.5-VL), which llama.cpp
    runs with an [n, n] mask. `params` is the tower and projector together when a file says so (an mmproj
    header); `core/vision.py` lists and counts them from the shape otherwise.
    """

    projector: str
    hidden_size: int
    intermediate_size: int
    n_layers: int
    n_heads: int
    image_size: int
    patch_size: int
    merge: int = 1
    text_hidden: int = 0
    gated_ffn: bool = False
    windowed: bool = False
    params: int = 0

    @property
    def tokens_per_image(self) -> int:
        """Language-model tokens the largest image becomes."""
        side = self.image_size // self.patch_size // max(1, self.merge)
        return side * side


@dataclass(frozen=True, eq=False)
class ModelSpec:
    """A model's shape. Compared and hashed by identity (it carries a dict), so caches key on it."""

    name: str
    arch: str
    vocab_size: int
    hidden_size: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    head_dim_v: int
    intermediate_size: int
    max_context: int
    tie_embeddings: bool = False
    gated_ffn: bool = True
    qkv_bias: bool = False
    o_bias: bool = False
    qk_norm: bool = False
    norms_per_layer: int = 2
    norm_bias: bool = False
    attn_sinks: bool = False
    fused_qkv: bool = False
    layer_kinds: tuple[str, ...] = ()
    sliding_window: int | None = None
    moe: MoE | None = None
    mla: MLA | None = None
    recurrent: Recurrent | None = None
    torch_dtype: str = "bfloat16"
    quantization: dict[str, Any] | None = None
    rope: str = ""
    hf_repo: str | None = None
    exact_params: int | None = None
    #: The image encoder's shape (None: text only, or a wrapper whose encoder lander-tui does not know).
    vision: Vision | None = None
    #: Multi-token-prediction layers the checkpoint ships beside the decoder (DeepSeek-V3
    #: `num_nextn_predict_layers`, Qwen3-Next `num_mtp_layers`): used only for speculative decoding.
    mtp_layers: int = 0
    notes: tuple[str, ...] = field(default=())

    # --- derived facts -------------------------------------------------------------------
    def kinds(self) -> tuple[str, ...]:
        return self.layer_kinds or (FULL,) * self.n_layers

    def count(self, kind: str) -> int:
        return sum(1 for k in self.kinds() if k == kind)

    def layer_counts(self, swa_applies: bool = True) -> tuple[int, int, int]:
        """(full-attention, sliding-window, recurrent) layer counts; SWA layers count as full when the
        engine does not window them (`swa_applies=False`)."""
        n_rec = self.count(RECURRENT) if self.recurrent else 0
        n_swa = self.count(SWA) if swa_applies and self.sliding_window else 0
        return self.n_layers - n_rec - n_swa, n_swa, n_rec

    @property
    def active_ff(self) -> int:
        """MLP width that runs per token: the dense FFN, or the routed experts used plus shared ones."""
        if not self.moe:
            return self.intermediate_size
        routed = self.moe.n_used * self.moe.expert_ff + self.moe.shared_ff
        return max(routed, self.intermediate_size if self.moe.dense_layers else 0)

    @property
    def llamacpp_uses_swa(self) -> bool:
        return self.arch in LLAMACPP_SWA_ARCHS and self.sliding_window is not None

    def kv_values_per_token(self, layer_kind: str = FULL, *, expanded_mla: bool = False) -> tuple[int, int]:
        """(K values, V values) one token stores in one attention layer.

        MLA caches a single latent (K only) in llama.cpp and vLLM; Transformers caches the expanded
        per-head K and V (`expanded_mla=True`).
        """
        if self.mla:
            m = self.mla
            if expanded_mla:
                return self.n_heads * (m.qk_nope_head_dim + m.qk_rope_head_dim), self.n_heads * m.v_head_dim
            return m.kv_lora_rank + m.qk_rope_head_dim, 0
        return self.n_kv_heads * self.head_dim, self.n_kv_heads * self.head_dim_v

    # --- the project's own format (catalog and Hub cache) --------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["layer_kinds"] = _compress_kinds(self.layer_kinds)
        return {k: v for k, v in d.items()
                if (v not in (None, (), [], "") and (k, v) != ("mtp_layers", 0)) or k in ("name", "arch")}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelSpec:
        d = dict(d)
        try:
            if d.get("moe"):
                moe = dict(d["moe"])
                moe["dense_layers"] = tuple(moe.get("dense_layers", ()))
                d["moe"] = MoE(**moe)
            if d.get("mla"):
                d["mla"] = MLA(**d["mla"])
            if d.get("recurrent"):
                d["recurrent"] = Recurrent(**d["recurrent"])
            if d.get("vision"):
                d["vision"] = Vision(**d["vision"])
            d.pop("vision_params", None)  # profiles cached before the encoder's shape was kept
            d["layer_kinds"] = _expand_kinds(d.get("layer_kinds", ()))
            d["notes"] = tuple(d.get("notes", ()))
            return cls(**d)
        except TypeError as err:
            raise LanderError(f"model profile for {d.get('name', '?')!r} is malformed: {err}") from None


def _compress_kinds(kinds: tuple[str, ...]) -> list[Any]:
    """Run-length encode layer kinds: ["full", 32] or ["swa", 5, "full", 1, ...]."""
    out: list[Any] = []
    for k in kinds:
        if out and out[-2] == k:
            out[-1] += 1
        else:
            out += [k, 1]
    return out


def _expand_kinds(enc: Any) -> tuple[str, ...]:
    enc = list(enc or [])
    if enc and all(isinstance(x, str) for x in enc):
        return tuple(enc)
    out: list[str] = []
    for i in range(0, len(enc), 2):
        out += [str(enc[i])] * int(enc[i + 1])
    return tuple(out)


# --- reading a Hugging Face config.json ----------------------------------------------------------


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read `config.json` from a file or a folder that holds one."""
    p = Path(path).expanduser()
    if p.is_dir():
        p = p / "config.json"
    if not p.is_file():
        raise LanderError(f"no config.json at {path}")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise LanderError(f"{p} is not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise LanderError(f"{p} does not hold a JSON object")
    return data


# Gemma 3 text defaults that sparse multimodal configs leave out (transformers Gemma3TextConfig).
_GEMMA3_TEXT_DEFAULTS = {
    "vocab_size": 262208,
    "num_attention_heads": 8,
    "num_key_value_heads": 4,
    "head_dim": 256,
    "sliding_window": 4096,
    "sliding_window_pattern": 6,
    "max_position_embeddings": 131072,
    "rope_theta": 1000000.0,
    "tie_word_embeddings": True,
}


def _text_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """Multimodal wrappers keep the language model in `text_config` (or `llm_config`)."""
    for key in ("text_config", "llm_config", "language_config"):
        inner = cfg.get(key)
        if isinstance(inner, dict) and inner:
            merged = dict(inner)
            if cfg.get("model_type") == "gemma3" or inner.get("model_type") == "gemma3_text":
                merged = {**_GEMMA3_TEXT_DEFAULTS, **inner}
                merged.setdefault("tie_word_embeddings", cfg.get("tie_word_embeddings", True))
            merged.setdefault("model_type", cfg.get("model_type"))
            merged.setdefault("torch_dtype", cfg.get("torch_dtype") or cfg.get("dtype"))
            merged.setdefault("quantization_config", cfg.get("quantization_config"))
            merged["_outer_model_type"] = cfg.get("model_type")
            return merged
    return cfg


def _need(cfg: dict[str, Any], *keys: str) -> Any:
    for k in keys:
        if cfg.get(k) is not None:
            return cfg[k]
    raise LanderError(f"config.json lacks {keys[0]!r}, which the estimate needs")


def _int(cfg: dict[str, Any], *keys: str, default: int | None = None) -> int:
    for k in keys:
        v = cfg.get(k)
        if v is not None:
            try:
                return int(v)
            except (TypeError, ValueError):
                raise LanderError(f"config.json key {k!r} should be a number, got {v!r}") from None
    if default is None:
        raise LanderError(f"config.json lacks {keys[0]!r}, which the estimate needs")
    return default


_TIE_DEFAULT_TRUE = {"gemma", "gemma2", "gemma3", "gemma3_text", "falcon"}


def from_hf_config(cfg: dict[str, Any], name: str = "model", hf_repo: str | None = None) -> ModelSpec:
    """Build a `ModelSpec` from a Hugging Face `config.json` dict."""
    if not isinstance(cfg, dict):
        raise LanderError("config.json must be a JSON object")
    c = _text_config(cfg)
    mt = str(c.get("model_type") or "").lower()
    mt = {"refinedwebmodel": "falcon", "refinedweb": "falcon"}.get(mt, mt)
    outer = str(c.get("_outer_model_type") or mt)
    if mt in ("gemma3", "gemma3_text") or outer == "gemma3":
        c = {**_GEMMA3_TEXT_DEFAULTS, **c}
    H = _int(c, "hidden_size", "n_embd", "d_model")
    L = _int(c, "num_hidden_layers", "n_layer", "num_layers")
    nh = _int(c, "num_attention_heads", "n_head", "num_heads")
    if H <= 0 or L <= 0 or nh <= 0:
        raise LanderError("config.json has a zero or negative hidden_size/num_hidden_layers/heads")
    vocab = _int(c, "vocab_size", "padded_vocab_size")
    if mt == "chatglm":
        vocab = _int(c, "padded_vocab_size", "vocab_size")
    nkv = _int(c, "num_key_value_heads", "n_head_kv", "multi_query_group_num", default=nh)
    if mt == "falcon" and c.get("multi_query") and not c.get("new_decoder_architecture"):
        nkv = 1
    if mt == "chatglm" and not c.get("multi_query_attention", True):
        nkv = nh
    head_dim = _int(c, "head_dim", "kv_channels", default=H // nh)
    ff = _int(c, "intermediate_size", "ffn_hidden_size", "n_inner", default=4 * H)
    max_ctx = _int(c, "max_position_embeddings", "seq_length", "max_sequence_length", "n_positions",
                   default=4096)
    default_tie = mt in _TIE_DEFAULT_TRUE
    tie = bool(c.get("tie_word_embeddings", default_tie))
    qkv_bias = bool(c.get("attention_bias", False)) or mt in ("qwen2", "qwen2_moe")
    o_bias = bool(c.get("attention_bias", False)) and mt not in ("qwen2", "qwen2_moe")
    kw: dict[str, Any] = {}
    if mt == "chatglm":
        qkv_bias = bool(c.get("add_qkv_bias", True)) or bool(c.get("add_bias_linear", False))
        o_bias = bool(c.get("add_bias_linear", False))
        kw["fused_qkv"] = True
    if mt == "falcon":
        kw.update(fused_qkv=True, gated_ffn=False, norm_bias=True, norms_per_layer=1)
        qkv_bias = o_bias = bool(c.get("bias", False))
        if not c.get("ffn_hidden_size"):
            ff = 4 * H
    if mt == "phi3":  # one attn_qkv and one gate_up matrix (src/models/phi3.cpp)
        kw["fused_qkv"] = True
    if mt in ("qwen3", "qwen3_moe", "gemma3", "gemma3_text", "qwen3_next"):
        kw["qk_norm"] = True
    if mt in ("gemma2", "gemma3", "gemma3_text"):
        kw["norms_per_layer"] = 4
    if mt == "gpt_oss":
        qkv_bias = o_bias = True
        kw["attn_sinks"] = True

    kinds, window = _layer_kinds(c, mt, L)
    moe = _moe(c, mt, L)
    mla = None
    if c.get("kv_lora_rank"):
        mla = MLA(
            kv_lora_rank=_int(c, "kv_lora_rank"),
            q_lora_rank=int(c["q_lora_rank"]) if c.get("q_lora_rank") else None,
            qk_rope_head_dim=_int(c, "qk_rope_head_dim"),
            qk_nope_head_dim=_int(c, "qk_nope_head_dim"),
            v_head_dim=_int(c, "v_head_dim"),
        )
        head_dim = mla.qk_nope_head_dim + mla.qk_rope_head_dim
    recurrent = _recurrent(c, mt, H) if RECURRENT in kinds else None
    scaling = c.get("rope_scaling") or {}
    rope = ""
    if isinstance(scaling, dict) and scaling:
        rope = f"{scaling.get('rope_type') or scaling.get('type') or '?'} x{scaling.get('factor', '?')}"
    quant = c.get("quantization_config") if isinstance(c.get("quantization_config"), dict) else None
    dtype = str(c.get("torch_dtype") or c.get("dtype") or "bfloat16")
    return ModelSpec(
        name=name,
        arch=mt or "unknown",
        vocab_size=vocab,
        hidden_size=H,
        n_layers=L,
        n_heads=nh,
        n_kv_heads=nkv,
        head_dim=head_dim,
        head_dim_v=mla.v_head_dim if mla else _int(c, "head_dim", "kv_channels", default=H // nh),
        intermediate_size=ff,
        max_context=max_ctx,
        tie_embeddings=tie,
        qkv_bias=qkv_bias,
        o_bias=o_bias,
        layer_kinds=kinds,
        sliding_window=window,
        moe=moe,
        mla=mla,
        recurrent=recurrent,
        torch_dtype=dtype,
        quantization=quant,
        rope=rope,
        hf_repo=hf_repo,
        vision=vision_from_config(cfg, H),
        mtp_layers=int(c.get("num_nextn_predict_layers") or c.get("num_mtp_layers")
                       or c.get("mtp_num_hidden_layers") or 0),
        **kw,
    )


#: The largest image side of the dynamic-resolution encoders, whatever `image_size` their files carry:
#: Qwen-VL's preprocessor allows `max_pixels` 12845056 = 3584 x 3584 (Qwen2.5-VL-7B-Instruct
#: preprocessor_config.json); its mmproj carries the converter's placeholder 560 (conversion/qwenvl.py).
DYNAMIC_MAX_SIDE = {"qwen2vl_merger": 3584, "qwen2.5vl_merger": 3584}


def vision_from_config(cfg: dict[str, Any], text_hidden: int) -> Vision | None:
    """The image encoder a multimodal `config.json` describes (`vision_config`), or None.

    Gemma 3 (SigLIP + average pooling to `mm_tokens_per_image`), Qwen2-VL / Qwen2.5-VL (2 x 2 patch merger,
    Qwen2.5's window attention and SwiGLU MLP), Mistral 3 / Pixtral (gated MLP, 2 x 2 merger) and LLaVA-style
    CLIP/SigLIP towers with an MLP projector are named as llama.cpp names their projectors; other
    encoders are sized as a plain ViT with a one-matrix projector.
    """
    v = cfg.get("vision_config")
    if not isinstance(v, dict) or not (v.get("hidden_size") or v.get("embed_dim")):
        return None
    mt = str(cfg.get("model_type") or "")
    vt = str(v.get("model_type") or "")
    heads = int(v.get("num_attention_heads") or v.get("num_heads") or 16)
    layers = int(v.get("num_hidden_layers") or v.get("depth") or 0)
    patch = int(v.get("patch_size") or 14)
    if mt in ("qwen2_vl", "qwen2_5_vl") or vt in ("qwen2_vl", "qwen2_5_vl"):
        qwen25 = mt == "qwen2_5_vl" or vt == "qwen2_5_vl"
        hidden = int(v.get("embed_dim") or v["hidden_size"]) if not qwen25 else int(v["hidden_size"])
        ff = int(v.get("intermediate_size") or 0) if qwen25 else int(hidden * float(v.get("mlp_ratio", 4)))
        return Vision("qwen2.5vl_merger" if qwen25 else "qwen2vl_merger", hidden, ff, layers, heads,
                      image_size=DYNAMIC_MAX_SIDE["qwen2vl_merger"], patch_size=patch,
                      merge=int(v.get("spatial_merge_size") or 2),
                      text_hidden=int(v.get("out_hidden_size") or cfg.get("hidden_size") or text_hidden),
                      gated_ffn=qwen25, windowed=qwen25 and bool(v.get("fullatt_block_indexes")))
    hidden = int(v["hidden_size"])
    ff = int(v.get("intermediate_size") or 4 * hidden)
    image = int(v.get("image_size") or 224)
    if mt == "gemma3" or vt == "siglip_vision_model" and "mm_tokens_per_image" in cfg:
        per_side = int(math.isqrt(int(cfg.get("mm_tokens_per_image") or 256)))
        return Vision("gemma3", hidden, ff, layers, heads, image, patch, merge=max(1, image // patch // per_side),
                      text_hidden=text_hidden)
    if vt == "pixtral" or mt in ("mistral3", "pixtral", "llava") and vt == "pixtral":
        return Vision("pixtral", hidden, ff, layers, heads, image, patch,
                      merge=int(cfg.get("spatial_merge_size") or 1), text_hidden=text_hidden, gated_ffn=True)
    if mt in ("llava", "llava_next") or vt in ("clip_vision_model", "siglip_vision_model"):
        return Vision("mlp", hidden, ff, layers, heads, image, patch, text_hidden=text_hidden)
    return Vision(vt or mt or "vit", hidden, ff, layers, heads, image, patch, text_hidden=text_hidden)


def _layer_kinds(c: dict[str, Any], mt: str, L: int) -> tuple[tuple[str, ...], int | None]:
    window = c.get("sliding_window")
    lt = c.get("layer_types")
    if isinstance(lt, list) and len(lt) == L:
        mapping = {"sliding_attention": SWA, "full_attention": FULL, "chunked_attention": SWA,
                   "linear_attention": RECURRENT, "mamba": RECURRENT, "attention": FULL}
        kinds = tuple(mapping.get(str(x), FULL) for x in lt)
        return kinds, (int(window) if window and SWA in kinds else None)
    if mt == "qwen3_next":
        interval = int(c.get("full_attention_interval", 4))
        return tuple(FULL if (i + 1) % interval == 0 else RECURRENT for i in range(L)), None
    if mt == "jamba":
        period, offset = int(c.get("attn_layer_period", 8)), int(c.get("attn_layer_offset", 4))
        return tuple(FULL if i % period == offset else RECURRENT for i in range(L)), None
    if not window or c.get("use_sliding_window") is False:
        return (FULL,) * L, None
    window = int(window)
    if mt == "gemma2":
        return tuple(SWA if i % 2 == 0 else FULL for i in range(L)), window
    if mt in ("gemma3", "gemma3_text"):
        n = int(c.get("sliding_window_pattern") or 6)
        return tuple(SWA if (i + 1) % n else FULL for i in range(L)), window
    if mt in ("qwen2", "qwen2_moe", "qwen3", "qwen3_moe"):
        # Qwen keeps inert sliding_window keys unless use_sliding_window is true
        if not c.get("use_sliding_window"):
            return (FULL,) * L, None
        first = int(c.get("max_window_layers", L))
        return tuple(SWA if i >= first else FULL for i in range(L)), window
    if window >= int(c.get("max_position_embeddings") or 0) > 0:
        return (FULL,) * L, None
    # Mistral-7B-v0.1 style: every layer windowed (llama.cpp ignores it; see LLAMACPP_SWA_ARCHS)
    return (SWA,) * L, window


def _moe(c: dict[str, Any], mt: str, L: int) -> MoE | None:
    n_exp = c.get("num_local_experts") or c.get("num_experts") or c.get("n_routed_experts")
    if not n_exp or int(n_exp) <= 1:
        return None
    n_exp = int(n_exp)
    used = _int(c, "num_experts_per_tok", "num_experts_per_token", "moe_topk", default=2)
    eff = _int(c, "moe_intermediate_size", "intermediate_size")
    n_shared = int(c.get("n_shared_experts") or 0)
    shared_ff = eff * n_shared
    if c.get("shared_expert_intermediate_size"):
        shared_ff, n_shared = int(c["shared_expert_intermediate_size"]), 1
    dense: list[int] = []
    if c.get("first_k_dense_replace"):
        dense = list(range(int(c["first_k_dense_replace"])))
    if c.get("mlp_only_layers"):
        dense = sorted(set(dense) | {int(i) for i in c["mlp_only_layers"]})
    step = int(c.get("decoder_sparse_step") or c.get("moe_layer_freq") or 1)
    if step > 1:
        dense = sorted(set(dense) | {i for i in range(L) if (i + 1) % step != 0})
    return MoE(
        n_experts=n_exp,
        n_used=used,
        expert_ff=eff,
        n_shared=n_shared,
        shared_ff=shared_ff,
        dense_layers=tuple(dense),
        router_bias=mt == "gpt_oss",
        expert_bias=mt == "gpt_oss",
        score_bias=c.get("topk_method") == "noaux_tc",
    )


def _recurrent(c: dict[str, Any], mt: str, H: int) -> Recurrent:
    """State sizes as llama.cpp computes them (src/llama-hparams.cpp n_embd_r / n_embd_s)."""
    if mt == "qwen3_next" or c.get("linear_num_value_heads"):
        d_conv = int(c.get("linear_conv_kernel_dim", 4))
        nk, dk = int(c.get("linear_num_key_heads", 16)), int(c.get("linear_key_head_dim", 128))
        nv, dv = int(c.get("linear_num_value_heads", 32)), int(c.get("linear_value_head_dim", 128))
        conv_dim = 2 * nk * dk + nv * dv
        params = H * (2 * nk * dk + 2 * nv * dv + 2 * nv) + conv_dim * d_conv + nv * dv * H + 2 * nv + dv
        return Recurrent(conv=(d_conv - 1) * conv_dim, ssm=nv * dk * dv, params=params,
                         d_conv=d_conv, k_heads=nk, k_dim=dk, v_heads=nv, v_dim=dv)
    d_state = int(c.get("mamba_d_state") or c.get("ssm_state_size") or c.get("state_size") or 16)
    d_conv = int(c.get("mamba_d_conv") or c.get("conv_kernel") or 4)
    expand = int(c.get("mamba_expand") or c.get("expand") or 2)
    d_inner = int(c.get("mamba_d_inner") or expand * H)
    n_group = int(c.get("mamba_n_groups") or c.get("n_groups") or 1)
    n_heads = int(c.get("mamba_n_heads") or 0)
    conv_dim = d_inner + 2 * n_group * d_state
    params = H * (2 * d_inner + 2 * n_group * d_state + n_heads) + conv_dim * d_conv + d_inner * H
    return Recurrent(conv=(d_conv - 1) * conv_dim, ssm=d_state * d_inner, params=params)
