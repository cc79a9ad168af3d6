"""What each tool version an answer is written for knows: model and feature names.

An answer may only use names its target accepts (QEMU refuses an unknown model or property:
"Property '...amd-psfd' not found").  The names per version are data
(``data/targets.json``, made by ``scripts/import_catalog.py`` from QEMU's own model tables),
so adding a target is a data change.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources

from cpusolve.errors import InputError


@dataclass(frozen=True)
class Target:
    tool: str  # "qemu"
    version: str
    source: str
    models: frozenset[str]
    features: frozenset[str]
    name: str = ""

    @property
    def label(self) -> str:
        return self.name or f"{'QEMU' if self.tool == 'qemu' else self.tool} {self.version}"


@cache
def _data() -> dict:
    return json.loads((resources.files("cpusolve.encodings") / "data" / "targets.json").read_text())


def version_key(version: str) -> tuple[int, ...]:
    """"7.2" < "10.2": dotted versions compared as numbers."""
    return tuple(int(x) for x in version.split("."))


def qemu_versions() -> tuple[str, ...]:
    """The QEMU versions with a name table, oldest first."""
    return tuple(sorted(_data()["qemu"], key=version_key))


def default_qemu() -> str:
    return _data()["default"]["qemu"]


@cache
def qemu(version: str | None = None) -> Target:
    """The names QEMU ``version`` knows (None: the catalog's own, current QEMU)."""
    version = version or default_qemu()
    entry = _data()["qemu"].get(version)
    if entry is None:
        raise InputError(f"no name table for QEMU '{version}' (known: {', '.join(qemu_versions())})")
    return Target("qemu", version, entry["source"], frozenset(entry["models"]), frozenset(entry["features"]))


@cache
def target(qemu_version: str | None = None, libvirt_version: str | None = None) -> Target:
    """What an answer for this QEMU, started through this libvirt (None: QEMU directly),
    may name: QEMU's models that the libvirt has a name for, and the features both name
    (a flag libvirt cannot spell cannot be written in a domain's <cpu>)."""
    q = qemu(qemu_version)
    if libvirt_version is None:
        return q
    from cpusolve.encodings.libvirt import libvirt

    lv = libvirt(libvirt_version)
    return Target("qemu+libvirt", f"{q.version}+{lv.version}", f"{q.source}; {lv.source}",
                  q.models & frozenset(lv.qemu_models), q.features & frozenset(lv.spelling),
                  f"{q.label} through {lv.label}")
