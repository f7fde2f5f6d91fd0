"""The real NVML backend with the real `pynvml` module.

On a machine without an NVIDIA driver (CI, this dev box) `nvmlInit` fails for real, and that
failure must come back as a state with one actionable line. On a GPU machine the same tests
check a real snapshot instead, so they are honest in both places.
"""

from __future__ import annotations

import sys

import pynvml
import pytest

from lander_tui import cli
from lander_tui.core.errors import LanderError
from lander_tui.core.gpu import NvmlBackend, free_mib_of_gpu, open_backend
from lander_tui.core.gpu import snapshot as S

NO_GPU_STATES = {S.LIBRARY_MISSING, S.DRIVER_NOT_LOADED, S.DRIVER_MISMATCH, S.NO_PERMISSION, S.NO_GPUS}


def test_real_pynvml_is_nvidias_binding():
    # gpustat/nvitop refuse the deprecated `pynvml` package; so do we (see nvml_backend._start)
    assert hasattr(pynvml, "_nvmlGetFunctionPointer")
    assert hasattr(pynvml, "nvmlDeviceGetMemoryInfo") and hasattr(pynvml, "nvmlMemory_v2")


def test_real_nvml_poll_is_a_snapshot_either_way(monkeypatch):
    inits = []
    real_init = pynvml.nvmlInit
    monkeypatch.setattr(pynvml, "nvmlInit", lambda: inits.append(1) or real_init())
    b = open_backend()
    assert isinstance(b, NvmlBackend)
    try:
        first, second = b.poll(), b.poll()
    finally:
        b.close()
    assert len(inits) == 1  # initialised once, never per poll
    if first.ok:  # a GPU machine
        assert first.gpus and all(g.total_mib and g.free_mib is not None for g in first.gpus if not g.lost)
        return
    assert first.state in NO_GPU_STATES, first.message
    assert second.state == first.state and first.gpus == ()
    assert "--what-if" in first.message and "\n" not in first.message
    assert first.source == "nvml" and first.taken_at > 0


def test_no_driver_here_is_library_missing_or_driver_not_loaded():
    snap = NvmlBackend(dmi_dir=None).poll()
    if snap.ok:
        pytest.skip("this machine has a working NVIDIA driver")
    assert snap.state in (S.LIBRARY_MISSING, S.DRIVER_NOT_LOADED), snap.message
    words = "libnvidia-ml.so.1" if snap.state == S.LIBRARY_MISSING else "not loaded"
    assert words in snap.message


def test_missing_nvidia_ml_py_is_library_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` raise ImportError
    snap = NvmlBackend(dmi_dir=None).poll()
    assert snap.state == S.LIBRARY_MISSING and "nvidia-ml-py" in snap.message


def test_deprecated_pynvml_package_is_refused(monkeypatch):
    import types

    monkeypatch.setitem(sys.modules, "pynvml", types.ModuleType("pynvml"))
    snap = NvmlBackend(dmi_dir=None).poll()
    assert snap.state == S.NVML_ERROR and "nvidia-ml-py" in snap.message


def test_aws_machine_without_a_driver_is_told_which_what_if_to_use(tmp_path):
    (tmp_path / "sys_vendor").write_text("Amazon EC2\n")
    (tmp_path / "product_name").write_text("g5.12xlarge\n")
    snap = NvmlBackend(dmi_dir=str(tmp_path)).poll()
    if snap.ok:
        pytest.skip("this machine has a working NVIDIA driver")
    assert "AWS g5.12xlarge" in snap.message and "--what-if g5.12xlarge" in snap.message


def test_free_mib_of_gpu_without_a_gpu_is_exit_1_with_the_reason():
    b = NvmlBackend(dmi_dir=None)
    snap = b.poll()
    if snap.ok:
        name, free, total = free_mib_of_gpu(snap.gpus[0].index, b)
        assert 0 <= free <= total
        return
    with pytest.raises(LanderError) as err:
        free_mib_of_gpu(0, b)
    assert err.value.exit_code == 1 and str(err.value) == snap.message


def test_cli_gpus_without_a_gpu_exits_1_with_one_line(capsys):
    probe = NvmlBackend().poll()
    rc = cli.main(["gpus"])
    captured = capsys.readouterr()
    if probe.ok:
        assert rc == 0 and "GPU" in captured.out
        return
    assert rc == 1 and captured.out == ""
    lines = captured.err.strip().splitlines()
    assert lines == [f"lander-tui: {probe.message}"]
    assert "--what-if" in lines[0]
