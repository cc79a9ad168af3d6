"""The same hosts as libvirt 9.0 host ``<cpu>`` elements, for ``virsh cpu-baseline``.

Each host type becomes ``<cpu><arch>x86_64</arch><model>M</model><vendor>V</vendor>
<feature name=.../>...</cpu>`` where M is the largest model of the *installed* libvirt CPU
map (``/usr/share/libvirt/cpu_map``, 9.0 on Debian bookworm) of the host's vendor whose
features the host all has, and the features are the host's other features in libvirt
spelling (``catalog().features[name].libvirt``).  Features the 9.0 map does not know are
dropped (virsh would reject the file otherwise); the count is reported.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from functools import cache
from pathlib import Path

CPU_MAP = Path("/usr/share/libvirt/cpu_map")
VENDOR_NAMES = {"GenuineIntel": "Intel", "AuthenticAMD": "AMD", "HygonGenuine": "Hygon"}


@cache
def cpu_map(root: str = str(CPU_MAP)) -> tuple[frozenset[str], dict[str, tuple[str | None, frozenset[str]]]]:
    """(known feature names, {model: (vendor, features incl. inherited)}) of an x86 cpu_map."""
    from cpusolve.inputs.facts.libvirt_models import read_cpu_map

    base = Path(root)
    feats = frozenset(f.get("name") for f in ET.parse(base / "x86_features.xml").getroot().iter("feature"))
    raw = {name: (m["vendor"] or None, m["parent"] or None, set(m["features"]))
           for name, m in read_cpu_map(base, vmx=True).items()}

    @cache
    def full(name: str) -> tuple[str | None, frozenset[str]]:
        vendor, parent, own = raw[name]
        if parent:
            pv, pf = full(parent)
            return vendor or pv, frozenset(own) | pf
        return vendor, frozenset(own)

    return feats, {name: full(name) for name in raw}


def libvirt_features(facts, cat) -> tuple[frozenset[str], int]:
    """The host's features in libvirt 9.0 spelling, and how many had no 9.0 name."""
    known, _ = cpu_map()
    out, dropped = set(), 0
    for f in facts.features:
        feat = cat.features.get(f)
        name = feat.libvirt if feat is not None else None
        if name and name in known:
            out.add(name)
        else:
            dropped += 1
    return frozenset(out), dropped


def host_cpu_xml(facts, cat) -> tuple[str, int]:
    """One host's ``<cpu>`` element for ``virsh cpu-baseline`` and the dropped-feature count."""
    _, models = cpu_map()
    feats, dropped = libvirt_features(facts, cat)
    vname = VENDOR_NAMES.get(facts.vendor)
    best, best_feats = None, frozenset()
    for name, (vendor, mfeats) in sorted(models.items()):
        if vendor != vname or not mfeats <= feats:
            continue
        if len(mfeats) > len(best_feats):
            best, best_feats = name, mfeats
    if best is None:
        best, best_feats = "qemu64", models["qemu64"][1] & feats
    lines = ["<cpu>", "  <arch>x86_64</arch>", f"  <model>{best}</model>", f"  <vendor>{vname}</vendor>"]
    lines += [f"  <feature name='{f}'/>" for f in sorted(feats - best_feats)]
    lines.append("</cpu>")
    return "\n".join(lines) + "\n", dropped


def domain_xml(types, cat, memo: dict | None = None) -> str:
    """A file of one ``<cpu>`` per host type of a domain (virsh baselines distinct CPUs)."""
    memo = {} if memo is None else memo
    parts = []
    for t in types:
        if t not in memo:
            memo[t] = host_cpu_xml(t, cat)[0]
        parts.append(memo[t])
    return "".join(parts)
