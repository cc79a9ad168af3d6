"""How the answer protects the guest on each kind of host, and where it does not fully.

For every host kind and every bug its silicon has, the entry of the protection table that
the chosen guest meets there: what the guest's kernel does and why that works on that
host ("mds on skx-01 (x20): verw_user: VERW clears ... only with the host's MD_CLEAR
microcode"), with the residual Linux itself leaves (SMT siblings) where there is one.
Under policy compat, the hosts where the guest's attempt is ineffective are listed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import lru_cache

from cpusolve.core.guest import GuestCpu
from cpusolve.core.hosts import HostRef
from cpusolve.core.pool import Requirements
from cpusolve.domains.kinds import HostKinds
from cpusolve.encodings.expr import Ref
from cpusolve.encodings.protection import actions_named, guest_text, host_text, protection_table
from cpusolve.encodings.rules import load_rules
from cpusolve.encodings.safety import boot_facts
from cpusolve.encodings.spelling import action_label
from cpusolve.report.records import ref_list


@dataclass(frozen=True)
class Protection:
    bug: str
    hosts: tuple[HostRef, ...]
    kernels: tuple[str, ...]
    #: "protected", "partial" (a residual only the host can remove), "ineffective" (compat:
    #: the guest attempts it, the host's microcode makes it useless), "unprotected" (waived)
    status: str
    #: what the guest's kernel does that protects, and what it takes on these hosts
    does: str
    why: str
    residual: str | None = None
    #: what makes it work on these hosts, in words ("Zen 3/4 + verw-clear"; "" = any host)
    condition: str = ""

    def to_dict(self) -> dict:
        return {"bug": self.bug, "hosts": ref_list(self.hosts), "kernels": list(self.kernels),
                "status": self.status, "does": self.does, "why": self.why, "residual": self.residual,
                "condition": self.condition}

    def does_text(self) -> str:
        """The guest's actions in operator words ("IBRS on kernel entry")."""
        if self.status == "unprotected":
            return "nothing (waived)"
        if self.does == "nothing":
            return "no guest action needed"
        names = [n.strip() for n in self.does.split(",")]
        if self.status != "ineffective" and all(n and " " not in n for n in names):
            return " and ".join(action_label(n) for n in names)
        return self.does


def protection_report(kinds: HostKinds, req: Requirements, guest: GuestCpu) -> tuple[Protection, ...]:
    found: dict[tuple, list[tuple[int, str]]] = {}
    for i, t in enumerate(kinds.types):
        for bug, kernel, item in _per_kind(t, req, guest):
            found.setdefault((bug, item), []).append((i, kernel))
    out = []
    for (bug, (status, does, why, residual, condition)), where in found.items():
        idx = tuple(sorted({i for i, _ in where}))
        kernels = tuple(k for k in req.kernels if any(kk == k for _, kk in where))
        out.append(Protection(bug, kinds.of(idx), kernels, status, does, why, residual, condition))
    out.sort(key=lambda p: (p.bug, p.status != "protected", [h.name for h in p.hosts]))
    return tuple(out)


@lru_cache(maxsize=1 << 12)
def _reader(kernel: str, view):
    """Whether a guest-side condition holds for a Linux ``kernel`` guest on ``view``: one
    memo per (kernel, view), so the guest kernel's actions and bug bits are worked out once
    for every bug, every host kind and every domain that shows this guest."""
    rt = load_rules(kernel)
    memo: dict = {}
    results: dict = {}

    def holds(expr) -> bool:
        hit = results.get(expr)
        if hit is None:
            hit = results[expr] = rt.holds(expr, view, memo)
        return hit
    return holds


def _per_kind(t, req: Requirements, guest: GuestCpu) -> tuple:
    """(bug, kernel, (status, does, why, residual)) on one host kind: a function of what
    the protection table reads of the kind, the facts its guests boot under, the
    requirements and the guest, which many domains and kinds share."""
    return _per_reading(protection_table().reading(t.host_view()), boot_facts(t), req, guest)


@lru_cache(maxsize=1 << 14)
def _per_reading(host, boot: frozenset[str], req: Requirements, guest: GuestCpu) -> tuple:
    table = protection_table()
    view = _booted_view(guest, boot)
    readers = [(kernel, _reader(kernel, view)) for kernel in req.kernels]
    out = []
    for bug in table.guest_bugs(host):
        for kernel, holds in readers:
            entry = next((e for e in table.accepted(host, bug) if holds(e.guest)), None)
            if entry is None:  # policy compat: a residual strict does not accept
                entry = next((e for e in table.entries_on(host, bug) if e.status == "partial" and not e.strict
                              and holds(e.guest)), None)
            if entry is not None:
                # what rt.does(view) has of these: the reader has decided them already
                does = ", ".join(a for a, ref in _action_refs(kernel, entry.guest) if holds(ref))
                out.append((bug, kernel, (entry.status, does or guest_text(entry.guest), entry.why, entry.residual,
                                          host_text(entry.host))))
            elif bug in req.waive:
                out.append((bug, kernel, ("unprotected", "-", "waived (requirements.waive)", None, "")))
            else:  # policy compat: attempted, but this host's microcode makes it ineffective
                out.append((bug, kernel, ("ineffective", guest_text(table.attempt(host, bug)),
                                          "the guest attempts the mitigation, but it does not work on this host",
                                          None, "")))
    return tuple(out)


@lru_cache(maxsize=1 << 12)
def _booted_view(guest: GuestCpu, boot: frozenset[str]):
    """What the guest's kernel sees booted on a host where ``boot`` holds (a domain's host
    kinds share one or two)."""
    return dataclasses.replace(guest.view(), boot=boot)


@lru_cache(maxsize=1 << 12)
def _action_refs(kernel: str, guest_cond) -> tuple[tuple[str, Ref], ...]:
    """The Linux ``kernel`` actions a guest condition names, by name, each with one
    reference object (the reader's memo then finds it by identity)."""
    names = actions_named(guest_cond) & load_rules(kernel).action_names
    return tuple((a, Ref("action", a)) for a in sorted(names))
