"""``virsh domcapabilities`` XML: the host-model CPU libvirt would give a KVM guest.

libvirt computes host-model from QEMU's expansion of ``-cpu host`` under KVM, so its
feature set is already what the hypervisor can expose (``exposable``).  libvirt (through
11.x) prints no ``<signature>`` in host-model, so the file does not know the host's
family/model/stepping (``identity_known`` False): the pool pairs it with the same host's
``virsh capabilities`` or states the identity; it is never guessed from the model name.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from cpusolve.encodings.catalog import catalog
from cpusolve.errors import InputError
from cpusolve.inputs.facts.common import FeatureNames, check_arch
from cpusolve.inputs.facts.libvirt_xml import expand, signature, text_of, vendor

FORMAT = "libvirt-domcapabilities"


def read(root: ET.Element, label: str) -> dict:
    check_arch(text_of(root, "arch"), label, "domain capabilities")
    domain = text_of(root, "domain")
    if domain not in (None, "kvm"):
        raise InputError(f"{label}: domain capabilities of domain type '{domain[:20]}', not 'kvm'; "
                         f"run 'virsh domcapabilities --virttype kvm'")
    cpu = root.find("cpu")
    modes = {m.get("name"): m for m in (cpu.findall("mode") if cpu is not None else [])}
    host_model = modes.get("host-model")
    if host_model is None:
        raise InputError(f"{label}: domain capabilities without a host-model CPU")
    if host_model.get("supported") == "no":
        raise InputError(f"{label}: this hypervisor does not support host-model (KVM unavailable?)")
    model = text_of(host_model, "model")
    if model is None:
        raise InputError(f"{label}: host-model has no <model>")
    names = FeatureNames(label)
    features, notes = expand(model, host_model, names, label)
    fms, sig_notes = signature(host_model, model, label)
    return dict(vendor=vendor(text_of(host_model, "vendor"), model, label),
                family=fms[0] if fms else 0, model=fms[1] if fms else 0, stepping=fms[2] if fms else 0,
                identity_known=fms is not None, features=frozenset(features),
                bugs=None, exposable=True,
                custom_models=usable_models(modes.get("custom")), qemu=text_of(root, "machine"),
                notes=tuple([f"host-model {model}", *notes, *sig_notes]))


def usable_models(custom: ET.Element | None) -> tuple[str, ...]:
    """Catalog names of the custom models libvirt marks usable, in catalog order."""
    if custom is None:
        return ()
    cat = catalog()
    found = set()
    for elem in custom.findall("model"):
        if elem.get("usable") != "yes" or not elem.text:
            continue
        name = cat.resolve_model_name(elem.get("canonical") or elem.text.strip())
        if name is not None:
            found.add(name)
    return tuple(m.name for m in cat.models if m.name in found)
