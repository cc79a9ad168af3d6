"""``virsh capabilities`` XML: the host CPU as libvirt decodes the silicon.

The ``<host><cpu>`` element lists a libvirt model plus the features the CPU has beyond it,
and (libvirt >= 4.x) the real ``<signature>`` and ``<microcode>``.  These are the chip's
bits, not what KVM exposes, so the result is not ``exposable``.  A bare ``<cpu>`` with an
``<arch>`` (libvirt's host-CPU form, e.g. ``cputestdata/*-host.xml``) reads the same way.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from cpusolve.errors import InputError
from cpusolve.inputs.facts.common import FeatureNames, check_arch
from cpusolve.inputs.facts.libvirt_xml import expand, signature, text_of, vendor

FORMAT = "libvirt-capabilities"


def read(root: ET.Element, label: str) -> dict:
    if root.tag == "cpu":
        cpu = root
    else:
        host = root.find("host")
        cpu = host.find("cpu") if host is not None else None
        if cpu is None:
            raise InputError(f"{label}: capabilities without a <host><cpu> element")
    check_arch(text_of(cpu, "arch") or "unknown", label, "capabilities")
    model = text_of(cpu, "model")
    if model is None:
        raise InputError(f"{label}: the host <cpu> names no model (libvirt could not decode this CPU)")
    names = FeatureNames(label)
    features, notes = expand(model, cpu, names, label)
    fms, sig_notes = signature(cpu, model, label)
    microcode = cpu.find("microcode")
    if microcode is not None and microcode.get("version"):
        notes.append(f"microcode version {microcode.get('version')}")
    return dict(vendor=vendor(text_of(cpu, "vendor"), model, label),
                family=fms[0] if fms else 0, model=fms[1] if fms else 0, stepping=fms[2] if fms else 0,
                identity_known=fms is not None, features=frozenset(features),
                bugs=None, exposable=False, notes=tuple([f"host CPU {model}", *notes, *sig_notes]))
