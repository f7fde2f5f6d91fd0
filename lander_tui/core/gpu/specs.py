"""What a GPU can move and compute: the facts the speed model (`core/speed.py`) needs.

One row per NVIDIA card of the what-if catalog (`catalog.GPUS`, same names; the catalog holds the memory
facts, this table the speed facts). Figures are NVIDIA's:

- `mem_bw_gbs`: peak memory bandwidth, GB/s (10^9), as the datasheet or product page gives it.
- tensor throughput, dense (NVIDIA quotes "with sparsity" figures twice as high; those are halved
  here), in TFLOPS / TOPS:
  `fp16` FP16 inputs with FP16 accumulate: what llama.cpp's cuBLAS path runs (GeForce cards do
  this at full rate, FP32 accumulate at half); `bf16` BF16 with FP32 accumulate (vLLM, SGLang,
  Transformers); `int8` INT8 tensor (llama.cpp's MMQ kernels for quantized weights); `fp8` FP8
  with FP32 accumulate; `fp4` (Blackwell). `None` = the card has no such unit.
  Cards without tensor cores (Pascal, GTX 16xx, Maxwell, Kepler) carry their shader rates instead:
  `fp16` the FP16 ALU rate (GP100 and TU11x: 2 x FP32; GP10x: 1/64 of FP32) and `int8` the DP4A
  rate (4 x FP32, compute capability 6.1 and newer).
- Where a datasheet prints the tensor figures they are used as printed; otherwise they are derived
  the way NVIDIA's whitepapers derive them: per-SM rate x SMs x boost clock, with the per-SM rates
  of that architecture's whitepaper (`_PER_SM`). `source` says which, per row.
- `pcie` link generation and lanes; `nvlink_gbs` NVLink (or NVLink-C2C) bandwidth per GPU, both
  directions, 0 = none.

`gpu_spec` looks a reported name up (NVML's "NVIDIA GeForce RTX 4090", a benchmark's "RTX 3060
(12GB)"); `spec_from_nvml` builds an approximate row for a card this table does not know, from
what NVML reports (memory clock x bus width, SM count, compute capability).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

from lander_tui.core.errors import LanderError
from lander_tui.core.gpu.catalog import GPUS, find_gpu, match_gpu


@dataclass(frozen=True, slots=True)
class GpuSpec:
    name: str  # the catalog name
    arch: str  # kepler, maxwell, pascal, volta, turing, ampere, ada, hopper, blackwell
    compute_capability: str  # "8.9"
    sms: int
    boost_mhz: int
    mem_bw_gbs: float
    mem_type: str
    fp32: float
    fp16: float | None
    bf16: float | None
    int8: float | None
    fp8: float | None = None
    fp4: float | None = None
    pcie: str = "4.0 x16"
    nvlink_gbs: float = 0.0
    unified: bool = False  # memory shared with the CPU (GB10, Jetson)
    tensor_cores: bool = True
    source: str = ""
    known: bool = True  # False: built from NVML readings, not from this table

    @property
    def pcie_gbs(self) -> float:
        """One direction of the PCIe link, GB/s (gen 3: 0.985 GB/s per lane, doubling per generation)."""
        gen, lanes = self.pcie.split(" x")
        per_lane = {"1.0": 0.25, "2.0": 0.5, "3.0": 0.985, "4.0": 1.969, "5.0": 3.938, "6.0": 7.563}[gen]
        return per_lane * int(lanes)


# Per-SM dense rates per clock (FLOP or OP), from each architecture's whitepaper. Keys:
# fp32, fp16 (FP16 accumulate), bf16 (FP32 accumulate), int8, fp8 (FP32 accumulate), fp4.
# "geforce" variants have FP32-accumulate tensor math at half rate; professional cards at full rate.
_PER_SM: dict[str, dict[str, int | None]] = {
    # GK210 SMX: 192 FP32 cores; no fast FP16, no DP4A
    "kepler": {"fp32": 384, "fp16": None, "bf16": None, "int8": None},
    "maxwell": {"fp32": 256, "fp16": None, "bf16": None, "int8": None},
    # GP10x (cc 6.1): 128 FP32 cores per SM; FP16 at 1/64; DP4A = 4 x FP32
    "pascal": {"fp32": 256, "fp16": 4, "bf16": None, "int8": 1024},
    # GP100 (cc 6.0): 64 FP32 cores per SM, FP16 at 2 x FP32, no DP4A
    "pascal-gp100": {"fp32": 128, "fp16": 256, "bf16": None, "int8": None},
    # GV100: 8 tensor cores x 64 FMA per SM; INT8 only through DP4A
    "volta": {"fp32": 128, "fp16": 1024, "bf16": None, "int8": 512},
    # TU10x: 512 FP16 FMA per SM (FP16 accumulate), INT8 twice that
    "turing": {"fp32": 128, "fp16": 1024, "bf16": None, "int8": 2048},
    # TU11x (GTX 16xx): no tensor cores; FP16 ALUs at 2 x FP32, DP4A
    "turing-gtx": {"fp32": 128, "fp16": 256, "bf16": None, "int8": 512},
    "ampere-ga100": {"fp32": 128, "fp16": 2048, "bf16": 2048, "int8": 4096},
    "ampere": {"fp32": 256, "fp16": 1024, "bf16": 1024, "int8": 2048},
    "ampere-geforce": {"fp32": 256, "fp16": 1024, "bf16": 512, "int8": 2048},
    # GA10B (Jetson Orin): GA100-class tensor cores
    "ampere-orin": {"fp32": 256, "fp16": 2048, "bf16": 2048, "int8": 4096},
    "ada": {"fp32": 256, "fp16": 1024, "bf16": 1024, "int8": 2048, "fp8": 2048},
    "ada-geforce": {"fp32": 256, "fp16": 1024, "bf16": 512, "int8": 2048, "fp8": 1024},
    "blackwell": {"fp32": 256, "fp16": 1024, "bf16": 1024, "int8": 2048, "fp8": 2048, "fp4": 4096},
    "blackwell-geforce": {"fp32": 256, "fp16": 1024, "bf16": 512, "int8": 2048, "fp8": 1024, "fp4": 4096},
}
_ARCH = {"kepler": "kepler", "maxwell": "maxwell", "pascal": "pascal", "pascal-gp100": "pascal", "volta": "volta",
         "turing": "turing", "turing-gtx": "turing", "ampere-ga100": "ampere", "ampere": "ampere",
         "ampere-geforce": "ampere", "ampere-orin": "ampere", "ada": "ada", "ada-geforce": "ada",
         "blackwell": "blackwell", "blackwell-geforce": "blackwell", "hopper": "hopper",
         "blackwell-dc": "blackwell"}
_CC = {"kepler": "3.7", "maxwell": "5.2", "pascal": "6.1", "pascal-gp100": "6.0", "volta": "7.0", "turing": "7.5",
       "turing-gtx": "7.5", "ampere-ga100": "8.0", "ampere": "8.6", "ampere-geforce": "8.6", "ampere-orin": "8.7",
       "ada": "8.9", "ada-geforce": "8.9", "hopper": "9.0", "blackwell-dc": "10.0", "blackwell": "12.0",
       "blackwell-geforce": "12.0"}
_NO_TENSOR = {"kepler", "maxwell", "pascal", "pascal-gp100", "turing-gtx"}

_SRC = {
    "kepler": "NVIDIA Tesla K80 datasheet (per GPU: 13 SMX, 875 MHz boost, 240 GB/s)",
    "maxwell": "NVIDIA Tesla M40 24GB datasheet (24 SMs, 1114 MHz boost, 288 GB/s, 7 TFLOPS FP32)",
    "pascal": "NVIDIA GeForce GTX 10 / Quadro P / Tesla P4, P40 product pages and datasheets (SMs, boost clock, "
              "bandwidth); FP32 = 2 x cores x boost; INT8 DP4A = 4 x FP32 (Tesla P40: 47 INT8 TOPS, 11.8 FP32)",
    "pascal-gp100": "NVIDIA Tesla P100 datasheet (PCIe 9.3/18.7, SXM2 10.6/21.2 TFLOPS FP32/FP16; 549/732 GB/s)",
    "volta": "NVIDIA Tesla V100 datasheet (SXM2 15.7/125, PCIe 14/112, V100S 16.4/130 TFLOPS FP32/tensor; "
             "900/1134 GB/s); TITAN V, Quadro GV100 product pages; INT8 by DP4A = 4 x FP32",
    "turing": "NVIDIA Turing GPU architecture whitepaper (RTX 2080 Ti: 107.6 TFLOPS FP16 tensor with FP16 "
              "accumulate, 215.2 INT8 TOPS; per SM 1024 FP16 / 2048 INT8 per clock) x SMs x boost; product pages",
    "turing-gtx": "NVIDIA GeForce GTX 16 product pages (TU116/TU117: no tensor cores; FP16 at 2 x FP32; DP4A)",
    "t4": "NVIDIA T4 datasheet: 8.1 TFLOPS FP32, 65 FP16 tensor, 130 INT8 TOPS, 320 GB/s, PCIe 3.0 x16",
    "a100": "NVIDIA A100 datasheet: 19.5 TFLOPS FP32, 312 FP16/BF16 tensor, 624 INT8 TOPS (dense); 40GB 1555 GB/s, "
            "80GB PCIe 1935 GB/s, 80GB SXM 2039 GB/s; NVLink 600 GB/s",
    "a30": "NVIDIA A30 datasheet: 10.3 TFLOPS FP32, 165 FP16/BF16, 330 INT8 TOPS, 933 GB/s, NVLink 200 GB/s",
    "ampere-geforce": "NVIDIA Ampere GA102 whitepaper (RTX 3090: 142 FP16-accumulate / 71 FP32-accumulate tensor "
                      "TFLOPS, 284 INT8 TOPS, dense) per-SM rates x SMs x boost; GeForce RTX 30 product pages",
    "ampere": "NVIDIA RTX A-series / A2 / A10 / A16 / A40 datasheets (A40: 149.7 FP16, 299.3 INT8 dense; A10: 125, "
              "250; "
              "RTX A6000: 309.7 sparse tensor TFLOPS) and GA102 whitepaper per-SM rates x SMs x boost",
    "orin": "NVIDIA Jetson AGX Orin series datasheet (64GB: 2048 cores / 64 tensor cores at 1.3 GHz, 170 sparse INT8 "
            "TOPS GPU; 32GB: 1792 / 56 at 930 MHz, 108; 204.8 GB/s LPDDR5 shared with the CPU)",
    "ada-geforce": "NVIDIA Ada Lovelace architecture whitepaper (RTX 4090: 330.3 FP16-accumulate / 165.2 "
                   "FP32-accumulate tensor TFLOPS, 660.6 INT8 TOPS, 330.3 FP8 FP32-accumulate, dense) per-SM rates x "
                   "SMs x boost; GeForce RTX 40 product pages",
    "ada": "NVIDIA L4 (121 FP16, 242.5 FP8/INT8), L20, L40 (181 FP16-FP32acc, 362 FP8), L40S (362 FP16, 733 FP8/INT8), "
           "RTX 6000 Ada (1457 sparse FP8) datasheets; RTX Ada product pages x Ada whitepaper per-SM rates",
    "hopper": "NVIDIA H100 datasheet (SXM 989/1979, PCIe 756/1513, NVL 835/1671 TFLOPS FP16/FP8 dense; 3350/2000/3900 "
              "GB/s), H200 (4800 GB/s; NVL 835/1671), H20 (148/296, 4000 GB/s), GH200 (96GB HBM3 4000 GB/s, "
              "144GB HBM3e 4900 GB/s; NVLink-C2C 900 GB/s)",
    "blackwell-geforce": "NVIDIA RTX Blackwell GPU architecture whitepaper (RTX 5090: 3352 AI TOPS = FP4 sparse, i.e. "
                         "4096 FP4 / 2048 FP8 / 1024 FP16 per SM per clock dense) x SMs x boost; GeForce RTX 50 pages",
    "blackwell": "NVIDIA RTX PRO Blackwell product pages (AI TOPS = FP4 sparse: PRO 6000 4000, Max-Q 3511, PRO 5000 "
                 "2064, PRO 4500 1687, PRO 4000 1178, PRO 2000 545; the boost clock is the one that reproduces them) "
                 "x RTX Blackwell whitepaper per-SM rates x SMs",
    "gb10": "NVIDIA DGX Spark datasheet: GB10, 1 PFLOP FP4 with sparsity, 128 GB LPDDR5x unified at 273 GB/s; "
            "48 SMs (6144 CUDA cores)",
    "blackwell-dc": "NVIDIA HGX B200/B100 and GB200 NVL72 datasheets, per GPU, dense = half of sparse: B200 2.25/4.5/9 "
                    "PFLOPS FP16/FP8/FP4, B100 1.75/3.5/7, GB200 2.5/5/10; 8 TB/s HBM3e; NVLink 1.8 TB/s",
}


def _row(name: str, kind: str, sms: int, boost: int, bw: float, mem: str, pcie: str = "4.0 x16",
         nvlink: float = 0.0, src: str | None = None, unified: bool = False, **printed: float | None) -> GpuSpec:
    """A card from its SM count and boost clock; `printed` overrides derived figures with datasheet ones."""
    rates = _PER_SM.get(kind, {})
    ghz_sms = sms * boost / 1e6  # SMs x GHz, so rate x this = TFLOPS

    def fig(key: str) -> float | None:
        if key in printed:
            return printed[key]
        r = rates.get(key)
        return round(r * ghz_sms, 1) if r else None

    fp32 = fig("fp32")
    return GpuSpec(name=name, arch=_ARCH[kind], compute_capability=_CC[kind], sms=sms, boost_mhz=boost,
                   mem_bw_gbs=bw, mem_type=mem, fp32=fp32 or 0.0, fp16=fig("fp16"), bf16=fig("bf16"),
                   int8=fig("int8"), fp8=fig("fp8"), fp4=fig("fp4"), pcie=pcie, nvlink_gbs=nvlink, unified=unified,
                   tensor_cores=kind not in _NO_TENSOR, source=_SRC[src or kind])


_G3, _G4, _G5 = "3.0 x16", "4.0 x16", "5.0 x16"

# fmt: off
_ROWS: tuple[GpuSpec, ...] = (
    # --- GeForce -----------------------------------------------------------------------------
    _row("GTX 1050 Ti 4GB", "pascal", 6, 1392, 112.1, "GDDR5", _G3),
    _row("GTX 1060 6GB", "pascal", 10, 1708, 192.2, "GDDR5", _G3),
    _row("GTX 1060 3GB", "pascal", 9, 1708, 192.2, "GDDR5", _G3),
    _row("GTX 1070 8GB", "pascal", 15, 1683, 256.3, "GDDR5", _G3),
    _row("GTX 1070 Ti 8GB", "pascal", 19, 1683, 256.3, "GDDR5", _G3),
    _row("GTX 1080 8GB", "pascal", 20, 1733, 320.3, "GDDR5X", _G3),
    _row("GTX 1080 Ti 11GB", "pascal", 28, 1582, 484.4, "GDDR5X", _G3),
    _row("TITAN X Pascal 12GB", "pascal", 28, 1531, 480.4, "GDDR5X", _G3),
    _row("TITAN Xp 12GB", "pascal", 30, 1582, 547.6, "GDDR5X", _G3),
    _row("GTX 1650 4GB", "turing-gtx", 14, 1665, 128.1, "GDDR5", _G3),
    _row("GTX 1650 SUPER 4GB", "turing-gtx", 20, 1725, 192.0, "GDDR6", _G3),
    _row("GTX 1660 6GB", "turing-gtx", 22, 1785, 192.1, "GDDR5", _G3),
    _row("GTX 1660 SUPER 6GB", "turing-gtx", 22, 1785, 336.0, "GDDR6", _G3),
    _row("GTX 1660 Ti 6GB", "turing-gtx", 24, 1770, 288.0, "GDDR6", _G3),
    _row("RTX 2060 6GB", "turing", 30, 1680, 336.0, "GDDR6", _G3),
    _row("RTX 2060 12GB", "turing", 34, 1650, 336.0, "GDDR6", _G3),
    _row("RTX 2060 SUPER 8GB", "turing", 34, 1650, 448.0, "GDDR6", _G3),
    _row("RTX 2070 8GB", "turing", 36, 1620, 448.0, "GDDR6", _G3),
    _row("RTX 2070 SUPER 8GB", "turing", 40, 1770, 448.0, "GDDR6", _G3),
    _row("RTX 2080 8GB", "turing", 46, 1710, 448.0, "GDDR6", _G3),
    _row("RTX 2080 SUPER 8GB", "turing", 48, 1815, 495.9, "GDDR6", _G3),
    _row("RTX 2080 Ti 11GB", "turing", 68, 1545, 616.0, "GDDR6", _G3, nvlink=100),
    _row("TITAN RTX 24GB", "turing", 72, 1770, 672.0, "GDDR6", _G3, nvlink=100),
    _row("TITAN V 12GB", "volta", 80, 1455, 651.3, "HBM2", _G3, fp16=110.0),
    _row("RTX 3050 8GB", "ampere-geforce", 20, 1777, 224.0, "GDDR6", "4.0 x8", src="ampere-geforce"),
    _row("RTX 3060 12GB", "ampere-geforce", 28, 1777, 360.0, "GDDR6"),
    _row("RTX 3060 Ti 8GB", "ampere-geforce", 38, 1665, 448.0, "GDDR6"),
    _row("RTX 3070 8GB", "ampere-geforce", 46, 1725, 448.0, "GDDR6"),
    _row("RTX 3070 Ti 8GB", "ampere-geforce", 48, 1770, 608.3, "GDDR6X"),
    _row("RTX 3080 10GB", "ampere-geforce", 68, 1710, 760.3, "GDDR6X"),
    _row("RTX 3080 12GB", "ampere-geforce", 70, 1710, 912.4, "GDDR6X"),
    _row("RTX 3080 Ti 12GB", "ampere-geforce", 80, 1665, 912.4, "GDDR6X"),
    _row("RTX 3090 24GB", "ampere-geforce", 82, 1695, 936.2, "GDDR6X", nvlink=112.5),
    _row("RTX 3090 Ti 24GB", "ampere-geforce", 84, 1860, 1008.0, "GDDR6X", nvlink=112.5),
    _row("RTX 4060 8GB", "ada-geforce", 24, 2460, 272.0, "GDDR6", "4.0 x8"),
    _row("RTX 4060 Ti 16GB", "ada-geforce", 34, 2535, 288.0, "GDDR6", "4.0 x8"),
    _row("RTX 4060 Ti 8GB", "ada-geforce", 34, 2535, 288.0, "GDDR6", "4.0 x8"),
    _row("RTX 4070 12GB", "ada-geforce", 46, 2475, 504.2, "GDDR6X"),
    _row("RTX 4070 SUPER 12GB", "ada-geforce", 56, 2475, 504.2, "GDDR6X"),
    _row("RTX 4070 Ti 12GB", "ada-geforce", 60, 2610, 504.2, "GDDR6X"),
    _row("RTX 4070 Ti SUPER 16GB", "ada-geforce", 66, 2610, 672.3, "GDDR6X"),
    _row("RTX 4080 16GB", "ada-geforce", 76, 2505, 716.8, "GDDR6X"),
    _row("RTX 4080 SUPER 16GB", "ada-geforce", 80, 2550, 736.3, "GDDR6X"),
    _row("RTX 4090 24GB", "ada-geforce", 128, 2520, 1008.0, "GDDR6X"),
    _row("RTX 4090 D 24GB", "ada-geforce", 114, 2520, 1008.0, "GDDR6X"),
    _row("RTX 5050 8GB", "blackwell-geforce", 20, 2572, 320.0, "GDDR6", "5.0 x8"),
    _row("RTX 5060 8GB", "blackwell-geforce", 30, 2497, 448.0, "GDDR7", "5.0 x8"),
    _row("RTX 5060 Ti 16GB", "blackwell-geforce", 36, 2572, 448.0, "GDDR7", "5.0 x8"),
    _row("RTX 5060 Ti 8GB", "blackwell-geforce", 36, 2572, 448.0, "GDDR7", "5.0 x8"),
    _row("RTX 5070 12GB", "blackwell-geforce", 48, 2512, 672.0, "GDDR7", _G5),
    _row("RTX 5070 Ti 16GB", "blackwell-geforce", 70, 2452, 896.0, "GDDR7", _G5),
    _row("RTX 5080 16GB", "blackwell-geforce", 84, 2617, 960.0, "GDDR7", _G5),
    _row("RTX 5090 32GB", "blackwell-geforce", 170, 2407, 1792.0, "GDDR7", _G5),
    # --- laptops (boost clocks are the top of NVIDIA's range; OEMs ship lower power limits) ------
    _row("RTX 3060 Laptop 6GB", "ampere-geforce", 30, 1425, 336.0, "GDDR6"),
    _row("RTX 3070 Laptop 8GB", "ampere-geforce", 40, 1560, 448.0, "GDDR6"),
    _row("RTX 3080 Laptop 16GB", "ampere-geforce", 48, 1545, 448.0, "GDDR6"),
    _row("RTX 3080 Ti Laptop 16GB", "ampere-geforce", 58, 1260, 512.0, "GDDR6"),
    _row("RTX 4050 Laptop 6GB", "ada-geforce", 20, 1755, 192.0, "GDDR6", "4.0 x8"),
    _row("RTX 4060 Laptop 8GB", "ada-geforce", 24, 1890, 256.0, "GDDR6", "4.0 x8"),
    _row("RTX 4070 Laptop 8GB", "ada-geforce", 36, 1695, 256.0, "GDDR6", "4.0 x8"),
    _row("RTX 4080 Laptop 12GB", "ada-geforce", 58, 1665, 432.0, "GDDR6"),
    _row("RTX 4090 Laptop 16GB", "ada-geforce", 76, 1695, 576.0, "GDDR6"),
    _row("RTX 5070 Laptop 8GB", "blackwell-geforce", 36, 1425, 384.0, "GDDR7", _G5),
    _row("RTX 5070 Ti Laptop 12GB", "blackwell-geforce", 46, 1447, 672.0, "GDDR7", _G5),
    _row("RTX 5080 Laptop 16GB", "blackwell-geforce", 60, 1500, 896.0, "GDDR7", _G5),
    _row("RTX 5090 Laptop 24GB", "blackwell-geforce", 82, 1515, 896.0, "GDDR7", _G5),
    # --- workstation -------------------------------------------------------------------------
    _row("Quadro P4000 8GB", "pascal", 14, 1480, 243.3, "GDDR5", _G3),
    _row("Quadro P5000 16GB", "pascal", 20, 1733, 288.5, "GDDR5X", _G3),
    _row("Quadro P6000 24GB", "pascal", 30, 1645, 432.8, "GDDR5X", _G3),
    _row("Quadro GV100 32GB", "volta", 80, 1627, 868.4, "HBM2", _G3, nvlink=200, fp16=118.5),
    _row("Quadro RTX 4000 8GB", "turing", 36, 1545, 416.0, "GDDR6", _G3),
    _row("Quadro RTX 5000 16GB", "turing", 48, 1815, 448.0, "GDDR6", _G3, nvlink=100),
    _row("Quadro RTX 6000 24GB", "turing", 72, 1770, 672.0, "GDDR6", _G3, nvlink=100),
    _row("Quadro RTX 8000 48GB", "turing", 72, 1770, 672.0, "GDDR6", _G3, nvlink=100),
    _row("RTX A2000 12GB", "ampere", 26, 1200, 288.0, "GDDR6"),
    _row("RTX A4000 16GB", "ampere", 48, 1560, 448.0, "GDDR6"),
    _row("RTX A4500 20GB", "ampere", 56, 1650, 640.0, "GDDR6", nvlink=112.5),
    _row("RTX A5000 24GB", "ampere", 64, 1695, 768.0, "GDDR6", nvlink=112.5),
    _row("RTX A5500 24GB", "ampere", 80, 1665, 768.0, "GDDR6", nvlink=112.5),
    _row("RTX A6000 48GB", "ampere", 84, 1800, 768.0, "GDDR6", nvlink=112.5),
    _row("RTX 2000 Ada 16GB", "ada", 22, 2130, 224.0, "GDDR6", "4.0 x8"),
    _row("RTX 4000 SFF Ada 20GB", "ada", 48, 1560, 280.0, "GDDR6"),
    _row("RTX 4000 Ada 20GB", "ada", 48, 2175, 360.0, "GDDR6"),
    _row("RTX 4500 Ada 24GB", "ada", 60, 2580, 432.0, "GDDR6"),
    _row("RTX 5000 Ada 32GB", "ada", 100, 2550, 576.0, "GDDR6"),
    _row("RTX 5880 Ada 48GB", "ada", 110, 2460, 960.0, "GDDR6"),
    _row("RTX 6000 Ada 48GB", "ada", 142, 2505, 960.0, "GDDR6"),
    _row("RTX PRO 2000 Blackwell 16GB", "blackwell", 34, 1957, 288.0, "GDDR7", "5.0 x8"),
    _row("RTX PRO 4000 Blackwell 24GB", "blackwell", 70, 2055, 672.0, "GDDR7", _G5),
    _row("RTX PRO 4500 Blackwell 32GB", "blackwell", 82, 2511, 896.0, "GDDR7", _G5),
    _row("RTX PRO 5000 Blackwell 48GB", "blackwell", 110, 2290, 1344.0, "GDDR7", _G5),
    _row("RTX PRO 6000 Blackwell 96GB", "blackwell", 188, 2617, 1792.0, "GDDR7", _G5),
    _row("RTX PRO 6000 Blackwell Max-Q 96GB", "blackwell", 188, 2280, 1792.0, "GDDR7", _G5),
    # --- data centre and embedded ------------------------------------------------------------
    _row("K80 12GB", "kepler", 13, 875, 240.6, "GDDR5", _G3, fp32=4.37),
    _row("M40 24GB", "maxwell", 24, 1114, 288.4, "GDDR5", _G3, fp32=7.0),
    _row("P4 8GB", "pascal", 20, 1114, 192.0, "GDDR5", _G3, fp32=5.5, int8=22.0),
    _row("P40 24GB", "pascal", 30, 1531, 347.1, "GDDR5", _G3, fp32=11.8, int8=47.0),
    _row("P100 16GB", "pascal-gp100", 56, 1303, 732.0, "HBM2", _G3, fp32=9.3, fp16=18.7),
    _row("P100 12GB", "pascal-gp100", 56, 1303, 549.0, "HBM2", _G3, fp32=9.3, fp16=18.7),
    _row("P100 SXM2 16GB", "pascal-gp100", 56, 1480, 732.0, "HBM2", _G3, nvlink=160, fp32=10.6, fp16=21.2),
    _row("V100 16GB", "volta", 80, 1530, 900.0, "HBM2", _G3, nvlink=300, fp32=15.7, fp16=125.0),
    _row("V100 PCIe 16GB", "volta", 80, 1380, 900.0, "HBM2", _G3, fp32=14.0, fp16=112.0),
    _row("V100 32GB", "volta", 80, 1530, 900.0, "HBM2", _G3, nvlink=300, fp32=15.7, fp16=125.0),
    _row("V100 PCIe 32GB", "volta", 80, 1380, 900.0, "HBM2", _G3, fp32=14.0, fp16=112.0),
    _row("V100S PCIe 32GB", "volta", 80, 1597, 1134.0, "HBM2", _G3, fp32=16.4, fp16=130.0),
    _row("T4 16GB", "turing", 40, 1590, 320.0, "GDDR6", _G3, src="t4", fp32=8.1, fp16=65.0, int8=130.0),
    _row("A2 16GB", "ampere", 10, 1770, 200.0, "GDDR6", "4.0 x8", fp16=18.0, bf16=18.0, int8=36.0),
    _row("A10 24GB", "ampere", 72, 1695, 600.0, "GDDR6", fp32=31.2, fp16=125.0, bf16=125.0, int8=250.0),
    _row("A10G 24GB", "ampere", 72, 1710, 600.0, "GDDR6"),
    _row("A16 16GB", "ampere", 10, 1755, 200.0, "GDDR6"),
    _row("A30 24GB", "ampere-ga100", 56, 1440, 933.0, "HBM2", nvlink=200, src="a30",
         fp32=10.3, fp16=165.0, bf16=165.0, int8=330.0),
    _row("A40 48GB", "ampere", 84, 1740, 696.0, "GDDR6", nvlink=112.5, fp32=37.4, fp16=149.7, bf16=149.7, int8=299.3),
    _row("L4 24GB", "ada", 58, 2040, 300.0, "GDDR6", fp32=30.3, fp16=121.0, bf16=121.0, int8=242.5, fp8=242.5),
    _row("L20 48GB", "ada", 92, 2520, 864.0, "GDDR6", fp32=59.8, bf16=119.5, int8=239.0, fp8=239.0),
    _row("L40 48GB", "ada", 142, 2490, 864.0, "GDDR6", fp32=90.5, fp16=362.0, bf16=181.0, int8=362.0, fp8=362.0),
    _row("L40S 48GB", "ada", 142, 2520, 864.0, "GDDR6", fp32=91.6, fp16=362.0, bf16=362.0, int8=733.0, fp8=733.0),
    _row("A100 40GB", "ampere-ga100", 108, 1410, 1555.0, "HBM2", nvlink=600, src="a100",
         fp32=19.5, fp16=312.0, bf16=312.0, int8=624.0),
    _row("A100 80GB", "ampere-ga100", 108, 1410, 2039.0, "HBM2e", nvlink=600, src="a100",
         fp32=19.5, fp16=312.0, bf16=312.0, int8=624.0),
    _row("A100 PCIe 80GB", "ampere-ga100", 108, 1410, 1935.0, "HBM2e", nvlink=600, src="a100",
         fp32=19.5, fp16=312.0, bf16=312.0, int8=624.0),
    _row("H100 80GB", "hopper", 132, 1980, 3350.0, "HBM3", _G5, nvlink=900,
         fp32=67.0, fp16=989.4, bf16=989.4, int8=1978.9, fp8=1978.9),
    _row("H100 PCIe 80GB", "hopper", 114, 1755, 2000.0, "HBM2e", _G5, nvlink=600,
         fp32=51.0, fp16=756.0, bf16=756.0, int8=1513.0, fp8=1513.0),
    _row("H100 NVL 94GB", "hopper", 132, 1785, 3900.0, "HBM3", _G5, nvlink=600,
         fp32=60.0, fp16=835.5, bf16=835.5, int8=1670.5, fp8=1670.5),
    _row("H20 96GB", "hopper", 78, 1755, 4000.0, "HBM3", _G5, nvlink=900,
         fp32=44.0, fp16=148.0, bf16=148.0, int8=296.0, fp8=296.0),
    _row("GH200 96GB", "hopper", 132, 1980, 4000.0, "HBM3", _G5, nvlink=900,
         fp32=67.0, fp16=989.4, bf16=989.4, int8=1978.9, fp8=1978.9),
    _row("GH200 144GB", "hopper", 132, 1980, 4900.0, "HBM3e", _G5, nvlink=900,
         fp32=67.0, fp16=989.4, bf16=989.4, int8=1978.9, fp8=1978.9),
    _row("H200 141GB", "hopper", 132, 1980, 4800.0, "HBM3e", _G5, nvlink=900,
         fp32=67.0, fp16=989.4, bf16=989.4, int8=1978.9, fp8=1978.9),
    _row("H200 NVL 141GB", "hopper", 132, 1785, 4800.0, "HBM3e", _G5, nvlink=900,
         fp32=60.0, fp16=835.5, bf16=835.5, int8=1670.5, fp8=1670.5),
    _row("B100 192GB", "blackwell-dc", 148, 1965, 8000.0, "HBM3e", "6.0 x16", nvlink=1800,
         fp32=60.0, fp16=1750.0, bf16=1750.0, int8=3500.0, fp8=3500.0, fp4=7000.0),
    _row("B200 180GB", "blackwell-dc", 148, 1965, 8000.0, "HBM3e", "6.0 x16", nvlink=1800,
         fp32=75.0, fp16=2250.0, bf16=2250.0, int8=4500.0, fp8=4500.0, fp4=9000.0),
    _row("GB200 186GB", "blackwell-dc", 148, 1965, 8000.0, "HBM3e", "6.0 x16", nvlink=1800,
         fp32=80.0, fp16=2500.0, bf16=2500.0, int8=5000.0, fp8=5000.0, fp4=10000.0),
    _row("Jetson AGX Orin 64GB", "ampere-orin", 16, 1300, 204.8, "LPDDR5", "4.0 x4", src="orin", unified=True),
    _row("Jetson AGX Orin 32GB", "ampere-orin", 14, 930, 204.8, "LPDDR5", "4.0 x4", src="orin", unified=True),
    _row("GB10 128GB", "blackwell", 48, 2418, 273.0, "LPDDR5X", _G5, src="gb10", unified=True,
         fp16=125.0, bf16=125.0, int8=250.0, fp8=250.0, fp4=500.0),
)
# fmt: on

SPECS: dict[str, GpuSpec] = {s.name: s for s in _ROWS}
NVIDIA_NAMES = tuple(g.name for g in GPUS if g.vendor == "NVIDIA")


def gpu_spec(reported: str, memory_mib: float | None = None) -> GpuSpec | None:
    """The speed facts of the card a reported name means, or None when this table does not know it."""
    m = match_gpu(reported, memory_mib)
    return SPECS.get(m.gpu.name) if m else None


def nvml_bandwidth_gbs(memory_clock_mhz: float, bus_width_bits: int) -> float:
    """Peak bandwidth from NVML's max memory clock and bus width. NVML reports half the data rate for
    every memory type (RTX 4090: 10501 MHz x 2 x 384 bit / 8 = 1008 GB/s; H100 SXM: 2619 MHz, 5120 bit ->
    3352 GB/s; A100 80GB SXM: 1593 MHz -> 2039 GB/s)."""
    return 2.0 * memory_clock_mhz * bus_width_bits / 8 / 1000


#: CUDA cores per SM by compute capability (CUDA C Programming Guide, "Arithmetic Instructions" table:
#: FP32 results per clock per SM): Kepler 192, GP100/Volta/Turing/GA100 64, the rest 128.
_CORES_PER_SM = {(3,): 192, (5,): 128, (6, 0): 64, (6,): 128, (7,): 64, (8, 0): 64, (8,): 128, (9,): 128,
                 (10,): 128, (12,): 128}


def sm_count_from_cores(cores: int, compute_capability: tuple[int, int]) -> int:
    """SMs from NVML's CUDA core count (`nvmlDeviceGetNumGpuCores`), which NVML does not give directly."""
    major, minor = compute_capability
    per = _CORES_PER_SM.get((major, minor)) or _CORES_PER_SM.get((major,)) or 128
    return max(1, round(cores / per))


def _kind_for(cc: tuple[int, int], geforce: bool) -> str:
    major, minor = cc
    if major >= 10 and major < 12:
        return "blackwell"
    table = {(3,): "kepler", (5,): "maxwell", (6, 0): "pascal-gp100", (6,): "pascal", (7, 0): "volta",
             (7, 2): "volta", (7,): "turing", (8, 0): "ampere-ga100", (8, 7): "ampere-orin", (8, 9): "ada",
             (8,): "ampere", (9,): "ampere-ga100", (12,): "blackwell"}
    kind = table.get((major, minor)) or table.get((major,)) or "ampere"
    if geforce and f"{kind}-geforce" in _PER_SM:
        kind = f"{kind}-geforce"
    return kind


def spec_from_nvml(name: str, memory_clock_mhz: float, bus_width_bits: int, compute_capability: tuple[int, int],
                   sm_count: int = 0, sm_clock_mhz: float = 0.0) -> GpuSpec:
    """An approximate row for a card the table does not know, from NVML readings: bandwidth from the
    memory clock and bus width, tensor figures from the per-SM rates of its architecture (compute
    capability) when the SM count and clock are known. Hopper-class SMs (cc 9.x) are taken at GA100
    rates, which under-states them: a new data-centre card should get a row of its own."""
    kind = _kind_for(compute_capability, "geforce" in name.lower())
    base = _row(name, kind, sm_count, int(sm_clock_mhz), nvml_bandwidth_gbs(memory_clock_mhz, bus_width_bits),
                "unknown", src=kind if kind in _SRC else "ampere")
    return replace(base, compute_capability=f"{compute_capability[0]}.{compute_capability[1]}", known=False,
                   source=f"estimated from NVML (memory clock {memory_clock_mhz:g} MHz x {bus_width_bits} bit; "
                          f"{sm_count} SMs at {sm_clock_mhz:g} MHz; compute capability "
                          f"{compute_capability[0]}.{compute_capability[1]})")


# --- the card behind a planned GPU (core/model.Device.card) ------------------------------------------
#: What a planned GPU without speed facts says instead of a speed.
NOT_NVIDIA = "speed unknown: {name} is not an NVIDIA card (the speed model covers NVIDIA GPUs)"


def catalog_card(name: str) -> tuple[GpuSpec | None, str]:
    """A what-if card (a catalog name): its speed facts, or why there are none."""
    spec = SPECS.get(name)
    return (spec, "") if spec else (None, NOT_NVIDIA.format(name=name))


def named_card(query: str) -> GpuSpec:
    """The card a user named (`--gpu-model "RTX 4090"`): unambiguous, like `--what-if`."""
    try:
        g = find_gpu(query)
    except LanderError as err:  # the catalog speaks of --what-if; here the user typed --gpu-model
        raise LanderError(str(err).replace("what-if GPU or instance", "GPU").replace("--what-if", "--gpu-model")
                          .replace(" (all: lander-tui gpus --gpu-model list)", "")) from None
    spec = SPECS.get(g.name)
    if spec is None:
        raise LanderError(NOT_NVIDIA.format(name=g.name))
    return spec


@lru_cache(maxsize=64)
def live_card(reported: str, memory_mib: float | None = None, memory_clock_mhz: float | None = None,
              bus_width_bits: int | None = None, compute_capability: tuple[int, int] | None = None,
              sm_count: int = 0, sm_clock_mhz: float = 0.0) -> tuple[GpuSpec | None, str]:
    """A live GPU by its NVML name (and memory, to tell variants apart); a card the table does not
    know is built from NVML's clocks when the backend reports them (`spec_from_nvml`), else None and
    why. Cached: the dashboard asks once a second."""
    spec = gpu_spec(reported, memory_mib)
    if spec is not None:
        return spec, ""
    if memory_clock_mhz and bus_width_bits and compute_capability:
        return spec_from_nvml(reported, memory_clock_mhz, bus_width_bits, compute_capability, sm_count,
                              sm_clock_mhz), ""
    return None, (f"speed unknown: {reported} is not in lander-tui's GPU table and NVML reports no memory clock; "
                  "name the card with --gpu-model")
