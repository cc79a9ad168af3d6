"""From a host entry as read to the facts the solver uses.

A catalog model, an inline description or a fact file states a CPU's identity and bits;
what a guest can be given on that host also depends on what KVM does with them, and its
bugs follow from Linux's rules where the entry does not state them.
"""

from __future__ import annotations

from pathlib import Path

import networkx as nx

from cpusolve.core.hosts import Host, HostFacts
from cpusolve.core.pool import Pool
from cpusolve.encodings.cpu import CpuView
from cpusolve.encodings.provision import kvm_cpuid_filter, kvm_exposable
from cpusolve.encodings.rules import load_rules
from cpusolve.inputs.pool_file import HostKindSpec, HostSpec, PoolSpec, read_host, read_pool


def host_bugs(vendor: str, fms: tuple[int, int, int], own: frozenset[str]) -> frozenset[str]:
    """The bugs Linux finds on bare metal with this identity and these bits (newest table)."""
    view = CpuView(vendor=vendor, family=fms[0], model=fms[1], stepping=fms[2], features=own, hypervisor=False)
    return frozenset(b for b, hit in load_rules().affected(view).items() if hit)


def facts_of(kind: HostKindSpec) -> HostFacts:
    """The facts of one host kind: KVM's view of the bits, and the bugs."""
    add, remove = kind.add, kind.remove
    own = (kind.features | add) - remove
    vendor, fms = kind.vendor, kind.fms
    bugs = kind.bugs if kind.bugs is not None else host_bugs(vendor, fms, own)
    if kind.silicon and kind.hypervisor == "kvm":
        # Silicon bits (cpuinfo, CPUID dumps, inline lists): only what KVM virtualises.
        own = kvm_cpuid_filter(own, bugs, vendor, fms[0]) | (own & add)
    exposable = kvm_exposable(own, bugs, vendor) if kind.hypervisor == "kvm" else frozenset(own)
    exposable = (exposable | add) - remove
    origin = kind.origin
    if add or remove:
        origin += "".join(f" +{f}" for f in sorted(add)) + "".join(f" -{f}" for f in sorted(remove))
    return HostFacts(vendor=vendor, family=fms[0], model=fms[1], stepping=fms[2],
                     features=exposable, bugs=bugs, origin=origin)


def host_of(spec: HostSpec, memo: dict | None = None) -> Host:
    """A pool host from its entry; ``memo`` (kind -> facts) derives each kind once."""
    if memo is None:
        facts = facts_of(spec.kind)
    else:
        facts = memo.get(spec.kind)
        if facts is None:
            facts = memo[spec.kind] = facts_of(spec.kind)
    return Host(name=spec.name, facts=facts, count=spec.count, labels=spec.labels)


def build_pool(spec: PoolSpec) -> Pool:
    memo: dict[HostKindSpec, HostFacts] = {}
    return Pool(hosts={name: host_of(h, memo) for name, h in spec.hosts.items()}, graph=spec.graph,
                directed=spec.directed, requirements=spec.requirements, source=spec.source,
                groups=spec.groups)


def load_pool(source: str | Path | dict | nx.Graph, name: str | None = None) -> Pool:
    """A pool from a path ('-' = stdin), a parsed dict, or a networkx graph."""
    return build_pool(read_pool(source, name))


def host_from_entry(name: str, entry, label: str, base: Path, memo: dict | None = None) -> Host:
    """One pool.json host entry (a what-if's ``--add``, the Planner's ``add_host``)."""
    return host_of(read_host(name, entry, label, base, memo))
