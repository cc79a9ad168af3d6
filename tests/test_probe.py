"""``cpusolve probe`` against this machine's real /dev/kvm (skipped where there is none)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from cpusolve.cli import main
from cpusolve.encodings.catalog import catalog
from cpusolve.inputs import probe as probe_mod
from cpusolve.inputs.facts import read_fact_file
from cpusolve.inputs.facts.cpuinfo import processors

FACTS = Path(__file__).parent / "data" / "facts"


def kvm_problem() -> str | None:
    """Why /dev/kvm cannot be probed here, or None when it can."""
    if not os.path.exists("/dev/kvm"):
        return "/dev/kvm does not exist on this machine"
    try:
        fd = os.open("/dev/kvm", os.O_RDWR)
    except OSError as e:
        return f"/dev/kvm not accessible: {e.strerror}"
    os.close(fd)
    return None


needs_kvm = pytest.mark.skipif(kvm_problem() is not None, reason=kvm_problem() or "")


def test_ioctl_numbers_match_linux_headers():
    # Values from <linux/kvm.h> as compiled on x86_64 (e.g. strace prints them by name).
    assert probe_mod.KVM_GET_API_VERSION == 0xAE00
    assert probe_mod.KVM_CHECK_EXTENSION == 0xAE03
    assert probe_mod.KVM_GET_SUPPORTED_CPUID == 0xC008AE05
    assert probe_mod.KVM_GET_MSR_FEATURE_INDEX_LIST == 0xC004AE0A
    assert probe_mod.KVM_GET_MSRS == 0xC008AE88
    assert probe_mod.KVM_CPUID_ENTRY2.size == 40 and probe_mod.KVM_MSR_ENTRY.size == 16


@pytest.fixture(scope="module")
def host_facts() -> dict:
    if kvm_problem():
        pytest.skip(kvm_problem())
    return probe_mod.probe()


@needs_kvm
def test_probe_reads_kvm(host_facts):
    facts = host_facts
    assert facts["schema"] == "cpusolve-facts/1"
    assert facts["source"]["method"] == "kvm" and facts["exposable"] is True
    assert {"sse2", "arch-capabilities", "hypervisor"} <= set(facts["features"])
    # QEMU's names, and CPUID bits only Linux names (host facts the bug rules read)
    assert set(facts["features"]) <= set(catalog().features) | set(catalog().linux_cpuid_bits)
    assert facts["source"]["supported_cpuid_entries"] > 10


@needs_kvm
def test_probe_identity_is_proc_cpuinfo(host_facts):
    first = processors(Path("/proc/cpuinfo").read_text())[0]
    assert host_facts["vendor"] == first["vendor_id"]
    assert (host_facts["family"], host_facts["model"]) == (int(first["cpu family"]), int(first["model"]))
    assert host_facts["kernel"] == os.uname().release
    vulns = Path("/sys/devices/system/cpu/vulnerabilities")
    if vulns.is_dir():
        expected = sorted(p.name for p in vulns.iterdir() if p.read_text().strip() != "Not affected")
        assert host_facts["bugs"] == expected


@needs_kvm
def test_probe_read_arch_capabilities_through_kvm(host_facts):
    msrs = host_facts["source"]["msrs"]
    assert "0x10a" in msrs, "KVM_GET_MSRS on the system fd did not return ARCH_CAPABILITIES"
    value = int(msrs["0x10a"], 16)
    cat = catalog()
    caps = {n for n, f in cat.features.items() if f.msr and f.msr[0] == 0x10A}
    # every bit KVM reported is a feature, and every claimed ARCH_CAPABILITIES feature is a set bit
    assert {n for n in caps if value >> cat.features[n].msr[1] & 1} == caps & set(host_facts["features"])
    assert value >> 6 & 1, "KVM always sets PSCHANGE_MC_NO (kvm_get_arch_capabilities)"


@needs_kvm
@pytest.mark.slow
def test_probe_covers_what_qemu_offers(tmp_path):
    """Everything QEMU's own 'host' expansion offers under KVM, the probe reports too."""
    qemu = shutil.which("qemu-system-x86_64")
    if qemu is None:
        pytest.skip("qemu-system-x86_64 not installed")
    session = "\n".join(json.dumps(c) for c in (
        {"execute": "qmp_capabilities"},
        {"execute": "query-cpu-model-expansion", "arguments": {"type": "full", "model": {"name": "host"}}},
        {"execute": "quit"})) + "\n"
    out = subprocess.run([qemu, "-machine", "none", "-accel", "kvm", "-nodefaults", "-display", "none",
                          "-qmp", "stdio"], input=session, capture_output=True, text=True, timeout=60)
    if '"model"' not in out.stdout:
        pytest.skip(f"QEMU could not expand 'host': {out.stderr.strip()[:200]}")
    reply = tmp_path / "qmp-live.json"
    reply.write_text(out.stdout)
    offered = read_fact_file(reply).features
    assert offered <= set(probe_mod.probe()["features"])


def test_probe_falls_back_without_kvm(capsys):
    facts = probe_mod.probe(dev="/nonexistent/kvm")
    assert facts["source"]["method"] == "cpuinfo-fallback" and facts["exposable"] is False
    assert "/nonexistent/kvm" in facts["source"]["reason"]
    assert "sse2" in facts["features"]
    assert "cpuinfo" in capsys.readouterr().err


def test_probe_falls_back_when_kvm_is_not_accessible(monkeypatch):
    real_open = os.open

    def deny(path, flags, *args):
        if path == "/dev/kvm":
            raise PermissionError(13, "Permission denied", path)
        return real_open(path, flags, *args)

    monkeypatch.setattr(probe_mod.os, "open", deny)
    facts = probe_mod.probe()
    assert facts["source"]["method"] == "cpuinfo-fallback"
    assert "Permission denied" in facts["source"]["reason"]


def test_probe_falls_back_on_a_device_that_is_not_kvm():
    facts = probe_mod.probe(dev="/dev/null")
    assert facts["source"]["method"] == "cpuinfo-fallback"
    assert "not a KVM device" in facts["source"]["reason"]


def test_probe_uses_given_cpuinfo_and_sysfs_copies():
    facts = probe_mod.probe(dev="/nonexistent/kvm", cpuinfo=str(FACTS / "this-host" / "cpuinfo"),
                            vulnerabilities=str(FACTS / "this-host" / "vulnerabilities"))
    assert (facts["vendor"], facts["family"], facts["model"], facts["stepping"]) == ("AuthenticAMD", 25, 17, 1)
    assert facts["bugs"] == ["spec_rstack_overflow", "spec_store_bypass", "spectre_v1", "spectre_v2"]


def test_probe_output_roundtrips_through_the_reader(tmp_path, capsys):
    path = tmp_path / "host.json"
    code, _, _ = cli("probe", "-o", str(path))
    assert code == 0
    facts = json.loads(path.read_text())
    fact = read_fact_file(path)
    assert fact.format == "cpusolve-facts"
    assert fact.features == frozenset(facts["features"])
    assert fact.exposable == facts["exposable"]
    assert fact.bugs == (None if facts["bugs"] is None else frozenset(facts["bugs"]))
    assert (fact.vendor, fact.family) == (facts["vendor"], facts["family"])
    assert not list(tmp_path.glob(".host.json.*")), "temporary file left behind"


def test_a_linux_only_cpuid_bit_in_a_facts_file_is_kept(tmp_path, capsys):
    """The probe writes CPUID bits only Linux names (linux:amd_ibpb_ret on a Zen 5 host)
    beside QEMU's names; its reader keeps them as the host facts they are, silently."""
    probed = probe_mod.probe(dev="/nonexistent/kvm", cpuinfo=str(FACTS / "this-host" / "cpuinfo"),
                             vulnerabilities=str(FACTS / "this-host" / "vulnerabilities"))
    probed["features"] = sorted({*probed["features"], "linux:amd_ibpb_ret", "linux:btc_no"})
    path = tmp_path / "host.json"
    path.write_text(json.dumps(probed))
    fact = read_fact_file(path)
    assert {"linux:amd_ibpb_ret", "linux:btc_no"} <= fact.features
    assert fact.features == frozenset(probed["features"])
    assert "unknown feature" not in capsys.readouterr().err


def test_probe_to_stdout():
    code, out, err = cli("probe", "--device", "/nonexistent/kvm")
    assert code == 0 and "falls back" not in out
    facts = json.loads(out)
    assert facts["source"]["method"] == "cpuinfo-fallback" and facts["schema"] == "cpusolve-facts/1"


def cli(*args: str) -> tuple[int, str, str]:
    run = CliRunner().invoke(main, list(args))
    return run.exit_code, run.stdout, run.stderr


def fake_tool(folder, name: str, text: str) -> None:
    path = folder / name
    path.write_text(f"#!/bin/sh\necho '{text}'\n")
    path.chmod(0o755)


def test_probe_states_the_qemu_and_libvirt_versions_the_tools_print(tmp_path, monkeypatch):
    fake_tool(tmp_path, "qemu-system-x86_64", "QEMU emulator version 8.2.2 (Debian 1:8.2.2+ds-0ubuntu1)")
    fake_tool(tmp_path, "libvirtd", "libvirtd (libvirt) 10.0.0")
    monkeypatch.setenv("PATH", str(tmp_path))
    facts = probe_mod.probe(dev="/nonexistent/kvm", cpuinfo=str(FACTS / "this-host" / "cpuinfo"),
                            vulnerabilities=str(FACTS / "this-host" / "vulnerabilities"))
    assert facts["qemu"] == "8.2.2" and facts["libvirt"] == "10.0.0"
    assert facts["source"]["libvirt_version_from"] == "libvirtd --version"
    # a pool host from that file runs QEMU 7.2's names (8.2 knows them all) and libvirt 9.0's
    path = tmp_path / "h.json"
    path.write_text(json.dumps(facts))
    from cpusolve.api import load_pool

    host = load_pool({"hosts": {"h": {"facts": str(path)}}}).hosts["h"].facts
    assert (host.qemu, host.libvirt) == ("7.2", "9.0")


def test_probe_without_the_tools_says_so_and_states_no_version(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    facts = probe_mod.probe(dev="/nonexistent/kvm", cpuinfo=str(FACTS / "this-host" / "cpuinfo"),
                            vulnerabilities=str(FACTS / "this-host" / "vulnerabilities"))
    assert "qemu" not in facts and "libvirt" not in facts
    assert any("qemu: none of qemu-system-x86_64 found" in n for n in facts["source"]["notes"])


def test_a_fact_file_with_a_bad_version_is_one_line(tmp_path, capsys):
    facts = probe_mod.probe(dev="/nonexistent/kvm", cpuinfo=str(FACTS / "this-host" / "cpuinfo"),
                            vulnerabilities=str(FACTS / "this-host" / "vulnerabilities"))
    facts["qemu"] = "seven\nlines"
    path = tmp_path / "h.json"
    path.write_text(json.dumps(facts))
    from cpusolve.api import load_pool
    from cpusolve.errors import InputError

    with pytest.raises(InputError, match="'qemu' must be a version"):
        load_pool({"hosts": {"h": {"facts": str(path)}}})


@pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="qemu-system-x86 is not installed here")
def test_probe_reads_the_installed_qemu():
    facts = probe_mod.probe(dev="/nonexistent/kvm", cpuinfo=str(FACTS / "this-host" / "cpuinfo"),
                            vulnerabilities=str(FACTS / "this-host" / "vulnerabilities"))
    printed = subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True, text=True).stdout
    assert facts["qemu"] in printed


def test_a_tool_that_prints_no_version_is_said_so_not_called_missing(tmp_path, monkeypatch):
    fake_tool(tmp_path, "qemu-system-x86_64", "something else entirely")
    monkeypatch.setenv("PATH", str(tmp_path))
    facts = probe_mod.probe(dev="/nonexistent/kvm", cpuinfo=str(FACTS / "this-host" / "cpuinfo"),
                            vulnerabilities=str(FACTS / "this-host" / "vulnerabilities"))
    assert "qemu" not in facts
    note = "qemu: qemu-system-x86_64 --version printed no version (its version is not stated)"
    assert note in facts["source"]["notes"]
