"""Whether a set of host kinds can share a guest CPU, and how large that answer is: each
set solved once (through the engine's cache, so a later solve of a domain of exactly these
kinds reuses it), known without a solve where a solved domain's kinds hold it, or where an
answer already found passes the checker on every kind of the set (a witness)."""

from __future__ import annotations

from cpusolve.core.hosts import HostFacts
from cpusolve.core.pool import Pool
from cpusolve.domains.kinds import type_order
from cpusolve.encodings.catalog import catalog
from cpusolve.engine.cache import SolveCache
from cpusolve.engine.optimize import Outcome, optimize
from cpusolve.engine.solve import domain_requirements
from cpusolve.verify.fastcheck import FastChecker

#: answers kept per host kind as witnesses (each tried on a set before it is solved)
WITNESSES = 8


class KindAnswers:
    """Whether a set of host kinds has a common answer, and its size (solved once each)."""

    def __init__(self, pool: Pool, cache: SolveCache, timeout: float):
        self.req, self.cache, self.timeout, self.cat = pool.requirements, cache, timeout, catalog()
        self.memo: dict[frozenset[HostFacts], int | None] = {}
        self.supersets: dict[HostFacts, list[frozenset[HostFacts]]] = {}
        #: answers found so far, by a kind of the set they answer: candidate witnesses
        self.witnesses: dict[HostFacts, list] = {}
        self._checkers: dict = {}
        self.timeouts = 0

    def known(self, solved) -> None:
        """Kind sets known to share an answer, with it (``(types, guest)`` of domains the
        pool's own solve answered): every subset of one shares it too."""
        for types, guest in solved:
            kinds = frozenset(types)
            for k in kinds:
                self.supersets.setdefault(k, []).append(kinds)
            self._witness(kinds, guest)

    def _witness(self, kinds, guest) -> None:
        for k in kinds:
            seen = self.witnesses.setdefault(k, [])
            if guest not in seen and len(seen) < WITNESSES:
                seen.append(guest)

    def feasible(self, kinds: frozenset[HostFacts]) -> bool:
        """Whether these kinds share an answer; a solve only where no known answer settles it."""
        if kinds in self.memo:
            return self.memo[kinds] is not None
        first = next(iter(kinds))
        if any(kinds <= big for big in self.supersets.get(first, ())):
            return True
        types = self.order(kinds)
        if len({t.vendor for t in types}) == 1:
            req = domain_requirements(self.req, types)
            checker = self._checkers.get(req)
            if checker is None:
                checker = self._checkers[req] = FastChecker(self.cat, req)
            for k in types:
                for guest in self.witnesses.get(k, ()):
                    if all(checker.check(guest, t) for t in types):
                        return True  # the checker itself vouches for this answer on every kind
        return self.features(kinds) is not None

    def features(self, kinds: frozenset[HostFacts]) -> int | None:
        """The answer's guest feature count, or None when these kinds cannot share one."""
        if kinds in self.memo:
            return self.memo[kinds]
        out = self.outcome(kinds)
        value = None
        if out is not None and out.status == "sat":
            value = len(out.guest.visible())
            self._witness(kinds, out.guest)
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
