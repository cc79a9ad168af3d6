"""The rule-expression language: one typed AST, parsed once, and one fold over it.

Every CPU fact that is a condition (Linux's bug rules and their tables, the mechanisms a
mitigation needs, the safety obligations built from them) is written in the data files as
JSON (``{"all": [{"feature": "rtm"}, {"not": {"bug": "mds"}}]}``) and parsed here into
frozen nodes.  Everything that reads a condition is an :class:`Algebra` handed to
:func:`fold`: the concrete interpreter (Python booleans on one CPU), the partial evaluator
(identity decided, feature bits left symbolic: the residual is again an :class:`Expr`),
the Z3 translation of a residual, the feature set a condition reads, and its explanation
in words.  So a new atom is one node class, one parse rule and one method per algebra.

JSON forms (``parse``)::

    true / false                           Const
    {"all": [e...]}, {"any": [e...]}       All, Any
    {"not": e}                             Not
    {"feature": "mds-no"}                  Feature   (a CPUID or ARCH_CAPABILITIES bit)
    {"whitelist": F}, {"blacklist": F}     InTable   (Linux's cpu_vuln_* tables, flag F)
    {"vendor": ["AuthenticAMD", ...]}      Vendor
    {"hypervisor": true|false}             Hypervisor (or its negation)
    {"cpu": {"family": [..], "model": n, "stepping": [lo, hi], "model_min": n, ...}}
                                           CpuMatch (all of its FieldIn tests)
    {"bug": "mds"}                         Ref("bug", ...): another rule of the same table
    {"action": "verw_user"}                Ref("action", ...): what the guest kernel does (actions table)
    {"smt": true}                          Fact("smt"): the guest's vCPU topology has SMT threads
    {"msr_ok": M}, {"env": E}              Fact: facts of the machine the guest boots on
    {"host_feature": F}, {"host_bug": B}, {"host_vendor": [...]}, {"host_cpu": {...}},
    {"kvm": [...]}, {"tsx": "on"}, {"host_smt": true}, {"host_ucode": X}
                                           Fact: a host's own facts (protection tables)
    {"host_def": N}                        Ref("host_def", ...): a named host class
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any as AnyType
from typing import Generic, TypeVar

T = TypeVar("T")


class Expr:
    """A node of the rule language; subclasses are frozen and hashable (residuals are
    compared and used as dictionary keys)."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Const(Expr):
    value: bool


TRUE = Const(True)
FALSE = Const(False)


@dataclass(frozen=True, slots=True)
class All(Expr):
    items: tuple[Expr, ...]
    _hash: int = field(default=0, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash(("All", self.items)))

    def __hash__(self) -> int:  # composite nodes are hashed often (memo keys): once
        return self._hash

    def __reduce__(self):  # the hash is this process's (string hashes are salted): made anew
        return All, (self.items,)


@dataclass(frozen=True, slots=True)
class Any(Expr):
    items: tuple[Expr, ...]
    _hash: int = field(default=0, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash(("Any", self.items)))

    def __hash__(self) -> int:  # composite nodes are hashed often (memo keys): once
        return self._hash

    def __reduce__(self):  # the hash is this process's (string hashes are salted): made anew
        return Any, (self.items,)


@dataclass(frozen=True, slots=True)
class Not(Expr):
    item: Expr
    _hash: int = field(default=0, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash(("Not", self.item)))

    def __hash__(self) -> int:  # composite nodes are hashed often (memo keys): once
        return self._hash

    def __reduce__(self):  # the hash is this process's (string hashes are salted): made anew
        return Not, (self.item,)


@dataclass(frozen=True, slots=True)
class Feature(Expr):
    name: str
    #: an IA32_ARCH_CAPABILITIES bit: Linux reads it only when CPUID shows the MSR exists
    arch_cap: bool = False
    _hash: int = field(default=0, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash(("Feature", self.name, self.arch_cap)))

    def __hash__(self) -> int:  # the commonest key of every memo: hashed once
        return self._hash

    def __reduce__(self):  # the hash is this process's (string hashes are salted): made anew
        return Feature, (self.name, self.arch_cap)


@dataclass(frozen=True, slots=True)
class InTable(Expr):
    table: str  # "whitelist" | "blacklist"
    flag: str


@dataclass(frozen=True, slots=True)
class Vendor(Expr):
    vendors: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Hypervisor(Expr):
    """The CPU runs as a guest (CPUID's hypervisor bit, which Linux reads)."""


@dataclass(frozen=True, slots=True)
class FieldIn(Expr):
    """family, model or stepping in [lo, hi] (either open) or in ``values``."""

    field: str
    lo: int | None = None
    hi: int | None = None
    values: tuple[int, ...] | None = None


@dataclass(frozen=True, slots=True)
class CpuMatch(Expr):
    """A family/model/stepping test of the data: all of ``tests``; ``spec`` is the data's
    own wording, which explanations quote."""

    tests: tuple[FieldIn, ...]
    spec: tuple[tuple[str, AnyType], ...]


@dataclass(frozen=True, slots=True)
class Fact(Expr):
    """An atom whose meaning the algebra supplies: ``kind`` "smt" (the guest topology),
    "msr_ok"/"env" (the boot machine), "host_feature", "host_bug", "host_vendor",
    "host_cpu" (``arg`` a CpuMatch), "kvm", "tsx", "host_smt", "host_ucode" (a host)."""

    kind: str
    arg: AnyType = True


@dataclass(frozen=True, slots=True)
class Ref(Expr):
    """Another named condition of the same rule set (``bug``), resolved by the algebra."""

    kind: str
    name: str


class Algebra(Generic[T]):
    """What one reading of the language does at each node.  Children arrive folded."""

    def const(self, node: Const) -> T: raise NotImplementedError
    def all(self, node: All, items: list[T]) -> T: raise NotImplementedError
    def any(self, node: Any, items: list[T]) -> T: raise NotImplementedError
    def not_(self, node: Not, item: T) -> T: raise NotImplementedError
    def feature(self, node: Feature) -> T: raise NotImplementedError
    def table(self, node: InTable) -> T: raise NotImplementedError
    def vendor(self, node: Vendor) -> T: raise NotImplementedError
    def hypervisor(self, node: Hypervisor) -> T: raise NotImplementedError
    def field_in(self, node: FieldIn) -> T: raise NotImplementedError
    def ref(self, node: Ref, memo: dict) -> T: raise NotImplementedError

    def fact(self, node: Fact) -> T: raise NotImplementedError(f"{type(self).__name__} cannot read {node.kind}")

    def cpu_match(self, node: CpuMatch) -> T:
        return self.all(node, [self.field_in(t) for t in node.tests])  # type: ignore[arg-type]


def fold(expr: Expr, alg: Algebra[T], memo: dict | None = None) -> T:
    """Evaluate ``expr`` bottom-up with ``alg``; ``memo`` is shared by references."""
    if memo is None:
        memo = {}
    return _fold(expr, alg, memo)


def _fold(e: Expr, alg: Algebra, memo: dict):
    t = type(e)
    if t is Feature:
        return alg.feature(e)
    if t is All:
        return alg.all(e, [_fold(i, alg, memo) for i in e.items])
    if t is Any:
        return alg.any(e, [_fold(i, alg, memo) for i in e.items])
    if t is Not:
        return alg.not_(e, _fold(e.item, alg, memo))
    if t is Ref:
        return alg.ref(e, memo)
    if t is InTable:
        return alg.table(e)
    if t is Const:
        return alg.const(e)
    if t is Vendor:
        return alg.vendor(e)
    if t is Hypervisor:
        return alg.hypervisor(e)
    if t is FieldIn:
        return alg.field_in(e)
    if t is CpuMatch:
        return alg.cpu_match(e)
    if t is Fact:
        return alg.fact(e)
    raise TypeError(f"not a rule expression: {e!r}")


def fold_shared(expr: Expr, alg: Algebra[T], done: dict) -> T:
    """:func:`fold` that builds each distinct sub-expression once: ``done`` maps nodes to
    their results and may be shared between calls (one domain's obligations share most of
    their residual sub-terms, and each Z3 term should be built once).  References are not
    followed (residuals have none)."""
    hit = done.get(expr)
    if hit is not None:
        return hit
    t = type(expr)
    if t is All:
        out = alg.all(expr, [fold_shared(i, alg, done) for i in expr.items])
    elif t is Any:
        out = alg.any(expr, [fold_shared(i, alg, done) for i in expr.items])
    elif t is Not:
        out = alg.not_(expr, fold_shared(expr.item, alg, done))
    else:
        out = _fold(expr, alg, {})
    done[expr] = out
    return out


# -- parsing ------------------------------------------------------------------------------

def parse(data: AnyType, is_arch_cap=None) -> Expr:
    """The JSON form of the data files as an :class:`Expr`.  ``is_arch_cap(name)`` tells
    which feature names are ARCH_CAPABILITIES bits (decided once, here)."""
    if data is True or data is False:
        return TRUE if data else FALSE
    if not isinstance(data, dict) or len(data) != 1:
        raise ValueError(f"bad rule expression {data!r}")
    (op, arg), = data.items()
    if op == "all":
        return All(tuple(parse(e, is_arch_cap) for e in arg))
    if op == "any":
        return Any(tuple(parse(e, is_arch_cap) for e in arg))
    if op == "not":
        return Not(parse(arg, is_arch_cap))
    if op == "feature":
        return Feature(arg, bool(is_arch_cap and is_arch_cap(arg)))
    if op in ("whitelist", "blacklist"):
        return InTable(op, arg)
    if op == "vendor":
        return Vendor(tuple(arg))
    if op == "hypervisor":
        return Hypervisor() if arg else Not(Hypervisor())
    if op == "cpu":
        return CpuMatch(tuple(_cpu_tests(arg)), tuple((k, tuple(v) if isinstance(v, list) else v)
                                                       for k, v in arg.items()))
    if op in ("bug", "action", "host_def"):
        return Ref(op, arg)
    if op in ("smt", "smt_active", "host_smt"):
        # smt_active: sibling vCPUs online; a guest's vCPUs are all online, so it is smt.
        node = Fact("host_smt" if op == "host_smt" else "smt")
        return node if arg else Not(node)
    if op in ("msr_ok", "env", "host_feature", "host_bug", "tsx", "host_ucode"):
        return Fact(op, arg)
    if op in ("host_vendor", "kvm"):
        return Fact(op, tuple(arg))
    if op == "host_cpu":
        return Fact(op, parse({"cpu": arg}))
    raise ValueError(f"unknown rule operator '{op}'")


def _cpu_tests(arg: dict) -> list[Expr]:
    parts: list[Expr] = []
    for fld in ("family", "model", "stepping"):
        if fld in arg:
            v = arg[fld]
            if isinstance(v, list) and fld == "stepping" and len(v) == 2:
                parts.append(FieldIn(fld, v[0], v[1]))
            else:
                parts.append(FieldIn(fld, values=tuple(v) if isinstance(v, list) else (v,)))
        lo, hi = arg.get(f"{fld}_min"), arg.get(f"{fld}_max")
        if lo is not None or hi is not None:
            parts.append(FieldIn(fld, lo, hi))
    return parts


def table_entry(entry: dict) -> Expr:
    """One row of a cpu_vuln whitelist/blacklist as the identity test it stands for."""
    parts: list[Expr] = [Vendor((entry["vendor"],))] if entry.get("vendor") else []
    if entry.get("family") is not None:
        parts.append(FieldIn("family", entry["family"], entry["family"]))
    if entry.get("families_excluded"):
        # x86_match_cpu() takes the first match: families an earlier entry catches never
        # reach this any-family entry.
        parts.append(Not(FieldIn("family", values=tuple(entry["families_excluded"]))))
    if entry.get("model") is not None:
        parts.append(FieldIn("model", entry["model"], entry["model"]))
    steps = entry.get("steppings")
    if isinstance(steps, dict):
        parts.append(FieldIn("stepping", values=tuple(steps["list"])))
    elif steps is not None:
        parts.append(FieldIn("stepping", steps[0], steps[1]))
    return All(tuple(parts))


# -- smart constructors (used by the partial evaluator and by rule builders) ---------------

def conj(items) -> Expr:
    return _flat(All, items)


def disj(items) -> Expr:
    return _flat(Any, items)


def negate(item: Expr) -> Expr:
    if type(item) is Const:
        return FALSE if item.value else TRUE
    if type(item) is Not:
        return item.item
    return Not(item)


def _flat(kind, items) -> Expr:
    """And/or with constants folded, nested nodes of the same kind flattened, duplicates
    dropped (order kept)."""
    absorbing = kind is Any  # True absorbs an "or", False an "and"
    out: list[Expr] = []
    for item in items:
        if type(item) is Const:
            if item.value is absorbing:
                return TRUE if absorbing else FALSE
            continue
        for sub in (item.items if type(item) is kind else (item,)):
            if sub not in out:
                out.append(sub)
    if not out:
        return FALSE if absorbing else TRUE
    return out[0] if len(out) == 1 else kind(tuple(out))


def fold_constants(expr: Expr) -> Expr:
    """Constants folded out of an expression built from data: an and/or loses neutral
    members and collapses to its absorbing constant or its one member; nothing else
    changes shape (explanations quote the structure)."""
    t = type(expr)
    if t is All or t is Any:
        absorbing = t is Any
        items = [fold_constants(e) for e in expr.items]
        if any(type(e) is Const and e.value is absorbing for e in items):
            return TRUE if absorbing else FALSE
        items = [e for e in items if type(e) is not Const]
        if not items:
            return FALSE if absorbing else TRUE
        return items[0] if len(items) == 1 else t(tuple(items))
    if t is Not:
        inner = fold_constants(expr.item)
        return negate(inner) if type(inner) is Const else Not(inner)
    return expr


# -- readings every caller shares ---------------------------------------------------------

class Features(Algebra[frozenset]):
    """The feature names a condition reads (references not followed)."""

    empty: frozenset = frozenset()

    def const(self, node): return self.empty
    def all(self, node, items): return frozenset().union(*items)
    def any(self, node, items): return frozenset().union(*items)
    def not_(self, node, item): return item
    def feature(self, node): return frozenset((node.name,))
    def table(self, node): return self.empty
    def vendor(self, node): return self.empty
    def hypervisor(self, node): return self.empty
    def field_in(self, node): return self.empty
    def ref(self, node, memo): return self.empty
    def cpu_match(self, node): return self.empty
    def fact(self, node): return self.empty


@lru_cache(maxsize=1 << 16)
def features_of(expr: Expr) -> frozenset[str]:
    """The feature names ``expr`` reads (remembered: residual terms recur in every domain)."""
    return fold(expr, Features())


def holds_on(e: Expr, true) -> bool:
    """A residual (feature atoms, constants, and/or/not only) with the features in ``true``
    True and every other False: how the precheck tries a witness and the ideal-guest
    shortcut decides a rule term, without building an algebra."""
    t = type(e)
    if t is Feature:
        return e.name in true
    if t is Const:
        return e.value
    if t is Not:
        return not holds_on(e.item, true)
    if t is All:
        return all(holds_on(i, true) for i in e.items)
    if t is Any:
        return any(holds_on(i, true) for i in e.items)
    raise TypeError(f"not a residual: {e!r}")
