"""Typed names of the facts an explanation may retract: a minimal conflict is a set of these.

Each key says what the fact is in the domain's terms (which hosts lack which feature, which
requirement, which safety obligation), so the report turns a core into operator words
without reading any message back.
"""

from __future__ import annotations

from dataclasses import dataclass

from cpusolve.encodings.safety import Obligation


@dataclass(frozen=True)
class Lacks:
    """The host kinds ``kinds`` (indexes into the domain's types) cannot expose ``feature``."""

    feature: str
    kinds: tuple[int, ...]


@dataclass(frozen=True)
class QemuLacks:
    """The target QEMU (``target``, e.g. "QEMU 7.2") has no name for ``feature``."""

    feature: str
    target: str


@dataclass(frozen=True)
class Require:
    feature: str


@dataclass(frozen=True)
class Forbid:
    feature: str


@dataclass(frozen=True)
class MinModel:
    model: str


@dataclass(frozen=True)
class Must:
    """A safety obligation (encodings.safety) holds."""

    obligation: Obligation


FactKey = Lacks | QemuLacks | Require | Forbid | MinModel | Must
