"""The problem's constraint language: rule expressions plus the choices a guest CPU makes.

A problem's formulas are :mod:`cpusolve.encodings.expr` nodes (``Feature`` is a guest
feature variable, ``All``/``Any``/``Not``/``Const`` as usual; residual rule terms plug in
unchanged) plus the nodes here: selectors for the choices that are not features, and the
few connectives the encoding states directly.  No solver is imported: a backend turns them
into its own terms.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from cpusolve.encodings.expr import Expr


@dataclass(frozen=True, slots=True)
class Sel(Expr):
    """A choice that is not a feature bit: ``kind`` "model" (``key`` a model name), "fms"
    (``key`` the family/model/stepping shown) or "own_fms" (the model's own identity is
    shown; ``key`` None)."""

    kind: str
    key: object = None
    _hash: int = field(default=0, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash(("Sel", self.kind, self.key)))

    def __hash__(self) -> int:  # a problem's formulas hash their selectors often: once
        return self._hash

    def __reduce__(self):  # the hash is this process's (string hashes are salted): made anew
        return Sel, (self.kind, self.key)


@dataclass(frozen=True, slots=True)
class Implies(Expr):
    a: Expr
    b: Expr


@dataclass(frozen=True, slots=True)
class Iff(Expr):
    a: Expr
    b: Expr


@dataclass(frozen=True, slots=True)
class ExactlyOne(Expr):
    items: tuple[Expr, ...]


OWN_FMS = Sel("own_fms")
#: Variables that are guest settings outside the CPU model, not features (the topology's
#: SMT, rules.SMT): no host lacks them, no model has them, the "settings" objective prefers
#: them off.
SETTINGS = frozenset({"topology:smt"})


@lru_cache(maxsize=1 << 12)
def model_sel(name: str) -> Sel:
    return Sel("model", name)


@lru_cache(maxsize=1 << 12)
def fms_sel(fms: tuple[int, int, int]) -> Sel:
    return Sel("fms", fms)
