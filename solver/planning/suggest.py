"""Which host kinds to retire or upgrade: the suggestions that gain the most.

"Gain": removing (or upgrading) the hosts of one kind from a domain lets the domain's
guests see more features.  A suggestion's gain is the number of guest features gained
times the machines the domain still serves, so that unlocking AVX-512 for 500 machines
outranks unlocking it for 5.  Candidates are ranked by a cheap concrete upper bound (the
features every remaining host could expose, dependency-closed) and only the best are
solved exactly, leave-one-out over host kinds rather than over hosts.
"""

from __future__ import annotations

from cpusolve.core.pool import Pool
from cpusolve.domains.graph import domains
from cpusolve.encodings.catalog import HINT_BITS, catalog
from cpusolve.engine.optimize import DEFAULT_TIMEOUT_S, optimize
from cpusolve.report.blockers import reachable_set
from cpusolve.report.plans import Suggestion
from cpusolve.report.records import Result


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
