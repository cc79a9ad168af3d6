"""A libvirt domain XML as ``virsh dumpxml`` writes it, to put an answer into.

Untrusted bytes like every input: size-limited, no DOCTYPE, one error line naming the file.
Comments are kept, so the domain comes back as the operator wrote it but for its CPU.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from cpusolve.errors import InputError
from cpusolve.inputs.facts.common import decode_text, parse_xml, read_bytes


def read_domain_xml(path: str | Path) -> ET.Element:
    label = str(path)
    text = decode_text(read_bytes(Path(path), label, what="a libvirt domain XML"), label)
    root = parse_xml(text, label, comments=True)
    if root.tag != "domain":
        raise InputError(f"{label}: <{root.tag[:40]}> is not a libvirt <domain> (virsh dumpxml gives one)")
    if root.get("type") not in ("kvm", "qemu"):
        raise InputError(f"{label}: domain type '{(root.get('type') or '')[:20]}' is not kvm or qemu")
    return root
