"""What cannot change a domain's optimum, left out of the problem a solver sees.

Proofs are in the docstrings and rely on the order of :data:`objectives.OPTIMUM` (asserted
below); ``tests/test_properties.py`` checks on random pools that the unreduced problem
reaches the same value of every objective.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cpusolve.core.pool import Requirements
from cpusolve.encodings.catalog import HINT_BITS, Catalog, CpuModel
from cpusolve.encodings.expr import features_of
from cpusolve.problem.objectives import OPTIMUM

if TYPE_CHECKING:
    from cpusolve.problem.build import Problem

# free_features: showing a free feature only raises "features", which must come first.
# useful_models: a dominated model keeps "features" and "hints" and loses on "flags" (or
# ties there and loses on "newest"), so those must come in this order before the rest.
assert OPTIMUM[0] == "features"
assert OPTIMUM.index("hints") < OPTIMUM.index("flags") < OPTIMUM.index("own_fms") < OPTIMUM.index("newest")
# a swapped model keeps the settings (no model carries one), so "settings" may sit anywhere
# before "flags"
assert OPTIMUM.index("settings") < OPTIMUM.index("flags")


def useful_models(enc: Problem, residuals: list[list], alive: list[int],
                  host_fms: set[tuple[int, int, int]]) -> list[CpuModel]:
    """The candidate models some optimum may use; the dropped ones are dominated.

    With the pinned features fixed, model m costs ``w(m) + |{f variable: g_f != f in m}|``
    flags (objective "flags"), so m2 costs at most ``w(m2) + |variables where m and m2 differ|``
    wherever m costs ``w(m)`` or more.  m is dropped when some m2 is cheaper for every feature
    choice and can show an identity the kernel reads exactly as m's (same residual of every
    obligation: m2's own, or a host's), or m's own identity is never allowed: swapping m for
    m2 keeps "features" and "hints" and strictly improves "flags".  A version of the same
    model that is no dearer and newer wins too ("newest"; "own_fms" is the same, same identity).
    """
    variables = [f for f in enc.universe if f not in enc.fixed]
    bit = {f: 1 << i for i, f in enumerate(variables)}
    universe = set(enc.universe)

    def cost(m: CpuModel) -> tuple[int, int]:
        const = len(m.features - universe) + len(enc.fixed - m.features)
        return const, sum(bit[f] for f in m.features if f in bit)

    # identity -> how every obligation reads it, as a small number (equal readings, equal
    # numbers: tuples of residuals are hashed once here, not at every comparison below);
    # None when an obligation refuses it
    kinds: dict = {}
    alive_set = set(alive)
    numbers: dict[tuple, int] = {}
    for i, k in enumerate(enc.identities):
        kinds[k] = numbers.setdefault(tuple(r[i] for r in residuals), len(numbers)) if i in alive_set else None
    host_kinds = {kinds[k] for k in host_fms}
    costs = {m.name: cost(m) for m in enc.models}
    by_cost = sorted(enc.models, key=lambda m: costs[m.name][0])
    keep = []
    for m in enc.models:
        w, mask = costs[m.name]
        kind = kinds[m.fms]
        beaten = False
        for m2 in by_cost:
            w2, mask2 = costs[m2.name]
            if w2 > w:
                break
            if m2 is m:
                continue
            bound = w2 + (mask ^ mask2).bit_count()
            if bound < w and (kind is None or kind in host_kinds or kinds[m2.fms] == kind):
                beaten = True
            elif bound <= w and m2.fms == m.fms and m2.index > m.index:
                beaten = True
            if beaten:
                break
        if not beaten:
            keep.append(m)
    return keep


def free_features(cat: Catalog, universe: list[str], residuals: list[list], req: Requirements) -> frozenset[str]:
    """Features every optimum shows: no obligation, requirement or hint objective reads
    them, and their dependencies are met among themselves.  Showing all of them keeps every
    constraint (dependencies are monotone) and strictly raises the first objective."""
    named: set[str] = set(HINT_BITS) | set(req.require) | set(req.forbid)
    for term in {id(t): t for terms in residuals for t in terms}.values():  # interned: few distinct
        named |= features_of(term)
    # The greatest subset whose dependencies are met among themselves (any order reaches it).
    return frozenset(cat.without_unmet(f for f in universe if f not in named))
