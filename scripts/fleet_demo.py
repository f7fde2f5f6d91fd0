"""A small fake GPU fleet behind a real Prometheus, for trying `--prometheus` by hand.

    uv run python scripts/fleet_demo.py                # prints `lander-tui gpus --prometheus` and exits
    uv run python scripts/fleet_demo.py --hold         # keeps it running; prints the URL to use

Hosts: gpu-a (dcgm-exporter, 8 x H100, light jobs), gpu-b (dcgm-exporter, 4 x A100 busy),
gpu-c (dcgm-exporter, 2 x L40S, stops answering after --kill-after seconds), gpu-d
(nvitop-exporter, 2 x RTX 4090 with a llama-server). Everything listens on 127.0.0.1 only.
Needs Debian's prometheus (apt-get install prometheus).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.prom_fixtures import DcgmHost, Exporter, Gpu, NvitopHost, Prometheus  # noqa: E402


def hosts() -> dict[str, DcgmHost | NvitopHost]:
    def uuid(tag: str, i: int) -> str:
        return f"GPU-{tag}{i:07d}-0000-4000-8000-000000000000"

    return {
        "a": DcgmHost("gpu-a", [Gpu(uuid("a", i), used=(i % 3) * 9000, util=(i % 3) * 30, temp=34 + i,
                                    power=90 + 40 * (i % 3)) for i in range(8)]),
        "b": DcgmHost("gpu-b", [Gpu(uuid("b", i), model="NVIDIA A100-SXM4-80GB", total=81920, reserved=0,
                                    used=76000 + 500 * i, util=98, temp=72, power=395.5) for i in range(4)]),
        "c": DcgmHost("gpu-c", [Gpu(uuid("c", i), model="NVIDIA L40S", total=46068, reserved=500, used=1200)
                                for i in range(2)]),
        "d": NvitopHost("gpu-d", [Gpu(uuid("d", i), model="NVIDIA GeForce RTX 4090", total=24564, reserved=347,
                                      used=10400 if i == 0 else 0, util=70 if i == 0 else 0, power=300.0,
                                      power_cap=450.0, processes=[{"pid": 27181, "user": "ana", "used": 10400,
                                                                   "command": "llama-server -m qwen3-8b-q4_k_m.gguf"}]
                                      if i == 0 else []) for i in range(2)]),
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hold", action="store_true", help="keep running until Ctrl-C")
    ap.add_argument("--kill-after", type=float, default=8.0, help="seconds until gpu-c stops answering")
    args = ap.parse_args()
    exporters = {k: Exporter(h) for k, h in hosts().items()}
    with tempfile.TemporaryDirectory() as tmp:
        prom = Prometheus(Path(tmp), {"dcgm": [exporters[k].address for k in "abc"],
                                      "nvitop": [exporters["d"].address]})
        try:
            prom.wait_ready()
            threading.Timer(args.kill_after, exporters["c"].stop).start()
            time.sleep(args.kill_after + 3)
            cmd = [sys.executable, "-m", "lander_tui", "gpus", "--prometheus", prom.url]
            print("$ lander-tui gpus --prometheus", prom.url, flush=True)
            subprocess.run(cmd, check=False)
            if args.hold:
                print(f"\nPrometheus at {prom.url}; try: lander-tui --prometheus {prom.url}   (Ctrl-C here stops)",
                      flush=True)
                while True:
                    time.sleep(3600)
        except KeyboardInterrupt:
            pass
        finally:
            prom.stop()
            for e in exporters.values():
                e.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
