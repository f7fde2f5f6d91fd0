"""Print predicted vs measured tokens/s for every usable row of tests/data/speed/llama-bench.jsonl.

    uv run python scripts/speed_report.py [--rows] [--fit] [DATA_DIR]

Every prediction is made with constants fitted WITHOUT the row's GPU (leave one GPU out: the
decode and prefill constants are refitted on the single-GPU rows of all other GPUs), so the errors
are what the model does on a card it was not fitted on. Multi-GPU and CPU-offload rows are never
fitted on at all. Tables: single GPU full offload (per GPU x model x test), multi-GPU, offload;
each with median and 90th-percentile absolute error and the share of rows within the targets
(decode 20 %, prefill 35 %). `--rows` lists every row instead of grouping repeated tests; `--fit`
prints the constants fitted on all single-GPU rows (the `SpeedCalibration` defaults).
"""

from __future__ import annotations

import sys
from collections import defaultdict
from dataclasses import fields
from pathlib import Path

import numpy as np

from lander_tui.core.speed_eval import (
    MULTI,
    OFFLOAD,
    SINGLE,
    Prediction,
    cross_validate,
    fit,
    load_rows,
    prepare,
    summary,
)

TARGET = {"tg": 0.20, "pp": 0.35}


def _pct(x: float) -> str:
    return f"{x * 100:5.1f}%"


def _table(preds: list[Prediction], every_row: bool) -> list[str]:
    groups: dict[tuple[str, ...], list[Prediction]] = defaultdict(list)
    for p in preds:
        r = p.row
        n_dev = len(r.inputs.devices)
        gpu = f"{n_dev}x {r.gpu.name}" if n_dev > 1 else r.gpu.name
        key = (gpu, r.model, r.quant, r.label, "fa" if r.inputs.flash_attn else "", r.id if every_row else "")
        groups[key].append(p)
    lines = [f"{'GPU':36} {'model':15} {'quant':9} {'test':13} {'n':>2} {'measured':>9} {'predicted':>9} {'error':>7}"]
    for key in sorted(groups):
        ps = groups[key]
        meas = float(np.median([p.row.measured for p in ps]))
        pred = float(np.median([p.predicted for p in ps]))
        test = key[3] + (" fa" if key[4] else "")
        lines.append(f"{key[0][:36]:36} {key[1][:15]:15} {key[2][:9]:9} {test:13} {len(ps):>2} {meas:9.1f} {pred:9.1f} "
                     f"{(pred / meas - 1) * 100:+6.1f}%")
    return lines


def _summary_lines(title: str, preds: list[Prediction]) -> list[str]:
    out = [title]
    for test, name in (("tg", "decode "), ("pp", "prefill")):
        s = summary([p for p in preds if p.row.test == test])
        if not s["n"]:
            continue
        within = s["within20"] if test == "tg" else s["within35"]
        out.append(f"  {name}: {s['n']:4d} rows, {len({p.row.gpu.name for p in preds if p.row.test == test}):2d} GPUs; "
                   f"median |error| {_pct(s['median'])}, p90 {_pct(s['p90'])}; "
                   f"within {int(TARGET[test] * 100)}%: {_pct(within)}")
    return out


def main(argv: list[str]) -> int:
    every_row = "--rows" in argv
    show_fit = "--fit" in argv
    args = [a for a in argv if not a.startswith("--")]
    data_dir = Path(args[0]) if args else Path(__file__).resolve().parents[1] / "tests" / "data" / "speed"
    rows, skipped = load_rows(data_dir)
    single = [r for r in rows if r.kind == SINGLE]
    data = prepare(single)
    if show_fit:
        cal = fit(data)
        print("Constants fitted on all single-GPU full-offload rows:")
        for f in fields(cal):
            print(f"  {f.name:28} {getattr(cal, f.name):.4g}")
        print()
    preds = cross_validate(rows, data=data)
    print(f"Rows used: {len(rows)} (single {len(single)}, multi-GPU {sum(r.kind == MULTI for r in rows)}, "
          f"offload {sum(r.kind == OFFLOAD for r in rows)}); left out:")
    for why, n in sorted(skipped.items(), key=lambda x: -x[1]):
        print(f"  {n:4d}  {why}")
    print("\nEvery prediction uses constants fitted without the row's GPU (leave one GPU out).")
    for kind, title in ((SINGLE, "Single GPU, full offload"), (MULTI, "Multi-GPU (layer split; never fitted on)"),
                        (OFFLOAD, "CPU offload (-ngl, --n-cpu-moe, -ot; never fitted on)")):
        ps = [p for p in preds if p.row.kind == kind]
        print()
        print("\n".join(_summary_lines(f"== {title}", ps)))
        print("\n".join(_table(ps, every_row)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
