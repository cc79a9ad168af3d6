"""Real QEMU accepts every -cpu answer (model and flag names, f/m/s properties).

Run under ``-accel tcg`` without ``enforce``: TCG cannot emulate KVM-only bits such as
spec-ctrl or md-clear, and ``enforce`` would (rightly) refuse them there; what this checks is
that QEMU knows every name we print.  The pools are solved with ``qemu: 7.2`` because the
installed QEMU is Debian bookworm's 7.2.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from cpusolve.api import load_pool, solve
from cpusolve.core.guest import qemu_cpu_arg

QEMU = shutil.which("qemu-system-x86_64")
EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.json"))
pytestmark = pytest.mark.skipif(QEMU is None, reason="qemu-system-x86_64 not installed "
                                "(apt-get install qemu-system-x86; .ci/run does)")


def qemu_accepts(cpu: str, extra: tuple[str, ...] = ()) -> tuple[bool, str]:
    proc = subprocess.run(
        [QEMU, "-machine", "pc", "-S", "-accel", "tcg", "-nodefaults", "-display", "none",
         "-qmp", "stdio", "-cpu", cpu, *extra],
        input='{"execute": "qmp_capabilities"}\n{"execute": "quit"}\n',
        capture_output=True, text=True, timeout=60)
    return proc.returncode == 0, proc.stderr.strip()


def qemu_version() -> tuple[int, int]:
    out = subprocess.run([QEMU, "--version"], capture_output=True, text=True).stdout
    major, minor = out.split("version ")[1].split(".")[:2]
    return int(major), int(minor)


def answers(path: Path):
    pool = load_pool(str(path))
    if qemu_version() < (8, 0):
        pool.requirements = dataclasses.replace(pool.requirements, qemu="7.2")
    every_bug = pool.requirements.waive | {b for h in pool.hosts.values() for b in h.facts.bugs}
    waived = dataclasses.replace(pool.requirements, waive=frozenset(every_bug))
    for policy in ("strict", "compat"):
        for d in solve(pool, policy=policy).domains:
            if d.guest is not None:
                yield d
    # An example infeasible by design still has an answer to check with every bug waived.
    for d in solve(pool, requirements=waived).domains:
        if d.guest is not None:
            yield d


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_example_answer_is_accepted(path):
    seen = 0
    for d in answers(path):
        arg = qemu_cpu_arg(d.guest)
        assert arg.endswith(",enforce")
        ok, err = qemu_accepts(arg.removesuffix(",enforce"))
        assert ok, f"QEMU refused -cpu {arg}: {err}"
        seen += 1
    assert seen, "no example answer to check"


def test_qemu_refuses_what_we_would_never_print():
    # The harness itself can fail: an unknown model or flag makes QEMU exit non-zero.
    assert not qemu_accepts("Skylake-Server-v99")[0]
    assert not qemu_accepts("Skylake-Server-v4,+no-such-flag")[0]


def test_libvirt_fms_passthrough_sets_the_cpu_properties():
    # The libvirt writer carries an f/m/s override as -global <model>-x86_64-cpu.<prop>=<v>.
    model = "Westmere-v2"
    extra = ("-global", f"{model}-x86_64-cpu.family=6", "-global", f"{model}-x86_64-cpu.model=85",
             "-global", f"{model}-x86_64-cpu.stepping=4")
    proc = subprocess.run(
        [QEMU, "-machine", "pc", "-S", "-accel", "tcg", "-nodefaults", "-display", "none",
         "-qmp", "stdio", "-cpu", model, *extra],
        input='{"execute": "qmp_capabilities"}\n'
              '{"execute": "qom-get", "arguments": {"path": "/machine/unattached/device[0]", "property": "model"}}\n'
              '{"execute": "quit"}\n',
        capture_output=True, text=True, timeout=60)
    replies = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert {"return": 85} in replies


def test_this_hosts_answer_runs_under_kvm(tmp_path):
    """This machine's own answer (from KVM's ioctls: cpusolve probe), with enforce, under
    -accel kvm: QEMU starts it and the CPU shows the answer's family/model/stepping.  Where
    /dev/kvm is missing, or this VM's KVM refuses the guest, the test says so and skips."""
    import json
    import os

    from cpusolve.inputs.pool_file import known_bugs
    from cpusolve.inputs.probe import probe
    from cpusolve.writers.facts import render_facts

    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        pytest.skip("/dev/kvm is missing or not accessible: no KVM to run the answer under")
    (tmp_path / "me.json").write_text(render_facts(probe()))
    pool = load_pool({"hosts": {"me": {"facts": str(tmp_path / "me.json")}},
                      "requirements": {"waive": sorted(known_bugs()),
                                       "qemu": "7.2" if qemu_version() < (8, 0) else "current"}})
    d = solve(pool).domains[0]
    assert d.guest is not None, [c.text for c in d.conflicts]
    qom = "/machine/unattached/device[0]"  # the first vCPU, created before any device
    cmds = [{"execute": "qmp_capabilities"}, {"execute": "query-cpus-fast"}] + [
        {"execute": "qom-get", "arguments": {"path": qom, "property": p}} for p in ("family", "model", "stepping")
    ] + [{"execute": "quit"}]
    proc = subprocess.run(
        [QEMU, "-machine", "pc", "-S", "-accel", "kvm", "-nodefaults", "-display", "none", "-qmp", "stdio",
         "-cpu", qemu_cpu_arg(d.guest)],
        input="".join(json.dumps(c) + "\n" for c in cmds), capture_output=True, text=True, timeout=60)
    replies = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith('{"return"')]
    if len(replies) < 5:
        pytest.skip(f"this machine's KVM did not run the guest: {proc.stderr.strip()[:200]}")
    assert replies[1]["return"][0]["qom-path"] == qom
    assert tuple(r["return"] for r in replies[2:5]) == d.guest.identity()[1:], proc.stdout
