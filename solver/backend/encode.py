"""One domain's facts as Z3 terms: guest feature bits, model choice, f/m/s, obligations.

Only features every host can expose become variables; every other feature is the constant
False, which keeps a domain's problem as small as what its hosts have in common.  The
guest's family/model/stepping is one of a few candidates, each a selector; the kernel's
rules are decided per candidate ahead of Z3 (rules.ResidualOps), and what cannot change
the optimum is left out (``reduce``).  The explain path asks for a wider universe (every
feature any host has, plus required ones) so that an unsat core can name "hosts H lack F".
"""

from __future__ import annotations

from dataclasses import dataclass, field

import z3

from cpusolve.backend.reduce import free_features, useful_models
from cpusolve.backend.terms import (
    boolean,
    exactly_one,
    fast_and,
    fast_or,
    implies,
    negate,
    shared_context,
    to_z3,
)
from cpusolve.core.hosts import HostFacts
from cpusolve.core.pool import Requirements
from cpusolve.encodings.catalog import HINT_BITS, Catalog, CpuModel
from cpusolve.encodings.expr import FALSE, TRUE, features_of
from cpusolve.encodings.rules import load_rules
from cpusolve.encodings.safety import Obligation, obligations


@dataclass
class Encoding:
    """The Z3 terms of one domain; ``hard`` must hold, ``facts`` are named and retractable."""

    cat: Catalog
    vendor: str
    types: tuple[HostFacts, ...]
    req: Requirements
    universe: list[str]
    models: list[CpuModel]
    ctx: z3.Context
    g: dict[str, z3.BoolRef] = field(default_factory=dict)
    sel: list[z3.BoolRef] = field(default_factory=list)
    own_fms: z3.BoolRef | None = None
    #: the family/model/stepping the guest may show (its model's, or a host's), one selector each
    identities: list[tuple[int, int, int]] = field(default_factory=list)
    ident: list[z3.BoolRef] = field(default_factory=list)
    #: features pinned True (free_features); only the optimizer's narrow encoding has them
    fixed: frozenset[str] = frozenset()
    hard: list[z3.BoolRef] = field(default_factory=list)
    #: (literal, key) pairs: the key names the fact for explanations
    facts: list[tuple[z3.BoolRef, tuple]] = field(default_factory=list)
    obligations: list[Obligation] = field(default_factory=list)

    def fact(self, key: tuple, term) -> None:
        lit = boolean(f"fact{len(self.facts)}", self.ctx)
        self.facts.append((lit, key))
        self.hard.append(implies(lit, term))


def candidate_models(cat: Catalog, vendor: str, req: Requirements) -> list[CpuModel]:
    return [m for m in cat.models if m.vendor == vendor and (req.qemu != "7.2" or m.qemu_7_2)]


def allowed_features(cat: Catalog, req: Requirements) -> frozenset[str]:
    feats = cat.guest_features
    if req.qemu == "7.2":
        feats = frozenset(f for f in feats if cat.features[f].qemu_7_2)
    return feats


def encode(cat: Catalog, vendor: str, types: tuple[HostFacts, ...], req: Requirements,
           wide: bool = False, reduce: bool = True, ctx: z3.Context | None = None,
           model: CpuModel | None = None) -> Encoding:
    """Build the Z3 problem of a domain.

    ``wide=False``: variables only for features every host can expose, requirements and
    obligations hard (the optimizer's problem).  ``wide=True``: variables for every feature
    some host has or a requirement names, with each host shortfall, requirement and
    obligation a named fact (the explainer's problem).

    ``reduce`` (narrow only) leaves out what no optimum of :func:`objectives` uses: features
    every optimum shows become constants, identities no obligation allows and models
    another model beats in every solution are dropped.  Other objectives (``nearest``)
    need ``reduce=False``.

    ``model``: only this candidate (``nearest`` keeps a guest's model).

    ``ctx``: the shared context by default.  The optimizers' optima are unique (last
    tie-breaks in :func:`objectives` and ``nearest``), so Z3's search, which depends on what
    the context has seen, cannot change an answer; unsat cores can, so ``explain`` passes a
    fresh context.
    """
    common = frozenset.intersection(*(t.features for t in types))
    allowed = allowed_features(cat, req)
    obs = obligations(vendor, types, req.kernels, req.policy, req.waive)
    if wide:
        extra = set(req.require)
        if req.min_model:
            extra |= cat.model(req.min_model).features
        for ob in obs:
            if ob.kind != "truthful":
                extra |= features_of(ob.expr)
        pool = frozenset.union(*(t.features for t in types)) | extra
        universe = sorted(pool & cat.guest_features)
    else:
        universe = sorted(common & allowed)
    enc = Encoding(cat=cat, vendor=vendor, types=types, req=req, universe=universe,
                   models=[m for m in candidate_models(cat, vendor, req) if model is None or m.name == model.name],
                   ctx=ctx or shared_context())
    ctx = enc.ctx
    false = z3.BoolVal(False, ctx=ctx)

    # Family/model/stepping: the model's own, or one of the domain's hosts' (QEMU's
    # family=/model=/stepping= run on any host of the vendor).  The rule tables are decided
    # per identity (rules.ResidualOps), leaving terms over feature bits only.
    host_fms = {t.fms for t in types}
    enc.identities = sorted({m.fms for m in enc.models} | host_fms)
    enc.obligations = obs
    residuals = [load_rules(ob.kernel).residuals(ob.expr, vendor, enc.identities) for ob in obs]

    reduce = reduce and not wide
    if reduce:
        # A feature nothing but its dependencies constrains is shown in every optimum (it
        # only adds to the first objective), so it is the constant True, not a variable.
        enc.fixed = free_features(cat, universe, residuals, req)
        alive = [i for i in range(len(enc.identities)) if all(r[i] != FALSE for r in residuals)]
        enc.models = useful_models(enc, residuals, alive, host_fms)
        enc.identities = [enc.identities[i] for i in alive]
        residuals = [[r[i] for i in alive] for r in residuals]
    true = z3.BoolVal(True, ctx=ctx)
    g = enc.g = {f: true if f in enc.fixed else boolean(f, ctx) for f in universe}

    # Dependencies a guest needs (QEMU feature_dependencies, Linux cpuid-deps, safety).
    for f in universe:
        if f in enc.fixed:
            continue
        for group in cat.features[f].requires:
            alts = [g[a] for a in group if a in g]
            enc.hard.append(implies(g[f], fast_or(alts, ctx)) if alts else negate(g[f]))
    if "hypervisor" in g:
        enc.hard.append(g["hypervisor"])

    if wide:
        for f in universe:
            lacking = tuple(i for i, t in enumerate(types) if f not in t.features)
            if lacking:
                enc.fact(("lacks", f, lacking), negate(g[f]))
            if f not in allowed:
                enc.fact(("qemu", f), negate(g[f]))

    def requirement(key, term):
        if wide:
            enc.fact(key, term)
        else:
            enc.hard.append(term)

    for f in sorted(req.require):
        requirement(("require", f), g.get(f, false))
    for f in sorted(req.forbid):
        if f in g:
            requirement(("forbid", f), negate(g[f]))
    if req.min_model:
        need = sorted(cat.model(req.min_model).features & cat.guest_features)
        requirement(("min_model", req.min_model), fast_and([g.get(f, false) for f in need], ctx))

    # Model choice: exactly one candidate.  The explainer's problem has no model selectors:
    # any candidate's identity is shown by choosing that candidate, so the identities alone
    # decide whether a guest exists.
    if not enc.models:
        enc.hard.append(false)
    where = {k: i for i, k in enumerate(enc.identities)}
    enc.ident = [boolean(f"fms:{f}/{m}/{s}", ctx) for f, m, s in enc.identities]
    enc.hard.append(exactly_one(enc.ident, ctx) if enc.ident else false)  # none: every identity refused
    if not wide:
        enc.sel = [boolean(f"model:{m.name}", ctx) for m in enc.models]
        if enc.sel:
            enc.hard.append(exactly_one(enc.sel, ctx))
        # A model's own identity only together with that model.
        enc.own_fms = boolean("own_fms", ctx)
        for s, m in zip(enc.sel, enc.models, strict=True):
            if m.fms in where:
                enc.hard.append(implies(fast_and([s, enc.own_fms], ctx), enc.ident[where[m.fms]]))
            else:  # an identity no obligation allows: this model only with a host's
                enc.hard.append(implies(s, negate(enc.own_fms)))
        for k, v in zip(enc.identities, enc.ident, strict=True):
            if k not in host_fms:  # only a model's own identity, shown because it is its own
                enc.hard.append(implies(v, enc.own_fms))

    # Safety obligations (rule 2, rule 3, hints), read by the same interpreter as the checker.
    memo: dict = {}
    for ob, terms in zip(obs, residuals, strict=True):
        cases: dict = {}
        for v, term in zip(enc.ident, terms, strict=True):
            if term != FALSE:
                cases.setdefault(term, []).append(v)
        term = fast_or([fast_and([fast_or(vs, ctx), to_z3(t, g, ctx, memo)], ctx) if t != TRUE
                        else fast_or(vs, ctx) for t, vs in cases.items()], ctx)
        if wide:
            enc.fact(("obligation", ob), term)
        else:
            enc.hard.append(term)
    return enc


def objectives(enc: Encoding) -> list[tuple[str, list[tuple[z3.BoolRef, int]]]]:
    """DESIGN.md section 3, in priority order, each a weighted set of literals to make true.

    Soft literals rather than arithmetic sums: the optimizer reads them as MaxSAT directly,
    and building them costs one term per literal instead of an If and a Sum.
    """
    ctx = enc.ctx
    variables = {f: v for f, v in enc.g.items() if f not in enc.fixed}
    perf = [(v, 1) for f, v in variables.items() if f not in HINT_BITS]
    hints = [(negate(v), 1) for f, v in variables.items() if f in HINT_BITS]
    flags = []
    for f, v in variables.items():
        having = [s for s, m in zip(enc.sel, enc.models, strict=True) if f in m.features]
        if len(having) == len(enc.models):
            flags.append((v, 1))  # every candidate model has f: -f unless shown
        elif not having:
            flags.append((negate(v), 1))  # no candidate model has f: +f when shown
        else:
            flags.append((v == fast_or(having, ctx), 1))
    universe = set(enc.g)
    for s, m in zip(enc.sel, enc.models, strict=True):
        # -f for a model feature no host offers, +f for a pinned feature the model lacks
        const = len(m.features - universe) + len(enc.fixed - m.features)
        if const:
            flags.append((negate(s), const))
    newest = [(s, m.index) for s, m in zip(enc.sel, enc.models, strict=True) if m.index]
    return [("features", perf), ("hints", hints), ("flags", flags), ("own_fms", [(enc.own_fms, 1)]),
            ("newest", newest), ("lowest_fms", lowest_identity(enc)),
            ("earliest", earliest_features(list(variables.values())))]


def lowest_identity(enc: Encoding) -> list[tuple[z3.BoolRef, int]]:
    """A tie-break: among equally good identities the lowest family/model/stepping, a tie
    Z3 would otherwise break by its own search order."""
    return [(negate(v), i) for i, v in enumerate(enc.ident) if i]


def earliest_features(variables: list[z3.BoolRef]) -> list[tuple[z3.BoolRef, int]]:
    """The last tie-break: among equally good guests, the one that shows the earliest
    features in catalog order (weights 2^k make it lexicographic), so the optimum is unique
    and does not depend on Z3's search (a shared context's history)."""
    n = len(variables)
    return [(v, 1 << (n - 1 - i)) for i, v in enumerate(variables)]
