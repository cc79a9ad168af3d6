"""QEMU QMP ``query-cpu-model-expansion`` of model ``host`` under KVM.

Accepted as the ``{"return": {"model": {"name": ..., "props": {...}}}}`` reply (alone or
inside a whole QMP session, one JSON value after another, as libvirt's
``cputestdata/*.json`` stores it) or as the bare ``return`` object.  A ``static`` expansion
is named ``base`` and a ``full`` one ``host``: both list every feature as true/false plus
``vendor``/``family``/``model``/``stepping``.  A feature that is ``false`` is absent.
Under KVM this is exactly what QEMU can give a guest, so the result is ``exposable``.
"""

from __future__ import annotations

from typing import Any

from cpusolve.encodings import spelling
from cpusolve.errors import InputError
from cpusolve.inputs.facts.common import FeatureNames

FORMAT = "qemu-qmp-expansion"
#: Expansion results that describe the host (``base`` is what static expansion calls it).
HOST_NAMES = ("host", "base", "max")
#: Properties only other architectures' CPUs have, to name the architecture in the error.
FOREIGN_PROPS = (("aarch64", frozenset({"aarch64", "sve", "pauth", "pmu-v3"})),
                 ("s390x", frozenset({"vx", "msa1", "zpci", "gs", "ppa15"})))


def find_expansion(docs: list[Any]) -> dict | None:
    """The first expansion result among QMP replies (or a bare ``return`` object)."""
    for doc in docs:
        if not isinstance(doc, dict):
            continue
        ret = doc.get("return")
        if isinstance(ret, dict) and isinstance(ret.get("model"), dict):
            return ret
        if isinstance(doc.get("model"), dict) and "props" in doc["model"]:
            return doc
    return None


def read(expansion: dict, label: str) -> dict:
    model = expansion["model"]
    name = model.get("name")
    props = model.get("props")
    if not isinstance(props, dict):
        raise InputError(f"{label}: QMP expansion without 'props'")
    if name not in HOST_NAMES:
        raise InputError(f"{label}: QMP expansion of model '{str(name)[:40]}', not of 'host'; "
                         f"expand model 'host' under KVM to describe a host")
    foreign = next((arch for arch, keys in FOREIGN_PROPS if keys & props.keys()), None)
    if foreign and "family" not in props:
        raise InputError(f"{label}: QMP expansion of an {foreign} CPU; cpusolve models x86_64 hosts only")
    identity = {}
    for key in ("family", "model", "stepping"):
        value = props.get(key)
        if not isinstance(value, int) or isinstance(value, bool):
            raise InputError(f"{label}: QMP expansion has no integer '{key}' (use a 'full' or "
                             f"'static' expansion, which lists it)")
        identity[key] = value
    vendor = props.get("vendor")
    if not isinstance(vendor, str):
        raise InputError(f"{label}: QMP expansion has no 'vendor'")
    names = FeatureNames(label)
    features = set()
    for prop, value in sorted(props.items()):
        if value is not True:
            continue
        canonical = names.cat.canonical(prop)
        if canonical is not None:
            features.add(canonical)
        elif not spelling.is_qemu_setting(prop):
            names.report(prop)
    notes = [f"QMP expansion result '{name}'"]
    if isinstance(props.get("model-id"), str):
        notes.append(f"model-id {props['model-id'].strip()}")
    return dict(vendor=vendor, features=frozenset(features), bugs=None, exposable=True,
                notes=tuple(notes), **identity)
