"""libvirt's own x86 CPU model definitions, for expanding libvirt XML.

libvirt writes a host CPU as "model + features" relative to *its* cpu_map, not QEMU's
model table, and the two differ (libvirt's Broadwell lacks f16c/rdrand/abm/vme...,
its Cascadelake-Server-noTSX lacks arch-capabilities/mds-no/rdctl-no, which QEMU's -v3 has).
Expanding a libvirt model through QEMU's definition would claim bits the host never
reported, which for ``*-no`` bits is unsafe; so libvirt names are expanded with libvirt's
own definitions (``encodings/data/libvirt-models.json``, from libvirt 11.3.0) and only a
model libvirt added after 11.3.0 falls back to the QEMU catalog (with a note saying so).

Regenerate the data: ``python scripts/import_libvirt_models.py ../shared/data/libvirt-cpu_map``.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from functools import cache
from importlib import resources
from pathlib import Path

#: libvirt vendor names (``x86_vendors.xml``) -> CPUID vendor strings.
VENDORS = {"Intel": "GenuineIntel", "AMD": "AuthenticAMD", "Hygon": "HygonGenuine",
           "Zhaoxin": "  Shanghai  "}


DATA = "libvirt-models.json"


@cache
def _data() -> dict:
    return json.loads((resources.files("cpusolve.encodings") / "data" / DATA).read_text())


@cache
def libvirt_model_features(name: str) -> frozenset[str] | None:
    """libvirt spellings of every feature of libvirt model ``name`` (None if unknown)."""
    model = _data()["models"].get(name)
    if model is None:
        return None
    inherited = libvirt_model_features(model["parent"]) if model["parent"] else frozenset()
    return frozenset(model["features"]) | (inherited or frozenset())


def libvirt_model_vendor(name: str) -> str | None:
    """CPUID vendor string of libvirt model ``name``, following its parents."""
    models = _data()["models"]
    while name in models:
        if models[name]["vendor"]:
            return VENDORS.get(models[name]["vendor"])
        name = models[name]["parent"]
    return None


def source() -> str:
    return _data()["source"]


# -- regeneration -----------------------------------------------------------------------
def read_cpu_map(cpu_map: Path, vmx: bool = False, removed: bool = False) -> dict[str, dict]:
    """libvirt's x86 model definitions in a ``cpu_map`` directory: name -> vendor, parent,
    own features (libvirt spelling; vmx-* capability bits only with ``vmx``), and with
    ``removed`` the parent's features the model disables."""
    models: dict[str, dict] = {}
    for path in sorted(cpu_map.glob("x86_*.xml")):
        if path.name in ("x86_features.xml", "x86_vendors.xml"):
            continue
        for m in ET.parse(path).getroot().findall("model"):
            parent = m.find("model")
            vendor = m.find("vendor")
            feats = sorted(f.get("name", "") for f in m.findall("feature")
                           if vmx or not f.get("name", "").startswith("vmx-"))
            models[m.get("name", "")] = {"vendor": vendor.get("name", "") if vendor is not None else "",
                                         "parent": parent.get("name", "") if parent is not None else "",
                                         "features": feats}
            if removed:
                models[m.get("name", "")]["removed"] = sorted(
                    f.get("name", "") for f in m.findall("feature") if f.get("policy") == "disable")
    return models
