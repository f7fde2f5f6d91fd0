"""What-if GPUs: the catalog, name matching, cloud instances and AWS detection from DMI."""

from __future__ import annotations

import json

import pytest

from lander_tui.core.errors import LanderError
from lander_tui.core.gpu import (
    GPUS,
    INSTANCES,
    catalog_names,
    detect_cloud_instance,
    find_gpu,
    what_if,
    what_if_snapshot,
)


def test_catalog_numbers_are_consistent():
    names = [g.name for g in GPUS]
    assert len(names) == len(set(names))
    for g in GPUS:
        assert 0 < g.usable_mib < g.total_mib, g.name
        # reserves seen on real cards are 0.5-2 % of memory, 256 MiB at least (catalog.py docstring)
        assert 0.004 * g.total_mib <= g.reserve_mib <= max(256, 0.025 * g.total_mib), g.name
        # total is the card's nominal size within ECC/firmware carve-outs (at most ~7 % less)
        assert 0.90 <= g.total_mib / (g.memory_gb * 1024) <= 1.03, g.name
        assert g.source in ("measured", "reported", "estimated")
        assert g.category in ("consumer", "workstation", "datacenter", "embedded")


def test_issue_catalog_is_covered():
    wanted = ["RTX 3060", "RTX 5090", "RTX A6000", "RTX 6000 Ada", "RTX PRO 6000", "T4", "A10", "A10G", "L4",
              "L40S", "A100 40GB", "A100 80GB", "H100 80GB", "H100 94GB", "H200", "B200", "MI300X"]
    for w in wanted:
        assert what_if(w).gpus, w
    families = {i.name.split(".")[0] for i in INSTANCES if i.provider == "AWS"}
    assert {"p3", "p4d", "p5", "g4dn", "g5", "g6", "g6e"} <= families
    gcp = " ".join(i.name for i in INSTANCES if i.provider == "GCP")
    assert all(f in gcp for f in ("a2-", "a3-", "g2-"))
    azure = [i.name for i in INSTANCES if i.provider == "Azure"]
    assert any("_NC" in n for n in azure) and any("_ND" in n for n in azure)


def test_measured_h100_matches_the_ground_truth_cuda_total(data_dir):
    # llama.cpp's CUDA0 "total" on the measured H100 is NVML total minus the driver reserve
    totals = set()
    for line in (data_dir / "ground-truth" / "llama.cpp.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if "bd_cuda" in rec:
            totals.add(rec["bd_cuda"]["total"])
    h100 = find_gpu("H100 80GB")
    assert h100.source == "measured"
    assert totals == {h100.usable_mib}


def test_every_catalog_name_and_alias_resolves_to_itself():
    for g in GPUS:
        for name in (g.name, *g.aliases, f"NVIDIA {g.name}", g.name.lower().replace(" ", "-")):
            assert find_gpu(name) is g, name


def test_every_instance_resolves_with_its_gpu_count():
    for inst in INSTANCES:
        w = what_if(inst.name)
        assert w.instance == inst.name and len(w.gpus) == inst.count and w.gpus[0] is inst.gpu
        assert inst.name in w.label and str(inst.count) in w.label
    azure = what_if("nd96isr_h100_v5")  # "Standard_" and case are optional
    assert azure.instance == "Standard_ND96isr_H100_v5" and len(azure.gpus) == 8


@pytest.mark.parametrize(
    ("query", "count", "name"),
    [
        ("2x RTX 4090", 2, "RTX 4090 24GB"),
        ("4 x A100 80GB", 4, "A100 80GB"),
        ("8*H100", 8, "H100 80GB"),
        ("RTX 4090 x2", 2, "RTX 4090 24GB"),
        ("3×l40s", 3, "L40S 48GB"),
        ("4090", 1, "RTX 4090 24GB"),
        ("rtx4090", 1, "RTX 4090 24GB"),
        ("NVIDIA GeForce RTX 5090", 1, "RTX 5090 32GB"),
        ("NVIDIA H100 80GB HBM3", 1, "H100 80GB"),  # the name NVML reports
        ("A100-SXM4-40GB", 1, "A100 40GB"),
        ("h100", 1, "H100 80GB"),  # the NVL card adds a word, so plain "H100" is the 80GB one
        ("h100 nvl", 1, "H100 NVL 94GB"),
        ("a10", 1, "A10 24GB"),
        ("a10g", 1, "A10G 24GB"),
        ("l40", 1, "L40 48GB"),
        ("4080", 1, "RTX 4080 16GB"),
        ("a6000", 1, "RTX A6000 48GB"),
        ("6000 ada", 1, "RTX 6000 Ada 48GB"),
        ("mi300x", 1, "MI300X 192GB"),
    ],
)
def test_what_if_parses_counts_and_fuzzy_names(query, count, name):
    w = what_if(query)
    assert len(w.gpus) == count and {g.name for g in w.gpus} == {name}
    assert w.instance is None and w.label == f"{count}x {name}"
    assert w.usable_mib == count * w.gpus[0].usable_mib


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("a100", ["A100 40GB", "A100 80GB", "say which"]),
        ("V100", ["V100 16GB", "V100 32GB"]),
        ("rtx 3080", ["RTX 3080 10GB", "RTX 3080 12GB"]),
        ("rtx 6000", ["RTX A6000 48GB", "RTX 6000 Ada 48GB", "RTX PRO 6000 Blackwell 96GB"]),
        ("4060 ti", ["RTX 4060 Ti 16GB", "RTX 4060 Ti 8GB", "say which"]),
        ("max-q", ["RTX PRO 6000 Blackwell Max-Q 96GB", "did you mean"]),
        ("h10", ["H100"]),
        ("quantum gpu 9000", ["unknown", "--what-if list"]),
        ("g5", ["instance family", "g5.12xlarge"]),
        ("2x g5.12xlarge", ["not an instance"]),
        ("0x RTX 4090", ["1 to 64"]),
        ("65x RTX 4090", ["1 to 64"]),
        ("", ["needs a GPU"]),
        ("   ", ["needs a GPU"]),
        ("2x", ["unknown"]),
    ],
)
def test_what_if_refuses_unknown_or_ambiguous_names_in_one_line(query, words):
    with pytest.raises(LanderError) as err:
        what_if(query)
    msg = str(err.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg, msg


def test_catalog_names_cover_gpus_and_instances():
    names = catalog_names()
    assert len(names) == len(GPUS) + len(INSTANCES) == len(set(names))
    for n in names:
        what_if(n)  # every name offered for completion is accepted as is


def test_what_if_snapshot_looks_like_real_gpus_with_all_usable_memory_free():
    w = what_if("g6e.12xlarge")
    snap = what_if_snapshot(w)
    assert snap.ok and snap.source == "what-if" and w.label in snap.message
    assert len(snap.gpus) == 4 == len(w.gpus)
    for i, (g, c) in enumerate(zip(snap.gpus, w.gpus, strict=True)):
        assert g.what_if and not g.lost and g.index == i == g.cuda_index
        assert g.name == c.name and g.total_mib == c.total_mib and g.free_mib == c.usable_mib
        assert g.used_mib == 0 and g.reserved_mib == c.total_mib - c.usable_mib
        assert g.processes == ()


# -- DMI ----------------------------------------------------------------------------------------


def _dmi(tmp_path, vendor: str | None, product: str | None):
    if vendor is not None:
        (tmp_path / "sys_vendor").write_text(vendor + "\n")
    if product is not None:
        (tmp_path / "product_name").write_text(product + "\n")
    return tmp_path


@pytest.mark.parametrize(
    ("vendor", "product", "expected"),
    [
        ("Amazon EC2", "g5.12xlarge", "g5.12xlarge"),
        ("Amazon EC2", "p4d.24xlarge", "p4d.24xlarge"),
        ("Amazon EC2", "m7i.large", "m7i.large"),  # an instance, just not a GPU one
        ("Amazon EC2", "Not Specified", None),
        ("Xen", "HVM domU", None),  # old Xen instances (p3) do not say
        ("Google", "Google Compute Engine", None),
        ("Microsoft Corporation", "Virtual Machine", None),
        ("Dell Inc.", "PowerEdge R760xa", None),
        (None, None, None),
    ],
)
def test_detect_cloud_instance_from_dmi(tmp_path, vendor, product, expected):
    assert detect_cloud_instance(_dmi(tmp_path, vendor, product)) == expected


def test_detect_cloud_instance_missing_dir_is_none(tmp_path):
    assert detect_cloud_instance(tmp_path / "nope") is None
    assert detect_cloud_instance(str(tmp_path / "nope")) is None


def test_detected_instance_feeds_what_if(tmp_path):
    found = detect_cloud_instance(_dmi(tmp_path, "Amazon EC2", "g6.48xlarge"))
    assert found is not None
    w = what_if(found)
    assert w.instance == "g6.48xlarge" and len(w.gpus) == 8 and w.gpus[0].name == "L4 24GB"
