"""What-if GPUs: a built-in catalog for planning without the hardware (or for a bigger box).

Each GPU has `total_mib` (what nvidia-smi shows as memory.total, with ECC as shipped) and
`usable_mib`: what a new process can get on an idle card, i.e. total minus the driver/firmware
reserve (NVML memory v2 `reserved`; CUDA's own "total" is this number). The CUDA context of the
process itself (~0.5-0.7 GiB, ground-truth/README.md) is NOT subtracted: that belongs to the
estimator, exactly as for a real GPU's free memory.

Where the numbers come from (`CatalogGpu.source`):
- "measured": H100 80GB HBM3, driver 580: NVML total 81559 MiB, reserved 480 MiB, CUDA total
  81079 MiB (research/tui-anchors.md §2.2 and ground-truth/llama.cpp.jsonl `bd_cuda.total`).
- "reported": total as nvidia-smi commonly reports it, usable as the CUDA total PyTorch
  commonly reports for the card ("total capacity of N GiB"); driver-dependent by ~±100 MiB.
- "estimated": total as nvidia-smi commonly reports it (MI300X: nominal 192 GiB); usable =
  total - max(256 MiB, 1.5 % of total). The measured/reported reserves are 0.6-2.0 % of total
  (H100 0.6 %, A100 1.1 %, RTX 4090 1.4 %, T4 1.7 %, RTX 3060 2.0 %); 1.5 % errs toward
  less usable memory, the safe side for planning.
Not measured on this machine (no GPU here): treat the estimates as planning numbers.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from lander_tui.core.errors import LanderError

_MIN_RESERVE_MIB = 256
_RESERVE_FRACTION = 0.015
MAX_COUNT = 64


@dataclass(frozen=True, slots=True)
class CatalogGpu:
    name: str  # e.g. "RTX 4090 24GB"
    total_mib: int
    usable_mib: int
    category: str  # "consumer", "workstation", "datacenter", "embedded" (memory shared with the CPU)
    source: str  # "measured", "reported", "estimated"
    vendor: str = "NVIDIA"
    memory_gb: int = 0
    aliases: tuple[str, ...] = ()

    @property
    def reserve_mib(self) -> int:
        return self.total_mib - self.usable_mib


@dataclass(frozen=True, slots=True)
class CloudInstance:
    name: str  # as the provider spells it, e.g. "g5.12xlarge", "Standard_ND96isr_H100_v5"
    provider: str  # "AWS", "GCP", "Azure"
    count: int
    gpu: CatalogGpu


@dataclass(frozen=True, slots=True)
class WhatIf:
    """A chosen what-if box: `gpus` has one entry per GPU (a count repeats the same card)."""

    label: str
    gpus: tuple[CatalogGpu, ...]
    instance: str | None = None

    @property
    def usable_mib(self) -> int:
        return sum(g.usable_mib for g in self.gpus)


def _gpu(
    name: str,
    gb: int,
    total: int,
    category: str,
    usable: int | None = None,
    source: str | None = None,
    aliases: tuple[str, ...] = (),
    vendor: str = "NVIDIA",
) -> CatalogGpu:
    if usable is None:
        usable = total - max(_MIN_RESERVE_MIB, round(total * _RESERVE_FRACTION))
        source = source or "estimated"
    return CatalogGpu(name, total, usable, category, source or "reported", vendor, gb, aliases)


# fmt: off
# Order matters twice: the what-if picker lists cards in this order, and where a reported name fits
# several variants equally (an NVML name carries no memory size for GeForce cards), `match_gpu`
# takes the first one listed, the common variant.
GPUS: tuple[CatalogGpu, ...] = (
    # the picker lists these first: common cards for planning
    # consumer (GeForce)
    _gpu("RTX 3060 12GB", 12, 12288, "consumer", 12042),           # CUDA total 11.76 GiB
    _gpu("RTX 3070 8GB", 8, 8192, "consumer"),
    _gpu("RTX 3080 10GB", 10, 10240, "consumer"),
    _gpu("RTX 3080 12GB", 12, 12288, "consumer"),
    _gpu("RTX 3090 24GB", 24, 24576, "consumer", 24260),           # CUDA total 23.69 GiB
    _gpu("RTX 3090 Ti 24GB", 24, 24564, "consumer"),
    _gpu("RTX 4060 Ti 16GB", 16, 16380, "consumer"),
    _gpu("RTX 4070 Ti SUPER 16GB", 16, 16376, "consumer"),
    _gpu("RTX 4080 16GB", 16, 16376, "consumer"),
    _gpu("RTX 4080 SUPER 16GB", 16, 16376, "consumer"),
    _gpu("RTX 4090 24GB", 24, 24564, "consumer", 24217),           # CUDA total 23.65 GiB
    _gpu("RTX 5070 Ti 16GB", 16, 16303, "consumer"),
    _gpu("RTX 5080 16GB", 16, 16303, "consumer"),
    _gpu("RTX 5090 32GB", 32, 32607, "consumer"),
    # workstation
    _gpu("RTX A6000 48GB", 48, 49140, "workstation"),
    _gpu("RTX 6000 Ada 48GB", 48, 49140, "workstation", aliases=("RTX 6000 Ada Generation",)),
    _gpu("RTX PRO 6000 Blackwell 96GB", 96, 97887, "workstation",
         aliases=("RTX PRO 6000", "RTX PRO 6000 Blackwell Workstation Edition",
                  "RTX PRO 6000 Blackwell Server Edition")),
    # data centre
    _gpu("V100 16GB", 16, 16160, "datacenter", aliases=("V100-SXM2-16GB",)),
    _gpu("V100 32GB", 32, 32510, "datacenter", aliases=("V100-SXM2-32GB",)),
    _gpu("T4 16GB", 16, 15360, "datacenter", 15104),               # CUDA total 14.75 GiB
    _gpu("A10 24GB", 24, 23028, "datacenter"),
    _gpu("A10G 24GB", 24, 23028, "datacenter"),
    _gpu("L4 24GB", 24, 23034, "datacenter"),
    _gpu("L40 48GB", 48, 46068, "datacenter"),
    _gpu("L40S 48GB", 48, 46068, "datacenter"),
    _gpu("A100 40GB", 40, 40960, "datacenter", 40509,              # CUDA total 39.56 GiB
         aliases=("A100-SXM4-40GB", "A100-PCIE-40GB")),
    _gpu("A100 80GB", 80, 81920, "datacenter", 81050,              # CUDA total 79.15 GiB
         aliases=("A100-SXM4-80GB",)),
    _gpu("H100 80GB", 80, 81559, "datacenter", 81079, "measured",
         aliases=("H100 80GB HBM3", "H100 SXM5 80GB")),
    _gpu("H100 NVL 94GB", 94, 95830, "datacenter", aliases=("H100 94GB", "H100 NVL")),
    _gpu("H200 141GB", 141, 143771, "datacenter"),
    _gpu("B200 180GB", 180, 183359, "datacenter", aliases=("B200 192GB",)),
    _gpu("MI300X 192GB", 192, 196608, "datacenter", vendor="AMD", aliases=("Instinct MI300X",)),
    # more GeForce cards, Pascal on (for matching live GPUs and the speed model)
    _gpu("GTX 1050 Ti 4GB", 4, 4096, "consumer"),
    _gpu("GTX 1060 6GB", 6, 6144, "consumer"),
    _gpu("GTX 1060 3GB", 3, 3072, "consumer"),
    _gpu("GTX 1070 8GB", 8, 8192, "consumer"),
    _gpu("GTX 1070 Ti 8GB", 8, 8192, "consumer"),
    _gpu("GTX 1080 8GB", 8, 8192, "consumer"),
    _gpu("GTX 1080 Ti 11GB", 11, 11264, "consumer"),
    _gpu("TITAN X Pascal 12GB", 12, 12288, "consumer", aliases=("TITAN X (Pascal)",)),
    _gpu("TITAN Xp 12GB", 12, 12288, "consumer"),
    _gpu("GTX 1650 4GB", 4, 4096, "consumer"),
    _gpu("GTX 1650 SUPER 4GB", 4, 4096, "consumer"),
    _gpu("GTX 1660 6GB", 6, 6144, "consumer"),
    _gpu("GTX 1660 SUPER 6GB", 6, 6144, "consumer"),
    _gpu("GTX 1660 Ti 6GB", 6, 6144, "consumer"),
    _gpu("RTX 2060 6GB", 6, 6144, "consumer"),
    _gpu("RTX 2060 12GB", 12, 12288, "consumer"),
    _gpu("RTX 2060 SUPER 8GB", 8, 8192, "consumer"),
    _gpu("RTX 2070 8GB", 8, 8192, "consumer"),
    _gpu("RTX 2070 SUPER 8GB", 8, 8192, "consumer"),
    _gpu("RTX 2080 8GB", 8, 8192, "consumer"),
    _gpu("RTX 2080 SUPER 8GB", 8, 8192, "consumer"),
    _gpu("RTX 2080 Ti 11GB", 11, 11264, "consumer"),
    _gpu("TITAN RTX 24GB", 24, 24576, "consumer"),
    _gpu("TITAN V 12GB", 12, 12288, "consumer"),
    _gpu("RTX 3050 8GB", 8, 8192, "consumer"),
    _gpu("RTX 3060 Ti 8GB", 8, 8192, "consumer"),
    _gpu("RTX 3070 Ti 8GB", 8, 8192, "consumer"),
    _gpu("RTX 3080 Ti 12GB", 12, 12288, "consumer"),
    _gpu("RTX 4060 8GB", 8, 8188, "consumer"),
    _gpu("RTX 4060 Ti 8GB", 8, 8188, "consumer"),
    _gpu("RTX 4070 12GB", 12, 12282, "consumer"),
    _gpu("RTX 4070 SUPER 12GB", 12, 12282, "consumer"),
    _gpu("RTX 4070 Ti 12GB", 12, 12282, "consumer"),
    _gpu("RTX 4090 D 24GB", 24, 24564, "consumer"),
    _gpu("RTX 5050 8GB", 8, 8151, "consumer"),
    _gpu("RTX 5060 8GB", 8, 8151, "consumer"),
    _gpu("RTX 5060 Ti 16GB", 16, 16303, "consumer"),
    _gpu("RTX 5060 Ti 8GB", 8, 8151, "consumer"),
    _gpu("RTX 5070 12GB", 12, 12227, "consumer"),
    # laptops (NVML says "... Laptop GPU"; memory as most laptops ship it)
    _gpu("RTX 3060 Laptop 6GB", 6, 6144, "consumer"),
    _gpu("RTX 3070 Laptop 8GB", 8, 8192, "consumer"),
    _gpu("RTX 3080 Laptop 16GB", 16, 16384, "consumer"),
    _gpu("RTX 3080 Ti Laptop 16GB", 16, 16384, "consumer"),
    _gpu("RTX 4050 Laptop 6GB", 6, 6141, "consumer"),
    _gpu("RTX 4060 Laptop 8GB", 8, 8188, "consumer"),
    _gpu("RTX 4070 Laptop 8GB", 8, 8188, "consumer"),
    _gpu("RTX 4080 Laptop 12GB", 12, 12282, "consumer"),
    _gpu("RTX 4090 Laptop 16GB", 16, 16376, "consumer"),
    _gpu("RTX 5070 Laptop 8GB", 8, 8151, "consumer"),
    _gpu("RTX 5070 Ti Laptop 12GB", 12, 12227, "consumer"),
    _gpu("RTX 5080 Laptop 16GB", 16, 16303, "consumer"),
    _gpu("RTX 5090 Laptop 24GB", 24, 24463, "consumer"),
    # more workstation cards
    _gpu("Quadro P4000 8GB", 8, 8192, "workstation"),
    _gpu("Quadro P5000 16GB", 16, 16384, "workstation"),
    _gpu("Quadro P6000 24GB", 24, 24576, "workstation"),
    _gpu("Quadro GV100 32GB", 32, 32768, "workstation"),
    _gpu("Quadro RTX 4000 8GB", 8, 8192, "workstation"),
    _gpu("Quadro RTX 5000 16GB", 16, 16384, "workstation"),
    _gpu("Quadro RTX 6000 24GB", 24, 24576, "workstation"),
    _gpu("Quadro RTX 8000 48GB", 48, 49152, "workstation"),
    _gpu("RTX A2000 12GB", 12, 12288, "workstation"),
    _gpu("RTX A4000 16GB", 16, 16376, "workstation"),
    _gpu("RTX A4500 20GB", 20, 20470, "workstation"),
    _gpu("RTX A5000 24GB", 24, 24564, "workstation"),
    _gpu("RTX A5500 24GB", 24, 24564, "workstation"),
    _gpu("RTX 2000 Ada 16GB", 16, 16380, "workstation", aliases=("RTX 2000 Ada Generation",)),
    _gpu("RTX 4000 SFF Ada 20GB", 20, 20475, "workstation", aliases=("RTX 4000 SFF Ada Generation",)),
    _gpu("RTX 4000 Ada 20GB", 20, 20475, "workstation", aliases=("RTX 4000 Ada Generation",)),
    _gpu("RTX 4500 Ada 24GB", 24, 24570, "workstation", aliases=("RTX 4500 Ada Generation",)),
    _gpu("RTX 5000 Ada 32GB", 32, 32760, "workstation", aliases=("RTX 5000 Ada Generation",)),
    _gpu("RTX 5880 Ada 48GB", 48, 49140, "workstation", aliases=("RTX 5880 Ada Generation",)),
    _gpu("RTX PRO 2000 Blackwell 16GB", 16, 16303, "workstation"),
    _gpu("RTX PRO 4000 Blackwell 24GB", 24, 24463, "workstation"),
    _gpu("RTX PRO 4500 Blackwell 32GB", 32, 32607, "workstation"),
    _gpu("RTX PRO 5000 Blackwell 48GB", 48, 48935, "workstation"),
    _gpu("RTX PRO 6000 Blackwell Max-Q 96GB", 96, 97887, "workstation",
         aliases=("RTX PRO 6000 Blackwell Max-Q Workstation Edition",)),
    # more data-centre and embedded cards (embedded: memory shared with the CPU)
    _gpu("K80 12GB", 12, 11441, "datacenter", aliases=("Tesla K80",)),  # one of the board's two GPUs
    _gpu("M40 24GB", 24, 23040, "datacenter", aliases=("Tesla M40 24GB",)),
    _gpu("P4 8GB", 8, 7680, "datacenter", aliases=("Tesla P4",)),
    _gpu("P40 24GB", 24, 24576, "datacenter", aliases=("Tesla P40",)),
    _gpu("P100 16GB", 16, 16384, "datacenter", aliases=("P100-PCIE-16GB",)),
    _gpu("P100 12GB", 12, 12288, "datacenter", aliases=("P100-PCIE-12GB",)),
    _gpu("P100 SXM2 16GB", 16, 16384, "datacenter", aliases=("P100-SXM2-16GB",)),
    _gpu("V100 PCIe 16GB", 16, 16160, "datacenter", aliases=("V100-PCIE-16GB",)),
    _gpu("V100 PCIe 32GB", 32, 32510, "datacenter", aliases=("V100-PCIE-32GB",)),
    _gpu("V100S PCIe 32GB", 32, 32510, "datacenter", aliases=("V100S-PCIE-32GB",)),
    _gpu("A2 16GB", 16, 15356, "datacenter"),
    _gpu("A16 16GB", 16, 15356, "datacenter"),  # one of the board's four GPUs
    _gpu("A30 24GB", 24, 24576, "datacenter"),
    _gpu("A40 48GB", 48, 46068, "datacenter"),
    _gpu("L20 48GB", 48, 46068, "datacenter"),
    _gpu("A100 PCIe 80GB", 80, 81920, "datacenter", 81050, aliases=("A100 80GB PCIe",)),
    _gpu("H100 PCIe 80GB", 80, 81559, "datacenter", 81079, aliases=("H100 PCIe",)),
    _gpu("H20 96GB", 96, 97871, "datacenter"),
    _gpu("GH200 96GB", 96, 97871, "datacenter", aliases=("GH200 480GB",)),
    _gpu("GH200 144GB", 144, 146800, "datacenter", aliases=("GH200 624GB",)),
    _gpu("H200 NVL 141GB", 141, 143771, "datacenter", aliases=("H200 NVL",)),
    _gpu("B100 192GB", 192, 196608, "datacenter"),
    _gpu("GB200 186GB", 186, 189471, "datacenter"),
    _gpu("Jetson AGX Orin 64GB", 64, 62841, "embedded", aliases=("Orin",)),  # memory shared with the CPU
    _gpu("Jetson AGX Orin 32GB", 32, 30536, "embedded"),
    _gpu("GB10 128GB", 128, 124416, "embedded", aliases=("DGX Spark",)),  # unified LPDDR5X, shared with the CPU
)
# fmt: on

_BY_NAME = {g.name: g for g in GPUS}


def _instances() -> tuple[CloudInstance, ...]:
    rows: list[tuple[str, str, int, str]] = []

    def add(provider: str, gpu: str, sizes: dict[str, int]) -> None:
        rows.extend((name, provider, n, gpu) for name, n in sizes.items())

    one = {s: 1 for s in ("xlarge", "2xlarge", "4xlarge", "8xlarge", "16xlarge")}
    # AWS (aws.amazon.com/ec2/instance-types, accelerated computing)
    add("AWS", "V100 16GB", {"p3.2xlarge": 1, "p3.8xlarge": 4, "p3.16xlarge": 8})
    add("AWS", "V100 32GB", {"p3dn.24xlarge": 8})
    add("AWS", "A100 40GB", {"p4d.24xlarge": 8})
    add("AWS", "A100 80GB", {"p4de.24xlarge": 8})
    add("AWS", "H100 80GB", {"p5.4xlarge": 1, "p5.48xlarge": 8})
    add("AWS", "H200 141GB", {"p5e.48xlarge": 8, "p5en.48xlarge": 8})
    add("AWS", "T4 16GB", {**{f"g4dn.{s}": 1 for s in one}, "g4dn.12xlarge": 4, "g4dn.metal": 8})
    for family, gpu in (("g5", "A10G 24GB"), ("g6", "L4 24GB"), ("g6e", "L40S 48GB")):
        add("AWS", gpu, {**{f"{family}.{s}": 1 for s in one},
                         f"{family}.12xlarge": 4, f"{family}.24xlarge": 4, f"{family}.48xlarge": 8})
    # GCP (cloud.google.com/compute/docs/gpus)
    add("GCP", "A100 40GB", {f"a2-highgpu-{n}g": n for n in (1, 2, 4, 8)} | {"a2-megagpu-16g": 16})
    add("GCP", "A100 80GB", {f"a2-ultragpu-{n}g": n for n in (1, 2, 4, 8)})
    add("GCP", "H100 80GB", {f"a3-highgpu-{n}g": n for n in (1, 2, 4, 8)}
        | {"a3-megagpu-8g": 8, "a3-edgegpu-8g": 8})
    add("GCP", "H200 141GB", {"a3-ultragpu-8g": 8})
    add("GCP", "L4 24GB", {f"g2-standard-{c}": 1 for c in (4, 8, 12, 16, 32)}
        | {"g2-standard-24": 2, "g2-standard-48": 4, "g2-standard-96": 8})
    # Azure (learn.microsoft.com/azure/virtual-machines/sizes, NC and ND families)
    add("Azure", "V100 16GB", {"Standard_NC6s_v3": 1, "Standard_NC12s_v3": 2, "Standard_NC24s_v3": 4})
    add("Azure", "T4 16GB", {"Standard_NC4as_T4_v3": 1, "Standard_NC8as_T4_v3": 1,
                             "Standard_NC16as_T4_v3": 1, "Standard_NC64as_T4_v3": 4})
    add("Azure", "A100 80GB", {"Standard_NC24ads_A100_v4": 1, "Standard_NC48ads_A100_v4": 2,
                               "Standard_NC96ads_A100_v4": 4, "Standard_ND96amsr_A100_v4": 8})
    add("Azure", "H100 NVL 94GB", {"Standard_NC40ads_H100_v5": 1, "Standard_NC80adis_H100_v5": 2})
    add("Azure", "V100 32GB", {"Standard_ND40rs_v2": 8})
    add("Azure", "A100 40GB", {"Standard_ND96asr_v4": 8})
    add("Azure", "H100 80GB", {"Standard_ND96isr_H100_v5": 8})
    add("Azure", "H200 141GB", {"Standard_ND96isr_H200_v5": 8})
    add("Azure", "MI300X 192GB", {"Standard_ND96isr_MI300X_v5": 8})
    return tuple(CloudInstance(name, p, n, _BY_NAME[gpu]) for name, p, n, gpu in rows)


INSTANCES: tuple[CloudInstance, ...] = _instances()


def _instance_key(name: str) -> str:
    key = name.strip().lower()
    return key[len("standard_"):] if key.startswith("standard_") else key


_INSTANCE_BY_KEY = {_instance_key(i.name): i for i in INSTANCES}

_DROP = {"nvidia", "geforce", "tesla", "gpu"}
_IGNORABLE_EXTRA = {"rtx"}
_MEMORY = re.compile(r"(\d+)\s*gi?b\b")  # "80GB", "80 GB", "24GiB": the size, not the word
_SYNONYMS = {"mobile": "laptop"}


def _tokens(text: str) -> frozenset[str]:
    words = re.findall(r"[a-z]+|\d+", _MEMORY.sub(r" \1 ", text.lower()))
    return frozenset(_SYNONYMS.get(t, t) for t in words if t not in _DROP)


_ALIAS_TOKENS: dict[str, tuple[frozenset[str], ...]] = {
    g.name: tuple(_tokens(a) for a in (g.name, *g.aliases)) for g in GPUS
}


@dataclass(frozen=True, slots=True)
class GpuMatch:
    """A reported GPU name matched to the catalog. `ambiguous` lists the other variants that fit the
    name as well (the first listed was taken; a known memory size picks among them)."""

    gpu: CatalogGpu
    ambiguous: tuple[str, ...] = ()


_SIZE_SUFFIX = re.compile(r"\s*\d+\s*GB$")
#: Words that name another vendor: such a name only matches that vendor's cards ("Apple M4 Max
#: (40-core GPU)" has the words of "M40", "AMD Radeon ..." is never an NVIDIA card).
_VENDOR_WORDS = {"amd": "AMD", "radeon": "AMD", "instinct": "AMD", "apple": "Apple", "intel": "Intel",
                 "arc": "Intel"}


def _key_forms(g: CatalogGpu) -> tuple[frozenset[str], ...]:
    """The words a reported name must contain to be this card: its catalog name without the memory
    size (NVML names of GeForce cards carry none), or any alias in full."""
    return (_tokens(_SIZE_SUFFIX.sub("", g.name)), *(_tokens(a) for a in g.aliases))


_KEY_FORMS: dict[str, tuple[frozenset[str], ...]] = {g.name: _key_forms(g) for g in GPUS}


def match_gpu(reported: str, memory_mib: float | None = None) -> GpuMatch | None:
    """The catalog card a reported name means: NVML's "NVIDIA GeForce RTX 4090", a benchmark's
    "RTX 3060 (12GB)" or "Tesla V100". Unlike `find_gpu` (what a user typed, which must be unambiguous)
    the reported name may carry extra words; the card whose identifying words are all in it and are the
    most of any card wins. Ties (RTX 3080 10GB/12GB) go to the card whose size is in the name or equals
    `memory_mib` (rounded to GB), else to the first listed. None when no card fits: the caller says so.
    """
    q = _tokens(reported)
    if memory_mib:
        q = q | {str(round(memory_mib / 1024))}
    vendors = {v for w, v in _VENDOR_WORDS.items() if w in q}
    best: list[tuple[int, CatalogGpu]] = []
    for g in GPUS:
        if vendors and g.vendor not in vendors:
            continue
        sizes = [len(k) for k in _KEY_FORMS[g.name] if k and k <= q]
        if sizes:
            best.append((max(sizes), g))
    if not best:
        return None
    top = max(n for n, _ in best)
    tied = [g for n, g in best if n == top]
    sized = [g for g in tied if str(g.memory_gb) in q]
    chosen = (sized or tied)[0]
    return GpuMatch(chosen, tuple(g.name for g in tied if g is not chosen))


def catalog_names() -> list[str]:
    """Every name `what_if` accepts as written: catalog GPUs, then cloud instances."""
    return [g.name for g in GPUS] + [i.name for i in INSTANCES]


def vendor_of(name: str) -> str:
    """The vendor of a catalog GPU or of an instance's GPUs, by its catalog name ("NVIDIA" when unknown).
    The dashboard watches NVIDIA GPUs through NVML; another vendor's card is planning numbers only."""
    gpu = _BY_NAME.get(name)
    if gpu is None:
        instance = find_instance(name)
        gpu = instance.gpu if instance is not None else None
    return gpu.vendor if gpu is not None else "NVIDIA"


def not_watched_note(vendor: str) -> str:
    """What the what-if lists say beside another vendor's card ("" for NVIDIA): NVML cannot watch it."""
    return "" if vendor == "NVIDIA" else f"{vendor}: catalog numbers only, no NVML"


def is_known_instance(name: str) -> bool:
    return _instance_key(name) in _INSTANCE_BY_KEY


def find_instance(name: str) -> CloudInstance | None:
    return _INSTANCE_BY_KEY.get(_instance_key(name))


def find_gpu(query: str) -> CatalogGpu:
    """Fuzzy-but-unambiguous: every word of the query must appear in one of the card's names,
    which may add only "RTX" (and, for the catalog name, the memory size); more than one such
    card is an error that lists them, and near misses are suggested, never silently taken."""
    q = _tokens(query)
    if not q:
        raise LanderError(f"what-if GPU name {query!r} is empty; see `lander-tui gpus --what-if list`")
    exact: list[CatalogGpu] = []
    partial: list[CatalogGpu] = []
    for g in GPUS:
        forms = _ALIAS_TOKENS[g.name]  # the catalog name first, then the aliases
        if not any(q <= t for t in forms):
            continue
        # only the catalog name may add the memory size: "H100" is the H100 80GB, but the
        # H100 NVL's alias "H100 94GB" does not make plain "H100" ambiguous
        extra_ok = [_IGNORABLE_EXTRA | {str(g.memory_gb)}] + [_IGNORABLE_EXTRA] * (len(forms) - 1)
        if any(q <= t and not (t - q - ok) for t, ok in zip(forms, extra_ok, strict=True)):
            exact.append(g)
        else:
            partial.append(g)
    if len(exact) == 1:
        return exact[0]
    if len(exact) > 1:
        names = ", ".join(g.name for g in exact)
        raise LanderError(f'"{query}" matches several GPUs: {names}; say which, e.g. --what-if "{exact[-1].name}"')
    if partial:
        names = ", ".join(g.name for g in partial[:6])
        raise LanderError(f'no catalog GPU is exactly "{query}"; did you mean: {names}?')
    close = _close(query)
    hint = f"; did you mean: {', '.join(close)}?" if close else ""
    raise LanderError(f'unknown what-if GPU or instance "{query}"{hint} (all: lander-tui gpus --what-if list)')


def _close(query: str) -> list[str]:
    names = catalog_names()
    lowered = {n.lower(): n for n in names}
    hits = difflib.get_close_matches(query.strip().lower(), list(lowered), n=6, cutoff=0.5)
    return [lowered[h] for h in hits]


_COUNT_PREFIX = re.compile(r"^\s*(\d+)\s*[x×*]\s*(.+?)\s*$", re.IGNORECASE)
_COUNT_SUFFIX = re.compile(r"^\s*(.+?)\s+[x×*]\s*(\d+)\s*$", re.IGNORECASE)


def what_if(name: str) -> WhatIf:
    """Parse "2x RTX 4090", "A100 80GB", "g5.12xlarge" or "Standard_ND96isr_H100_v5"."""
    text = (name or "").strip()
    if not text:
        raise LanderError("--what-if needs a GPU or instance name, e.g. \"2x RTX 4090\" or g5.12xlarge")
    instance = find_instance(text)
    if instance is not None:
        label = f"{instance.name} ({instance.provider}, {instance.count}x {instance.gpu.name})"
        return WhatIf(label, (instance.gpu,) * instance.count, instance.name)
    count, gpu_query = 1, text
    m = _COUNT_PREFIX.match(text) or _COUNT_SUFFIX.match(text)
    if m:
        a, b = m.groups()
        count_text, gpu_query = (a, b) if a.isdigit() else (b, a)
        count = int(count_text)
        if find_instance(gpu_query) is not None:
            raise LanderError(f"give a count for a GPU, not an instance: --what-if {gpu_query}")
        if not 1 <= count <= MAX_COUNT:
            raise LanderError(f"what-if GPU count must be 1 to {MAX_COUNT}, got {count}")
    family = [i.name for i in INSTANCES if _instance_key(i.name).startswith(_instance_key(gpu_query) + ".")]
    if family and count == 1:
        raise LanderError(f'"{gpu_query}" is an instance family; pick a size: {", ".join(family)}')
    gpu = find_gpu(gpu_query)
    return WhatIf(f"{count}x {gpu.name}", (gpu,) * count, None)
