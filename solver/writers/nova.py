"""OpenStack Nova ``nova.conf`` ``[libvirt]`` sections, one per migration domain.

Nova takes a named model and extra flags (``cpu_model_extra_flags``, ``+``/``-`` prefixes
since Stein) in libvirt's spellings; it has no way to set family/model/stepping, so an
answer that needs one is printed with a warning instead of silently losing it.
"""

from __future__ import annotations

from cpusolve.encodings.catalog import catalog
from cpusolve.report.records import Result


def render_nova(result: Result) -> str:
    cat = catalog()
    out = []
    for d in result.domains:
        out.append(f"# domain {d.index}: compute hosts {', '.join(h.name for h in d.hosts)}")
        if d.guest is None:
            out.append(f"# {d.status}: no safe guest CPU; see cpusolve --format text")
            out.append("")
            continue
        flags = [f"+{cat.features[f].libvirt or f}" for f in d.guest.plus]
        flags += [f"-{cat.features[f].libvirt or f}" for f in d.guest.minus]
        if d.guest.fms is not None:
            fam, mod, step = d.guest.fms
            out.append(f"# WARNING: guests must see family {fam} model {mod} stepping {step} to mitigate "
                       "their hosts' bugs; Nova cannot set it. Use the libvirt output with its "
                       "<qemu:commandline>, or split this domain.")
        if d.guest.threads > 1:
            out.append(f"# REQUIRED: flavors of these guests need the extra spec hw:cpu_threads={d.guest.threads} "
                       "(a vCPU topology with SMT threads), which nova.conf cannot set")
        out.append("[libvirt]")
        out.append("cpu_mode = custom")
        out.append(f"cpu_models = {d.guest.model}")
        if flags:
            out.append(f"cpu_model_extra_flags = {', '.join(flags)}")
        out.append("")
    return "\n".join(out)
