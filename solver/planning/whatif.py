"""What-if changes to a pool (retire hosts, upgrade or add hosts) and how the answers change."""

from __future__ import annotations

import dataclasses
import re

import networkx as nx

from cpusolve.core.pool import Pool
from cpusolve.domains.graph import migration_graph
from cpusolve.encodings.catalog import catalog
from cpusolve.encodings.catalog import suggest as close_names
from cpusolve.engine.cache import SolveCache
from cpusolve.engine.optimize import DEFAULT_TIMEOUT_S
from cpusolve.engine.solve import solve
from cpusolve.errors import InputError
from cpusolve.hostfacts.derive import host_from_entry
from cpusolve.inputs.pool_file import source_dir
from cpusolve.report.plans import Change
from cpusolve.report.records import Result

ADD_SPEC = re.compile(r"^(?P<name>[^=@]+)=(?P<model>[^@]+?)(?:x(?P<count>\d+))?(?:@(?P<peer>.+))?$")
# NAME=MODEL[,+flag,-flag][xN][@PEER]


def copy_pool(pool: Pool) -> Pool:
    """A pool to change without changing ``pool`` (hosts, graph and groups copied)."""
    return Pool(hosts=dict(pool.hosts), graph=pool.graph.copy(), directed=pool.directed,
                requirements=pool.requirements, source=pool.source, groups=list(pool.groups),
                host_defaults=dict(pool.host_defaults))


def _drop_from_groups(pool: Pool, name: str) -> None:
    """The other members of a group still migrate among themselves."""
    pool.groups = [g for g in (tuple(m for m in grp if m != name) for grp in pool.groups) if len(g) > 1]


def without(pool: Pool, names) -> Pool:
    """The pool with these hosts (and their migration edges) taken out."""
    out = copy_pool(pool)
    for name in names:
        if name not in out.hosts:
            raise InputError(f"--without: no host '{name}' in {pool.source}" + close_names(name, out.hosts))
        del out.hosts[name]
        out.graph.remove_node(name)
        _drop_from_groups(out, name)
    if not out.hosts:
        raise InputError("--without removes every host of the pool")
    return out


def add(pool: Pool, spec: str) -> Pool:
    """``NAME=MODEL[,+f,-g][xN][@PEER]``: upgrade host NAME to a catalog model, or add a host.

    ``+f``/``-g`` are the host's ``add``/``remove`` (e.g. the microcode bits it will have).

    A new host migrates with PEER (an edge both ways); without PEER it joins every host when
    the pool is one undirected domain, else it is a domain of its own.
    """
    m = ADD_SPEC.match(spec.strip())
    if not m:
        raise InputError(f"--add '{spec}': expected NAME=MODEL[,+flag,-flag][xN][@PEER], "
                         "e.g. icx-09=Icelake-Server-v7,+md-clearx8@clx-01")
    name, model, peer = m["name"].strip(), m["model"].strip(), m["peer"]
    model, *flags = [x.strip() for x in model.split(",") if x.strip()]
    entry: dict = {"cpu": catalog().model(model, f"--add '{spec}': ").name}
    for flag in flags:
        if flag[:1] not in "+-" or len(flag) < 2:
            raise InputError(f"--add '{spec}': flags are +feature or -feature, not '{flag}'")
        entry.setdefault("add" if flag[0] == "+" else "remove", []).append(flag[1:])
    out = copy_pool(pool)
    old = out.hosts.get(name)
    count = int(m["count"]) if m["count"] else (old.count if old else 1)
    if count < 1:
        raise InputError(f"--add '{spec}': the count must be at least 1")
    entry["count"] = count
    out.hosts[name] = host_from_entry(name, entry, f"--add '{spec}'", source_dir(pool.source),
                                      defaults=pool.host_defaults)
    if old is not None:
        return out  # an upgrade keeps the host's place in the graph
    out.graph.add_node(name)
    if peer:
        if peer not in out.hosts or peer == name:
            raise InputError(f"--add '{spec}': no host '{peer}' to join" + close_names(peer, pool.hosts))
        out.graph.add_edge(name, peer)
        out.graph.add_edge(peer, name)
    elif not pool.directed and nx.is_weakly_connected(migration_graph(pool)):
        for other in pool.hosts:
            out.graph.add_edge(name, other)
            out.graph.add_edge(other, name)
    return out


def compare(before: Result, after: Result) -> list[Change]:
    """Per start host of the new pool, the answer before and after, where it differs."""
    old_by_start = {s: d for d in before.domains for s in d.starts}
    changes = []
    for d in after.domains:
        groups: dict[int, list[str]] = {}
        for s in d.starts:
            old = old_by_start.get(s)
            groups.setdefault(old.index if old else 0, []).append(s)
        for old_index, starts in sorted(groups.items()):
            old = next((x for x in before.domains if x.index == old_index), None)
            b = old.guest.model if old and old.guest else (old.status if old else "new host")
            a = d.guest.model if d.guest else d.status
            gained = tuple(sorted(d.features - (old.features if old else frozenset())))
            lost = tuple(sorted((old.features if old else frozenset()) - d.features)) if d.guest else ()
            if a != b or gained or lost:
                changes.append(Change(tuple(starts), b, a, gained, lost))
    return changes


def what_if(pool: Pool, without_hosts=(), additions=(), timeout: float = DEFAULT_TIMEOUT_S,
            jobs: int = 1) -> Result:
    """The pool's answers after retiring ``without_hosts`` and applying ``additions``
    (``NAME=MODEL...`` specs), with how each answer changes.  The changes are read before
    anything is solved (a typo fails at once), and both solves share one cache, so the
    second rebuilds only the changed domains."""
    changed = without(pool, without_hosts) if without_hosts else pool
    for spec in additions:
        changed = add(changed, spec)
    cache = SolveCache()
    before = solve(pool, timeout=timeout, jobs=jobs, cache=cache)
    after = solve(changed, timeout=timeout, jobs=jobs, cache=cache)
    return dataclasses.replace(after, whatif={"without": list(without_hosts), "add": list(additions)},
                               changes=tuple(compare(before, after)))
