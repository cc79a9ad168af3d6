"""The independent checker: plain Python, no Z3, re-checks every answer before it is printed.

It rebuilds the guest's visible CPU from the printed model and flags (not from solver
terms) and tests every rule directly on concrete sets, with the concrete interpreter of the
same rule table.  A problem found here is a bug in cpusolve and is never output.
"""

from __future__ import annotations

from cpusolve.encodings.catalog import Catalog
from cpusolve.encodings.rules import ConcreteOps, CpuView, load_rules
from cpusolve.encodings.safety import obligations
from cpusolve.hosts import HostFacts
from cpusolve.pool import Requirements
from cpusolve.result import GuestCpu


def check_answer(cat: Catalog, types: tuple[HostFacts, ...], req: Requirements, guest: GuestCpu,
                 names: list[str] | None = None) -> list[str]:
    """Every way ``guest`` fails the domain of ``types``; empty when it is sound."""
    problems: list[str] = []
    label = names or [f"host type {i}" for i in range(len(types))]
    try:
        model = cat.model(guest.model)
    except Exception:
        return [f"model {guest.model} is not in the catalog"]
    if model.name != guest.model:
        problems.append(f"model {guest.model} is an alias, not a versioned name")
    for f in guest.plus:
        if f in model.features:
            problems.append(f"+{f} but {model.name} already has {f}")
    for f in guest.minus:
        if f not in model.features:
            problems.append(f"-{f} but {model.name} does not have {f}")
    for f in (*guest.plus, *guest.minus):
        if f not in cat.features:
            problems.append(f"flag {f} is not a known feature")
        elif not cat.features[f].guest_visible:
            problems.append(f"flag {f} is not a CPU feature a guest model may carry")
        elif req.qemu == "7.2" and not cat.features[f].qemu_7_2:
            problems.append(f"flag {f} is unknown to QEMU 7.2")
    if req.qemu == "7.2" and not model.qemu_7_2:
        problems.append(f"model {model.name} is unknown to QEMU 7.2")
    visible = guest.visible()
    vendor, fam, mod, step = guest.identity()

    # Rule 1: runnable on every host (vendor and every visible feature), dependencies hold.
    for i, t in enumerate(types):
        if t.vendor != vendor:
            problems.append(f"{label[i]} is {t.vendor}, the guest is {vendor}")
        missing = sorted(visible - t.features)
        if missing:
            problems.append(f"{label[i]} cannot expose {', '.join(missing)}")
    problems += [f"dependency: {p}" for p in cat.closure_ok(visible)]
    if guest.fms is not None and guest.fms not in {t.fms for t in types}:
        problems.append(f"family/model/stepping {guest.fms} is neither the model's nor a host's")

    # Requirements.
    for f in sorted(req.require - visible):
        problems.append(f"required {f} is not visible")
    for f in sorted(req.forbid & visible):
        problems.append(f"forbidden {f} is visible")
    if req.min_model:
        short = sorted((cat.model(req.min_model).features & cat.guest_features) - visible)
        if short:
            problems.append(f"below min_model {req.min_model}: lacks {', '.join(short)}")
    if req.vendor and req.vendor != vendor:
        problems.append(f"vendor {vendor} but {req.vendor} is required")

    # Rules 2 and 3 and the hint rule, each obligation read by the concrete interpreter.
    view = CpuView(vendor=vendor, family=fam, model=mod, stepping=step, features=visible, hypervisor=True)
    for ob in obligations(vendor, types, req.kernels, req.policy, req.waive):
        table = load_rules(ob.kernel)
        if not table.walk(ob.expr, ConcreteOps(view), {}):
            who = ", ".join(label[i] for i in ob.causes)
            why = table.explain(view, ob.bug) if ob.kind == "truthful" else ""
            problems.append(f"unsafe: {ob.describe()} ({who}){': ' + why if why else ''}")
    if "rsba" in visible and "msr10a:19" in visible:
        problems.append("guest sees both RSBA and RRSBA")
    return problems
