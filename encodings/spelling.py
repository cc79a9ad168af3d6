"""Names that are not CPU feature bits, or that a tool spells its own way, as data.

``data/spellings.json`` holds each table with its source: Linux's per-vendor synthetic
speculation flags and its software-only flags, QEMU's CPU properties that are settings,
the feature roles reports use (mechanisms, worst-case hints).  The readers and the catalog
ask here instead of keeping Python tables of CPU knowledge.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources


@cache
def _data() -> dict:
    return json.loads((resources.files("cpusolve.encodings") / "data" / "spellings.json").read_text())


def linux_per_vendor() -> dict[str, dict[str, str]]:
    """/proc/cpuinfo flag -> {vendor: canonical feature} (init_speculation_control())."""
    return _data()["linux_per_vendor"]["flags"]


def linux_renamed() -> dict[str, str]:
    return _data()["linux_renamed"]["flags"]


@cache
def linux_software() -> frozenset[str]:
    return frozenset(_data()["linux_software"]["flags"])


@cache
def not_model_features() -> frozenset[str]:
    return frozenset(_data()["not_model_features"]["names"])


@cache
def _names(table: str) -> tuple[frozenset[str], tuple[str, ...]]:
    entry = _data()[table]
    names = [n for n in entry["names"] if not n.endswith("*")]
    prefixes = [n[:-1] for n in entry["names"] if n.endswith("*")] + entry.get("prefixes", [])
    return frozenset(names), tuple(prefixes)


def is_qemu_setting(prop: str) -> bool:
    """A boolean QEMU CPU property a QMP expansion lists that is a setting, not a feature."""
    names, prefixes = _names("qemu_settings")
    return prop in names or prop.startswith(prefixes)


def is_qemu_cpu_option(prop: str) -> bool:
    """A -cpu property that configures QEMU rather than describes a CPU feature."""
    names, prefixes = _names("qemu_cpu_options")
    return prop in names or prop.startswith(prefixes)


@cache
def mechanism_features() -> frozenset[str]:
    return frozenset(_data()["mechanism_features"]["names"])


@cache
def hint_bits() -> frozenset[str]:
    return frozenset(_data()["hint_bits"]["names"])


@cache
def always_guest() -> frozenset[str]:
    return frozenset(_data()["always_guest"]["names"])


@cache
def guest_classes() -> frozenset[str]:
    return frozenset(_data()["guest_classes"]["names"])


def action_label(name: str) -> str:
    """Operator words for a guest kernel action ("ibrs_entry": "IBRS on kernel entry")."""
    return _data()["guest_actions"]["actions"].get(name, name)


def host_def_label(name: str) -> str:
    """Operator words for a named host condition ("zen34": "Zen 3/4")."""
    return _data()["guest_actions"]["host_defs"].get(name, name)


def residual_label(name: str) -> str:
    """What a partial protection leaves, in one clause."""
    return _data()["guest_actions"]["residuals"].get(name, name)
