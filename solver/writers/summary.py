"""``--summary``: the report of a fleet at a glance, one block per kind of domain.

Domains of one kind share their outcome: the same answer (the same ``-cpu`` argument), or
the same reason to have none (the same kinds of facts in their conflict: which feature
hosts lack, which bug no guest CPU protects against), or a time-out.  A fleet of 2,000
domains has a few dozen kinds, so this fits on a few screens where the full report runs to
hundreds of thousands of lines.  Kinds are listed by the machines they cover, most first;
each names its largest domains, so the full report (``--format text`` or ``json``) can be
searched for them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from cpusolve.core.guest import qemu_cpu_arg
from cpusolve.report.records import DomainResult, Result

#: domains named per kind, shortfalls and conflict facts listed per kind
EXAMPLES = 3
TOP = 5


@dataclass
class _Kind:
    title: str
    domains: list[DomainResult] = field(default_factory=list)

    @property
    def machines(self) -> int:
        return sum(h.count for d in self.domains for h in d.hosts)


def _conflict_fact(c) -> str:
    if c.kind == "lacks" and c.feature:
        return f"some hosts cannot expose {c.feature}"
    if c.bug:
        return f"no guest CPU protects against {c.bug} on some hosts ({c.kind})"
    if c.kind == "vendor":
        return "hosts of more than one CPU vendor"
    return f"{c.kind}{': ' + c.feature if c.feature else ''}"


def _fix(c) -> str:
    """A conflict's fix without the host names (they differ between domains of a kind)."""
    if c.kind == "lacks" and c.feature:
        return f"give every host {c.feature} (microcode/BIOS/kernel update), or split the domain"
    if c.bug:
        return f"split the domain, or waive {c.bug} (requirements.waive) if you accept guests unprotected"
    return c.fix


def _key(d: DomainResult) -> tuple:
    if d.guest is not None:
        return ("answer", d.status, d.vendor, qemu_cpu_arg(d.guest))
    if d.status == "infeasible":
        return ("infeasible", d.vendor, tuple(sorted({_conflict_fact(c) for c in d.conflicts})))
    return (d.status, d.vendor)


def _title(key: tuple) -> str:
    if key[0] == "answer":
        return f"{key[1].upper()} ({key[2]}): -cpu {key[3]}"
    if key[0] == "infeasible":
        return f"INFEASIBLE ({key[1] or 'mixed vendors'}): " + "; ".join(key[2])
    return f"{key[0].upper()} ({key[1]})"


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def render_summary(result: Result) -> str:
    kinds: dict[tuple, _Kind] = {}
    for d in result.domains:
        key = _key(d)
        kinds.setdefault(key, _Kind(_title(key))).domains.append(d)
    status = Counter(d.status for d in result.domains)
    machines = sum(k.machines for k in kinds.values())
    lines = [f"{_n(len(result.domains), 'domain')}, {_n(machines, 'machine')} (counted once per domain), "
             f"{_n(len(kinds), 'kind')}: " + ", ".join(f"{n} {s}" for s, n in sorted(status.items())), ""]
    order = sorted(kinds.items(), key=lambda kv: (-kv[1].machines, -len(kv[1].domains), kv[0]))
    for n, (key, kind) in enumerate(order, start=1):
        doms = kind.domains
        lines.append(f"Kind {n}: {_n(len(doms), 'domain')}, {_n(kind.machines, 'machine')}: {kind.title}")
        biggest = sorted(doms, key=lambda d: (-sum(h.count for h in d.hosts), d.index))[:EXAMPLES]
        lines.append("  domains:   " + ", ".join(  # by the hosts whose VMs get this outcome
            f"{d.index} ({d.starts[0]}{' +' + str(len(d.starts) - 1) if len(d.starts) > 1 else ''})"
            for d in biggest) + (f", and {len(doms) - EXAMPLES} more" if len(doms) > EXAMPLES else ""))
        if key[0] == "infeasible":
            fixes = Counter(_fix(c) for d in doms for c in d.conflicts)
            for fix, count in sorted(fixes.items(), key=lambda fc: (-fc[1], fc[0]))[:TOP]:
                lines.append(f"  fix:       {fix} ({count} domain{'s' if count != 1 else ''})")
        short = Counter(s.feature for d in doms for s in d.shortfalls)
        if short:
            top = sorted(short.items(), key=lambda fc: (-fc[1], fc[0]))[:TOP]
            lines.append("  held back: " + ", ".join(f"{f} ({c})" for f, c in top)
                         + (" ..." if len(short) > TOP else "")
                         + "  (feature: domains where some hosts lack it)")
        unprotected = Counter(b for d in doms for b in {p.bug for p in d.protection if p.status != "protected"})
        if unprotected:
            lines.append("  not fully protected: " + ", ".join(
                f"{b} ({c})" for b, c in sorted(unprotected.items(), key=lambda bc: (-bc[1], bc[0])))
                + "  (bug: domains where some host kind is not fully protected)")
        lines.append("")
    return "\n".join(lines)
