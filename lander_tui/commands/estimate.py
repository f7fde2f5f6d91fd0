"""`lander-tui estimate MODEL ...`: the estimate as plain text (LLM-Lander's format) or JSON."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from lander_tui.core.errors import LanderError

if TYPE_CHECKING:
    from lander_tui.core.engines import EngineOptions
    from lander_tui.core.estimate import EstimateRequest
    from lander_tui.core.planning_memory import PlanningMemory


def add_parser(sub: argparse._SubParsersAction) -> None:
    from lander_tui.core.engines import DEFAULT_ENGINE, engine_names
    from lander_tui.core.planning_memory import DEFAULT_MARGIN_MIB

    engines = " | ".join(engine_names())
    p = sub.add_parser("estimate", help="longest context that fits, per quant and KV-cache type")
    p.add_argument("model", nargs="?", help="catalog name, config.json path/folder, .gguf path, or ORG/NAME[:QUANT]")
    p.add_argument("--quant", "-q", action="append", default=[], metavar="Q",
                   help="weight format(s): Q4_K_M, Q8_0, BF16, FP8, AWQ, GPTQ-4bit, NF4 ... (repeat or comma-separate)")
    p.add_argument("--kv-cache", "-k", action="append", default=[], metavar="T",
                   help="KV-cache type(s): f16, q8_0, q4_0, fp8 ... (repeat or comma-separate)")
    p.add_argument("--backend", "-b", metavar="ENGINE",
                   help=f"inference engine: {engines} (default {DEFAULT_ENGINE}, or the --launch engine)")
    mem = p.add_mutually_exclusive_group()
    mem.add_argument("--free-vram", metavar="MIB[,MIB...]", help="free GPU memory to plan for, MiB (one per GPU)")
    mem.add_argument("--total-vram", metavar="MIB[,MIB...]", help="whole, empty GPUs of this size, MiB")
    mem.add_argument("--gpu", metavar="N[,N...]", help="take GPU N's free memory now (nvidia-smi index; 0,1 for two)")
    mem.add_argument("--what-if", metavar="NAME", help='plan for a catalog GPU, e.g. "RTX 4090", "2x A100 80GB"')
    p.add_argument("--gpu-model", metavar="NAME",
                   help='the card behind --free-vram/--total-vram (or an unknown GPU), for the speed: "RTX 4090"')
    p.add_argument("--margin", metavar="MIB", default=f"{DEFAULT_MARGIN_MIB:.0f}",
                   help="with --gpu or no memory flag: keep this much of the free memory spare "
                        f"(default {DEFAULT_MARGIN_MIB:.0f}, like the dashboard; 1.5G works)")
    p.add_argument("--context", "-c", metavar="N",
                   help="report memory at this context: 32768, 32k, 1M (default: each row at its maximum)")
    add_knob_flags(p)
    p.add_argument("--tensor-split", metavar="A,B,...",
                   help="llama.cpp layer split across GPUs, as shares (3,1); default: by free memory")
    p.add_argument("--launch", metavar="ENGINE",
                   help=f"print the command that runs the plan: {engines} (plans with that engine)")
    p.add_argument("--bench", action="store_true",
                   help="print the llama-bench commands that measure the plan's predicted speed")
    p.add_argument("--prefer", choices=["precision", "speed"], default="precision",
                   help="recommend the highest precision (default) or the fastest row that reaches the context")
    p.add_argument("--host-bandwidth", type=float, metavar="GB/S",
                   help="host RAM bandwidth for layers on the CPU (default: read from SMBIOS, else 76.8)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--format", choices=["json", "md", "csv"], help="export the estimate (and plan) in this format")
    out.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--list-models", action="store_true", help="list the built-in catalog and exit (--json: as JSON)")
    p.set_defaults(func=run)


def add_knob_flags(p: argparse.ArgumentParser) -> None:
    """The engine knobs `options_of` reads, for every command that builds `EngineOptions` with it
    (`estimate`, `fit`): one list, so a new knob reaches both."""
    p.add_argument("--flash-attn", choices=["auto", "on", "off"], help="llama.cpp flash attention (default auto: on)")
    p.add_argument("--parallel", "-np", type=int, metavar="N",
                   help="llama.cpp: slots sharing the context (-np); vLLM/SGLang: requests of the full context")
    p.add_argument("--ubatch", type=int, metavar="N", help="llama.cpp -ub (default 512)")
    p.add_argument("--front-end", choices=["llama-server", "llama-cli", "bindings"],
                   help="llama.cpp program whose defaults apply: llama-server (default, what --launch runs), "
                        "llama-cli, or bindings (the C API: llama-cpp-python ...; full-size SWA cache)")
    p.add_argument("--swa-full", action="store_true", help="llama.cpp: a full-size sliding-window cache (--swa-full)")
    mm = p.add_mutually_exclusive_group()
    mm.add_argument("--mmproj", nargs="?", const=True, default=None, metavar="FILE",
                    help="load the vision projector (the default when the model has one); FILE: its mmproj .gguf")
    mm.add_argument("--no-mmproj", action="store_true", help="leave a multimodal model's vision projector out")
    p.add_argument("--draft", metavar="MODEL",
                   help="speculative decoding with a draft MODEL (catalog name, config, .gguf, ORG/NAME[:QUANT]), "
                        "or `mtp` for the model's own multi-token-prediction layers")
    p.add_argument("--draft-tokens", type=int, metavar="N",
                   help="tokens drafted per step (default 3, llama.cpp's --spec-draft-n-max)")
    p.add_argument("--lora", metavar="RANK[xN]|FILE",
                   help="LoRA adapters: 16 (one of rank 16), 64x4 (four of rank 64), or an adapter .gguf")
    p.add_argument("--gpu-memory-utilization", type=float, metavar="F", help="vLLM (default: vLLM's own, 0.92)")
    p.add_argument("--max-num-batched-tokens", type=int, metavar="N",
                   help="vLLM (default: vLLM's for the GPU, 8192 on 70 GiB+ cards but A100, else 2048)")
    p.add_argument("--max-num-seqs", type=int, metavar="N",
                   help="vLLM (default: vLLM's for the GPU, 1024 on 70 GiB+ cards but A100, else 256)")
    p.add_argument("--enforce-eager", action="store_true", help="vLLM: no CUDA graphs (their memory goes to KV)")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="override a calibration constant, e.g. cuda_context_mib=450")


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


def _shares(text: str, n_gpus: int) -> tuple[float, ...]:
    """`--tensor-split 3,1`: one share per GPU, as llama.cpp takes them (0 leaves a GPU out)."""
    try:
        vals = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        vals = ()
    if not vals or any(v < 0 for v in vals) or not any(vals):
        raise LanderError(f"--tensor-split takes shares like 3,1 (one per GPU, at least one above 0), got {text!r}")
    if len(vals) != n_gpus:
        raise LanderError(f"--tensor-split has {len(vals)} shares for {n_gpus} GPUs")
    return vals


def engine_name(args: argparse.Namespace) -> str:
    """--launch ENGINE plans with that engine (its numbers and its command agree); a different
    --backend beside it would print one engine's command with another's numbers, so it is refused."""
    from lander_tui.core.engines import DEFAULT_ENGINE, get_engine

    if args.launch and args.backend and get_engine(args.launch) is not get_engine(args.backend):
        raise LanderError(f"--launch {args.launch} plans with {get_engine(args.launch).label}'s rules; drop "
                          f"--backend {args.backend} or make both the same engine")
    return get_engine(args.launch or args.backend or DEFAULT_ENGINE).name


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
    snapshot = _poll(bool(getattr(args, "demo", False)))
    margin = _margin(args.margin)
    if args.gpu is not None:
        parts = [p.strip() for p in str(args.gpu).split(",")]
        if not all(p.isdigit() for p in parts):
            raise LanderError(f"--gpu takes GPU indices like 0 or 0,1, got {args.gpu!r}")
        return pm.on_gpus(snapshot, [int(p) for p in parts], "free", margin)
    return pm.default_memory(snapshot, margin)


def _margin(text: str) -> float:
    from lander_tui.core.parsing import parse_mib

    try:
        return parse_mib(str(text))
    except ValueError as err:
        raise LanderError(f"--margin takes {err}, got {text!r}") from None


def _poll(demo: bool) -> Any:
    from lander_tui.core.gpu import open_backend

    backend = open_backend(demo=demo)
    try:
        return backend.poll()
    finally:
        backend.close()


#: EngineOptions fields the flags set, by flag (for "this engine ignores --x" warnings).
_OPTION_FLAGS = {"flash_attn": "--flash-attn", "n_parallel": "--parallel", "n_ubatch": "--ubatch",
                 "front_end": "--front-end", "swa_full": "--swa-full", "mmproj": "--mmproj/--no-mmproj",
                 "speculative": "--draft", "lora": "--lora",
                 "gpu_memory_utilization": "--gpu-memory-utilization",
                 "max_num_batched_tokens": "--max-num-batched-tokens", "max_num_seqs": "--max-num-seqs",
                 "enforce_eager": "--enforce-eager", "tensor_split": "--tensor-split"}


def options_of(args: argparse.Namespace, n_gpus: int) -> tuple[EngineOptions, list[str]]:
    """The engine options the flags give, and a warning for each flag this engine does not read."""
    from lander_tui.core.engines import EngineOptions, get_engine

    given: dict[str, Any] = {
        "flash_attn": None if args.flash_attn in (None, "auto") else args.flash_attn == "on",
        "n_parallel": args.parallel,
        "n_ubatch": args.ubatch,
        "gpu_memory_utilization": args.gpu_memory_utilization,
        "max_num_batched_tokens": args.max_num_batched_tokens,
        "max_num_seqs": args.max_num_seqs,
        "enforce_eager": True if args.enforce_eager else None,
        "front_end": args.front_end,
        "swa_full": True if args.swa_full else None,
        "tensor_split": _shares(args.tensor_split, n_gpus) if args.tensor_split else None,
        "mmproj": False if getattr(args, "no_mmproj", False) else (True if getattr(args, "mmproj", None) else None),
        "speculative": _speculative(args),
        "lora": _lora(args),
    }
    given = {k: v for k, v in given.items() if v is not None}
    opts = EngineOptions(**given, overrides=_overrides(args.set),
                         host_bw_gbs=_host_bandwidth(getattr(args, "host_bandwidth", None)))
    engine = get_engine(engine_name(args))
    warnings = [f"{_OPTION_FLAGS[k]} does not change {engine.label}'s numbers; {engine.label} ignores it"
                for k in given if k not in engine.options_read]
    if opts.n_ubatch > opts.n_batch and "n_ubatch" in engine.options_read:
        warnings.append(f"--ubatch {opts.n_ubatch} is more than the batch ({opts.n_batch}); llama.cpp uses "
                        f"{opts.n_batch}")
    return opts, warnings


def options_and_context(args: argparse.Namespace, n_gpus: int) -> tuple[EngineOptions, int | None]:
    """The engine options (each flag the engine ignores said on stderr) and `--context` in tokens, as
    every command that takes estimate's knobs reads them."""
    from lander_tui.core.parsing import parse_tokens

    opts, warnings = options_of(args, n_gpus)
    for w in warnings:
        print(f"lander-tui: warning: {w}", file=sys.stderr)
    try:
        context = parse_tokens(str(args.context)) if args.context is not None else None
    except ValueError as err:
        raise LanderError(f"--context takes {err}, got {args.context!r}") from None
    return opts, context


def _speculative(args: argparse.Namespace) -> Any:
    """`--draft MODEL|mtp` and `--draft-tokens N` as the engines take them (None: no speculative decoding)."""
    from lander_tui.core.extras import DEFAULT_DRAFT_TOKENS, Speculative

    draft = getattr(args, "draft", None)
    tokens = getattr(args, "draft_tokens", None)
    if not draft:
        if tokens is not None:
            raise LanderError("--draft-tokens needs --draft MODEL (or --draft mtp)")
        return None
    n = DEFAULT_DRAFT_TOKENS if tokens is None else tokens
    if draft.strip().lower() == "mtp":
        return Speculative(mtp=True, tokens=n, ref="mtp")
    from lander_tui.core.model_source import resolve_model

    return Speculative(resolve_model(draft), tokens=n, ref=draft.strip())


def _lora(args: argparse.Namespace) -> Any:
    from lander_tui.core.extras import parse_lora

    text = getattr(args, "lora", None)
    return parse_lora(text) if text else None


def build_request(args: argparse.Namespace, memory: PlanningMemory) -> EstimateRequest:
    from lander_tui.core.estimate import EstimateRequest
    from lander_tui.core.model_source import resolve_model

    opts, context = options_and_context(args, len(memory.devices))
    model = resolve_model(args.model)
    if isinstance(getattr(args, "mmproj", None), str):
        from dataclasses import replace

        from lander_tui.core.extras import projector_from_file

        model = replace(model, projector=projector_from_file(args.mmproj))
    return EstimateRequest(model=model, engine=engine_name(args), quants=_split(args.quant),
                           kv_types=_split(args.kv_cache), devices=memory.devices, context=context, options=opts,
                           prefer=getattr(args, "prefer", "precision"))


def _host_bandwidth(value: float | None) -> float | None:
    if value is not None and value <= 0:
        raise LanderError("--host-bandwidth must be a positive number of GB/s, e.g. 83.2 for dual-channel DDR5-5200")
    return value


def run(args: argparse.Namespace) -> int:
    from lander_tui.core.engines import get_engine
    from lander_tui.core.estimate import plan_row, run_estimate
    from lander_tui.core.report import format_plain, format_plan, host_available_mib, loads_with_cpu_part

    if args.list_models:
        return _list_models(args.json)
    if not args.model:
        raise LanderError("estimate needs a MODEL (try `lander-tui estimate llama-3.1-8b`, or --list-models)")
    engine = get_engine(engine_name(args))
    memory = planning_memory(args)
    notes = []
    if len(memory.devices) > 1 and not engine.splits_across_gpus:
        # the dashboard's rule too: an engine that spreads layers itself is planned on the summed memory
        notes.append(f"{len(memory.devices)} GPUs: {engine.label} spreads the layers with device_map='auto'; "
                     "planned on their summed memory")
        memory = memory.merged()
    req = build_request(args, memory)
    est = run_estimate(req)
    data = est.as_json()
    data["notes"] = [*data["notes"], *notes]
    data["memory_source"] = memory.source
    from lander_tui.core.extras import extras_json

    o = req.options
    data["extras"] = extras_json(req.model, o.mmproj, o.speculative, o.lora)
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
        data["bench"] = engine.bench_command(req.model, plan, req.options)
    if args.launch:
        if plan is None:
            raise LanderError(f"{est.recommendation.reason}, so there is no command to print", exit_code=1)
        data["launch"] = engine.command(req.model, plan, req.options)
    host_avail = host_available_mib() if plan is not None and plan.host_mib else 0.0
    # a plan that loads with part of the model on the CPU is an answer (exit 0, with or without --launch)
    offload_answer = plan is not None and loads_with_cpu_part(plan, host_avail)
    if args.format:
        from lander_tui.core.export import export

        print(export(data, args.format), end="")
    elif args.json:
        json.dump(data, sys.stdout, indent=2)
        print()
    else:
        print(format_plain(est, notes))
        print(f"memory: {memory.source}")
        if plan is not None and (several or not plan.fully_offloaded or plan.memory.extras):
            if est.recommendation.quant is None and offload_answer:
                print(f"nothing fits on the GPU alone; this plan loads with {plan.cpu_gpu_split()} (slower):")
            print(format_plan(plan, host_avail))
        if args.launch:
            print(data["launch"])
        if args.bench:
            print(bench_text(data["bench"]))
    if est.recommendation.quant is None and "launch" not in data and not offload_answer:
        print(f"lander-tui: {est.recommendation.reason}", file=sys.stderr)
        return 1
    return 0


def _list_models(as_json: bool) -> int:
    from lander_tui.core.catalog import catalog_models
    from lander_tui.core.tensors import parameter_count

    models = catalog_models()
    if as_json:
        json.dump([{"name": s.name, "params": parameter_count(s), "max_context": s.max_context, "hf_repo": s.hf_repo}
                   for s in models], sys.stdout, indent=2)
        print()
        return 0
    for spec in models:
        params = parameter_count(spec) / 1e9
        print(f"{spec.name:34} {params:8.2f}B  ctx {spec.max_context:>7}  {spec.hf_repo or ''}")
    return 0


def bench_text(commands: str) -> str:
    """The benchmark commands under a line saying what they are for."""
    return "# measure the speed above on this machine:\n" + commands
