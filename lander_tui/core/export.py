"""An estimate (and its plan and command) as JSON, CSV or Markdown, for files and pipes."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from lander_tui.core.errors import LanderError
from lander_tui.core.memory import EXTRAS, PARTS
from lander_tui.core.speed import SPEED_KEYS

_HEAD = ("quant", "kv_cache", "max_context", "model_max_context", "context")
COLUMNS = (*_HEAD, *(p.json_key for p in PARTS), "total_mib", "fits", *SPEED_KEYS)
#: CSV rows also say what the extras part holds (Markdown keeps to the table above and names them in the plan).
CSV_COLUMNS = (*COLUMNS, *(e.json_key for e in EXTRAS))
DEVICE_COLUMNS = (*(p.json_key for p in PARTS), "total_mib", "headroom_mib", "fits")


def export(data: dict[str, Any], fmt: str) -> str:
    """An estimate's JSON (`Estimate.as_json()`, optionally with "plan"/"launch") as json, md or csv."""
    fmt = fmt.lower()
    rows = data.get("results", [])
    if fmt == "json":
        return json.dumps(data, indent=2)
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["model", "backend", "free_vram_mib", *CSV_COLUMNS])
        for r in rows:
            head = [data.get("model"), data.get("backend"), data.get("free_vram_mib")]
            w.writerow([*head, *[r.get(c) for c in CSV_COLUMNS]])
        return buf.getvalue()
    if fmt in ("md", "markdown"):
        rec = data.get("recommendation") or {}
        out = [f"# {data.get('model')} on {data.get('backend')} ({data.get('free_vram_mib')} MiB free)", "",
               "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        out += ["| " + " | ".join(str(r.get(c)) for c in COLUMNS) + " |" for r in rows]
        out += ["", f"**Recommended:** {rec.get('quant')} with KV {rec.get('kv_cache')} — {rec.get('reason')}"]
        if data.get("plan"):
            out += ["", *_plan_md(data["plan"])]
        if data.get("launch"):
            out += ["", "```sh", data["launch"], "```"]
        if data.get("bench"):
            out += ["", "Measure the speed on your machine:", "", "```sh", data["bench"], "```"]
        return "\n".join(out) + "\n"
    raise LanderError(f"--format takes json, md or csv, not {fmt!r}")


def _plan_md(plan: dict[str, Any]) -> list[str]:
    """`Plan.as_json()` as Markdown: the headline, one table row per GPU, host RAM and notes."""
    out = [f"## Plan: {plan.get('quant')} with KV {plan.get('kv_cache')} at {plan.get('context')} tokens", "",
           f"{plan.get('gpu_layers')}/{(plan.get('n_layers') or 0) + 1} layers on GPU ({plan.get('cpu_gpu')}), "
           f"fits: {plan.get('fits')}", "",
           "| device | layers | " + " | ".join(DEVICE_COLUMNS) + " |", "|" + "---|" * (len(DEVICE_COLUMNS) + 2)]
    for d in plan.get("devices", []):
        layers = d.get("layers")
        if layers:
            where = f"{layers[0]}-{layers[1]}"
        elif (plan.get("tensor_parallel") or 1) > 1:
            where = "all (TP rank)"
        else:
            where = "all" if plan.get("gpu_layers", 0) > (plan.get("n_layers") or 0) else "none"
        where += " +output" if d.get("has_output") else ""
        out.append(f"| {d.get('name')} | {where} | " + " | ".join(str(d.get(c)) for c in DEVICE_COLUMNS) + " |")
    if plan.get("host_mib"):
        out += ["", f"Host RAM needed: {plan['host_mib']} MiB"]
    if plan.get("decode_tps") is not None:
        out += ["", f"Speed at {plan.get('speed_context')} tokens: decode {plan['decode_tps']} tok/s "
                f"({plan.get('speed_bound')}), prefill {plan.get('prefill_tps')} tok/s, first token after "
                f"{plan.get('ttft_s')} s"]
        if plan.get("offload_step_cost_tps") is not None:
            out.append(f"One more step on the CPU ({plan.get('offload_step')}): decode "
                       f"-{plan['offload_step_cost_tps']} tok/s")
    if plan.get("notes"):
        out += ["", *[f"- note: {n}" for n in plan["notes"]]]
    return out
