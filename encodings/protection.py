"""Whether what a guest kernel does protects it against a bug on one host.

The guest's actions are a function of what it is shown (``rules.RuleTable.actions``);
whether they work is a function of the host: its silicon and microcode, its kernel and
KVM, its TSX state and SMT.  ``data/host-protection.json`` states, per bug, the ways a guest
is protected on a host (an entry = a condition on the host, a condition on the guest, and
why it works, with sources):

* ``protected``: complete protection in the threat model (the guest kernel and its
  processes against its own user space);
* ``partial``: Linux's own "Mitigation: ..." level that leaves a named residual only the
  host can remove (``cross_thread``: sibling hyper-threads while the host runs SMT); the
  solver accepts these, as Linux does on bare metal, and reports the residual;
* ``unknown``: combinations no source settles (one Zen generation's SRSO sequence on
  another's silicon): never counted as protection;
* ``attempt``: the kind of mitigation a guest must at least run (policy ``compat``).

Host conditions are read here, concretely, on a :class:`HostView`; what is left is a
condition on the guest, which the optimizer and the checker read like any other rule.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources

from cpusolve.encodings import expr as ex
from cpusolve.encodings.compiled import Compiler, all_of, field_test, ref_source
from cpusolve.encodings.cpu import Cpu
from cpusolve.encodings.expr import Algebra, Expr, fold
from cpusolve.encodings.rules import parse
from cpusolve.encodings.spelling import action_label, host_def_label


@dataclass(frozen=True)
class HostView(Cpu):
    """A host as the protection table reads it.  ``features`` are the host's own CPUID and
    ARCH_CAPABILITIES bits (silicon and microcode, as its kernel sees them), not what KVM
    offers a guest."""

    #: sysfs and internal (MSBDS_ONLY, SWAPGS, BHI, ...) bug names the silicon has
    bugs: frozenset[str] = frozenset()
    kernel: str = "6.1"  # the host's kernel and KVM
    tsx: str = "off"  # "on": TSX transactions run on the host
    smt: bool = True  # the host runs SMT (hyper-threading)
    #: microcode fixes nothing enumerates ("its_ibpb"), where the host says so
    ucode: frozenset[str] = frozenset()

    def __hash__(self) -> int:
        """The dataclass's hash, made once: every answer about a host view is remembered
        under it (``ProtectionTable._remember``), so it is hashed hundreds of thousands of
        times in a fleet's solve."""
        h = self.__dict__.get("_hash")
        if h is None:
            h = hash((self.vendor, self.family, self.model, self.stepping, self.features, self.bugs,
                      self.kernel, self.tsx, self.smt, self.ucode))
            self.__dict__["_hash"] = h  # a frozen dataclass: bypass its __setattr__
        return h

    def __getstate__(self) -> dict:
        # the remembered hash is this process's (string hashes are salted per process)
        return {k: v for k, v in self.__dict__.items() if k != "_hash"}


@dataclass(frozen=True)
class Entry:
    status: str  # "protected" | "partial" | "unknown"
    host: Expr
    guest: Expr
    why: str
    residual: str | None = None
    source: tuple[str, ...] = ()
    #: a partial entry policy strict does not accept (Linux calls it Vulnerable, or the
    #: guest could close the residual itself)
    strict: bool = True


@dataclass(frozen=True)
class BugProtection:
    bug: str
    scope: str  # "guest" | "host"
    affected: Expr  # on the host
    entries: tuple[Entry, ...]
    #: what a guest must at least attempt: (host condition, guest condition), first match
    attempt: tuple[tuple[Expr, Expr], ...]


class HostConcrete(Algebra[bool]):
    """Host conditions on one concrete host."""

    def __init__(self, table: ProtectionTable, host: HostView) -> None:
        self.table = table
        self.host = host

    def const(self, node): return node.value
    def all(self, node, items): return all(items)
    def any(self, node, items): return any(items)
    def not_(self, node, item): return not item

    def fact(self, node):
        h, kind = self.host, node.kind
        if kind == "host_feature":
            return node.arg in h.features
        if kind == "host_bug":
            return node.arg in h.bugs
        if kind == "host_vendor":
            return h.vendor in node.arg
        if kind == "host_cpu":
            return all(_field_in(h, t) for t in node.arg.tests)
        if kind == "kvm":
            return h.kernel in node.arg
        if kind == "tsx":
            return h.tsx == node.arg
        if kind == "host_smt":
            return h.smt
        if kind == "host_ucode":
            return node.arg in h.ucode
        raise ValueError(f"a host condition cannot read {kind}")

    def ref(self, node, memo):
        key = (node.kind, node.name)
        if key not in memo:
            memo[key] = fold(self.table.host_defs[node.name], self, memo)
        return memo[key]


#: host facts read by one test of a field: kind -> (the test in a compiled reading's source,
#: the fact in words); HostConcrete.fact reads the same fields
HOST_ATOMS = {
    "host_feature": ("({arg!r} in F)", "{arg}"),
    "host_bug": ("({arg!r} in c.bugs)", "{arg}-affected"),
    "tsx": ("(c.tsx == {arg!r})", "TSX {arg}"),
    "host_smt": ("c.smt", "SMT on"),
    "host_ucode": ("({arg!r} in c.ucode)", "{arg} microcode"),
}


class HostCompiler(Compiler):
    """:class:`HostConcrete`'s reading, compiled: the same facts, read from the host ``c``."""

    def __init__(self, table: ProtectionTable) -> None:
        super().__init__()
        self.table = table

    def definition(self, node: ex.Ref) -> Expr:
        return self.table.host_defs[node.name]

    def atom(self, e: Expr, const) -> str:
        t = type(e)
        if t is ex.Ref:
            return ref_source(e, const)
        if t is not ex.Fact:
            raise NotImplementedError(f"HostConcrete cannot read {type(e).__name__}")
        kind, arg = e.kind, e.arg
        if kind in HOST_ATOMS:
            return HOST_ATOMS[kind][0].format(arg=arg)
        if kind == "host_vendor":
            return f"(c.vendor in {const(frozenset(arg))})"
        if kind == "host_cpu":
            return all_of([field_test("c", x, const) for x in arg.tests])
        if kind == "kvm":
            return f"(c.kernel in {const(frozenset(arg))})"
        raise ValueError(f"a host condition cannot read {kind}")


def _field_in(cpu: Cpu, t: ex.FieldIn) -> bool:
    v = getattr(cpu, t.field)
    if t.values is not None:
        return v in t.values
    return (t.lo is None or v >= t.lo) and (t.hi is None or v <= t.hi)


class ProtectionTable:
    def __init__(self, data: dict) -> None:
        self.data = data
        self.source = data.get("source", {})
        self.host_defs: dict[str, Expr] = {n: parse(e) for n, e in data.get("host_defs", {}).items()}
        self.host_def_meanings: dict[str, str] = data.get("host_def_meanings", {})
        self.residuals: dict[str, str] = data.get("residuals", {})
        self.bugs: dict[str, BugProtection] = {}
        for bug, b in data["bugs"].items():
            entries = []
            for status in ("protected", "partial", "unknown"):
                for e in b.get(status, []):
                    entries.append(Entry(status, parse(e["host"]), parse(e["guest"]), e.get("why", ""),
                                         e.get("residual"), tuple(e.get("source", ())), e.get("strict", True)))
            attempt = b.get("attempt", True)
            if isinstance(attempt, dict) and "by_host" in attempt:
                attempts = tuple((parse(a["host"]), parse(a["guest"])) for a in attempt["by_host"])
            else:
                attempts = ((ex.TRUE, parse(attempt)),)
            self.bugs[bug] = BugProtection(bug, b.get("scope", "guest"), parse(b["host_affected"]),
                                           tuple(entries), attempts)
        self._memo: dict = {}
        #: host view -> its references' verdicts (the host definitions read the host alone,
        #: and a host's entries, attempts and bugs share most of them)
        self._refs: dict = {}
        #: the bugs a guest must be protected against where the host has them, by name
        self._guest_scope = tuple(bug for bug in sorted(self.bugs) if self.bugs[bug].scope == "guest")
        self.compiled = HostCompiler(self)
        # The host features, bugs and microcode fixes the table's conditions name: its
        # answers about a host depend on these and on the identity, kernel, TSX and SMT,
        # nothing else (:meth:`reading`).
        conditions = [*self.host_defs.values()]
        for b in self.bugs.values():
            conditions += [b.affected, *(e.host for e in b.entries), *(cond for cond, _ in b.attempt)]
        named = frozenset().union(*(fold(cond, _NamedFacts()) for cond in conditions))
        self._read_features = frozenset(arg for kind, arg in named if kind == "host_feature")
        self._read_bugs = frozenset(arg for kind, arg in named if kind == "host_bug")
        self._read_ucode = frozenset(arg for kind, arg in named if kind == "host_ucode")
        self._readings: dict = {}

    def reading(self, host: HostView) -> HostView:
        """``host`` as the table's conditions read it: its features, bugs and microcode
        fixes cut to those they name.  Every answer of the table's own conditions is the
        same on both, so host kinds that differ only elsewhere (a fleet's microcode and
        BIOS variants: the diverse benchmark pool's 3,007 host views read as 521) share
        one evaluation."""
        hit = self._readings.get(host)
        if hit is None:
            if len(self._readings) > MEMO_LIMIT:
                self._readings.clear()
            cut = cut_view(host, self._read_features, self._read_bugs, self._read_ucode)
            hit = self._readings[host] = self._readings.setdefault(cut, cut)
        return hit

    def guest_bugs(self, host: HostView) -> tuple[str, ...]:
        """The bugs of ``host`` a guest must be protected against (scope "guest"), by name
        (remembered: the obligations and the protection lines of every domain ask)."""
        host = self.reading(host)
        return self._remember(("guest_bugs", host), lambda: tuple(
            bug for bug in self._guest_scope if self.affects(host, bug)))

    def affects(self, host: HostView, bug: str) -> bool:
        """Remembered per host view (every domain and report asks again)."""
        b = self.bugs.get(bug)
        host = self.reading(host)
        return b is not None and self._remember(("affects", host, bug), lambda: self.host_holds(host, b.affected))

    def _remember(self, key: tuple, compute):
        """Answers about a host view, kept for the table's life (bounded: a long-lived
        planner sees hosts come and go)."""
        hit = self._memo.get(key)
        if hit is None:
            if len(self._memo) > MEMO_LIMIT:
                self._memo.clear()
            hit = self._memo[key] = compute()
        return hit

    def host_holds(self, host: HostView, cond: Expr) -> bool:
        """``cond`` on ``host``: :class:`HostConcrete`'s reading, compiled (encodings.compiled)."""
        return self._on(host)(cond)

    def _on(self, host: HostView):
        """``cond -> host_holds(host, cond)``, with the host's reference verdicts found once
        (a host's bugs and entries are asked together)."""
        refs = self._refs.get(host)
        if refs is None:
            if len(self._refs) > MEMO_LIMIT:
                self._refs.clear()
            refs = self._refs[host] = {}
        function = self.compiled.function
        return lambda cond: function(cond)(host, refs)

    def entries_on(self, host: HostView, bug: str) -> tuple[Entry, ...]:
        """The entries whose host condition holds on ``host``, in table order."""
        host = self.reading(host)

        def compute() -> tuple[Entry, ...]:
            on = self._on(host)
            return tuple(e for e in self.bugs[bug].entries if on(e.host))
        return self._remember(("entries", host, bug), compute)

    def protection(self, host: HostView, bug: str) -> Expr:
        """What the guest must do (or be shown) to be protected against ``bug`` on ``host``:
        any of the applicable protected or strict-accepted partial entries (FALSE when none
        applies)."""
        host = self.reading(host)
        return self._remember(("protection", host, bug), lambda: ex.disj(e.guest for e in self.accepted(host, bug)))

    def accepted(self, host: HostView, bug: str) -> tuple[Entry, ...]:
        """The applicable entries policy strict accepts as protection (remembered: every
        guest answer's protection lines ask again)."""
        host = self.reading(host)
        return self._remember(("accepted", host, bug), lambda: tuple(
            e for e in self.entries_on(host, bug) if e.status != "unknown" and e.strict))

    def attempt(self, host: HostView, bug: str) -> Expr:
        """The mitigation the guest must at least attempt on ``host`` (first match)."""
        host = self.reading(host)

        def compute() -> Expr:
            on = self._on(host)
            return next((guest for cond, guest in self.bugs[bug].attempt if on(cond)), ex.TRUE)
        return self._remember(("attempt", host, bug), compute)


#: host-view answers a table keeps before it starts afresh
MEMO_LIMIT = 1 << 18


def cut_view(host: HostView, features: frozenset[str], bugs: frozenset[str], ucode: frozenset[str]) -> HostView:
    """``host`` with its features, bugs and microcode fixes cut to those named: what
    conditions that name only these (:class:`_NamedFacts`) read of it."""
    return HostView(host.vendor, host.family, host.model, host.stepping, host.features & features,
                    bugs=host.bugs & bugs, kernel=host.kernel, tsx=host.tsx, smt=host.smt, ucode=host.ucode & ucode)


class _NamedFacts(Algebra[frozenset]):
    """The host features, bugs and microcode fixes a host condition names, as (kind, name)
    pairs; references are not followed (each definition is one of the table's conditions,
    read on its own).  Any other fact must be one :meth:`ProtectionTable.reading` keeps."""

    empty: frozenset = frozenset()
    cut = ("host_feature", "host_bug", "host_ucode")
    kept = ("host_vendor", "host_cpu", "kvm", "tsx", "host_smt")

    def const(self, node): return self.empty
    def all(self, node, items): return frozenset().union(*items)
    def any(self, node, items): return frozenset().union(*items)
    def not_(self, node, item): return item
    def ref(self, node, memo): return self.empty

    def fact(self, node):
        if node.kind in self.cut:
            return frozenset({(node.kind, node.arg)})
        if node.kind in self.kept:
            return self.empty
        raise ValueError(f"a host condition reads {node.kind}, which ProtectionTable.reading would not keep")


@cache
def protection_table() -> ProtectionTable:
    path = resources.files("cpusolve.encodings") / "data" / "host-protection.json"
    return ProtectionTable(json.loads(path.read_text()))


def guest_text(expr: Expr) -> str:
    """A guest condition of the table in words: "eibrs or ibrs_entry + bhb_clear_loop"."""
    t = type(expr)
    if t is ex.Const:
        return "nothing" if expr.value else "a mitigation no guest can run"
    if t is ex.Ref:
        return action_label(expr.name) if expr.kind == "action" else expr.name
    if t is ex.Feature:
        return f"{expr.name} shown"
    if t is ex.Fact and expr.kind == "smt":
        return "an SMT topology (threads=2)"
    if t is ex.Not:
        inner = expr.item
        if type(inner) is ex.Feature:
            return f"no {inner.name} shown"
        return f"not ({guest_text(inner)})"
    if t is ex.All:
        return " + ".join(_group(guest_text(e)) if type(e) is ex.Any else guest_text(e) for e in expr.items)
    if t is ex.Any:
        parts = list(dict.fromkeys(guest_text(e) for e in expr.items))
        return " or ".join(_group(p) if " or " in p else p for p in parts)
    if t is ex.CpuMatch:
        return "family/model " + ", ".join(f"{k} {list(v) if isinstance(v, tuple) else v}" for k, v in expr.spec)
    if t is ex.Vendor:
        return "vendor " + "/".join(expr.vendors)
    return repr(expr)


@lru_cache(maxsize=1 << 12)
def host_text(expr: Expr) -> str:
    """A host condition of the table in words: "Zen 3/4 + verw-clear", "" when it always
    holds (remembered: the table's conditions are few, every protection line names one)."""
    t = type(expr)
    if t is ex.Const:
        return "" if expr.value else "never"
    if t is ex.Ref:
        return host_def_label(expr.name)
    if t is ex.Fact:
        kind, arg = expr.kind, expr.arg
        if kind in HOST_ATOMS:
            return HOST_ATOMS[kind][1].format(arg=arg)
        if kind == "kvm":
            return "KVM " + "/".join(arg)
        if kind == "host_vendor":
            return "/".join(arg)
        return f"{kind} {arg}"
    if t is ex.Not:
        inner = expr.item
        if type(inner) is ex.Fact and inner.kind == "host_smt":
            return "SMT off"
        if type(inner) is ex.Fact and inner.kind == "host_bug":
            return f"not {inner.arg}-affected"
        if type(inner) is ex.Fact and inner.kind == "host_feature":
            return f"no {inner.arg}"
        return f"not ({host_text(inner)})"
    if t is ex.All:
        parts = [host_text(e) for e in _flat(expr)]
        return " + ".join(_group(p) if " or " in p else p for p in parts if p)
    if t is ex.Any:
        parts = list(dict.fromkeys(host_text(e) for e in expr.items))
        return " or ".join(_group(p) if " + " in p else p for p in parts)
    return repr(expr)


def _flat(expr: ex.All) -> list[Expr]:
    out: list[Expr] = []
    for e in expr.items:
        out.extend(_flat(e) if type(e) is ex.All else [e])
    return out


def _group(text: str) -> str:
    return f"({text})"


@lru_cache(maxsize=1 << 12)
def actions_named(expr: Expr) -> frozenset[str]:
    """The guest actions a guest condition names (remembered, as host_text)."""
    t = type(expr)
    if t is ex.Ref and expr.kind == "action":
        return frozenset((expr.name,))
    if t in (ex.All, ex.Any):
        return frozenset().union(*(actions_named(e) for e in expr.items))
    if t is ex.Not:
        return actions_named(expr.item)
    return frozenset()


def showable(expr: Expr, visible: frozenset[str]) -> Expr:
    """``expr`` without the ways that need a bit no guest can be shown (an ARCH_CAPABILITIES
    bit QEMU has no name for): what an explanation may offer an operator."""
    t = type(expr)
    if t is ex.Feature:
        return expr if expr.name in visible else ex.FALSE
    if t is ex.All:
        items = [showable(e, visible) for e in expr.items]
        return ex.FALSE if ex.FALSE in items else ex.All(tuple(items))
    if t is ex.Any:
        items = [i for i in (showable(e, visible) for e in expr.items) if i != ex.FALSE]
        return ex.FALSE if not items else items[0] if len(items) == 1 else ex.Any(tuple(items))
    return expr


def needs_text(entries) -> str:
    """The simplest ways a guest is protected by these entries (at most two, shortest
    first): what an explanation names as "protection there needs ..."."""
    from cpusolve.encodings.catalog import catalog

    visible = catalog().guest_features
    shown = [showable(e.guest, visible) for e in entries if e.status != "unknown"]
    texts = sorted({guest_text(g) for g in shown if g != ex.FALSE}, key=lambda t: (len(t), t))
    if not texts:
        return "a mitigation no guest can run"
    shown = [f"({t})" if " or " in t else t for t in texts[:2]]
    return " or ".join(shown) + (" (or another way)" if len(texts) > 2 else "")


@cache
def _kernel_bits() -> dict:
    path = resources.files("cpusolve.encodings") / "data" / "host-kernel-bits.json"
    data = json.loads(path.read_text())
    data["parsed"] = [(frozenset(r["bits"]), tuple(r["kernels"]), parse(r["when"])) for r in data["rules"]]
    # what the conditions read of a host: their own named facts and those of the table's
    # host definitions they may refer to (already in the table's reading)
    named = frozenset().union(*(fold(when, _NamedFacts()) for _, _, when in data["parsed"]))
    table = protection_table()
    data["cut"] = tuple(table_cut | frozenset(arg for k, arg in named if k == kind) for kind, table_cut in (
        ("host_feature", table._read_features), ("host_bug", table._read_bugs), ("host_ucode", table._read_ucode)))
    return data


def synthesised_bits(host: HostView) -> frozenset[str]:
    """The bits the host's kernel forces on itself before it decides its bugs
    (``data/host-kernel-bits.json``): a Zen 2 host has TSA_SQ_NO, a 6.12 Rome IBPB_BRTYPE.

    Evaluated on ``host`` cut to what the conditions read and remembered by that cut: the
    diverse benchmark pool's 3,188 host kinds differ mostly in bits none of them names."""
    data = _kernel_bits()
    cut = cut_view(host, *data["cut"])
    hit = _SYNTHESISED.get(cut)
    if hit is None:
        if len(_SYNTHESISED) > MEMO_LIMIT:
            _SYNTHESISED.clear()
        table = protection_table()
        out: set[str] = set()
        for bits, kernels, when in data["parsed"]:
            if cut.kernel in kernels and table.host_holds(cut, when):
                out |= bits
        hit = _SYNTHESISED[cut] = frozenset(out)
    return hit


#: synthesised_bits by the host view cut to what its conditions read
_SYNTHESISED: dict[HostView, frozenset[str]] = {}


def kvm_offers_synthesised(kernel: str) -> frozenset[str]:
    return frozenset(_kernel_bits()["kvm_offers"].get(kernel, ()))
