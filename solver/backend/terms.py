"""Z3 terms built through the C API, and the optimizer's shared context.

z3's Python constructors (``z3.And``, ``z3.Bool``, ``z3.PbEq``...) re-coerce and sort-check
every argument, which was most of the time spent building a domain's problem; these build
the same terms with one C call each.
"""

from __future__ import annotations

import ctypes
import os
import threading

import z3

from cpusolve.encodings.expr import Algebra, Expr, fold_shared


def _nary(make, items: list, ctx: z3.Context, empty: bool) -> z3.BoolRef:
    """And/Or over Bool terms through Z3's C API: z3.And/z3.Or re-coerce every argument,
    which was most of the time spent building a domain's problem."""
    if not items:
        return z3.BoolVal(empty, ctx=ctx)
    if len(items) == 1:
        return items[0]
    args = (z3.Ast * len(items))(*[i.as_ast() for i in items])
    return z3.BoolRef(make(ctx.ref(), len(items), args), ctx)


def boolean(name: str, ctx: z3.Context) -> z3.BoolRef:
    """A Boolean constant, through the C API (z3.Bool costs ~50 us a variable)."""
    c = ctx.ref()
    return z3.BoolRef(z3.Z3_mk_const(c, z3.Z3_mk_string_symbol(c, name), z3.Z3_mk_bool_sort(c)), ctx)


def negate(item: z3.BoolRef) -> z3.BoolRef:
    return z3.BoolRef(z3.Z3_mk_not(item.ctx.ref(), item.as_ast()), item.ctx)


def implies(a: z3.BoolRef, b: z3.BoolRef) -> z3.BoolRef:
    return z3.BoolRef(z3.Z3_mk_implies(a.ctx.ref(), a.as_ast(), b.as_ast()), a.ctx)


def exactly_one(items: list, ctx: z3.Context) -> z3.BoolRef:
    """Pseudo-Boolean "exactly one of", through the C API (z3.PbEq re-coerces each item)."""
    n = len(items)
    args = (z3.Ast * n)(*[i.as_ast() for i in items])
    ones = (ctypes.c_int * n)(*([1] * n))
    return z3.BoolRef(z3.Z3_mk_pbeq(ctx.ref(), n, args, ones, 1), ctx)


def fast_and(items: list, ctx: z3.Context) -> z3.BoolRef:
    return _nary(z3.Z3_mk_and, items, ctx, True)


def fast_or(items: list, ctx: z3.Context) -> z3.BoolRef:
    return _nary(z3.Z3_mk_or, items, ctx, False)


class ToZ3(Algebra[z3.BoolRef]):
    """A residual rule expression (rules.Residual: feature atoms only) over the domain's
    feature variables; a feature without a variable is one no host can expose, so it
    reads False."""

    def __init__(self, g: dict[str, z3.BoolRef], ctx: z3.Context) -> None:
        self.g = g
        self.ctx = ctx

    def const(self, node):
        return z3.BoolVal(node.value, ctx=self.ctx)

    def all(self, node, items):
        return fast_and(items, self.ctx)

    def any(self, node, items):
        return fast_or(items, self.ctx)

    def not_(self, node, item):
        return negate(item)

    def feature(self, node):
        out = self.g.get(node.name)
        return out if out is not None else z3.BoolVal(False, ctx=self.ctx)


def to_z3(term: Expr, g: dict[str, z3.BoolRef], ctx: z3.Context, memo: dict) -> z3.BoolRef:
    """``term`` as a Z3 term; ``memo`` maps sub-terms already built (one domain's
    obligations share most of them)."""
    return fold_shared(term, ToZ3(g, ctx), memo)


_local = threading.local()


def shared_context() -> z3.Context:
    """One Z3 context per thread and process.

    Creating a context costs ~4 ms, as much as solving a small domain.  Z3 terms are freed
    with their last Python reference, so sharing the context keeps no problem alive; a
    context is not thread-safe, and a forked worker must not use its parent's.
    """
    ctx = getattr(_local, "ctx", None)
    if ctx is None or _local.pid != os.getpid():
        ctx = _local.ctx = z3.Context()
        _local.pid = os.getpid()
    return ctx
