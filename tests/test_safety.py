"""Guest safety: no false immunity, mechanisms under strict, hint bits, waivers."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from cpusolve.api import load_pool, solve
from cpusolve.domains.graph import domains
from cpusolve.encodings.catalog import catalog
from cpusolve.encodings.rules import CpuView, load_rules
from cpusolve.verify.checker import check_answer

from .conftest import pool_dict

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
INTEL_UCODE = ["md-clear", "flush-l1d", "ssbd", "stibp"]


def test_naive_baseline_gives_false_immunity_and_cpusolve_does_not():
    pool = load_pool(str(EXAMPLES / "westmere-false-immunity.json"))
    dom = domains(pool)[0]
    answer = solve(pool).domains[0]
    assert answer.status == "ok"
    # The plain intersection as `virsh cpu-baseline` would give it: the same features on
    # the Westmere model with Westmere's own family/model/stepping.
    naive = dataclasses.replace(answer.guest, fms=None)
    problems = check_answer(catalog(), dom.types, pool.requirements, naive)
    unsafe = " ".join(p for p in problems if p.startswith("unsafe"))
    assert "retbleed" in unsafe and "mmio_stale_data" in unsafe
    # cpusolve's answer: every Linux kernel modelled sees both bugs.
    for kernel in ("6.1", "6.12"):
        assert {"retbleed", "mmio_stale_data"} <= set(answer.guest_bugs[kernel])
    assert check_answer(catalog(), dom.types, pool.requirements, answer.guest) == []


def test_no_star_no_bit_while_a_host_has_the_bug():
    d = solve(pool_dict({"icx": {"cpu": "Icelake-Server-v7", "add": INTEL_UCODE},
                         "skx": {"cpu": "Skylake-Server-v4", "add": INTEL_UCODE}})).domains[0]
    assert d.status == "ok"
    # Ice Lake silicon is immune to Meltdown and MDS; Skylake is not.
    assert not {"mds-no", "rdctl-no"} & d.features
    # Alone, with the 2022 microcode's FB_CLEAR (Linux then accepts mds-no beside MMIO).
    alone = solve(pool_dict({"icx": {"cpu": "Icelake-Server-v7", "add": [*INTEL_UCODE, "fb-clear"]}})).domains[0]
    assert {"mds-no", "rdctl-no"} <= alone.features


def test_rsba_given_when_every_host_can_and_one_suffers():
    rsba_host = {"cpu": "Cascadelake-Server-v5", "add": [*INTEL_UCODE, "rsba"]}
    d = solve(pool_dict({"a": rsba_host, "b": rsba_host})).domains[0]
    assert d.status == "ok" and "rsba" in d.features
    d = solve(pool_dict({"a": rsba_host, "b": {"cpu": "Cascadelake-Server-v5", "add": INTEL_UCODE}})).domains[0]
    assert d.status == "ok" and "rsba" not in d.features
    # Without rsba, the guest still sees Retbleed through Cascade Lake's own f/m/s.
    assert "retbleed" in d.guest_bugs["6.1"]


def test_rsba_alone_cannot_make_westmere_truthful_about_mmio():
    # RSBA covers Retbleed, but Skylake-SP's MMIO stale data is decided by the blacklist
    # alone: the old model still needs a Skylake-SP family/model/stepping.
    hosts = {"wsm": {"cpu": "Westmere-v2", "add": [*INTEL_UCODE, "rsba"]},
             "skx": {"cpu": "Skylake-Server-v4", "add": [*INTEL_UCODE, "rsba"]}}
    d = solve(pool_dict(hosts)).domains[0]
    assert d.status == "ok" and "rsba" in d.features
    assert d.guest.model.startswith("Westmere") and d.guest.fms[:2] == (6, 85)
    assert {"retbleed", "mmio_stale_data"} <= set(d.guest_bugs["6.1"])


def test_waived_bug_is_reported_loudly():
    hosts = {"skx": {"cpu": "Skylake-Server-v4", "add": ["flush-l1d", "ssbd", "stibp"]}}
    assert solve(pool_dict(hosts)).domains[0].status == "infeasible"
    d = solve(pool_dict(hosts, waive=["mds", "tsx_async_abort", "mmio_stale_data"])).domains[0]
    assert d.status == "ok-waived"
    assert set(d.waived) == {"mds", "mmio_stale_data"}  # TAA is absent: no RTM on this host
    assert any(n.startswith("WAIVED: mds") for n in d.notes)


def test_compat_policy_still_truthful():
    hosts = {"wsm": {"cpu": "Westmere-v2"}, "skx": {"cpu": "Skylake-Server-v4"}}
    d = solve(pool_dict(hosts, policy="compat")).domains[0]
    assert d.status == "ok"
    assert "retbleed" in d.guest_bugs["6.12"] and "mds" in d.guest_bugs["6.12"]
    assert "md-clear" not in d.features  # no host has it; compat does not ask for it


def test_every_answer_is_truthful_for_every_host_bug():
    # Re-derive rule 2 by hand on every example, independent of the obligation code.
    for path in sorted(EXAMPLES.glob("*.json")):
        pool = load_pool(str(path))
        for dom, d in zip(domains(pool), solve(pool).domains, strict=True):
            if d.guest is None:
                continue
            vendor, fam, mod, step = d.guest.identity()
            view = CpuView(vendor, fam, mod, step, d.guest.visible(), hypervisor=True)
            for kernel in pool.requirements.kernels:
                table = load_rules(kernel)
                verdict = table.affected(view)
                for t in dom.types:
                    for bug in t.bugs:
                        if bug in table.bug_rules and table.scope(bug) == "guest" and bug not in d.waived:
                            assert verdict[bug], (path.name, kernel, bug)
