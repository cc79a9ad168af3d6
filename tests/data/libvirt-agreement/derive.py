#!/usr/bin/env python3
"""Regenerate this folder's inputs (run by hand; the tests never run it).

    python tests/data/libvirt-agreement/derive.py [SHARED_DATA] [LIBVIRT9_CPU_MAP]

SHARED_DATA defaults to /work/shared/data (libvirt 11.3.0's cpu_map and cputestdata),
LIBVIRT9_CPU_MAP to /usr/share/libvirt/cpu_map (Debian bookworm libvirt 9.0.0).

For every CPU in CPUS it copies, verbatim,
  x86_64-cpuid-<CPU>.xml       the raw CPUID (+MSR) dump of the real host (cpusolve's input)
  x86_64-cpuid-<CPU>-host.xml  libvirt 11.3.0's decode of that dump (provenance only)
and writes
  <CPU>.libvirt9.xml           the same host as a host-type <cpu> that libvirt 9.0 accepts;
  libvirt9-features.txt        every feature name libvirt 9.0's cpu_map knows (the test
                               compares the two guests on these).

Why the third file: libvirt 11.3 decodes hosts to versioned models (Haswell-v2 ...) and
names features (flush-l1d, zero-fcs-fds, vmx-* ...) that libvirt 9.0's cpu_map does not
know, so `virsh cpu-baseline` 9.0 refuses the -host.xml files. The derived file holds the
host's full 11.3 feature set (the -host.xml model expanded with the 11.3 map, plus its
listed features) restricted to the names libvirt 9.0 knows, written as the 9.0 model the
11.3 model aliases (Haswell-v2 -> Haswell-noTSX) plus every other feature. The features
dropped are listed in a comment. Before writing, the script checks that decoding the raw
dump with the 11.3 map's CPUID/MSR bits gives exactly the -host.xml feature set (vmx-*
aside), i.e. the derived file is libvirt's own view of the real silicon.
"""

from __future__ import annotations

import glob
import os
import shutil
import sys
import xml.etree.ElementTree as ET

CPUS = [
    "Xeon-E5-2650-v3", "Xeon-E5-2650-v4", "Xeon-Gold-6148",
    "Core-i7-5600U", "Core-i7-7700",
    "EPYC-7601-32-Core", "EPYC-7502-32-Core",
    "Ryzen-7-1800X-Eight-Core", "Ryzen-9-3900X-12-Core",
    "Xeon-Gold-5115", "Xeon-Gold-6130", "Ice-Lake-Server",
    "Xeon-Platinum-8268", "Cooperlake",
    "Core-i7-2600", "Core-i7-3770",
    "Xeon-E7-4830", "Xeon-W3520",
    "Core-i5-4670T",
    "Opteron-6282", "A10-5800K",
]

HERE = os.path.dirname(os.path.abspath(__file__))


def load_map(d):
    feats, models = {}, {}
    root = ET.parse(os.path.join(d, "x86_features.xml")).getroot()
    for f in root.findall("feature"):
        bits = []
        for c in f.findall("cpuid"):
            for reg in ("eax", "ebx", "ecx", "edx"):
                if c.get(reg):
                    bits.append(("cpuid", int(c.get("eax_in"), 16), int(c.get("ecx_in", "0"), 16),
                                 reg, int(c.get(reg), 16)))
        for m in f.findall("msr"):
            bits.append(("msr", int(m.get("index"), 16), int(m.get("edx"), 16), int(m.get("eax"), 16)))
        feats[f.get("name")] = bits
    for fn in glob.glob(os.path.join(d, "x86_*.xml")):
        for m in ET.parse(fn).getroot().findall("model"):
            models[m.get("name")] = m
    return feats, models


def expand(models, name):
    """A model's features. Those marked removed='yes' (monitor in EPYC, intel-pt in
    Skylake...: QEMU dropped them from the model) do not count: a host CPU written as that
    model has them only when it lists them, as both libvirt versions read it."""
    m = models[name]
    out = set()
    base = m.find("model")
    if base is not None:
        out |= expand(models, base.get("name"))
    out |= {f.get("name") for f in m.findall("feature") if f.get("removed") != "yes"}
    return out


def decode(feats, path):
    r = ET.parse(path).getroot()
    cpuid = {(int(c.get("eax_in"), 16), int(c.get("ecx_in"), 16)):
             {k: int(c.get(k), 16) for k in ("eax", "ebx", "ecx", "edx")} for c in r.findall("cpuid")}
    msr = {int(m.get("index"), 16): (int(m.get("edx"), 16), int(m.get("eax"), 16)) for m in r.findall("msr")}
    out = set()
    for name, bits in feats.items():
        ok = bool(bits)
        for b in bits:
            if b[0] == "cpuid":
                v = cpuid.get((b[1], b[2]), {}).get(b[3], 0)
                ok = ok and (v & b[4]) == b[4]
            else:
                e, a = msr.get(b[1], (0, 0))
                ok = ok and (e & b[2]) == b[2] and (a & b[3]) == b[3]
        if ok:
            out.add(name)
    return out


def base_model9(models11, models9, name, full, vendor):
    """The libvirt 9.0 model that the 11.3 model `name` is (Haswell-v2 -> Haswell-noTSX);
    for a version with features of its own (EPYC-Rome-v3), the largest 9.0 model of the
    vendor that the host has all features of. Either way only a starting point: the
    derived file lists every other host feature, so the CPUID data is the same."""
    while name not in models9:
        m = models11[name]
        base = m.find("model")
        if base is None or m.findall("feature"):
            fits = [n for n, m9 in models9.items()
                    if (m9.find("vendor") is not None and m9.find("vendor").get("name") == vendor)
                    and expand(models9, n) <= full]
            return max(sorted(fits), key=lambda n: len(expand(models9, n)))
        name = base.get("name")
    return name


def main(shared="/work/shared/data", map9="/usr/share/libvirt/cpu_map"):
    feats11, models11 = load_map(os.path.join(shared, "libvirt-cpu_map"))
    feats9, models9 = load_map(map9)
    for name in feats9:
        assert feats9[name] == feats11.get(name), f"{name}: CPUID bits differ between maps"
    with open(os.path.join(HERE, "libvirt9-features.txt"), "w") as fh:
        fh.write("\n".join(sorted(feats9)) + "\n")
    src = os.path.join(shared, "libvirt-cputestdata")
    for cpu in CPUS:
        raw = os.path.join(src, f"x86_64-cpuid-{cpu}.xml")
        host = os.path.join(src, f"x86_64-cpuid-{cpu}-host.xml")
        shutil.copyfile(raw, os.path.join(HERE, os.path.basename(raw)))
        shutil.copyfile(host, os.path.join(HERE, os.path.basename(host)))
        r = ET.parse(host).getroot()
        model11 = r.find("model").text
        vendor = r.find("vendor").text
        full = expand(models11, model11) | {f.get("name") for f in r.findall("feature")}
        novmx = {f for f in full if not f.startswith("vmx-")}
        decoded = {f for f in decode(feats11, raw) if not f.startswith("vmx-")}
        tsx = {"hle", "rtm"}
        # libvirt's host code drops TSX on Haswell parts whose microcode disabled it
        # (x86DataFilterTSX); that is the only way the decode may differ from the bits.
        assert novmx == decoded or decoded - novmx == tsx and not novmx - decoded, (
            cpu, sorted(novmx ^ decoded))
        model9 = base_model9(models11, models9, model11, full, vendor)
        m9 = expand(models9, model9)
        assert m9 <= full, (cpu, model9, sorted(m9 - full))
        known9 = full & set(feats9)
        dropped = sorted(novmx - set(feats9))
        lines = [f"<!-- {cpu}: derived by derive.py from x86_64-cpuid-{cpu}-host.xml (libvirt 11.3.0,",
                 f"     model {model11}) for libvirt 9.0's cpu_map: model {model9} plus the other features.",
                 "     Host features dropped because libvirt 9.0 does not know them (vmx-* aside):",
                 f"     {' '.join(dropped) or '(none)'} -->",
                 "<cpu>", "  <arch>x86_64</arch>", f"  <model>{model9}</model>", f"  <vendor>{vendor}</vendor>"]
        sig = r.find("signature")
        if sig is not None:
            lines.append("  <signature " + " ".join(f"{k}='{v}'" for k, v in sig.attrib.items()) + "/>")
        lines += [f"  <feature name='{f}'/>" for f in sorted(known9 - m9)]
        lines.append("</cpu>")
        with open(os.path.join(HERE, f"{cpu}.libvirt9.xml"), "w") as fh:
            fh.write("\n".join(lines) + "\n")
        print(f"{cpu}: {model11} -> {model9}, {len(known9 - m9)} extra features, dropped {dropped}")


if __name__ == "__main__":
    main(*sys.argv[1:])
