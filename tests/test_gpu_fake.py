"""The NVML backend's logic, driven through the scenario fake (a pynvml look-alike).

Each test builds a small scenario, steps a fake clock and checks what a poll reports, and how
often the fake NVML was asked: fields a GPU lacks must be probed once, not every second.
"""

from __future__ import annotations

import dataclasses
import getpass
import os

import pytest

from lander_tui.core.errors import LanderError
from lander_tui.core.gpu import (
    DEMO_SCENARIO,
    FakeBackend,
    Snapshot,
    cuda_indices,
    free_mib_of_gpu,
    load_scenario,
    open_backend,
)
from lander_tui.core.gpu import snapshot as S
from lander_tui.core.gpu.fake_backend import uniform_scenario, value_at


class Clock:
    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def backend(scenario: dict, t: float = 0.0) -> tuple[FakeBackend, Clock]:
    clock = Clock(t)
    return FakeBackend(scenario, clock=clock, epoch=1_000_000.0), clock


def gpu(name: str = "NVIDIA L4", total: float = 23034, **kw) -> dict:
    return {"name": name, "total_mib": total, "reserved_mib": 250, **kw}


def calls(b: FakeBackend, fn: str, index: int = 0) -> int:
    return b.nvml.calls[fn, index]


# -- multi-GPU, memory, processes -------------------------------------------------------------


def test_multi_gpu_snapshot_memory_adds_up_and_processes_are_sorted():
    sc = {"gpus": [
        gpu("NVIDIA H100 80GB HBM3", 81559, reserved_mib=480, util_percent=40, temp_c=55, power_w=300,
            power_cap_w=700, processes=[{"pid": 11, "used_mib": 1000, "command": "a", "user": "u"},
                                        {"pid": 12, "used_mib": 9000, "command": "b", "user": "v"}]),
        gpu("NVIDIA L4", 23034, processes=[{"pid": 13, "used_mib": 500, "command": "c"}]),
        gpu("NVIDIA L4", 23034),
    ]}
    b, _ = backend(sc)
    snap = b.poll()
    assert snap.ok and snap.source == "fake" and len(snap.gpus) == 3
    assert [g.index for g in snap.gpus] == [0, 1, 2]
    for g, spec in zip(snap.gpus, sc["gpus"], strict=True):
        assert g.total_mib == spec["total_mib"]
        assert g.reserved_mib == spec["reserved_mib"]
        used = sum(p["used_mib"] for p in spec.get("processes", []))
        assert g.used_mib == pytest.approx(used)
        assert g.free_mib == pytest.approx(spec["total_mib"] - spec["reserved_mib"] - used)
        assert g.used_mib + g.free_mib + g.reserved_mib == pytest.approx(g.total_mib)
    h100 = snap.gpus[0]
    assert [p.pid for p in h100.processes] == [12, 11]  # biggest first
    assert (h100.util_percent, h100.temp_c, h100.power_w, h100.power_cap_w) == (40, 55, 300, 700)
    assert h100.processes[0].command == "b" and h100.processes[0].user == "v"
    assert snap.gpus[2].processes == ()


def test_snapshot_is_immutable():
    b, _ = backend({"gpus": [gpu()]})
    snap = b.poll()
    with pytest.raises(dataclasses.FrozenInstanceError):
        snap.gpus[0].used_mib = 1.0  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        snap.state = "x"  # type: ignore[misc]
    assert isinstance(snap.gpus, tuple) and isinstance(snap.gpus[0].processes, tuple)


def test_a_job_growing_shows_in_used_free_and_the_process():
    job = {"pid": 77, "command": "llama-server", "user": "ana",
           "used_mib": {"linear": [[0, 600], [10, 10600]]}}
    b, clock = backend({"gpus": [gpu(total=24564, reserved_mib=300, processes=[job])]})
    seen = []
    for t in (0, 2.5, 5, 10, 20):
        clock.t = t
        g = b.poll().gpus[0]
        seen.append((g.used_mib, g.free_mib, g.processes[0].used_mib))
    used = [u for u, _, _ in seen]
    assert used == sorted(used) and used[0] == pytest.approx(600) and used[-1] == pytest.approx(10600)
    assert used[2] == pytest.approx(5600, abs=1)  # half-way along the ramp
    for u, f, p in seen:
        assert u == pytest.approx(p, abs=1e-3)
        assert f == pytest.approx(24564 - 300 - u, abs=1e-3)


def test_processes_come_and_go_and_taken_at_follows_the_clock():
    procs = [{"pid": 1, "used_mib": 100, "command": "x"},
             {"pid": 2, "used_mib": 200, "command": "y", "from": 5, "until": 10}]
    b, clock = backend({"gpus": [gpu(processes=procs)]})
    pids = {}
    for t in (0, 5, 9.9, 10):
        clock.t = t
        snap = b.poll()
        pids[t] = [p.pid for p in snap.gpus[0].processes]
        assert snap.taken_at == 1_000_000.0 + t
    assert pids == {0: [1], 5: [2, 1], 9.9: [2, 1], 10: [1]}


def test_step_series_and_loop():
    assert value_at([[0, 1], [5, 2], [9, 3]], 4.99) == 1
    assert value_at([[0, 1], [5, 2], [9, 3]], 5) == 2
    assert value_at([[2, 1], [5, 2]], 0) == 1
    assert value_at({"linear": [[0, 0], [4, 8]]}, 1) == 2
    assert value_at({"linear": [[0, 0], [4, 8]]}, 99) == 8
    sc = {"loop_s": 10, "gpus": [gpu(used_mib=[[0, 100], [5, 900]])]}
    b, clock = backend(sc)
    clock.t = 7
    assert b.poll().gpus[0].used_mib == 900
    clock.t = 12  # wraps to t=2
    assert b.poll().gpus[0].used_mib == 100


def test_host_pid_and_unknown_per_process_memory_are_still_listed():
    procs = [{"pid": 900001, "used_mib": 2048, "host_pid": True},
             {"pid": 900002, "used_mib": None, "command": "wddm-app"}]
    b, _ = backend({"gpus": [gpu(used_mib=5000, processes=procs)]})
    g = b.poll().gpus[0]
    by_pid = {p.pid: p for p in g.processes}
    assert set(by_pid) == {900001, 900002}
    assert by_pid[900001].resolved is False and by_pid[900001].command is None
    assert by_pid[900001].used_mib == 2048
    assert by_pid[900002].used_mib is None and by_pid[900002].resolved
    assert "per-process memory" in g.note
    assert g.used_mib == 5000


def test_a_real_pid_is_resolved_with_psutil_once():
    me = os.getpid()
    b, _ = backend({"gpus": [gpu(processes=[{"pid": me, "used_mib": 123}])]})
    p = b.poll().gpus[0].processes[0]
    assert p.resolved and p.pid == me
    assert p.user == getpass.getuser()
    assert "python" in (p.command or "").lower() or "pytest" in (p.command or "")
    import lander_tui.core.gpu.procs as procs

    looked_up = []
    real = procs._lookup
    procs._lookup = lambda pid: looked_up.append(pid) or real(pid)  # type: ignore[assignment]
    try:
        for _ in range(3):
            b.poll()
    finally:
        procs._lookup = real  # type: ignore[assignment]
    assert looked_up == []  # cached while the driver keeps listing it


def test_compute_and_graphics_lists_are_merged():
    procs = [{"pid": 5, "used_mib": 300, "kind": "G", "command": "Xorg"},
             {"pid": 6, "used_mib": 800, "kind": "C+G", "command": "blender"},
             {"pid": 7, "used_mib": 100, "kind": "C", "command": "python"}]
    b, _ = backend({"gpus": [gpu(processes=procs)]})
    kinds = {p.pid: p.kind for p in b.poll().gpus[0].processes}
    assert kinds == {5: "G", 6: "C+G", 7: "C"}


# -- unsupported fields, API fallbacks, probing once ------------------------------------------


def test_unsupported_fields_are_na_and_probed_only_once():
    b, _ = backend({"gpus": [gpu(unsupported=["power", "temp", "util", "power_cap"]), gpu()]})
    for _ in range(5):
        snap = b.poll()
    g0, g1 = snap.gpus
    assert (g0.power_w, g0.temp_c, g0.util_percent, g0.power_cap_w, g0.mem_bw_percent) == (None,) * 5
    assert g0.total_mib is not None and g0.free_mib is not None
    assert calls(b, "nvmlDeviceGetPowerUsage") == 1
    assert calls(b, "nvmlDeviceGetEnforcedPowerLimit") == 1
    assert calls(b, "nvmlDeviceGetUtilizationRates") == 1
    assert calls(b, "nvmlDeviceGetTemperatureV") == 1
    assert calls(b, "nvmlDeviceGetTemperature") == 0  # NotSupported is not "old API": no fallback
    # the healthy GPU beside it is asked every poll
    assert calls(b, "nvmlDeviceGetPowerUsage", 1) == 5 and g1.power_w is not None


def test_transient_errors_are_retried_next_poll():
    b, _ = backend({"gpus": [gpu(fail={"power": "timeout"})]})
    for _ in range(4):
        g = b.poll().gpus[0]
    assert g.power_w is None
    assert calls(b, "nvmlDeviceGetPowerUsage") == 4


def test_old_driver_falls_back_once_per_api():
    fails = {"memory_v2": "function_not_found", "temp_v": "function_not_found",
             "processes_v3": "function_not_found"}
    b, _ = backend({"gpus": [gpu(total=16160, reserved_mib=300, temp_c=47,
                                 processes=[{"pid": 3, "used_mib": 1000, "command": "x"}], fail=fails)]})
    for _ in range(3):
        g = b.poll().gpus[0]
    # v1 memory: `used` includes the reserve, `free` is the same number, no reserved figure
    assert g.reserved_mib is None
    assert g.used_mib == pytest.approx(1000 + 300)
    assert g.free_mib == pytest.approx(16160 - 300 - 1000)
    assert "old driver" in g.note
    assert g.temp_c == 47 and [p.pid for p in g.processes] == [3]
    assert calls(b, "nvmlDeviceGetMemoryInfo_v2") == 1 and calls(b, "nvmlDeviceGetMemoryInfo") == 3
    assert calls(b, "nvmlDeviceGetTemperatureV") == 1 and calls(b, "nvmlDeviceGetTemperature") == 3
    assert calls(b, "nvmlDeviceGetComputeRunningProcesses_v3") == 1
    assert calls(b, "nvmlDeviceGetComputeRunningProcesses_v2") == 3


def test_process_list_without_permission_is_a_note_not_a_failure():
    b, _ = backend({"gpus": [gpu(used_mib=4000, processes=[{"pid": 3, "used_mib": 4000, "command": "x"}],
                                 fail={"processes": "no_permission"})]})
    for _ in range(3):
        g = b.poll().gpus[0]
    assert g.processes == () and g.used_mib == 4000
    assert "process list not available" in g.note
    assert calls(b, "nvmlDeviceGetComputeRunningProcesses_v3") == 1


def test_unified_memory_gpu_reports_host_memory_and_says_so():
    sc = {"host": {"total_mib": 131072, "available_mib": 100000},
          "gpus": [gpu("NVIDIA GB10", 1, unsupported=["memory"], processes=[{"pid": 8, "used_mib": None,
                                                                             "command": "ollama"}])]}
    b, _ = backend(sc)
    for _ in range(3):
        g = b.poll().gpus[0]
    assert g.unified_memory and g.total_mib == 131072 and g.free_mib == 100000
    assert g.used_mib == 131072 - 100000 and g.reserved_mib is None
    assert "unified memory" in g.note
    assert calls(b, "nvmlDeviceGetMemoryInfo_v2") == 1 and calls(b, "nvmlDeviceGetMemoryInfo") == 0
    assert free_mib_of_gpu(0, b) == ("NVIDIA GB10", 100000, 131072)


# -- lost GPUs ---------------------------------------------------------------------------------


def test_a_gpu_lost_mid_run_is_flagged_and_not_asked_again():
    b, clock = backend({"gpus": [gpu("NVIDIA A10G", 23028, util_percent=10), gpu("NVIDIA A10G", 23028, lost_at=30)]})
    before = b.poll()
    assert not any(g.lost for g in before.gpus) and before.message == ""
    clock.t = 31
    after = b.poll()
    g0, g1 = after.gpus
    assert after.ok and g1.lost and not g0.lost
    assert g1.name == "NVIDIA A10G" and g1.free_mib is None and g1.total_mib is None
    assert "GPU 1" in after.message and "lost" in after.message
    assert g0.free_mib is not None and g0.util_percent == 10
    asked = sum(n for (fn, i), n in b.nvml.calls.items() if i == 1)
    for t in (32, 33, 34):
        clock.t = t
        assert b.poll().gpus[1].lost
    assert sum(n for (fn, i), n in b.nvml.calls.items() if i == 1) == asked
    with pytest.raises(LanderError) as err:
        free_mib_of_gpu(1, b)
    assert err.value.exit_code == 1 and "lost" in str(err.value)
    assert free_mib_of_gpu(0, b)[0] == "NVIDIA A10G"


def test_every_gpu_lost_says_none_is_usable():
    b, clock = backend({"gpus": [gpu(lost_at=1), gpu(lost_at=2)]})
    clock.t = 1
    assert "other GPUs are still shown" in b.poll().message
    clock.t = 2
    snap = b.poll()
    assert snap.ok and all(g.lost for g in snap.gpus)
    assert snap.message.startswith("GPU 0, GPU 1 lost") and "no GPU is usable" in snap.message


def test_unknown_error_three_polls_running_means_lost():
    b, _ = backend({"gpus": [gpu(fail={"memory": "unknown"}), gpu()]})
    states = [b.poll().gpus[0].lost for _ in range(4)]
    assert states == [False, False, True, True]


def test_unreachable_gpu_at_start_is_shown_lost_beside_the_others():
    b, _ = backend({"gpus": [gpu(fail={"handle": "no_permission"}), gpu()]})
    snap = b.poll()
    assert snap.ok and snap.gpus[0].lost and not snap.gpus[1].lost


# -- start-up failures are states ------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "state", "words"),
    [
        ("library_missing", S.LIBRARY_MISSING, "libnvidia-ml"),
        ("driver_not_loaded", S.DRIVER_NOT_LOADED, "not loaded"),
        ("driver_mismatch", S.DRIVER_MISMATCH, "mismatch"),
        ("no_permission", S.NO_PERMISSION, "permission"),
        ("unknown", S.NVML_ERROR, "NVML failed"),
    ],
)
def test_init_failures_become_states_with_one_actionable_line(error, state, words):
    b, _ = backend({"init_error": error, "gpus": [gpu()]})
    first, second = b.poll(), b.poll()
    for snap in (first, second):
        assert snap.state == state and not snap.ok and snap.gpus == ()
        assert words in snap.message and "--what-if" in snap.message and "\n" not in snap.message
    assert b.nvml.calls["nvmlInit", -1] == 1  # sticky: not re-tried every second
    with pytest.raises(LanderError) as err:
        free_mib_of_gpu(0, b)
    assert err.value.exit_code == 1 and str(err.value) == first.message


def test_no_gpus_is_a_state():
    b, _ = backend({"driver": "575.51", "gpus": []})
    snap = b.poll()
    assert snap.state == S.NO_GPUS and "575.51" in snap.message and "--what-if" in snap.message
    assert b.nvml.initialised == 0  # NVML shut down again


def test_close_shuts_nvml_down_and_a_later_poll_starts_again():
    b, _ = backend({"gpus": [gpu()]})
    b.poll()
    assert b.nvml.initialised == 1
    b.close()
    b.close()
    assert b.nvml.initialised == 0
    assert b.poll().ok and b.nvml.initialised == 1


def test_free_mib_of_gpu_answers_for_the_gpu_asked_and_refuses_a_missing_one():
    b, _ = backend({"gpus": [gpu("NVIDIA L4", 23034, used_mib=1000), gpu("NVIDIA L40S", 46068, used_mib=0)]})
    assert free_mib_of_gpu(1, b) == ("NVIDIA L40S", 46068 - 250, 46068)
    assert free_mib_of_gpu(0, b) == ("NVIDIA L4", 23034 - 250 - 1000, 23034)
    with pytest.raises(LanderError) as err:
        free_mib_of_gpu(2, b)
    assert err.value.exit_code == 1 and "GPU 0, 1" in str(err.value)


# -- CUDA_VISIBLE_DEVICES ---------------------------------------------------------------------


def test_cuda_indices_follow_cuda_visible_devices_rules():
    uuids = ["GPU-aaaa1111", "GPU-bbbb2222", "GPU-cccc3333"]
    assert cuda_indices(None, uuids) == [0, 1, 2]
    assert cuda_indices("", uuids) == [None, None, None]
    assert cuda_indices("2,0", uuids) == [1, None, 0]
    assert cuda_indices("0,-1,1", uuids) == [0, None, None]  # stops at the first invalid entry
    assert cuda_indices("GPU-bbbb,0", uuids) == [1, 0, None]
    assert cuda_indices("GPU-,1", uuids) == [None, None, None]  # ambiguous prefix stops the list
    assert cuda_indices("1,1", uuids) == [None, 0, None]
    assert cuda_indices("7", uuids) == [None, None, None]


def test_snapshot_carries_cuda_index_from_the_scenario_env():
    b, _ = backend({"cuda_visible_devices": "1", "gpus": [gpu(), gpu()]})
    g0, g1 = b.poll().gpus
    assert (g0.cuda_index, g1.cuda_index) == (None, 0)
    assert g1.label == "1 (cuda 0)" and g0.label == "0 (hidden)"


# -- scenarios ---------------------------------------------------------------------------------


def test_demo_scenario_is_a_busy_two_gpu_box():
    b = open_backend(demo=True)
    snap = b.poll()
    b.close()
    assert isinstance(snap, Snapshot) and snap.ok and len(snap.gpus) == 2 and snap.source == "fake"
    assert all(g.processes for g in snap.gpus)
    assert any(not p.resolved for g in snap.gpus for p in g.processes)
    load_scenario(DEMO_SCENARIO)


def test_open_backend_with_a_scenario_uses_it():
    b = open_backend(scenario={"gpus": [gpu("NVIDIA T4", 15360)]})
    assert b.poll().gpus[0].name == "NVIDIA T4"


def test_uniform_scenario_builds_n_gpus():
    b, _ = backend(uniform_scenario(8, 4, pids=[os.getpid()]))
    snap = b.poll()
    assert len(snap.gpus) == 8 and all(len(g.processes) == 4 for g in snap.gpus)
    assert sum(p.resolved for g in snap.gpus for p in g.processes) == 1


@pytest.mark.parametrize(
    ("scenario", "words"),
    [
        ({"gpus": [{"total_mib": 10}]}, "name"),
        ({"gpus": [{"name": "x", "total_mib": -1}]}, "total_mib"),
        ({"gpus": [{"name": "x", "total_mib": 10, "colour": 1}]}, "unknown keys"),
        ({"gpus": [{"name": "x", "total_mib": 10, "unsupported": ["fan"]}]}, "unknown field"),
        ({"gpus": [{"name": "x", "total_mib": 10, "fail": {"power": "on_fire"}}]}, "unknown error"),
        ({"gpus": [{"name": "x", "total_mib": 10, "used_mib": [[5, 1], [1, 2]]}]}, "sorted"),
        ({"gpus": [{"name": "x", "total_mib": 10, "processes": [{"pid": "7"}]}]}, "pid"),
        ({"init_error": "meltdown", "gpus": []}, "init_error"),
        ({"gpus": {}}, "list"),
        ({"host": {"free": 1}, "gpus": []}, "host"),
        ({"host": {"total_mib": "lots"}, "gpus": []}, "host.total_mib"),
        ("{not json", "invalid JSON"),
        ("/nonexistent/scenario.json", "cannot read"),
    ],
)
def test_bad_scenarios_are_one_line_errors(scenario, words):
    with pytest.raises(LanderError) as err:
        FakeBackend(scenario)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_scenario_from_json_text_and_file(tmp_path):
    text = '{"gpus": [{"name": "NVIDIA A100-SXM4-80GB", "total_mib": 81920}]}'
    path = tmp_path / "s.json"
    path.write_text(text)
    for source in (text, path, str(path)):
        assert FakeBackend(source, clock=Clock()).poll().gpus[0].total_mib == 81920


def test_a_pid_that_leaves_is_forgotten_so_a_reused_pid_is_looked_up_again(monkeypatch):
    import lander_tui.core.gpu.procs as procs

    me = os.getpid()
    looked_up: list[int] = []
    real = procs._lookup
    monkeypatch.setattr(procs, "_lookup", lambda pid: looked_up.append(pid) or real(pid))
    sc = {"gpus": [gpu(processes=[{"pid": me, "used_mib": 10, "until": 5},
                                  {"pid": me, "used_mib": 20, "from": 10}])]}
    b, clock = backend(sc)
    for t in (0, 1, 6, 10, 11):
        clock.t = t
        b.poll()
    assert looked_up == [me, me]  # at t=0, then again when it reappears at t=10
