"""Host RAM bandwidth: what layers and experts left on the CPU are read at, per decoded token.

Read from the machine's SMBIOS memory-device records (type 17) in /sys/firmware/dmi/tables/DMI,
the same table `dmidecode` decodes, without running it: each installed module's data width and
configured speed, and the channel it sits on (from its locator strings). Peak bandwidth is
channels x 8 bytes x MT/s. The file is readable by root only; elsewhere, or when it says too
little, the documented default is used and says so. A user's figure always wins.
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

DMI_TABLES = "/sys/firmware/dmi/tables/DMI"
#: Read this file instead (tests and recorded outputs set it so they do not depend on the machine).
DMI_ENV = "LANDER_TUI_DMI_TABLES"
#: Dual-channel DDR5-4800, the most common desktop configuration of 2023-2026: 2 x 8 bytes x 4800 MT/s.
DEFAULT_GBS = 76.8
_MEMORY_DEVICE = 17
_END_OF_TABLE = 127
# "P0 CHANNEL A", "ChannelB-DIMM0", "DIMM_A1", "CPU1_DIMM_C2", "A1" -> the channel letter
_CHANNEL = re.compile(r"channel\s*([a-z0-9]+)|dimm[_\s-]?([a-z])\d|^([a-z])\d$", re.IGNORECASE)


@dataclass(frozen=True)
class HostMemory:
    gbs: float
    source: str  # "user", "smbios: 2 channels x DDR at 5200 MT/s", "default (...)"
    modules: int = 0


@dataclass(frozen=True)
class _Module:
    width_bits: int
    speed_mts: int
    locator: str
    bank: str


def _strings(blob: bytes, start: int) -> tuple[list[str], int]:
    """The string set after a structure's formatted area, and where the next structure starts."""
    end = blob.find(b"\x00\x00", start)
    if end < 0:
        return [], len(blob)
    raw = blob[start:end]
    return [s.decode("ascii", "replace") for s in raw.split(b"\x00")] if raw else [], end + 2


def _string(strings: list[str], idx: int) -> str:
    return strings[idx - 1] if 0 < idx <= len(strings) else ""


def memory_modules(blob: bytes) -> list[_Module]:
    """Installed modules from a raw SMBIOS table (DMI tables file), per SMBIOS 3.x type 17 layout:
    0x0A data width, 0x0C size (0 = empty slot), 0x10/0x11 device/bank locator strings, 0x15 speed,
    0x20 configured speed (MT/s; preferred when present)."""
    out: list[_Module] = []
    i = 0
    while i + 4 <= len(blob):
        kind, length = blob[i], blob[i + 1]
        if length < 4:
            break
        strings, nxt = _strings(blob, i + length)
        if kind == _MEMORY_DEVICE and length >= 0x17:
            data = blob[i:i + length]
            width = struct.unpack_from("<H", data, 0x0A)[0]
            size = struct.unpack_from("<H", data, 0x0C)[0]
            speed = struct.unpack_from("<H", data, 0x15)[0]
            if length >= 0x22:
                speed = struct.unpack_from("<H", data, 0x20)[0] or speed
            if size not in (0, 0xFFFF) and width not in (0, 0xFFFF) and speed:
                out.append(_Module(width, speed, _string(strings, data[0x10]), _string(strings, data[0x11])))
        if kind == _END_OF_TABLE:
            break
        i = nxt
    return out


def _channel(m: _Module) -> str | None:
    for text in (m.bank, m.locator):
        hit = _CHANNEL.search(text.strip())
        if hit:
            node = re.search(r"(?:P|CPU|NODE)\s*(\d)", text, re.IGNORECASE)
            return f"{node.group(1) if node else ''}{next(g for g in hit.groups() if g).upper()}"
    return None


def bandwidth_from_modules(modules: list[_Module]) -> tuple[float, int]:
    """Peak GB/s and channel count: modules on the same channel share it (2 DIMMs per channel add
    capacity, not bandwidth); without channel names each module counts as its own channel."""
    if not modules:
        return 0.0, 0
    chans: dict[str, _Module] = {}
    for k, m in enumerate(modules):
        chans.setdefault(_channel(m) or f"#{k}", m)
    gbs = sum(m.width_bits / 8 * m.speed_mts for m in chans.values()) / 1000
    return gbs, len(chans)


def host_memory_bandwidth(override_gbs: float | None = None, tables: str | Path | None = None) -> HostMemory:
    """The user's figure, else what this machine's SMBIOS says (`$LANDER_TUI_DMI_TABLES` or the
    kernel's copy), else the documented default; read once per file."""
    return _host_memory(override_gbs, tables or os.environ.get(DMI_ENV) or DMI_TABLES)


@lru_cache(maxsize=8)
def _host_memory(override_gbs: float | None, tables: str | Path) -> HostMemory:
    if override_gbs:
        return HostMemory(float(override_gbs), "user")
    try:
        blob = Path(tables).read_bytes()
    except OSError:
        return HostMemory(DEFAULT_GBS, "default (SMBIOS table not readable: run as root or give the figure)")
    modules = memory_modules(blob)
    gbs, channels = bandwidth_from_modules(modules)
    if gbs <= 0:
        return HostMemory(DEFAULT_GBS, "default (no memory modules in the SMBIOS table)")
    speeds = sorted({m.speed_mts for m in modules})
    return HostMemory(gbs, f"smbios: {channels} channel(s) at {'/'.join(map(str, speeds))} MT/s", len(modules))
