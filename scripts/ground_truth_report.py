"""Print predicted vs measured memory for every source in tests/data/ground-truth.

    uv run python scripts/ground_truth_report.py [tests/data/ground-truth]

One table per source: H100 llama.cpp, H100 Transformers, wild vLLM (V1), wild SGLang, wild
llama.cpp/Ollama; each wild table ends with the records it cannot explain and why.
"""

from __future__ import annotations

import sys
from pathlib import Path

from lander_tui.core.ground_truth import (
    format_table,
    format_wild,
    llamacpp_rows,
    ollama_wild_rows,
    sglang_wild_rows,
    transformers_rows,
    transformers_sim_rows,
    vllm_target_summary,
    vllm_wild_rows,
)

gt = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "tests" / "data" / "ground-truth")
print("== H100 llama.cpp (measured -> predicted, MiB or tokens)")
print(format_table(llamacpp_rows(gt)))
print("\n== H100 Transformers")
print(format_table(transformers_rows(gt)))
print("\n== Transformers 5.17, kept-back shapes: the real code path traced on the meta device (no GPU)")
print(format_table(transformers_sim_rows(gt)))
vllm = vllm_wild_rows(gt)
print("\n== wild vLLM (GiB, tokens; [release modelled])")
print(format_wild(vllm))
print(vllm_target_summary(vllm))
print("\n== wild SGLang (token pool max_total_num_tokens, K size GiB, weights GiB)")
print(format_wild(sglang_wild_rows(gt)))
print("\n== wild llama.cpp / Ollama")
print(format_wild(ollama_wild_rows(gt)))
