"""The real llama.cpp (built on this CPU, tests/support/llamacpp.py) judges what lander-tui says loads beside a
model: a vision projector (`--mmproj`), a draft model (`-md`) and a LoRA adapter (`--lora`).

Every file is written the way llama.cpp's converters write it, with random weights and few layers
(tests/support/extras_models.py), at the real widths of the encoders that matter: Gemma 3's SigLIP at
896 px (all Gemma 3 sizes share it) and Qwen2.5-VL's window-attention ViT. The projector's buffers do
not depend on its layer count (clip reserves one layer's worth of graph), so a two-layer file shows what
the 27-layer one allocates. llama.cpp runs the graph allocator the same way on every backend, so the CPU
buffer sizes here are the ones a GPU reserves (the CUDA allocator aligns tensors to 128 bytes, not 32:
a few KiB)."""

from __future__ import annotations

import re
from dataclasses import replace
from functools import cache
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from support import llamacpp as lc
from support.arch_models import ALL, write_source_gguf
from support.extras_models import gemma3, lora, mmproj, qwen25vl, text_model, with_layers, write_text_model

from lander_tui.core.engines import MIB, EngineOptions, get_engine
from lander_tui.core.extras import Speculative, lora_bytes_by_layer, lora_from_file, lora_tensors, parse_lora
from lander_tui.core.formats import kv_cache_type
from lander_tui.core.gguf_file import read_gguf, read_gguf_metadata
from lander_tui.core.model import Device, ResolvedModel
from lander_tui.core.model_spec import FULL, from_hf_config
from lander_tui.core.vision import clip_compute_bytes, vision_from_mmproj, vision_param_count, vision_tensors
from lander_tui.core.weights import gguf_weights

# --- the real llama.cpp ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def files(tmp_path_factory):
    try:
        lc.llama_binary("llama-server")
    except lc.LlamaCppUnavailable as err:
        pytest.fail(str(err), pytrace=False)
    root = tmp_path_factory.mktemp("extras")

    @cache
    def text(arch: str, hidden: int, heads: int, kv_heads: int, head_dim: int, layers: int = 2) -> Path:
        return write_text_model(text_model(arch, hidden, heads, kv_heads, head_dim, layers),
                                root / f"{arch}-{hidden}-{layers}.gguf")

    @cache
    def projector(case_id: str) -> Path:
        return mmproj(CASES[case_id](), root / f"mmproj-{case_id}.gguf")

    @cache
    def arch(name: str) -> Path:
        return write_source_gguf(ALL[name](), root / f"{name}.gguf")

    return SimpleNamespace(text=text, projector=projector, arch=arch, root=root)


def serve(*args: str, warmup: bool = False) -> str:
    try:
        return lc.run_until_ready(["-fit", "off", "-lv", "4", "--no-repack", *args], warmup=warmup)
    except lc.LlamaCppUnavailable as err:
        pytest.fail(str(err), pytrace=False)


def mib(line: str, log: str) -> list[float]:
    return [float(x) for x in re.findall(line + r" += +([\d.]+) MiB", log)]


def same_mib(printed: float, predicted_bytes: float) -> bool:
    """llama.cpp prints MiB with two decimals: the prediction must round to the same figure."""
    return abs(printed - predicted_bytes / MIB) <= 0.0051


# --- vision projectors -------------------------------------------------------------------------------------

CASES = {
    "gemma3": gemma3,  # Gemma 3 4B/12B/27B's SigLIP-so400m at 896 px (4096 patches)
    "gemma3-768": lambda: gemma3(hidden=768, ff=3072, heads=12),  # a narrower SigLIP at the same image size
    "qwen2.5vl": lambda: qwen25vl(layers=2, text_hidden=896),  # Qwen2.5-VL's ViT (1280 wide, SwiGLU 3420)
}
#: (case, text model that takes the projector's output width, flash attention)
PROJECTOR_RUNS = [("gemma3", ("gemma3", 2560, 8, 4, 256), True), ("gemma3", ("gemma3", 2560, 8, 4, 256), False),
                  ("gemma3-768", ("gemma3", 2560, 8, 4, 256), True),
                  ("qwen2.5vl", ("qwen2", 896, 14, 2, 64), True), ("qwen2.5vl", ("qwen2", 896, 14, 2, 64), False)]
#: How close the clip graph formula must be: exact where it was derived (Gemma 3's SigLIP at 896 px, with
#: and without flash attention, at two widths); Qwen2.5-VL's window-attention graph leaves the allocator
#: holes the formula does not model (within 9 % with flash attention, 1 % without).
CLIP_TOLERANCE = {"gemma3": 0.0, "gemma3-768": 0.0, "qwen2.5vl": 0.09}


def _clip_lines(log: str) -> tuple[float, float]:
    """clip's "model size" and its compute buffer ("reserve_compute_meta: CPU compute buffer size")."""
    size = mib(r"load_hparams: model size:", log) or [float(x) for x in re.findall(
        r"model size: +([\d.]+) MiB", log)]
    compute = [float(x) for x in re.findall(r"reserve_compute_meta: +\S+ compute buffer size = +([\d.]+) MiB", log)]
    assert size and compute, log[-3000:]
    return size[0], compute[-1]


@pytest.mark.parametrize("case_id, text, fa", PROJECTOR_RUNS,
                         ids=[f"{c}-fa{int(fa)}" for c, _, fa in PROJECTOR_RUNS])
def test_projector_buffers_equal_the_estimate(files, case_id, text, fa):
    case = CASES[case_id]()
    path = files.projector(case_id)
    log = serve("-m", str(files.text(*text)), "--mmproj", str(path), "-c", "1024", "-np", "1",
                "-fa", "on" if fa else "off", warmup=True)
    weights_mib, compute_mib = _clip_lines(log)
    assert f"flash attention is {'enabled' if fa else 'disabled'}" in log
    # the projector's weights: from its header exactly, and predicted from the model's config.json alike
    meta, tensors = read_gguf_metadata(path)
    header_vision = vision_from_mmproj(meta, tensors)
    config_vision = from_hf_config(case.hf_config).vision
    assert config_vision is not None
    assert replace(config_vision, params=0) == replace(header_vision, params=0)
    predicted = vision_tensors(config_vision)
    assert [(t.name, t.row, t.rows, t.ggml_type, t.nbytes) for t in predicted] == \
        [(t.name, t.row, t.rows, t.ggml_type, t.nbytes) for t in tensors]
    assert same_mib(weights_mib, sum(t.nbytes or 0 for t in tensors))
    # the warm-up graph clip reserves
    est = clip_compute_bytes(config_vision, fa) / MIB
    tol = CLIP_TOLERANCE[case_id] if fa else min(CLIP_TOLERANCE[case_id], 0.01)
    if tol:
        assert abs(est - compute_mib) <= tol * compute_mib, (est, compute_mib)
    else:
        assert same_mib(compute_mib, clip_compute_bytes(config_vision, fa)), (est, compute_mib)


def test_the_engine_puts_weights_and_graph_on_the_first_gpu(files):
    """What the llama.cpp engine adds for a model with this projector: its weights and graph, on GPU 0."""
    path = files.projector("gemma3")
    meta, tensors = read_gguf_metadata(path)
    from lander_tui.core.extras import Projector

    text = read_gguf(files.text("gemma3", 2560, 8, 4, 256))
    model = ResolvedModel(text.spec, "gguf", tensors=text.tensors, file_quant=text.file_type,
                          projector=Projector(str(path), tensors, vision_from_mmproj(meta, tensors)))
    eng = get_engine("llama.cpp")
    gpus = [Device("GPU0", 24000.0), Device("GPU1", 24000.0)]
    fp = eng.footprint(model, text.file_type or "F16", "f16", gpus, EngineOptions())(np.array([4096]))
    vision = vision_from_mmproj(meta, tensors)
    want = sum(t.nbytes or 0 for t in tensors) + clip_compute_bytes(vision, True)
    assert fp.devices[0].detail["projector"][0] == pytest.approx(want)
    assert fp.devices[1].detail["projector"][0] == 0
    off = eng.footprint(model, text.file_type or "F16", "f16", gpus, EngineOptions(mmproj=False))(np.array([4096]))
    assert off.devices[0].total[0] == pytest.approx(fp.devices[0].total[0] - want)


# --- a draft model (-md) ------------------------------------------------------------------------------------

_KV_SIZE = re.compile(r"llama_kv_cache: size = +([\d.]+) MiB \( *(\d+) cells, +(\d+) layers, +(\d+)/(\d+) seqs\)")
_MODEL = re.compile(r"load_tensors: +CPU_Mapped model buffer size = +([\d.]+) MiB")
_OUTPUTS = re.compile(r"llama_context: n_outputs_max += (\d+)")

DRAFT_RUNS = [(1, 3, "f16"), (2, 5, "f16"), (3, 4, "q8_0")]


@pytest.mark.parametrize("n_par, n_draft, dkv", DRAFT_RUNS, ids=[f"np{a}-draft{b}-{c}" for a, b, c in DRAFT_RUNS])
def test_draft_model_buffers_equal_the_estimate(files, n_par, n_draft, dkv):
    """llama-server loads the draft after the target (common/speculative.cpp): its own model buffer, a
    KV cache of the target's cells and slots in the `-ctkd` type, one logits row per slot, while the
    target reserves `n_parallel x (1 + n_draft)` rows."""
    target = files.arch("llama")
    draft_case = text_model("llama", 512, 8, 2, 64, layers=2)
    draft = files.text("llama", 512, 8, 2, 64)
    ctx = 4096
    log = serve("-m", str(target), "-c", str(ctx), "-np", str(n_par), "-md", str(draft), "-ngld", "999",
                "--spec-type", "draft-simple", "--spec-draft-n-max", str(n_draft), "-ctkd", dkv, "-ctvd", dkv)
    head, _, tail = log.partition("loading draft model")
    assert tail, log[-3000:]
    # the draft's weights
    (draft_mapped,) = [float(x) for x in _MODEL.findall(tail)]
    dspec = from_hf_config(draft_case.hf_config, name="draft")
    dw = gguf_weights(dspec, "F16")
    assert dw.total_bytes / MIB - 0.0051 <= draft_mapped <= (dw.total_bytes + 32 * len(dw.tensors)) / MIB + 0.0051
    # its KV cache: the engine's geometry with the target's context and slots, in the draft's cache type
    eng = get_engine("llama.cpp")
    opts = EngineOptions(n_parallel=n_par, kv_unified=False)
    geo = eng.geometry(np.array([ctx]), opts)
    per_layer = eng.kv_layer_bytes(dspec, kv_cache_type(dkv), geo)
    (m,) = _KV_SIZE.finditer(tail)
    assert same_mib(float(m.group(1)), per_layer[FULL][0] * dspec.n_layers)
    # logits rows: the target's grow with the draft, the draft's are one per slot
    spec_opts = replace(opts, speculative=Speculative(mtp=True, tokens=n_draft))
    rows = np.asarray(eng.geometry(np.array([ctx]), spec_opts).n_outputs).flat[0]
    assert int(_OUTPUTS.search(head).group(1)) == rows == n_par * (1 + n_draft)
    assert int(_OUTPUTS.search(tail).group(1)) == n_par == np.asarray(geo.n_outputs).flat[0]


def test_the_engine_adds_the_draft_with_its_own_cache(files):
    """The llama.cpp engine's draft part is that model at the same context, slots and split."""
    target, draft = read_gguf(files.arch("llama")), read_gguf(files.text("llama", 512, 8, 2, 64))
    tm = ResolvedModel(target.spec, "gguf", tensors=target.tensors, file_quant=target.file_type)
    dm = ResolvedModel(draft.spec, "gguf", tensors=draft.tensors, file_quant=draft.file_type)
    eng = get_engine("llama.cpp")
    opts = EngineOptions(n_parallel=2, kv_unified=False)
    one = [Device("GPU", 24000.0)]
    base = eng.footprint(tm, "F16", "f16", one, opts)(np.array([4096])).devices[0]
    spec_opts = replace(opts, speculative=Speculative(dm, tokens=3, ref="draft.gguf"))
    with_draft = eng.footprint(tm, "F16", "f16", one, spec_opts)(np.array([4096])).devices[0]
    alone = eng.footprint(dm, "F16", "f16", one, opts)(np.array([4096])).devices[0]
    d = with_draft.detail["draft"][0]
    assert d == pytest.approx(alone.weights[0] + alone.kv[0] + alone.compute[0])
    assert with_draft.extras[0] == pytest.approx(d)
    # the target's logits phase now holds n_parallel x (1 + 3) rows instead of one per slot
    assert with_draft.detail["logits"][0] > base.detail["logits"][0]


# --- LoRA adapters (--lora) ---------------------------------------------------------------------------------

_LORA = re.compile(r"llama_adapter_lora_init_impl: +\S+ LoRA buffer size = +([\d.]+) MiB")


@pytest.mark.parametrize("arch, rank", [("llama", 16), ("qwen3", 8), ("gemma3", 64)])
def test_lora_buffer_is_the_adapter(files, arch, rank):
    """Each adapter tensor goes to its base tensor's buffer (src/llama-adapter.cpp): on the CPU here, all
    in one buffer of every `.lora_a`/`.lora_b` tensor; what `--lora RANK` predicts from the config is the
    file's own size."""
    case = ALL[arch]()
    path = lora(case, files.root / f"lora-{arch}-{rank}.gguf", rank)
    log = serve("-m", str(files.arch(arch)), "-c", "1024", "-np", "1", "--lora", str(path))
    (buf,) = [float(x) for x in _LORA.findall(log)]
    from_file = lora_from_file(str(path))
    assert from_file.rank == rank
    file_bytes = sum(t.nbytes or 0 for t in lora_tensors(case_spec(case), from_file))
    predicted = parse_lora(str(rank))
    pred_bytes = sum(t.nbytes or 0 for t in lora_tensors(case_spec(case), predicted))
    assert pred_bytes == file_bytes
    n = len(from_file.tensors or ())
    assert file_bytes / MIB - 0.0051 <= buf <= (file_bytes + 64 * n) / MIB + 0.0051
    # the engine places them with their layers: everything on the one GPU, nothing on the host
    spec = case_spec(case)
    assert sum(lora_bytes_by_layer(spec, predicted).values()) == pred_bytes


def case_spec(case):
    return from_hf_config(case.hf_config, name=case.id)


def test_projector_cases_are_real_configs():
    """The test encoders keep the real models' widths (only the layer count is cut)."""
    assert with_layers(gemma3(), 27).hf_config["vision_config"]["num_hidden_layers"] == 27
    g = from_hf_config(gemma3(layers=27).hf_config).vision
    assert g is not None and vision_param_count(g) == 419_816_304  # keras-hub gemma3_instruct_4b minus text-only
