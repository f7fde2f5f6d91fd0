"""hf_allocator: PyTorch's caching allocator replayed on a dense decoder, and the reserve fractions the
Transformers engine takes from it."""

from __future__ import annotations

import json
from pathlib import Path

from lander_tui.core.engines.hf_allocator import SAMPLE_STEPS, dense_peaks

CONFIGS = Path(__file__).parent / "data" / "ground-truth" / "configs"


def _shape(name: str) -> tuple[int, int, int, int, int, int, bool]:
    c = json.loads((CONFIGS / f"{name}.json").read_text())
    head_dim = c.get("head_dim") or c["hidden_size"] // c["num_attention_heads"]
    return (c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"], head_dim,
            c["intermediate_size"], c["num_hidden_layers"], c.get("model_type") == "qwen3")


def test_reserved_memory_dips_as_context_grows_so_samples_take_several_steps() -> None:
    # Llama-3.2-3B alternates by one MLP segment every 256 tokens near 28k; Qwen2.5-7B drops one past ~21.5k:
    # one replayed step per sample could land in a dip, hence SAMPLE_STEPS consecutive steps
    assert SAMPLE_STEPS > 1
    for name, top in (("llama-3.2-3b", 29184), ("qwen2.5-7b", 24576)):
        shape = _shape(name)
        running, dips = 0, 0
        for t in range(256, top + 1, 256):
            peak = dense_peaks(t, *shape)[0]
            dips += peak < running
            running = max(running, peak)
        assert dips, name


def test_dense_reserve_fractions_follow_qwen25_7b_dropping_one_segment_past_20k():
    from lander_tui.core.engines.hf_allocator import dense_reserve_fractions
    per_token = 57344 + 3 * 18944 * 2 + 3.2 * 3584 * 2 + 1.8 * 2048
    points, fractions = dense_reserve_fractions(3584, 28, 4, 128, 18944, 28, False, per_token, 32768)
    assert points[0] == 2048 and points[-1] == 32768 and len(points) == 8
    by = dict(zip(points, fractions, strict=True))
    assert all(f > 0.25 for t, f in by.items() if 4096 <= t <= 16384)
    assert all(0.08 < f < 0.11 for t, f in by.items() if t >= 22016)
