"""The optimum of a domain whose ideal guest is safe, found and proven without a solver.

The first three objectives of :data:`~cpusolve.problem.objectives.OPTIMUM` each reward one
literal per feature variable, and every variable is in exactly one of them: ``features``
rewards showing each performance feature, ``hints`` hiding each hint bit, ``settings``
leaving each guest setting off.  So they reach their upper bounds together, and only,
when every variable takes that value: the *ideal* assignment.  If some choice of model,
family/model/stepping and "own identity" meets every hard constraint with the ideal
features, every optimum has them, and what is left to choose is those three selectors:
this module enumerates every assignment of them that the two exactly-one constraints
allow, keeps those that meet every hard constraint, and takes the lexicographically best
by the remaining objectives (``flags``, ``own_fms``, ``newest``, ``lowest_fms``,
``earliest``), scored exactly as the solver scores them (the weights of the satisfied
soft formulas).  That is the optimum the solver would find, since it is unique (the last
two objectives break every tie; a tie found here is left to the solver).

Features no feasible guest can show (:func:`forced_off`: their dependencies are missing)
stay off in the ideal assignment, since no assignment earns their reward.  On the diverse
benchmark fleet about 90 % of the feasible domains have an ideal guest; the rest, and
every domain where no selector choice fits, go to the solver.
``tests/test_ideal.py`` compares the two on random pools and on the diverse generator's
pools.  The answer is re-checked by the independent checker like any other.
"""

from __future__ import annotations

from functools import lru_cache

from cpusolve.encodings.catalog import HINT_BITS
from cpusolve.encodings.expr import All, Any, Const, Expr, Feature, Not, holds_on
from cpusolve.problem.build import Problem, off_through_dependencies
from cpusolve.problem.formula import OWN_FMS, SETTINGS, ExactlyOne, Iff, Implies, Sel, fms_sel, model_sel
from cpusolve.problem.objectives import OPTIMUM
from cpusolve.problem.solution import Choice, Optimum

#: the objectives the ideal assignment maximises, one literal per variable each
IDEAL = ("features", "hints", "settings")
assert OPTIMUM[:3] == IDEAL


def ideal_optimum(problem: Problem) -> Optimum | None:
    """The problem's optimum when its ideal assignment fits, else None (ask the solver)."""
    if tuple(name for name, _ in problem.objectives) != OPTIMUM or not problem.models:
        return None
    off = forced_off(problem)
    on = problem.fixed | frozenset(f for f in problem.variables
                                   if f not in HINT_BITS and f not in SETTINGS and f not in off)
    reduce = _Reduce(on)
    hard = []
    for formula, _ in problem.constraints:
        r = reduce(formula)
        if r is False:
            return None
        if r is not True:
            hard.append(r)
    # Every choice of the selectors the exactly-one constraints allow, as one bit each; a
    # formula over the selectors is the set of choices where it holds (an int of bits).
    sel_bits, n = _choices(problem.models, problem.identities)
    bits = _Bits(sel_bits, (1 << n) - 1)
    fits = bits.full
    for e in hard:
        fits &= bits(e)
        if not fits:
            return None  # no selector fits the ideal features: the solver decides
    # The lexicographic best, one objective at a time: the choices best at this one among
    # those best at the ones before.  A formula that holds at all of them or none adds the
    # same to each, so it is left out of the comparison.
    best = fits
    for _, soft in problem.objectives:
        level = []
        for f, w in soft:
            r = reduce(f)
            if r is not False:
                mask = bits(r) & best
                if mask and mask != best:
                    level.append((mask, w))
        if not level:
            continue
        top, keep = None, 0
        rest = best
        while rest:
            low = rest & -rest  # one choice
            rest ^= low
            score = sum(w for mask, w in level if mask & low)
            if top is None or score > top:
                top, keep = score, low
            elif score == top:
                keep |= low
        best = keep
    if best & (best - 1):
        return None  # a tie: the solver decides (the objectives make the optimum unique)
    m, k, _ = _choice(problem.models, problem.identities, best.bit_length() - 1)
    return Optimum("sat", Choice(m.name, on, k))


def _choices(models, identities) -> tuple[dict[Sel, int], int]:
    """The selectors' bit sets over the choices (model, identity, own identity shown or
    not), choice ``i`` being :func:`_choice`'s; and how many choices there are.

    Choice ``(m * K + k) * 2 + (0 if own else 1)`` (``K`` identities): so a model's
    choices are one run of ``2K`` bits, an identity's a pair of bits in each run, "own"
    every even bit; made with shifts rather than a loop over the choices (a domain has
    thousands, and every feasible domain asks)."""
    k_count = len(identities)
    n = 2 * len(models) * k_count
    run = 2 * k_count
    sel_bits: dict[Sel, int] = {}
    for i, m in enumerate(models):
        sel = model_sel(m.name)
        sel_bits[sel] = sel_bits.get(sel, 0) | (((1 << run) - 1) << (i * run))
    runs = sum(1 << (i * run) for i in range(len(models)))  # one bit at each run's start
    for j, k in enumerate(identities):
        sel = fms_sel(k)
        sel_bits[sel] = sel_bits.get(sel, 0) | ((3 << (2 * j)) * runs)
    if n:
        sel_bits[OWN_FMS] = sel_bits.get(OWN_FMS, 0) | (((1 << n) - 1) // 3)  # the even bits
    return sel_bits, n


def _choice(models, identities, i: int):
    """Choice ``i`` of :func:`_choices`: (model, identity, own identity shown)."""
    pair, not_own = divmod(i, 2)
    m, k = divmod(pair, len(identities))
    return models[m], identities[k], not_own == 0


def forced_off(problem: Problem) -> frozenset[str]:
    """Feature variables no assignment meeting the hard constraints shows: those a constraint
    turns off outright (a dependency with no alternative among the domain's features, a
    forbidden feature), and, repeatedly, those that depend on one of them alone.

    No feasible assignment earns their literal of objective 1, so the ideal assignment is
    every *other* performance feature shown: the best objective 1 can be, reached only there
    (every objective-1 literal has weight 1).  A domain whose hosts lack AVX-512F keeps
    ``avx512bw`` and the rest off this way, and still has an ideal guest."""
    off: set[str] = set()
    needs: list[tuple[str, tuple[tuple[str, ...]]]] = []  # one group per constraint
    for formula, _ in problem.constraints:
        t = type(formula)
        if t is Not and type(formula.item) is Feature:
            off.add(formula.item.name)
        elif t is Implies and type(formula.a) is Feature:
            b = formula.b
            if type(b) is Feature:
                needs.append((formula.a.name, ((b.name,),)))
            elif type(b) is Any and all(type(i) is Feature for i in b.items):
                needs.append((formula.a.name, (tuple(i.name for i in b.items),)))
    return off_through_dependencies(off, needs)


class _Bits:
    """A formula over the selectors as the set of choices where it holds: bit i for choice i."""

    def __init__(self, sel_bits: dict[Sel, int], full: int) -> None:
        self.sel_bits = sel_bits
        self.full = full
        self.memo: dict[int, tuple[object, int]] = {}

    def __call__(self, e) -> int:
        if e is True or e is False:
            return self.full if e else 0
        hit = self.memo.get(id(e))
        if hit is None:
            hit = self.memo[id(e)] = (e, self._bits(e))  # e kept alive: its id stays unique
        return hit[1]

    def _bits(self, e) -> int:
        t = type(e)
        full = self.full
        if t is Sel:
            return self.sel_bits.get(e, 0)  # a selector no choice sets is False
        if t is Const:
            return full if e.value else 0
        if t is Not:
            return full & ~self(e.item)
        # selectors (most items) are looked up in place: no call, no memo entry
        sel_bits = self.sel_bits
        if t is All:
            out = full
            for i in e.items:
                out &= sel_bits.get(i, 0) if type(i) is Sel else self(i)
            return out
        if t is Any:
            out = 0
            for i in e.items:
                out |= sel_bits.get(i, 0) if type(i) is Sel else self(i)
            return out
        if t is Implies:
            return (full & ~self(e.a)) | self(e.b)
        if t is Iff:
            return full & ~(self(e.a) ^ self(e.b))
        if t is ExactlyOne:
            ones = twos = 0
            for i in e.items:
                x = sel_bits.get(i, 0) if type(i) is Sel else self(i)
                twos |= ones & x
                ones |= x
            return ones & ~twos
        raise TypeError(f"not a reduced formula: {e!r}")


class _Reduce:
    """A formula with the features decided: True, False, or a formula over the selectors
    (each distinct sub-formula reduced once per problem)."""

    def __init__(self, on: frozenset[str]) -> None:
        self.on = on
        self.memo: dict = {}

    def __call__(self, e: Expr):
        # by identity: formula nodes hash their whole tree on every lookup, and the
        # problem's formulas (and what they reduce to) live as long as this reducer
        hit = self.memo.get(id(e))
        if hit is None:
            hit = self._reduce(e)
            self.memo[id(e)] = (e, hit)
            return hit
        return hit[1]

    def _reduce(self, e: Expr):
        t = type(e)
        if t is All or t is Any or t is Not or t is Implies:
            reads = _decided_reads(e)
            if reads is not None:  # a residual rule term or a dependency: decided by its features
                key = (e, reads & self.on)
                hit = _DECIDED.get(key)
                if hit is None:
                    if len(_DECIDED) > _DECIDED_LIMIT:
                        _DECIDED.clear()
                    hit = _DECIDED[key] = _decide(e, key[1])
                return hit
        if t is Feature:
            return e.name in self.on
        if t is Const:
            return e.value
        if t is Sel:
            return e
        # A node whose parts reduce to themselves (the selector formulas: most of a
        # problem's) is its own reduction: no copy is made.
        if t is Not:
            inner = self(e.item)
            return (not inner) if type(inner) is bool else (e if inner is e.item else Not(inner))
        if t is All or t is Any:
            stop = t is Any  # True decides an "or", False an "and"
            items = []
            same = True
            for i in e.items:
                r = i if type(i) is Sel else self(i)  # a selector is its own reduction
                if r is stop:
                    return stop
                if r is not (not stop):
                    items.append(r)
                if r is not i:
                    same = False
            if same and items:
                return e
            if not items:
                return not stop
            return items[0] if len(items) == 1 else t(tuple(items))
        if t is Implies:
            a, b = self(e.a), self(e.b)
            if a is False or b is True:
                return True
            if a is True:
                return b
            if a is e.a and b is e.b:
                return e
            return Implies(a, b) if b is not False else Not(a)
        if t is Iff:
            a, b = self(e.a), self(e.b)
            if type(a) is bool and type(b) is bool:
                return a == b
            if a is e.a and b is e.b:
                return e
            return Iff(_const(a), _const(b))
        if t is ExactlyOne:
            items = [i if type(i) is Sel else self(i) for i in e.items]
            if items and all(r is i for r, i in zip(items, e.items, strict=True)):
                return e
            fixed_true = sum(1 for i in items if i is True)
            if fixed_true > 1:
                return False
            open_items = tuple(i for i in items if type(i) is not bool)
            if fixed_true == 1:
                return All(tuple(Not(i) for i in open_items)) if open_items else True
            return ExactlyOne(open_items) if open_items else False
        raise TypeError(f"not a problem formula: {e!r}")


#: (residual term, the features it reads that are on) -> its value: residuals recur in
#: every domain of a fleet, and the features they read are few
_DECIDED: dict[tuple, bool] = {}
_DECIDED_LIMIT = 1 << 17


@lru_cache(maxsize=1 << 16)
def _residual_reads(e: Expr) -> frozenset[str] | None:
    """The features of a formula made of feature bits and and/or/not alone (a residual
    rule term), or None when it has selectors or other connectives."""
    t = type(e)
    if t is Feature:
        return frozenset((e.name,))
    if t is Const:
        return frozenset()
    if t is Not:
        return _residual_reads(e.item)
    if t is All or t is Any:
        parts = [_residual_reads(i) for i in e.items]
        return None if any(p is None for p in parts) else frozenset().union(*parts)
    return None


@lru_cache(maxsize=1 << 16)
def _decided_reads(e: Expr) -> frozenset[str] | None:
    """What decides ``e`` once the features are: the features of a residual rule term or
    of a dependency (an implication between two), or None when it reads selectors too."""
    if type(e) is Implies:  # a dependency: a feature needs one of others
        a, b = _residual_reads(e.a), _residual_reads(e.b)
        return None if a is None or b is None else a | b
    return _residual_reads(e)


def _decide(e: Expr, on: frozenset[str]) -> bool:
    if type(e) is Implies:
        return not holds_on(e.a, on) or holds_on(e.b, on)
    return holds_on(e, on)


def _const(value):
    return Const(value) if type(value) is bool else value

