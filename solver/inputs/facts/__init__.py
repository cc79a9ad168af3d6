"""Host fact files in every format an operator already has, read into one :class:`FactFile`.

The format is decided from the content, never the file name: a ``virsh domcapabilities``
dump saved as ``host1.txt`` is still domcapabilities.  Each format has its own module; this
one only detects and dispatches, so a new format is one new module and one line here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cpusolve.core.hosts import VENDORS
from cpusolve.encodings.cpu import Cpu
from cpusolve.errors import InputError
from cpusolve.inputs.facts import capabilities, cpuid_dump, cpuinfo, domcapabilities, facts, qmp
from cpusolve.inputs.facts.common import MAX_BYTES, decode_text, parse_xml, read_bytes
from cpusolve.inputs.untrusted import is_directory, parse_json_prefix

__all__ = ["FactFile", "read_fact_file", "FORMATS", "MAX_BYTES"]

FORMATS = (domcapabilities.FORMAT, capabilities.FORMAT, qmp.FORMAT, cpuinfo.FORMAT,
           cpuid_dump.FORMAT, facts.FORMAT)


@dataclass(frozen=True)
class FactFile(Cpu):
    """One host's facts as a file states them, in canonical QEMU feature names: the CPU's
    identity and bits (``features``), plus where they came from and what they mean."""

    path: str = ""
    #: one of :data:`FORMATS`
    format: str = ""
    #: Linux sysfs bug names when the file says (cpuinfo + sysfs directory, probe); else None
    bugs: frozenset[str] | None = None
    #: True when ``features`` is already what the hypervisor can give a guest (domcapabilities
    #: host-model, QMP expansion of 'host' under KVM, the KVM probe); False for the silicon's
    #: own bits (cpuinfo, raw CPUID dump, capabilities)
    exposable: bool = False
    #: domcapabilities' usable custom models (canonical catalog names), if present
    custom_models: tuple[str, ...] = ()
    #: what the reader had to infer or could not know (e.g. f/m/s taken from a model)
    notes: tuple[str, ...] = ()
    #: the host kernel's release where the file says (a probe's uname -r)
    kernel: str | None = None
    #: False when the file does not state the CPU's family/model/stepping (domcapabilities'
    #: host-model has no <signature>): family/model/stepping are then 0 and must come from
    #: elsewhere (the pool pairs it with the same host's capabilities, or states them)
    identity_known: bool = True
    #: the QEMU version the file shows (domcapabilities' machine type "pc-i440fx-7.2", a
    #: probe's ``qemu-system-x86_64 --version``)
    qemu: str | None = None
    #: the libvirt version the file shows (a probe's ``libvirtd --version``)
    libvirt: str | None = None


def read_fact_file(path: str | Path) -> FactFile:
    """Read one host fact file (or a directory holding ``cpuinfo`` + ``vulnerabilities/``)."""
    label = str(path)
    p = Path(path)
    if is_directory(p, label):
        return _build(label, cpuinfo.FORMAT, cpuinfo.read_dir(p, label))
    text = decode_text(read_bytes(p, label), label)
    fmt, fields = _dispatch(text, label)
    return _build(label, fmt, fields)


_CPUINFO = re.compile(r"^(processor|vendor_id|cpu family|flags)\s*:", re.MULTILINE)


def _dispatch(text: str, label: str) -> tuple[str, dict]:
    head = text.lstrip()
    if not head:
        raise InputError(f"{label}: empty file, not a host fact file")
    if head.startswith("<"):
        root = parse_xml(text, label)
        if root.tag == "domainCapabilities":
            return domcapabilities.FORMAT, domcapabilities.read(root, label)
        if root.tag in ("capabilities", "cpu"):
            return capabilities.FORMAT, capabilities.read(root, label)
        if root.tag == "cpudata":
            return cpuid_dump.FORMAT, cpuid_dump.read(root, label)
        raise InputError(f"{label}: XML with root <{root.tag[:40]}> is not a known host fact format "
                         f"(expected <domainCapabilities>, <capabilities> or <cpudata>)")
    if head.startswith(("{", "[")):
        docs = _json_documents(text, label)
        first = docs[0]
        if isinstance(first, dict) and "schema" in first:
            return facts.FORMAT, facts.read(first, label)
        expansion = qmp.find_expansion(docs)
        if expansion is not None:
            return qmp.FORMAT, qmp.read(expansion, label)
        if any(isinstance(d, dict) and ("QMP" in d or "return" in d) for d in docs):
            raise InputError(f"{label}: QMP replies without a query-cpu-model-expansion result "
                             f"(run it with model 'host' under KVM)")
        raise InputError(f"{label}: JSON that is neither a cpusolve fact file nor a QMP reply")
    arch = cpuinfo.foreign_arch(text)
    if arch:
        raise InputError(f"{label}: /proc/cpuinfo of an {arch} machine; cpusolve models x86_64 hosts only")
    if _CPUINFO.search(text):
        return cpuinfo.FORMAT, cpuinfo.read_text(text, label, bugs=None)
    raise InputError(f"{label}: not a host fact file in a known format (expected virsh domcapabilities "
                     f"or capabilities XML, a libvirt CPUID dump, a QMP reply, /proc/cpuinfo or "
                     f"a cpusolve fact file)")


def _json_documents(text: str, label: str) -> list[Any]:
    """Every JSON value in the text: QMP sessions are one reply after another (duplicate keys
    and numbers too long to be one refused, as everywhere)."""
    docs = []
    pos = 0
    while True:
        while pos < len(text) and text[pos] in " \t\r\n":
            pos += 1
        if pos >= len(text):
            return docs
        doc, pos = parse_json_prefix(text, label, pos)
        docs.append(doc)


def _build(label: str, fmt: str, fields: dict) -> FactFile:
    vendor = fields["vendor"]
    if vendor not in VENDORS:
        raise InputError(f"{label}: unknown CPU vendor '{vendor[:20]}' "
                         f"(known: {', '.join(v.strip() for v in VENDORS)})")
    for key in ("family", "model", "stepping"):
        value = fields[key]
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 0xFFF:
            raise InputError(f"{label}: {key} {value!r} is out of range")
    return FactFile(path=label, format=fmt, vendor=vendor, family=fields["family"],
                    model=fields["model"], stepping=fields["stepping"],
                    features=frozenset(fields["features"]),
                    bugs=None if fields.get("bugs") is None else frozenset(fields["bugs"]),
                    exposable=bool(fields["exposable"]),
                    custom_models=tuple(fields.get("custom_models", ())),
                    notes=tuple(fields.get("notes", ())), kernel=fields.get("kernel"),
                    identity_known=bool(fields.get("identity_known", True)), qemu=fields.get("qemu"),
                    libvirt=fields.get("libvirt"))
