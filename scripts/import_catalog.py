#!/usr/bin/env python3
"""Regenerate encodings/data/{models,features,targets}.json from the shared public data.

The catalog is the project's own format; this script is how it was made and how to
remake it when QEMU or libvirt grow new models.  It reads facts only:

* ../shared/data/qemu-x86-models.json   (QEMU 10.2.50 builtin_x86_defs, every version)
* ../shared/data/qemu-7.2-x86-models.json (what Debian bookworm's QEMU 7.2 knows)
* ../shared/data/libvirt-cpu_map/x86_features.xml (libvirt 11.3 spellings)
* encodings/data/linux-cpufeatures.json (Linux /proc/cpuinfo spellings, cpuid-deps.c)

Usage: python scripts/import_catalog.py [SHARED_DATA_DIR]
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "encodings" / "data"

# Release order of QEMU's base models (oldest first), per vendor line.  "Newer" in the
# optimizer's tie-break means later in this list, then higher version.  Dates are the
# public launch years of the silicon each model describes.
GENERATIONS = [
    # generic / legacy
    "486", "pentium", "pentium2", "pentium3", "athlon", "qemu32", "kvm32", "coreduo",
    "n270", "qemu64", "kvm64", "core2duo", "phenom",
    # Intel, by launch year
    "Conroe",            # 2006
    "Penryn",            # 2007
    "Nehalem",           # 2008
    "Westmere",          # 2010
    "SandyBridge",       # 2011
    "IvyBridge",         # 2012
    "Haswell",           # 2013
    "Broadwell",         # 2014
    "Skylake-Client",    # 2015
    "Skylake-Server",    # 2017
    "Denverton",         # 2017
    "KnightsMill",       # 2017
    "Cascadelake-Server",  # 2019
    "Snowridge",         # 2019
    "Cooperlake",        # 2020
    "Icelake-Server",    # 2021
    "SapphireRapids",    # 2023
    "SierraForest",      # 2024
    "GraniteRapids",     # 2024
    "ClearwaterForest",  # 2025
    "DiamondRapids",     # 2026
    # AMD
    "Opteron_G1", "Opteron_G2", "Opteron_G3", "Opteron_G4", "Opteron_G5",
    "EPYC",              # 2017 Naples
    "Dhyana",            # 2018 Hygon
    "EPYC-Rome",         # 2019
    "EPYC-Milan",        # 2021
    "EPYC-Genoa",        # 2022
    "EPYC-Turin",        # 2024
    # Zhaoxin
    "YongFeng",
]

# Feature words that are not CPU features: KVM paravirtual leaves (0x40000001) are set by
# the accelerator, VMX capability MSRs only matter with +vmx (nested virtualisation).
PARAVIRT_WORDS = {"FEAT_KVM", "FEAT_KVM_HINTS"}
# pmu=off (QEMU's default for named models) clears these; a guest cannot be given them
# without changing the PMU setting, which is not a CPU model choice.
PMU_ONLY = {"pdcm", "arch-lbr"}

# Dependencies a guest needs beyond QEMU's own feature_dependencies[] and Linux's
# cpuid-deps.c: the safety structure of IA32_ARCH_CAPABILITIES hints (Xen's guest CPU
# policy, xen/arch/x86/cpu-policy.c) and the OS-visible AVX chain (Intel SDM vol. 1
# 13.1: AVX state is managed by XSAVE).
EXTRA_REQUIRES = {
    "ibrs-all": [["spec-ctrl"]],
    "avx": [["xsave"]],
    "avx512f": [["avx2"], ["xsave"]],
}


def _bits(mask: str) -> list[int]:
    value = int(mask, 16)
    return [b for b in range(64) if value >> b & 1]


def libvirt_names(path: Path) -> dict[tuple, str]:
    """Map (kind, leaf/msr, subleaf, register, bit) to libvirt's feature name."""
    names: dict[tuple, str] = {}
    for feat in ET.parse(path).getroot().iter("feature"):
        for cpuid in feat.findall("cpuid"):
            leaf = int(cpuid.get("eax_in"), 16)
            sub = int(cpuid.get("ecx_in", "0"), 16)
            for reg in ("eax", "ebx", "ecx", "edx"):
                if cpuid.get(reg):
                    for bit in _bits(cpuid.get(reg)):
                        names[("cpuid", leaf, sub, reg.upper(), bit)] = feat.get("name")
        for msr in feat.findall("msr"):
            index = int(msr.get("index"), 16)
            value = int(msr.get("edx"), 16) << 32 | int(msr.get("eax"), 16)
            for bit in _bits(hex(value)):
                names[("msr", index, 0, "", bit)] = feat.get("name")
    return names


def _key(info: dict) -> tuple:
    if info["kind"] == "msr":
        return ("msr", int(info["msr"], 16), 0, "", info["bit"])
    sub = info["subleaf"] or 0
    return ("cpuid", int(info["leaf"], 16), sub, info["register"], info["bit"])


def linux_names(path: Path) -> tuple[dict[tuple, str], list[list[str]]]:
    if not path.exists():
        return {}, []
    data = json.loads(path.read_text())
    names = {}
    for entry in data.get("features", []):
        cpuid = entry.get("cpuid")
        if cpuid and (entry.get("cpuinfo") or entry.get("linux_name")):
            key = ("cpuid", int(str(cpuid["leaf"]), 16), cpuid.get("subleaf") or 0,
                   cpuid["register"].upper(), cpuid["bit"])
            # (name shown in /proc/cpuinfo or None when Linux hides it, Linux's own name)
            names[key] = (entry.get("cpuinfo"), entry.get("linux_name"))
    return names, data.get("deps", [])


def feature_class(name: str, info: dict) -> str:
    if info["word"] in PARAVIRT_WORDS:
        return "paravirt"
    if info.get("vmx"):
        return "vmx"
    if info.get("unmigratable"):
        return "unmigratable"  # QEMU refuses to migrate a guest with it (invtsc)
    if name in PMU_ONLY or info["word"] == "FEAT_PERF_CAPABILITIES":
        return "pmu"
    if info["word"] == "FEAT_ARCH_CAPABILITIES":
        return "arch-capabilities"
    return "cpu"


def build(shared: Path) -> None:
    qemu = json.loads((shared / "qemu-x86-models.json").read_text())
    q72 = json.loads((shared / "qemu-7.2-x86-models.json").read_text())
    q72_props: set[str] = set()
    for entry in q72["models"].values():
        q72_props.update(k for k, v in entry.get("props", {}).items() if isinstance(v, bool))
    q72_models = set(q72["models"])

    lv = libvirt_names(shared / "libvirt-cpu_map" / "x86_features.xml")
    lx, linux_deps = linux_names(OUT / "linux-cpufeatures.json")

    word_members: dict[str, list[str]] = {}
    for name, info in qemu["features"].items():
        word_members.setdefault(info["word"], []).append(name)

    features: dict[str, dict] = {}
    for name in sorted(qemu["features"]):
        info = qemu["features"][name]
        entry: dict = {"class": feature_class(name, info)}
        if info["kind"] == "msr":
            entry["msr"] = {"index": info["msr"], "bit": info["bit"]}
        else:
            entry["cpuid"] = {"leaf": info["leaf"], "subleaf": info["subleaf"],
                              "register": info["register"], "bit": info["bit"]}
        entry["aliases"] = sorted(info["aliases"])
        key = _key(info)
        entry["libvirt"] = lv.get(key)
        entry["linux"], entry["linux_name"] = lx.get(key, (None, None))
        entry["requires"] = []
        features[name] = entry

    # QEMU feature_dependencies[]: "if none of A.. then clear B" = B requires any of A.
    for dep in qemu["feature_dependencies"]:
        targets = dep["then_clear"]
        if isinstance(targets, str):
            targets = word_members.get(dep["to_word"], [])
        for target in targets:
            if target in features:
                group = sorted(dep["if_none_of"])
                if group not in features[target]["requires"]:
                    features[target]["requires"].append(group)
    for first, second in linux_deps:
        if first in features and second in features and [second] not in features[first]["requires"]:
            features[first]["requires"].append([second])
    for name, groups in EXTRA_REQUIRES.items():
        for group in groups:
            if group not in features[name]["requires"]:
                features[name]["requires"].append(group)
    for entry in features.values():
        entry["requires"].sort()

    rank = {base: i for i, base in enumerate(GENERATIONS)}
    models = []
    for m in qemu["models"]:
        if m["base"] not in rank:
            raise SystemExit(f"model base {m['base']} has no place in GENERATIONS")
        guest = sorted(f for f in m["features_kvm"]
                       if features[f]["class"] not in ("paravirt", "vmx", "unmigratable"))
        models.append({
            "name": m["name"], "base": m["base"], "version": m["version"],
            "vendor": m["vendor"], "family": m["family"], "model": m["model"],
            "stepping": m["stepping"], "model_id": m["model_id"],
            "generation": rank[m["base"]],
            "features": guest,
            "note": m.get("note"),
            "deprecated": bool(m.get("deprecated")),
        })
    models.sort(key=lambda x: (x["generation"], x["version"]))

    src = qemu["source"]
    source = {
        "qemu": {"repository": src["repository"], "commit": src["commit"],
                 "version": src["qemu_version_file"], "files": src["files"],
                 "license": src["license"]},
        "libvirt": "libvirt 11.3.0 src/cpu_map/x86_features.xml (spellings only)",
        "linux": "Linux cpufeatures.h / cpuid-deps.c via encodings/data/linux-cpufeatures.json",
        "made_by": "scripts/import_catalog.py",
        "semantics": ("model 'features' = what -accel kvm gives a plain '-cpu NAME' (QEMU's "
                      "kvm_default_props applied, pmu=off, dependencies applied), without KVM "
                      "paravirtual leaves and VMX capability words"),
    }
    (OUT / "features.json").write_text(json.dumps(
        {"source": source, "features": features}, indent=1, sort_keys=True) + "\n")
    (OUT / "models.json").write_text(json.dumps(
        {"source": source, "aliases": dict(sorted(qemu["aliases"].items())), "models": models},
        indent=1) + "\n")
    # Which names each QEMU knows: a target is a data change, not a code change.
    qemu_version = ".".join(src["qemu_version_file"].split(".")[:2])
    targets = {
        "semantics": ("per tool and version: the versioned CPU model names and the feature names "
                      "(canonical QEMU spelling) it accepts in -cpu"),
        "made_by": "scripts/import_catalog.py",
        "qemu": {
            qemu_version: {"source": f"QEMU {src['qemu_version_file']} ({src['repository']} {src['commit']})",
                           "models": [m["name"] for m in models], "features": sorted(features)},
            "7.2": {"source": q72["source"]["tool"],
                    "models": [m["name"] for m in models if m["name"] in q72_models],
                    "features": sorted(f for f in features if f in q72_props)},
        },
        "default": {"qemu": qemu_version},
    }
    (OUT / "targets.json").write_text(json.dumps(targets, indent=1, sort_keys=True) + "\n")
    print(f"{len(features)} features, {len(models)} model versions, {len(qemu['aliases'])} aliases")


if __name__ == "__main__":
    build(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "data")
