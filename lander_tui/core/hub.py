"""Hugging Face Hub: search, a model's exact shape and sizes, GGUF repos, and the offline fallbacks.

Every Hub request goes through the real `huggingface_hub` client (so `HF_ENDPOINT`, `HF_TOKEN`,
`HF_HUB_OFFLINE` and proxies behave as users expect). What a model look-up sends:

* `GET /api/models/ORG/NAME?blobs=true` — file list with sizes, gated flag;
* `HEAD`+`GET .../resolve/main/config.json` — the hyper-parameters (cached by `huggingface_hub`);
* `get_safetensors_metadata` — `HEAD` + ranged `GET`s of the safetensors headers (and the index);
* for a GGUF quant: ranged `GET`s of the first bytes of that `.gguf` file (each split part);
* for a GGUF repo with a vision projector: ranged `GET`s of the first bytes of the `mmproj` file
  llama-server would pick for that quant (`pick_mmproj`), for its exact tensors.

Search sends one `GET /api/models?search=...`. Results land in the profile cache
(`profile_cache.py`) so the next look is instant and works offline; when the Hub cannot answer,
the cache, then the built-in catalog, answer instead. `huggingface_hub` is imported lazily so a
cache hit never pays for its import, and its telemetry (an agent-detection request) is turned off.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from lander_tui.core import profile_cache
from lander_tui.core.catalog import find_model, search_catalog
from lander_tui.core.errors import LanderError
from lander_tui.core.model import Projector, ResolvedModel
from lander_tui.core.profile_cache import GgufHeader, HubProfile
from lander_tui.core.tensors import parameter_count

if TYPE_CHECKING:
    from lander_tui.core.gguf_file import GgufModel

T = TypeVar("T")

DEFAULT_ENDPOINT = "https://huggingface.co"
GGUF_FIRST_BYTES = 4 << 20  # first range read of a GGUF header; big vocabularies need a few MiB
GGUF_PART_FIRST_BYTES = 256 << 10  # first range read of split parts 2..N (tensor tables only)
REQUEST_TIMEOUT = 15.0
_HUB_ID = re.compile(r"^([\w.\-]+/[\w.\-]+)(?::([\w.\-]+))?$")
_SPLIT = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$", re.IGNORECASE)
_QUANT = re.compile(
    r"(?<![A-Za-z0-9])((?:UD-)?(?:I?Q\d(?:_[A-Z0-9]+)*|BF16|F16|F32|FP16|MXFP4(?:_MOE)?|TQ\d_\d))(?![A-Za-z0-9])",
    re.IGNORECASE,
)
DEFAULT_QUANT_ORDER = ("Q4_K_M", "Q4_K_S", "Q4_0", "Q5_K_M", "Q6_K", "Q8_0", "MXFP4", "BF16", "F16")
TOKEN_HELP = "set HF_TOKEN=<a read token from https://huggingface.co/settings/tokens>"


# --- results ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class HubHit:
    """One search result. `source` is "hub", or "cache"/"catalog" when the Hub could not answer (`note` says why)."""

    id: str
    downloads: int | None = None
    likes: int | None = None
    params: int | None = None
    library: str | None = None
    gguf: bool = False
    safetensors: bool = False
    gated: bool = False
    pipeline_tag: str | None = None
    source: str = "hub"
    note: str = ""


class HubUnavailable(LanderError):
    """The Hub could not answer (offline, no network, rate limit, server error): caches may answer instead."""


# --- client set-up ---------------------------------------------------------------------------


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().upper() in ("1", "ON", "YES", "TRUE")


def hub_offline(offline: bool | None = None) -> bool:
    """Offline when asked, or when HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE is set (read now, not at import)."""
    if offline is not None:
        return offline
    return _env_true("HF_HUB_OFFLINE") or _env_true("TRANSFORMERS_OFFLINE")


def hub_endpoint() -> str:
    """The Hub URL: HF_ENDPOINT as it is now (huggingface_hub reads it once, at import)."""
    env = os.environ.get("HF_ENDPOINT")
    if env:
        return env.rstrip("/")
    if _hf_imported():
        from huggingface_hub import constants

        return str(constants.ENDPOINT).rstrip("/")
    return DEFAULT_ENDPOINT


def _hf_imported() -> bool:
    import sys

    return "huggingface_hub" in sys.modules


def _hf_cache_dir() -> str | None:
    """HF_HUB_CACHE / HF_HOME as they are now; None lets huggingface_hub use its own default."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub")
    return None


def _client() -> Any:
    """Import huggingface_hub with its telemetry off: only the requests listed above leave the machine."""
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    from huggingface_hub import HfApi, constants

    constants.HF_HUB_DISABLE_TELEMETRY = True
    from lander_tui import __version__

    return HfApi(endpoint=hub_endpoint(), library_name="lander-tui", library_version=__version__)


def _call(what: str, fn: Callable[[], T]) -> T:
    """Run one Hub call and turn every client failure into a one-line LanderError."""
    from huggingface_hub import errors as e

    try:
        return fn()
    except e.OfflineModeIsEnabled:
        raise HubUnavailable(f"{what}: HF_HUB_OFFLINE is set, so the Hub is not asked") from None
    except e.GatedRepoError as err:
        code = err.response.status_code if err.response is not None else 0
        repo = "/".join(what.split("/")[:2])
        url = f"{hub_endpoint()}/{repo}"
        if code == 403:
            raise LanderError(f"{repo} is gated and your HF_TOKEN has no access yet: request it at {url}") from None
        if os.environ.get("HF_TOKEN"):
            raise LanderError(f"{repo} is gated and the Hub did not accept your HF_TOKEN; check it, "
                              f"and that you accepted the terms at {url}") from None
        raise LanderError(f"{repo} is gated: accept its terms at {url}, then {TOKEN_HELP}") from None
    except e.RepositoryNotFoundError:
        raise LanderError(f"no model {what!r} on the Hub (check the spelling; a private repo needs HF_TOKEN)") from None
    except e.RevisionNotFoundError:
        raise LanderError(f"{what}: the revision does not exist on the Hub") from None
    except e.RemoteEntryNotFoundError as err:
        raise LanderError(f"{what}: file not found on the Hub ({_one_line(err.server_message or '')})") from None
    except e.HfHubHTTPError as err:
        code = err.response.status_code if err.response is not None else 0
        if code == 429:
            wait = err.response.headers.get("Retry-After") if err.response is not None else None
            hint = f" for {wait} s" if wait else ""
            raise HubUnavailable(f"{what}: the Hub is rate-limiting requests (HTTP 429); wait{hint} and retry, "
                                 f"or {TOKEN_HELP} for a higher limit") from None
        if code >= 500 or code in (408, 0):
            raise HubUnavailable(f"{what}: the Hub answered HTTP {code}; try again later") from None
        msg = _one_line(err.server_message or str(err))
        raise LanderError(f"{what}: the Hub answered HTTP {code} ({msg})") from None
    except e.LocalEntryNotFoundError:
        raise HubUnavailable(f"{what}: cannot reach the Hub at {hub_endpoint()} and the file is not cached") from None
    except (e.SafetensorsParsingError, e.NotASafetensorsRepoError) as err:
        raise LanderError(f"{what}: {_one_line(str(err))}") from None
    except e.HFValidationError as err:
        raise LanderError(f"{what!r} is not a valid Hub id ({_one_line(str(err))})") from None
    except LanderError:
        raise
    except Exception as err:  # network: httpx2 transport errors, DNS, refused connections, timeouts
        if _is_network_error(err):
            raise HubUnavailable(f"{what}: cannot reach the Hub at {hub_endpoint()} "
                                 f"({type(err).__name__}: {_one_line(str(err)) or 'no answer'})") from None
        raise


def _is_network_error(err: Exception) -> bool:
    try:
        import httpx2

        if isinstance(err, httpx2.TransportError | httpx2.HTTPError):
            return True
    except ImportError:  # pragma: no cover - older huggingface_hub uses httpx/requests
        pass
    return isinstance(err, OSError | TimeoutError | ConnectionError)


def _one_line(text: str) -> str:
    return " ".join(text.split())[:300]


# --- search ----------------------------------------------------------------------------------


def search_models(text: str, limit: int = 20, *, offline: bool | None = None,
                  fallback: bool = True) -> list[HubHit]:
    """Text-generation models whose id contains `text`, most downloaded first (one Hub request).

    When the Hub cannot answer and `fallback` is true, cached profiles and the built-in catalog
    answer instead (hits carry `source` and a `note` with the reason); with nothing local either,
    the reason is raised as a LanderError.
    """
    limit = max(1, min(int(limit), 100))
    query = text.strip()
    if hub_offline(offline):
        return _local_search(query, limit, "offline (HF_HUB_OFFLINE=1): showing cached and built-in models",
                             fallback)
    api = _client()
    try:
        infos = _call("search", partial(_list_models_once, api, query, limit))
    except HubUnavailable as err:
        return _local_search(query, limit, str(err), fallback)
    return [_hit(info) for info in infos]


SEARCH_EXPAND = ["downloads", "likes", "safetensors", "gguf", "library_name", "pipeline_tag", "gated", "tags"]


def _list_models_once(api: Any, query: str, limit: int) -> list[Any]:
    """`HfApi.list_models(search=, pipeline_tag="text-generation", sort="downloads", limit=, expand=)`, one try.

    The same request `list_models` sends for its first page, through the client's own session,
    headers, error mapping and `ModelInfo` parser, but without its retry loop: huggingface_hub 2.x
    retries a 429 or a refused connection five times with back-off (and honours Retry-After), which
    kept a search waiting 46 s on a dead network and 310 s on a rate limit. A search box must answer
    at once; the caller falls back to the cache and the catalog instead.
    """
    from huggingface_hub.hf_api import ModelInfo
    from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

    params: dict[str, Any] = {"pipeline_tag": "text-generation", "sort": "downloads", "limit": limit,
                              "expand": SEARCH_EXPAND}
    if query:
        params["search"] = query
    headers = build_hf_headers(library_name=api.library_name, library_version=api.library_version)
    r = get_session().get(f"{api.endpoint}/api/models", params=params, headers=headers, timeout=REQUEST_TIMEOUT)
    hf_raise_for_status(r)
    items = r.json()
    if not isinstance(items, list):
        raise LanderError("search: the Hub answered something that is not a list of models")
    out = []
    for item in items[:limit]:
        item.setdefault("siblings", None)
        out.append(ModelInfo(**item))
    return out


def _hit(info: Any) -> HubHit:
    st = getattr(info, "safetensors", None)
    gg = getattr(info, "gguf", None)
    tags = set(info.tags or [])
    params = None
    if st is not None and getattr(st, "total", None):
        params = int(st.total)
    elif isinstance(gg, dict) and gg.get("total"):
        params = int(gg["total"])
    return HubHit(
        id=info.id,
        downloads=info.downloads,
        likes=info.likes,
        params=params,
        library=info.library_name,
        gguf=gg is not None or "gguf" in tags or info.library_name == "gguf",
        safetensors=st is not None or "safetensors" in tags,
        gated=bool(info.gated),
        pipeline_tag=info.pipeline_tag,
    )


def _local_search(query: str, limit: int, reason: str, fallback: bool) -> list[HubHit]:
    if not fallback:
        raise HubUnavailable(reason)
    words = query.lower().split()
    hits: list[HubHit] = []
    seen: set[str] = set()
    for repo in profile_cache.cached_repos():
        if all(w in repo.lower() for w in words):
            prof = profile_cache.load_profile(repo)
            if prof is None:
                continue
            seen.add(repo.lower())
            hits.append(HubHit(id=repo, downloads=prof.downloads, likes=prof.likes,
                               params=sum(prof.dtype_params.values()) or prof.spec.exact_params,
                               gguf=bool(prof.gguf_files), safetensors=bool(prof.dtype_params),
                               gated=prof.gated, source="cache", note=reason))
    for spec in search_catalog(query, limit=limit):
        rid = spec.hf_repo or spec.name
        if rid.lower() in seen:
            continue
        hits.append(HubHit(id=rid, params=parameter_count(spec), library="transformers", safetensors=True,
                           pipeline_tag="text-generation", source="catalog", note=reason))
    if not hits:
        raise HubUnavailable(f"{reason}; no cached or built-in model matches {query!r}")
    return hits[:limit]


# --- GGUF files of a repo --------------------------------------------------------------------


def gguf_quant_of(filename: str) -> str:
    """The quant a GGUF file name carries (`...-Q4_K_M-00001-of-00002.gguf` -> `Q4_K_M`), else its stem."""
    base = filename.rsplit("/", 1)[-1]
    stem = _SPLIT.sub("", base)
    stem = re.sub(r"\.gguf$", "", stem, flags=re.IGNORECASE)
    found = _QUANT.findall(stem)
    return found[-1].upper() if found else stem


def group_gguf_files(sizes: dict[str, int | None]) -> dict[str, list[tuple[str, int]]]:
    """quant -> [(file, bytes), ...] with split parts in order; vision projectors (mmproj) left out."""
    groups: dict[str, list[tuple[str, int]]] = {}
    set_key: dict[str, str] = {}  # one split set (or single file) -> its quant key
    for name in sorted(sizes):
        base = name.rsplit("/", 1)[-1]
        if not base.lower().endswith(".gguf") or "mmproj" in base.lower():
            continue
        set_id = _SPLIT.sub("", name)
        key = set_key.get(set_id)
        if key is None:
            key = gguf_quant_of(name)
            if key in groups:  # two files of one quant (e.g. in two folders): tell them apart by name
                key = re.sub(r"\.gguf$", "", _SPLIT.sub("", base), flags=re.IGNORECASE)
            set_key[set_id] = key
        groups.setdefault(key, []).append((name, int(sizes[name] or 0)))
    return groups


def mmproj_files(sizes: dict[str, int | None]) -> dict[str, int]:
    """The vision projector GGUFs of a repo (file name -> bytes): what `group_gguf_files` leaves out."""
    return {name: int(sizes[name] or 0) for name in sorted(sizes)
            if name.lower().endswith(".gguf") and "mmproj" in name.rsplit("/", 1)[-1].lower()}


def _quant_bits(name: str) -> int:
    """The first number of a file's quant tag (llama.cpp common/download.cpp `extract_quant_bits`)."""
    m = re.search(r"\d+", gguf_quant_of(name))
    return int(m.group(0)) if m else 0


def pick_mmproj(files: list[str], model_file: str) -> str | None:
    """The projector `llama-server -hf` downloads beside `model_file` (common/download.cpp
    `find_best_sibling`): one in the model's folder or a folder above, the deepest first, then the one
    whose quant's bit count is closest to the model's (first listed on a tie)."""
    model_dir = model_file.split("/")[:-1]
    best: tuple[int, int] | None = None
    chosen = None
    for f in files:
        fdir = f.split("/")[:-1]
        if fdir != model_dir[:len(fdir)]:
            continue
        key = (-len(fdir), abs(_quant_bits(f) - _quant_bits(model_file)))
        if best is None or key < best:
            best, chosen = key, f
    return chosen


def _pick_quant(groups: dict[str, list[tuple[str, int]]], wanted: str | None, repo: str) -> str | None:
    if not groups:
        return None
    if wanted:
        for key in groups:
            if key.upper() == wanted.upper():
                return key
        for key in groups:  # "Q4_K_M" also finds "UD-Q4_K_M"
            if key.upper().endswith("-" + wanted.upper()):
                return key
        raise LanderError(f"{repo} has no {wanted} GGUF file; it has: {', '.join(groups)}")
    for q in DEFAULT_QUANT_ORDER:
        if q in groups:
            return q
    return min(groups, key=lambda k: sum(s for _, s in groups[k]))


# --- reading a GGUF header over HTTP ---------------------------------------------------------


def _range_get(api: Any, repo: str, filename: str, start: int, end: int) -> tuple[bytes, int | None]:
    """GET bytes start..end (inclusive) of a repo file; never reads more even if the server ignores Range."""
    from huggingface_hub import constants, hf_hub_url
    from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

    url = hf_hub_url(repo, filename, revision=constants.DEFAULT_REVISION, endpoint=api.endpoint)
    headers = build_hf_headers(library_name=api.library_name, library_version=api.library_version)
    headers["range"] = f"bytes={start}-{end}"
    want = end - start + 1
    buf = bytearray()
    with get_session().stream("GET", url, headers=headers, timeout=REQUEST_TIMEOUT) as r:
        if r.status_code >= 400:
            r.read()
        hf_raise_for_status(r)
        total = None
        cr = r.headers.get("Content-Range", "")
        if "/" in cr and cr.rsplit("/", 1)[1].isdigit():
            total = int(cr.rsplit("/", 1)[1])
        skip = start if r.status_code == 200 else 0  # a server that ignores Range sends from byte 0
        if r.status_code == 200 and r.headers.get("Content-Length", "").isdigit():
            total = int(r.headers["Content-Length"])
        for chunk in r.iter_bytes():
            if skip:
                cut = min(skip, len(chunk))
                chunk, skip = chunk[cut:], skip - cut
            buf += chunk
            if len(buf) >= want:
                break
    return bytes(buf[:want]), total


def read_hub_gguf(repo: str, files: list[tuple[str, int]], *, first_bytes: int | None = None,
                  api: Any = None, tensors_only: bool = False) -> GgufModel:
    """Read the header of a Hub GGUF file (all split parts) with ranged GETs; no weights are downloaded."""
    from lander_tui.core.gguf_file import GgufNeedMoreBytes, merge_split, read_gguf_header, read_gguf_part_header

    api = api or _client()
    step = first_bytes or GGUF_FIRST_BYTES
    parts: list[GgufModel] = []
    for i, (name, size) in enumerate(files):
        label = name.rsplit("/", 1)[-1]
        data = b""
        total: int | None = size or None
        # later split parts hold only their tensor table: a few hundred KiB at most
        want = step if i == 0 and not tensors_only else min(step, GGUF_PART_FIRST_BYTES)
        want = want if total is None else min(want, total)
        while True:
            start = len(data)
            chunk, seen_total = _call(f"{repo}/{name}", partial(_range_get, api, repo, name, start, want - 1))
            data += chunk
            total = total or seen_total
            if total is None and len(chunk) < want - start:  # the file ended early
                total = len(data)
            try:
                reader = read_gguf_header if i == 0 and not tensors_only else read_gguf_part_header
                parts.append(reader(data, total_size=total, name=label))
                break
            except GgufNeedMoreBytes as more:
                if not chunk or (total is not None and len(data) >= total):
                    raise LanderError(f"{repo}/{name} is truncated on the Hub ({len(data):,} bytes)") from None
                want = max(more.needed + (64 << 10), 2 * len(data))
                if total is not None:
                    want = min(want, total)
    return merge_split(parts)


# --- fetching a model profile ----------------------------------------------------------------


def parse_hub_id(text: str) -> tuple[str, str | None]:
    """`ORG/NAME[:QUANT]` -> (repo, quant or None)."""
    m = _HUB_ID.match(text.strip())
    if not m:
        raise LanderError(f"{text!r} is not a Hub id; write ORG/NAME or ORG/NAME:QUANT")
    return m.group(1), m.group(2)


def fetch_profile(repo: str, *, quant: str | None = None,
                  first_bytes: int | None = None) -> tuple[HubProfile, GgufHeader | None]:
    """Ask the Hub about `repo`: file sizes, config.json, safetensors parameters, one GGUF header.

    The GGUF header is read when `quant` names a file, or when the repo has no config.json (the
    header is then the only source of the model's shape; the default quant is read).
    """
    from lander_tui.core.model_spec import from_hf_config, load_config_file

    api = _client()
    info = _call(repo, lambda: api.model_info(repo, files_metadata=True, timeout=REQUEST_TIMEOUT))
    sizes = {s.rfilename: s.size for s in (info.siblings or [])}
    groups = group_gguf_files(sizes)
    gated = bool(info.gated)

    dtype_params: dict[str, int] = {}
    if any(f.endswith(".safetensors") for f in sizes):
        try:
            meta = _call(repo, lambda: api.get_safetensors_metadata(repo))
            dtype_params = {str(k): int(v) for k, v in meta.parameter_count.items()}
        except HubUnavailable:
            raise
        except LanderError:
            dtype_params = {}
    if not dtype_params and getattr(info, "safetensors", None) is not None:
        dtype_params = {str(k): int(v) for k, v in info.safetensors.parameters.items()}

    spec = None
    spec_source = "config.json"
    name = repo.split("/")[-1]
    if "config.json" in sizes:
        path = _call(repo, lambda: api.hf_hub_download(repo, "config.json", cache_dir=_hf_cache_dir(),
                                                       etag_timeout=REQUEST_TIMEOUT))
        spec = from_hf_config(load_config_file(path), name=name, hf_repo=repo)

    if quant and not groups:
        raise LanderError(f"{repo} has no .gguf files, so `:{quant}` cannot pick one "
                          "(for other formats use --quant)")
    chosen = _pick_quant(groups, quant, repo) if (quant or spec is None) else None
    header = None
    if chosen is not None:
        g = read_hub_gguf(repo, groups[chosen], first_bytes=first_bytes, api=api)
        file_spec = replace(g.spec, name=name, hf_repo=repo)
        header = GgufHeader(repo=repo, quant=chosen, file_type=g.file_type, file_size=g.file_size,
                            tensors=g.tensors, fetched_at=time.time(), spec=file_spec)
        if spec is None:
            spec = file_spec
            spec_source = f"gguf:{chosen}"
    if spec is None:
        raise LanderError(f"{repo} has no config.json and no .gguf file, so its shape is unknown")

    profile = HubProfile(
        repo=repo,
        spec=spec,
        gguf_files={q: sum(s for _, s in files) for q, files in groups.items()},
        gguf_filenames={q: [f for f, _ in files] for q, files in groups.items()},
        dtype_params=dtype_params,
        spec_source=spec_source,
        mmproj_files=mmproj_files(sizes),
        gated=gated,
        downloads=info.downloads,
        likes=info.likes,
        sha=info.sha,
        fetched_at=time.time(),
    )
    return profile, header


# --- the resolver model_source calls ---------------------------------------------------------


def _resolved(profile: HubProfile, header: GgufHeader | None, origin: str, detail: str) -> ResolvedModel:

    spec = profile.spec
    if header is not None and header.spec is not None and profile.spec_source.startswith("gguf:"):
        spec = header.spec  # no config.json: the file read is the only description, keep them together
    return ResolvedModel(
        spec=spec,
        origin=origin,
        tensors=header.tensors if header else None,
        file_quant=header.file_type if header else None,
        gguf_files=dict(profile.gguf_files),
        dtype_params=dict(profile.dtype_params),
        detail=detail,
    )


def _header_quant(profile: HubProfile, quant: str | None) -> str | None:
    """Which quant's header goes with this look-up: the one asked for, or the one the spec came from."""
    if quant:
        if not profile.gguf_files:
            raise LanderError(f"{profile.repo} has no .gguf files, so `:{quant}` cannot pick one "
                              "(for other formats use --quant)")
        return _pick_quant({k: [] for k in profile.gguf_files}, quant, profile.repo)
    if profile.spec_source.startswith("gguf:"):
        return profile.spec_source[5:]
    return None


def _from_cache(repo: str, quant: str | None) -> tuple[HubProfile, GgufHeader | None, bool] | None:
    """(profile, header, complete) from the cache; complete is False when the quant's header is missing."""
    profile = profile_cache.load_profile(repo)
    if profile is None:
        return None
    try:
        hq = _header_quant(profile, quant)
    except LanderError:  # a quant the cached file list lacks: ask the Hub, it may be new
        return None
    header = profile_cache.load_gguf_header(repo, hq) if hq else None
    return profile, header, (hq is None or header is not None)


def _fetched_when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else "earlier"


def resolve_hub_model(repo: str, *, offline: bool | None = None, refresh: bool = False) -> ResolvedModel:
    """`ORG/NAME[:QUANT]` -> a ResolvedModel: from the profile cache, else the Hub, else the catalog.

    A cached profile answers without any request (`refresh=True` asks the Hub again). When the Hub
    cannot answer (HF_HUB_OFFLINE, no network, rate limit) an older cached profile or the built-in
    catalog answers; otherwise a one-line LanderError says why.
    """
    rid, quant = parse_hub_id(repo)
    cached = None if refresh else _from_cache(rid, quant)
    if cached and cached[2]:
        prof, head, _ = cached
        model = _resolved(prof, head, "cache", f"{rid} (cached {_fetched_when(prof.fetched_at)})")
        return _with_projector(model, prof, head, quant, offline=hub_offline(offline))
    if hub_offline(offline):
        return _fallback(rid, quant, "HF_HUB_OFFLINE=1 is set, so the Hub was not asked")
    try:
        profile, header = fetch_profile(rid, quant=quant)
    except HubUnavailable as err:
        return _fallback(rid, quant, str(err))
    profile_cache.save_profile(profile)
    if header is not None:
        profile_cache.save_gguf_header(header)
    where = f"{hub_endpoint()}/{rid}"
    if header is not None:
        where += f" ({header.quant} header read)"
    return _with_projector(_resolved(profile, header, "hub", where), profile, header, quant, offline=False)


def _with_projector(model: ResolvedModel, profile: HubProfile, header: GgufHeader | None, quant: str | None, *,
                    offline: bool) -> ResolvedModel:
    """Attach the repo's vision projector (the mmproj `llama-server -hf` would load with this quant): its
    header from the cache, else read from the Hub. Without one readable, the model stays as it was."""
    if not profile.mmproj_files or not profile.gguf_filenames:
        return model
    q = header.quant if header is not None else _pick_quant({k: [] for k in profile.gguf_files}, quant, profile.repo)
    files = profile.gguf_filenames.get(q or "", [])
    name = pick_mmproj(list(profile.mmproj_files), files[0]) if files else None
    if name is None:
        return model
    proj = profile_cache.load_projector(profile.repo, name)
    if proj is None and not offline:
        try:
            proj = read_hub_projector(profile.repo, name, profile.mmproj_files.get(name) or None)
        except LanderError:
            proj = None
        if proj is not None:
            profile_cache.save_projector(profile.repo, proj)
    return replace(model, projector=proj) if proj is not None else model


def read_hub_projector(repo: str, name: str, size: int | None, api: Any = None) -> Projector | None:
    """A Hub mmproj file's header by ranged GETs (no weights): its tensors and encoder shape, or None when
    the file is not a vision projector."""
    from lander_tui.core.vision import is_mmproj, vision_from_mmproj

    g = read_hub_gguf(repo, [(name, size or 0)], api=api, tensors_only=True)
    if not is_mmproj(g.metadata) or "clip.vision.embedding_length" not in g.metadata:
        return None
    ftype = g.metadata.get("general.file_type")
    return Projector(name, g.tensors, vision_from_mmproj(g.metadata, g.tensors),
                     str(ftype) if ftype is not None else None, local=False)


def _fallback(repo: str, quant: str | None, reason: str) -> ResolvedModel:
    """The Hub could not answer: a cached profile (maybe without the quant's header), then the catalog."""
    profile = profile_cache.load_profile(repo)
    if profile is not None:
        hq = _header_quant(profile, quant)
        header = profile_cache.load_gguf_header(repo, hq) if hq else None
        note = "" if (hq is None or header) else f"; the {hq} header is not cached, so tensor types are predicted"
        return _resolved(profile, header, "cache", f"{reason}; using the profile cached "
                                                   f"{_fetched_when(profile.fetched_at)}{note}")
    spec = find_model(repo)
    if spec is not None:

        return ResolvedModel(spec, "catalog", detail=f"{reason}; using the built-in catalog entry {spec.name}")
    raise LanderError(f"{reason}, and {repo} is neither cached nor in the built-in catalog")
