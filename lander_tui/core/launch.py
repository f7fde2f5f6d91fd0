"""Turn a plan into the exact command line that runs it, for each engine, and export plans.

Flags follow each engine's own CLI: llama-server (`-m -c -ngl -ctk -ctv -fa -np --tensor-split
--n-cpu-moe`), Ollama (`OLLAMA_CONTEXT_LENGTH`, `OLLAMA_KV_CACHE_TYPE`, `OLLAMA_FLASH_ATTENTION`, or a
Modelfile with `PARAMETER num_ctx`), `vllm serve` (`--max-model-len --gpu-memory-utilization
--kv-cache-dtype --tensor-parallel-size --quantization`), and a Transformers snippet.
"""

from __future__ import annotations

import csv
import io
import json
import shlex
from typing import Any

from lander_tui.core.errors import LanderError
from lander_tui.core.multi_gpu import Plan

LAUNCH_ENGINES = ("llama.cpp", "ollama", "vllm", "transformers")


def _gguf_name(model: str, quant: str) -> str:
    base = model.split("/")[-1]
    return base if base.endswith(".gguf") else f"{base}-{quant}.gguf"


def llama_server_cmd(model: str, plan: Plan, flash_attn: bool = True, n_parallel: int = 1) -> str:
    args = ["llama-server", "-m", _gguf_name(model, plan.quant), "-c", str(plan.context),
            "-ngl", str(plan.gpu_layers if plan.gpu_layers <= plan.n_layers else 999),
            "-ctk", plan.kv_cache, "-ctv", plan.kv_cache, "-fa", "on" if flash_attn else "off"]
    # always explicit: llama-server's automatic -np is 4, which grows sliding-window and recurrent caches
    args += ["-np", str(max(1, n_parallel))]
    if len(plan.devices) > 1:
        args += ["--tensor-split", ",".join(f"{x:g}" for x in _ratios(plan.tensor_split))]
    if plan.cpu_moe:
        args += ["--n-cpu-moe", str(plan.cpu_moe)]
    args += ["-fit", "off"]  # the plan is already fitted; keep llama.cpp from changing it
    return shlex.join(args)


def _ratios(split: tuple[float, ...]) -> list[float]:
    total = sum(split) or 1.0
    return [round(x / total, 3) for x in split]


def ollama_cmd(model: str, plan: Plan, flash_attn: bool = True) -> str:
    env = [f"OLLAMA_CONTEXT_LENGTH={plan.context}", f"OLLAMA_KV_CACHE_TYPE={plan.kv_cache}",
           f"OLLAMA_FLASH_ATTENTION={1 if flash_attn else 0}"]
    tag = model if ":" in model else f"{model}:{plan.quant}"
    src = f"hf.co/{tag}" if "/" in model else tag
    modelfile = f"FROM {src}\nPARAMETER num_ctx {plan.context}\n"
    if plan.gpu_layers <= plan.n_layers:
        modelfile += f"PARAMETER num_gpu {plan.gpu_layers}\n"
    return (" ".join(env) + " ollama serve\n# or per model, in a Modelfile:\n"
            + "".join(f"#   {line}\n" for line in modelfile.splitlines())).rstrip("\n")


_VLLM_QUANT = {"AWQ": "awq", "GPTQ": "gptq", "FP8": "fp8", "NF4": "bitsandbytes"}


def vllm_cmd(model: str, plan: Plan, gpu_memory_utilization: float = 0.9) -> str:
    args = ["vllm", "serve", model, "--max-model-len", str(plan.context),
            "--gpu-memory-utilization", f"{gpu_memory_utilization:g}"]
    if plan.kv_cache not in ("auto", "bf16", "f16"):
        args += ["--kv-cache-dtype", plan.kv_cache]
    if plan.tensor_parallel > 1:
        args += ["--tensor-parallel-size", str(plan.tensor_parallel)]
    q = _VLLM_QUANT.get(plan.quant.split("-")[0].upper())
    if q:
        args += ["--quantization", q]
    return shlex.join(args)


def transformers_snippet(model: str, plan: Plan) -> str:
    quant = plan.quant.upper()
    lines = ["import torch", "from transformers import AutoModelForCausalLM, AutoTokenizer"]
    kwargs = ['device_map="auto"', "dtype=torch.bfloat16"]
    if quant == "NF4":
        lines[-1] += ", BitsAndBytesConfig"
        kwargs.append('quantization_config=BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", '
                      "bnb_4bit_compute_dtype=torch.bfloat16)")
    lines += [
        f'model = AutoModelForCausalLM.from_pretrained("{model}", {", ".join(kwargs)})',
        f'tok = AutoTokenizer.from_pretrained("{model}")',
        f"# prompt + new tokens must stay within {plan.context} tokens",
        'ids = tok("Hello", return_tensors="pt").to(model.device)',
        f"out = model.generate(**ids, max_new_tokens=min(512, {plan.context} - ids.input_ids.shape[1]))",
    ]
    return "\n".join(lines)


def launch_command(engine: str, model: str, plan: Plan, *, flash_attn: bool = True, n_parallel: int = 1,
                   gpu_memory_utilization: float = 0.9) -> str:
    key = engine.lower().replace("llamacpp", "llama.cpp")
    if key in ("llama.cpp", "llama-server"):
        return llama_server_cmd(model, plan, flash_attn, n_parallel)
    if key == "ollama":
        return ollama_cmd(model, plan, flash_attn)
    if key == "vllm":
        return vllm_cmd(model, plan, gpu_memory_utilization)
    if key in ("transformers", "hf"):
        return transformers_snippet(model, plan)
    raise LanderError(f"--launch takes one of {', '.join(LAUNCH_ENGINES)}, not {engine!r}")


# --- export ------------------------------------------------------------------------------------

_COLUMNS = ("quant", "kv_cache", "max_context", "model_max_context", "context", "weights_mib", "kv_cache_mib",
            "compute_mib", "overhead_mib", "total_mib", "fits")


def export(data: dict[str, Any], fmt: str) -> str:
    """An estimate's JSON (`Estimate.as_json()`, optionally with "plan"/"launch") as json, md or csv."""
    fmt = fmt.lower()
    rows = data.get("results", [])
    if fmt == "json":
        return json.dumps(data, indent=2)
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["model", "backend", "free_vram_mib", *_COLUMNS])
        for r in rows:
            head = [data.get("model"), data.get("backend"), data.get("free_vram_mib")]
            w.writerow([*head, *[r.get(c) for c in _COLUMNS]])
        return buf.getvalue()
    if fmt in ("md", "markdown"):
        rec = data.get("recommendation") or {}
        out = [f"# {data.get('model')} on {data.get('backend')} ({data.get('free_vram_mib')} MiB free)", "",
               "| " + " | ".join(_COLUMNS) + " |", "|" + "---|" * len(_COLUMNS)]
        out += ["| " + " | ".join(str(r.get(c)) for c in _COLUMNS) + " |" for r in rows]
        out += ["", f"**Recommended:** {rec.get('quant')} with KV {rec.get('kv_cache')} — {rec.get('reason')}"]
        if data.get("plan"):
            out += ["", *_plan_md(data["plan"])]
        if data.get("launch"):
            out += ["", "```sh", data["launch"], "```"]
        return "\n".join(out) + "\n"
    raise LanderError(f"--format takes json, md or csv, not {fmt!r}")


_DEVICE_COLUMNS = ("weights_mib", "kv_cache_mib", "compute_mib", "overhead_mib", "total_mib", "headroom_mib", "fits")


def _plan_md(plan: dict[str, Any]) -> list[str]:
    """`Plan.as_json()` as Markdown: the headline, one table row per GPU, host RAM and notes."""
    out = [f"## Plan: {plan.get('quant')} with KV {plan.get('kv_cache')} at {plan.get('context')} tokens", "",
           f"{plan.get('gpu_layers')}/{(plan.get('n_layers') or 0) + 1} layers on GPU ({plan.get('cpu_gpu')}), "
           f"fits: {plan.get('fits')}", "",
           "| device | layers | " + " | ".join(_DEVICE_COLUMNS) + " |", "|" + "---|" * (len(_DEVICE_COLUMNS) + 2)]
    for d in plan.get("devices", []):
        layers = d.get("layers")
        where = f"{layers[0]}-{layers[1]}" if layers else "all (TP rank)"
        where += " +output" if d.get("has_output") else ""
        out.append(f"| {d.get('name')} | {where} | " + " | ".join(str(d.get(c)) for c in _DEVICE_COLUMNS) + " |")
    if plan.get("host_mib"):
        out += ["", f"Host RAM needed: {plan['host_mib']} MiB"]
    if plan.get("notes"):
        out += ["", *[f"- note: {n}" for n in plan["notes"]]]
    return out
