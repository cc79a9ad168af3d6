"""An independent oracle for cpusolve's answers: plain Python, no Z3, no cpusolve.backend.

It reads the same *data* cpusolve does (the catalog, the Linux rule tables, the safety
obligations and the host facts a pool file yields) and re-derives from the spec
(DESIGN.md sections 2 and 3) what the best safe guest of a migration domain is:

* the guest's visible features are a subset of what every host of the domain exposes,
  restricted to guest-visible catalog features (and to QEMU 7.2's names when asked), closed
  under the catalog's dependencies, minus what the requirements forbid;
* its family/model/stepping is a usable candidate model's own or one of the domain's hosts';
* every safety obligation holds on the concrete CPU a Linux guest sees
  (``RuleTable.affected`` for "the guest sees itself affected", the concrete interpreter for
  mechanisms and hints).

Search.  Every feature atom of the rule tables has one polarity: a feature that only ever
makes a guest *more* affected (``rsba``, ``rtm``...) or that is a mechanism is always worth
showing; a feature that can make a guest *less* affected (``mds-no``, ``srso-no``...) is a
choice.  For every f/m/s candidate and with/without ``arch-capabilities`` (which gates both
kinds of ARCH_CAPABILITIES bits), the oracle starts from "show everything" and, while some
obligation fails, branches over which of that obligation's harmful features to drop (any
safe subset must drop at least one of them, because the obligation only reads those atoms
and only gets worse with fewer helpful features), with a cardinality bound.  That is an
exact maximum-cardinality search over the down-closed family of safe choices.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

import networkx as nx

from cpusolve.encodings import targets
from cpusolve.encodings.catalog import HINT_BITS, catalog
from cpusolve.encodings.rules import CpuView, load_rules
from cpusolve.encodings.safety import obligations

ARCH = "arch-capabilities"


# -- rule-table reading ----------------------------------------------------------------------

def _rule(table, name: str) -> dict:
    data = table.data
    return data["bugs"].get(name) or data.get("internal_bugs", {})[name]


@cache
def _atoms(kernel: str, key: str) -> tuple[frozenset[str], frozenset[str]]:
    """(positive, negative) feature atoms of bug ``key`` (nested bugs followed)."""
    table = load_rules(kernel)
    pos: set[str] = set()
    neg: set[str] = set()

    def walk(expr, polarity: int, seen: frozenset[str]) -> None:
        if expr is True or expr is False:
            return
        (op, arg), = expr.items()
        if op in ("all", "any"):
            for e in arg:
                walk(e, polarity, seen)
        elif op == "not":
            walk(arg, -polarity, seen)
        elif op == "feature":
            (pos if polarity > 0 else neg).add(arg)
        elif op == "bug" and arg not in seen:
            walk(_rule(table, arg)["affected"], polarity, seen | {arg})

    walk({"bug": key}, 1, frozenset())
    return frozenset(pos), frozenset(neg)


def expr_atoms(kernel: str, expr) -> tuple[frozenset[str], frozenset[str]]:
    """(positive, negative) feature atoms of an obligation expression."""
    pos: set[str] = set()
    neg: set[str] = set()

    def walk(e, polarity: int) -> None:
        # The obligation's parsed form (cpusolve.encodings.expr nodes), read by class name.
        kind = type(e).__name__
        if kind in ("All", "Any"):
            for x in e.items:
                walk(x, polarity)
        elif kind == "Not":
            walk(e.item, -polarity)
        elif kind == "Feature":
            (pos if polarity > 0 else neg).add(e.name)
        elif kind == "Ref":
            p, n = _atoms(kernel, e.name)
            (pos if polarity > 0 else neg).update(p)
            (neg if polarity > 0 else pos).update(n)

    walk(expr, 1)
    cat = catalog()

    # Linux reads an ARCH_CAPABILITIES bit only when CPUID says the MSR exists, so
    # arch-capabilities has the polarity of every ARCH_CAPABILITIES atom.
    def arch_cap(f: str) -> bool:
        feat = cat.features.get(f)
        return f.startswith("msr10a:") or (feat is not None and feat.is_arch_cap)

    if any(arch_cap(f) for f in pos):
        pos.add(ARCH)
    if any(arch_cap(f) for f in neg):
        neg.add(ARCH)
    return frozenset(pos), frozenset(neg)


def holds(ob, view: CpuView, affected_cache: dict) -> bool:
    """One obligation on a concrete guest CPU."""
    if ob.kind == "truthful":
        if ob.kernel not in affected_cache:
            affected_cache[ob.kernel] = load_rules(ob.kernel).affected(view)
        return affected_cache[ob.kernel][ob.bug]
    return bool(load_rules(ob.kernel).holds(ob.expr, view))


# -- feature sets ----------------------------------------------------------------------------

def allowed(req) -> frozenset[str]:
    cat = catalog()
    return cat.guest_features & targets.qemu(req.qemu).features


def closed(features) -> frozenset[str]:
    """The largest subset of ``features`` whose every dependency group is met inside it."""
    cat = catalog()
    cur = set(features)
    changed = True
    while changed:
        changed = False
        for f in sorted(cur):
            for group in cat.features[f].requires:
                if not any(g in cur for g in group):
                    cur.discard(f)
                    changed = True
                    break
    return frozenset(cur)


def usable_models(vendor: str, req) -> list:
    """Catalog models a guest may name: the vendor's, known to the QEMU asked for, and whose
    every feature a ``+``/``-`` flag may carry (so any visible set is reachable by flags)."""
    ok = allowed(req)
    return [m for m in catalog().models
            if m.vendor == vendor and m.name in targets.qemu(req.qemu).models and m.features <= ok]


def score(features) -> int:
    """Objective 1: visible guest features, hint bits excluded."""
    return len(frozenset(features) & catalog().guest_features - HINT_BITS)


# -- the oracle ------------------------------------------------------------------------------

@dataclass
class Best:
    score: int
    features: frozenset[str]
    fms: tuple[int, int, int]
    explored: int = 0
    notes: list[str] = field(default_factory=list)


def best_guest(types, req) -> Best | None:
    """The best safe guest of a domain with these host types, or None if there is none."""
    vendors = {t.vendor for t in types}
    if len(vendors) != 1:
        return None
    vendor = next(iter(vendors))
    if req.vendor and req.vendor != vendor:
        return None
    models = usable_models(vendor, req)
    if not models:
        return None
    cat = catalog()
    common = frozenset.intersection(*(frozenset(t.features) for t in types))
    base = closed((common & allowed(req)) - req.forbid)
    need = set(req.require)
    if req.min_model:
        need |= cat.model(req.min_model).features & cat.guest_features
    if not need <= base:
        return None
    obs = obligations(vendor, types, req.kernels, req.policy, req.waive)
    atoms = [expr_atoms(o.kernel, o.expr) for o in obs]
    harmful = frozenset().union(*(n for _, n in atoms)) if atoms else frozenset()
    fms_candidates = sorted({m.fms for m in models} | {t.fms for t in types})
    best: Best | None = None
    explored = 0

    def feasible(g: frozenset[str], fms) -> int | None:
        """Index of the first failing obligation, -1 if all hold, None if requirements fail."""
        if not need <= g:
            return None
        view = CpuView(vendor=vendor, family=fms[0], model=fms[1], stepping=fms[2],
                       features=g, hypervisor=True)
        cache_: dict = {}
        for i, ob in enumerate(obs):
            if not holds(ob, view, cache_):
                return i
        return -1

    arch_options = [True, False] if ARCH in base else [False]
    for arch_on in arch_options:
        pool = base if arch_on else closed(base - {ARCH})
        choice = (pool & harmful) - {ARCH}
        fixed = pool - choice
        for fms in fms_candidates:
            seen: set[frozenset[str]] = set()
            stack = [choice]
            while stack:
                chosen = stack.pop()
                if chosen in seen:
                    continue
                seen.add(chosen)
                g = closed(fixed | chosen)
                s = score(g)
                if best is not None and s <= best.score:
                    continue
                explored += 1
                fail = feasible(g, fms)
                if fail is None:
                    continue
                if fail < 0:
                    best = Best(s, g, fms)
                    continue
                drop = sorted(chosen & atoms[fail][1])
                for x in drop:
                    stack.append(chosen - {x})
    if best is not None:
        best.explored = explored
    return best


def check_guest(types, req, model_name: str, visible: frozenset[str], fms) -> list[str]:
    """Every way a (model, visible features, shown f/m/s) fails the spec for these hosts."""
    cat = catalog()
    out: list[str] = []
    model = cat.model(model_name)
    ok = allowed(req)
    vendor = model.vendor
    for f in sorted((visible - model.features) | (model.features - visible)):
        if f not in ok:
            out.append(f"flag {f} cannot be carried by a guest model")
    if model.name not in targets.qemu(req.qemu).models:
        out.append(f"{model.name} unknown to {targets.qemu(req.qemu).label}")
    for i, t in enumerate(types):
        if t.vendor != vendor:
            out.append(f"host type {i} is {t.vendor}")
        if visible - t.features:
            out.append(f"host type {i} cannot expose {sorted(visible - t.features)}")
    if closed(visible) != visible:
        out.append(f"dependencies broken: {sorted(visible - closed(visible))}")
    if fms != model.fms and fms not in {t.fms for t in types}:
        out.append(f"f/m/s {fms} is neither the model's nor a host's")
    if req.require - visible:
        out.append(f"required {sorted(req.require - visible)} missing")
    if req.forbid & visible:
        out.append(f"forbidden {sorted(req.forbid & visible)} shown")
    if req.min_model:
        short = (cat.model(req.min_model).features & cat.guest_features) - visible
        if short:
            out.append(f"below {req.min_model}: {sorted(short)}")
    if req.vendor and req.vendor != vendor:
        out.append(f"vendor {vendor} but {req.vendor} required")
    view = CpuView(vendor=vendor, family=fms[0], model=fms[1], stepping=fms[2],
                   features=frozenset(visible), hypervisor=True)
    cache_: dict = {}
    for ob in obligations(vendor, types, req.kernels, req.policy, req.waive):
        if not holds(ob, view, cache_):
            out.append(f"unsafe: {ob.kind} {ob.bug} ({ob.kernel})")
    return out


# -- domains ---------------------------------------------------------------------------------

def expected_domains(data: dict) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    """(hosts, starts) of every migration domain of a pool dict, from the README's rules."""
    names = list(data["hosts"])
    mig = data.get("migration")
    if mig is None:
        return [(tuple(sorted(names)), tuple(sorted(names)))]
    directed = mig.get("directed", False)
    g = nx.DiGraph() if directed else nx.Graph()
    g.add_nodes_from(names)
    for a, b in mig.get("edges", []):
        if a != b:
            g.add_edge(a, b)
    for group in mig.get("groups", []):
        for a in group:
            for b in group:
                if a != b:
                    g.add_edge(a, b)
                    if directed:
                        g.add_edge(b, a)
    out: dict[frozenset[str], list[str]] = {}
    if not directed:
        for comp in nx.connected_components(g):
            out[frozenset(comp)] = sorted(comp)
    else:
        for h in names:
            out.setdefault(frozenset(nx.descendants(g, h) | {h}), []).append(h)
    return sorted((tuple(sorted(k)), tuple(sorted(v))) for k, v in out.items())
