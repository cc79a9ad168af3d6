"""OpenStack Nova: one ``nova.conf`` fragment (a single ``[libvirt]`` section) per compute host.

Nova reads ``cpu_models`` and ``cpu_model_extra_flags`` from the compute host's own
nova.conf and gives them to the instances *started* there (they keep that CPU when they
migrate), so each compute host gets the answer of the domain its VMs start in, in one file
of its own (``-o DIR``: ``DIR/<host>.conf``, for ``/etc/nova/nova.conf.d/``): several
``[libvirt]`` sections in one file are an error to configparser and silently "the last one"
to oslo.config.  Names are the target libvirt's (``writers.libvirt``): Nova's startup check
(``_check_cpu_compatibility``) looks the model up in libvirt's model names and asks libvirt
to compare model plus flags with what the hypervisor can give.  Nova has no way to set a
family/model/stepping: such an answer's file sets nothing and says why (the CLI exits 1).
"""

from __future__ import annotations

from dataclasses import dataclass

from cpusolve.errors import InputError
from cpusolve.report.records import Result
from cpusolve.writers.libvirt import NotExpressible, libvirt_cpu


@dataclass(frozen=True)
class NovaFile:
    host: str
    text: str
    #: False: the file configures nothing (no answer, or one Nova cannot express)
    usable: bool


def nova_files(result: Result) -> list[NovaFile]:
    out = []
    for d in result.domains:
        for host in d.starts:
            head = [f"# cpusolve: compute host {host}, migration domain {d.index} "
                    f"({len(d.hosts)} host{'s' if len(d.hosts) != 1 else ''}); for /etc/nova/nova.conf.d/"]
            if d.guest is None:
                out.append(NovaFile(host, "\n".join([*head, f"# NOT CONFIGURED: the domain is {d.status}: no "
                                                    "protected guest CPU (cpusolve POOL says why)", ""]), False))
                continue
            try:
                c = libvirt_cpu(d)
            except NotExpressible as e:
                out.append(NovaFile(host, "\n".join([*head, f"# NOT CONFIGURED: {e}; solve with --libvirt", ""]),
                                    False))
                continue
            if c.fms is not None:
                fam, mod, step = c.fms
                out.append(NovaFile(host, "\n".join([
                    *head, f"# NOT CONFIGURED: guests must see family {fam} model {mod} stepping {step} to be "
                           "protected on these hosts, which Nova cannot set; start them through libvirt with the "
                           "answer's <qemu:commandline> (cpusolve apply), or split the domain", ""]), False))
                continue
            lines = [*head, f"# libvirt {c.version} names; QEMU builds {d.guest.model}"]
            if c.threads > 1:
                lines.append(f"# REQUIRED: flavors of these guests need the extra spec hw:cpu_threads={c.threads} "
                             "(a vCPU topology with SMT threads), which nova.conf cannot set")
            lines += ["[libvirt]", "cpu_mode = custom", f"cpu_models = {c.model}"]
            flags = [f"+{f}" for f in c.require] + [f"-{f}" for f in c.disable]
            if flags:
                lines.append(f"cpu_model_extra_flags = {', '.join(flags)}")
            out.append(NovaFile(host, "\n".join([*lines, ""]), True))
    return out


def render_nova(result: Result) -> str:
    """The one compute host's fragment; more hosts need a directory (``-o DIR``)."""
    files = nova_files(result)
    if len(files) != 1:
        raise InputError(f"--format nova: {len(files)} compute hosts need one nova.conf fragment each; "
                         f"give -o DIR (writes DIR/<host>.conf)")
    return files[0].text
