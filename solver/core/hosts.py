"""Host facts: what a hypervisor host can give a guest, and which CPU bugs its silicon has."""

from __future__ import annotations

from dataclasses import dataclass, field

from cpusolve.encodings.cpu import Cpu

VENDORS = ("GenuineIntel", "AuthenticAMD", "HygonGenuine", "CentaurHauls", "  Shanghai  ")


@dataclass(frozen=True)
class HostFacts(Cpu):
    """Everything the solver needs about one kind of host: its identity, what its
    hypervisor can expose to a guest (``features``, canonical QEMU names) and the CPU bugs
    its silicon has.

    Two hosts with equal facts are the same "host kind" and share one set of solver terms,
    which is what keeps a 10,000-host pool of 20 CPU types small.
    """

    #: Linux sysfs names of the CPU bugs the host silicon has
    bugs: frozenset[str] = frozenset()
    #: where the facts came from, e.g. "catalog Skylake-Server-v4" (not part of equality)
    origin: str = field(default="", compare=False)


@dataclass(frozen=True)
class Host:
    """A named host (or ``count`` identical machines) of a pool."""

    name: str
    facts: HostFacts
    count: int = 1
    labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class HostRef:
    """A host as a report names it: its name and how many machines it stands for."""

    name: str
    count: int

    def to_dict(self) -> dict:
        return {"name": self.name, "count": self.count}
