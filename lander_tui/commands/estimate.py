"""`lander-tui estimate MODEL ...`: the estimate as plain text (LLM-Lander's format) or JSON."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from lander_tui.core.errors import LanderError

if TYPE_CHECKING:
    from lander_tui.core.estimate import EstimateRequest
    from lander_tui.core.planning_memory import PlanningMemory


def add_parser(sub: argparse._SubParsersAction) -> None:
    from lander_tui.core.engines import DEFAULT_ENGINE, engine_names

    engines = " | ".join(engine_names())
    p = sub.add_parser("estimate", help="longest context that fits, per quant and KV-cache type")
    p.add_argument("model", nargs="?", help="catalog name, config.json path/folder, .gguf path, or ORG/NAME[:QUANT]")
    p.add_argument("--quant", "-q", action="append", default=[], metavar="Q",
                   help="weight format(s): Q4_K_M, Q8_0, BF16, FP8, AWQ, GPTQ-4bit, NF4 ... (repeat or comma-separate)")
    p.add_argument("--kv-cache", "-k", action="append", default=[], metavar="T",
                   help="KV-cache type(s): f16, q8_0, q4_0, fp8 ... (repeat or comma-separate)")
    p.add_argument("--backend", "-b", default=DEFAULT_ENGINE, help=f"inference engine: {engines}")
    mem = p.add_mutually_exclusive_group()
    mem.add_argument("--free-vram", metavar="MIB[,MIB...]", help="free GPU memory to plan for, MiB (one per GPU)")
    mem.add_argument("--total-vram", metavar="MIB[,MIB...]", help="whole, empty GPUs of this size, MiB")
    mem.add_argument("--gpu", metavar="N[,N...]", help="take GPU N's free memory now (nvidia-smi index; 0,1 for two)")
    mem.add_argument("--what-if", metavar="NAME", help='plan for a catalog GPU, e.g. "RTX 4090", "2x A100 80GB"')
    p.add_argument("--gpu-model", metavar="NAME",
                   help='the card behind --free-vram/--total-vram (or an unknown GPU), for the speed: "RTX 4090"')
    p.add_argument("--context", "-c", type=int, metavar="N", help="report memory at this context (default: at the max)")
    p.add_argument("--flash-attn", choices=["on", "off"], help="llama.cpp flash attention (default on)")
    p.add_argument("--parallel", "-np", type=int, metavar="N", help="parallel sequences / slots / requests")
    p.add_argument("--ubatch", type=int, default=512, metavar="N", help="llama.cpp -ub (default 512)")
    p.add_argument("--gpu-memory-utilization", type=float, default=0.9, metavar="F", help="vLLM (default 0.9)")
    p.add_argument("--max-num-batched-tokens", type=int, default=8192, metavar="N", help="vLLM (default 8192)")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="override a calibration constant, e.g. cuda_context_mib=450")
    p.add_argument("--tensor-split", metavar="A,B,...",
                   help="llama.cpp layer split across GPUs (default: by free memory)")
    p.add_argument("--launch", metavar="ENGINE",
                   help=f"print the command that runs the plan: {engines}")
    p.add_argument("--bench", action="store_true",
                   help="print the llama-bench commands that measure the plan's predicted speed")
    p.add_argument("--prefer", choices=["precision", "speed"], default="precision",
                   help="recommend the highest precision (default) or the fastest row that reaches the context")
    p.add_argument("--host-bandwidth", type=float, metavar="GB/S",
                   help="host RAM bandwidth for layers on the CPU (default: read from SMBIOS, else 76.8)")
    p.add_argument("--format", choices=["json", "md", "csv"], help="export the estimate (and plan) in this format")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--list-models", action="store_true", help="list the built-in catalog and exit")
    p.set_defaults(func=run)


def _split(values: list[str]) -> tuple[str, ...]:
    return tuple(v.strip() for raw in values for v in raw.split(",") if v.strip())


def _overrides(pairs: list[str]) -> dict[str, float]:
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise LanderError(f"--set takes NAME=NUMBER, got {pair!r}")
    return out


def _numbers(text: str, flag: str) -> list[float]:
    try:
        vals = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise LanderError(f"{flag} takes MiB numbers separated by commas, got {text!r}") from None
    if not vals or any(v <= 0 for v in vals):
        raise LanderError(f"{flag} must be a positive number of MiB")
    return vals


def planning_memory(args: argparse.Namespace) -> PlanningMemory:
    """The GPUs to plan on, from the memory flag (or the freest GPU now), and where they came from;
    `--gpu-model` names their card for the speed."""
    memory = _memory(args)
    card = getattr(args, "gpu_model", None)
    return memory.with_card(card) if card else memory


def _memory(args: argparse.Namespace) -> PlanningMemory:
    from lander_tui.core import planning_memory as pm

    if args.free_vram is not None:
        return pm.given(_numbers(str(args.free_vram), "--free-vram"))
    if args.total_vram is not None:
        return pm.whole_numbers(_numbers(str(args.total_vram), "--total-vram"))
    if args.what_if is not None:
        return pm.what_if(args.what_if)
    snapshot = _poll()
    if args.gpu is not None:
        parts = [p.strip() for p in str(args.gpu).split(",")]
        if not all(p.isdigit() for p in parts):
            raise LanderError(f"--gpu takes GPU indices like 0 or 0,1, got {args.gpu!r}")
        return pm.on_gpus(snapshot, [int(p) for p in parts])
    return pm.default_memory(snapshot)


def _poll() -> Any:
    from lander_tui.core.gpu import open_backend

    backend = open_backend()
    try:
        return backend.poll()
    finally:
        backend.close()


def build_request(args: argparse.Namespace, memory: PlanningMemory) -> EstimateRequest:
    from lander_tui.core.engines import EngineOptions
    from lander_tui.core.estimate import EstimateRequest
    from lander_tui.core.model_source import resolve_model

    split = tuple(_numbers(args.tensor_split, "--tensor-split")) if args.tensor_split else None
    if split and len(split) != len(memory.devices):
        raise LanderError(f"--tensor-split has {len(split)} shares for {len(memory.devices)} GPUs")
    opts = EngineOptions(
        flash_attn=None if args.flash_attn is None else args.flash_attn == "on",
        n_parallel=args.parallel,
        n_ubatch=args.ubatch,
        gpu_memory_utilization=args.gpu_memory_utilization,
        max_num_batched_tokens=args.max_num_batched_tokens,
        overrides=_overrides(args.set),
        tensor_split=split,
        host_bw_gbs=_host_bandwidth(getattr(args, "host_bandwidth", None)),
    )
    model = resolve_model(args.model)
    return EstimateRequest(model=model, engine=args.backend, quants=_split(args.quant),
                           kv_types=_split(args.kv_cache), devices=memory.devices, context=args.context,
                           options=opts, prefer=getattr(args, "prefer", "precision"))


def _host_bandwidth(value: float | None) -> float | None:
    if value is not None and value <= 0:
        raise LanderError("--host-bandwidth must be a positive number of GB/s, e.g. 83.2 for dual-channel DDR5-5200")
    return value


def run(args: argparse.Namespace) -> int:
    from lander_tui.core.engines import get_engine
    from lander_tui.core.estimate import plan_row, run_estimate
    from lander_tui.core.report import format_plain, format_plan

    if args.list_models:
        from lander_tui.core.catalog import catalog_models
        from lander_tui.core.tensors import parameter_count

        for spec in catalog_models():
            params = parameter_count(spec) / 1e9
            print(f"{spec.name:34} {params:8.2f}B  ctx {spec.max_context:>7}  {spec.hf_repo or ''}")
        return 0
    if not args.model:
        raise LanderError("estimate needs a MODEL (try `lander-tui estimate llama-3.1-8b`, or --list-models)")
    memory = planning_memory(args)
    req = build_request(args, memory)
    est = run_estimate(req)
    data = est.as_json()
    data["memory_source"] = memory.source
    plan = None
    several = len(memory.devices) > 1
    plain = not (args.json or args.format)  # prints the plan when it splits or offloads, with its speed
    if several or args.launch or args.format or args.bench or plain:
        plan = plan_row(req, est)
        if plan is not None:
            data["plan"] = plan.as_json()
    if args.bench:
        if plan is None:
            raise LanderError("nothing fits, so there is no plan to benchmark")
        data["bench"] = get_engine(req.engine).bench_command(req.model.spec.hf_repo or args.model, plan,
                                                             req.options)
    if args.launch:
        if plan is None:
            raise LanderError("nothing fits, so there is no plan to launch")
        data["launch"] = get_engine(args.launch).launch_command(req.model.spec.hf_repo or args.model, plan,
                                                                req.options)
    if args.format:
        from lander_tui.core.export import export

        print(export(data, args.format), end="")
    elif args.json:
        json.dump(data, sys.stdout, indent=2)
        print()
    else:
        print(format_plain(est))
        print(f"memory: {memory.source}")
        if plan is not None and (several or not plan.fully_offloaded):
            print(format_plan(plan))
        if args.launch:
            print(data["launch"])
        if args.bench:
            print(bench_text(data["bench"]))
    return 0


def bench_text(commands: str) -> str:
    """The benchmark commands under a line saying what they are for."""
    return "# measure the speed above on this machine:\n" + commands
