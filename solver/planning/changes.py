"""Host changes a rollout plans (``--change``): what each host is before and after.

    HOSTS:EDIT[,EDIT...]            edit hosts; HOSTS is a name or a glob (clx-*)
        EDIT: +bit | -bit            what the microcode (or BIOS) adds or removes
              kernel=6.12 | qemu=10.2 | libvirt=11.3
    +NAME=MODEL[,+f,-g][xN][@PEER]  a new host (the syntax of ``--add``)
    -HOST                           a host retired (its guests move first)

Each edited host is derived again from its pool entry with the edit applied (a microcode
update that removes TSX changes what KVM offers, the host's TSX state and its bugs, as the
entry with those bits would).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import re
from dataclasses import dataclass

from cpusolve.core.hosts import HostFacts
from cpusolve.core.pool import Pool
from cpusolve.encodings import targets
from cpusolve.encodings.catalog import catalog, suggest
from cpusolve.encodings.libvirt import libvirt_versions
from cpusolve.errors import InputError
from cpusolve.hostfacts.derive import facts_of
from cpusolve.inputs.pool_file import HOST_KERNELS
from cpusolve.planning.whatif import ADD_SPEC, add, copy_pool, without

EDIT = re.compile(r"^(?P<hosts>.+):(?P<edits>[^:]*)$")
#: what a change may set on a host, and the values it may take (the modelled host kernels,
#: the QEMU and libvirt versions with a name table)
SETTINGS = {"kernel": lambda: HOST_KERNELS, "qemu": targets.qemu_versions, "libvirt": libvirt_versions}
#: a change string longer than this is not a change (and would make a huge error line)
MAX_CHANGE = 4096


@dataclass(frozen=True)
class HostUpdate:
    """One host's step of a rollout: its facts before and after (None: absent)."""

    host: str
    old: HostFacts | None
    new: HostFacts | None
    #: the change strings that touch it, as given
    changes: tuple[str, ...]

    @property
    def action(self) -> str:
        return "add" if self.old is None else "remove" if self.new is None else "update"


@dataclass
class Rollout:
    """The pool after every change, and each touched host's update."""

    before: Pool
    after: Pool
    updates: dict[str, HostUpdate]


def plan_changes(pool: Pool, changes) -> Rollout:
    if not changes:
        raise InputError("--change: give at least one change (HOST:+bit,-bit, +NAME=MODEL, -HOST)")
    after = copy_pool(pool)
    touched: dict[str, list[str]] = {}
    for spec in changes:
        if not isinstance(spec, str) or not spec.strip():
            raise InputError(f"--change {spec!r}: empty")
        spec = spec.strip()
        if len(spec) > MAX_CHANGE:
            raise InputError(f"--change '{spec[:60]}...': longer than {MAX_CHANGE:,} characters")
        if spec.startswith("+"):
            name = _add_name(spec)
            if name in after.hosts:
                raise InputError(f"--change '{spec}': host '{name}' is already in the pool (edit it with "
                                 f"'{name}:+bit,-bit')")
            after = add(after, spec[1:])
            touched.setdefault(name, []).append(spec)
        elif spec.startswith("-"):
            name = spec[1:].strip()
            if name not in after.hosts:
                raise InputError(f"--change '{spec}': no host '{name}' in {pool.source}"
                                 + suggest(name, after.hosts))
            after = without(after, [name])
            touched.setdefault(name, []).append(spec)
        else:
            m = EDIT.match(spec)
            if not m:
                raise InputError(f"--change '{spec}': expected HOSTS:+bit,-bit (or kernel=, qemu=, libvirt=), "
                                 "+NAME=MODEL or -HOST")
            names = _hosts(after, m["hosts"].strip(), spec)
            edit = _edit(m["edits"], spec)
            for name in names:
                after.hosts[name] = _edited(after, name, edit, spec)
                touched.setdefault(name, []).append(spec)
    updates = {}
    for name, specs in sorted(touched.items()):
        old = pool.hosts[name].facts if name in pool.hosts else None
        new = after.hosts[name].facts if name in after.hosts else None
        if old is None and new is None:
            continue  # added, then retired: never there
        if old == new:
            continue  # an edit that changes nothing the solver reads
        updates[name] = HostUpdate(name, old, new, tuple(specs))
    return Rollout(pool, after, updates)


def _add_name(spec: str) -> str:
    m = ADD_SPEC.match(spec[1:].strip())
    if not m:
        raise InputError(f"--change '{spec}': expected +NAME=MODEL[,+flag,-flag][xN][@PEER]")
    return m["name"].strip()


def _hosts(pool: Pool, pattern: str, spec: str) -> list[str]:
    if pattern in pool.hosts:
        return [pattern]
    if any(c in pattern for c in "*?["):
        names = sorted(h for h in pool.hosts if fnmatch.fnmatchcase(h, pattern))
        if names:
            return names
        raise InputError(f"--change '{spec}': no host of {pool.source} matches '{pattern}'")
    raise InputError(f"--change '{spec}': no host '{pattern}' in {pool.source}" + suggest(pattern, pool.hosts))


def _edit(text: str, spec: str) -> dict:
    out: dict = {"add": set(), "remove": set()}
    items = [x.strip() for x in text.split(",") if x.strip()]
    if not items:
        raise InputError(f"--change '{spec}': nothing to change after ':'")
    for item in items:
        if item[:1] in "+-" and len(item) > 1:
            names = catalog().canonical_set([item[1:]], f"--change '{spec}': ")
            if len(names) != 1:
                raise InputError(f"--change '{spec}': '{item[1:]}' is a Linux software flag, not a CPU bit")
            (bit,) = names
            (out["add"] if item[0] == "+" else out["remove"]).add(bit)
            (out["remove"] if item[0] == "+" else out["add"]).discard(bit)
            continue
        key, eq, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not eq or key not in SETTINGS:
            raise InputError(f"--change '{spec}': '{item}' is not +bit, -bit, kernel=, qemu= or libvirt="
                             + suggest(key, SETTINGS))
        allowed = tuple(SETTINGS[key]())
        if value not in allowed:
            raise InputError(f"--change '{spec}': {key} '{value}' is not one of {', '.join(allowed)}")
        out[key] = value
    return out


def _edited(pool: Pool, name: str, edit: dict, spec: str):
    host = pool.hosts[name]
    kind = host.kind
    if kind is None:
        raise InputError(f"--change '{spec}': host '{name}' has no pool entry to derive again")
    changes: dict = {"add": frozenset((kind.add | edit["add"]) - edit["remove"]),
                     "remove": frozenset((kind.remove | edit["remove"]) - edit["add"])}
    if kind.tsx == "on" and "rtm" in changes["remove"]:
        changes["tsx"] = None  # TSX stated on cannot outlive RTM: derived again from the bits
    for key in ("kernel", "qemu", "libvirt"):
        if key in edit:
            changes[key] = edit[key]
    new_kind = dataclasses.replace(kind, **changes)
    return dataclasses.replace(host, facts=facts_of(new_kind, pool.host_defaults), kind=new_kind)
