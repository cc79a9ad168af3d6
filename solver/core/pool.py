"""A pool: hosts, the migration graph between them, and what guests require."""

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx

from cpusolve.core.hosts import Host

POLICIES = ("strict", "compat")


@dataclass(frozen=True)
class Requirements:
    """Hard constraints the operator puts on every guest CPU of the pool."""

    require: frozenset[str] = frozenset()
    forbid: frozenset[str] = frozenset()
    min_model: str | None = None
    vendor: str | None = None
    #: "strict": the mitigation each guest kernel picks must protect on every host; "compat":
    #: the right kind of mitigation is accepted where a host's microcode makes it
    #: ineffective (reported INEFFECTIVE).
    policy: str = "strict"
    #: bugs the operator accepts; the output says so loudly
    waive: frozenset[str] = frozenset()
    #: guest kernels whose mitigation choices must protect (rule tables, see encodings.rules)
    kernels: tuple[str, ...] = ("6.1", "6.12")
    #: restrict models and feature names to what this QEMU knows ("7.2"; encodings.targets)
    #: or None (the catalog's own, current QEMU)
    qemu: str | None = None
    #: the libvirt the answer is started through ("9.0", "11.3"; encodings.libvirt): its model
    #: and feature names restrict the answer; None: QEMU's -cpu directly
    libvirt: str | None = None

    def to_dict(self) -> dict:
        return {
            "require": sorted(self.require), "forbid": sorted(self.forbid),
            "min_model": self.min_model, "vendor": self.vendor, "policy": self.policy,
            "waive": sorted(self.waive), "kernels": list(self.kernels), "qemu": self.qemu,
            "libvirt": self.libvirt,
        }


@dataclass
class Pool:
    """Hosts by name, a directed migration graph over their names, and migration groups.

    An undirected pool is stored with both edge directions and ``directed=False``, so that
    domain computation can pick components instead of reachability sets.  A group (every
    member may migrate to every other) is kept as its member list, not as n(n-1) edges: a
    cell of 1,000 hosts would be a million edges.  The migration relation is the graph's
    edges plus every group's pairs (``domains.migration_graph``).
    """

    hosts: dict[str, Host]
    graph: nx.DiGraph
    directed: bool = False
    requirements: Requirements = field(default_factory=Requirements)
    source: str = "<pool>"
    groups: list[tuple[str, ...]] = field(default_factory=list)
    #: host facts the pool gives once for every host (kernel, tsx, smt); new hosts get them too
    host_defaults: dict = field(default_factory=dict)

    @property
    def host_count(self) -> int:
        return sum(h.count for h in self.hosts.values())
