"""One domain's facts as Z3 terms: guest feature bits, model choice, f/m/s, obligations.

Only features every host can expose become variables; every other feature is the constant
False, which keeps a domain's problem as small as what its hosts have in common.  The
explain path asks for a wider universe (every feature any host has, plus required ones) so
that an unsat core can name "hosts H lack F".
"""

from __future__ import annotations

from dataclasses import dataclass, field

import z3

from cpusolve.encodings.catalog import HINT_BITS, Catalog, CpuModel
from cpusolve.encodings.rules import load_rules
from cpusolve.encodings.safety import Obligation, obligations
from cpusolve.hosts import HostFacts
from cpusolve.pool import Requirements


def _nary(make, items: list, ctx: z3.Context, empty: bool) -> z3.BoolRef:
    """And/Or over Bool terms through Z3's C API: z3.And/z3.Or re-coerce every argument,
    which was most of the time spent building a domain's problem."""
    if not items:
        return z3.BoolVal(empty, ctx=ctx)
    if len(items) == 1:
        return items[0]
    args = (z3.Ast * len(items))(*[i.as_ast() for i in items])
    return z3.BoolRef(make(ctx.ref(), len(items), args), ctx)


def fast_and(items: list, ctx: z3.Context) -> z3.BoolRef:
    return _nary(z3.Z3_mk_and, items, ctx, True)


def fast_or(items: list, ctx: z3.Context) -> z3.BoolRef:
    return _nary(z3.Z3_mk_or, items, ctx, False)


class Z3Ops:
    """Z3 primitives for the rule-table interpreter, over a guest of a fixed vendor."""

    def __init__(self, enc: Encoding) -> None:
        self.enc = enc
        self.fixed_vendor = enc.vendor

    def const(self, value: bool):
        return z3.BoolVal(bool(value), ctx=self.enc.ctx)

    def all(self, items: list):
        return fast_and(items, self.enc.ctx)

    def any(self, items: list):
        return fast_or(items, self.enc.ctx)

    def not_(self, item):
        return z3.Not(item)

    def feature(self, name: str):
        var = self.enc.g.get(name)
        if var is None:
            return self.const(False)
        if name.startswith("msr10a:") or (name in self.enc.cat.features and self.enc.cat.features[name].is_arch_cap):
            cap = self.enc.g.get("arch-capabilities")
            return z3.And(var, cap) if cap is not None else self.const(False)
        return var

    def vendor(self, vendors: list[str]):
        return self.const(self.enc.vendor in vendors)

    def hypervisor(self):
        return self.const(True)

    def field_in(self, fld: str, lo, hi, values):
        term = self.enc.fms_terms[fld]
        if values is not None and len(values) > 2 and sorted(values) == list(range(min(values), max(values) + 1)):
            lo, hi, values = min(values), max(values), None  # a run of model numbers is a range
        if values is not None:
            return self.any([term == v for v in values])
        parts = []
        if lo is not None:
            parts.append(term >= lo)
        if hi is not None:
            parts.append(term <= hi)
        return self.all(parts)


@dataclass
class Encoding:
    """The Z3 terms of one domain; ``hard`` must hold, ``facts`` are named and retractable."""

    cat: Catalog
    vendor: str
    types: tuple[HostFacts, ...]
    req: Requirements
    universe: list[str]
    models: list[CpuModel]
    ctx: z3.Context = field(default_factory=z3.Context)
    g: dict[str, z3.BoolRef] = field(default_factory=dict)
    sel: list[z3.BoolRef] = field(default_factory=list)
    own_fms: z3.BoolRef | None = None
    fms_terms: dict[str, z3.ArithRef] = field(default_factory=dict)
    hard: list[z3.BoolRef] = field(default_factory=list)
    #: (literal, key) pairs: the key names the fact for explanations
    facts: list[tuple[z3.BoolRef, tuple]] = field(default_factory=list)
    obligations: list[Obligation] = field(default_factory=list)

    def fact(self, key: tuple, term) -> None:
        lit = z3.Bool(f"fact{len(self.facts)}", ctx=self.ctx)
        self.facts.append((lit, key))
        self.hard.append(z3.Implies(lit, term))


def candidate_models(cat: Catalog, vendor: str, req: Requirements) -> list[CpuModel]:
    return [m for m in cat.models if m.vendor == vendor and (req.qemu != "7.2" or m.qemu_7_2)]


def allowed_features(cat: Catalog, req: Requirements) -> frozenset[str]:
    feats = cat.guest_features
    if req.qemu == "7.2":
        feats = frozenset(f for f in feats if cat.features[f].qemu_7_2)
    return feats


def encode(cat: Catalog, vendor: str, types: tuple[HostFacts, ...], req: Requirements,
           wide: bool = False) -> Encoding:
    """Build the Z3 problem of a domain.

    ``wide=False``: variables only for features every host can expose, requirements and
    obligations hard (the optimizer's problem).  ``wide=True``: variables for every feature
    some host has or a requirement names, with each host shortfall, requirement and
    obligation a named fact (the explainer's problem).
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
                extra |= _features_in(ob.expr)
        pool = frozenset.union(*(t.features for t in types)) | extra
        universe = sorted(pool & cat.guest_features)
    else:
        universe = sorted(common & allowed)
    enc = Encoding(cat=cat, vendor=vendor, types=types, req=req, universe=universe,
                   models=candidate_models(cat, vendor, req))
    ctx = enc.ctx
    enc.g = {f: z3.Bool(f, ctx=ctx) for f in universe}
    g = enc.g

    # Dependencies a guest needs (QEMU feature_dependencies, Linux cpuid-deps, safety).
    for f in universe:
        for group in cat.features[f].requires:
            alts = [g[a] for a in group if a in g]
            enc.hard.append(z3.Implies(g[f], z3.Or(alts)) if alts else z3.Not(g[f]))
    if "hypervisor" in g:
        enc.hard.append(g["hypervisor"])

    if wide:
        for f in universe:
            lacking = tuple(i for i, t in enumerate(types) if f not in t.features)
            if lacking:
                enc.fact(("lacks", f, lacking), z3.Not(g[f]))
            if f not in allowed:
                enc.fact(("qemu", f), z3.Not(g[f]))

    def requirement(key, term):
        if wide:
            enc.fact(key, term)
        else:
            enc.hard.append(term)

    false = z3.BoolVal(False, ctx=ctx)
    for f in sorted(req.require):
        requirement(("require", f), g.get(f, false))
    for f in sorted(req.forbid):
        if f in g:
            requirement(("forbid", f), z3.Not(g[f]))
    if req.min_model:
        need = sorted(cat.model(req.min_model).features & cat.guest_features)
        requirement(("min_model", req.min_model), z3.And([g.get(f, false) for f in need]))

    # Model choice: exactly one candidate.
    enc.sel = [z3.Bool(f"model:{m.name}", ctx=ctx) for m in enc.models]
    if enc.sel:
        enc.hard.append(z3.PbEq([(s, 1) for s in enc.sel], 1))
    else:
        enc.hard.append(false)

    # Family/model/stepping: the model's own, or one of the domain's hosts' (QEMU's
    # family=/model=/stepping= run on any host of the vendor).
    fam, mod, step = (z3.Int(n, ctx=ctx) for n in ("family", "model", "stepping"))
    enc.fms_terms = {"family": fam, "model": mod, "stepping": step}
    enc.own_fms = z3.Bool("own_fms", ctx=ctx)
    by_fms: dict[tuple[int, int, int], list[z3.BoolRef]] = {}
    for s, m in zip(enc.sel, enc.models, strict=True):
        by_fms.setdefault(m.fms, []).append(s)  # versions of a model share its identity
    for (f, m, st), sels in sorted(by_fms.items()):
        enc.hard.append(z3.Implies(fast_and([enc.own_fms, fast_or(sels, ctx)], ctx),
                                   fast_and([fam == f, mod == m, step == st], ctx)))
    host_fms = sorted({t.fms for t in types})
    enc.hard.append(z3.Or(enc.own_fms, *[
        z3.And(fam == f, mod == m, step == s) for f, m, s in host_fms]))

    # Safety obligations (rule 2, rule 3, hints), read by the same interpreter as the checker.
    enc.obligations = obs
    ops = Z3Ops(enc)
    memos: dict[str, dict] = {}
    for ob in enc.obligations:
        term = load_rules(ob.kernel).walk(ob.expr, ops, memos.setdefault(ob.kernel, {}))
        if wide:
            enc.fact(("obligation", ob), term)
        else:
            enc.hard.append(term)
    return enc


def _features_in(expr) -> set[str]:
    if isinstance(expr, dict):
        (op, arg), = expr.items()
        if op == "feature":
            return {arg}
        if op in ("all", "any"):
            return set().union(*(_features_in(e) for e in arg))
        if op == "not":
            return _features_in(arg)
    return set()


def objectives(enc: Encoding) -> list[tuple[str, z3.ArithRef]]:
    """DESIGN.md section 3, in priority order: (direction, term)."""
    ctx = enc.ctx
    one, zero = z3.IntVal(1, ctx=ctx), z3.IntVal(0, ctx=ctx)
    g = enc.g
    perf = [z3.If(v, one, zero) for f, v in g.items() if f not in HINT_BITS]
    hints = [z3.If(v, one, zero) for f, v in g.items() if f in HINT_BITS]
    flags = []
    for f, v in g.items():
        having = [s for s, m in zip(enc.sel, enc.models, strict=True) if f in m.features]
        if len(having) == len(enc.models):
            flags.append(z3.If(v, zero, one))  # every candidate model has f: -f unless shown
        elif not having:
            flags.append(z3.If(v, one, zero))  # no candidate model has f: +f when shown
        else:
            flags.append(z3.If(v != fast_or(having, ctx), one, zero))
    universe = set(g)
    for s, m in zip(enc.sel, enc.models, strict=True):
        const = len(m.features - universe)
        if const:
            flags.append(z3.If(s, z3.IntVal(const, ctx=ctx), zero))
    rank = [z3.If(s, z3.IntVal(m.index, ctx=ctx), zero) for s, m in zip(enc.sel, enc.models, strict=True)]
    return [
        ("max", z3.Sum(perf) if perf else zero),
        ("min", z3.Sum(hints) if hints else zero),
        ("min", z3.Sum(flags) if flags else zero),
        ("max", z3.If(enc.own_fms, one, zero)),
        ("max", z3.Sum(rank) if rank else zero),
    ]
