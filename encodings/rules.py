"""The guest kernel's CPU-bug verdicts, as one rule table with two interpreters.

Linux decides which bugs to mitigate from CPUID vendor, family/model/stepping, feature
bits and IA32_ARCH_CAPABILITIES bits (``cpu_set_bug_bits()`` with ``cpu_vuln_whitelist``
and ``cpu_vuln_blacklist``).  Those facts live in ``data/linux-<version>.json`` as boolean
expressions.  One traversal (:meth:`RuleTable.walk`) evaluates an expression either on a
concrete CPU (python bools, used by the checker and ``cpusolve verdict``) or on a CPU of
known identity whose feature bits stay symbolic (:class:`ResidualOps`, used by the
optimizer, which turns the residual into Z3 terms), so the two can only disagree if the
primitive operations do (``tests/test_rules_interpreters.py`` compares them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Protocol

from cpusolve.errors import InputError

#: sysfs order Linux prints (drivers/base/cpu.c), used to order output.
SYSFS_ORDER = [
    "meltdown", "spectre_v1", "spectre_v2", "spec_store_bypass", "l1tf", "mds",
    "tsx_async_abort", "itlb_multihit", "srbds", "mmio_stale_data", "retbleed",
    "spec_rstack_overflow", "gather_data_sampling", "reg_file_data_sampling",
    "ghostwrite", "old_microcode", "indirect_target_selection", "tsa", "vmscape",
]

#: The kernel versions shipped, newest last; "6.1" is Debian bookworm's 6.1.x.
KERNELS = ("6.1", "6.12")
DEFAULT_KERNEL = "6.12"


@dataclass(frozen=True)
class CpuView:
    """What a kernel sees of its CPU: identity, feature bits, and whether it is a guest."""

    vendor: str
    family: int
    model: int
    stepping: int
    features: frozenset[str]
    hypervisor: bool = True


class Ops(Protocol):
    """The primitive operations an interpreter supplies."""

    def const(self, value: bool) -> Any: ...
    def all(self, items: list) -> Any: ...
    def any(self, items: list) -> Any: ...
    def not_(self, item: Any) -> Any: ...
    def feature(self, name: str) -> Any: ...
    def vendor(self, vendors: list[str]) -> Any: ...
    def hypervisor(self) -> Any: ...
    def field_in(self, field: str, lo: int | None, hi: int | None, values: list[int] | None) -> Any: ...


def is_arch_cap(name: str) -> bool:
    from cpusolve.encodings.catalog import catalog

    if name.startswith("msr10a:"):
        return True
    feat = catalog().features.get(name)
    return feat is not None and feat.is_arch_cap


class RuleTable:
    """One kernel's bug rules."""

    def __init__(self, data: dict) -> None:
        self.data = data
        self.kernel: str = data["kernel"]
        self.source = data.get("source", {})
        self.whitelist: list[dict] = data["whitelist"]
        self.blacklist: list[dict] = data["blacklist"]
        self.bug_rules: dict[str, dict] = data["bugs"]
        self.internal: dict[str, dict] = data.get("internal_bugs", {})
        self._concrete_tables: dict[tuple, bool] = {}
        self._residuals: dict[tuple, Any] = {}
        self._residual_memos: dict[tuple, dict] = {}
        known = [b for b in SYSFS_ORDER if b in self.bug_rules]
        self.bugs: list[str] = known + sorted(b for b in self.bug_rules if b not in SYSFS_ORDER)

    # -- shared traversal --------------------------------------------------------
    def _rule(self, name: str) -> dict:
        rule = self.bug_rules.get(name) or self.internal.get(name)
        if rule is None:
            raise KeyError(f"rule table {self.kernel} has no bug '{name}'")
        return rule

    def _table(self, table: list[dict], flag: str, ops: Ops) -> Any:
        matches = []
        fixed = getattr(ops, "fixed_vendor", None)  # the optimizer's guest vendor is a constant
        for entry in table:
            if flag not in entry["flags"]:
                continue
            if fixed is not None and entry.get("vendor") and entry["vendor"] != fixed:
                continue
            parts = [ops.vendor([entry["vendor"]])] if entry.get("vendor") else []
            if entry.get("family") is not None:
                parts.append(ops.field_in("family", entry["family"], entry["family"], None))
            if entry.get("families_excluded"):
                # x86_match_cpu() takes the first match: families an earlier entry catches
                # never reach this any-family entry.
                parts.append(ops.not_(ops.field_in("family", None, None, list(entry["families_excluded"]))))
            if entry.get("model") is not None:
                parts.append(ops.field_in("model", entry["model"], entry["model"], None))
            steps = entry.get("steppings")
            if isinstance(steps, dict):
                parts.append(ops.field_in("stepping", None, None, steps["list"]))
            elif steps is not None:
                parts.append(ops.field_in("stepping", steps[0], steps[1], None))
            matches.append(ops.all(parts))
        return ops.any(matches)

    def walk(self, expr: Any, ops: Ops, memo: dict) -> Any:
        if expr is True or expr is False:
            return ops.const(expr)
        if not isinstance(expr, dict) or len(expr) != 1:
            raise ValueError(f"bad rule expression {expr!r}")
        (op, arg), = expr.items()
        if op == "all":
            return ops.all([self.walk(e, ops, memo) for e in arg])
        if op == "any":
            return ops.any([self.walk(e, ops, memo) for e in arg])
        if op == "not":
            return ops.not_(self.walk(arg, ops, memo))
        if op == "feature":
            return ops.feature(arg)
        if op in ("whitelist", "blacklist"):
            key = (op, arg)  # one term per table flag, however many rules read it
            if key not in memo:
                table = self.whitelist if op == "whitelist" else self.blacklist
                if isinstance(ops, ConcreteOps):
                    # Concrete CPUs repeat (every host of a kind, every guest answer): remember.
                    cpu = ops.cpu
                    ckey = (op, arg, cpu.vendor, cpu.family, cpu.model, cpu.stepping)
                    if ckey not in self._concrete_tables:
                        self._concrete_tables[ckey] = self._table(table, arg, ops)
                    memo[key] = self._concrete_tables[ckey]
                else:
                    memo[key] = self._table(table, arg, ops)
            return memo[key]
        if op == "vendor":
            return ops.vendor(list(arg))
        if op == "hypervisor":
            value = ops.hypervisor()
            return value if arg else ops.not_(value)
        if op == "cpu":
            parts = []
            for fld in ("family", "model", "stepping"):
                if fld in arg:
                    v = arg[fld]
                    if isinstance(v, list) and fld == "stepping" and len(v) == 2:
                        parts.append(ops.field_in(fld, v[0], v[1], None))
                    else:
                        parts.append(ops.field_in(fld, None, None, list(v) if isinstance(v, list) else [v]))
                lo, hi = arg.get(f"{fld}_min"), arg.get(f"{fld}_max")
                if lo is not None or hi is not None:
                    parts.append(ops.field_in(fld, lo, hi, None))
            return ops.all(parts)
        if op == "bug":
            if arg not in memo:
                memo[arg] = self.walk(self._rule(arg)["affected"], ops, memo)
            return memo[arg]
        raise ValueError(f"unknown rule operator '{op}'")

    def _sysfs_expr(self, bug: str) -> dict:
        rule = self._rule(bug)
        expr: Any = {"bug": bug}
        if rule.get("sysfs_not_affected_if"):
            expr = {"all": [expr, {"not": rule["sysfs_not_affected_if"]}]}
        if rule.get("sysfs_unknown"):
            expr = {"any": [expr, rule["sysfs_unknown"]]}
        return expr

    # -- concrete interpreter ----------------------------------------------------
    def affected(self, cpu: CpuView) -> dict[str, bool]:
        """Bug bit set (the kernel mitigates it), per sysfs bug."""
        ops, memo = ConcreteOps(cpu), {}
        return {b: self.walk({"bug": b}, ops, memo) for b in self.bugs}

    def sysfs_affected(self, cpu: CpuView) -> dict[str, bool]:
        """Whether /sys/devices/system/cpu/vulnerabilities/<bug> says anything but 'Not affected'."""
        ops, memo = ConcreteOps(cpu), {}
        return {b: self.walk(self._sysfs_expr(b), ops, memo) for b in self.bugs}

    def explain(self, cpu: CpuView, bug: str) -> str:
        """Why the kernel decides as it does: the deciding atoms of the rule, in words.

        Where sysfs says something other than the bug bit (an "Unknown" state, or "Not
        affected" despite the bit), that is explained too.
        """
        ops = ConcreteOps(cpu)
        rule = self._rule(bug)
        value, text = _explain(self, rule["affected"], ops, {})
        if value and rule.get("sysfs_not_affected_if"):
            hidden, why = _explain(self, rule["sysfs_not_affected_if"], ops, {})
            if hidden:
                return f"bug bit set but sysfs says Not affected: {why}"
        if not value and rule.get("sysfs_unknown"):
            unknown, why = _explain(self, rule["sysfs_unknown"], ops, {})
            if unknown:
                return f"sysfs reports an unknown state, not mitigated ({why}); bug bit clear: {text}"
        return ("affected: " if value else "not affected: ") + text

    # -- partial evaluator ----------------------------------------------------------
    def residuals(self, expr: Any, vendor: str, identities: list[tuple[int, int, int]]) -> list[Any]:
        """``expr`` on a guest of this vendor and each family/model/stepping: terms over
        feature bits only (see :class:`ResidualOps`), remembered for the life of the table."""
        text = json.dumps(expr, sort_keys=True)
        out = []
        for fms in identities:
            key = (text, vendor, fms)
            term = self._residuals.get(key)
            if term is None:
                memo = self._residual_memos.setdefault((vendor, fms), {})
                term = self._residuals[key] = self.walk(expr, ResidualOps(vendor, fms), memo)
            out.append(term)
        return out

    def scope(self, bug: str) -> str:
        return self._rule(bug).get("scope", "guest")

    def mechanisms(self, bug: str, vendor: str) -> list[list[str]]:
        return self._rule(bug).get("mechanisms", {}).get(vendor, [])

    def mechanism_expr(self, bug: str, vendor: str):
        """What the guest must show to mitigate ``bug``, as an expression; None if nothing.

        ``mechanism_overrides`` are tried in order (the first whose ``if`` holds on the guest
        replaces ``mechanisms``), so the choice itself depends on the guest's visible bits:
        e.g. with mds-no visible, MMIO stale data is only mitigated by fb-clear.
        """
        rule = self._rule(bug)

        def alternatives(mechs: dict):
            alts = mechs.get(vendor, [])
            if not alts or any(not a for a in alts):
                return True  # nothing needed, or no CPU mechanism exists for this vendor
            return {"any": [{"all": [{"feature": f} for f in alt]} for alt in alts]}

        cases = [(o["if"], alternatives(o["mechanisms"])) for o in rule.get("mechanism_overrides", [])]
        expr = alternatives(rule.get("mechanisms", {}))
        for cond, alt in reversed(cases):
            expr = {"any": [{"all": [cond, alt]}, {"all": [{"not": cond}, expr]}]}
        return None if expr is True else _simplify(expr)


def _simplify(expr):
    """Fold literal true/false out of an expression built by the rule table itself."""
    if not isinstance(expr, dict):
        return expr
    (op, arg), = expr.items()
    if op in ("all", "any"):
        items = [_simplify(e) for e in arg]
        absorbing, neutral = (False, True) if op == "all" else (True, False)
        if any(e is absorbing for e in items):
            return absorbing
        items = [e for e in items if e is not neutral]
        if not items:
            return neutral
        return items[0] if len(items) == 1 else {op: items}
    if op == "not":
        inner = _simplify(arg)
        return (not inner) if isinstance(inner, bool) else {"not": inner}
    return expr


class ConcreteOps:
    """Python-bool primitives over one concrete CPU."""

    def __init__(self, cpu: CpuView) -> None:
        self.cpu = cpu

    def const(self, value: bool) -> bool:
        return bool(value)

    def all(self, items: list) -> bool:
        return all(items)

    def any(self, items: list) -> bool:
        return any(items)

    def not_(self, item: bool) -> bool:
        return not item

    def feature(self, name: str) -> bool:
        present = name in self.cpu.features
        if present and is_arch_cap(name):
            # Linux reads IA32_ARCH_CAPABILITIES only when CPUID says the MSR exists.
            return "arch-capabilities" in self.cpu.features
        return present

    def vendor(self, vendors: list[str]) -> bool:
        return self.cpu.vendor in vendors

    def hypervisor(self) -> bool:
        return self.cpu.hypervisor

    def field_in(self, field: str, lo, hi, values) -> bool:
        v = getattr(self.cpu, field)
        if values is not None:
            return v in values
        return (lo is None or v >= lo) and (hi is None or v <= hi)


class ResidualOps(ConcreteOps):
    """Partial evaluation on a guest of known vendor and family/model/stepping.

    Identity tests are decided (as on a concrete CPU, so whitelist/blacklist verdicts share
    the concrete cache); feature tests stay symbolic.  The result is a hashable term
    (``True``/``False``, ``("f", name)``, ``("not", t)``, ``("and", (...))``, ``("or", (...))``)
    that depends only on feature bits, so the optimizer chooses among a domain's few
    candidate identities and never reasons about integers; the same identity recurs in
    every domain, so its residuals are computed once.
    """

    def __init__(self, vendor: str, fms: tuple[int, int, int], hypervisor: bool = True) -> None:
        super().__init__(CpuView(vendor, fms[0], fms[1], fms[2], frozenset(), hypervisor))
        self.fixed_vendor = vendor

    def all(self, items: list):
        return _fold("and", items)

    def any(self, items: list):
        return _fold("or", items)

    def not_(self, item):
        if isinstance(item, bool):
            return not item
        return item[1] if item[0] == "not" else ("not", item)

    def feature(self, name: str):
        if is_arch_cap(name):
            # Linux reads IA32_ARCH_CAPABILITIES only when CPUID says the MSR exists.
            return ("and", (("f", "arch-capabilities"), ("f", name)))
        return ("f", name)


def _fold(op: str, items: list):
    absorbing = op == "or"  # True absorbs an "or", False an "and"
    out: list = []
    for item in items:
        if isinstance(item, bool):
            if item is absorbing:
                return absorbing
            continue
        for sub in (item[1] if item[0] == op else (item,)):  # flatten nested and/and, or/or
            if sub not in out:
                out.append(sub)
    if not out:
        return not absorbing
    return out[0] if len(out) == 1 else (op, tuple(out))


def _atom_text(rt: RuleTable, expr: dict, ops: ConcreteOps, value: bool) -> str:
    (op, arg), = expr.items()
    cpu = ops.cpu
    if op == "feature":
        return f"{arg} {'shown' if value else 'not shown'}"
    if op in ("whitelist", "blacklist"):
        table = rt.whitelist if op == "whitelist" else rt.blacklist
        hits = [e.get("name") or f"{e['family']}/{e['model']}" for e in table
                if arg in e["flags"] and rt._table([e], arg, ops)]
        where = f"{cpu.vendor} {cpu.family}/{cpu.model}/{cpu.stepping}"
        if value:
            return f"{where} is in the {op} with {arg} ({', '.join(hits)})"
        return f"{where} is not in the {op} with {arg}"
    if op == "vendor":
        return f"vendor {cpu.vendor} {'is' if value else 'is not'} {'/'.join(arg)}"
    if op == "hypervisor":
        return "running as a guest" if cpu.hypervisor else "running on bare metal"
    if op == "cpu":
        verb = "matches" if value else "does not match"
        return f"family/model/stepping {cpu.family}/{cpu.model}/{cpu.stepping} {verb} {_cpu_text(arg)}"
    return f"{op} {arg}"


def _cpu_text(arg: dict) -> str:
    """Readable form of a {"cpu": ...} test; model lists become ranges."""
    parts = []
    for key, value in arg.items():
        if isinstance(value, list) and len(value) > 4 and value == list(range(value[0], value[-1] + 1)):
            value = f"{value[0]}..{value[-1]}"
        parts.append(f"{key} {value}")
    return ", ".join(parts)


def _explain(rt: RuleTable, expr: Any, ops: ConcreteOps, memo: dict) -> tuple[bool, str]:
    if expr is True or expr is False:
        return expr, "always" if expr else "never"
    (op, arg), = expr.items()
    if op in ("all", "any"):
        results = [_explain(rt, e, ops, memo) for e in arg]
        value = all(v for v, _ in results) if op == "all" else any(v for v, _ in results)
        if (op == "all") == value:
            texts = [t for _, t in results]  # every child decided
        else:
            texts = [t for v, t in results if v == value]  # the children that decided
        return value, "; ".join(texts) or "nothing applies"
    if op == "not":
        value, text = _explain(rt, arg, ops, memo)
        return (not value), text
    if op == "bug":
        if arg not in memo:
            memo[arg] = _explain(rt, rt._rule(arg)["affected"], ops, memo)
        value, text = memo[arg]
        return value, f"{arg} {'affected' if value else 'not affected'} ({text})"
    value = rt.walk(expr, ops, {})
    return value, _atom_text(rt, expr, ops, value)


@cache
def load_rules(kernel: str = DEFAULT_KERNEL) -> RuleTable:
    """The rule table of a Linux version ("6.1" = Debian bookworm 6.1.x, "6.12")."""
    key = kernel.strip()
    for k in KERNELS:
        if key == k or key.startswith(k + "."):
            key = k
            break
    else:
        raise InputError(f"no rule table for Linux '{kernel}' (known: {', '.join(KERNELS)})")
    path = resources.files("cpusolve.encodings") / "data" / f"linux-{key}.json"
    return RuleTable(json.loads(path.read_text()))
