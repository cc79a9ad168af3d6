"""cpusolve's own host fact file (``"schema": "cpusolve-facts/1"``), written by ``cpusolve probe``.

Schema (JSON object; unknown keys are ignored so that newer probes stay readable)::

    schema      "cpusolve-facts/1"
    arch        "x86_64"
    vendor      CPUID vendor string        family, model, stepping   integers
    model_name  /proc/cpuinfo "model name" (informational)
    features    canonical QEMU names
    exposable   true when features are what KVM can give a guest (source.method "kvm")
    bugs        Linux sysfs bug names the host has, or null when unknown
    kernel      the host's kernel release
    qemu        the QEMU version the host runs ("7.2.19"), where the probe found it
    libvirt     the libvirt daemon's version ("9.0.0"), where the probe found it
    source      {"method": "kvm" | "cpuinfo-fallback", "reason": ..., ...details}
"""

from __future__ import annotations

import re
from typing import Any

from cpusolve.errors import InputError
from cpusolve.inputs.facts.common import FeatureNames, check_arch

FORMAT = "cpusolve-facts"
#: a dotted release number, as the tools print it
VERSION = re.compile(r"^\d{1,4}(\.\d{1,4}){1,3}$")
SCHEMA = "cpusolve-facts/1"


def read(doc: dict[str, Any], label: str) -> dict:
    schema = doc.get("schema")
    if schema != SCHEMA:
        raise InputError(f"{label}: fact file schema '{str(schema)[:40]}' is not {SCHEMA}")
    check_arch(_str(doc, "arch", label, default="x86_64"), label, "fact file")
    identity = {key: _int(doc, key, label) for key in ("family", "model", "stepping")}
    features = doc.get("features")
    if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
        raise InputError(f"{label}: 'features' must be a list of feature names")
    bugs = doc.get("bugs")
    if bugs is not None and (not isinstance(bugs, list) or not all(isinstance(b, str) for b in bugs)):
        raise InputError(f"{label}: 'bugs' must be a list of Linux bug names or null")
    source = doc.get("source") if isinstance(doc.get("source"), dict) else {}
    exposable = doc.get("exposable", source.get("method") == "kvm")
    if not isinstance(exposable, bool):
        raise InputError(f"{label}: 'exposable' must be true or false")
    notes = [f"source {source.get('method', 'unknown')}"]
    if source.get("reason"):
        notes.append(str(source["reason"]))
    if doc.get("kernel"):
        notes.append(f"kernel {doc['kernel']}")
    kernel = doc.get("kernel") if isinstance(doc.get("kernel"), str) else None
    versions = {}
    for key in ("qemu", "libvirt"):
        value = doc.get(key)
        if value is not None:
            if not isinstance(value, str) or not VERSION.match(value):
                raise InputError(f"{label}: '{key}' must be a version such as \"9.0.0\", not {str(value)[:20]!r}")
            versions[key] = value
    return dict(vendor=_str(doc, "vendor", label), features=frozenset(FeatureNames(label).many(features)),
                bugs=None if bugs is None else frozenset(bugs), exposable=exposable,
                notes=tuple(notes), kernel=kernel, **identity, **versions)


def _str(doc: dict, key: str, label: str, default: str | None = None) -> str:
    value = doc.get(key, default)
    if not isinstance(value, str):
        raise InputError(f"{label}: '{key}' must be a string")
    return value


def _int(doc: dict, key: str, label: str) -> int:
    value = doc.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise InputError(f"{label}: '{key}' must be an integer")
    return value
