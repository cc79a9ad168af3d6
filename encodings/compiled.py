"""The concrete readings of the rule language as compiled Python functions.

:func:`~cpusolve.encodings.expr.fold` walks an expression node by node, calls its algebra
at each and evaluates every child of an and/or.  The two concrete readings (a guest view
under a Linux rule table, ``rules.Concrete``; a host view under the protection table,
``protection.HostConcrete``) are asked the same few hundred expressions about thousands of
views in a fleet's solve, so each expression is turned once into the source of one Python
function whose and/or short-circuit, and compiled.  The meaning is the fold's: the atoms
read the same fields the algebras read, references resolve through the same memo (keyed
``(kind, name)``, shared with the fold's), an atom the algebra cannot read fails when the
expression is compiled (the fold fails on every evaluation of it).
``tests/test_compiled.py`` compares the two on every expression of the data and every
real host.

A node nested deeper than :data:`MAX_DEPTH` becomes a function of its own, so no source
reaches the parser's nesting limit.
"""

from __future__ import annotations

from collections.abc import Callable

from cpusolve.encodings import expr as ex
from cpusolve.encodings.expr import Expr

#: and/or/not nesting in one function's source before a sub-expression gets its own
MAX_DEPTH = 40

#: distinct expressions kept compiled before a compiler starts afresh
LIMIT = 1 << 16

Compiled = Callable[[object, dict], bool]


class Compiler:
    """Expressions to functions ``f(view, memo) -> bool``; subclasses write the atoms.

    In the generated source ``c`` is the view, ``F`` its feature set, ``m`` the memo of
    references and ``K`` the constants (nodes and tuples) the atoms need."""

    def __init__(self) -> None:
        self._by_id: dict[int, tuple[Expr, Compiled]] = {}
        self._by_value: dict[Expr, Compiled] = {}
        self._definitions: dict[tuple[str, str], Compiled] = {}

    def function(self, e: Expr) -> Compiled:
        """``e`` compiled, once per distinct expression.  Found by identity first (most
        callers pass the same parsed objects again and again), then by value; only the
        first object of a value is kept by identity, so fresh equal objects (a domain's
        obligations) cost a lookup, not memory."""
        hit = self._by_id.get(id(e))
        if hit is not None:
            return hit[1]
        fn = self._by_value.get(e)
        if fn is None:
            if len(self._by_value) > LIMIT:  # a long-lived process: start afresh
                self._by_value.clear()
                self._by_id.clear()
            fn = self._by_value[e] = self._compile(e)
            self._by_id[id(e)] = (e, fn)  # the node is kept, so its id is not reused
        return fn

    def _compile(self, e: Expr) -> Compiled:
        consts: list = []
        body = _Source(self, consts).emit(e, 0)
        namespace = {"K": consts, "R": self.ref, **self.names()}
        source = f"def _rule(c, m):\n    F = c.features\n    return {body}\n"
        exec(compile(source, "<rule expression>", "exec"), namespace)  # noqa: S102 - our own source
        return namespace["_rule"]

    def names(self) -> dict:
        """Names the atoms' source refers to, beside ``K`` and ``R`` (:meth:`ref`)."""
        return {}

    def atom(self, e: Expr, const: Callable[[object], str]) -> str:
        """The source of an atom (not an and/or/not/constant); ``const(x)`` names a constant."""
        raise NotImplementedError

    def definition(self, node: ex.Ref) -> Expr:
        """What a reference stands for."""
        raise NotImplementedError

    def ref(self, key: tuple[str, str], node: ex.Ref, view, memo: dict) -> bool:
        """A reference not yet in ``memo`` (the generated code looks there first, see
        :func:`ref_source`): its definition's verdict, remembered there."""
        fn = self._definitions.get(key)
        if fn is None:
            fn = self._definitions[key] = self.function(self.definition(node))
        hit = memo[key] = fn(view, memo)
        return hit


class _Source:
    def __init__(self, compiler: Compiler, consts: list) -> None:
        self.compiler = compiler
        self.consts = consts

    def const(self, value) -> str:
        self.consts.append(value)
        return f"K[{len(self.consts) - 1}]"

    def emit(self, e: Expr, depth: int) -> str:
        t = type(e)
        if t is ex.Const:
            return "True" if e.value else "False"
        if depth > MAX_DEPTH and t in (ex.All, ex.Any, ex.Not):
            return f"{self.const(self.compiler.function(e))}(c, m)"
        if t is ex.All:
            return "(" + " and ".join(self.emit(i, depth + 1) for i in e.items) + ")" if e.items else "True"
        if t is ex.Any:
            return "(" + " or ".join(self.emit(i, depth + 1) for i in e.items) + ")" if e.items else "False"
        if t is ex.Not:
            return f"(not {self.emit(e.item, depth + 1)})"
        return self.compiler.atom(e, self.const)


def field_test(obj: str, t: ex.FieldIn, const: Callable[[object], str]) -> str:
    """A family/model/stepping test on ``obj`` (a Cpu), as the algebras' ``field_in``."""
    v = f"{obj}.{t.field}"
    if t.values is not None:
        return f"({v} in {const(frozenset(t.values))})"
    parts = [f"{t.lo!r} <= {v}" if t.lo is not None else "", f"{v} <= {t.hi!r}" if t.hi is not None else ""]
    return all_of([p for p in parts if p])


def all_of(tests: list[str]) -> str:
    """Source tests joined by "and" (True when there are none)."""
    return "(" + " and ".join(tests) + ")" if tests else "True"


def ref_source(node: ex.Ref, const: Callable[[object], str]) -> str:
    """A reference: its verdict from the memo, else from the compiler's ``R`` (which
    evaluates the definition and remembers it there)."""
    key = const((node.kind, node.name))
    return f"(v if (v := m.get({key})) is not None else R({key}, {const(node)}, c, m))"
