"""What the guest CPU of a domain should be, among the safe ones: the objectives, in order.

Each objective is a list of weighted formulas to make true, and the lists are
lexicographic: an earlier objective wins outright (docs/DESIGN.md, "Objectives").  The
order is stated once, here (:data:`OPTIMUM`, :data:`NEAREST`); ``problem.reduce`` relies on
it and asserts so, and the tests read it from here.

Soft literals rather than arithmetic sums: a MaxSAT engine reads them directly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cpusolve.encodings.catalog import HINT_BITS
from cpusolve.encodings.expr import Any, Expr, Feature, Not
from cpusolve.problem.formula import OWN_FMS, SETTINGS, Iff, fms_sel, model_sel

if TYPE_CHECKING:
    from cpusolve.core.guest import GuestCpu
    from cpusolve.problem.build import Problem

#: The optimizer's objectives, most important first:
#: ``features``: the most guest features (hint bits excluded: safety decides those);
#: ``hints``: the fewest worst-case hint bits (rsba) beyond what safety needs;
#: ``settings``: the fewest guest settings outside the model (a threads=2 topology);
#: ``flags``: the catalog model needing the fewest +/- flags;
#: ``own_fms``: the model's own family/model/stepping where it is safe;
#: ``newest``: the newest model (catalog order);
#: ``lowest_fms``: the lowest family/model/stepping among equally good ones;
#: ``earliest``: the features earliest in catalog order among equally good guests.
#: The last two make the optimum unique, so it does not depend on the solver's search.
OPTIMUM = ("features", "hints", "settings", "flags", "own_fms", "newest", "lowest_fms", "earliest")
#: A running guest's smallest repair on its own model: the fewest visible bits changed,
#: its family/model/stepping kept, then the most features, then the two tie-breaks.
NEAREST = ("fewest_flips", "same_fms", "most_features", "lowest_fms", "earliest")

Soft = list[tuple[Expr, int]]
SMT_SETTING = "topology:smt"


def optimum(p: Problem) -> list[tuple[str, Soft]]:
    variables = p.variables
    perf = [(Feature(f), 1) for f in variables if f not in HINT_BITS and f not in SETTINGS]
    hints = [(Not(Feature(f)), 1) for f in variables if f in HINT_BITS]
    settings = [(Not(Feature(f)), 1) for f in variables if f in SETTINGS]
    flags: Soft = []
    for f in variables:
        if f in SETTINGS:
            continue
        having = [model_sel(m.name) for m in p.models if f in m.features]
        if len(having) == len(p.models):
            flags.append((Feature(f), 1))  # every candidate model has f: -f unless shown
        elif not having:
            flags.append((Not(Feature(f)), 1))  # no candidate model has f: +f when shown
        else:
            flags.append((Iff(Feature(f), Any(tuple(having))), 1))
    universe = set(p.universe) - SETTINGS
    for m in p.models:
        # -f for a model feature no host offers, +f for a pinned feature the model lacks
        const = len(m.features - universe) + len(p.fixed - m.features)
        if const:
            flags.append((Not(model_sel(m.name)), const))
    newest = [(model_sel(m.name), m.index) for m in p.models if m.index]
    out = {"features": perf, "hints": hints, "settings": settings, "flags": flags, "own_fms": [(OWN_FMS, 1)],
           "newest": newest, "lowest_fms": lowest_identity(p), "earliest": earliest_features(variables)}
    return [(name, out[name]) for name in OPTIMUM]


def nearest(p: Problem, current: GuestCpu) -> list[tuple[str, Soft]]:
    visible = current.visible()
    same = [fms_sel(k) for k in p.identities if k == current.identity()[1:]]
    shown = visible | ({SMT_SETTING} if current.threads > 1 else set())
    out = {
        "fewest_flips": [(Feature(f) if f in shown else Not(Feature(f)), 1) for f in p.universe],
        "same_fms": [(same[0], 1)] if same else [],
        "most_features": [(Feature(f), 1) for f in p.universe if f not in SETTINGS],
        "lowest_fms": lowest_identity(p),
        "earliest": earliest_features(p.universe),
    }
    return [(name, out[name]) for name in NEAREST]


def lowest_identity(p: Problem) -> Soft:
    """A tie-break: among equally good identities the lowest family/model/stepping, a tie
    a solver would otherwise break by its own search order."""
    return [(Not(fms_sel(k)), i) for i, k in enumerate(p.identities) if i]


def earliest_features(variables: list[str]) -> Soft:
    """The last tie-break: among equally good guests, the one that shows the earliest
    features in catalog order (weights 2^k make it lexicographic), so the optimum is unique
    and does not depend on the solver's search (a shared context's history)."""
    n = len(variables)
    return [(Feature(f), 1 << (n - 1 - i)) for i, f in enumerate(variables)]
