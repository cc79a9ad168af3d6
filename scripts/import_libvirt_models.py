#!/usr/bin/env python3
"""Regenerate encodings/data/libvirt-models.json from a libvirt ``src/cpu_map`` directory.

    python scripts/import_libvirt_models.py ../shared/data/libvirt-cpu_map
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from cpusolve.inputs.facts.libvirt_models import DATA, read_cpu_map


def _regenerate(cpu_map: Path) -> str:
    """The text of ``libvirt-models.json`` from a libvirt ``src/cpu_map`` directory."""
    # vmx-* capability bits are left out: they describe nested VMX controls, which are not a
    # guest CPU model choice here, and they are 2/3 of the table's size.
    models = read_cpu_map(cpu_map)
    data = {"source": _source_line(cpu_map) + " (x86_*.xml model definitions; vmx-* capability bits left out)",
            "semantics": "name -> {vendor: libvirt vendor name or '', parent: model it extends or '', "
                         "features: its own features in libvirt spelling}",
            "made_by": "python scripts/import_libvirt_models.py LIBVIRT_CPU_MAP_DIR",
            "models": dict(sorted(models.items()))}
    return json.dumps(data, indent=1, sort_keys=True) + "\n"


def _source_line(cpu_map: Path) -> str:
    note = cpu_map / "SOURCE.txt"
    if note.exists():
        for line in note.read_text().splitlines():
            if line.startswith("Version"):
                return "libvirt src/cpu_map: " + line.split(":", 1)[1].strip()
    return f"libvirt src/cpu_map from {cpu_map}"


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python scripts/import_libvirt_models.py LIBVIRT_CPU_MAP_DIR")
    target = Path(__file__).resolve().parents[1] / "encodings" / "data" / DATA
    target.write_text(_regenerate(Path(sys.argv[1])))
    print(f"wrote {target}")
