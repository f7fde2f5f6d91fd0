"""Write lander_tui/core/data/models.json, the built-in model catalog, from tests/data/models/model_facts.json.

The catalog is in the project's own format (`ModelSpec.to_dict`), so the app never needs the
reference file at run time. Re-run after the facts change:
    uv run python scripts/build_catalog.py tests/data/models/model_facts.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from lander_tui.core.catalog import CATALOG_PATH, short_name
from lander_tui.core.model_spec import from_hf_config
from lander_tui.core.tensors import parameter_count


def main(facts_path: str) -> None:
    facts = json.loads(Path(facts_path).read_text())
    entries, seen = [], set()
    for m in facts:
        name = short_name(m["hf_repo_id"])
        if name in seen:
            continue
        seen.add(name)
        spec = from_hf_config(m["raw_config_as_found"], name=name, hf_repo=m["hf_repo_id"])
        assert parameter_count(spec) == m["params"]["computed_from_config"], name
        entries.append(spec.to_dict())
    CATALOG_PATH.write_text(json.dumps(entries, indent=1) + "\n")
    print(f"wrote {len(entries)} models to {CATALOG_PATH}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/data/models/model_facts.json")
