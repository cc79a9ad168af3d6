"""Migration domains: the hosts a VM may end up on, deduplicated so each is solved once.

Undirected pools: connected components.  Directed pools: the VM started on h may reach
every descendant of h, so its domain is h's reachability set; computed on the
condensation (strongly connected components) so that a large pool does not walk the
graph once per host.
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from cpusolve.hosts import Host, HostFacts
from cpusolve.pool import Pool


@dataclass(frozen=True)
class Domain:
    """A set of hosts every guest started on ``starts`` must be able to run on."""

    hosts: tuple[str, ...]  # every host a VM may reach, sorted
    starts: tuple[str, ...]  # hosts whose VMs get this answer (== hosts when undirected)
    types: tuple[HostFacts, ...]  # distinct host facts, in a stable order

    def members(self, pool: Pool, facts: HostFacts) -> list[Host]:
        return [pool.hosts[h] for h in self.hosts if pool.hosts[h].facts == facts]

    def grouped(self, pool: Pool) -> list[tuple[HostFacts, list[Host]]]:
        """The domain's hosts grouped by kind (compute once per report, then ask ``lacking``)."""
        groups: dict[HostFacts, list[Host]] = {}
        for h in self.hosts:
            groups.setdefault(pool.hosts[h].facts, []).append(pool.hosts[h])
        return list(groups.items())


def lacking(grouped: list[tuple[HostFacts, list[Host]]], feature: str) -> list[Host]:
    """The hosts of a grouped domain that cannot expose ``feature``, in host order."""
    out = [h for t, hosts in grouped if feature not in t.features for h in hosts]
    return sorted(out, key=lambda h: h.name) if out else out


def type_order(facts: HostFacts) -> tuple:
    """A stable order of host kinds, so that equal input gives byte-identical output."""
    return (facts.vendor, facts.fms, sorted(facts.features), sorted(facts.bugs))


def domains(pool: Pool) -> list[Domain]:
    """Distinct migration domains of a pool, in a deterministic order."""
    graph = pool.graph
    groups: dict[frozenset[str], list[str]] = {}
    if not pool.directed:
        for comp in nx.weakly_connected_components(graph):
            groups[frozenset(comp)] = sorted(comp)
    else:
        cond = nx.condensation(graph)
        members = cond.graph["mapping"]  # host -> scc id
        reach: dict[int, frozenset[str]] = {}
        for scc in reversed(list(nx.topological_sort(cond))):
            hosts = set(cond.nodes[scc]["members"])
            for succ in cond.successors(scc):
                hosts |= reach[succ]
            reach[scc] = frozenset(hosts)
        for host in graph.nodes:
            groups.setdefault(reach[members[host]], []).append(host)
    out = []
    for hosts, starts in groups.items():
        types = {pool.hosts[h].facts for h in hosts}
        out.append(Domain(hosts=tuple(sorted(hosts)), starts=tuple(sorted(starts)),
                          types=tuple(sorted(types, key=type_order))))
    out.sort(key=lambda d: (d.starts[0], d.hosts))
    return out
