"""A problem's formulas as Z3 terms, through the C API (backend.terms)."""

from __future__ import annotations

import z3

from cpusolve.backend.terms import ToZ3, boolean, exactly_one, fast_and, fast_or, implies, negate
from cpusolve.encodings.expr import All, Any, Const, Feature, Not, fold_shared
from cpusolve.problem.build import Problem
from cpusolve.problem.formula import ExactlyOne, Iff, Implies, Sel


def sel_name(s: Sel) -> str:
    """The Z3 constant of a selector (feature variables are named by their feature)."""
    if s.kind == "model":
        return f"model:{s.key}"
    if s.kind == "fms":
        f, m, st = s.key
        return f"fms:{f}/{m}/{st}"
    return s.kind


class Terms(ToZ3):
    """One problem's variables and terms in one context: feature variables (the fixed ones
    are True, features outside the universe False) and selectors, made on first use."""

    def __init__(self, problem: Problem, ctx: z3.Context) -> None:
        true = z3.BoolVal(True, ctx=ctx)
        fixed = problem.fixed
        super().__init__({f: true if f in fixed else boolean(f, ctx) for f in problem.universe}, ctx)
        self.sels: dict[Sel, z3.BoolRef] = {}
        self.memo: dict = {}

    def sel(self, s: Sel) -> z3.BoolRef:
        v = self.sels.get(s)
        if v is None:
            v = self.sels[s] = boolean(sel_name(s), self.ctx)
        return v

    def term(self, e) -> z3.BoolRef:
        """``e`` as a Z3 term; each distinct sub-formula is built once (one problem's
        obligations share most of their residual sub-terms)."""
        hit = self.memo.get(e)
        if hit is not None:
            return hit
        t = type(e)
        if t is Sel:
            out = self.sel(e)
        elif t is Not:
            out = negate(self.term(e.item))
        elif t is All:
            out = fast_and([self.term(i) for i in e.items], self.ctx)
        elif t is Any:
            out = fast_or([self.term(i) for i in e.items], self.ctx)
        elif t is Implies:
            out = implies(self.term(e.a), self.term(e.b))
        elif t is Iff:
            out = self.term(e.a) == self.term(e.b)
        elif t is ExactlyOne:
            out = exactly_one([self.term(i) for i in e.items], self.ctx)
        else:  # Feature, Const
            out = fold_shared(e, self, self.memo)
        self.memo[e] = out
        return out


class SharedTerms:
    """Every problem's terms in one long-lived context (backend.terms.shared_context): a
    formula's term is built once per context, not once per problem, because a fleet's
    problems repeat most of their formulas (dependencies, the same residual obligations,
    model choices).  For that a feature's term is its variable in every problem: what
    :class:`Terms` writes as a constant (a fixed feature True, a feature outside the
    universe False) the problem states as a unit fact (:meth:`units`), which Z3's
    preprocessing propagates.  The optimum does not change, since it is unique.
    Cores are not taken here: they follow the search (see backend.solve)."""

    #: distinct formulas kept before the memo starts afresh (bounded memory)
    LIMIT = 1 << 17

    def __init__(self, ctx: z3.Context) -> None:
        self.ctx = ctx
        self.memo: dict = {}  # formula -> (term, the feature names it reads)
        self.consts: dict[str, z3.BoolRef] = {}
        self.empty: frozenset[str] = frozenset()

    def var(self, name: str) -> z3.BoolRef:
        v = self.consts.get(name)
        if v is None:
            v = self.consts[name] = boolean(name, self.ctx)
        return v

    def sel(self, s: Sel) -> z3.BoolRef:
        return self.var(sel_name(s))

    def term(self, e) -> tuple[z3.BoolRef, frozenset[str]]:
        """``e``'s term and the features it reads."""
        hit = self.memo.get(e)
        if hit is not None:
            return hit
        t = type(e)
        ctx = self.ctx
        if t is Feature:
            out = (self.var(e.name), frozenset((e.name,)))
        elif t is Sel:
            out = (self.sel(e), self.empty)
        elif t is Const:
            out = (z3.BoolVal(e.value, ctx=ctx), self.empty)
        elif t is Not:
            inner, reads = self.term(e.item)
            out = (negate(inner), reads)
        elif t is Implies or t is Iff:
            (a, ra), (b, rb) = self.term(e.a), self.term(e.b)
            out = (implies(a, b) if t is Implies else a == b, ra | rb)
        else:
            parts = [self.term(i) for i in e.items]
            terms = [p[0] for p in parts]
            if t is All:
                term = fast_and(terms, ctx)
            elif t is Any:
                term = fast_or(terms, ctx)
            elif t is ExactlyOne:
                term = exactly_one(terms, ctx)
            else:
                raise TypeError(f"not a problem formula: {e!r}")
            reads = [p[1] for p in parts if p[1]]
            out = (term, reads[0] if len(reads) == 1 else frozenset().union(*reads))
        if len(self.memo) > self.LIMIT:
            self.memo.clear()
        self.memo[e] = out
        return out

    def units(self, problem: Problem, reads: set[str]) -> list[z3.BoolRef]:
        """The unit facts that make the variables of ``reads`` mean what :class:`Terms`'
        constants mean in ``problem``."""
        fixed, universe = problem.fixed, set(problem.universe)
        out = []
        for f in sorted(reads):
            if f in fixed:
                out.append(self.var(f))
            elif f not in universe:
                out.append(negate(self.var(f)))
        return out
