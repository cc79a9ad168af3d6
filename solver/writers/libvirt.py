"""libvirt domain ``<cpu>`` elements (custom mode, exact match, full check, no fallback).

libvirt's ``<cpu>`` cannot carry a family/model/stepping of its own.  When an answer needs
one, the element is followed by the ``<qemu:commandline>`` passthrough that sets the QEMU
CPU type's properties, and a comment says why: dropping it silently would make guests
believe they are immune to bugs their hosts have.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from cpusolve.encodings.catalog import catalog
from cpusolve.report.records import DomainResult, Result


def cpu_element(d: DomainResult) -> ET.Element:
    cat = catalog()
    cpu = ET.Element("cpu", {"mode": "custom", "match": "exact", "check": "full"})
    model = ET.SubElement(cpu, "model", {"fallback": "forbid"})
    model.text = d.guest.model
    if d.guest.threads > 1:
        # sockets x cores x threads must equal the domain's vCPUs: scale cores, keep threads
        ET.SubElement(cpu, "topology", {"sockets": "1", "cores": "1", "threads": str(d.guest.threads)})
    for policy, names in (("require", d.guest.plus), ("disable", d.guest.minus)):
        for f in names:
            ET.SubElement(cpu, "feature", {"policy": policy, "name": cat.features[f].libvirt or f})
    return cpu


def fms_passthrough(d: DomainResult) -> ET.Element:
    ns = "http://libvirt.org/schemas/domain/qemu/1.0"
    cmd = ET.Element(f"{{{ns}}}commandline")
    for prop, value in zip(("family", "model", "stepping"), d.guest.fms, strict=True):
        ET.SubElement(cmd, f"{{{ns}}}arg", {"value": "-global"})
        ET.SubElement(cmd, f"{{{ns}}}arg", {"value": f"{d.guest.model}-x86_64-cpu.{prop}={value}"})
    return cmd


def render_libvirt(result: Result) -> str:
    ET.register_namespace("qemu", "http://libvirt.org/schemas/domain/qemu/1.0")
    out = []
    for d in result.domains:
        out.append(f"<!-- domain {d.index}: {', '.join(h.name for h in d.hosts)} -->")
        if d.guest is None:
            out.append(f"<!-- {d.status}: no safe guest CPU; see cpusolve --format text -->")
            continue
        elem = cpu_element(d)
        ET.indent(elem)
        if d.guest.threads > 1:
            out.append(f"<!-- REQUIRED: threads='{d.guest.threads}' in <topology>; set cores so that sockets x cores "
                       "x threads is the domain's vCPU count -->")
        out.append(ET.tostring(elem, encoding="unicode"))
        if d.guest.fms is not None:
            fam, mod, step = d.guest.fms
            out.append(f"<!-- REQUIRED: guests must see family {fam} model {mod} stepping {step}, "
                       "which <cpu> cannot say; add this to the domain XML (with xmlns:qemu on "
                       "<domain>) or guests will not mitigate the hosts' bugs -->")
            elem = fms_passthrough(d)
            ET.indent(elem)
            out.append(ET.tostring(elem, encoding="unicode"))
    return "\n".join(out) + "\n"
