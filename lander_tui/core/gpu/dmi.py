"""Which cloud instance is this? Read from local DMI data only (no metadata-service call).

On AWS Nitro instances (g4dn, g5, g6, g6e, p4d, p5, ...) the firmware reports
`sys_vendor = "Amazon EC2"` and `product_name = <instance type>`, readable by any user under
/sys/devices/virtual/dmi/id. Older Xen instances (p3) report "Xen"/"HVM domU" and GCP/Azure do
not put the machine type in DMI, so for them this honestly returns None rather than guessing.
"""

from __future__ import annotations

import re
from pathlib import Path

DMI_DIR = "/sys/devices/virtual/dmi/id"
_INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9-]+$")


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace").strip()
    except OSError:
        return ""


def detect_cloud_instance(dmi_dir: str | Path = DMI_DIR) -> str | None:
    """The AWS instance type (e.g. "g5.12xlarge") when DMI says this is EC2, else None."""
    d = Path(dmi_dir)
    vendor = _read(d / "sys_vendor")
    if vendor.lower() != "amazon ec2":
        return None
    product = _read(d / "product_name").lower()
    return product if _INSTANCE_TYPE.match(product) else None
