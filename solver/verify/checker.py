"""The independent checker: plain Python, no Z3, re-checks every answer before it is printed.

It rebuilds the guest's visible CPU from the printed model and flags (not from solver
terms) and tests every rule directly on concrete sets, with the concrete interpreter of the
same rule table.  A problem found here is a bug in cpusolve and is never output.  The same
checks answer the public ``check(guest, host)`` and ``cpusolve audit``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from cpusolve.core.guest import GuestCpu
from cpusolve.core.hosts import HostFacts
from cpusolve.core.pool import Requirements
from cpusolve.encodings import targets
from cpusolve.encodings.catalog import Catalog
from cpusolve.encodings.protection import actions_named, guest_text, needs_text, protection_table
from cpusolve.encodings.rules import load_rules
from cpusolve.encodings.safety import Obligation, obligations
from cpusolve.encodings.spelling import action_label


@dataclass(frozen=True)
class Problem:
    """One way a guest CPU fails a domain."""

    #: "model", "flag", "vendor", "missing", "dependency", "fms", "require", "forbid",
    #: "min_model", "unprotected", "no-attempt"
    kind: str
    text: str
    hosts: tuple[int, ...] = ()  # indexes into the checked host types
    feature: str | None = None
    bug: str | None = None
    kernel: str | None = None
    #: the safety obligation that fails (kinds false-immunity, mechanism, hint)
    obligation: Obligation | None = None
    #: why the guest kernel decides as it does (false immunities: the deciding rule atoms)
    why: str = ""

    @property
    def unsafe(self) -> bool:
        return self.kind in ("unprotected", "no-attempt")


def problems(cat: Catalog, types: tuple[HostFacts, ...], req: Requirements, guest: GuestCpu,
             names: list[str] | None = None) -> list[Problem]:
    """Every way ``guest`` fails the domain of ``types``; empty when it is sound."""
    out: list[Problem] = []
    label = names or [f"host type {i}" for i in range(len(types))]
    try:
        model = cat.model(guest.model)
    except Exception:
        return [Problem("model", f"model {guest.model} is not in the catalog")]
    if model.name != guest.model:
        out.append(Problem("model", f"model {guest.model} is an alias, not a versioned name"))
    target = targets.target(req.qemu, req.libvirt)
    for f in guest.plus:
        if f in model.features:
            out.append(Problem("flag", f"+{f} but {model.name} already has {f}", feature=f))
    for f in guest.minus:
        if f not in model.features:
            out.append(Problem("flag", f"-{f} but {model.name} does not have {f}", feature=f))
    for f in (*guest.plus, *guest.minus):
        if f not in cat.features:
            out.append(Problem("flag", f"flag {f} is not a known feature", feature=f))
        elif not cat.features[f].guest_visible:
            out.append(Problem("flag", f"flag {f} is not a CPU feature a guest model may carry", feature=f))
        elif f not in target.features:
            out.append(Problem("flag", f"flag {f} is unknown to {target.label}", feature=f))
    if model.name not in target.models:
        out.append(Problem("model", f"model {model.name} is unknown to {target.label}"))
    visible = guest.visible()
    vendor, fam, mod, step = guest.identity()

    # Rule 1: runnable on every host (vendor and every visible feature), dependencies hold.
    for i, t in enumerate(types):
        if t.vendor != vendor:
            out.append(Problem("vendor", f"{label[i]} is {t.vendor}, the guest is {vendor}", (i,)))
        for f in sorted(visible - t.features):
            out.append(Problem("missing", f"{label[i]} cannot expose {f}", (i,), feature=f))
    out += [Problem("dependency", f"dependency: {f} needs {' or '.join(group)}", feature=f)
            for f, group in cat.unmet(visible)]
    if guest.fms is not None and guest.fms not in {t.fms for t in types} | {model.fms}:
        out.append(Problem("fms", f"family/model/stepping {guest.fms} is neither the model's nor a host's"))

    # Requirements.
    for f in sorted(req.require - visible):
        out.append(Problem("require", f"required {f} is not visible", feature=f))
    for f in sorted(req.forbid & visible):
        out.append(Problem("forbid", f"forbidden {f} is visible", feature=f))
    if req.min_model:
        short = sorted((cat.model(req.min_model).features & cat.guest_features) - visible)
        if short:
            out.append(Problem("min_model", f"below min_model {req.min_model}: lacks {', '.join(short)}"))
    if req.vendor and req.vendor != vendor:
        out.append(Problem("vendor", f"vendor {vendor} but {req.vendor} is required"))

    # The safety rule: on every host, the guest's actions protect against each host bug
    # (or, policy compat, the guest attempts the right mitigation), read concretely.
    view = guest.view()
    memos: dict[tuple, dict] = {}  # per kernel and boot facts: the rule references' verdicts
    for ob in obligations(vendor, types, req.kernels, req.policy, req.waive):
        if ob.holds(view, memos.setdefault((ob.kernel, ob.boot), {})):
            continue
        who = ", ".join(label[i] for i in ob.causes)
        why = failure_text(types[ob.causes[0]], ob, view)
        kind = "unprotected" if ob.kind == "protected" else "no-attempt"
        out.append(Problem(kind, f"unsafe: {ob.describe()} on {who}: {why}", ob.causes, bug=ob.bug,
                           kernel=ob.kernel, obligation=ob, why=why))
    return out


def check_answer(cat: Catalog, types: tuple[HostFacts, ...], req: Requirements, guest: GuestCpu,
                 names: list[str] | None = None) -> list[str]:
    """The problems of :func:`problems` as readable lines."""
    return [p.text for p in problems(cat, types, req, guest, names)]


def failure_text(host, ob: Obligation, view) -> str:
    """Why an obligation fails, in terms of what the guest does and what the host needs."""
    rt = load_rules(ob.kernel)
    does = rt.does(dataclasses.replace(view, boot=ob.boot))
    table = protection_table()
    entries = list(table.accepted(host.host_view(), ob.bug))
    named = frozenset().union(*(actions_named(e.guest) for e in entries)) if entries else frozenset()
    if ob.kind == "attempt":
        named = actions_named(ob.expr)
    runs = sorted(does & named) or sorted(a for a in does if a in ATTEMPTS.get(ob.bug, ()))
    running = (f"the guest runs {' and '.join(action_label(a) for a in runs)}" if runs
               else "the guest runs no mitigation for it")
    if rt.affected(view).get(ob.bug) is False:
        running += f" (it believes itself not affected: {rt.explain(view, ob.bug)})"
    if not entries:
        return f"{running}; no guest mitigation protects against {ob.bug} on this host"
    if ob.kind == "attempt":
        return f"{running}; it must at least attempt {guest_text(ob.expr)}"
    return f"{running}; protection there needs {needs_text(entries)}"


#: The actions worth naming when a guest runs none of those a host needs.
ATTEMPTS = {"mds": ("verw_user",), "tsx_async_abort": ("verw_user",), "mmio_stale_data": ("verw_user",),
            "reg_file_data_sampling": ("verw_user",), "tsa": ("verw_user",),
            "spectre_v2": ("retpoline", "eibrs", "ibrs_entry"), "retbleed": ("untrained_ret", "ibrs_entry", "eibrs"),
            "spec_rstack_overflow": ("srso_safe_ret", "srso_alias", "ibpb_entry")}
