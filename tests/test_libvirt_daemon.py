"""The answer for this very machine, through the real libvirt daemon and QEMU/KVM.

From this host's own ``virsh domcapabilities`` and ``virsh capabilities``: solve, write the
libvirt answer, and check that libvirt and QEMU take it as written: the document parses,
``virsh hypervisor-cpu-compare`` accepts the ``<cpu>``, a domain carrying it (made with
``cpusolve apply``'s code) passes ``virt-xml-validate``, is defined and starts paused, and
the running guest's CPU has the answer's family/model/stepping (``qom-get`` over QMP),
the passthrough included.  The Nova fragment passes what Nova's startup check asks libvirt
(the model among ``virsh cpu-models``, model plus flags compatible with the hypervisor).

Skipped with the reason where no libvirtd answers on qemu:///system (.ci/run starts one) or
where this machine's KVM refuses to run the guest (it is itself a VM): that is reported,
never failed.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from cpusolve.api import load_pool, solve
from cpusolve.inputs.pool_file import known_bugs
from cpusolve.writers.libvirt import apply_to_domain, cpu_element, libvirt_cpu, render_domain, render_libvirt
from cpusolve.writers.nova import nova_files

URI = "qemu:///system"
VIRSH = shutil.which("virsh")


def virsh(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([VIRSH, "-c", URI, *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    """This machine's libvirt facts and its solved answer (every bug waived: what is under
    test is the stack taking the answer, and a nested VM's KVM hides most mitigations)."""
    if VIRSH is None:
        pytest.skip("virsh not installed (apt-get install libvirt-clients libvirt-daemon-system; .ci/run does)")
    dc = virsh("domcapabilities")
    if dc.returncode != 0:
        pytest.skip(f"no libvirtd answers on {URI} ({dc.stderr.strip()[:120]}); .ci/run starts one")
    caps = virsh("capabilities")
    version = virsh("version")
    m = re.search(r"Using library: libvirt (\d+\.\d+)", version.stdout)
    tmp = tmp_path_factory.mktemp("host")
    (tmp / "host.domcaps.xml").write_text(dc.stdout)
    (tmp / "host.caps.xml").write_text(caps.stdout)
    entry = {"facts": "host.domcaps.xml", "capabilities": "host.caps.xml"}
    if m:
        entry["libvirt"] = m.group(1)
    (tmp / "pool.json").write_text(json.dumps({"hosts": {"this-host": entry},
                                               "requirements": {"waive": sorted(known_bugs())}}))
    pool = load_pool(str(tmp / "pool.json"))
    d = solve(pool).domains[0]
    assert d.solved, [c.text for c in d.conflicts]
    return {"dir": tmp, "pool": pool, "answer": d, "result": solve(pool)}


def _start(tmp: Path, d, name: str) -> tuple[str | None, dict]:
    """Define and start paused a domain carrying answer ``d``; its CPU's identity, or the
    reason it did not start."""
    domain = ET.fromstring(f"<domain type='kvm'><name>{name}</name><uuid>{uuid.uuid4()}</uuid>"
                           "<memory unit='MiB'>64</memory><vcpu>1</vcpu>"
                           "<os><type arch='x86_64' machine='pc'>hvm</type></os>"
                           "<devices><emulator>/usr/bin/qemu-system-x86_64</emulator></devices></domain>")
    path = tmp / f"{name}.xml"
    path.write_text(render_domain(apply_to_domain(domain, d)))
    if shutil.which("virt-xml-validate") and shutil.which("xmllint"):  # the script runs xmllint
        check = subprocess.run(["virt-xml-validate", str(path), "domain"], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
    defined = virsh("define", str(path))
    assert defined.returncode == 0, defined.stderr
    try:
        started = virsh("start", "--paused", name, timeout=120)
        if started.returncode != 0:
            return started.stderr.strip(), {}
        cpus = json.loads(virsh("qemu-monitor-command", name, '{"execute":"query-cpus-fast"}').stdout)
        qom = cpus["return"][0]["qom-path"]
        got = {}
        for prop in ("family", "model", "stepping", "type"):
            out = virsh("qemu-monitor-command", name,
                        json.dumps({"execute": "qom-get", "arguments": {"path": qom, "property": prop}}))
            got[prop] = json.loads(out.stdout)["return"]
        return None, got
    finally:
        virsh("destroy", name)
        virsh("undefine", name)


def _kvm_refused(reason: str) -> bool:
    return bool(re.search(r"kvm|KVM|MSR|msr|failed to set|Operation not permitted", reason))


def test_the_libvirt_document_parses_and_libvirt_accepts_the_cpu(host):
    root = ET.fromstring(render_libvirt(host["result"]).encode())
    cpu = root.find("answer/cpu")
    assert cpu is not None and root.find("answer").get("libvirt") == host["answer"].libvirt
    path = host["dir"] / "cpu.xml"
    path.write_text(ET.tostring(cpu, encoding="unicode"))
    compare = virsh("hypervisor-cpu-compare", str(path))
    assert compare.returncode == 0 and ("superset" in compare.stdout or "identical" in compare.stdout), \
        compare.stdout + compare.stderr


def test_a_domain_with_the_answer_starts_and_shows_its_identity(host):
    d = host["answer"]
    reason, got = _start(host["dir"], d, f"cpusolve-test-{uuid.uuid4().hex[:8]}")
    if reason is not None:
        if _kvm_refused(reason):
            pytest.skip(f"this machine's KVM refused the guest: {reason[:200]}")
        pytest.fail(f"libvirt refused the answer: {reason}")
    _, fam, mod, step = d.guest.identity()
    assert (got["family"], got["model"], got["stepping"]) == (fam, mod, step)
    assert got["type"] == f"{libvirt_cpu(d).model}-x86_64-cpu"


def test_the_family_model_stepping_passthrough_reaches_the_guest(host):
    """An answer that shows another identity (here one is set by hand on this machine's
    answer: what is under test is the passthrough, not the choice)."""
    d = host["answer"]
    _, fam, mod, step = d.guest.identity()
    other = (fam, mod + 1 if mod < 250 else mod - 1, step)
    shown = dataclasses.replace(d, guest=dataclasses.replace(d.guest, fms=other))
    reason, got = _start(host["dir"], shown, f"cpusolve-test-{uuid.uuid4().hex[:8]}")
    if reason is not None:
        if _kvm_refused(reason):
            pytest.skip(f"this machine's KVM refused the guest: {reason[:200]}")
        pytest.fail(f"libvirt refused the answer: {reason}")
    assert (got["family"], got["model"], got["stepping"]) == other


def test_the_nova_fragment_passes_novas_startup_checks(host):
    """Nova's _check_cpu_compatibility: the model must be one of libvirt's model names, and
    libvirt must not call model plus extra flags incompatible with the hypervisor."""
    import configparser

    (fragment,) = nova_files(host["result"])
    assert fragment.usable
    conf = configparser.ConfigParser()
    conf.read_string(fragment.text)
    model = conf["libvirt"]["cpu_models"]
    names = virsh("cpu-models", "x86_64").stdout.split()
    assert model in names, f"{model} is not among libvirt's models"
    cpu = cpu_element(libvirt_cpu(host["answer"]))
    cpu.attrib.pop("check")
    path = host["dir"] / "nova-cpu.xml"
    path.write_text(ET.tostring(cpu, encoding="unicode"))
    compare = virsh("hypervisor-cpu-compare", str(path))
    assert compare.returncode == 0 and "incompatible" not in compare.stdout, compare.stdout + compare.stderr
