"""`lander-tui estimate MODEL ...`: the estimate as plain text (LLM-Lander's format) or JSON."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from lander_tui.core.errors import LanderError

DEFAULT_FREE_MIB = 24 * 1024 - 500.0  # a 24 GB card with the desktop holding a little


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("estimate", help="longest context that fits, per quant and KV-cache type")
    p.add_argument("model", nargs="?", help="catalog name, config.json path/folder, .gguf path, or ORG/NAME[:QUANT]")
    p.add_argument("--quant", "-q", action="append", default=[], metavar="Q",
                   help="weight format(s): Q4_K_M, Q8_0, BF16, FP8, AWQ, GPTQ-4bit, NF4 ... (repeat or comma-separate)")
    p.add_argument("--kv-cache", "-k", action="append", default=[], metavar="T",
                   help="KV-cache type(s): f16, q8_0, q4_0, fp8 ... (repeat or comma-separate)")
    p.add_argument("--backend", "-b", default="llama.cpp", help="llama.cpp | ollama | vllm | transformers")
    mem = p.add_mutually_exclusive_group()
    mem.add_argument("--free-vram", metavar="MIB[,MIB...]", help="free GPU memory to plan for, MiB (one per GPU)")
    mem.add_argument("--total-vram", metavar="MIB[,MIB...]", help="whole, empty GPUs of this size, MiB")
    mem.add_argument("--gpu", metavar="N[,N...]", help="take GPU N's free memory now (nvidia-smi index; 0,1 for two)")
    mem.add_argument("--what-if", metavar="NAME", help='plan for a catalog GPU, e.g. "RTX 4090", "2x A100 80GB"')
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
                   help="print the command that runs the plan: llama.cpp|ollama|vllm|transformers")
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


def devices_from_args(args: argparse.Namespace) -> tuple[list[Any], str]:
    """The GPUs to plan for (Device list) and where their numbers came from."""
    from lander_tui.core.multi_gpu import Device

    if args.free_vram is not None:
        return [Device(f"GPU{i}", v) for i, v in enumerate(_numbers(str(args.free_vram), "--free-vram"))], "given"
    if args.total_vram is not None:
        vals = _numbers(str(args.total_vram), "--total-vram")
        return [Device(f"GPU{i}", v, v) for i, v in enumerate(vals)], "whole GPU"
    if args.gpu is not None:
        from lander_tui.core.gpu import free_mib_of_gpu

        out = []
        for part in str(args.gpu).split(","):
            if not part.strip().isdigit():
                raise LanderError(f"--gpu takes GPU indices like 0 or 0,1, got {args.gpu!r}")
            name, free, total = free_mib_of_gpu(int(part))
            out.append(Device(f"{part.strip()}: {name}", free, total))
        return out, "free now"
    if args.what_if:
        from lander_tui.core.gpu import what_if

        w = what_if(args.what_if)
        return [Device(g.name, g.usable_mib, g.total_mib) for g in w.gpus], f"what-if {w.label}"
    return _default_devices()


def _default_devices() -> tuple[list[Any], str]:
    """No memory flag: the GPU with the most free memory now, else a 24 GB card (and say which)."""
    from lander_tui.core.gpu import open_backend
    from lander_tui.core.multi_gpu import Device

    backend = open_backend()
    try:
        snap = backend.poll()
    finally:
        backend.close()
    live = [g for g in snap.gpus if not g.lost and g.free_mib is not None] if snap.ok else []
    if live:
        g = max(live, key=lambda g: g.free_mib or 0.0)
        return [Device(f"{g.index}: {g.name}", float(g.free_mib or 0.0), g.total_mib)], \
            f"GPU {g.index} ({g.name}) free now"
    return [Device("24 GB card", DEFAULT_FREE_MIB)], "no GPU seen: a 24 GB card (use --free-vram, --gpu or --what-if)"


def build_request(args: argparse.Namespace, devices: list[Any]) -> Any:
    from lander_tui.core.engines import EngineOptions
    from lander_tui.core.estimate import EstimateRequest
    from lander_tui.core.model_source import resolve_model

    split = tuple(_numbers(args.tensor_split, "--tensor-split")) if args.tensor_split else None
    if split and len(split) != len(devices):
        raise LanderError(f"--tensor-split has {len(split)} shares for {len(devices)} GPUs")
    opts = EngineOptions(
        flash_attn=None if args.flash_attn is None else args.flash_attn == "on",
        n_parallel=args.parallel,
        n_ubatch=args.ubatch,
        gpu_memory_utilization=args.gpu_memory_utilization,
        max_num_batched_tokens=args.max_num_batched_tokens,
        overrides=_overrides(args.set),
        tensor_split=split,
    )
    model = resolve_model(args.model)
    free = sum(d.free_mib for d in devices)
    total = sum(d.total_mib for d in devices) if all(d.total_mib for d in devices) else None
    return EstimateRequest(model=model, backend=args.backend, quants=_split(args.quant),
                           kv_types=_split(args.kv_cache), free_mib=free, total_mib=total, context=args.context,
                           options=opts, devices=tuple(devices) if len(devices) > 1 else ())


def run(args: argparse.Namespace) -> int:
    from lander_tui.core.estimate import run_estimate
    from lander_tui.core.plan_view import format_plain, format_plan, plan_for_estimate

    if args.list_models:
        from lander_tui.core.catalog import catalog_models

        for spec in catalog_models():
            print(f"{spec.name:34} {spec.params / 1e9:8.2f}B  ctx {spec.max_context:>7}  {spec.hf_repo or ''}")
        return 0
    if not args.model:
        raise LanderError("estimate needs a MODEL (try `lander-tui estimate llama-3.1-8b`, or --list-models)")
    devices, src = devices_from_args(args)
    req = build_request(args, devices)
    est = run_estimate(req)
    data = est.as_json()
    data["memory_source"] = src
    plan = None
    if len(devices) > 1 or args.launch or args.format:
        plan = plan_for_estimate(req, est, devices)
        if plan is not None:
            data["plan"] = plan.as_json()
    if args.launch:
        from lander_tui.core.launch import launch_command

        if plan is None:
            raise LanderError("nothing fits, so there is no plan to launch")
        data["launch"] = launch_command(args.launch, req.model.spec.hf_repo or args.model, plan,
                                        flash_attn=args.flash_attn != "off", n_parallel=args.parallel or 1,
                                        gpu_memory_utilization=args.gpu_memory_utilization)
    if args.format:
        from lander_tui.core.launch import export

        print(export(data, args.format), end="")
    elif args.json:
        json.dump(data, sys.stdout, indent=2)
        print()
    else:
        print(format_plain(est))
        print(f"memory: {src}")
        if plan is not None and (len(devices) > 1 or not plan.fully_offloaded):
            print(format_plan(plan))
        if args.launch:
            print(data["launch"])
    return 0
