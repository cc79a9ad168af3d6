"""``cpusolve pool init``: a pool.json skeleton from host fact files.

Every file is read (so a bad one fails now, with its name, not at solve time), each host is
named after its file, and hosts whose facts are identical are merged into one entry with a
``count``: a 500-host cluster of three CPU types becomes three entries, which is also what
the solver works on.  The result is a plain dict for the CLI to write; nothing here parses
arguments or prints.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cpusolve.errors import InputError
from cpusolve.inputs.facts import FactFile, read_fact_file
from cpusolve.inputs.untrusted import is_directory


def host_names(paths: list[Path]) -> list[str]:
    """File stems; stems that collide get their directory's name in front."""
    stems = [p.name if is_directory(p, str(p)) else p.stem for p in paths]
    names = [s if stems.count(s) == 1 else f"{p.resolve().parent.name}-{s}"
             for p, s in zip(paths, stems, strict=True)]
    seen: dict[str, Path] = {}
    for path, name in zip(paths, names, strict=True):
        if name in seen and seen[name].resolve() == path.resolve():
            raise InputError(f"{path}: fact file given twice")
        if name in seen:
            raise InputError(f"{path}: host name '{name}' is also the name of {seen[name]}; "
                             f"rename one of the files (hosts are named after them)")
        seen[name] = path
    return names


def _identity(fact: FactFile, caps: FactFile | None) -> tuple:
    return (fact.vendor, fact.fms, fact.features, fact.bugs, fact.exposable,
            caps and (caps.fms, caps.features))


#: what a file of one host is called besides the host's name: kvm-07.domcaps.xml and
#: kvm-07.caps.xml (or kvm-07-domcapabilities.xml, kvm-07_capabilities.xml) are kvm-07's
_ROLE = re.compile(r"[._-](domcapabilities|domcaps|capabilities|caps)$", re.I)


def host_of_file(path: Path) -> str:
    stem = path.name if is_directory(path, str(path)) else path.stem
    return _ROLE.sub("", stem) or stem


def _pair(files: list[Path], facts: list[FactFile]) -> list[tuple[Path, FactFile, Path | None, FactFile | None]]:
    """Each host's files: a domcapabilities file (what KVM gives, no identity) with the
    same host's capabilities (the silicon's identity), paired by host name; every other
    file is a host of its own."""
    caps_by_host: dict[tuple[Path, str], int] = {}
    for i, (path, fact) in enumerate(zip(files, facts, strict=True)):
        if fact.format == "libvirt-capabilities":
            caps_by_host.setdefault((path.resolve().parent, host_of_file(path)), i)
    used: set[int] = set()
    out = []
    for i, (path, fact) in enumerate(zip(files, facts, strict=True)):
        if fact.identity_known:
            continue
        j = caps_by_host.get((path.resolve().parent, host_of_file(path)))
        if j is None:
            raise InputError(f"{path}: {fact.format} does not say the CPU's family/model/stepping (libvirt's "
                             f"host-model has no <signature>); give the same host's `virsh capabilities` too, "
                             f"named {host_of_file(path)}.caps.xml beside it")
        used.add(j)
        out.append((i, (path, fact, files[j], facts[j])))
    for i, (path, fact) in enumerate(zip(files, facts, strict=True)):
        if fact.identity_known and i not in used:
            out.append((i, (path, fact, None, None)))
    return [pair for _, pair in sorted(out, key=lambda x: x[0])]


def pool_from_facts(paths: Iterable[str | Path], group: str | None, directed: bool = False,
                    merge: bool = True, base: str | Path | None = None) -> dict[str, Any]:
    """A pool dict with one host per fact file (identical ones merged with ``count``).

    ``group`` names one migration group holding every host (``directed`` is written with it;
    a group is a complete graph either way); ``base`` is the directory the
    pool file will live in, so that ``facts`` paths are written relative to it (the pool
    reader resolves them that way); without it they are written as given.
    """
    files = [Path(p) for p in paths]
    if not files:
        raise InputError("pool init needs at least one host fact file")
    pairs = _pair(files, [read_fact_file(p) for p in files])
    names = host_names([p for p, _, _, _ in pairs])
    names = [host_of_file(p) if c is not None and names.count(n) == 1 else n
             for (p, _, c, _), n in zip(pairs, names, strict=True)]
    hosts: dict[str, dict[str, Any]] = {}
    merged: dict[tuple, str] = {}
    for (path, fact, caps_path, caps), name in zip(pairs, names, strict=True):
        key = _identity(fact, caps)
        if merge and key in merged:
            entry = hosts[merged[key]]
            entry["count"] = entry.get("count", 1) + 1
            entry["labels"]["same-facts-as"] = ", ".join(
                filter(None, [entry["labels"].get("same-facts-as"), name]))
            continue
        merged.setdefault(key, name)
        hosts[name] = {"facts": _facts_path(path, base), "labels": {}}
        if caps_path is not None:
            hosts[name]["capabilities"] = _facts_path(caps_path, base)
    for entry in hosts.values():
        if not entry["labels"]:
            del entry["labels"]
    pool: dict[str, Any] = {
        "description": f"made by cpusolve pool init from {len(files)} host fact file"
                       f"{'s' if len(files) != 1 else ''}" + (f" ({len(files) - len(pairs)} capabilities paired with "
                                                              f"domcapabilities)" if len(pairs) < len(files) else ""),
        "hosts": hosts,
    }
    if group is not None:
        if not group.strip():
            raise InputError("--group needs a non-empty name")
        pool["description"] += f"; group '{group}' holds every host"
        pool["migration"] = {"directed": directed, "groups": [list(hosts)]}
    else:
        # No migration section: the pool reader puts every host in one domain.
        pool["description"] += "; no migration section yet: every host is one domain"
    return pool


def _facts_path(path: Path, base: str | Path | None) -> str:
    if base is None:
        return str(path)
    return os.path.relpath(path.resolve(), Path(base).resolve())
