"""A domain's problem: what must hold for its guest CPU and what is preferred, as plain data.

Three problems are built from one domain (its host kinds and the requirements):

* the **optimum** (:func:`optimum_problem`): variables only for features every host can
  expose, requirements and obligations hard, the objectives of
  :data:`~cpusolve.problem.objectives.OPTIMUM`; what cannot change the optimum is left
  out (:mod:`cpusolve.problem.reduce`);
* the **explanation** (:func:`explain_problem`): variables for every feature some host has
  or a requirement names, each host shortfall, requirement and obligation a named fact
  (:mod:`cpusolve.problem.keys`), so a minimal set of them that cannot hold together is the
  reason a domain has no answer;
* the **repair** (:func:`nearest_problem`): a running guest's own model, the objectives of
  :data:`~cpusolve.problem.objectives.NEAREST` (change as few visible bits as possible).

Only features every host can expose become variables; every other feature reads False,
which keeps a problem as small as what its hosts have in common.  The guest's
family/model/stepping is one of a few candidates, each a selector; the kernel's rules are
decided per candidate ahead of any solver (``rules.Residual``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from cpusolve.core.guest import GuestCpu
from cpusolve.core.hosts import HostFacts
from cpusolve.core.pool import Requirements
from cpusolve.encodings import targets
from cpusolve.encodings.catalog import Catalog, CpuModel
from cpusolve.encodings.expr import FALSE, TRUE, All, Any, Expr, Feature, Not, features_of
from cpusolve.encodings.rules import SMT, load_rules
from cpusolve.encodings.safety import Obligation, obligations
from cpusolve.problem import objectives as objs
from cpusolve.problem.formula import OWN_FMS, SETTINGS, ExactlyOne, Implies, fms_sel, model_sel
from cpusolve.problem.keys import FactKey, Forbid, Lacks, MinModel, Must, QemuLacks, Require
from cpusolve.problem.reduce import free_features, useful_models


@dataclass
class Problem:
    """One domain's problem.  ``constraints`` must all hold, in order; a constraint with a
    key is a named fact an explanation may retract (its key says what it is)."""

    cat: Catalog
    vendor: str
    types: tuple[HostFacts, ...]
    req: Requirements
    #: feature variables (sorted); ``fixed`` ones are the constant True
    universe: list[str]
    models: list[CpuModel]
    #: the family/model/stepping the guest may show (its model's, or a host's), one selector each
    identities: list[tuple[int, int, int]] = field(default_factory=list)
    fixed: frozenset[str] = frozenset()
    #: whether the guest chooses a model (the explanation only chooses an identity)
    chooses_model: bool = True
    constraints: list[tuple[Expr, FactKey | None]] = field(default_factory=list)
    #: lexicographic: (name, weighted formulas to make true), most important first
    objectives: list[tuple[str, list[tuple[Expr, int]]]] = field(default_factory=list)
    obligations: list[Obligation] = field(default_factory=list)

    @property
    def variables(self) -> list[str]:
        """Feature variables that are not constants, in universe order."""
        return [f for f in self.universe if f not in self.fixed]

    def must(self, formula: Expr, key: FactKey | None = None) -> None:
        self.constraints.append((formula, key))


def candidate_models(cat: Catalog, vendor: str, req: Requirements) -> list[CpuModel]:
    names = targets.target(req.qemu, req.libvirt).models
    return [m for m in cat.models if m.vendor == vendor and m.name in names]


def allowed_features(cat: Catalog, req: Requirements) -> frozenset[str]:
    return _allowed(cat, req.qemu, req.libvirt)


@lru_cache(maxsize=8)
def _allowed(cat: Catalog, qemu: str | None, libvirt: str | None) -> frozenset[str]:
    """The guest features the target QEMU and libvirt name (every problem of a fleet asks,
    and the two sets hold hundreds of names each)."""
    return cat.guest_features & targets.target(qemu, libvirt).features


def optimum_problem(cat: Catalog, vendor: str, types: tuple[HostFacts, ...], req: Requirements,
                    reduce: bool = True) -> Problem:
    """The optimizer's problem.  ``reduce`` leaves out what no optimum of
    :data:`objectives.OPTIMUM` uses (``reduce=False``: the same optimum, slower)."""
    p = _problem(cat, vendor, types, req, wide=False, reduce=reduce, model=None)
    p.objectives = objs.optimum(p)
    return p


def explain_problem(cat: Catalog, vendor: str, types: tuple[HostFacts, ...], req: Requirements) -> Problem:
    return _problem(cat, vendor, types, req, wide=True, reduce=False, model=None)


def nearest_problem(cat: Catalog, vendor: str, types: tuple[HostFacts, ...], req: Requirements,
                    current: GuestCpu) -> Problem:
    """The safe, runnable guest CPU on ``current``'s model that changes the fewest visible bits."""
    p = _problem(cat, vendor, types, req, wide=False, reduce=False, model=cat.model(current.model))
    p.objectives = objs.nearest(p, current)
    return p


def explanation_features(cat: Catalog, types: tuple[HostFacts, ...], req: Requirements,
                         obs: list[Obligation]) -> frozenset[str]:
    """What the explanation problem has variables for (before the guest-feature filter):
    every feature some host has, a requirement names or an obligation reads."""
    extra = set(req.require)
    if req.min_model:
        extra |= cat.model(req.min_model).features
    for ob in obs:
        extra |= features_of(ob.expr)
    return frozenset.union(*(t.features for t in types)) | extra


def _problem(cat: Catalog, vendor: str, types: tuple[HostFacts, ...], req: Requirements,
             wide: bool, reduce: bool, model: CpuModel | None) -> Problem:
    common = frozenset.intersection(*(t.features for t in types))
    allowed = allowed_features(cat, req)
    obs = obligations(vendor, types, req.kernels, req.policy, req.waive)
    if wide:
        universe = sorted(explanation_features(cat, types, req, obs) & cat.guest_features)
    else:
        universe = sorted(common & allowed)
    p = Problem(cat=cat, vendor=vendor, types=types, req=req, universe=universe, chooses_model=not wide,
                models=[m for m in candidate_models(cat, vendor, req) if model is None or m.name == model.name])

    # Family/model/stepping: the model's own, or one of the domain's hosts' (QEMU's
    # family=/model=/stepping= run on any host of the vendor).  The rule tables are decided
    # per identity (rules.Residual), leaving expressions over feature bits only.
    host_fms = {t.fms for t in types}
    p.identities = sorted({m.fms for m in p.models} | host_fms)
    p.obligations = obs
    residuals = [load_rules(ob.kernel).residuals(ob.expr, vendor, p.identities, ob.boot) for ob in obs]
    read = residual_features(residuals)  # what the obligations read
    if SMT in read:
        # The guest's topology is a choice where protection reads it (settings objective).
        p.universe = universe = sorted({*universe, SMT})
    if reduce and not wide:
        # A feature nothing but its dependencies constrains is shown in every optimum (it
        # only adds to the first objective), so it is the constant True, not a variable.
        p.fixed = free_features(cat, universe, read, req)
        alive = [i for i in range(len(p.identities)) if all(r[i] is not FALSE for r in residuals)]
        p.models = useful_models(p, residuals, alive, host_fms)
        p.identities = [p.identities[i] for i in alive]
        residuals = [[r[i] for i in alive] for r in residuals]

    # Dependencies a guest needs (QEMU feature_dependencies, Linux cpuid-deps, safety).
    present = set(universe)
    for f in universe:
        if f in p.fixed or f in SETTINGS:
            continue
        for group in cat.features[f].requires:
            p.must(_dependency(f, tuple(a for a in group if a in present)))
    if "hypervisor" in present:
        p.must(Feature("hypervisor"))

    if wide:
        for f in universe:
            if f in SETTINGS:
                continue  # a setting of the guest, not something a host exposes
            lacking = tuple(i for i, t in enumerate(types) if f not in t.features)
            if lacking:
                p.must(Not(Feature(f)), Lacks(f, lacking))
            if f not in allowed:
                p.must(Not(Feature(f)), QemuLacks(f, targets.target(req.qemu, req.libvirt).label))

    def requirement(key: FactKey, formula: Expr) -> None:
        p.must(formula, key if wide else None)

    for f in sorted(req.require):
        requirement(Require(f), Feature(f))
    for f in sorted(req.forbid):
        if f in present:
            requirement(Forbid(f), Not(Feature(f)))
    if req.min_model:
        need = sorted(cat.model(req.min_model).features & cat.guest_features)
        requirement(MinModel(req.min_model), All(tuple(Feature(f) for f in need)))

    # Model choice: exactly one candidate.  The explanation has no model selectors: any
    # candidate's identity is shown by choosing that candidate, so the identities alone
    # decide whether a guest exists.
    if not p.models:
        p.must(FALSE)
    ident = [fms_sel(k) for k in p.identities]
    p.must(ExactlyOne(tuple(ident)) if ident else FALSE)  # none: every identity refused
    if not wide:
        if p.models:
            p.must(ExactlyOne(tuple(model_sel(m.name) for m in p.models)))
        # A model's own identity only together with that model.
        where = set(p.identities)
        for m in p.models:
            if m.fms in where:
                p.must(Implies(All((model_sel(m.name), OWN_FMS)), fms_sel(m.fms)))
            else:  # an identity no obligation allows: this model only with a host's
                p.must(Implies(model_sel(m.name), Not(OWN_FMS)))
        for k in p.identities:
            if k not in host_fms:  # only a model's own identity, shown because it is its own
                p.must(Implies(fms_sel(k), OWN_FMS))

    # Safety obligations (rule 2, rule 3, hints), read by the same interpreter as the checker.
    # Residuals are interned (rules.residuals): equal terms are one object, constants the
    # singletons, so they are told apart by identity.
    for ob, terms in zip(obs, residuals, strict=True):
        cases: dict[int, tuple[Expr, list]] = {}
        for sel, term in zip(ident, terms, strict=True):
            if term is not FALSE:
                case = cases.get(id(term))
                if case is None:
                    cases[id(term)] = (term, [sel])
                else:
                    case[1].append(sel)
        formula = Any(tuple(All((Any(tuple(sels)), t)) if t is not TRUE else Any(tuple(sels))
                            for t, sels in cases.values()))
        p.must(formula, Must(ob) if wide else None)
    return p


@lru_cache(maxsize=1 << 14)
def _dependency(f: str, alternatives: tuple[str, ...]) -> Expr:
    """``f`` needs one of ``alternatives`` (the present ones of a dependency group; none:
    ``f`` is off).  One object per dependency for every problem, so the solver's terms for
    it are found at once (backend.translate.SharedTerms)."""
    if not alternatives:
        return Not(Feature(f))
    return Implies(Feature(f), Any(tuple(Feature(a) for a in alternatives)))


def residual_features(residuals: list[list[Expr]]) -> frozenset[str]:
    """The features the obligations' residuals read (an obligation's expression names
    actions, whose features only its residuals show), each distinct residual once: they
    are interned, so a domain's lists hold few distinct objects."""
    distinct: dict[int, Expr] = {}
    for rs in residuals:
        distinct.update(zip(map(id, rs), rs, strict=True))
    return frozenset().union(*map(features_of, distinct.values()))


def off_through_dependencies(off, needs) -> frozenset[str]:
    """``off`` and every feature the dependency constraints then turn off too: one with a
    group (of ``needs``: feature, its groups of alternatives) whose alternatives are all off,
    repeatedly (eIBRS needs SPEC_CTRL: with SPEC_CTRL off, eIBRS is off in every
    assignment that meets the dependencies)."""
    out = set(off)
    grew = True
    while grew:
        grew = False
        for f, groups in needs:
            if f not in out and any(all(a in out for a in g) for g in groups):
                out.add(f)
                grew = True
    return frozenset(out)
