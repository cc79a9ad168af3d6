"""The guests file of ``cpusolve audit``: running guests, their CPUs and where they may go.

The guests file (JSON) lists each guest's name, its CPU (a QEMU ``-cpu`` string, or a
libvirt domain XML file under ``libvirt``; ``threads``: the SMT threads per core of a
``-cpu`` guest's vCPU topology, 1 unless stated), and where it runs (``host``: its migration
domain follows from the pool's graph) or may migrate (``domain``: a list of hosts).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from cpusolve.core.guest import GuestCpu
from cpusolve.core.pool import Pool
from cpusolve.encodings.catalog import suggest
from cpusolve.errors import InputError
from cpusolve.inputs.guest_cpu import HostCpuGuest, parse_libvirt_cpu, parse_qemu_cpu
from cpusolve.inputs.untrusted import is_printable_name, parse_json, read_text

GUEST_KEYS = {"name", "cpu", "libvirt", "host", "domain", "description", "threads"}


@dataclass(frozen=True)
class GuestSpec:
    name: str
    #: None when the guest's CPU could not be read (``error``) or is the host's own (``mode``)
    cpu: GuestCpu | None
    source: str  # the -cpu string or the XML path, as given
    #: where it runs (its migration domain follows from the pool's graph), or None
    host: str | None
    #: the hosts it may reach, as the file lists them, or None
    domain: tuple[str, ...] | None
    #: why its CPU could not be read (one guest's bad file is its own line, not the audit's end)
    error: str | None = None
    #: "host-passthrough" / "host-model": the guest sees its start host's CPU
    mode: str | None = None
    #: "libvirt" when the guest came as a domain XML (its fix is given as a <cpu>)
    kind: str = "qemu"


def read_guests(path: str, pool: Pool) -> list[GuestSpec]:
    label = str(path)
    data = parse_json(read_text(path, label, what="a guests file"), label, "guests file")
    if isinstance(data, dict):
        data = data.get("guests")
    if not isinstance(data, list) or not data:
        raise InputError(f"{label}: a guests file is a JSON list (or {{\"guests\": [...]}}) of guests")
    out, seen = [], set()
    for i, g in enumerate(data):
        if not isinstance(g, dict) or not isinstance(g.get("name"), str) or not g["name"]:
            raise InputError(f"{label}: guest #{i + 1} needs a 'name'")
        name = g["name"]
        if not is_printable_name(name):
            raise InputError(f"{label}: guest #{i + 1}: name {name[:40]!r} has control characters")
        where = f"{label}: guest '{name}': "
        if name in seen:
            raise InputError(f"{label}: duplicate guest name '{name}'")
        seen.add(name)
        for key in sorted(set(g) - GUEST_KEYS):
            raise InputError(f"{where}unknown key '{key}'" + suggest(key, GUEST_KEYS))
        if ("cpu" in g) == ("libvirt" in g):
            raise InputError(f"{where}give exactly one of 'cpu' (a -cpu string) or 'libvirt' (a domain XML file)")
        error = mode = None
        cpu = None
        if "cpu" in g:
            if not isinstance(g["cpu"], str):
                raise InputError(f"{where}'cpu' must be a -cpu string")
            source, kind = g["cpu"], "qemu"
            try:
                cpu = parse_qemu_cpu(g["cpu"], where)
            except InputError as e:
                error = str(e)
        else:
            if not isinstance(g["libvirt"], str):
                raise InputError(f"{where}'libvirt' must be the path of a domain XML file")
            xml = Path(g["libvirt"])
            if not xml.is_absolute():
                xml = Path(label).parent / xml
            source, kind = g["libvirt"], "libvirt"
            try:
                cpu = parse_libvirt_cpu(xml)
            except HostCpuGuest as e:
                mode = e.mode
            except InputError as e:
                error = str(e)
        if "threads" in g:
            threads = g["threads"]
            if not isinstance(threads, int) or isinstance(threads, bool) or threads not in (1, 2):
                raise InputError(f"{where}'threads' (SMT threads per core of its vCPU topology) must be 1 or 2")
            if cpu is not None:
                cpu = dataclasses.replace(cpu, threads=threads)
        if ("host" in g) == ("domain" in g):
            raise InputError(f"{where}give exactly one of 'host' (where it runs) or 'domain' (hosts it may reach)")
        if "host" in g:
            if g["host"] not in pool.hosts:
                raise InputError(f"{where}host '{g['host']}' is not in the pool" + suggest(str(g["host"]), pool.hosts))
            host, domain = g["host"], None
        else:
            if not isinstance(g["domain"], list) or not g["domain"]:
                raise InputError(f"{where}'domain' must be a non-empty list of hosts")
            for h in g["domain"]:
                if h not in pool.hosts:
                    raise InputError(f"{where}host '{h}' is not in the pool" + suggest(str(h), pool.hosts))
            host, domain = None, tuple(sorted(set(g["domain"])))
        out.append(GuestSpec(name, cpu, source, host, domain, error, mode, kind))
    return out
