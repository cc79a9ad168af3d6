#!/usr/bin/env python3
"""Regenerate encodings/data/libvirt-targets.json: what each libvirt version's CPU map knows.

    python scripts/import_libvirt_targets.py 9.0=/usr/share/libvirt/cpu_map \
        11.3=../shared/data/libvirt-cpu_map

For every version: each x86 feature libvirt names, with the CPUID or MSR bit behind it (so
that our catalog's features map to libvirt's names by bit, not by spelling), and each x86
model's definition (vendor, parent, own features in libvirt spelling).  libvirt expands a
domain's ``<model>`` through these definitions, not QEMU's, so an answer written for a
libvirt is expressed relative to them.
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from cpusolve.inputs.facts.libvirt_models import read_cpu_map

REGS = ("eax", "ebx", "ecx", "edx")


def features(cpu_map: Path) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for f in ET.parse(cpu_map / "x86_features.xml").getroot().findall("feature"):
        name = f.get("name", "")
        entry: dict = {"aliases": sorted(a.get("name", "") for a in f.findall("alias"))}
        cpuid = f.find("cpuid")
        msr = f.find("msr")
        if cpuid is not None:
            leaf = int(cpuid.get("eax_in", "0"), 16)
            sub = int(cpuid.get("ecx_in", "0"), 16)
            for reg in REGS:
                value = int(cpuid.get(reg, "0"), 16)
                if value:
                    entry["cpuid"] = [f"{leaf:#x}", sub, reg.upper(), value.bit_length() - 1]
        elif msr is not None:
            value = int(msr.get("eax", "0"), 16) | int(msr.get("edx", "0"), 16) << 32
            entry["msr"] = [msr.get("index", ""), value.bit_length() - 1]
        out[name] = entry
    return dict(sorted(out.items()))


def models(cpu_map: Path) -> dict[str, dict]:
    return dict(sorted(read_cpu_map(cpu_map, removed=True).items()))


def source(cpu_map: Path, version: str) -> str:
    note = cpu_map / "SOURCE.txt"
    if note.exists():
        for line in note.read_text().splitlines():
            if line.startswith("Version"):
                return "libvirt src/cpu_map: " + line.split(":", 1)[1].strip()
    import subprocess

    pkg = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "libvirt0"], capture_output=True, text=True)
    if str(cpu_map).startswith("/usr/share/libvirt") and pkg.returncode == 0:
        return f"libvirt src/cpu_map: Debian package libvirt0 {pkg.stdout.strip()} (/usr/share/libvirt/cpu_map)"
    return f"libvirt {version} cpu_map ({cpu_map})"


def main(argv: list[str]) -> int:
    if not argv or any("=" not in a for a in argv):
        print(__doc__, file=sys.stderr)
        return 2
    data = {"semantics": "version -> features (libvirt name -> CPUID [leaf, subleaf, register, bit] or MSR "
                         "[index, bit], aliases) and models (name -> vendor, parent, own features in libvirt "
                         "spelling; vmx-* capability bits left out)",
            "made_by": "python scripts/import_libvirt_targets.py VERSION=CPU_MAP_DIR ...",
            "versions": {}}
    for arg in argv:
        version, path = arg.split("=", 1)
        cpu_map = Path(path)
        data["versions"][version] = {"source": source(cpu_map, version), "features": features(cpu_map),
                                     "models": models(cpu_map)}
    target = Path(__file__).resolve().parents[1] / "encodings" / "data" / "libvirt-targets.json"
    target.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
