"""libvirt's raw CPUID dump (``tests/cputestdata/x86_64-cpuid-*.xml``, ``cpu-data.py``).

``<cpudata arch='x86'>`` holds one ``<cpuid eax_in= ecx_in= eax= ebx= ecx= edx=/>`` per
leaf/subleaf and ``<msr index= edx= eax=/>`` per feature MSR, exactly as the silicon (or,
for MSRs libvirt read through /dev/kvm, KVM) answered.  These are the CPU's own bits, not
what a hypervisor exposes, so the result is not ``exposable``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from cpusolve.errors import InputError
from cpusolve.inputs.facts.common import check_arch, cpuid_signature, int_attr, vendor_string
from cpusolve.inputs.facts.cpuid import decode_cpuid, decode_msrs, in_range

FORMAT = "libvirt-cpuid-dump"


def read(root: ET.Element, label: str) -> dict:
    arch = root.get("arch")
    if arch != "x86":
        check_arch(arch or "unknown", label, "CPUID dump")
    leaves: dict[tuple[int, int], tuple[int, int, int, int]] = {}
    msrs: dict[int, int] = {}
    for elem in root:
        if elem.tag == "cpuid":
            key = (int_attr(elem, "eax_in", label, 16), int_attr(elem, "ecx_in", label, 16))
            leaves[key] = tuple(int_attr(elem, r, label, 16) for r in ("eax", "ebx", "ecx", "edx"))
        elif elem.tag == "msr":
            msrs[int_attr(elem, "index", label, 16)] = (int_attr(elem, "edx", label, 16) << 32
                                                        | int_attr(elem, "eax", label, 16))
    if (0, 0) not in leaves or (1, 0) not in leaves:
        raise InputError(f"{label}: CPUID dump without leaf 0 and leaf 1 (vendor and signature)")
    leaves = in_range(leaves)
    _, ebx, ecx, edx = leaves[(0, 0)]
    family, model, stepping = cpuid_signature(leaves[(1, 0)][0])
    notes = []
    if msrs:
        notes.append("MSRs: " + ", ".join(f"{i:#x}={v:#x}" for i, v in sorted(msrs.items())))
    return dict(vendor=vendor_string(ebx, ecx, edx), family=family, model=model, stepping=stepping,
                features=frozenset(decode_cpuid(leaves) | decode_msrs(msrs)), bugs=None,
                exposable=False, notes=tuple(notes))
