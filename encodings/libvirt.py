"""What each libvirt version's CPU map knows, and how it reads a domain's ``<cpu>``.

libvirt names features its own way and expands ``<model>`` through its own definitions
(``cpu_map/x86_*.xml``), which differ from QEMU's (libvirt's Broadwell lacks f16c and vme;
its Skylake-Server-IBRS lacks hypervisor...), and with ``check='full'`` it refuses to start a
guest whose CPU differs from what it expected.  It passes the model name to QEMU as written,
so QEMU builds *its* definition of that name.  An answer is therefore written for one
libvirt version: a model name that version knows, and every feature where the answer differs
from libvirt's definition or from QEMU's.  The tables are data
(``data/libvirt-targets.json``, made by ``scripts/import_libvirt_targets.py`` from each
version's cpu_map); features map to our catalog by their CPUID/MSR bit, not by spelling.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources

from cpusolve.encodings.catalog import catalog
from cpusolve.encodings.targets import version_key
from cpusolve.errors import InputError

#: libvirt vendor names -> CPUID vendor strings
VENDORS = {"Intel": "GenuineIntel", "AMD": "AuthenticAMD", "Hygon": "HygonGenuine", "Zhaoxin": "  Shanghai  "}


@cache
def _data() -> dict:
    return json.loads((resources.files("cpusolve.encodings") / "data" / "libvirt-targets.json").read_text())


def libvirt_versions() -> tuple[str, ...]:
    """The libvirt versions with a CPU map table, oldest first."""
    return tuple(sorted(_data()["versions"], key=version_key))


def newest() -> str:
    return libvirt_versions()[-1]


@dataclass(frozen=True)
class LibvirtTarget:
    version: str
    source: str
    #: canonical feature name -> the spelling this libvirt uses
    spelling: dict
    #: model name -> (CPUID vendor or None, every feature of its definition, canonical)
    definitions: dict

    @property
    def label(self) -> str:
        return f"libvirt {self.version}"

    def names(self, feature: str) -> bool:
        return feature in self.spelling

    def model_features(self, name: str) -> frozenset[str]:
        return self.definitions[name][1]

    def model_vendor(self, name: str) -> str | None:
        return self.definitions[name][0]

    @property
    def qemu_models(self) -> dict[str, tuple[str, ...]]:
        """Catalog (versioned QEMU) model -> the libvirt names that make QEMU build it,
        exact names first: libvirt hands its name to QEMU, which resolves it."""
        return _qemu_models(self.version)


@cache
def libvirt(version: str) -> LibvirtTarget:
    entry = _data()["versions"].get(version)
    if entry is None:
        raise InputError(f"no CPU map table for libvirt '{version}' (known: {', '.join(libvirt_versions())})")
    cat = catalog()
    by_bit: dict[tuple, str] = {}
    for name, f in entry["features"].items():
        if "cpuid" in f:
            leaf, sub, reg, bit = f["cpuid"]
            by_bit[("cpuid", int(leaf, 16), sub, reg, bit)] = name
        elif "msr" in f:
            by_bit[("msr", int(f["msr"][0], 16), f["msr"][1])] = name
    spelling = {}
    for canonical, feat in cat.features.items():
        if feat.cpuid is not None:
            leaf, sub, reg, bit = feat.cpuid
            key = ("cpuid", leaf, sub, reg.upper(), bit)
        elif feat.msr is not None:
            key = ("msr", feat.msr[0], feat.msr[1])
        else:
            continue
        if key in by_bit:
            spelling[canonical] = by_bit[key]
    to_canonical = {v: k for k, v in spelling.items()}
    models = entry["models"]

    def expand(name: str, seen: tuple = ()) -> tuple[str | None, frozenset[str]]:
        m = models[name]
        vendor, feats = (None, frozenset())
        if m["parent"] and m["parent"] not in seen:
            vendor, feats = expand(m["parent"], (*seen, name))
        own = frozenset(to_canonical[f] for f in m["features"] if f in to_canonical)
        removed = frozenset(to_canonical[f] for f in m.get("removed", ()) if f in to_canonical)
        return VENDORS.get(m["vendor"]) or vendor, (feats | own) - removed

    definitions = {name: expand(name) for name in models}
    return LibvirtTarget(version, entry["source"], spelling, definitions)


@cache
def _qemu_models(version: str) -> dict[str, tuple[str, ...]]:
    cat = catalog()
    out: dict[str, list[str]] = {}
    for name in libvirt(version).definitions:
        # exactly as QEMU resolves it (no case folding): a versioned name, or an alias
        resolved = name if name in {m.name for m in cat.models} else cat.aliases.get(name)
        if resolved is not None:
            out.setdefault(resolved, []).append(name)
    return {q: tuple(sorted(names, key=lambda n: (n != q, n))) for q, names in out.items()}
