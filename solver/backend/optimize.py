"""Find each domain's maximal safe guest CPU with Z3, or a minimal reason why there is none."""

from __future__ import annotations

import time
from dataclasses import dataclass

import z3

from cpusolve.backend.encode import Encoding, earliest_features, encode, lowest_identity, objectives
from cpusolve.backend.terms import negate
from cpusolve.core.guest import GuestCpu
from cpusolve.core.hosts import HostFacts
from cpusolve.core.pool import Requirements
from cpusolve.encodings.catalog import Catalog, CpuModel

DEFAULT_TIMEOUT_S = 30.0
#: Z3's MaxSAT engine for the pseudo-Boolean objectives: "wmax" finds the same optima as the
#: default "maxres" 3-4x faster on these problems (benchmarks/README.md); the property tests'
#: independent oracle checks optimality.
MAXSAT_ENGINE = "wmax"


@dataclass
class Outcome:
    status: str  # "sat" | "unsat" | "timeout"
    guest: GuestCpu | None = None
    features: frozenset[str] = frozenset()
    core: list[tuple] | None = None  # fact keys of a minimal conflict
    encoding: Encoding | None = None
    millis: float = 0.0


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def optimize(cat: Catalog, vendor: str, types: tuple[HostFacts, ...], req: Requirements,
             timeout: float = DEFAULT_TIMEOUT_S, reduce: bool = True) -> Outcome:
    """Lexicographic optimum of DESIGN.md section 3 for one domain.

    ``reduce=False`` solves the unreduced problem (every model, identity and feature a
    variable): the same optimum, slower; tests compare the two.
    """
    start = time.perf_counter()
    enc = encode(cat, vendor, types, req, reduce=reduce)
    opt = _optimizer(enc, timeout)
    for name, soft in objectives(enc):
        add_soft(opt, soft, name)
    answer = opt.check()
    elapsed = time.perf_counter() - start
    if answer == z3.unsat:
        outcome = explain(cat, vendor, types, req, max(timeout - elapsed, min(1.0, timeout)))
        outcome.millis = (time.perf_counter() - start) * 1000
        return outcome
    if answer != z3.sat:
        return Outcome("timeout", encoding=enc, millis=elapsed * 1000)
    model = opt.model()
    chosen = next(m for s, m in zip(enc.sel, enc.models, strict=True)
                  if z3.is_true(model.eval(s, model_completion=True)))
    guest, features = _decode(enc, model, chosen)
    return Outcome("sat", guest=guest, features=features, encoding=enc,
                   millis=(time.perf_counter() - start) * 1000)


def add_soft(opt: z3.Optimize, soft: list[tuple[z3.BoolRef, int]], name: str) -> None:
    """One lexicographic objective: maximise the total weight of the literals made true.
    Through the C API: z3's Optimize.add_soft re-coerces each literal and weight."""
    ctx = opt.ctx
    group = z3.to_symbol(name, ctx)
    for lit, weight in soft:
        z3.Z3_optimize_assert_soft(ctx.ref(), opt.optimize, lit.as_ast(), str(weight), group)


def _optimizer(enc: Encoding, timeout: float) -> z3.Optimize:
    """A time-bounded lexicographic optimizer holding the domain's hard constraints."""
    opt = z3.Optimize(ctx=enc.ctx)
    opt.set("timeout", _ms(timeout))
    opt.set("priority", "lex")
    opt.set("maxsat_engine", MAXSAT_ENGINE)
    for term in enc.hard:  # through the C API: Optimize.add re-coerces every term
        z3.Z3_optimize_assert(enc.ctx.ref(), opt.optimize, term.as_ast())
    return opt


def _decode(enc: Encoding, model: z3.ModelRef, chosen: CpuModel) -> tuple[GuestCpu, frozenset[str]]:
    """The guest CPU a Z3 model describes: ``chosen`` plus flags, f/m/s where it differs."""
    features = enc.fixed | frozenset(f for f, v in enc.g.items()
                                     if f not in enc.fixed and z3.is_true(model.eval(v, model_completion=True)))
    shown = next(k for k, v in zip(enc.identities, enc.ident, strict=True)
                 if z3.is_true(model.eval(v, model_completion=True)))
    guest = GuestCpu(model=chosen.name, plus=tuple(sorted(features - chosen.features)),
                     minus=tuple(sorted(chosen.features - features)),
                     fms=None if shown == chosen.fms else shown)
    return guest, features


def explain(cat: Catalog, vendor: str, types: tuple[HostFacts, ...], req: Requirements,
            timeout: float) -> Outcome:
    """A minimal set of named facts that cannot all hold (deletion-minimised unsat core)."""
    deadline = time.perf_counter() + timeout
    enc = encode(cat, vendor, types, req, wide=True, ctx=z3.Context())  # cores follow the search
    solver = z3.Solver(ctx=enc.ctx)
    solver.set("timeout", _ms(timeout))
    for term in enc.hard:
        z3.Z3_solver_assert(enc.ctx.ref(), solver.solver, term.as_ast())
    lits = [lit for lit, _ in enc.facts]
    answer = solver.check(lits)
    if answer != z3.unsat:
        return Outcome("timeout" if answer == z3.unknown else "unsat", core=[], encoding=enc)
    in_core = {x.get_id() for x in solver.unsat_core()}
    core = [c for c in lits if c.get_id() in in_core]
    # Deletion-based minimisation: drop each fact whose absence keeps the rest unsat.
    i = 0
    while i < len(core):
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            break
        solver.set("timeout", _ms(remaining))
        trial = core[:i] + core[i + 1:]
        if solver.check(trial) == z3.unsat:
            shrunk = {c.get_id() for c in solver.unsat_core()}
            core = [c for c in trial if c.get_id() in shrunk]
        else:
            i += 1
    keys = {lit.get_id(): key for lit, key in enc.facts}
    return Outcome("unsat", core=[keys[c.get_id()] for c in core], encoding=enc)


def nearest(cat: Catalog, vendor: str, types: tuple[HostFacts, ...], req: Requirements, current: GuestCpu,
            timeout: float = DEFAULT_TIMEOUT_S) -> GuestCpu | None:
    """The safe, runnable guest CPU on ``current``'s model that changes the fewest visible bits.

    Used to repair a running guest: keep its model (a model change is a bigger step for an
    operator), flip as few features as possible, keep its family/model/stepping if it can.
    """
    model = cat.model(current.model)
    enc = encode(cat, vendor, types, req, reduce=False, model=model)
    if not enc.models:
        return None
    opt = _optimizer(enc, timeout)
    visible = current.visible()
    same = [v for k, v in zip(enc.identities, enc.ident, strict=True) if k == current.identity()[1:]]
    add_soft(opt, [(v if f in visible else negate(v), 1) for f, v in enc.g.items()], "fewest_flips")
    add_soft(opt, [(same[0], 1)] if same else [], "same_fms")
    add_soft(opt, [(v, 1) for v in enc.g.values()], "most_features")
    add_soft(opt, lowest_identity(enc), "lowest_fms")
    add_soft(opt, earliest_features(list(enc.g.values())), "earliest")
    if opt.check() != z3.sat:
        return None
    return _decode(enc, opt.model(), model)[0]
