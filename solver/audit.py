"""Audit running guests: which ones cannot run on a host they may reach, which believe they
are immune to a bug a reachable host has, and the smallest change that makes each safe.

The guests file (JSON) lists each guest's name, its CPU (a QEMU ``-cpu`` string, or a
libvirt domain XML file under ``libvirt``), and where it runs (``host``: its migration
domain follows from the pool's graph) or may migrate (``domain``: a list of hosts).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from cpusolve.api import solve
from cpusolve.checker import problems
from cpusolve.cpu_string import parse_libvirt_cpu, parse_qemu_cpu
from cpusolve.domains import domains, type_order
from cpusolve.encodings.catalog import catalog, suggest
from cpusolve.errors import InputError
from cpusolve.optimize import DEFAULT_TIMEOUT_S, nearest
from cpusolve.pool import Pool
from cpusolve.result import GuestCpu, qemu_cpu_arg

GUEST_KEYS = {"name", "cpu", "libvirt", "host", "domain", "description"}


@dataclass(frozen=True)
class GuestSpec:
    name: str
    cpu: GuestCpu
    source: str  # the -cpu string or the XML path, as given
    hosts: tuple[str, ...]  # every host the guest may reach


@dataclass
class GuestAudit:
    name: str
    cpu: str
    status: str  # "safe" | "unsafe" | "unrunnable"
    hosts: tuple[str, ...]
    unrunnable: list[dict] = field(default_factory=list)  # {"host", "missing": [...]}
    false_immunities: list[dict] = field(default_factory=list)  # {"bug", "kernels", "hosts", "why"}
    missing_mechanisms: list[dict] = field(default_factory=list)  # {"bug", "needs", "hosts"}
    fix: str | None = None  # a -cpu string
    fix_kind: str | None = None  # "flags" (same model) | "domain-answer"

    def to_dict(self) -> dict:
        return {"name": self.name, "cpu": self.cpu, "status": self.status, "hosts": list(self.hosts),
                "unrunnable": self.unrunnable, "false_immunities": self.false_immunities,
                "missing_mechanisms": self.missing_mechanisms, "fix": self.fix, "fix_kind": self.fix_kind}


def read_guests(path: str, pool: Pool) -> list[GuestSpec]:
    label = str(path)
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise InputError(f"{label}: no such file") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        where = f":{e.lineno}:{e.colno}" if isinstance(e, json.JSONDecodeError) else ""
        raise InputError(f"{label}{where}: malformed guests file: {getattr(e, 'msg', 'not UTF-8 text')}") from None
    except OSError as e:
        raise InputError(f"{label}: cannot read: {e.strerror}") from None
    if isinstance(data, dict):
        data = data.get("guests")
    if not isinstance(data, list) or not data:
        raise InputError(f"{label}: a guests file is a JSON list (or {{\"guests\": [...]}}) of guests")
    reach = {s: d.hosts for d in domains(pool) for s in d.starts}
    out, seen = [], set()
    for i, g in enumerate(data):
        if not isinstance(g, dict) or not isinstance(g.get("name"), str) or not g["name"]:
            raise InputError(f"{label}: guest #{i + 1} needs a 'name'")
        name = g["name"]
        where = f"{label}: guest '{name}': "
        if name in seen:
            raise InputError(f"{label}: duplicate guest name '{name}'")
        seen.add(name)
        for key in sorted(set(g) - GUEST_KEYS):
            raise InputError(f"{where}unknown key '{key}'" + suggest(key, GUEST_KEYS))
        if ("cpu" in g) == ("libvirt" in g):
            raise InputError(f"{where}give exactly one of 'cpu' (a -cpu string) or 'libvirt' (a domain XML file)")
        if "cpu" in g:
            if not isinstance(g["cpu"], str):
                raise InputError(f"{where}'cpu' must be a -cpu string")
            parsed, source = parse_qemu_cpu(g["cpu"], where), g["cpu"]
        else:
            xml = Path(g["libvirt"])
            if not xml.is_absolute():
                xml = Path(label).parent / xml
            parsed, source = parse_libvirt_cpu(xml), g["libvirt"]
        cpu = parsed.guest()
        if ("host" in g) == ("domain" in g):
            raise InputError(f"{where}give exactly one of 'host' (where it runs) or 'domain' (hosts it may reach)")
        if "host" in g:
            if g["host"] not in pool.hosts:
                raise InputError(f"{where}host '{g['host']}' is not in the pool" + suggest(str(g["host"]), pool.hosts))
            hosts = reach[g["host"]]
        else:
            if not isinstance(g["domain"], list) or not g["domain"]:
                raise InputError(f"{where}'domain' must be a non-empty list of hosts")
            for h in g["domain"]:
                if h not in pool.hosts:
                    raise InputError(f"{where}host '{h}' is not in the pool" + suggest(str(h), pool.hosts))
            hosts = tuple(sorted(set(g["domain"])))
        out.append(GuestSpec(name, cpu, source, hosts))
    return out


def audit(pool: Pool, guests: list[GuestSpec], timeout: float = DEFAULT_TIMEOUT_S) -> list[GuestAudit]:
    cat, req = catalog(), pool.requirements
    answers = {}
    out = []
    for g in guests:
        types = tuple(sorted({pool.hosts[h].facts for h in g.hosts},
                             key=type_order))
        names = [", ".join(h for h in g.hosts if pool.hosts[h].facts == t) for t in types]
        found = problems(cat, types, req, g.cpu, names)
        result = GuestAudit(g.name, g.source, "safe", g.hosts)
        for i, _ in enumerate(types):
            missing = [p.feature or p.text for p in found if p.kind in ("missing", "vendor") and p.hosts == (i,)]
            if missing:
                result.unrunnable.append({"hosts": names[i], "missing": missing})
        immunities: dict[str, dict] = {}
        for p in found:
            if p.kind == "false-immunity":
                entry = immunities.setdefault(p.bug, {"bug": p.bug, "kernels": [], "hosts": ", ".join(
                    names[i] for i in p.hosts), "why": p.text.split(": ", 2)[-1]})
                entry["kernels"].append(p.kernel)
            elif p.kind == "mechanism":
                result.missing_mechanisms.append({"bug": p.bug, "needs": p.text.split("needs ", 1)[-1]
                                                  .split(" to mitigate")[0],
                                                  "hosts": ", ".join(names[i] for i in p.hosts)})
        result.false_immunities = list(immunities.values())
        if result.unrunnable:
            result.status = "unrunnable"
        elif result.false_immunities or result.missing_mechanisms:
            result.status = "unsafe"
        if result.status != "safe":
            vendors = {t.vendor for t in types}
            repair = ("nearest", types, g.cpu)  # guests of one image on one kind of domain
            if repair not in answers:
                answers[repair] = (nearest(cat, types[0].vendor, types, req, g.cpu, timeout)
                                   if len(vendors) == 1 else None)
            fixed = answers[repair]
            if fixed is not None:
                result.fix, result.fix_kind = qemu_cpu_arg(fixed), "flags"
            else:
                key = g.hosts
                if key not in answers:
                    sub = Pool(hosts={h: pool.hosts[h] for h in g.hosts}, graph=pool.graph.subgraph(g.hosts).copy(),
                               directed=False, requirements=req, source=pool.source)
                    sub.graph.add_edges_from(zip(g.hosts, g.hosts[1:], strict=False))
                    sub.graph.add_edges_from(zip(g.hosts[1:], g.hosts, strict=False))
                    answers[key] = solve(sub, timeout=timeout).domains[0]
                d = answers[key]
                if d.guest is not None:
                    result.fix, result.fix_kind = qemu_cpu_arg(d.guest), "domain-answer"
        out.append(result)
    return out


def render_audit(results: list[GuestAudit], fmt: str) -> str:
    if fmt == "json":
        return json.dumps({"schema": "cpusolve-audit/1", "guests": [r.to_dict() for r in results]},
                          indent=2, sort_keys=True) + "\n"
    lines = []
    for r in results:
        lines.append(f"{r.name}: {r.status.upper()}  (-cpu {r.cpu}; may reach {', '.join(r.hosts)})")
        for u in r.unrunnable:
            lines.append(f"  cannot run on {u['hosts']}: lacks {', '.join(u['missing'])}")
        for f in r.false_immunities:
            lines.append(f"  FALSE IMMUNITY: a Linux {'/'.join(f['kernels'])} guest believes it is not affected by "
                         f"{f['bug']}, which {f['hosts']} has ({f['why']})")
        for m in r.missing_mechanisms:
            lines.append(f"  cannot mitigate {m['bug']} ({m['hosts']}): needs {m['needs']}")
        if r.fix:
            how = "smallest change" if r.fix_kind == "flags" else "its domain's answer"
            lines.append(f"  fix ({how}): -cpu {r.fix}")
        elif r.status != "safe":
            lines.append("  no safe CPU exists for this domain: see cpusolve POOL for the conflict")
    bad = sum(r.status != "safe" for r in results)
    lines.append(f"{len(results) - bad} of {len(results)} guests safe")
    return "\n".join(lines) + "\n"
