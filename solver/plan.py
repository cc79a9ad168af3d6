"""Planning: what-if changes to a pool, which hosts to retire or upgrade, and an incremental
planner for schedulers.

"Gain" (``suggest``): removing (or upgrading) the hosts of one kind from a domain lets the
domain's guests see more features.  A suggestion's gain is the number of guest features
gained times the machines the domain still serves, so that unlocking AVX-512 for 500
machines outranks unlocking it for 5.  Candidates are ranked by a cheap concrete upper bound
(the features every remaining host could expose, dependency-closed) and only the best are
solved exactly, leave-one-out over host kinds rather than over hosts.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from dataclasses import dataclass, field

import networkx as nx

from cpusolve.api import solve
from cpusolve.blockers import reachable_set
from cpusolve.domains import domains, migration_graph
from cpusolve.encodings.catalog import HINT_BITS, catalog
from cpusolve.encodings.catalog import suggest as close_names
from cpusolve.errors import InputError
from cpusolve.hosts import Host
from cpusolve.optimize import DEFAULT_TIMEOUT_S, optimize
from cpusolve.pool import Pool, Requirements
from cpusolve.pool_file import read_host, source_dir
from cpusolve.result import Result

ADD_SPEC = re.compile(r"^(?P<name>[^=@]+)=(?P<model>[^@]+?)(?:x(?P<count>\d+))?(?:@(?P<peer>.+))?$")
# NAME=MODEL[,+flag,-flag][xN][@PEER]


def _copy(pool: Pool) -> Pool:
    return Pool(hosts=dict(pool.hosts), graph=pool.graph.copy(), directed=pool.directed,
                requirements=pool.requirements, source=pool.source, groups=list(pool.groups))


def _drop_from_groups(pool: Pool, name: str) -> None:
    """The other members of a group still migrate among themselves."""
    pool.groups = [g for g in (tuple(m for m in grp if m != name) for grp in pool.groups) if len(g) > 1]


def without(pool: Pool, names) -> Pool:
    """The pool with these hosts (and their migration edges) taken out."""
    out = _copy(pool)
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
    out = _copy(pool)
    old = out.hosts.get(name)
    count = int(m["count"]) if m["count"] else (old.count if old else 1)
    if count < 1:
        raise InputError(f"--add '{spec}': the count must be at least 1")
    entry["count"] = count
    out.hosts[name] = read_host(name, entry, f"--add '{spec}'", source_dir(pool.source))
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


@dataclass(frozen=True)
class Change:
    """How the answer for the VMs of some start hosts changes."""

    starts: tuple[str, ...]
    before: str  # model or status
    after: str
    gained: tuple[str, ...]
    lost: tuple[str, ...]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self) | {"starts": list(self.starts), "gained": list(self.gained),
                                           "lost": list(self.lost)}

    def text(self) -> str:
        parts = [f"VMs on {', '.join(self.starts)}: {self.before} -> {self.after}"]
        if self.gained:
            parts.append(f"gains {', '.join(self.gained)}")
        if self.lost:
            parts.append(f"loses {', '.join(self.lost)}")
        return "; ".join(parts)


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


@dataclass(frozen=True)
class Suggestion:
    hosts: tuple[str, ...]  # the hosts of one kind in one domain
    machines: int
    domain: int
    gain: int  # features gained x machines still served
    gained: tuple[str, ...]
    model_after: str | None

    def to_dict(self) -> dict:
        return {"hosts": list(self.hosts), "machines": self.machines, "domain": self.domain, "gain": self.gain,
                "gained": list(self.gained), "model_after": self.model_after}

    def text(self) -> str:
        plural = "s" if self.machines != 1 else ""
        return (f"retire or upgrade {', '.join(self.hosts)} ({self.machines} machine{plural}) in domain {self.domain}: "
                f"gain {self.gain} = {len(self.gained)} features x "
                f"{self.gain // max(len(self.gained), 1)} machines"
                + (f" ({', '.join(self.gained[:8])}{', ...' if len(self.gained) > 8 else ''})"
                   if self.gained else "")
                + (f"; model {self.model_after}" if self.model_after else ""))


def suggest(pool: Pool, result: Result, k: int, timeout: float = DEFAULT_TIMEOUT_S) -> list[Suggestion]:
    """The ``k`` host kinds whose removal gains the most (see the module docstring)."""
    cat, req = catalog(), pool.requirements
    scored = []
    for dom, res in zip(domains(pool), result.domains, strict=True):
        if res.guest is None or len(dom.types) < 2:
            continue
        base = {f for f in res.features if f not in HINT_BITS}
        for t in dom.types:
            rest = tuple(x for x in dom.types if x != t)
            remaining = sum(pool.hosts[h].count for h in dom.hosts if pool.hosts[h].facts != t)
            bound = (len(reachable_set(cat, rest, req) - HINT_BITS) - len(base)) * remaining
            if bound > 0:
                scored.append((bound, dom, res, t, rest, remaining))
    scored.sort(key=lambda s: (-s[0], s[2].index, sorted(s[3].features)))
    best: list[Suggestion] = []
    for bound, dom, res, t, rest, remaining in scored:
        if len(best) >= k and bound <= best[-1].gain:
            break  # no remaining candidate can beat the k-th exact gain
        outcome = optimize(cat, dom.types[0].vendor, rest, req, timeout)
        if outcome.status != "sat":
            continue
        gained = tuple(sorted(f for f in outcome.features - res.features if f not in HINT_BITS))
        gain = (len({f for f in outcome.features if f not in HINT_BITS})
                - len({f for f in res.features if f not in HINT_BITS})) * remaining
        if gain <= 0:
            continue
        names = tuple(h for h in dom.hosts if pool.hosts[h].facts == t)
        best.append(Suggestion(names, sum(pool.hosts[h].count for h in names), res.index, gain, gained,
                               outcome.guest.model))
        best.sort(key=lambda s: (-s.gain, s.domain, s.hosts))
        del best[k:]
    return best


@dataclass
class Planner:
    """An incremental planner for a scheduler: change the pool, re-solve what changed.

    Solver outcomes are kept per (host kinds, requirements) of a domain, so adding or
    removing a host re-solves only the domains whose set of host kinds changed; a host of a
    kind the domain already has costs no solve at all.
    """

    pool: Pool
    requirements: Requirements | None = None
    timeout: float = DEFAULT_TIMEOUT_S
    _cache: dict = field(default_factory=dict)
    _result: Result | None = None

    def __post_init__(self) -> None:
        self.pool = _copy(self.pool)

    def solve(self) -> Result:
        if self._result is None:
            self._result = solve(self.pool, requirements=self.requirements, timeout=self.timeout,
                                 cache=self._cache)
        return self._result

    def add_host(self, name: str, spec: dict, peers=(), group: bool = False) -> None:
        """Add (or replace) host ``name`` given as a pool.json host entry.

        ``peers``: hosts it migrates with (both ways; one way in a directed pool); with
        ``group=True`` it joins every peer's group instead (edges to all of them, both ways).
        """
        if not isinstance(name, str) or not name:
            raise InputError("add_host needs a host name")
        host = read_host(name, copy.deepcopy(spec), "<planner>", source_dir(self.pool.source))
        for peer in peers:
            if peer not in self.pool.hosts:
                raise InputError(f"add_host '{name}': no peer host '{peer}'" + close_names(peer, self.pool.hosts))
        self.pool.hosts[name] = host
        self.pool.graph.add_node(name)
        for peer in peers:
            self.pool.graph.add_edge(name, peer)
            if not self.pool.directed or group:
                self.pool.graph.add_edge(peer, name)
        self._result = None

    def remove_host(self, name: str) -> None:
        if name not in self.pool.hosts:
            raise InputError(f"remove_host: no host '{name}'" + close_names(name, self.pool.hosts))
        if len(self.pool.hosts) == 1:
            raise InputError("remove_host: a pool needs at least one host")
        del self.pool.hosts[name]
        self.pool.graph.remove_node(name)
        _drop_from_groups(self.pool, name)
        self._result = None

    def host(self, name: str) -> Host:
        return self.pool.hosts[name]

    def domain_of(self, name: str):
        """The answer for VMs started on host ``name``."""
        for d in self.solve().domains:
            if name in d.starts:
                return d
        raise InputError(f"no host '{name}'" + close_names(name, self.pool.hosts))
