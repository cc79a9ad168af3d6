"""A seeded, reproducible synthetic KVM pool built from real catalog models.

    python benchmarks/genpool.py --hosts 10000 --types 500 --domains 2000 --seed 1 -o big.json

Shape (what a large private cloud looks like):

* hosts sit in *chassis* (3-7 hosts that live-migrate freely: a migration group, one SCC)
  and chassis in *racks* of ``--chassis-per-rack`` chassis; a rack is one vendor and one
  catalog model (QEMU's server models from Haswell to Granite Rapids, EPYC to Turin);
* a *host type* is one catalog model plus what real fleets do to it: the microcode level
  (``add`` md-clear / flush-l1d / ssbd / stibp, on AMD ibpb-brtype / verw-clear), TSX
  switched off (``remove`` hle, rtm), AVX-512 disabled in the BIOS (``remove`` avx512*),
  5-level paging or 1 GiB pages not enabled (``remove`` la57 / pdpe1gb).  Exactly
  ``--types`` distinct host fact sets are used (checked with cpusolve's own host reader);
* the migration graph is directed (evacuation): chassis c of a rack drains into chassis
  c+1 of the same rack (rolling maintenance), and a rack's last chassis evacuates into a
  rack of a newer generation of the same vendor (now and then a second one; with
  ``--cross-vendor`` probability into a rack of the other vendor, a misconfiguration the
  solver must report).  Every chassis then has its own reachability set, so the pool
  has about ``--domains`` distinct migration domains.

``--diverse`` builds the other shape (issue 17): fleets where almost no two migration
domains are alike.  ``--domains`` clusters of ``--hosts / --domains`` hosts, each cluster a
directed ring (one migration domain), one vendor per cluster, each host drawn on its own:
a family of the 14 real server families (Haswell to Granite Rapids, Naples to Turin)
within two generations of the cluster's newest, any QEMU version of it, the cluster's
microcode level or one behind (a rolling update), random BIOS/kernel removals, a host kernel (6.1 or 6.12) and SMT on or
off.  Most domains are distinct problems and a realistic share is infeasible (mixed Zen
generations, TSX states, microcode levels).

The same arguments and seed always give the byte-identical file.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from collections import defaultdict
from pathlib import Path

# Real catalog models a cloud runs, oldest first per vendor; weight = share of racks.
INTEL_MODELS = [
    ("Haswell-v4", 1), ("Broadwell-v4", 2), ("Broadwell-v3", 1),
    ("Skylake-Server-v4", 3), ("Skylake-Server-v5", 2), ("Skylake-Server-v3", 1),
    ("Cascadelake-Server-v5", 4), ("Cascadelake-Server-v4", 2), ("Cascadelake-Server-v2", 1),
    ("Cooperlake-v2", 1),
    ("Icelake-Server-v7", 3), ("Icelake-Server-v6", 2), ("Icelake-Server-v4", 1),
    ("SapphireRapids-v3", 3), ("SapphireRapids-v4", 2), ("SapphireRapids-v2", 1),
    ("SierraForest-v3", 1), ("GraniteRapids-v3", 2), ("GraniteRapids-v2", 1),
]
AMD_MODELS = [
    ("EPYC-v4", 1), ("EPYC-Rome-v4", 3), ("EPYC-Rome-v2", 1),
    ("EPYC-Milan-v2", 3), ("EPYC-Milan-v3", 1),
    ("EPYC-Genoa-v1", 2), ("EPYC-Genoa-v2", 1), ("EPYC-Turin-v1", 1),
]
INTEL_SHARE = 0.75

# Microcode levels: what successive microcode/kernel updates gave the hosts.
INTEL_MICROCODE = [
    (),
    ("md-clear",),
    ("md-clear", "flush-l1d"),
    ("md-clear", "flush-l1d", "ssbd", "stibp"),
    ("md-clear", "flush-l1d", "ssbd", "stibp", "fb-clear"),
]
AMD_MICROCODE = [
    (),
    ("ibpb-brtype",),
    ("ibpb-brtype", "verw-clear"),
    ("ibpb-brtype", "verw-clear", "virt-ssbd"),
    ("amd-ssbd", "ibpb-brtype", "verw-clear", "virt-ssbd"),
]
# Weights for picking a microcode level: most of a fleet is patched.
INTEL_MC_WEIGHTS = [1, 1, 2, 6, 4]
AMD_MC_WEIGHTS = [1, 2, 6, 2, 1]


def _variants(cat, name: str) -> list[dict]:
    """Every realistic host spec of one catalog model, most common first."""
    model = cat.model(name)
    feats = model.features
    intel = model.vendor == "GenuineIntel"
    levels = INTEL_MICROCODE if intel else AMD_MICROCODE
    weights = INTEL_MC_WEIGHTS if intel else AMD_MC_WEIGHTS
    tsx = tuple(f for f in ("hle", "rtm") if f in feats)
    avx512 = tuple(sorted(f for f in feats if f.startswith("avx512")))
    amx = tuple(sorted(f for f in feats if f.startswith("amx-")))
    # (features removed, weight): TSX off by microcode/kernel, AVX-512 off in the BIOS,
    # AMX off (host kernel without XFD), la57/pdpe1gb/xsaves not enabled by the host kernel.
    groups = [(g, w) for g, w in ((tsx, 6), (avx512, 2), (amx, 2), (("la57",), 1),
                                  (("pdpe1gb",), 1), (("xsaves",), 1))
              if g and set(g) <= feats]
    removals: list[tuple[tuple[str, ...], int]] = [((), 8)]
    removals += [(g, w) for g, w in groups]
    removals += [(g1 + g2, min(w1, w2) // 2 or 1)
                 for i, (g1, w1) in enumerate(groups) for g2, w2 in groups[i + 1:]]
    out = []
    for li, level in enumerate(levels):
        add = tuple(f for f in level if f not in feats)
        for rem, rw in removals:
            spec: dict = {"cpu": name}
            if add:
                spec["add"] = list(add)
            if rem:
                spec["remove"] = list(rem)
            out.append((weights[li] * rw, spec))
    out.sort(key=lambda ws: -ws[0])
    return [s for _, s in out]


def host_types(cat, n_types: int) -> dict[str, list[dict]]:
    """``n_types`` specs with distinct host facts, spread over the models by weight."""
    from cpusolve.hostfacts.derive import host_from_entry

    models = INTEL_MODELS + AMD_MODELS
    memo: dict = {}
    seen: set = set()
    avail: dict[str, list[dict]] = {}
    for name, _ in models:
        avail[name] = []
        for spec in _variants(cat, name):
            facts = host_from_entry("x", spec, "<gen>", Path("."), memo).facts
            if facts not in seen:
                seen.add(facts)
                avail[name].append(spec)
    if len(seen) < n_types:
        raise SystemExit(f"genpool: only {len(seen)} distinct host types available")
    weight = dict(models)
    total_w = sum(weight.values())
    want = {n: min(len(avail[n]), max(1, round(n_types * weight[n] / total_w))) for n in avail}
    while sum(want.values()) > n_types:
        n = max(want, key=lambda k: (want[k] / weight[k], k))
        want[n] -= 1
    while sum(want.values()) < n_types:
        spare = [k for k in want if want[k] < len(avail[k])]
        n = min(spare, key=lambda k: (want[k] / weight[k], k))
        want[n] += 1
    return {n: avail[n][:want[n]] for n, _ in models if want[n]}


def generate(n_hosts: int = 10_000, n_types: int = 500, n_domains: int = 2_000, seed: int = 1,
             chassis_per_rack: int = 8, cross_vendor: float = 0.02, policy: str = "compat") -> dict:
    from cpusolve.encodings.catalog import catalog

    if n_domains > n_hosts:
        raise SystemExit("genpool: --domains cannot exceed --hosts (one chassis per domain)")
    cat = catalog()
    rng = random.Random(seed)
    types = host_types(cat, n_types)
    n_chassis = n_domains
    names = [n for n in types if types[n]]
    # Small pools: shorter racks, so that every model gets a rack.
    chassis_per_rack = max(1, min(chassis_per_rack, n_chassis // len(names)))
    n_racks = max(1, -(-n_chassis // chassis_per_rack))
    # Racks per model: proportional to the model's number of types (so every type is used).
    share = {n: len(types[n]) for n in names}
    tot = sum(share.values())
    racks_of = {n: max(1, round(n_racks * share[n] / tot)) for n in names}
    while sum(racks_of.values()) > n_racks:
        n = max(racks_of, key=lambda k: (racks_of[k], k))
        racks_of[n] -= 1
    while sum(racks_of.values()) < n_racks:
        n = max(racks_of, key=lambda k: (share[k] / racks_of[k], k))
        racks_of[n] += 1
    racks = []  # (vendor, generation, model, [type specs])
    for n in names:
        specs = types[n]
        r = racks_of[n]
        if r == 0:  # fewer chassis than models: this model's types stay unused
            continue
        per = max(1, -(-len(specs) // r))
        for j in range(r):
            mine = [specs[(j * per + k) % len(specs)] for k in range(per)]
            m = cat.model(n)
            racks.append((m.vendor, m.generation, n, mine))
    # Chassis sizes: n_hosts split over n_chassis, each 1..2*avg, deterministic.
    avg = n_hosts / n_chassis
    sizes = [max(1, int(avg)) for _ in range(n_chassis)]
    extra = n_hosts - sum(sizes)
    for i in rng.sample(range(n_chassis), k=min(abs(extra), n_chassis)) if extra else []:
        sizes[i] += 1 if extra > 0 else -1
    # Jitter sizes (keep the sum): move a host between random chassis.
    for _ in range(n_chassis):
        a, b = rng.randrange(n_chassis), rng.randrange(n_chassis)
        if sizes[a] > max(1, int(avg) - 2) and sizes[b] < int(avg) + 2:
            sizes[a] -= 1
            sizes[b] += 1
    hosts: dict[str, dict] = {}
    groups: list[list[str]] = []
    edges: list[list[str]] = []
    rack_chassis: list[list[list[str]]] = []
    ci = 0
    for ri, (vendor, _gen, _model, specs) in enumerate(racks):
        prefix = "i" if vendor == "GenuineIntel" else "a"
        chassis_list = []
        for c in range(chassis_per_rack):
            if ci >= n_chassis:
                break
            members = []
            # A chassis is mostly one type; during rolling updates it mixes two.
            main = specs[(c * 7 + ri) % len(specs)]
            other = specs[(c * 7 + ri + 1) % len(specs)]
            for h in range(sizes[ci]):
                name = f"{prefix}{ri:03d}-c{c}-h{h}"
                spec = dict(main if (h < sizes[ci] - 1 or rng.random() < 0.6) else other)
                hosts[name] = spec
                members.append(name)
            ci += 1
            if len(members) > 1:
                groups.append(members)
            chassis_list.append(members)
        rack_chassis.append(chassis_list)
    # Evacuation edges.
    by_vendor: dict[str, list[int]] = defaultdict(list)
    for ri, (vendor, _gen, _m, _s) in enumerate(racks):
        if rack_chassis[ri]:
            by_vendor[vendor].append(ri)
    for ri, chassis_list in enumerate(rack_chassis):
        if not chassis_list:
            continue
        for a, b in zip(chassis_list, chassis_list[1:], strict=False):
            edges.append([a[-1], b[0]])
        vendor, gen = racks[ri][0], racks[ri][1]
        newer = [r for r in by_vendor[vendor] if racks[r][1] > gen]
        targets = []
        if newer:
            # Evacuate into the spare (last) chassis of a rack of the next generation.
            nxt = min(racks[r][1] for r in newer)
            near = [r for r in newer if racks[r][1] == nxt]
            targets.append(rng.choice(near))
            if rng.random() < 0.2:
                targets.append(rng.choice(newer))
        for t in dict.fromkeys(targets):
            edges.append([chassis_list[-1][-1], rack_chassis[t][-1][0]])
        if rng.random() < cross_vendor:
            # A misconfigured edge from the first chassis into another vendor's rack.
            other = [r for v, rs in by_vendor.items() if v != vendor for r in rs]
            if other:
                edges.append([chassis_list[0][0], rack_chassis[rng.choice(other)][-1][0]])
    return {
        "description": f"genpool.py --hosts {n_hosts} --types {n_types} --domains {n_domains} "
                       f"--seed {seed} --chassis-per-rack {chassis_per_rack} "
                       f"--cross-vendor {cross_vendor} --policy {policy}",
        "hosts": hosts,
        "migration": {"directed": True, "groups": groups, "edges": edges},
        "requirements": {"policy": policy},
    }


# The 14 real server families of the diverse mode, oldest first per vendor.
DIVERSE_FAMILIES = {
    "GenuineIntel": ["Haswell", "Broadwell", "Skylake-Server", "Cascadelake-Server", "Cooperlake",
                     "Icelake-Server", "SapphireRapids", "SierraForest", "GraniteRapids"],
    "AuthenticAMD": ["EPYC", "EPYC-Rome", "EPYC-Milan", "EPYC-Genoa", "EPYC-Turin"],
}
# Microcode levels of a cluster: a few years on, most clusters carry the SSBD microcode.
DIVERSE_MC_WEIGHTS = {"GenuineIntel": [1, 1, 1, 8, 8], "AuthenticAMD": [1, 1, 2, 5, 4]}
# Removals a real host shows (BIOS options, microcode withdrawing TSX, host kernel options).
# (features, weight): BIOS and kernel options are common, withdrawn microcode bits rare.
DIVERSE_REMOVALS = [(("hle", "rtm"), 6), (("avx512f",), 3), (("pdpe1gb",), 2), (("la57",), 2),
                    (("xsaves",), 2), (("md-clear",), 1), (("ssbd",), 1), (("stibp",), 1),
                    (("arch-capabilities",), 1), (("ibpb",), 1), (("amd-ssbd",), 1),
                    (("virt-ssbd",), 1), (("avx512-vnni",), 1), (("vaes", "vpclmulqdq"), 1),
                    (("gfni",), 1), (("sha-ni",), 1), (("rdpid",), 1), (("umip",), 1), (("pku",), 1),
                    (("amx-tile", "amx-int8", "amx-bf16"), 1), (("fsrm",), 1), (("erms",), 1)]


def generate_diverse(n_hosts: int = 10_000, n_domains: int = 2_000, seed: int = 1,
                     policy: str = "compat", max_kinds: int | None = None) -> dict:
    """Clusters of independently drawn hosts: most domains a distinct problem.  With
    ``max_kinds``, once that many host kinds exist (distinct facts, by cpusolve's own host
    reader) a new one is replaced by an existing kind of the same family."""
    from cpusolve.encodings.catalog import catalog
    from cpusolve.hostfacts.derive import host_from_entry

    if n_domains > n_hosts:
        raise SystemExit("genpool: --domains cannot exceed --hosts")
    cat = catalog()
    rng = random.Random(seed)
    versions: dict[str, list[str]] = {}
    for m in cat.models:
        fam = re.fullmatch(r"(.+)-v\d+", m.name)
        if fam and any(fam.group(1) in fs for fs in DIVERSE_FAMILIES.values()):
            versions.setdefault(fam.group(1), []).append(m.name)
    hosts: dict[str, dict] = {}
    edges: list[list[str]] = []
    kinds: dict[str, dict] = {}  # spec text -> spec
    by_facts: dict = {}  # host facts (cpusolve's own reader) -> spec text
    memo: dict = {}
    palette: dict[str, list[str]] = {}  # family -> spec texts
    base, extra = divmod(n_hosts, n_domains)
    for d in range(n_domains):
        vendor = "GenuineIntel" if rng.random() < INTEL_SHARE else "AuthenticAMD"
        fams = DIVERSE_FAMILIES[vendor]
        top = rng.randrange(len(fams))
        window = fams[max(0, top - 2):top + 1]
        prefix = "i" if vendor == "GenuineIntel" else "a"
        levels = INTEL_MICROCODE if vendor == "GenuineIntel" else AMD_MICROCODE
        cluster_level = rng.choices(range(len(levels)), weights=DIVERSE_MC_WEIGHTS[vendor])[0]
        members = []
        for h in range(base + (1 if d < extra else 0)):
            name = f"{prefix}{d:05d}-h{h}"
            family = rng.choice(window)
            model = cat.model(rng.choice(versions[family]))
            feats = model.features
            # A rolling microcode update: a host is at the cluster's level or one behind.
            level = levels[max(0, cluster_level - (rng.random() < 0.08))]
            spec: dict = {"cpu": model.name}
            add = [f for f in level if f not in feats]
            if add:
                spec["add"] = add
            groups = [(g, w) for g, w in DIVERSE_REMOVALS if set(g) <= feats]
            rem: set[str] = set()
            for _ in range(rng.choices((0, 1, 2), weights=(10, 7, 3))[0] if groups else 0):
                rem.update(rng.choices([g for g, _ in groups], weights=[w for _, w in groups])[0])
            if rem:
                spec["remove"] = sorted(rem)
            spec["kernel"] = rng.choice(("6.1", "6.12"))
            if rng.random() < 0.2:
                spec["smt"] = False
            text = json.dumps(spec, sort_keys=True)
            if text not in kinds:
                facts = host_from_entry("x", spec, "<gen>", Path("."), memo).facts
                if facts in by_facts:  # the same host kind, written another way
                    text = by_facts[facts]
                elif max_kinds is not None and len(by_facts) >= max_kinds and palette.get(family):
                    text = rng.choice(palette[family])
                else:
                    kinds[text] = spec
                    by_facts[facts] = text
                    palette.setdefault(family, []).append(text)
            hosts[name] = dict(kinds[text])
            members.append(name)
        edges += [[a, b] for a, b in zip(members, members[1:] + members[:1], strict=True)
                  if a != b]
    return {
        "description": f"genpool.py --diverse --hosts {n_hosts} --domains {n_domains} "
                       f"--seed {seed} --policy {policy}"
                       + (f" --types {max_kinds}" if max_kinds is not None else ""),
        "hosts": hosts,
        "migration": {"directed": True, "edges": edges},
        "requirements": {"policy": policy},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hosts", type=int, default=10_000)
    ap.add_argument("--types", type=int, default=None,
                    help="distinct host fact sets (default 500; --diverse: no limit)")
    ap.add_argument("--domains", type=int, default=2_000, help="chassis = distinct reachability sets")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--chassis-per-rack", type=int, default=8)
    ap.add_argument("--cross-vendor", type=float, default=0.02)
    ap.add_argument("--policy", choices=["strict", "compat"], default="compat")
    ap.add_argument("--diverse", action="store_true",
                    help="clusters of independently drawn hosts (most domains distinct)")
    ap.add_argument("-o", "--output", default="-")
    a = ap.parse_args(argv)
    if a.diverse:
        pool = generate_diverse(a.hosts, a.domains, a.seed, a.policy, a.types)
    else:
        pool = generate(a.hosts, 500 if a.types is None else a.types, a.domains, a.seed,
                        a.chassis_per_rack, a.cross_vendor, a.policy)
    text = json.dumps(pool, indent=None, separators=(",", ":"), sort_keys=False) + "\n"
    if a.output == "-":
        sys.stdout.write(text)
    else:
        Path(a.output).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
