"""What cannot change a domain's optimum, left out of the problem a solver sees.

Proofs are in the docstrings and rely on the order of :data:`objectives.OPTIMUM` (asserted
below); ``tests/test_properties.py`` checks on random pools that the unreduced problem
reaches the same value of every objective.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cpusolve.core.bits import BitNames
from cpusolve.core.pool import Requirements
from cpusolve.encodings.catalog import HINT_BITS, Catalog, CpuModel
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
    # Feature sets as bits of one registry: the counts below are popcounts.
    universe = _NAMES.mask(enc.universe)
    fixed = _NAMES.mask(enc.fixed)
    variables = universe & ~fixed

    # identity -> how every obligation reads it, as a small number (equal readings, equal
    # numbers; residuals are interned, rules.residuals, so equal ones are one object and
    # their ids tell them apart); None when an obligation refuses it
    kinds: dict = {}
    alive_set = set(alive)
    numbers: dict[tuple, int] = {}
    for i, (k, reading) in enumerate(zip(enc.identities, readings(residuals, len(enc.identities)), strict=True)):
        kinds[k] = numbers.setdefault(reading, len(numbers)) if i in alive_set else None
    host_kinds = {kinds[k] for k in host_fms}
    # (cost, features among the variables, identity, its reading, index, model) per model;
    # the cost: the flags the model needs whatever the variables are (features outside the
    # universe, fixed features it lacks)
    outside = ~universe
    rows = []
    for m in enc.models:
        own = _model_mask(m)
        rows.append(((own & outside).bit_count() + (fixed & ~own).bit_count(), own & variables, m.fms,
                     kinds[m.fms], m.index, m))
    by_cost = sorted(rows, key=lambda r: r[0])
    keep = []
    for row in rows:
        w, mask, fms, kind, index, m = row
        beaten = False
        for w2, mask2, fms2, kind2, index2, m2 in by_cost:
            if w2 > w:
                break
            if m2 is m:
                continue
            bound = w2 + (mask ^ mask2).bit_count()
            if bound < w and (kind is None or kind in host_kinds or kind2 == kind):
                beaten = True
            elif bound <= w and fms2 == fms and index2 > index:
                beaten = True
            if beaten:
                break
        if not beaten:
            keep.append(m)
    return keep


def readings(residuals: list[list], count: int) -> list[tuple[int, ...]]:
    """For each of ``count`` identities, how every obligation reads it: the ids of its
    residuals, one per obligation.  Residuals are interned (rules.residuals), so equal
    readings are equal tuples."""
    if not residuals:
        return [()] * count
    return [tuple(map(id, column)) for column in zip(*residuals, strict=True)]


#: feature name -> bit, for this module's set arithmetic (one registry per process)
_NAMES = BitNames()
#: id(model) -> (model, its features' bits): models are the catalog's, for the process's life
_MODEL_MASKS: dict[int, tuple[CpuModel, int]] = {}


def _model_mask(m: CpuModel) -> int:
    hit = _MODEL_MASKS.get(id(m))
    if hit is None or hit[0] is not m:
        if len(_MODEL_MASKS) > 1 << 12:
            _MODEL_MASKS.clear()
        hit = _MODEL_MASKS[id(m)] = (m, _NAMES.mask(m.features))  # m kept: its id stays unique
    return hit[1]


def free_features(cat: Catalog, universe: list[str], read: frozenset[str], req: Requirements) -> frozenset[str]:
    """Features every optimum shows: no obligation (``read``: the features the obligations'
    residuals read), requirement or hint objective reads them, and their dependencies are
    met among themselves.  Showing all of them keeps every constraint (dependencies are
    monotone) and strictly raises the first objective."""
    named = read | HINT_BITS | req.require | req.forbid
    # The greatest subset whose dependencies are met among themselves (any order reaches it).
    return frozenset(cat.without_unmet(f for f in universe if f not in named))
