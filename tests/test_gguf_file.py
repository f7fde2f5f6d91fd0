"""GGUF header reading against real files written by `gguf.GGUFWriter` (tests/gguf_fixtures.py)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from gguf_fixtures import (
    llama_tensors,
    tensor_nbytes,
    write_gguf,
    write_llama_gguf,
    write_mla_gguf,
    write_moe_gguf,
)

from lander_tui.core.errors import LanderError
from lander_tui.core.formats import ggml_type
from lander_tui.core.gguf_file import GgufNeedMoreBytes, read_gguf, read_gguf_header
from lander_tui.core.model_source import resolve_model
from lander_tui.core.model_spec import FULL, RECURRENT, SWA, from_hf_config
from lander_tui.core.tensors import active_parameter_count, model_tensors, parameter_count


def _shape(t) -> tuple:
    return (t.name, t.row, t.rows, t.n_experts)


def test_llama_tensors_have_exact_types_and_bytes(tmp_path: Path) -> None:
    path = write_llama_gguf(tmp_path / "tiny.gguf")
    g = read_gguf(path)
    expected = llama_tensors()
    assert [t.name for t in g.tensors] == [name for name, _, _ in expected]
    for t, (_, ne, ttype) in zip(g.tensors, expected, strict=True):
        assert t.ggml_type == ttype
        # two independent sources for the size: our BlockType table and the gguf package's table
        assert t.nbytes == ggml_type(ttype).nbytes(t.n_elements) == tensor_nbytes(ne, ttype)
        assert t.row == ne[0]
    assert {t.ggml_type for t in g.tensors} == {"F32", "Q4_K", "Q6_K", "Q8_0"}
    assert g.tensors[1].layer == 0 and g.tensors[-1].layer is None
    assert g.file_size == path.stat().st_size
    assert g.data_offset % 32 == 0
    assert g.data_offset + g.tensor_bytes <= g.file_size


def test_llama_spec_fields(tmp_path: Path) -> None:
    g = read_gguf(write_llama_gguf(tmp_path / "m.gguf", n_layers=3, hidden=512, n_heads=8, n_kv_heads=2,
                                   ff=768, vocab=1000, context=8192))
    s = g.spec
    assert (s.arch, s.n_layers, s.hidden_size, s.n_heads, s.n_kv_heads) == ("llama", 3, 512, 8, 2)
    assert (s.head_dim, s.head_dim_v, s.intermediate_size, s.max_context) == (64, 64, 768, 8192)
    assert s.vocab_size == 1000
    assert not s.tie_embeddings and s.gated_ffn and not s.qk_norm and not s.qkv_bias
    assert s.kinds() == (FULL,) * 3 and s.moe is None and s.mla is None
    assert s.exact_params == sum(t.n_elements for t in g.tensors)
    assert g.file_type == "Q4_K_M"


def test_spec_matches_the_same_model_from_config_json(tmp_path: Path) -> None:
    """The GGUF-derived spec must describe the same tensors as the equivalent config.json."""
    g = read_gguf(write_llama_gguf(tmp_path / "m.gguf", n_layers=2, hidden=256, n_heads=4, n_kv_heads=2,
                                   ff=512, vocab=512))
    cfg = {"model_type": "llama", "hidden_size": 256, "num_hidden_layers": 2, "num_attention_heads": 4,
           "num_key_value_heads": 2, "intermediate_size": 512, "vocab_size": 512,
           "max_position_embeddings": 4096, "tie_word_embeddings": False}
    from_cfg = from_hf_config(cfg, name="m")
    assert [_shape(t) for t in model_tensors(from_cfg)] == [_shape(t) for t in g.tensors]
    assert parameter_count(g.spec) == parameter_count(from_cfg)
    assert g.spec.kv_values_per_token() == from_cfg.kv_values_per_token()


def test_tied_embeddings_have_no_output_tensor(tmp_path: Path) -> None:
    untied = read_gguf(write_llama_gguf(tmp_path / "a.gguf"))
    tied = read_gguf(write_llama_gguf(tmp_path / "b.gguf", tied=True))
    assert tied.spec.tie_embeddings and not untied.spec.tie_embeddings
    assert "output.weight" not in {t.name for t in tied.tensors}
    assert untied.spec.exact_params - tied.spec.exact_params == 256 * 512
    spec_no_exact = replace(tied.spec, exact_params=None)
    assert parameter_count(spec_no_exact) == tied.spec.exact_params


def test_moe_expert_tensors_and_spec(tmp_path: Path) -> None:
    g = read_gguf(write_moe_gguf(tmp_path / "moe.gguf", hidden=256, n_experts=8, n_used=2, expert_ff=512))
    s = g.spec
    assert s.arch == "qwen3_moe" and s.qk_norm
    assert s.moe is not None
    m = s.moe
    assert (m.n_experts, m.n_used, m.expert_ff, m.n_shared, m.dense_layers) == (8, 2, 512, 0, ())
    exps = [t for t in g.tensors if "_exps" in t.name]
    assert len(exps) == 6
    for t in exps:
        # [ne0, ne1, n_expert]: gate/up run along hidden, down along the expert FFN
        assert t.n_experts == 8
        assert (t.row, t.rows) == ((512, 256) if "down" in t.name else (256, 512))
        assert t.nbytes == ggml_type(t.ggml_type).nbytes(t.n_elements)
    down = next(t for t in exps if "down" in t.name)
    assert down.n_elements == 256 * 512 * 8 and down.ggml_type == "Q6_K"
    assert down.nbytes == tensor_nbytes((512, 256, 8), "Q6_K")
    # the spec reproduces the file's tensors (names, shapes, experts), so active-parameter maths is right
    assert [_shape(t) for t in model_tensors(replace(s, exact_params=None))] == [_shape(t) for t in g.tensors]
    assert active_parameter_count(s) < parameter_count(s)


def test_mla_spec_caches_the_latent(tmp_path: Path) -> None:
    g = read_gguf(write_mla_gguf(tmp_path / "ds.gguf", kv_lora_rank=128, rope_dim=32, nope_dim=64, v_dim=64,
                                 n_layers=3, n_dense=1, n_shared=1, expert_ff=256))
    s = g.spec
    assert s.arch == "deepseek_v2"
    assert s.mla is not None
    m = s.mla
    assert (m.kv_lora_rank, m.qk_rope_head_dim, m.qk_nope_head_dim, m.v_head_dim) == (128, 32, 64, 64)
    assert s.mla.q_lora_rank is None
    assert s.kv_values_per_token() == (128 + 32, 0)
    assert s.moe is not None and s.moe.dense_layers == (0,) and s.moe.n_shared == 1 and s.moe.shared_ff == 256
    assert [_shape(t) for t in model_tensors(replace(s, exact_params=None))] == [_shape(t) for t in g.tensors]
    assert g.file_type == "Q8_0"


def test_legacy_mla_gguf_caches_every_head(tmp_path: Path) -> None:
    """A GGUF without key_length_mla (converted before the absorbed MLA) runs as plain attention in
    llama.cpp (llama_hparams::is_mla() is false): it caches each head's K and V, not the latent."""
    g = read_gguf(write_mla_gguf(tmp_path / "old.gguf", kv_lora_rank=128, rope_dim=32, nope_dim=64, v_dim=64,
                                 n_heads=4, legacy=True))
    assert g.spec.mla is None
    assert g.spec.kv_values_per_token() == (4 * (64 + 32), 4 * 64)
    assert any("legacy MLA" in n for n in g.spec.notes)


def test_file_type_is_inferred_when_the_key_is_missing(tmp_path: Path) -> None:
    assert read_gguf(write_llama_gguf(tmp_path / "a.gguf", file_type=None)).file_type == "Q4_K_M"
    assert read_gguf(write_mla_gguf(tmp_path / "b.gguf", file_type=None)).file_type == "Q8_0"
    # an explicit key wins over the majority type
    assert read_gguf(write_llama_gguf(tmp_path / "c.gguf", file_type="Q4_K_S")).file_type == "Q4_K_S"


def _attn_only(arch: str, n_layers: int, hidden: int = 256, n_heads: int = 4) -> list:
    t = [("token_embd.weight", (hidden, 64), "F16")]
    for i in range(n_layers):
        p = f"blk.{i}."
        t += [(p + "attn_norm.weight", (hidden,), "F32")]
        t += [(p + f"attn_{x}.weight", (hidden, hidden), "F16") for x in ("q", "k", "v", "output")]
        t += [(p + "ffn_up.weight", (hidden, 512), "F16"), (p + "ffn_gate.weight", (hidden, 512), "F16"),
              (p + "ffn_down.weight", (512, hidden), "F16")]
    return t + [("output_norm.weight", (hidden,), "F32")]


def _meta(n_layers: int, **extra) -> dict:
    return {"block_count": n_layers, "embedding_length": 256, "feed_forward_length": 512,
            "attention.head_count": 4, "attention.head_count_kv": 4, "context_length": 32768, **extra}


@pytest.mark.parametrize(
    ("arch", "hf_arch", "n_layers", "expected"),
    [
        ("gemma2", "gemma2", 4, (SWA, FULL, SWA, FULL)),
        ("gemma3", "gemma3", 7, (SWA,) * 5 + (FULL, SWA)),
        ("gpt-oss", "gpt_oss", 4, (SWA, FULL, SWA, FULL)),
    ],
)
def test_sliding_window_layer_patterns(tmp_path: Path, arch: str, hf_arch: str, n_layers: int,
                                       expected: tuple) -> None:
    path = write_gguf(tmp_path / "w.gguf", arch, _meta(n_layers, **{"attention.sliding_window": 512}),
                      _attn_only(arch, n_layers))
    s = read_gguf(path).spec
    assert s.arch == hf_arch
    assert s.kinds() == expected
    assert s.sliding_window == 512
    assert s.tie_embeddings


def test_explicit_per_layer_window_pattern_wins(tmp_path: Path) -> None:
    pattern = [False, True, True]
    meta = _meta(3, **{"attention.sliding_window": 128, "attention.sliding_window_pattern": pattern})
    s = read_gguf(write_gguf(tmp_path / "p.gguf", "gemma3", meta, _attn_only("gemma3", 3))).spec
    assert s.kinds() == (FULL, SWA, SWA) and s.sliding_window == 128


def test_no_window_key_means_all_full(tmp_path: Path) -> None:
    s = read_gguf(write_gguf(tmp_path / "f.gguf", "gemma2", _meta(2), _attn_only("gemma2", 2))).spec
    assert s.kinds() == (FULL, FULL) and s.sliding_window is None


def test_hybrid_recurrent_layers_from_per_layer_kv_heads(tmp_path: Path) -> None:
    meta = _meta(4, **{"attention.head_count_kv": [0, 4, 0, 4], "ssm.conv_kernel": 4, "ssm.inner_size": 512,
                       "ssm.state_size": 16, "ssm.group_count": 1})
    tensors = _attn_only("jamba", 4)
    s = read_gguf(write_gguf(tmp_path / "h.gguf", "jamba", meta, tensors)).spec
    assert s.kinds() == (RECURRENT, FULL, RECURRENT, FULL)
    assert s.n_kv_heads == 4
    assert s.recurrent is not None
    assert s.recurrent.conv == 3 * (512 + 2 * 16) and s.recurrent.ssm == 16 * 512


def test_split_gguf_is_read_as_one_model(tmp_path: Path) -> None:
    whole = read_gguf(write_llama_gguf(tmp_path / "whole.gguf"))
    (tmp_path / "split").mkdir()
    first = write_llama_gguf(tmp_path / "split" / "m.gguf", split_max_tensors=8)
    assert first.name == "m-00001-of-00003.gguf"
    parts = sorted((tmp_path / "split").glob("*.gguf"))
    g = read_gguf(first)
    assert g.split_count == 3
    assert g.file_size == sum(p.stat().st_size for p in parts)
    assert [(_shape(t), t.ggml_type, t.nbytes) for t in g.tensors] == \
        [(_shape(t), t.ggml_type, t.nbytes) for t in whole.tensors]
    assert g.spec.exact_params == whole.spec.exact_params and g.file_type == "Q4_K_M"
    parts[2].unlink()
    with pytest.raises(LanderError, match="00003-of-00003.gguf is missing"):
        read_gguf(first)


def test_truncated_header_is_one_line_error(tmp_path: Path) -> None:
    path = write_llama_gguf(tmp_path / "cut.gguf")
    data = path.read_bytes()
    path.write_bytes(data[:3000])
    with pytest.raises(LanderError) as err:
        read_gguf(path)
    msg = str(err.value)
    assert msg.startswith("cut.gguf is truncated:") and "\n" not in msg


def test_truncated_tensor_data_is_reported(tmp_path: Path) -> None:
    path = write_llama_gguf(tmp_path / "short.gguf")
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        fh.truncate(size - 1000)
    with pytest.raises(LanderError, match=r"short\.gguf is truncated: its tensors need"):
        read_gguf(path)


@pytest.mark.parametrize(
    "content",
    [
        b"not a gguf file at all, just text\n" * 10,  # no magic
        b"GGUF" + b"\xff" * 60,  # bad version
        b"GGUF\x03\x00\x00\x00" + b"\xff" * 16,  # absurd counts
    ],
)
def test_garbage_is_one_line_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "junk.gguf"
    path.write_bytes(content)
    with pytest.raises(LanderError) as err:
        read_gguf(path)
    assert str(err.value).startswith("junk.gguf ") and "\n" not in str(err.value)


def test_empty_and_missing_files(tmp_path: Path) -> None:
    (tmp_path / "empty.gguf").write_bytes(b"")
    with pytest.raises(LanderError, match="empty"):
        read_gguf(tmp_path / "empty.gguf")
    with pytest.raises(LanderError, match="cannot read"):
        read_gguf(tmp_path / "nope.gguf")


def test_header_from_a_prefix_of_the_bytes(tmp_path: Path) -> None:
    path = write_llama_gguf(tmp_path / "m.gguf", vocab=2048)
    data = path.read_bytes()
    full = read_gguf(path)
    g = read_gguf_header(data[: full.data_offset], total_size=len(data), name="m.gguf")
    assert [(t.name, t.ggml_type, t.nbytes) for t in g.tensors] == [(t.name, t.ggml_type, t.nbytes)
                                                                    for t in full.tensors]
    assert g.data_offset == full.data_offset and g.file_size == len(data) and g.file_type == "Q4_K_M"
    # a short prefix asks for more, with a lower bound that grows until the header fits
    have, tries = 256, 0
    while True:
        try:
            g = read_gguf_header(data[:have], total_size=len(data), name="m.gguf")
            break
        except GgufNeedMoreBytes as more:
            assert more.needed > have and more.have == have
            have, tries = min(len(data), max(more.needed, have * 2)), tries + 1
    assert tries >= 3 and have <= full.data_offset * 2
    assert g.spec.exact_params == full.spec.exact_params


def test_prefix_without_total_size_never_claims_truncation(tmp_path: Path) -> None:
    data = write_llama_gguf(tmp_path / "m.gguf").read_bytes()
    with pytest.raises(GgufNeedMoreBytes):
        read_gguf_header(data[:100])
    with pytest.raises(LanderError, match="truncated"):
        read_gguf_header(data[:100], total_size=100, name="m.gguf")


def test_resolve_model_reads_a_gguf_path(tmp_path: Path) -> None:
    path = write_moe_gguf(tmp_path / "x.gguf")
    r = resolve_model(str(path))
    assert r.origin == "gguf" and r.file_quant == "Q4_K_M"
    assert r.tensors is not None and len(r.tensors) == len(read_gguf(path).tensors)


def test_gpt_oss_like_file(tmp_path: Path) -> None:
    """MXFP4 experts with per-expert biases, router bias, attention sinks, alternating sliding window."""
    H, E, F, L = 256, 4, 256, 2
    t = [("token_embd.weight", (H, 512), "Q8_0")]
    for i in range(L):
        p = f"blk.{i}."
        t += [(p + "attn_norm.weight", (H,), "F32"), (p + "post_attention_norm.weight", (H,), "F32"),
              (p + "attn_q.weight", (H, H), "Q8_0"), (p + "attn_k.weight", (H, 128), "Q8_0"),
              (p + "attn_v.weight", (H, 128), "Q8_0"), (p + "attn_output.weight", (H, H), "Q8_0"),
              (p + "attn_q.bias", (H,), "F32"), (p + "attn_k.bias", (128,), "F32"),
              (p + "attn_v.bias", (128,), "F32"), (p + "attn_output.bias", (H,), "F32"),
              (p + "attn_sinks.weight", (4,), "F32"),
              (p + "ffn_gate_inp.weight", (H, E), "F32"), (p + "ffn_gate_inp.bias", (E,), "F32"),
              (p + "ffn_gate_exps.weight", (H, F, E), "MXFP4"), (p + "ffn_up_exps.weight", (H, F, E), "MXFP4"),
              (p + "ffn_down_exps.weight", (F, H, E), "MXFP4"),
              (p + "ffn_gate_exps.bias", (F, E), "F32"), (p + "ffn_up_exps.bias", (F, E), "F32"),
              (p + "ffn_down_exps.bias", (H, E), "F32")]
    t += [("output_norm.weight", (H,), "F32"), ("output.weight", (H, 512), "Q8_0")]
    meta = {"block_count": L, "embedding_length": H, "feed_forward_length": F, "attention.head_count": 4,
            "attention.head_count_kv": 2, "attention.key_length": 64, "attention.value_length": 64,
            "context_length": 131072, "expert_count": E, "expert_used_count": 2,
            "expert_feed_forward_length": F, "attention.sliding_window": 128}
    g = read_gguf(write_gguf(tmp_path / "oss.gguf", "gpt-oss", meta, t))
    s = g.spec
    assert s.arch == "gpt_oss" and s.attn_sinks and s.qkv_bias and s.o_bias
    assert s.moe is not None and s.moe.router_bias and s.moe.expert_bias
    assert s.kinds() == (SWA, FULL) and s.sliding_window == 128
    assert g.file_type == "MXFP4_MOE"  # no general.file_type: inferred from the expert weights
    down = next(x for x in g.tensors if x.name == "blk.0.ffn_down_exps.weight")
    assert down.ggml_type == "MXFP4" and down.nbytes == tensor_nbytes((F, H, E), "MXFP4") == F // 32 * 17 * H * E
    bias = next(x for x in g.tensors if x.name == "blk.0.ffn_up_exps.bias")
    assert (bias.row, bias.rows, bias.n_experts) == (F, 1, E)
    assert s.exact_params == sum(x.n_elements for x in g.tensors)


def test_absorbed_mla_keys(tmp_path: Path) -> None:
    """Newer DeepSeek conversions store key_length = kv_lora_rank + rope and the per-head sizes in *_mla keys."""
    path = write_mla_gguf(tmp_path / "ds.gguf", kv_lora_rank=128, rope_dim=32, nope_dim=64, v_dim=64)
    base = read_gguf(path).spec
    meta = {"block_count": 3, "embedding_length": 256, "feed_forward_length": 512, "attention.head_count": 4,
            "attention.head_count_kv": 1, "attention.key_length": 128 + 32, "attention.value_length": 128,
            "attention.key_length_mla": 96, "attention.value_length_mla": 64, "attention.kv_lora_rank": 128,
            "rope.dimension_count": 32, "context_length": 163840}
    tensors = [(t.name, (t.row, t.rows) if not t.n_experts else (t.row, t.rows, t.n_experts), t.ggml_type)
               for t in read_gguf(path).tensors]
    s = read_gguf(write_gguf(tmp_path / "ds2.gguf", "deepseek2", meta, tensors)).spec
    assert s.mla == base.mla
    assert (s.head_dim, s.head_dim_v) == (96, 64) and s.kv_values_per_token() == (160, 0)
