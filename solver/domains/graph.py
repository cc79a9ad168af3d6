"""Migration domains: the hosts a VM may end up on, deduplicated so each is solved once.

Undirected pools: connected components.  Directed pools: the VM started on h may reach
every descendant of h, so its domain is h's reachability set; computed on the
condensation (strongly connected components) so that a large pool does not walk the
graph once per host.
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from cpusolve.core.hosts import HostFacts, HostRef
from cpusolve.core.pool import Pool
from cpusolve.domains.kinds import HostKinds, type_order


@dataclass(frozen=True)
class Domain:
    """A set of hosts every guest started on ``starts`` must be able to run on."""

    hosts: tuple[str, ...]  # every host a VM may reach, sorted
    starts: tuple[str, ...]  # hosts whose VMs get this answer (== hosts when undirected)
    types: tuple[HostFacts, ...]  # distinct host facts, in a stable order

    def kinds(self, pool: Pool) -> HostKinds:
        """The domain's hosts grouped by kind, for reports (build once per domain)."""
        where = {t: i for i, t in enumerate(self.types)}
        refs: list[list[HostRef]] = [[] for _ in self.types]
        for name in self.hosts:  # sorted, so each kind's list is too
            host = pool.hosts[name]
            refs[where[host.facts]].append(HostRef(name, host.count))
        return HostKinds(self.types, tuple(tuple(r) for r in refs))


def migration_graph(pool: Pool) -> nx.DiGraph:
    """The pool's graph with each migration group joined through a hub node.

    A hub (the tuple ``("group", i)``, never a host name) with edges to and from every
    member makes the members one strongly connected set in 2n edges instead of n(n-1);
    reachability and components between hosts are the same.  Hubs are not hosts: callers
    keep only names in ``pool.hosts``.
    """
    if not pool.groups:
        return pool.graph
    graph = pool.graph.copy()
    for i, members in enumerate(pool.groups):
        hub = ("group", i)
        graph.add_edges_from((m, hub) for m in members)
        graph.add_edges_from((hub, m) for m in members)
    return graph


#: host memberships all domains of a directed pool may list together: every domain is a
#: problem and a report section, so a chain of 10,000 hosts (50 million memberships) would
#: be gigabytes of memory and of report; evacuation graphs that size are groups
MAX_MEMBERSHIPS = 20_000_000


def _check_size(cond, members, hosts_of, source: str) -> None:
    """Count what the reachability sets would hold (bitsets over hosts, no sets built)."""
    from cpusolve.errors import InputError

    index = {h: i for i, h in enumerate(hosts_of)}
    bits: dict[int, int] = {}
    for scc in reversed(list(nx.topological_sort(cond))):
        value = 0
        for h in cond.nodes[scc]["members"]:
            if h in index:
                value |= 1 << index[h]
        for succ in cond.successors(scc):
            value |= bits[succ]
        bits[scc] = value
    total = sum(bits[members[h]].bit_count() for h in hosts_of)
    if total > MAX_MEMBERSHIPS:
        raise InputError(f"{source}: {len(hosts_of):,} hosts whose VMs may reach {total:,} hosts in all "
                         f"(a domain per start host; more than {MAX_MEMBERSHIPS:,}): describe clusters as "
                         f"migration groups, or split the pool")


def domains(pool: Pool) -> list[Domain]:
    """Distinct migration domains of a pool, in a deterministic order."""
    graph = migration_graph(pool)
    hosts_of = pool.hosts
    groups: dict[frozenset[str], list[str]] = {}
    if not pool.directed:
        for comp in nx.weakly_connected_components(graph):
            names = frozenset(h for h in comp if h in hosts_of)
            if names:
                groups[names] = sorted(names)
    else:
        cond = nx.condensation(graph)
        members = cond.graph["mapping"]  # node -> scc id
        _check_size(cond, members, hosts_of, pool.source)
        reach: dict[int, frozenset[str]] = {}
        for scc in reversed(list(nx.topological_sort(cond))):
            hosts = {h for h in cond.nodes[scc]["members"] if h in hosts_of}
            for succ in cond.successors(scc):
                hosts |= reach[succ]
            reach[scc] = frozenset(hosts)
        for host in hosts_of:
            groups.setdefault(reach[members[host]], []).append(host)
    out = []
    for hosts, starts in groups.items():
        types = {pool.hosts[h].facts for h in hosts}
        out.append(Domain(hosts=tuple(sorted(hosts)), starts=tuple(sorted(starts)),
                          types=tuple(sorted(types, key=type_order))))
    out.sort(key=lambda d: (d.starts[0], d.hosts))
    return out
