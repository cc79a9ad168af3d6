"""Read a pool (pool.json, a networkx node-link graph, or a dict) into a :class:`PoolSpec`.

Every mistake becomes one :class:`InputError` line naming the file, the host and the
offending word, with the closest known names where there are any.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx

from cpusolve.core.hosts import VENDORS
from cpusolve.core.pool import POLICIES, Requirements
from cpusolve.encodings import targets
from cpusolve.encodings.catalog import catalog, suggest
from cpusolve.encodings.rules import KERNELS, load_rules
from cpusolve.errors import InputError, one_line

MAX_POOL_BYTES = 64 * 1024 * 1024
MAX_COUNT = 1_000_000
TOP_KEYS = {"hosts", "migration", "requirements", "description", "host_defaults"}
HOST_KEYS = {"cpu", "add", "remove", "vendor", "family", "model", "stepping", "features", "bugs",
             "count", "labels", "facts", "hypervisor", "model_id", "description",
             "kernel", "tsx", "smt", "microcode_fixes", "capabilities", "qemu", "libvirt"}
#: host facts a pool may give once for every host (``host_defaults``) and each host may override
HOST_DEFAULT_KEYS = {"kernel", "tsx", "smt", "qemu", "libvirt"}
#: the host kernels (and so KVM versions) modelled
HOST_KERNELS = ("6.1", "6.12")
#: microcode fixes nothing enumerates, which a host entry may state
MICROCODE_FIXES = ("its_ibpb",)
MIGRATION_KEYS = {"directed", "edges", "groups"}
REQ_KEYS = {"require", "forbid", "min_model", "vendor", "policy", "waive", "kernels", "qemu", "libvirt"}


def warn(message: str) -> None:
    print(f"cpusolve: warning: {one_line(message)}", file=sys.stderr)


def known_bugs() -> list[str]:
    names: set[str] = set()
    for k in KERNELS:
        names.update(load_rules(k).bugs)
    return sorted(names)


@dataclass(frozen=True)
class HostKindSpec:
    """What one host entry says of its machines, read and validated but not yet derived
    (``hostfacts`` turns it into the facts the solver uses).  Entries equal in every
    fact-bearing key share one spec."""

    #: "cpu" (a catalog model), "facts" (a fact file) or "inline"
    source: str
    vendor: str
    fms: tuple[int, int, int]
    #: the model's, the file's or the inline features (canonical names), before add/remove
    features: frozenset[str]
    add: frozenset[str]
    remove: frozenset[str]
    #: bugs the entry (or its fact file's sysfs) states; None: derive them from the rules
    bugs: frozenset[str] | None
    #: "kvm": apply what KVM does with the bits; "as-is": take them literally
    hypervisor: str
    #: True when ``features`` are the silicon's own bits, not yet what KVM offers
    silicon: bool
    origin: str = field(compare=False)
    where: str = field(compare=False)
    #: the host's kernel / KVM ("6.1", "6.12"); None: the pool's default
    kernel: str | None = None
    #: "on"/"off" as stated; None: derived from the host's bits
    tsx: str | None = None
    #: host SMT as stated; None: the pool's default
    smt: bool | None = None
    #: the QEMU and libvirt the host runs (name-table versions); None: the pool's default
    qemu: str | None = None
    libvirt: str | None = None
    microcode_fixes: frozenset[str] = frozenset()
    #: the silicon's bits the bug rules read, where they differ from ``features`` (a
    #: domcapabilities host paired with its capabilities); None: ``features``
    bug_bits: frozenset[str] | None = None


@dataclass(frozen=True)
class HostSpec:
    name: str
    kind: HostKindSpec
    count: int = 1
    labels: tuple[tuple[str, str], ...] = ()


@dataclass
class PoolSpec:
    """A pool as its file states it: hosts as read, the migration graph, requirements."""

    hosts: dict[str, HostSpec]
    graph: nx.DiGraph
    directed: bool
    requirements: Requirements
    source: str
    groups: list[tuple[str, ...]]
    #: host facts given once for every host (kernel, tsx, smt), validated
    host_defaults: dict = field(default_factory=dict)


def read_pool(source: str | Path | dict | nx.Graph, name: str | None = None) -> PoolSpec:
    """A pool from a path ('-' = stdin), a parsed dict, or a networkx graph."""
    if isinstance(source, nx.Graph):
        return _from_graph(source, name or "<graph>")
    if isinstance(source, (dict, list)):
        return _from_dict(source, name or "<pool>")
    label = str(source)
    data = _read_json(label)
    if isinstance(data, dict) and "nodes" in data and "hosts" not in data:
        return _from_node_link(data, label)
    return _from_dict(data, label)


def source_dir(label: str) -> Path:
    """The folder a pool's relative fact-file paths are read from (stdin and dicts: here)."""
    return Path(label).parent if label not in ("-", "<pool>", "<graph>") else Path(".")


def _read_json(label: str) -> Any:
    from cpusolve.inputs.untrusted import decode_text, parse_json, read_bytes, read_stream

    if label == "-":
        text = read_stream(sys.stdin, label, MAX_POOL_BYTES, "a pool file you can split")
    else:
        text = decode_text(read_bytes(label, label, MAX_POOL_BYTES, "a pool file you can split"), label,
                           "a JSON pool file")
    return parse_json(text, label)


def _unknown_keys(data: dict, allowed: set[str], where: str) -> None:
    for key in sorted(set(data) - allowed):
        warn(f"{where}unknown key '{key}' ignored" + suggest(key, allowed))


def _expect(value: Any, kind: type | tuple, where: str, what: str) -> Any:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise InputError(f"{where}{what} must be {_article(names)}, not {type(value).__name__} {value!r}"[:300])
    return value


def _article(name: str) -> str:
    words = {"dict": "an object", "list": "a list", "str": "a string", "int": "an integer",
             "bool": "true or false"}
    return words.get(name, name)


def _str_list(value: Any, where: str, what: str) -> list[str]:
    _expect(value, list, where, what)
    for item in value:
        _expect(item, str, where, f"every entry of {what}")
    return value


def _from_dict(data: Any, label: str) -> PoolSpec:
    if not isinstance(data, dict):
        raise InputError(f"{label}: a pool file is a JSON object with a 'hosts' key")
    _unknown_keys(data, TOP_KEYS, f"{label}: ")
    hosts_data = data.get("hosts")
    if hosts_data is None:
        raise InputError(f"{label}: no 'hosts' key: a pool needs at least one host")
    if isinstance(hosts_data, list):
        hosts_data = _host_list(hosts_data, label)
    _expect(hosts_data, dict, f"{label}: ", "'hosts'")
    if not hosts_data:
        raise InputError(f"{label}: empty pool: 'hosts' has no host")
    base = source_dir(label)
    memo: dict[str, HostKindSpec] = {}
    hosts = {name: read_host(name, spec, label, base, memo) for name, spec in hosts_data.items()}
    requirements = read_requirements(data.get("requirements", {}), label)
    graph, directed, groups = _graph(data.get("migration"), hosts, label)
    return PoolSpec(hosts=hosts, graph=graph, directed=directed, requirements=requirements, source=label,
                    groups=groups, host_defaults=read_host_defaults(data.get("host_defaults", {}), label))


def read_host_defaults(data: Any, label: str) -> dict:
    where = f"{label}: host_defaults: "
    _expect(data, dict, f"{label}: ", "'host_defaults'")
    for key in sorted(set(data) - HOST_DEFAULT_KEYS):
        raise InputError(f"{where}unknown key '{key}'" + suggest(key, HOST_DEFAULT_KEYS))
    return {k: v for k, v in _host_settings(data, where).items() if v is not None}


def host_kernel(release: str) -> str | None:
    """The modelled kernel a version or release string names ("6.1.0-26-amd64" -> "6.1")."""
    return next((k for k in HOST_KERNELS if release == k or release.startswith((k + ".", k + "-", k + "+"))), None)


def _host_settings(spec: dict, where: str) -> dict:
    """kernel, tsx, smt of a host entry (or of host_defaults), validated; None where unstated."""
    kernel = spec.get("kernel")
    if kernel is not None:
        _expect(kernel, str, where, "'kernel'")
        match = host_kernel(kernel)
        if match is None:
            raise InputError(f"{where}'kernel' {kernel!r} is not a modelled host kernel "
                             f"({', '.join(HOST_KERNELS)})" + suggest(kernel, HOST_KERNELS))
        kernel = match
    tsx = spec.get("tsx")
    if tsx is not None and tsx not in ("on", "off"):
        raise InputError(f"{where}'tsx' must be \"on\" (TSX transactions run) or \"off\", not {tsx!r}"[:200])
    smt = spec.get("smt")
    if smt is not None:
        _expect(smt, bool, where, "'smt'")
    from cpusolve.encodings.libvirt import libvirt_versions

    qemu = _table_key(spec, "qemu", qemu_table, targets.qemu_versions(), "QEMU name table", where)
    lv = _table_key(spec, "libvirt", libvirt_table, libvirt_versions(), "libvirt CPU map table", where)
    return {"kernel": kernel, "tsx": tsx, "smt": smt, "qemu": qemu, "libvirt": lv}


def _table_key(spec: dict, key: str, resolve, tables, what: str, where: str) -> str | None:
    """A version key of a host entry, as the name table it selects (None where unstated)."""
    value = spec.get(key)
    if value is None:
        return None
    _expect(value, str, where, f"'{key}'")
    known = resolve(value)
    if known is None:
        raise InputError(f"{where}'{key}' {value[:40]!r} is older than every {what} ({', '.join(tables)})")
    return known


def _version(text: str) -> tuple[int, ...] | None:
    m = re.match(r"^(\d+)(?:\.(\d+))?", text.strip())
    return tuple(int(x) for x in m.groups() if x is not None) if m else None


def _table_for(version: str, tables) -> str | None:
    """The newest table not newer than ``version`` (a host running QEMU 8.2 knows every
    name QEMU 7.2 knows); None when ``version`` is older than all of them or unreadable."""
    v = _version(version)
    if v is None:
        return None
    fitting = [t for t in tables if _version(t) <= v]
    return max(fitting, key=_version) if fitting else None


def libvirt_table(version: str) -> str | None:
    """The libvirt CPU map table for a libvirt version ("9.0", "10.0.0")."""
    from cpusolve.encodings.libvirt import libvirt_versions

    return _table_for(version, libvirt_versions())


def qemu_table(version: str) -> str | None:
    """The QEMU name table for a QEMU version or a machine type ("pc-i440fx-7.2")."""
    m = re.search(r"(\d+\.\d+)(?:\.\d+)?$", version.strip())  # "7.2", "7.2.19", "pc-i440fx-7.2"
    return _table_for(m.group(1) if m else version, targets.qemu_versions())


def _host_list(items: list, label: str) -> dict:
    out: dict = {}
    for item in items:
        _expect(item, dict, f"{label}: ", "every entry of 'hosts'")
        name = item.get("name")
        if not isinstance(name, str) or not name:
            raise InputError(f"{label}: a host in the 'hosts' list has no 'name'")
        if name in out:
            raise InputError(f"{label}: duplicate host name '{name}'")
        out[name] = {k: v for k, v in item.items() if k != "name"}
    return out


def _guest_features(cat, names: list[str], where: str, key: str) -> frozenset[str]:
    """Features a requirement names: a Linux software flag (constant_tsc) or a bit only Linux
    names is no CPU feature a guest can be given, and is refused rather than dropped."""
    for name in names:
        if cat.canonical(name) is None and (name in cat.linux_software or name in cat.linux_cpuid_only):
            raise InputError(f"{where}{key}: '{name}' is a Linux flag, not a CPU feature a guest model carries")
    return cat.canonical_set(names, where)


def read_requirements(data: Any, label: str) -> Requirements:
    where = f"{label}: requirements: "
    _expect(data, dict, f"{label}: ", "'requirements'")
    _unknown_keys(data, REQ_KEYS, where)
    cat = catalog()
    require = _guest_features(cat, _str_list(data.get("require", []), where, "'require'"), where, "require")
    forbid = _guest_features(cat, _str_list(data.get("forbid", []), where, "'forbid'"), where, "forbid")
    both = require & forbid
    if both:
        raise InputError(f"{where}{', '.join(sorted(both))} is both required and forbidden")
    min_model = data.get("min_model")
    if min_model is not None:
        min_model = cat.model(_expect(min_model, str, where, "'min_model'"), where).name
    vendor = data.get("vendor")
    if vendor is not None:
        _expect(vendor, str, where, "'vendor'")
        if vendor not in VENDORS:
            raise InputError(f"{where}unknown vendor '{vendor}'" + suggest(vendor, VENDORS))
    policy = _expect(data.get("policy", "strict"), str, where, "'policy'")
    if policy not in POLICIES:
        raise InputError(f"{where}policy must be one of {', '.join(POLICIES)}, not '{policy}'")
    bugs = known_bugs()
    waive = frozenset(_str_list(data.get("waive", []), where, "'waive'"))
    for bug in sorted(waive):
        if bug not in bugs:
            raise InputError(f"{where}unknown bug '{bug}' in 'waive'" + suggest(bug, bugs))
    kernels = tuple(_str_list(data.get("kernels", list(KERNELS)), where, "'kernels'"))
    for k in kernels:
        try:
            load_rules(k)
        except InputError as e:
            raise InputError(f"{where}{e}") from None
    if not kernels:
        raise InputError(f"{where}'kernels' needs at least one Linux version ({', '.join(KERNELS)})")
    qemu = data.get("qemu")
    if qemu is not None:
        _expect(qemu, str, where, "'qemu'")
        versions = (*targets.qemu_versions(), "current")
        if qemu not in versions:
            raise InputError(f"{where}qemu must be one of {', '.join(versions)}, not '{qemu}'"
                             + suggest(qemu, versions))
        if qemu in ("current", targets.default_qemu()):
            qemu = None
    lv = data.get("libvirt")
    if lv is not None:
        from cpusolve.encodings.libvirt import libvirt_versions

        _expect(lv, str, where, "'libvirt'")
        if lv not in libvirt_versions():
            raise InputError(f"{where}libvirt must be one of {', '.join(libvirt_versions())} (the versions whose "
                             f"CPU map is known), not '{lv}'" + suggest(lv, libvirt_versions()))
    return Requirements(require=require, forbid=forbid, min_model=min_model, vendor=vendor,
                        policy=policy, waive=waive, kernels=kernels, qemu=qemu, libvirt=lv)


#: host keys that do not change a host's facts (hosts differing only in these share facts)
NON_FACT_KEYS = ("count", "labels", "description")
#: an entry's fact-bearing keys as one string (``json.dumps(..., sort_keys=True,
#: default=str)`` without a new encoder per host)
_kind_key = json.JSONEncoder(sort_keys=True, default=str).encode


def read_host(name: str, spec: Any, label: str, base: Path, memo: dict | None = None) -> HostSpec:
    """One host entry: by catalog model, inline facts, or a fact file (read here).

    ``memo`` maps an entry's fact-bearing keys to what was read, so that a pool of 10,000
    hosts of 20 kinds reads each kind (and its fact file) once, and the host-facts stage
    derives bugs and KVM's bits 20 times, not 10,000.
    """
    where = f"{label}: host '{name}': "
    if not isinstance(name, str) or not name.strip():
        raise InputError(f"{label}: host names must be non-empty strings")
    if not name.isprintable() or len(name) > 255:
        raise InputError(f"{label}: host name {name[:40]!r}: " + ("longer than 255 characters" if len(name) > 255
                         else "control characters (a newline, an escape) cannot be written into configs"))
    _expect(spec, dict, where[:-2] + " ", "its entry")
    _unknown_keys(spec, HOST_KEYS, where)
    count = spec.get("count", 1)
    _expect(count, int, where, "'count'")
    if count < 1:
        raise InputError(f"{where}'count' must be at least 1, not {count}")
    if count > MAX_COUNT:
        raise InputError(f"{where}'count' {count} is more machines than one entry may stand for "
                         f"({MAX_COUNT:,}); split it")
    labels = spec.get("labels", {})
    if isinstance(labels, list):
        labels = {str(x): "" for x in labels}
    _expect(labels, dict, where, "'labels'")
    key = _kind_key({k: v for k, v in spec.items() if k not in NON_FACT_KEYS})
    if memo is not None and key in memo:
        kind = memo[key]
    else:
        kind = _host_kind(spec, where, base)
        if memo is not None:
            memo[key] = kind
    return HostSpec(name=name, kind=kind, count=count,
                    labels=tuple(sorted((str(k), str(v)) for k, v in labels.items())))


def _host_kind(spec: dict, where: str, base: Path) -> HostKindSpec:
    cat = catalog()
    hv = spec.get("hypervisor", "kvm")
    if hv not in ("kvm", "as-is"):
        raise InputError(f"{where}'hypervisor' must be 'kvm' (apply KVM's emulated bits) or 'as-is'")
    add = cat.canonical_set(_str_list(spec.get("add", []), where, "'add'"), where)
    remove = cat.canonical_set(_str_list(spec.get("remove", []), where, "'remove'"), where)
    given = [k for k in ("cpu", "facts", "features") if k in spec]
    if len(given) != 1:
        raise InputError(f"{where}give exactly one of 'cpu' (a catalog model), 'features' "
                         f"(inline facts) or 'facts' (a fact file)" + (f", not {' and '.join(given)}" if given else ""))
    explicit_bugs = None
    if "bugs" in spec:
        bugs = known_bugs()
        explicit_bugs = frozenset(_str_list(spec["bugs"], where, "'bugs'"))
        for bug in sorted(explicit_bugs):
            if bug not in bugs:
                raise InputError(f"{where}unknown bug '{bug}'" + suggest(bug, bugs))
    if "capabilities" in spec and "facts" not in spec:
        raise InputError(f"{where}'capabilities' gives the identity of a 'facts' file "
                         f"(virsh domcapabilities); this host has none")
    silicon = True  # features are the silicon's bits, not yet what KVM offers
    fact_kernel = None
    fact_qemu = None
    fact_libvirt = None
    bug_bits = None
    if "cpu" in spec:
        silicon = False  # QEMU's model definition already lists what a guest can be given
        model = cat.model(_expect(spec["cpu"], str, where, "'cpu'"), where)
        vendor, fms = model.vendor, model.fms
        own = model.features
        origin = f"catalog {model.name}"
        source = "cpu"
        for key in ("vendor", "family", "model", "stepping"):
            if key in spec:
                raise InputError(f"{where}'{key}' comes from the catalog model; drop it or describe the host inline")
    elif "facts" in spec:
        from cpusolve.inputs.facts import read_fact_file

        path = Path(_expect(spec["facts"], str, where, "'facts'"))
        if not path.is_absolute():
            path = base / path
        try:
            fact = read_fact_file(path)
        except InputError as e:
            raise InputError(f"{where}{e}") from None
        vendor, fms, own = fact.vendor, fact.fms, fact.features
        origin = f"fact file {spec['facts']} ({fact.format})"
        source = "facts"
        fms, bug_bits, paired = _identity_of(fact, spec, where, base)
        if paired is not None:
            origin += f" + {spec['capabilities']} ({paired.format})"
        if fact.bugs is not None:
            explicit_bugs = fact.bugs if explicit_bugs is None else explicit_bugs | fact.bugs
        if fact.kernel:
            fact_kernel = host_kernel(fact.kernel)
            if fact_kernel is None:
                warn(f"{where}kernel {fact.kernel!r} of the fact file is not a modelled host kernel "
                     f"({', '.join(HOST_KERNELS)}); the pool's default applies")
        if fact.qemu:
            fact_qemu = qemu_table(fact.qemu)
        if fact.libvirt:
            fact_libvirt = libvirt_table(fact.libvirt)
        if fact.exposable:
            hv = "as-is"  # a hypervisor's own answer already includes what it emulates
            silicon = False
    else:
        vendor = _expect(spec.get("vendor"), str, where, "'vendor'")
        if vendor not in VENDORS:
            raise InputError(f"{where}unknown vendor '{vendor}'" + suggest(vendor, VENDORS))
        fms_list = []
        for key in ("family", "model", "stepping"):
            if key not in spec:
                raise InputError(f"{where}inline host needs '{key}' (with vendor, family, model, stepping, features)")
            value = _expect(spec[key], int, where, f"'{key}'")
            if value < 0 or value > 0xFFF:
                raise InputError(f"{where}'{key}' {value} is out of range")
            fms_list.append(value)
        fms = (fms_list[0], fms_list[1], fms_list[2])
        own = cat.canonical_set(_str_list(spec["features"], where, "'features'"), where)
        origin = "inline"
        source = "inline"
    settings = _host_settings(spec, where)
    if settings["kernel"] is None and fact_kernel is not None:
        settings["kernel"] = fact_kernel
    if settings["qemu"] is None and fact_qemu is not None:
        settings["qemu"] = fact_qemu
    if settings["libvirt"] is None and fact_libvirt is not None:
        settings["libvirt"] = fact_libvirt
    fixes = frozenset(_str_list(spec.get("microcode_fixes", []), where, "'microcode_fixes'"))
    for fix in sorted(fixes - set(MICROCODE_FIXES)):
        raise InputError(f"{where}unknown microcode fix '{fix}' (known: {', '.join(MICROCODE_FIXES)})"
                         + suggest(fix, MICROCODE_FIXES))
    return HostKindSpec(source=source, vendor=vendor, fms=fms, features=frozenset(own), add=add, remove=remove,
                        bugs=explicit_bugs, hypervisor=hv, silicon=silicon, origin=origin, where=where,
                        microcode_fixes=fixes, bug_bits=bug_bits, **settings)


def _identity_of(fact, spec: dict, where: str, base: Path):
    """A fact file's family/model/stepping, never guessed: its own; or, where it has none
    (domcapabilities), the same host's ``virsh capabilities`` named by ``capabilities``
    (whose silicon bits then also decide the bugs) or ``family``/``model``/``stepping``
    stated next to it.  Returns (fms, bits the bug rules read or None, the paired file)."""
    from cpusolve.inputs.facts import read_fact_file

    stated = [k for k in ("family", "model", "stepping") if k in spec]
    if "vendor" in spec:
        raise InputError(f"{where}'vendor' comes from the fact file; drop it")
    if "capabilities" in spec:
        if fact.identity_known:
            raise InputError(f"{where}'capabilities' pairs a virsh domcapabilities file with the same host's "
                             f"virsh capabilities; {spec['facts']} ({fact.format}) states its own identity")
        if stated:
            raise InputError(f"{where}give 'capabilities' or '{stated[0]}', not both")
        path = Path(_expect(spec["capabilities"], str, where, "'capabilities'"))
        try:
            caps = read_fact_file(path if path.is_absolute() else base / path)
        except InputError as e:
            raise InputError(f"{where}{e}") from None
        if caps.format != "libvirt-capabilities":
            raise InputError(f"{where}'capabilities' must be the host's `virsh capabilities` XML, not {caps.format}")
        if not caps.identity_known:
            raise InputError(f"{where}{spec['capabilities']} has no <signature> either; state 'family', 'model' "
                             f"and 'stepping' (from /proc/cpuinfo)")
        if caps.vendor != fact.vendor:
            raise InputError(f"{where}{spec['capabilities']} is a {caps.vendor} CPU, {spec['facts']} a "
                             f"{fact.vendor} one: not the same host")
        return caps.fms, caps.features, caps
    if fact.identity_known:
        if stated:
            raise InputError(f"{where}'{stated[0]}' comes from the fact file ({fact.format}), which states the "
                             f"CPU's family/model/stepping; drop it")
        return fact.fms, None, None
    if len(stated) == 3:
        values = []
        for key in ("family", "model", "stepping"):
            value = _expect(spec[key], int, where, f"'{key}'")
            if value < 0 or value > 0xFFF:
                raise InputError(f"{where}'{key}' {value} is out of range")
            values.append(value)
        return (values[0], values[1], values[2]), None, None
    raise InputError(f"{where}{spec['facts']} ({fact.format}) does not say the CPU's family/model/stepping "
                     f"(libvirt's host-model has no <signature>), which decide its bugs; add \"capabilities\": "
                     f"the same host's `virsh capabilities` XML, or \"family\", \"model\", \"stepping\" "
                     f"from its /proc/cpuinfo")


def _graph(migration: Any, hosts: dict[str, HostSpec], label: str) -> tuple[nx.DiGraph, bool, list[tuple[str, ...]]]:
    graph = nx.DiGraph()
    graph.add_nodes_from(hosts)
    if migration is None:
        # Every host migrates with every other: one group (not a path that happens to
        # connect them, which a split would read as the only migration pairs).
        return graph, False, [tuple(hosts)] if len(hosts) > 1 else []
    where = f"{label}: migration: "
    _expect(migration, dict, f"{label}: ", "'migration'")
    _unknown_keys(migration, MIGRATION_KEYS, where)
    directed = _expect(migration.get("directed", False), bool, where, "'directed'")

    def check(name: Any) -> str:
        _expect(name, str, where, "host names")
        if name not in hosts:
            raise InputError(f"{where}host '{name}' is not in 'hosts'" + suggest(name, hosts))
        return name

    for edge in _expect(migration.get("edges", []), list, where, "'edges'"):
        if not isinstance(edge, list) or len(edge) != 2:
            raise InputError(f"{where}every edge is a pair [from, to], not {edge!r}"[:200])
        a, b = check(edge[0]), check(edge[1])
        if a == b:
            warn(f"{where}self-loop {a} -> {a} ignored")
            continue
        graph.add_edge(a, b)
        if not directed:
            graph.add_edge(b, a)
    groups: list[tuple[str, ...]] = []
    for group in _expect(migration.get("groups", []), list, where, "'groups'"):
        members = [check(n) for n in _expect(group, list, where, "every group")]
        if len(set(members)) != len(members):
            raise InputError(f"{where}group {members} names a host twice"[:200])
        if len(members) > 1:
            groups.append(tuple(members))
    return graph, directed, groups


def _from_node_link(data: dict, label: str) -> PoolSpec:
    edges_key = "links" if "links" in data else "edges"
    nodes = data.get("nodes")
    if not isinstance(nodes, list) or not all(isinstance(n, dict) and "id" in n for n in nodes):
        raise InputError(f"{label}: node-link 'nodes' must be a list of objects with an 'id'")
    for key in ("directed", "multigraph"):
        if key in data and not isinstance(data[key], bool):
            raise InputError(f"{label}: node-link '{key}' must be true or false, not {data[key]!r}"[:160])
    ids = [str(n["id"]) for n in nodes]
    from collections import Counter

    dupes = sorted(i for i, n in Counter(ids).items() if n > 1)
    if dupes:
        raise InputError(f"{label}: duplicate host name '{dupes[0]}' in the node-link 'nodes'")
    links = data.get(edges_key, [])
    if not isinstance(links, list) or not all(isinstance(e, dict) and "source" in e and "target" in e
                                              for e in links):
        raise InputError(f"{label}: node-link '{edges_key}' must be a list of objects with 'source' and 'target'")
    for e in links:
        for end in (e["source"], e["target"]):
            if str(end) not in ids:
                raise InputError(f"{label}: link to host '{end}', which is not a node" + suggest(str(end), ids))
    if not isinstance(data.get("graph", {}), dict):
        raise InputError(f"{label}: node-link 'graph' must be an object")
    try:
        graph = nx.node_link_graph(data, edges=edges_key)
    except (KeyError, TypeError, nx.NetworkXError) as e:
        raise InputError(f"{label}: not a networkx node-link graph: {e}") from None
    return _from_graph(graph, label, requirements=data.get("graph", {}).get("requirements", {}))


def _from_graph(graph: nx.Graph, label: str, requirements: dict | None = None) -> PoolSpec:
    if graph.number_of_nodes() == 0:
        raise InputError(f"{label}: empty pool: the graph has no host")
    hosts: dict[str, HostSpec] = {}
    memo: dict[str, HostKindSpec] = {}
    base = source_dir(label)
    for node, attrs in graph.nodes(data=True):
        name = str(node)
        if name in hosts:
            raise InputError(f"{label}: duplicate host name '{name}'")
        hosts[name] = read_host(name, {k: v for k, v in attrs.items() if k != "id"}, label, base, memo)
    req = requirements if requirements is not None else graph.graph.get("requirements", {})
    digraph = nx.DiGraph()
    digraph.add_nodes_from(hosts)
    for a, b in graph.edges():
        if a == b:
            continue
        digraph.add_edge(str(a), str(b))
        if not graph.is_directed():
            digraph.add_edge(str(b), str(a))
    return PoolSpec(hosts=hosts, graph=digraph, directed=graph.is_directed(),
                    requirements=read_requirements(req, label), source=label, groups=[])
