"""Host facts: what a hypervisor host can give a guest, and which CPU bugs its silicon has."""

from __future__ import annotations

from dataclasses import dataclass, field

VENDORS = ("GenuineIntel", "AuthenticAMD", "HygonGenuine", "CentaurHauls", "  Shanghai  ")


@dataclass(frozen=True)
class HostFacts:
    """Everything the solver needs about one kind of host.

    Two hosts with equal facts are the same "host type" and share one set of solver terms,
    which is what keeps a 10,000-host pool of 20 CPU types small.
    """

    vendor: str
    family: int
    model: int
    stepping: int
    #: canonical QEMU names of what the host's hypervisor can expose to a guest
    features: frozenset[str]
    #: Linux sysfs names of the CPU bugs the host silicon has
    bugs: frozenset[str]
    #: where the facts came from, e.g. "catalog Skylake-Server-v4" (not part of equality)
    origin: str = field(default="", compare=False)

    @property
    def fms(self) -> tuple[int, int, int]:
        return (self.family, self.model, self.stepping)


@dataclass(frozen=True)
class Host:
    """A named host (or ``count`` identical machines) of a pool."""

    name: str
    facts: HostFacts
    count: int = 1
    labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class HostRef:
    name: str
    count: int

    def to_dict(self) -> dict:
        return {"name": self.name, "count": self.count}
