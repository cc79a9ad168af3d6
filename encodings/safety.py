"""What a guest CPU must show so that its kernel mitigates every bug of every host it may reach.

The obligations are expressions in the rule-table grammar over the *guest* CPU, so the
optimizer (partial evaluation per identity, then Z3) and the checker (concrete interpreter)
read the same facts:

* rule 2, ``truthful``: for every host bug B the guest kernel must conclude it is affected
  by B (for every guest kernel version we model);
* rule 3, ``mechanism`` (policy strict): the guest gets the CPU mechanism B's mitigation
  needs (``spec-ctrl``, ``ssbd``, ``md-clear``...);
* ``hint``: where every host can set RSBA and one suffers it, the guest sees RSBA (Xen's
  guest policy: a guest must see RSBA whenever a server it may run on suffers it).
"""

from __future__ import annotations

from dataclasses import dataclass

from cpusolve.encodings import expr as ex
from cpusolve.encodings.expr import Expr
from cpusolve.encodings.rules import load_rules, parse


@dataclass(frozen=True)
class Obligation:
    kind: str  # "truthful" | "mechanism" | "hint"
    bug: str | None
    kernel: str  # rule table used to read ``expr``
    expr: Expr  # rule expression over the guest CPU that must hold
    #: indexes of the domain's host types that cause this obligation
    causes: tuple[int, ...]

    def holds(self, cpu) -> bool:
        """Whether a concrete guest CPU (a rules.CpuView) meets this obligation."""
        return load_rules(self.kernel).holds(self.expr, cpu)

    def describe(self) -> str:
        if self.kind == "truthful":
            return f"a Linux {self.kernel} guest must see itself affected by {self.bug}"
        if self.kind == "mechanism":
            return f"the guest needs {mechanism_text(self.expr)} to mitigate {self.bug}"
        return "the guest must see rsba (a host suffers RSBA and every host can say so)"


def mechanism_text(expr: Expr) -> str:
    """Readable form of a mechanism expression: "fb-clear or md-clear + flush-l1d"."""
    t = type(expr)
    if t is ex.Const:
        return "nothing" if expr.value else "a mechanism no feature provides"
    if t is ex.Feature:
        return expr.name
    if t is ex.Not:
        return f"no {mechanism_text(expr.item)}"
    if t is ex.CpuMatch:  # an identity test in an override's condition
        return " ".join(f"{k} {list(v) if isinstance(v, tuple) else v}" for k, v in expr.spec)
    if t not in (ex.All, ex.Any):
        return repr(expr)
    items = expr.items
    if t is ex.Any and _is_case(items):
        # An override chain from the rule table: [cond and alt] or [not cond and rest].
        (cond, alt), (_, rest) = items[0].items, items[1].items
        return f"{mechanism_text(alt)} (with {mechanism_text(cond)} shown), else {mechanism_text(rest)}"
    parts = [mechanism_text(e) for e in items]
    if t is ex.All:
        # A case of an override chain: "(if mds-no shown) fb-clear" reads as its mechanism.
        feats = [p for p, e in zip(parts, items, strict=True) if _is_mech(e)]
        return " + ".join(feats) if feats else " + ".join(parts)
    return " or ".join(dict.fromkeys(parts))


def mechanism_features(expr: Expr) -> frozenset[str]:
    """The features a mechanism expression names as mechanisms (not its conditions: in
    "fb-clear (with mds-no shown), else md-clear + flush-l1d", not mds-no)."""
    t = type(expr)
    if t is ex.Feature:
        return frozenset((expr.name,))
    if t is ex.Any and _is_case(expr.items):
        (_, alt), (_, rest) = expr.items[0].items, expr.items[1].items
        return mechanism_features(alt) | mechanism_features(rest)
    if t is ex.All:
        mechs = [e for e in expr.items if _is_mech(e)]
        return frozenset().union(*(mechanism_features(e) for e in (mechs or expr.items)))
    if t is ex.Any:
        return frozenset().union(*(mechanism_features(e) for e in expr.items))
    return frozenset()


def _is_case(items) -> bool:
    return (len(items) == 2 and all(type(e) is ex.All and len(e.items) == 2 for e in items)
            and items[1].items[0] == ex.Not(items[0].items[0]))


def _is_mech(expr: Expr) -> bool:
    t = type(expr)
    return t is ex.Feature or (t in (ex.All, ex.Any) and all(_is_mech(e) for e in expr.items))


def obligations(vendor: str, types, kernels, policy: str, waive) -> list[Obligation]:
    """Every obligation a guest of this domain has, in a stable order."""
    out: list[Obligation] = []
    bugs: dict[str, list[int]] = {}
    for i, facts in enumerate(types):
        for bug in facts.bugs:
            bugs.setdefault(bug, []).append(i)
    for bug in sorted(bugs):
        if bug in waive:
            continue
        causes = tuple(bugs[bug])
        for kernel in kernels:
            table = load_rules(kernel)
            if bug not in table.bug_rules or table.scope(bug) != "guest":
                continue
            out.append(Obligation("truthful", bug, kernel, ex.Ref("bug", bug), causes))
        if policy == "strict":
            for kernel in kernels:
                table = load_rules(kernel)
                if bug in table.bug_rules:
                    expr = table.mechanism_expr(bug, vendor)
                    if expr is not None and not any(o.kind == "mechanism" and o.bug == bug and o.expr == expr
                                                    for o in out):
                        out.append(Obligation("mechanism", bug, kernel, expr, causes))
    suffer = tuple(i for i, f in enumerate(types) if "rsba" in f.features)
    if suffer and len(suffer) == len(types):
        out.append(Obligation("hint", None, kernels[-1], parse({"feature": "rsba"}), suffer))
    return out
