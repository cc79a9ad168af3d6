"""libvirt output: one well-formed XML document, one ``<answer>`` per migration domain.

Each answer holds the domain ``<cpu>`` (custom mode, exact match, full check, no fallback)
written for one libvirt version (``encodings.libvirt``): a model name that libvirt knows
(libvirt hands it to QEMU as written; QEMU resolves it to the answer's versioned model),
and every feature where the answer differs from libvirt's definition of that model or from
QEMU's, so that the CPU QEMU builds is the answer and libvirt's ``check='full'``
comparison finds nothing to refuse.  libvirt's ``<cpu>`` cannot carry a
family/model/stepping: when an answer needs one, a ``<qemu:commandline>`` with ``-global``
on the QOM type QEMU really instantiates (``<libvirt model name>-x86_64-cpu``) follows, and
a ``<required>`` element says why.  Nothing from a host name or a message is ever written
into a comment: every text is an escaped attribute or element.

:func:`apply_to_domain` puts an answer into an existing domain XML (``virsh dumpxml``): its
``<cpu>`` replaced, its family/model/stepping passthrough replaced, everything else kept.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

from cpusolve.encodings import libvirt as lv
from cpusolve.encodings.catalog import catalog
from cpusolve.report.records import DomainResult, Result

QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0"
VENDOR_NAMES = {v: k for k, v in lv.VENDORS.items()}
FMS_PROPS = ("family", "model", "stepping")


@dataclass(frozen=True)
class LibvirtCpu:
    """An answer as one libvirt version writes it."""

    version: str
    model: str  # the libvirt model name
    require: tuple[str, ...]  # libvirt spellings
    disable: tuple[str, ...]
    threads: int
    #: (family, model, stepping) the guest must be shown, or None
    fms: tuple[int, int, int] | None
    vendor: str | None = None

    @property
    def qom_type(self) -> str:
        return f"{self.model}-x86_64-cpu"


class NotExpressible(Exception):
    """The answer names a model or feature this libvirt does not know."""


def libvirt_cpu(d: DomainResult, version: str | None = None) -> LibvirtCpu:
    """The domain's answer for libvirt ``version`` (default: the domain's target, else the
    newest known); :class:`NotExpressible` when that libvirt cannot say it."""
    return guest_cpu(d.guest, version or d.libvirt or lv.newest())


def guest_cpu(guest, version: str) -> LibvirtCpu:
    """A guest CPU as libvirt ``version`` writes it."""
    target = lv.libvirt(version)
    names = target.qemu_models.get(guest.model)
    if not names:
        raise NotExpressible(f"libvirt {version} has no name for {guest.model}")
    model = names[0]
    cat = catalog()
    answer = guest.visible()
    qemu_def = cat.model(guest.model).features
    libvirt_def = target.model_features(model)
    differ = (answer ^ qemu_def) | (answer ^ libvirt_def)
    unnamed = sorted(f for f in differ if not target.names(f) and (f in answer or f in qemu_def))
    if unnamed:
        raise NotExpressible(f"libvirt {version} has no name for {', '.join(unnamed)}")
    differ = {f for f in differ if target.names(f)}
    require = tuple(sorted(target.spelling[f] for f in differ if f in answer))
    disable = tuple(sorted(target.spelling[f] for f in differ if f not in answer))
    return LibvirtCpu(version, model, require, disable, guest.threads, guest.fms,
                      VENDOR_NAMES.get(guest.vendor) if guest.vendor else None)


def cpu_element(c: LibvirtCpu) -> ET.Element:
    cpu = ET.Element("cpu", {"mode": "custom", "match": "exact", "check": "full"})
    ET.SubElement(cpu, "model", {"fallback": "forbid"}).text = c.model
    if c.vendor:
        ET.SubElement(cpu, "vendor").text = c.vendor
    if c.threads > 1:
        # sockets x cores x threads must equal the domain's vCPUs: scale cores, keep threads
        ET.SubElement(cpu, "topology", {"sockets": "1", "dies": "1", "cores": "1", "threads": str(c.threads)})
    for policy, names in (("require", c.require), ("disable", c.disable)):
        for f in names:
            ET.SubElement(cpu, "feature", {"policy": policy, "name": f})
    return cpu


def passthrough_args(c: LibvirtCpu) -> list[str]:
    out = []
    for prop, value in zip(FMS_PROPS, c.fms or (), strict=False):
        out += ["-global", f"{c.qom_type}.{prop}={value}"]
    return out


def commandline_element(c: LibvirtCpu) -> ET.Element:
    cmd = ET.Element(f"{{{QEMU_NS}}}commandline")
    for arg in passthrough_args(c):
        ET.SubElement(cmd, f"{{{QEMU_NS}}}arg", {"value": arg})
    return cmd


def answer_element(d: DomainResult) -> ET.Element:
    attrs = {"domain": str(d.index), "status": d.status, "hosts": " ".join(h.name for h in d.hosts)}
    if d.starts and list(d.starts) != [h.name for h in d.hosts]:
        attrs["starts"] = " ".join(d.starts)
    answer = ET.Element("answer", attrs)
    if d.guest is None:
        ET.SubElement(answer, "reason").text = "no protected guest CPU; see cpusolve --format text"
        return answer
    try:
        c = libvirt_cpu(d)
    except NotExpressible as e:
        answer.set("status", "not-expressible")
        ET.SubElement(answer, "reason").text = (f"{e}; solve with --libvirt {d.libvirt or lv.newest()} (or "
                                                f"requirements.libvirt) so the answer uses its names")
        return answer
    answer.set("libvirt", c.version)
    answer.set("qemu-model", d.guest.model)
    answer.append(cpu_element(c))
    if c.threads > 1:
        ET.SubElement(answer, "required").text = (
            f"threads='{c.threads}' in <topology>: set cores so that sockets x cores x threads is the vCPU count")
    if c.fms is not None:
        fam, mod, step = c.fms
        ET.SubElement(answer, "required").text = (
            f"guests must see family {fam} model {mod} stepping {step}, which <cpu> cannot say: add this "
            f"<qemu:commandline> to the domain (xmlns:qemu on <domain>), or guests will not mitigate the hosts' bugs")
        answer.append(commandline_element(c))
    return answer


def cpu_text(c: LibvirtCpu) -> str:
    """The ``<cpu>`` element on one line (for a report)."""
    return ET.tostring(cpu_element(c), encoding="unicode")


def render_libvirt(result: Result) -> str:
    ET.register_namespace("qemu", QEMU_NS)
    root = ET.Element("cpusolve", {"source": str(result.source)})
    for d in result.domains:
        root.append(answer_element(d))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


# -- an existing domain --------------------------------------------------------------------

def apply_to_domain(domain: ET.Element, d: DomainResult, version: str | None = None) -> ET.Element:
    """``domain`` (a parsed ``<domain>``) with the answer's ``<cpu>`` in place of its own and
    its family/model/stepping passthrough replaced; everything else as it was."""
    c = libvirt_cpu(d, version)
    new = cpu_element(c)
    old = domain.find("cpu")
    if old is not None:
        topology = old.find("topology")
        if topology is not None and c.threads == 1:
            new.insert(2 if c.vendor else 1, topology)  # keep the domain's own topology
        numa = old.find("numa")
        if numa is not None:
            new.append(numa)
        index = list(domain).index(old)
        domain.remove(old)
        domain.insert(index, new)
    else:
        domain.append(new)
    cmd = domain.find(f"{{{QEMU_NS}}}commandline")
    if cmd is not None:
        args = [a.get("value", "") for a in cmd.findall(f"{{{QEMU_NS}}}arg")]
        keep = []
        i = 0
        while i < len(args):
            if args[i] == "-global" and i + 1 < len(args) and _is_fms_global(args[i + 1]):
                i += 2
                continue
            keep.append(args[i])
            i += 1
        for a in cmd.findall(f"{{{QEMU_NS}}}arg"):
            cmd.remove(a)
        for value in keep:
            ET.SubElement(cmd, f"{{{QEMU_NS}}}arg", {"value": value})
    extra = passthrough_args(c)
    if extra:
        if cmd is None:
            cmd = ET.SubElement(domain, f"{{{QEMU_NS}}}commandline")
        for value in extra:
            ET.SubElement(cmd, f"{{{QEMU_NS}}}arg", {"value": value})
    elif cmd is not None and not list(cmd):
        domain.remove(cmd)
    return domain


def _is_fms_global(value: str) -> bool:
    target, _, _ = value.partition("=")
    qom, _, prop = target.rpartition(".")
    return qom.endswith("-x86_64-cpu") and prop in FMS_PROPS


def render_domain(domain: ET.Element) -> str:
    ET.register_namespace("qemu", QEMU_NS)
    ET.indent(domain)
    return ET.tostring(domain, encoding="unicode") + "\n"
