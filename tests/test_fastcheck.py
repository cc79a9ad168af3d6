"""The bitset check() agrees with the checker on every pair it is asked about."""

from __future__ import annotations

import random
from pathlib import Path

from cpusolve import check, load_pool, solve
from cpusolve.core.guest import GuestCpu
from cpusolve.encodings.catalog import catalog
from cpusolve.verify.checker import problems
from cpusolve.verify.fastcheck import FastChecker

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def pairs():
    rng = random.Random(7)
    hosts, guests = [], []
    for path in sorted(EXAMPLES.glob("*.json")):
        pool = load_pool(str(path))
        hosts += [h.facts for h in pool.hosts.values()]
        guests += [d.guest for d in solve(pool).domains if d.guest]
    cat = catalog()
    for m in rng.sample(cat.models, 25):
        guests.append(GuestCpu(m.name))
        plus = tuple(sorted(rng.sample(sorted(cat.guest_features - m.features), 2)))
        guests.append(GuestCpu(m.name, plus=plus))
    return [(g, h) for g in guests for h in hosts]


def test_fast_verdict_equals_the_checker():
    pool = load_pool(str(EXAMPLES / "intel-rack.json"))
    req = pool.requirements
    fast = FastChecker(catalog(), req, host_fms_rule=False)
    seen = {True: 0, False: 0}
    for g, h in pairs():
        slow = [p for p in problems(catalog(), (h,), req, g) if p.kind != "fms"]
        assert fast.check(g, h) == (not slow), (g, h.origin, [p.text for p in slow])
        seen[not slow] += 1
    assert seen[True] >= 10 and seen[False] >= 100  # both verdicts exercised


def test_public_check_gives_reasons_only_when_failing():
    pool = load_pool(str(EXAMPLES / "intel-rack.json"))
    answer = solve(pool).domains[0].guest
    assert check(answer, pool.hosts["skx-r1"]).ok
    v = check(GuestCpu("Cascadelake-Server-v5"), pool.hosts["skx-r1"])
    assert not v.ok and v.missing and v.unsafe
