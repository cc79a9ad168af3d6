"""Whether a set of host kinds can share a guest CPU, and how large that answer is: each
set solved once (through the engine's cache, so a later solve of a domain of exactly these
kinds reuses it), known without a solve where a solved domain's kinds hold it."""

from __future__ import annotations

from cpusolve.core.hosts import HostFacts
from cpusolve.core.pool import Pool
from cpusolve.domains.kinds import type_order
from cpusolve.encodings.catalog import catalog
from cpusolve.engine.cache import SolveCache
from cpusolve.engine.optimize import Outcome, optimize
from cpusolve.engine.solve import domain_requirements


class KindAnswers:
    """Whether a set of host kinds has a common answer, and its size (solved once each)."""

    def __init__(self, pool: Pool, cache: SolveCache, timeout: float):
        self.req, self.cache, self.timeout, self.cat = pool.requirements, cache, timeout, catalog()
        self.memo: dict[frozenset[HostFacts], int | None] = {}
        self.supersets: dict[HostFacts, list[frozenset[HostFacts]]] = {}
        self.timeouts = 0

    def known(self, solved) -> None:
        """Kind sets known to share an answer (domains the pool's own solve answered): every
        subset of one does too, so whether it can is known without a solve."""
        for types in solved:
            kinds = frozenset(types)
            for k in kinds:
                self.supersets.setdefault(k, []).append(kinds)

    def feasible(self, kinds: frozenset[HostFacts]) -> bool:
        if kinds not in self.memo:
            first = next(iter(kinds))
            if any(kinds <= big for big in self.supersets.get(first, ())):
                return True
        return self.features(kinds) is not None

    def features(self, kinds: frozenset[HostFacts]) -> int | None:
        """The answer's guest feature count, or None when these kinds cannot share one."""
        if kinds in self.memo:
            return self.memo[kinds]
        out = self.outcome(kinds)
        value = None
        if out is not None and out.status == "sat":
            value = len(out.guest.visible())
        elif out is not None and out.status == "timeout":
            self.timeouts += 1  # not known to have an answer: kept apart
        self.memo[kinds] = value
        return value

    def outcome(self, kinds: frozenset[HostFacts]) -> Outcome | None:
        """The engine's outcome for a domain of these kinds (None: mixed vendors, or not the
        required vendor, which no solve can change)."""
        types = self.order(kinds)
        vendors = {t.vendor for t in types}
        if len(vendors) != 1 or (self.req.vendor is not None and self.req.vendor not in vendors):
            return None
        vendor = next(iter(vendors))
        req = domain_requirements(self.req, types)
        return self.cache.outcome(vendor, types, req, self.timeout,
                                  lambda: optimize(self.cat, vendor, types, req, self.timeout))

    @staticmethod
    def order(kinds) -> tuple[HostFacts, ...]:
        return tuple(sorted(kinds, key=type_order))
