"""The engine's one cache: what a solve of a pool can reuse from earlier solves.

Four kinds of entries, each keyed by exactly what it is a function of:

* ``outcomes``: a problem's optimum or conflict, by :func:`problem_key` (domains of
  different host kinds often pose the same problem) and by the domain's host kinds;
* ``checked``: the independent checker's verdict on an answer for a set of host kinds;
* ``reports``: a whole domain report, by its start hosts, every host with its facts and
  count, the requirements and the time bound.

One eviction policy for all of them: an entry none of the last :data:`KEEP` solves used is
dropped when a solve ends (:meth:`SolveCache.end`), so a long-lived Planner holds what its
recent pools need (a change and its undo cost no solve) and nothing more.  ``stats`` counts the work done, so tests and
benchmarks can ask how much was reused.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from cpusolve.core.hosts import HostFacts
from cpusolve.core.pool import Requirements
from cpusolve.encodings.safety import obligations


def problem_key(vendor: str, types: tuple[HostFacts, ...], req: Requirements, timeout: float) -> tuple:
    """What the optimizer's problem depends on, and nothing else.

    The problem reads the hosts' common features (its variables), the obligations the
    hosts' bugs and facts give (what protects on each of them, deduplicated) and their
    family/model/stepping candidates; an infeasible domain is still explained on its own
    hosts (see :meth:`SolveCache.outcome`).
    """
    common = frozenset.intersection(*(t.features for t in types))
    obs = frozenset((ob.kind, ob.bug, ob.kernel, ob.boot, ob.expr)
                    for ob in obligations(vendor, types, req.kernels, req.policy, req.waive))
    return (vendor, common, obs, frozenset(t.fms for t in types), req, timeout)


#: Solves an unused entry survives.
KEEP = 3


@dataclass
class SolveCache:
    outcomes: dict[tuple, object] = field(default_factory=dict)
    by_kinds: dict[tuple, object] = field(default_factory=dict)
    checked: dict[tuple, bool] = field(default_factory=dict)
    reports: dict[tuple, object] = field(default_factory=dict)
    #: "optimized" (problems solved), "checked" (answers re-checked), "reports" (domain
    #: reports built), "hits" (entries reused)
    stats: Counter = field(default_factory=Counter)
    #: (table, key) -> the solve that last used it
    _used: dict = field(default_factory=dict, repr=False)
    _solve: int = 0

    def _get(self, table: dict, key: tuple):
        hit = table.get(key)
        if hit is not None:
            self._used[(id(table), key)] = self._solve
            self.stats["hits"] += 1
        return hit

    def _put(self, table: dict, key: tuple, value) -> None:
        table[key] = value
        self._used[(id(table), key)] = self._solve

    def outcome(self, vendor: str, types: tuple[HostFacts, ...], req: Requirements, timeout: float, solve):
        """The outcome of a domain of these host kinds; ``solve()`` computes it on a miss.
        A problem shared with other host kinds is reused only when it has an answer: an
        infeasible domain's conflict names its own hosts."""
        kinds = (vendor, types, req, timeout)
        hit = self._get(self.by_kinds, kinds)
        if hit is not None:
            return hit
        pkey = problem_key(vendor, types, req, timeout)
        shared = self._get(self.outcomes, pkey)
        if shared is not None and shared.status == "sat":
            out = shared
        else:
            out = solve()
            self.stats["optimized"] += 1
            self._put(self.outcomes, pkey, out)
        self._put(self.by_kinds, kinds, out)
        return out

    def put_outcome(self, vendor: str, types, req: Requirements, timeout: float, outcome) -> None:
        """An outcome solved elsewhere (a worker process)."""
        self.stats["optimized"] += 1
        self._put(self.outcomes, problem_key(vendor, types, req, timeout), outcome)
        self._put(self.by_kinds, (vendor, types, req, timeout), outcome)

    def has_outcome(self, vendor: str, types, req: Requirements, timeout: float) -> bool:
        return ((vendor, types, req, timeout) in self.by_kinds
                or problem_key(vendor, types, req, timeout) in self.outcomes)

    def check(self, key: tuple, check) -> None:
        """Run the checker once per key (``check()`` raises on a rejected answer)."""
        if self._get(self.checked, key) is None:
            check()
            self.stats["checked"] += 1
            self._put(self.checked, key, True)

    def report(self, key: tuple, build):
        hit = self._get(self.reports, key)
        if hit is None:
            hit = build()
            self.stats["reports"] += 1
            self._put(self.reports, key, hit)
        return hit

    def end(self) -> None:
        """Forget every entry the last :data:`KEEP` solves (this one included) did not use."""
        oldest = self._solve - KEEP + 1
        for table in (self.outcomes, self.by_kinds, self.checked, self.reports):
            tid = id(table)
            for key in [k for k in table if self._used[(tid, k)] < oldest]:
                del table[key]
                del self._used[(tid, key)]
        self._solve += 1

    def size(self) -> int:
        return len(self.outcomes) + len(self.by_kinds) + len(self.checked) + len(self.reports)
