"""The independent checker: plain Python, no Z3, re-checks every answer before it is printed.

It rebuilds the guest's visible CPU from the printed model and flags (not from solver
terms) and tests every rule directly on concrete sets, with the concrete interpreter of the
same rule table.  A problem found here is a bug in cpusolve and is never output.  The same
checks answer the public ``check(guest, host)`` and ``cpusolve audit``.
"""

from __future__ import annotations

from dataclasses import dataclass

from cpusolve.core.guest import GuestCpu
from cpusolve.core.hosts import HostFacts
from cpusolve.core.pool import Requirements
from cpusolve.encodings import targets
from cpusolve.encodings.catalog import Catalog
from cpusolve.encodings.rules import load_rules
from cpusolve.encodings.safety import Obligation, obligations


@dataclass(frozen=True)
class Problem:
    """One way a guest CPU fails a domain."""

    #: "model", "flag", "vendor", "missing", "dependency", "fms", "require", "forbid",
    #: "min_model", "false-immunity", "mechanism", "hint"
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
        return self.kind in ("false-immunity", "mechanism", "hint")


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
    target = targets.qemu(req.qemu)
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

    # Rules 2 and 3 and the hint rule, each obligation read by the concrete interpreter.
    view = guest.view()
    for ob in obligations(vendor, types, req.kernels, req.policy, req.waive):
        if ob.holds(view):
            continue
        who = ", ".join(label[i] for i in ob.causes)
        kind = {"truthful": "false-immunity"}.get(ob.kind, ob.kind)
        why = load_rules(ob.kernel).explain(view, ob.bug) if ob.kind == "truthful" else ""
        out.append(Problem(kind, f"unsafe: {ob.describe()} ({who}){': ' + why if why else ''}",
                           ob.causes, bug=ob.bug, kernel=ob.kernel, obligation=ob, why=why))
    if "rsba" in visible and "msr10a:19" in visible:
        out.append(Problem("hint", "guest sees both RSBA and RRSBA"))
    return out


def check_answer(cat: Catalog, types: tuple[HostFacts, ...], req: Requirements, guest: GuestCpu,
                 names: list[str] | None = None) -> list[str]:
    """The problems of :func:`problems` as readable lines."""
    return [p.text for p in problems(cat, types, req, guest, names)]
