"""On-disk cache of what we learned about Hub models, so a second look is instant and works offline.

One JSON file per repo holds the model profile (the spec in the project's own `ModelSpec.to_dict`
format, GGUF files and sizes, parameters per dtype); one more file per GGUF quant whose header we
read holds that file's tensor table. The folder is `$LANDER_TUI_CACHE_DIR`, else
`$XDG_CACHE_HOME/lander-tui`, else `~/.cache/lander-tui`. Files are written atomically and a
damaged or old-format file is treated as missing, never as an error.

This module does not import `huggingface_hub`: loading a profile must stay fast (< 50 ms).
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lander_tui.core.model_spec import ModelSpec
from lander_tui.core.tensors import Tensor

if TYPE_CHECKING:
    from lander_tui.core.model import Projector

FORMAT_VERSION = 1
_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def cache_dir() -> Path:
    """The lander-tui cache folder (not created here)."""
    override = os.environ.get("LANDER_TUI_CACHE_DIR")
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "lander-tui"


def profiles_dir() -> Path:
    return cache_dir() / "profiles"


def _stem(repo: str) -> str:
    return _SAFE.sub("_", repo.replace("/", "--"))


def profile_path(repo: str) -> Path:
    return profiles_dir() / f"{_stem(repo)}.json"


def gguf_header_path(repo: str, quant: str) -> Path:
    return profiles_dir() / f"{_stem(repo)}@{_SAFE.sub('_', quant.upper())}.json"


@dataclass(frozen=True)
class HubProfile:
    """What the Hub told us about one repo (everything but per-file tensor tables)."""

    repo: str
    spec: ModelSpec
    gguf_files: dict[str, int] = field(default_factory=dict)  # quant -> bytes (split parts summed)
    gguf_filenames: dict[str, list[str]] = field(default_factory=dict)  # quant -> file names in order
    dtype_params: dict[str, int] = field(default_factory=dict)  # safetensors dtype -> parameters
    spec_source: str = "config.json"  # or the GGUF file the spec was read from
    mmproj_files: dict[str, int] = field(default_factory=dict)  # vision projector GGUF file -> bytes
    gated: bool = False
    downloads: int | None = None
    likes: int | None = None
    sha: str | None = None
    fetched_at: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "repo": self.repo,
            "fetched_at": self.fetched_at,
            "spec": self.spec.to_dict(),
            "spec_source": self.spec_source,
            "gguf_files": self.gguf_files,
            "gguf_filenames": self.gguf_filenames,
            "dtype_params": self.dtype_params,
            "mmproj_files": self.mmproj_files,
            "gated": self.gated,
            "downloads": self.downloads,
            "likes": self.likes,
            "sha": self.sha,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> HubProfile:
        return cls(
            repo=str(d["repo"]),
            spec=ModelSpec.from_dict(d["spec"]),
            gguf_files={str(k): int(v) for k, v in (d.get("gguf_files") or {}).items()},
            gguf_filenames={str(k): [str(x) for x in v] for k, v in (d.get("gguf_filenames") or {}).items()},
            dtype_params={str(k): int(v) for k, v in (d.get("dtype_params") or {}).items()},
            spec_source=str(d.get("spec_source") or "config.json"),
            mmproj_files={str(k): int(v) for k, v in (d.get("mmproj_files") or {}).items()},
            gated=bool(d.get("gated")),
            downloads=d.get("downloads"),
            likes=d.get("likes"),
            sha=d.get("sha"),
            fetched_at=float(d.get("fetched_at") or 0.0),
        )


@dataclass(frozen=True)
class GgufHeader:
    """The tensor table of one GGUF quant of a repo (all split parts together)."""

    repo: str
    quant: str
    file_type: str | None
    file_size: int
    tensors: tuple[Tensor, ...]
    fetched_at: float = 0.0
    spec: ModelSpec | None = None  # the shape this file's own metadata describes

    def to_json(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "repo": self.repo,
            "quant": self.quant,
            "spec": self.spec.to_dict() if self.spec else None,
            "file_type": self.file_type,
            "file_size": self.file_size,
            "fetched_at": self.fetched_at,
            # compact rows: name, row, rows, layer, n_experts, ggml type, bytes
            "tensors": [[t.name, t.row, t.rows, t.layer, t.n_experts, t.ggml_type, t.nbytes]
                        for t in self.tensors],
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> GgufHeader:
        return cls(
            repo=str(d["repo"]),
            quant=str(d["quant"]),
            file_type=d.get("file_type"),
            file_size=int(d.get("file_size") or 0),
            tensors=tuple(Tensor(str(n), int(r), int(rs), ly, int(e), ty, nb) for n, r, rs, ly, e, ty, nb
                          in d["tensors"]),
            fetched_at=float(d.get("fetched_at") or 0.0),
            spec=ModelSpec.from_dict(d["spec"]) if d.get("spec") else None,
        )


def _write_json(path: Path, data: dict[str, Any]) -> Path:
    """Write atomically so a crash or a second process never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, separators=(",", ":")), encoding="utf-8")
    os.replace(tmp, path)
    return path


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(data, dict) or data.get("version") != FORMAT_VERSION:
        return None
    return data


def save_profile(profile: HubProfile) -> Path | None:
    """Store a profile; returns its path, or None when the cache folder is not writable (not fatal)."""
    if not profile.fetched_at:
        profile = replace(profile, fetched_at=time.time())
    try:
        return _write_json(profile_path(profile.repo), profile.to_json())
    except OSError:
        return None


def load_profile(repo: str) -> HubProfile | None:
    """The cached profile of `repo`, or None when absent or unreadable."""
    data = _read_json(profile_path(repo))
    if data is None or str(data.get("repo", "")).lower() != repo.lower():
        return None
    try:
        return HubProfile.from_json(data)
    except Exception:  # a damaged profile is a cache miss, whatever broke in it
        return None


def save_gguf_header(header: GgufHeader) -> Path | None:
    if not header.fetched_at:
        header = replace(header, fetched_at=time.time())
    try:
        return _write_json(gguf_header_path(header.repo, header.quant), header.to_json())
    except OSError:
        return None


def load_gguf_header(repo: str, quant: str) -> GgufHeader | None:
    data = _read_json(gguf_header_path(repo, quant))
    if data is None or str(data.get("repo", "")).lower() != repo.lower():
        return None
    try:
        return GgufHeader.from_json(data)
    except Exception:  # a damaged file is a cache miss
        return None


def projector_path(repo: str, filename: str) -> Path:
    return profiles_dir() / f"{_stem(repo)}@mmproj@{_SAFE.sub('_', filename)}.json"


def save_projector(repo: str, projector: Projector) -> Path | None:
    """Store a Hub projector's tensor table and encoder shape (the mmproj header read once)."""
    from dataclasses import asdict

    data = {"version": FORMAT_VERSION, "repo": repo, "ref": projector.ref, "file_type": projector.file_type,
            "vision": asdict(projector.vision),
            "tensors": [[t.name, t.row, t.rows, t.layer, t.n_experts, t.ggml_type, t.nbytes]
                        for t in projector.tensors]}
    try:
        return _write_json(projector_path(repo, projector.ref), data)
    except OSError:
        return None


def load_projector(repo: str, filename: str) -> Projector | None:
    from lander_tui.core.model import Projector
    from lander_tui.core.model_spec import Vision

    data = _read_json(projector_path(repo, filename))
    if data is None or str(data.get("repo", "")).lower() != repo.lower():
        return None
    try:
        tensors = tuple(Tensor(str(n), int(r), int(rs), ly, int(e), ty, nb) for n, r, rs, ly, e, ty, nb
                        in data["tensors"])
        return Projector(str(data["ref"]), tensors, Vision(**data["vision"]), data.get("file_type"), local=False)
    except Exception:  # a damaged file is a cache miss
        return None


def cached_repos() -> list[str]:
    """Repos with a cached profile (for offline search)."""
    out: list[str] = []
    folder = profiles_dir()
    if not folder.is_dir():
        return out
    for p in sorted(folder.glob("*.json")):
        if "@" in p.name:
            continue
        data = _read_json(p)
        if data and isinstance(data.get("repo"), str):
            out.append(data["repo"])
    return out


def clear_cache() -> int:
    """Delete every cached profile; returns how many files were removed."""
    n = 0
    folder = profiles_dir()
    if folder.is_dir():
        for p in folder.glob("*.json"):
            try:
                p.unlink()
                n += 1
            except OSError:
                pass
    return n
