"""Infeasible domains proven in Python, with their minimal conflict, before any solver runs.

Most infeasible domains of a fleet fail the same simple way: a host bug needs a mechanism
(SSBD, an IBPB flavour, VERW that clears buffers) that some host cannot expose, or two
hosts need family/model/stepping identities no single guest can show (Zen 2's Retbleed
next to Zen 3's TSA).  Both are visible without search: with the features the named facts
turn off read as False, every identity's residual of the obligations involved folds to
False.  That is a proof (folding is sound), so the domain is infeasible and those facts are
a conflict of :func:`~cpusolve.problem.build.explain_problem`'s problem.

The conflict is then made minimal as the solver path makes it (deletion, in the problem's
constraint order), and minimality is *proven*, not assumed: for each fact left, the others
without it are satisfied by an explicit assignment, evaluated on every hard constraint of
the explanation problem.  Whatever this module cannot prove (a conflict only search finds,
a witness it cannot build) it leaves to the solver: :func:`proven_conflict` returns None.
The answer never depends on the order domains are solved in, so reports stay identical
under any number of workers.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from itertools import product

from cpusolve.core.bits import BitNames
from cpusolve.core.hosts import HostFacts
from cpusolve.core.pool import Requirements
from cpusolve.encodings import targets
from cpusolve.encodings.catalog import Catalog
from cpusolve.encodings.expr import FALSE, TRUE, All, Any, Const, Expr, Feature, Not, features_of, holds_on
from cpusolve.encodings.rules import SMT, load_rules
from cpusolve.encodings.safety import obligations
from cpusolve.problem.build import (
    allowed_features,
    candidate_models,
    explanation_features,
    off_through_dependencies,
    residual_features,
)
from cpusolve.problem.keys import FactKey, Lacks, MinModel, Must, QemuLacks, Require
from cpusolve.problem.reduce import readings

#: Witness search: at most this many free variables are enumerated (2**n assignments).
MAX_WITNESS_VARS = 12


#: feature name -> its bit in the masks below (one registry per process)
_NAMES = BitNames()
mask_of = _NAMES.mask


#: id(node) -> (node, mask of the features it reads, {off: result}).  Keyed by identity,
#: not equality: residuals are interned (rules.residuals), so equal inputs are the same
#: object, and comparing nested nodes for equality on every lookup would cost more than
#: the fold; the node is kept in the entry so that its id cannot be reused.
_MEMO: dict[int, tuple[Expr, int, dict[int, Expr]]] = {}
_SIZE = [0]
#: Entries kept before the memo starts afresh (bounded memory in a long-lived process).
MEMO_LIMIT = 1 << 18


def _entry(e: Expr):
    entry = _MEMO.get(id(e))
    if entry is None:
        entry = _MEMO[id(e)] = (e, mask_of(features_of(e)), {})
    return entry


def fold_off(e: Expr, off: int) -> Expr:
    """``e`` with the features whose bits are in ``off`` False, simplified (constants
    propagated); the result is TRUE, FALSE or an expression over the other features."""
    entry = _entry(e)
    key = off & entry[1]
    hit = entry[2].get(key)
    if hit is None:
        if _SIZE[0] > MEMO_LIMIT:
            _MEMO.clear()
            _SIZE[0] = 0
            entry = _entry(e)
        hit = entry[2][key] = _fold_node(e, key)
        _SIZE[0] += 1
    return hit


def folds_false(e: Expr, off: int) -> bool:
    """``fold_off(e, off) is FALSE``, answered from the memo where it can (the proofs ask
    this hundreds of thousands of times per fleet, nearly always a hit)."""
    entry = _MEMO.get(id(e))
    if entry is not None:
        hit = entry[2].get(off & entry[1])
        if hit is not None:
            return hit is FALSE
    return fold_off(e, off) is FALSE


def _fold_node(e: Expr, off: int) -> Expr:
    t = type(e)
    if t is Feature:
        return FALSE if off else e  # off is already narrowed to this feature's bit
    if t is Const:
        return TRUE if e.value else FALSE  # the singletons: callers compare with ``is``
    if t is Not:
        inner = fold_off(e.item, off)
        if inner is TRUE or inner is FALSE:
            return FALSE if inner is TRUE else TRUE
        return e if inner is e.item else Not(inner)
    if t is All or t is Any:
        stop, skip = (FALSE, TRUE) if t is All else (TRUE, FALSE)
        items = []
        for i in e.items:
            r = fold_off(i, off)
            if r is stop:
                return stop
            if r is not skip:
                items.append(r)
        if not items:
            return skip
        return items[0] if len(items) == 1 else t(tuple(items))
    raise TypeError(f"not a residual: {e!r}")


@lru_cache(maxsize=256)
def _model_identities(cat: Catalog, vendor: str, req: Requirements) -> frozenset:
    """The family/model/steppings of the candidate models (every domain of a vendor asks)."""
    return frozenset(m.fms for m in candidate_models(cat, vendor, req))


@dataclass(frozen=True)
class _Fact:
    """A keyed fact of the explanation problem: what it asserts, as features off or a formula."""

    key: FactKey
    off: str | None = None  # a Lacks / QemuLacks fact: this feature is False
    formula: Expr | None = None  # a requirement: this holds
    #: a Must fact: the obligation's residual for each identity
    residuals: tuple[Expr, ...] | None = None
    order: int = 0


class _Domain:
    """The explanation problem's parts this module reads, for one domain."""

    def __init__(self, cat: Catalog, vendor: str, types: tuple[HostFacts, ...], req: Requirements) -> None:
        self.cat = cat
        allowed = allowed_features(cat, req)
        obs = obligations(vendor, types, req.kernels, req.policy, req.waive)
        pool = explanation_features(cat, types, req, obs)
        self.identities = sorted(_model_identities(cat, vendor, req) | {t.fms for t in types})
        residuals = [load_rules(ob.kernel).residuals(ob.expr, vendor, self.identities, ob.boot) for ob in obs]
        # Identities every obligation reads alike (the same residual objects: they are
        # interned) are one for every question asked here, which reads an identity only
        # through its residuals: one of each class stays (on the diverse benchmark fleet a
        # domain's 29 identities fall into a handful).
        classes: dict[tuple[int, ...], int] = {}
        for i, reading in enumerate(readings(residuals, len(self.identities))):
            classes.setdefault(reading, i)
        kept = sorted(classes.values())
        if len(kept) < len(self.identities):
            self.identities = [self.identities[i] for i in kept]
            residuals = [[rs[i] for i in kept] for rs in residuals]
        self.residuals = residuals
        read = residual_features(self.residuals)
        universe = set(pool & cat.guest_features)
        if SMT in read:
            universe.add(SMT)
        self.universe = universe
        # Features outside the universe are the constant False of the problem (no fact).
        self.absent = read - universe
        self.absent_mask = mask_of(self.absent)
        # The problem's dependencies (problem.build: f needs one of each group's
        # alternatives among the universe), for build.off_through_dependencies.
        self._deps = [(f, [tuple(a for a in group if a in universe) for group in cat.requires[f]])
                      for f in sorted(universe & cat.requires.keys())]
        self._closure: dict[frozenset[str], frozenset[str]] = {}
        #: whether the proofs follow the dependencies (the second attempt, :func:`precheck`)
        self.through_dependencies = False
        self._parts = (types, req, allowed, obs)
        self.common = frozenset.intersection(*(t.features for t in types)) & allowed
        # the requirements that are claims, as formulas (Forbid never enters a conflict here)
        self.required: list[tuple[FactKey, Expr]] = [(Require(f), Feature(f)) for f in sorted(req.require)]
        if req.min_model:
            need = sorted(cat.model(req.min_model).features & cat.guest_features)
            self.required.append((MinModel(req.min_model), All(tuple(Feature(f) for f in need))))

    def closed(self, off: frozenset[str], through_dependencies: bool | None = None) -> frozenset[str]:
        """``off`` and, through the dependencies (default :attr:`through_dependencies`),
        the features they then turn off too (remembered)."""
        if not (self.through_dependencies if through_dependencies is None else through_dependencies):
            return off
        hit = self._closure.get(off)
        if hit is None:
            hit = self._closure[off] = off_through_dependencies(off, self._deps)
        return hit

    def plausible(self) -> bool:
        """Whether every identity is refuted with every named feature off: the cheap test
        a feasible domain fails (before the facts are listed one by one)."""
        named = frozenset(f for f in self.universe if f != SMT and f not in self.common)
        off = self.off_mask(named, through_dependencies=True)
        formulas = [e for _, e in self.required]
        return all(any(folds_false(rs[i], off) for rs in self.residuals)
                   or any(folds_false(e, off) for e in formulas)
                   for i in range(len(self.identities)))

    def list_facts(self) -> None:
        """The keyed facts in the problem's constraint order (problem.build._problem)."""
        types, req, allowed, obs = self._parts
        universe = self.universe
        facts: list[_Fact] = []
        target = targets.target(req.qemu, req.libvirt).label
        common = self.common  # every host has these and the target names them: no fact
        for f in sorted(universe):
            if f == SMT or f in common:
                continue
            lacking = tuple(i for i, t in enumerate(types) if f not in t.features)
            if lacking:
                facts.append(_Fact(Lacks(f, lacking), off=f, order=len(facts)))
            if f not in allowed:
                facts.append(_Fact(QemuLacks(f, target), off=f, order=len(facts)))
        for key, e in self.required:
            facts.append(_Fact(key, formula=e, order=len(facts)))
        for ob, rs in zip(obs, self.residuals, strict=True):
            facts.append(_Fact(Must(ob), residuals=tuple(rs), order=len(facts)))
        self.facts = facts

    # -- the proof of a conflict ----------------------------------------------------------
    def off_mask(self, off: frozenset[str], through_dependencies: bool | None = None) -> int:
        """The features False with ``off`` False (its closure, :meth:`closed`, and the
        absent ones), as bits."""
        return mask_of(self.closed(off, through_dependencies)) | self.absent_mask

    def dead(self, fact: _Fact, m: int) -> int:
        """The identities under which ``fact`` cannot hold with the features of ``m`` (an
        :meth:`off_mask`) False, as bits (bit i: identity i)."""
        out = 0
        for i, e in enumerate(self._per_identity(fact)):
            if folds_false(e, m):
                out |= 1 << i
        return out

    def _per_identity(self, fact: _Fact) -> tuple[Expr, ...]:
        """A claim's expression under each identity."""
        if fact.residuals is not None:
            return fact.residuals
        return (fact.formula,) * len(self.identities)

    def refuted(self, facts: list[_Fact]) -> bool:
        """Whether ``facts`` fold to False under every identity (a sound proof of unsat)."""
        off = self.off_mask(frozenset(f.off for f in facts if f.off is not None))
        rows = [self._per_identity(f) for f in facts if f.off is None]
        for i in range(len(self.identities)):
            for row in rows:
                if folds_false(row[i], off):
                    break
            else:
                return False
        return True

    # -- the proof that no fact can go --------------------------------------------------
    def satisfiable(self, facts: list[_Fact]) -> bool:
        """Whether an explicit assignment meets ``facts`` and every hard constraint."""
        off = self.closed(frozenset(f.off for f in facts if f.off is not None)) | self.absent
        m = mask_of(off)
        for i in range(len(self.identities)):
            terms = []
            for f in facts:
                if f.residuals is not None:
                    terms.append(fold_off(f.residuals[i], m))
                elif f.formula is not None:
                    terms.append(fold_off(f.formula, m))
            if any(t is FALSE for t in terms):
                continue
            if self._witness(terms, off):
                return True
        return False

    def _witness(self, terms: list[Expr], off: frozenset[str]) -> bool:
        free = sorted(set().union(*(features_of(t) for t in terms)) - off) if terms else []
        if len(free) > MAX_WITNESS_VARS:
            return False
        for bits in product((True, False), repeat=len(free)):
            true = {f for f, b in zip(free, bits, strict=True) if b}
            if not all(holds_on(t, true) for t in terms):
                continue
            fixed = set(free)
            full = self._close(true, fixed, off)
            if full is not None and all(holds_on(t, full) for t in terms) and self._hard(full, off):
                return True
        return False

    def _close(self, true: set[str], fixed: set[str], off: frozenset[str]) -> set[str] | None:
        """``true`` plus what dependencies need (alternatives not decided False), or None."""
        out = set(true)
        if "hypervisor" in self.universe:
            out.add("hypervisor")
        todo = sorted(out)
        while todo:
            f = todo.pop()
            if f == SMT:
                continue
            for group in self.cat.features[f].requires:
                if any(a in out for a in group):
                    continue
                alt = next((a for a in group if a in self.universe and a not in off
                            and a not in fixed), None)
                if alt is None:
                    return None
                out.add(alt)
                todo.append(alt)
        return out

    def _hard(self, true: set[str], off: frozenset[str]) -> bool:
        """Every unnamed constraint of the explanation problem holds on ``true``."""
        if true & off or not true <= self.universe:
            return False
        if "hypervisor" in self.universe and "hypervisor" not in true:
            return False
        for f in true:
            if f == SMT:
                continue
            for group in self.cat.features[f].requires:
                if not any(a in true for a in group if a in self.universe):
                    return False
        return True


@dataclass(frozen=True)
class Verdict:
    #: a minimal conflict, proven; None when this module cannot prove one
    core: tuple[FactKey, ...] | None
    #: every identity is refuted with every named feature off: the cheap test every
    #: conflict proven here passes first.  A hint, not a proof: on the diverse benchmark
    #: fleet every infeasible domain passes it and no feasible one does, so the engine
    #: asks for an unproven plausible domain's explanation before its optimum
    plausible: bool = False


def precheck(cat: Catalog, vendor: str, types: tuple[HostFacts, ...], req: Requirements) -> Verdict:
    """What this module can say about the domain before any solver runs."""
    if not _model_identities(cat, vendor, req):  # no candidate model
        return Verdict(None)  # the problem is False outright; the solver path says so
    d = _Domain(cat, vendor, types, req)
    if not d.plausible():
        return Verdict(None)
    core = _conflict(d)
    if core is None:
        # Again through the dependencies: a conflict whose mechanism needs a lacking
        # feature (eIBRS needs SPEC_CTRL) is refuted only so.  Second, so that a conflict
        # the direct reading proves stays the one reported.
        d.through_dependencies = True
        core = _conflict(d)
    return Verdict(core, plausible=True)


def proven_conflict(cat: Catalog, vendor: str, types: tuple[HostFacts, ...],
                    req: Requirements) -> tuple[FactKey, ...] | None:
    """A minimal conflict of the domain's explanation problem, proven without a solver, or
    None when this module cannot prove one (the domain may still be infeasible)."""
    return precheck(cat, vendor, types, req).core


def _conflict(d: _Domain) -> tuple[FactKey, ...] | None:
    d.list_facts()
    offs = [f for f in d.facts if f.off is not None]
    claims = [f for f in d.facts if f.off is None]
    # With every named feature off, which identities each claim refutes: all of them
    # together, or the facts are no proof (d.refuted of every fact, asked claim by claim);
    # then deletion from the last claim keeps a claim only if the others leave an identity
    # unrefuted.
    every_off = d.off_mask(frozenset(f.off for f in offs))
    dead = {f.order: d.dead(f, every_off) for f in claims}
    everyone = (1 << len(d.identities)) - 1

    def refute(facts: list[_Fact]) -> int:
        out = 0
        for f in facts:
            out |= dead[f.order]
        return out
    if refute(claims) != everyone:
        return None
    kept = [f for f in claims if dead[f.order]]
    for i in reversed(range(len(kept))):  # from the last: the first kernel's claims stay
        rest = kept[:i] + kept[i + 1:]
        if refute(rest) == everyone:
            kept = rest
    # The features those claims read: one fact each (a Lacks and a QemuLacks of the same
    # feature say the same), then deletion in constraint order.
    read: set[str] = set()
    for f in kept:
        for e in f.residuals if f.residuals is not None else (f.formula,):
            read |= features_of(e)
    if d.through_dependencies:  # and what they depend on: a lacking one turns a read feature off
        needs = dict(d._deps)
        todo = sorted(read)
        while todo:
            for group in needs.get(todo.pop(), ()):
                for a in group:
                    if a not in read:
                        read.add(a)
                        todo.append(a)
    seen: set[str] = set()
    core = list(kept)
    for f in offs:
        if f.off in read and f.off not in seen:
            seen.add(f.off)
            core.append(f)
    core.sort(key=lambda f: f.order)
    i = 0
    while i < len(core):
        if core[i].off is None:
            i += 1
            continue
        trial = core[:i] + core[i + 1:]
        if d.refuted(trial):
            core = trial
        else:
            i += 1
    # Minimal: every fact is needed, shown by an assignment that meets all the others.
    for i in range(len(core)):
        if not d.satisfiable(core[:i] + core[i + 1:]):
            return None
    return tuple(f.key for f in core)
