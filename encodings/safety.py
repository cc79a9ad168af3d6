"""What a guest CPU must satisfy so that a Linux guest is protected on every host it may reach.

One obligation per host kind, host bug and modelled guest kernel (docs/DESIGN.md,
"The safety rule"): the mitigation the guest kernel selects from what it is shown
(``rules.RuleTable.actions``) protects against the bug on that host
(``protection.ProtectionTable``: the host's silicon, microcode, kernel, TSX and SMT decide
which guest actions work there).  A guest that believes itself immune does nothing, so
truthfulness follows; a waived bug has no obligation and weakens no other bug's.

Policy ``strict`` demands protection; ``compat`` demands that the guest at least attempts
the right kind of mitigation on every host (and the report lists where it is ineffective).

The obligations are expressions over the *guest* view, in the rule language, so the
optimizer (partial evaluation per identity, then Z3) and the checker (concrete
interpreter) read the same facts.  Host facts are decided here, concretely.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import lru_cache

from cpusolve.encodings import expr as ex
from cpusolve.encodings.cpu import CpuView
from cpusolve.encodings.expr import Expr
from cpusolve.encodings.protection import protection_table
from cpusolve.encodings.rules import load_rules


@dataclass(frozen=True)
class Obligation:
    kind: str  # "protected" (policy strict) | "attempt" (policy compat)
    bug: str
    kernel: str  # the guest kernel whose actions ``expr`` reads
    expr: Expr  # over the guest view
    #: indexes of the domain's host kinds this obligation protects the guest on
    causes: tuple[int, ...]
    #: facts of the machine the guest boots on, under which its kernel decides
    boot: frozenset[str] = frozenset()

    def holds(self, cpu: CpuView, memo: dict | None = None) -> bool:
        """Whether a concrete guest view meets this obligation; ``memo`` keeps the rule
        references' verdicts for further obligations of the same kernel and boot facts on
        the same view."""
        if cpu.boot != self.boot:
            cpu = dataclasses.replace(cpu, boot=self.boot)
        return load_rules(self.kernel).holds(self.expr, cpu, memo)

    def describe(self) -> str:
        if self.kind == "protected":
            return f"a Linux {self.kernel} guest must be protected against {self.bug}"
        return f"a Linux {self.kernel} guest must at least attempt to mitigate {self.bug}"


def boot_facts(host) -> frozenset[str]:
    """What a guest kernel that boots on ``host`` (a HostFacts) finds when it probes MSRs.

    KVM does not emulate AMD's LS_CFG or FP_CFG (the reads fault, so those probes fail on
    every host).  A 6.1 guest of family 0x19 writes PRED_CMD.SBPB to detect the SRSO
    microcode: a 6.12 KVM passes the write to a CPU that implements SBPB, a 6.1 KVM
    intercepts it and refuses every bit but IBPB.
    """
    if host.kernel != "6.1" and "sbpb" in host.silicon:
        return frozenset({"msr_ok:PRED_CMD_SBPB"})
    return frozenset()


def obligations(vendor: str, types, kernels, policy: str, waive) -> list[Obligation]:
    """Every obligation a guest of this domain has, in a stable order; obligations equal on
    several host kinds are one, caused by all of them."""
    return list(_obligations(vendor, tuple(types), tuple(kernels), policy, frozenset(waive)))


@lru_cache(maxsize=1 << 12)
def _obligations(vendor: str, types: tuple, kernels: tuple, policy: str, waive: frozenset) -> tuple[Obligation, ...]:
    boots = sorted({boot_facts(t) for t in types}, key=sorted)
    kind = "protected" if policy == "strict" else "attempt"
    groups: dict[tuple, list[int]] = {}
    reading = protection_table().reading  # host kinds that read alike share one answer
    for i, t in enumerate(types):
        for bug, expr in host_needs(reading(t.host_view()), kind, waive):
            for kernel in kernels:
                for boot in boots:
                    groups.setdefault((bug, kernel, boot, expr), []).append(i)
    return tuple(Obligation(kind, bug, kernel, expr, tuple(causes), boot)
                 for (bug, kernel, boot, expr), causes in groups.items())


@lru_cache(maxsize=1 << 14)
def host_needs(host, kind: str, waive: frozenset) -> tuple[tuple[str, Expr], ...]:
    """What a guest must do on one host view, per bug in name order (a host kind is in many
    domains of a fleet, so this is asked once per host kind rather than per domain)."""
    table = protection_table()
    out = []
    for bug in table.guest_bugs(host):
        if bug in waive:
            continue
        expr = table.protection(host, bug) if kind == "protected" else table.attempt(host, bug)
        if expr != ex.TRUE:
            out.append((bug, expr))
    return tuple(out)
