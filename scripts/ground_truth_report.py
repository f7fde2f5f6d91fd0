"""Print measured vs predicted memory for every case in tests/data/ground-truth.

    uv run python scripts/ground_truth_report.py [tests/data/ground-truth]
"""

from __future__ import annotations

import sys
from pathlib import Path

from lander_tui.core.ground_truth import format_table, llamacpp_rows, transformers_rows

gt = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "tests" / "data" / "ground-truth")
print("llama.cpp (measured -> predicted, MiB or tokens)")
print(format_table(llamacpp_rows(gt)))
print("\nTransformers")
print(format_table(transformers_rows(gt)))
