"""The guest kernel's CPU-bug verdicts: one rule table per Linux version, read by algebras.

Linux decides which bugs to mitigate from CPUID vendor, family/model/stepping, feature
bits and IA32_ARCH_CAPABILITIES bits (``cpu_set_bug_bits()`` with ``cpu_vuln_whitelist``
and ``cpu_vuln_blacklist``).  Those facts live in ``data/linux-<version>.json`` as rule
expressions (:mod:`cpusolve.encodings.expr`), parsed once.  The same expressions are read
on a concrete CPU (:class:`Concrete`, Python booleans: the checker, ``cpusolve verdict``)
and on a CPU of known identity whose feature bits stay symbolic (:class:`Residual`: the
optimizer turns the residual into Z3), so the two can only disagree if their primitive
operations do (``tests/test_rules_interpreters.py`` compares them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache, cached_property, lru_cache
from importlib import resources

from cpusolve.encodings import expr as ex
from cpusolve.encodings.compiled import Compiler, all_of, field_test, ref_source
from cpusolve.encodings.cpu import CpuView
from cpusolve.encodings.expr import Algebra, Expr, fold
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
#: The problem variable that stands for the guest topology's SMT (Fact "smt").
SMT = "topology:smt"


@lru_cache(maxsize=1 << 12)
def is_arch_cap(name: str) -> bool:
    """Whether ``name`` is an IA32_ARCH_CAPABILITIES bit (remembered: a pool asks for every
    bit of every host kind's silicon)."""
    from cpusolve.encodings.catalog import catalog

    if name.startswith("msr10a:"):
        return True
    feat = catalog().features.get(name)
    return feat is not None and feat.is_arch_cap


def parse(data) -> Expr:
    """A rule expression of the data files, with ARCH_CAPABILITIES bits marked."""
    return ex.parse(data, is_arch_cap)


@dataclass(frozen=True)
class BugRule:
    """One bug of a rule table, its expressions parsed."""

    name: str
    scope: str  # "guest" | "host" | "internal"
    affected: Expr
    sysfs_unknown: Expr | None
    sysfs_not_affected_if: Expr | None
    data: dict  # the JSON entry (mechanisms, notes, sources)

    @property
    def sysfs(self) -> Expr:
        """Whether /sys/.../vulnerabilities/<bug> says anything but "Not affected"."""
        out: Expr = ex.Ref("bug", self.name)
        if self.sysfs_not_affected_if is not None:
            out = ex.All((out, ex.Not(self.sysfs_not_affected_if)))
        if self.sysfs_unknown is not None:
            out = ex.Any((out, self.sysfs_unknown))
        return out


class RuleTable:
    """One kernel's bug rules and what the kernel does about them.

    ``bugs``/``rules``: which X86_BUG_* bits it sets (``data/linux-<v>.json``);
    ``actions``: which mitigations it selects, as expressions over the same view
    (``data/linux-<v>-actions.json``: bugs.c's *_select_mitigation(), each entry citing its
    source lines); ``sysfs_texts``: what /sys/.../vulnerabilities/<bug> then says.
    """

    def __init__(self, data: dict, actions: dict | None = None) -> None:
        self.data = data
        self.kernel: str = data["kernel"]
        self.source = data.get("source", {})
        self.whitelist: list[dict] = data["whitelist"]
        self.blacklist: list[dict] = data["blacklist"]
        self.bug_rules: dict[str, dict] = data["bugs"]
        self.internal: dict[str, dict] = data.get("internal_bugs", {})
        self.rules: dict[str, BugRule] = {}
        for name, rule in [*self.bug_rules.items(), *self.internal.items()]:
            self.rules[name] = BugRule(
                name, rule.get("scope", "guest"), parse(rule["affected"]),
                parse(rule["sysfs_unknown"]) if rule.get("sysfs_unknown") else None,
                parse(rule["sysfs_not_affected_if"]) if rule.get("sysfs_not_affected_if") else None, rule)
        # One identity test per table flag: the rows carrying it (made disjoint in the data).
        self.tables: dict[tuple[str, str], list[tuple[dict, Expr]]] = {}
        for kind, rows in (("whitelist", self.whitelist), ("blacklist", self.blacklist)):
            for row in rows:
                test = ex.table_entry(row)
                for flag in row["flags"]:
                    self.tables.setdefault((kind, flag), []).append((row, test))
        self._table_verdicts: dict[tuple, bool] = {}
        self._does: dict[CpuView, frozenset[str]] = {}
        self._residuals: dict[tuple, dict[tuple[int, int, int], Expr]] = {}  # (expr, vendor, boot) -> fms -> term
        self._residual_memos: dict[tuple, dict] = {}
        # TRUE and FALSE first: a residual constant is always the singleton (callers test
        # residuals with ``is``)
        self._interned: dict[Expr, Expr] = {ex.TRUE: ex.TRUE, ex.FALSE: ex.FALSE}
        #: id(expr), vendor, boot -> (expr, its entry of _residuals): an obligation's
        #: expression is one object in every domain, and hashing its tree costs more
        self._residuals_by_id: dict[tuple, tuple[Expr, dict]] = {}
        self.action_data: dict[str, dict] = (actions or {}).get("actions", {})
        self.actions: dict[str, Expr] = {name: parse(a["when"]) for name, a in self.action_data.items()}
        #: the actions proper (things the kernel does), not its intermediate selections
        self.action_names: frozenset[str] = frozenset(
            name for name, a in self.action_data.items() if a.get("kind") == "action")
        self.actions_source = (actions or {}).get("source", {})
        self.sysfs_texts: dict[str, list[tuple[Expr, str | None]]] = {
            bug: [(parse(e["when"]), e.get("text")) for e in entries]
            for bug, entries in (actions or {}).get("sysfs", {}).items()}
        self.dmesg: dict[str, list[tuple[Expr, object]]] = {
            cat: [(parse(e["when"]), e.get("text")) for e in entries]
            for cat, entries in (actions or {}).get("dmesg", {}).items()}
        self.dmesg_order: list[str] = (actions or {}).get("dmesg_order", [])
        known = [b for b in SYSFS_ORDER if b in self.bug_rules]
        self.bugs: list[str] = known + sorted(b for b in self.bug_rules if b not in SYSFS_ORDER)
        self.compiled = GuestCompiler(self)

    @cached_property
    def features_read(self) -> frozenset[str]:
        """Every feature bit an expression of this table can read (its rules, actions,
        sysfs and boot-line conditions, identity tables): a verdict on a view depends on its
        features only through these."""
        exprs = [e for r in self.rules.values()
                 for e in (r.affected, r.sysfs_unknown, r.sysfs_not_affected_if) if e is not None]
        exprs += list(self.actions.values())
        exprs += [when for entries in (*self.sysfs_texts.values(), *self.dmesg.values()) for when, _ in entries]
        exprs += [test for rows in self.tables.values() for _, test in rows]
        read = frozenset().union(*map(ex.features_of, exprs))
        if any(is_arch_cap(f) for f in read):  # such an atom reads the MSR's CPUID bit too
            read |= {"arch-capabilities"}
        return read

    def rule(self, name: str) -> BugRule:
        rule = self.rules.get(name)
        if rule is None:
            raise KeyError(f"rule table {self.kernel} has no bug '{name}'")
        return rule

    def definition(self, node: ex.Ref) -> Expr:
        """What a reference stands for: a bug's rule or an action's condition."""
        if node.kind == "bug":
            return self.rule(node.name).affected
        if node.kind == "action":
            expr = self.actions.get(node.name)
            if expr is None:
                raise KeyError(f"Linux {self.kernel} has no action '{node.name}'")
            return expr
        raise KeyError(f"a rule table cannot resolve {node.kind} references")

    def does(self, cpu: CpuView) -> frozenset[str]:
        """The actions (not intermediate states) the kernel takes on this CPU (remembered:
        the same guest is asked about on every host of every domain)."""
        hit = self._does.get(cpu)
        if hit is None:
            if len(self._does) > 1 << 14:
                self._does.clear()
            memo: dict = {}
            hit = self._does[cpu] = frozenset(
                name for name in self.action_names if self.holds(ex.Ref("action", name), cpu, memo))
        return hit

    def sysfs_text(self, cpu: CpuView, bug: str) -> str | None:
        """The predicted text of /sys/.../vulnerabilities/<bug> (None: not predictable
        from the view); the first entry that holds."""
        memo: dict = {}
        for when, text in self.sysfs_texts.get(bug, ()):
            if self.holds(when, cpu, memo):
                return text
        return None

    def dmesg_lines(self, cpu: CpuView) -> list[str]:
        """The mitigation lines the kernel prints at boot on this CPU, in boot order: per
        category (Spectre V2, RETBleed, the active return thunk...) the first entry that
        holds; some categories print nothing."""
        memo: dict = {}
        out: list[str] = []
        for cat in self.dmesg_order:
            for when, text in self.dmesg.get(cat, ()):
                if self.holds(when, cpu, memo):
                    if isinstance(text, str):
                        out.append(text)
                    elif text:
                        out.extend(text)
                    break
        return out

    def in_table(self, node: ex.InTable, cpu: CpuView) -> bool:
        """Whether the CPU's identity matches a row with ``node.flag`` (cached per identity:
        every host of a kind and every guest answer repeats one)."""
        key = (node.table, node.flag, cpu.vendor, cpu.family, cpu.model, cpu.stepping)
        hit = self._table_verdicts.get(key)
        if hit is None:
            function = self.compiled.function
            hit = self._table_verdicts[key] = any(function(test)(cpu, {}) for _, test in self.tables.get(
                (node.table, node.flag), ()))
        return hit

    def rows(self, node: ex.InTable, cpu: CpuView) -> list[dict]:
        """The rows with ``node.flag`` that match the CPU (for explanations)."""
        ops = Concrete(self, cpu)
        return [row for row, test in self.tables.get((node.table, node.flag), ()) if fold(test, ops)]

    # -- concrete readings ------------------------------------------------------------
    def holds(self, expr: Expr, cpu: CpuView, memo: dict | None = None) -> bool:
        """``expr`` on ``cpu``: :class:`Concrete`'s reading, compiled (encodings.compiled);
        ``memo`` keeps the references' verdicts for further questions about the same view."""
        return self.compiled.function(expr)(cpu, {} if memo is None else memo)

    def affected(self, cpu: CpuView) -> dict[str, bool]:
        """Bug bit set (the kernel mitigates it), per sysfs bug."""
        memo: dict = {}
        return {b: self.holds(ex.Ref("bug", b), cpu, memo) for b in self.bugs}

    def sysfs_affected(self, cpu: CpuView) -> dict[str, bool]:
        """Whether /sys/devices/system/cpu/vulnerabilities/<bug> says anything but 'Not affected'."""
        memo: dict = {}
        return {b: self.holds(self.rules[b].sysfs, cpu, memo) for b in self.bugs}

    def explain(self, cpu: CpuView, bug: str) -> str:
        """Why the kernel decides as it does: the deciding atoms of the rule, in words.

        Where sysfs says something other than the bug bit (an "Unknown" state, or "Not
        affected" despite the bit), that is explained too.
        """
        rule = self.rule(bug)
        value, text = fold(rule.affected, Explain(self, cpu))
        if value and rule.sysfs_not_affected_if is not None:
            hidden, why = fold(rule.sysfs_not_affected_if, Explain(self, cpu))
            if hidden:
                return f"bug bit set but sysfs says Not affected: {why}"
        if not value and rule.sysfs_unknown is not None:
            unknown, why = fold(rule.sysfs_unknown, Explain(self, cpu))
            if unknown:
                return f"sysfs reports an unknown state, not mitigated ({why}); bug bit clear: {text}"
        return ("affected: " if value else "not affected: ") + text

    # -- partial evaluation -------------------------------------------------------------
    def residuals(self, expr: Expr, vendor: str, identities: list[tuple[int, int, int]],
                  boot: frozenset[str] = frozenset()) -> list[Expr]:
        """``expr`` on a guest of this vendor and each family/model/stepping (booted on a
        machine where ``boot`` holds): expressions over feature bits and the topology's
        :data:`SMT` only (see :class:`Residual`), remembered for the life of the table."""
        hit = self._residuals_by_id.get((id(expr), vendor, boot))
        if hit is not None and hit[0] is expr:
            by_fms = hit[1]
        else:
            by_fms = self._residuals.setdefault((expr, vendor, boot), {})
            if len(self._residuals_by_id) > 1 << 16:
                self._residuals_by_id.clear()
            self._residuals_by_id[(id(expr), vendor, boot)] = (expr, by_fms)  # expr kept: its id stays unique
        out = list(map(by_fms.get, identities))  # nearly always all known already
        if None in out:
            for i, fms in enumerate(identities):
                if out[i] is None:
                    memo = self._residual_memos.setdefault((vendor, fms, boot), {})
                    term = fold(expr, Residual(self, vendor, fms, boot=boot), memo)
                    # one object per distinct residual: the problem builder and the model
                    # reduction compare and key on them, and identical objects compare at once
                    out[i] = by_fms[fms] = self._interned.setdefault(term, term)
        return out


class Concrete(Algebra[bool]):
    """Python booleans on one concrete CPU."""

    __slots__ = ("rt", "cpu")

    def __init__(self, rt: RuleTable, cpu: CpuView) -> None:
        self.rt = rt
        self.cpu = cpu

    def const(self, node): return node.value
    def all(self, node, items): return all(items)
    def any(self, node, items): return any(items)
    def not_(self, node, item): return not item

    def feature(self, node):
        features = self.cpu.features
        if node.name not in features:
            return False
        # Linux reads IA32_ARCH_CAPABILITIES only when CPUID says the MSR exists.
        return not node.arch_cap or "arch-capabilities" in features

    def table(self, node): return self.rt.in_table(node, self.cpu)
    def vendor(self, node): return self.cpu.vendor in node.vendors
    def hypervisor(self, node): return self.cpu.hypervisor

    def field_in(self, node):
        v = getattr(self.cpu, node.field)
        if node.values is not None:
            return v in node.values
        return (node.lo is None or v >= node.lo) and (node.hi is None or v <= node.hi)

    def ref(self, node, memo):
        key = (node.kind, node.name)
        hit = memo.get(key)
        if hit is None:
            hit = memo[key] = fold(self.rt.definition(node), self, memo)
        return hit

    def fact(self, node):
        if node.kind == "smt":
            return self.cpu.smt
        if node.kind in ("msr_ok", "env"):
            return f"{node.kind}:{node.arg}" in self.cpu.boot
        raise ValueError(f"a guest view has no fact {node.kind}")


class GuestCompiler(Compiler):
    """:class:`Concrete`'s reading, compiled: the same atoms, read from the view ``c``."""

    def __init__(self, rt: RuleTable) -> None:
        super().__init__()
        self.rt = rt

    def names(self) -> dict:
        return {"T": self.rt.in_table}

    def definition(self, node: ex.Ref) -> Expr:
        return self.rt.definition(node)

    def atom(self, e: Expr, const) -> str:
        t = type(e)
        if t is ex.Feature:
            # Linux reads IA32_ARCH_CAPABILITIES only when CPUID says the MSR exists.
            return f"({e.name!r} in F and 'arch-capabilities' in F)" if e.arch_cap else f"({e.name!r} in F)"
        if t is ex.InTable:
            return f"T({const(e)}, c)"
        if t is ex.Vendor:
            return f"(c.vendor in {const(frozenset(e.vendors))})"
        if t is ex.Hypervisor:
            return "c.hypervisor"
        if t is ex.FieldIn:
            return field_test("c", e, const)
        if t is ex.CpuMatch:
            return all_of([field_test("c", x, const) for x in e.tests])
        if t is ex.Ref:
            return ref_source(e, const)
        if t is ex.Fact:
            if e.kind == "smt":
                return "c.smt"
            if e.kind in ("msr_ok", "env"):
                return f"({f'{e.kind}:{e.arg}'!r} in c.boot)"
            raise ValueError(f"a guest view has no fact {e.kind}")
        raise TypeError(f"not a rule expression: {e!r}")


class Residual(Concrete):
    """Partial evaluation on a guest of known vendor and family/model/stepping.

    Identity tests are decided (as on a concrete CPU, so table verdicts share the concrete
    cache); feature tests stay symbolic.  The result is an :class:`Expr` over
    :class:`~cpusolve.encodings.expr.Feature` nodes only (ARCH_CAPABILITIES bits gated by
    ``arch-capabilities``, as Linux reads them), so the optimizer chooses among a domain's
    few candidate identities and never reasons about integers; the same identity recurs in
    every domain, so its residuals are computed once.
    """

    __slots__ = ()

    def __init__(self, rt: RuleTable, vendor: str, fms: tuple[int, int, int], hypervisor: bool = True,
                 boot: frozenset[str] = frozenset()) -> None:
        super().__init__(rt, CpuView(vendor, fms[0], fms[1], fms[2], frozenset(), hypervisor, boot=boot))

    def const(self, node): return node
    def all(self, node, items): return ex.conj(_lift(i) for i in items)
    def any(self, node, items): return ex.disj(_lift(i) for i in items)
    def not_(self, node, item): return ex.negate(_lift(item))

    def feature(self, node):
        if node.arch_cap:
            return ex.All((ex.Feature("arch-capabilities"), ex.Feature(node.name)))
        return node

    def fact(self, node):
        if node.kind == "smt":
            return ex.Feature(SMT)  # the guest's topology is a choice, like a feature bit
        return _lift(super().fact(node))

    def table(self, node): return _lift(super().table(node))
    def vendor(self, node): return _lift(super().vendor(node))
    def hypervisor(self, node): return _lift(super().hypervisor(node))
    def field_in(self, node): return _lift(super().field_in(node))


def _lift(value) -> Expr:
    if value is True:
        return ex.TRUE
    if value is False:
        return ex.FALSE
    return value


class Explain(Algebra[tuple[bool, str]]):
    """(verdict, why) on a concrete CPU: the atoms that decided, in words."""

    def __init__(self, rt: RuleTable, cpu: CpuView) -> None:
        self.rt = rt
        self.cpu = cpu
        self.concrete = Concrete(rt, cpu)

    def const(self, node):
        return node.value, "always" if node.value else "never"

    def _junction(self, results, is_all: bool):
        value = all(v for v, _ in results) if is_all else any(v for v, _ in results)
        if is_all == value:
            texts = [t for _, t in results]  # every child decided
        else:
            texts = [t for v, t in results if v == value]  # the children that decided
        return value, "; ".join(texts) or "nothing applies"

    def all(self, node, items): return self._junction(items, True)
    def any(self, node, items): return self._junction(items, False)

    def not_(self, node, item):
        value, text = item
        return (not value), text

    def feature(self, node):
        value = self.concrete.feature(node)
        return value, f"{node.name} {'shown' if value else 'not shown'}"

    def table(self, node):
        value = self.concrete.table(node)
        cpu = self.cpu
        hits = [row.get("name") or f"{row['family']}/{row['model']}" for row in self.rt.rows(node, cpu)]
        where = f"{cpu.vendor} {cpu.family}/{cpu.model}/{cpu.stepping}"
        if value:
            return value, f"{where} is in the {node.table} with {node.flag} ({', '.join(hits)})"
        return value, f"{where} is not in the {node.table} with {node.flag}"

    def vendor(self, node):
        value = self.concrete.vendor(node)
        return value, f"vendor {self.cpu.vendor} {'is' if value else 'is not'} {'/'.join(node.vendors)}"

    def hypervisor(self, node):
        value = self.cpu.hypervisor
        return value, "running as a guest" if value else "running on bare metal"

    def field_in(self, node):
        return self.concrete.field_in(node), f"{node.field} {node.lo}..{node.hi}"

    def cpu_match(self, node):
        value = all(self.concrete.field_in(t) for t in node.tests)
        cpu = self.cpu
        verb = "matches" if value else "does not match"
        return value, f"family/model/stepping {cpu.family}/{cpu.model}/{cpu.stepping} {verb} {cpu_text(node)}"

    def ref(self, node, memo):
        key = (node.kind, node.name)
        if key not in memo:
            memo[key] = fold(self.rt.rule(node.name).affected, self, memo)
        value, text = memo[key]
        return value, f"{node.name} {'affected' if value else 'not affected'} ({text})"


def cpu_text(node: ex.CpuMatch) -> str:
    """The data's own wording of a family/model/stepping test; model lists become ranges."""
    parts = []
    for key, value in node.spec:
        if isinstance(value, tuple):
            value = list(value)
            if len(value) > 4 and value == list(range(value[0], value[-1] + 1)):
                value = f"{value[0]}..{value[-1]}"
        parts.append(f"{key} {value}")
    return ", ".join(parts)


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
    data = resources.files("cpusolve.encodings") / "data"
    return RuleTable(json.loads((data / f"linux-{key}.json").read_text()),
                     json.loads((data / f"linux-{key}-actions.json").read_text()))
