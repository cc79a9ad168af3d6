"""A problem's formulas as Z3 terms, through the C API (backend.terms)."""

from __future__ import annotations

import z3

from cpusolve.backend.terms import ToZ3, boolean, exactly_one, fast_and, fast_or, implies, negate
from cpusolve.encodings.expr import All, Any, Not, fold_shared
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
