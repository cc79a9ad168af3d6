"""Z3 on a problem: the lexicographic optimum, and a minimal set of facts that conflict.

The optimizer runs in the shared context (``backend.terms.shared_context``): the optimum
is unique (the objectives' last tie-breaks), so what the context has seen before cannot
change an answer.  Unsat cores follow the search, so cores are taken in a fresh context.
Every call carries a time bound.
"""

from __future__ import annotations

import threading
import time

import z3

from cpusolve.backend.terms import boolean, implies, shared_context
from cpusolve.backend.translate import SharedTerms, Terms
from cpusolve.problem.build import Problem
from cpusolve.problem.formula import fms_sel, model_sel
from cpusolve.problem.keys import FactKey
from cpusolve.problem.solution import Choice, Core, Optimum

#: Z3's MaxSAT engine for the pseudo-Boolean objectives: "wmax" finds the same optima as the
#: default "maxres" 3-4x faster on these problems (benchmarks/README.md); the property tests'
#: independent oracle checks optimality.
MAXSAT_ENGINE = "wmax"
#: Z3 takes its timeout as an unsigned 32-bit number of milliseconds.
MAX_MS = 2**32 - 1


def ms(seconds: float) -> int:
    return max(1, min(int(seconds * 1000), MAX_MS))


def optimum(problem: Problem, timeout: float) -> Optimum:
    """The lexicographic optimum of ``problem.objectives``."""
    ctx = shared_context()
    terms = _shared_terms(ctx)
    opt = z3.Optimize(ctx=ctx)
    c, o = ctx.ref(), opt.optimize
    z3.Z3_optimize_set_params(c, o, _optimize_params(ctx, timeout).params)
    reads: set[str] = set()
    for formula, _ in problem.constraints:  # through the C API: Optimize.add re-coerces every term
        term, r = terms.term(formula)
        reads |= r
        z3.Z3_optimize_assert(c, o, term.as_ast())
    for name, soft in problem.objectives:
        group = z3.to_symbol(name, ctx)
        for formula, weight in soft:  # Optimize.add_soft re-coerces each literal and weight
            term, r = terms.term(formula)
            reads |= r
            z3.Z3_optimize_assert_soft(c, o, term.as_ast(), str(weight), group)
    for unit in terms.units(problem, reads):
        z3.Z3_optimize_assert(c, o, unit.as_ast())
    status = run(opt)
    if status != "sat":
        return Optimum(status)
    model = z3.Z3_optimize_get_model(c, o)
    z3.Z3_model_inc_ref(c, model)
    try:
        def true(v: z3.BoolRef) -> bool:
            # a constant the model leaves out reads False, as model_completion makes it
            value = z3.Z3_model_get_const_interp(c, model, z3.Z3_get_app_decl(c, v.as_ast()))
            return bool(value) and z3.Z3_get_bool_value(c, value) == z3.Z3_L_TRUE

        features = problem.fixed | frozenset(f for f in problem.variables if true(terms.var(f)))
        chosen = next((m.name for m in problem.models if true(terms.sel(model_sel(m.name)))), None)
        shown = next(k for k in problem.identities if true(terms.sel(fms_sel(k))))
    finally:
        z3.Z3_model_dec_ref(c, model)
    return Optimum("sat", Choice(chosen, features, shown))


_local = threading.local()


def _shared_terms(ctx: z3.Context) -> SharedTerms:
    """The terms of the shared context (one per context, so per thread and process)."""
    terms = getattr(_local, "terms", None)
    if terms is None or terms.ctx is not ctx:
        terms = _local.terms = SharedTerms(ctx)
        _local.params = {}
    return terms


def _optimize_params(ctx: z3.Context, timeout: float) -> z3.ParamsRef:
    """The optimizer's settings, made once per context and time bound."""
    params = _local.params.get(timeout)
    if params is None:
        params = _local.params[timeout] = z3.ParamsRef(ctx=ctx)
        params.set("timeout", ms(timeout))
        params.set("priority", "lex")
        params.set("maxsat_engine", MAXSAT_ENGINE)
    return params


def run(engine) -> str:
    """A Z3 check as "sat", "unsat" or "timeout" (its time bound spent); Ctrl-C during it
    raises KeyboardInterrupt (see :func:`interrupted`)."""
    answer = engine.check()
    if answer == z3.unsat:
        return "unsat"
    if answer != z3.sat:
        interrupted(engine)
        return "timeout"
    return "sat"


def minimal_core(problem: Problem, timeout: float) -> Core:
    """A minimal set of named facts that cannot all hold (deletion-minimised unsat core)."""
    deadline = time.perf_counter() + timeout
    ctx = z3.Context()  # cores follow the search: a fresh context for each
    terms = Terms(problem, ctx)
    solver = z3.Solver(ctx=ctx)
    solver.set("timeout", ms(timeout))
    lits: list[z3.BoolRef] = []
    keys: dict[int, FactKey] = {}
    for formula, key in problem.constraints:
        term = terms.term(formula)
        if key is not None:
            lit = boolean(f"fact{len(lits)}", ctx)
            lits.append(lit)
            keys[lit.get_id()] = key
            term = implies(lit, term)
        z3.Z3_solver_assert(ctx.ref(), solver.solver, term.as_ast())
    answer = solver.check(lits)
    if answer == z3.unknown:
        interrupted(solver)
    if answer != z3.unsat:
        return Core("timeout" if answer == z3.unknown else "sat")
    in_core = {x.get_id() for x in solver.unsat_core()}
    core = [c for c in lits if c.get_id() in in_core]
    # Deletion-based minimisation: drop each fact whose absence keeps the rest unsat.
    i = 0
    while i < len(core):
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            break
        solver.set("timeout", ms(remaining))
        trial = core[:i] + core[i + 1:]
        verdict = solver.check(trial)
        if verdict == z3.unknown:
            interrupted(solver)
        if verdict == z3.unsat:
            shrunk = {c.get_id() for c in solver.unsat_core()}
            core = [c for c in trial if c.get_id() in shrunk]
        else:
            i += 1
    return Core("unsat", tuple(keys[c.get_id()] for c in core))


def interrupted(engine) -> None:
    """Z3 answers "unknown" both when its time bound expires and when Ctrl-C cancels it
    (it catches SIGINT during a check): an interrupt must stop the run, not pass for a
    timeout of one domain."""
    reason = engine.reason_unknown()
    if "cancel" in reason or "interrupt" in reason:
        raise KeyboardInterrupt
