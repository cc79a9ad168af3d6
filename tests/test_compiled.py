"""The compiled concrete readings (encodings.compiled) mean what the fold's algebras mean.

Every expression of the data (each kernel's bug rules, sysfs and dmesg conditions and
actions; the protection table's guest and host conditions, host classes and synthesised
bits) is read on real hosts (libvirt's cputestdata dumps, under each kernel, TSX and SMT
setting), on every catalog model shown to a guest (with and without an SMT topology and
the boot facts) and on random views around the rule tables' rows; the compiled function
must give the fold's verdict every time.
"""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import pytest

from cpusolve.api import load_pool
from cpusolve.encodings import compiled
from cpusolve.encodings import expr as ex
from cpusolve.encodings.catalog import catalog
from cpusolve.encodings.expr import fold
from cpusolve.encodings.protection import HostConcrete, HostView, _kernel_bits, protection_table
from cpusolve.encodings.rules import KERNELS, Concrete, CpuView, load_rules

from .test_rules_interpreters import random_cpu, rule_features

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "libvirt-cputestdata"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def guest_expressions(kernel: str) -> list[ex.Expr]:
    rt, table = load_rules(kernel), protection_table()
    out: list[ex.Expr] = []
    for rule in rt.rules.values():
        out += [rule.affected, rule.sysfs]
        out += [e for e in (rule.sysfs_unknown, rule.sysfs_not_affected_if) if e is not None]
    out += list(rt.actions.values())
    out += [when for entries in rt.sysfs_texts.values() for when, _ in entries]
    out += [when for entries in rt.dmesg.values() for when, _ in entries]
    for bp in table.bugs.values():
        out += [e.guest for e in bp.entries] + [guest for _, guest in bp.attempt]
    return list(dict.fromkeys(out))


def host_expressions() -> list[ex.Expr]:
    table = protection_table()
    out: list[ex.Expr] = list(table.host_defs.values())
    for bp in table.bugs.values():
        out += [bp.affected] + [e.host for e in bp.entries] + [cond for cond, _ in bp.attempt]
    out += [when for _, _, when in _kernel_bits()["parsed"]]
    return list(dict.fromkeys(out))


def real_hosts() -> list:
    """Host kinds of every example pool, and of libvirt's real CPUID dumps where present."""
    hosts = {}
    for path in sorted(EXAMPLES.glob("*.json")):
        for h in load_pool(str(path)).hosts.values():
            hosts[h.facts] = None
    if SHARED.is_dir():
        files = sorted(f for f in SHARED.glob("x86_64-cpuid-*.xml") if "baseline-" not in f.name
                       and not f.stem.endswith(("-disabled", "-enabled", "-guest", "-host", "-json")))
        pool = load_pool({"hosts": {f.stem: {"facts": str(f)} for f in files}})
        for h in pool.hosts.values():
            hosts[h.facts] = None
    return list(hosts)


def agree(exprs, views, fold_reading, compiled_reading) -> dict[int, set[bool]]:
    """Every expression on every view, both ways; the verdicts seen per expression."""
    seen: dict[int, set[bool]] = {i: set() for i in range(len(exprs))}
    for v in views:
        fold_memo: dict = {}
        compiled_memo: dict = {}
        for i, e in enumerate(exprs):
            want = fold_reading(e, v, fold_memo)
            got = compiled_reading(e, v, compiled_memo)
            assert got is want, (e, v)
            seen[i].add(want)
    return seen


@pytest.mark.parametrize("kernel", KERNELS)
def test_guest_readings_agree(kernel):
    rt = load_rules(kernel)
    exprs = guest_expressions(kernel)
    views = []
    for m in catalog().models:
        base = CpuView(m.vendor, m.family, m.model, m.stepping, frozenset(m.features), hypervisor=True)
        views += [base, dataclasses.replace(base, smt=True, boot=frozenset({"msr_ok:PRED_CMD_SBPB"}))]
    for t in real_hosts():
        views.append(CpuView(t.vendor, t.family, t.model, t.stepping, t.features, hypervisor=True))
        views.append(CpuView(t.vendor, t.family, t.model, t.stepping, t.silicon, hypervisor=False, smt=True))
    rng = random.Random(f"compiled-{kernel}")
    feats = rule_features(rt)
    views += [random_cpu(rng, rt, feats) for _ in range(100)]
    seen = agree(exprs, views, lambda e, v, memo: fold(e, Concrete(rt, v), memo),
                 lambda e, v, memo: rt.holds(e, v, memo))
    # the views must exercise both verdicts of most expressions, or agreement says little
    both = sum(1 for s in seen.values() if s == {True, False})
    assert both >= 0.6 * len(exprs), (both, len(exprs))


def test_host_readings_agree():
    table = protection_table()
    exprs = host_expressions()
    views = []
    for t in real_hosts():
        h = t.host_view()
        views.append(h)
        for kernel in KERNELS:
            views.append(dataclasses.replace(h, kernel=kernel, smt=not h.smt, tsx="on" if h.tsx == "off" else "off"))
    seen = agree(exprs, views, lambda e, v, memo: fold(e, HostConcrete(table, v), memo),
                 lambda e, v, memo: table.compiled.function(e)(v, memo))
    both = sum(1 for s in seen.values() if s == {True, False})
    assert both >= 0.5 * len(exprs), (both, len(exprs))


def test_deep_nesting_is_split_into_functions():
    """An expression nested far beyond the parser's limit still compiles, and means the same."""
    rt = load_rules()
    e: ex.Expr = ex.Feature("md-clear")
    for i in range(250):
        e = ex.Not(ex.Any((ex.Feature(f"x{i}"), e))) if i % 2 else ex.All((e, ex.Not(ex.Feature(f"y{i}"))))
    for features in (frozenset(), frozenset({"md-clear"}), frozenset({"md-clear", "x301"})):
        v = CpuView("GenuineIntel", 6, 85, 7, features)
        assert rt.holds(e, v) is fold(e, Concrete(rt, v))
    assert compiled.MAX_DEPTH < 100


def test_an_atom_the_reading_cannot_read_fails_as_the_fold_does():
    rt = load_rules()
    bad = ex.All((ex.Feature("md-clear"), ex.Fact("host_smt")))
    v = CpuView("GenuineIntel", 6, 85, 7, frozenset())
    with pytest.raises(ValueError, match="no fact host_smt"):
        fold(bad, Concrete(rt, v))
    with pytest.raises(ValueError, match="no fact host_smt"):
        rt.holds(bad, v)


def test_bug_verdicts_depend_only_on_the_bits_the_table_reads():
    """Host facts share one bug evaluation per identity and bits that evaluation read
    (hostfacts.derive.silicon_bugs, encodings.readsets): every real host, with each of its
    bits dropped and with random bits added, gets the verdicts of a full evaluation of its
    own bits."""
    from cpusolve.hostfacts.derive import _silicon_bugs as full  # the evaluation itself
    from cpusolve.hostfacts.derive import silicon_bugs

    rt = load_rules()
    read = rt.features_read
    assert "arch-capabilities" in read  # its ARCH_CAPABILITIES atoms read the MSR's CPUID bit too
    rng = random.Random("silicon-bugs")
    names = sorted(catalog().features)
    seen = set()
    for t in real_hosts():
        fms = (t.family, t.model, t.stepping)
        variants = [t.silicon] + [t.silicon - {f} for f in sorted(t.silicon & read)]
        variants += [t.silicon | set(rng.sample(names, 8)) for _ in range(5)]
        for own in variants:
            got = silicon_bugs(t.vendor, fms, frozenset(own))
            assert got == full(t.vendor, fms, frozenset(own)), (t.origin, sorted(own))
            seen.add(got)
    assert len(seen) > 10  # the hosts differ in their bugs, so equality says something


def test_the_protection_tables_reading_of_a_host_answers_as_the_host():
    """ProtectionTable.reading cuts a host to the features, bugs and microcode fixes the
    table's conditions name: every one of those conditions (not the host-kernel bits,
    which are not the table's) holds on the reading exactly where it holds on the host,
    with the unknown facts of real hosts, the diverse generator's microcode variants, and
    every kernel, TSX and SMT setting; and the readings are fewer than the hosts."""
    from .benchdata import genpool

    table = protection_table()
    exprs = list(table.host_defs.values())
    for bp in table.bugs.values():
        exprs += [bp.affected] + [e.host for e in bp.entries] + [cond for cond, _ in bp.attempt]
    exprs = list(dict.fromkeys(exprs))
    facts = real_hosts() + list({h.facts: None for h in load_pool(
        genpool().generate_diverse(n_hosts=400, n_domains=80, seed=11)).hosts.values()})
    views = {dataclasses.replace(f.host_view(), kernel=k, tsx=tsx, smt=smt): None
             for f in facts for k in KERNELS for tsx in ("on", "off") for smt in (True, False)}
    readings = set()
    for v in views:
        cut = table.reading(v)
        readings.add(cut)
        for e in exprs:
            assert table.host_holds(cut, e) is table.host_holds(v, e), (e, v)
        assert table.guest_bugs(v) == table.guest_bugs(cut)
    assert len(readings) < len(views) / 2, (len(readings), len(views))


def test_the_host_kernels_own_bits_are_those_of_a_full_evaluation():
    """encodings.protection.synthesised_bits evaluates the host-kernel rules on the host cut
    to what they (and the host definitions they name) read, and remembers the cut: every
    real host and diverse-generator variant, under each kernel and with each bit those rules
    name dropped or added, gets what the rules give on its whole view; Zen 2 hosts get
    TSA_SQ_NO and TSA_L1_NO, a Rome host showing IBPB gets IBPB_BRTYPE; and the cuts of the
    hosts are fewer than half their views."""
    from cpusolve.encodings import protection
    from cpusolve.encodings.protection import synthesised_bits

    from .benchdata import genpool

    table = protection_table()
    rules = _kernel_bits()["parsed"]

    def full(v) -> frozenset[str]:
        return frozenset().union(*(bits for bits, kernels, when in rules
                                   if v.kernel in kernels and fold(when, HostConcrete(table, v))))

    features = _kernel_bits()["cut"][0]
    facts = real_hosts() + list({h.facts: None for h in load_pool(
        genpool().generate_diverse(n_hosts=400, n_domains=80, seed=12)).hosts.values()})
    views = [dataclasses.replace(f.host_view(), kernel=k) for f in facts for k in KERNELS]
    protection._SYNTHESISED.clear()
    for v in views:
        synthesised_bits(v)
    assert len(protection._SYNTHESISED) < len(views) / 2, (len(protection._SYNTHESISED), len(views))
    seen = set()
    for v in views:
        for own in [v.features, *(v.features ^ {b} for b in sorted(features))]:
            w = dataclasses.replace(v, features=frozenset(own))
            got = synthesised_bits(w)
            assert got == full(w), (v, sorted(own))
            seen.add(got)
    assert len(seen) >= 4  # the rules give different bits to different hosts
    for kernel in KERNELS:  # EPYC Rome (Zen 2, family 0x17 model 0x31) with IBPB
        got = synthesised_bits(HostView("AuthenticAMD", 23, 49, 0, frozenset({"ibpb", "avx2"}), kernel=kernel))
        assert {"tsa-sq-no", "tsa-l1-no", "ibpb-brtype"} <= got, (kernel, got)
        assert "ibpb-brtype" not in synthesised_bits(HostView("AuthenticAMD", 23, 49, 0, frozenset(), kernel=kernel))
        assert not synthesised_bits(HostView("GenuineIntel", 6, 85, 7, frozenset({"ibpb"}), kernel=kernel))
