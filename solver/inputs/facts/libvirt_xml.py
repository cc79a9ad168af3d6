"""The CPU description both libvirt XML formats share: a model name plus feature deltas.

libvirt states a CPU as "model X, also these features, minus those"; the full feature set
is the *libvirt* definition of X (see :mod:`cpusolve.inputs.facts.libvirt_models`) plus the
required features minus the disabled ones.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from cpusolve.encodings.catalog import CpuModel, catalog
from cpusolve.errors import InputError
from cpusolve.inputs.facts.common import FeatureNames
from cpusolve.inputs.facts.libvirt_models import VENDORS, libvirt_model_features, libvirt_model_vendor, source


def text_of(parent: ET.Element, tag: str) -> str | None:
    elem = parent.find(tag)
    if elem is None or elem.text is None:
        return None
    return elem.text.strip() or None


def vendor(name: str | None, model: str, label: str) -> str:
    """CPUID vendor string from libvirt's vendor name, else from the model's vendor."""
    if name is not None:
        if name in VENDORS:
            return VENDORS[name]
        if name in VENDORS.values():
            return name
        raise InputError(f"{label}: unknown CPU vendor '{name[:30]}' (known: {', '.join(VENDORS)})")
    from_model = libvirt_model_vendor(model)
    if from_model is None:
        catalog_model = catalog().resolve_model_name(model)
        from_model = catalog().model(catalog_model).vendor if catalog_model else None
    if from_model is None:
        raise InputError(f"{label}: no <vendor> and model '{model}' has none")
    return from_model


def catalog_model(name: str, label: str) -> CpuModel:
    """The catalog model a libvirt model name stands for (libvirt names carry no -vN)."""
    return catalog().model(name, f"{label}: ")


def expand(model: str, cpu: ET.Element, names: FeatureNames, label: str) -> tuple[set[str], list[str]]:
    """Every canonical feature of ``<cpu>`` (or host-model ``<mode>``): model + require - disable."""
    notes: list[str] = []
    spelled = libvirt_model_features(model)
    if spelled is not None:
        base = names.many(sorted(spelled))
    else:
        qemu = catalog_model(model, label)
        base = set(qemu.features)
        notes.append(f"model '{model}' is not in the libvirt map this tool ships ({source()}); "
                     f"expanded through QEMU's {qemu.name}, which libvirt's definition may not match")
    required: set[str] = set()
    disabled: set[str] = set()
    for feat in cpu.findall("feature"):
        spelling = feat.get("name")
        if not spelling:
            raise InputError(f"{label}: <feature> without a name")
        policy = feat.get("policy", "require")
        name = names.one(spelling)
        if name is None:
            continue
        if policy in ("require", "force"):
            required.add(name)
        elif policy in ("disable", "forbid"):
            disabled.add(name)
        elif policy != "optional":
            raise InputError(f"{label}: feature '{spelling}' has unknown policy '{policy[:20]}'")
    return (base | required) - disabled, notes


def signature(cpu: ET.Element, model: str, label: str) -> tuple[tuple[int, int, int] | None, list[str]]:
    """f/m/s from ``<signature>`` when libvirt gives it; None when it does not (libvirt's
    host-model never has one): a model's f/m/s is not the host's, and the bugs follow from
    the host's (Haswell-EP read as Haswell-v2's 6/60 loses mmio_stale_data)."""
    sig = cpu.find("signature")
    if sig is None:
        return None, ["no <signature>: the host's family/model/stepping is not in this file"]
    try:
        return (int(sig.get("family", "")), int(sig.get("model", "")), int(sig.get("stepping", "0"))), []
    except ValueError:
        raise InputError(f"{label}: <signature> with non-numeric family/model/stepping") from None
