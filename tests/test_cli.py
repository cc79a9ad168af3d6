"""The command line: formats, exit codes, one-line errors, atomic output, stdin."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from cpusolve.cli import main

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run(*args, input=None):
    result = CliRunner().invoke(main, list(args), input=input)
    return result.exit_code, result.stdout, result.stderr


def test_solve_text_default_exit_zero():
    code, out, err = run(str(EXAMPLES / "intel-rack.json"))
    assert code == 0, err
    assert "Domain 1: 4 hosts, 96 machines, GenuineIntel: OK" in out
    assert "model:        Skylake-Server-v4" in out
    assert "1 of 1 domain solved" in out


def test_infeasible_exit_one_with_conflict():
    code, out, _ = run(str(EXAMPLES / "mixed-inline.json"))
    assert code == 1
    assert "INFEASIBLE" in out and "skx-01 (x40) lacks md-clear" in out


def test_json_schema_and_determinism():
    code, out, _ = run(str(EXAMPLES / "epyc-evacuation.json"), "--format", "json")
    assert code == 1
    data = json.loads(out)
    assert data["schema"] == "cpusolve-result/2"
    doms = data["domains"]
    assert [d["status"] for d in doms] == ["ok", "infeasible"]
    assert doms[0]["guest"]["model"].startswith("EPYC-Milan-v")
    assert doms[1]["starts"] == ["rome-01", "rome-02"]
    assert doms[0]["qemu"].endswith(",enforce")
    assert set(data["host_sets"][doms[1]["hosts"]]) == set(data["hosts"])  # Rome drains into all
    assert run(str(EXAMPLES / "epyc-evacuation.json"), "--format", "json")[1] == out
    code, old, _ = run(str(EXAMPLES / "epyc-evacuation.json"), "--format", "json", "--json-schema", "1")
    assert json.loads(old)["schema"] == "cpusolve-result/1"
    assert [h["name"] for h in json.loads(old)["domains"][1]["hosts"]] == data["host_sets"][doms[1]["hosts"]]


def test_qemu_and_libvirt_formats():
    code, out, _ = run(str(EXAMPLES / "westmere-false-immunity.json"), "--format", "qemu")
    assert code == 0
    line = [x for x in out.splitlines() if not x.startswith("#")][0]
    assert line.startswith("Westmere-v2,family=6,model=85,stepping=4,") and line.endswith(",enforce")
    code, out, _ = run(str(EXAMPLES / "westmere-false-immunity.json"), "--format", "libvirt")
    import xml.etree.ElementTree as ET

    root = ET.fromstring(out.encode())  # one well-formed document
    (answer,) = root.findall("answer")
    assert answer.find("cpu/model").text == "Westmere-v2" and answer.get("libvirt") == "11.3"
    args = [a.get("value") for a in answer.iter("{http://libvirt.org/schemas/domain/qemu/1.0}arg")]
    assert "Westmere-v2-x86_64-cpu.model=85" in args and answer.find("required") is not None


@pytest.mark.parametrize("content,message", [
    ('{"hosts": {"a": {"cpu": "Skylake-Server-v9"}}}', "unknown CPU model 'Skylake-Server-v9'"),
    ('{"hosts": {"a": {"cpu": "Skylake-Server-v4"}}', "truncated JSON"),
    ('{"hosts": {}}', "empty pool"),
    ('\x00\x01binary', "binary data"),
])
def test_bad_input_exit_two_one_line(tmp_path, content, message):
    path = tmp_path / "pool.json"
    path.write_text(content)
    code, out, err = run(str(path))
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and str(path) in lines[0]
    assert "Traceback" not in err


def test_missing_file_and_stdin():
    code, _, err = run("/nonexistent/pool.json")
    assert code == 2 and "no such file" in err
    pool = (EXAMPLES / "intel-rack.json").read_text()
    code, out, _ = run("-", "--format", "qemu", input=pool)
    assert code == 0 and out.count(",enforce") == 1


def test_output_file_is_atomic(tmp_path):
    target = tmp_path / "cpu.txt"
    code, out, _ = run(str(EXAMPLES / "intel-rack.json"), "--format", "qemu", "-o", str(target))
    assert code == 0 and out == "" and target.read_text().count("enforce") == 1
    target.write_text("previous config\n")
    code, _, _ = run(str(tmp_path / "missing.json"), "-o", str(target))
    assert code == 2 and target.read_text() == "previous config\n"
    assert [p.name for p in tmp_path.iterdir()] == ["cpu.txt"]


def test_policy_and_waive_options():
    # skx-01 has no microcode mechanisms at all: not even compat's attempts are possible
    code, out, _ = run(str(EXAMPLES / "mixed-inline.json"), "--policy", "compat")
    assert code == 1 and "skx-01 (x40) cannot expose ssbd" in out
    waive = [a for bug in ("mds", "tsx_async_abort", "mmio_stale_data", "spec_store_bypass")
             for a in ("--waive", bug)]
    code, out, _ = run(str(EXAMPLES / "mixed-inline.json"), *waive)
    assert code == 0 and "OK-WAIVED" in out
    assert "WAIVED: mds is present on hosts of this domain and guests may not mitigate it" in out
    code, _, err = run(str(EXAMPLES / "mixed-inline.json"), "--waive", "mdss")
    assert code == 2 and "did you mean 'mds'" in err


def test_console_script_runs_as_a_process():
    proc = subprocess.run([sys.executable, "-m", "cpusolve.cli", str(EXAMPLES / "intel-rack.json"),
                           "--format", "qemu"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Skylake-Server-v4," in proc.stdout


FACTS = Path(__file__).resolve().parent / "data" / "facts"


def test_pool_init_from_real_cpuid_dumps_then_solve(tmp_path):
    import shutil

    for name in ("x86_64-cpuid-Xeon-Gold-6148.xml", "x86_64-cpuid-Cooperlake.xml"):
        shutil.copy(FACTS / name, tmp_path / name)
    pool_path = tmp_path / "pool.json"
    code, out, err = run("pool", "init", str(tmp_path / "x86_64-cpuid-Xeon-Gold-6148.xml"),
                         str(tmp_path / "x86_64-cpuid-Cooperlake.xml"), "--group", "rack1", "-o", str(pool_path))
    assert code == 0, err
    pool = json.loads(pool_path.read_text())
    assert pool["hosts"]["x86_64-cpuid-Cooperlake"]["facts"] == "x86_64-cpuid-Cooperlake.xml"
    assert [sorted(g) for g in pool["migration"]["groups"]] == [sorted(pool["hosts"])]
    # The Skylake-SP dump predates the MDS microcode: no guest is protected against MDS there.
    code, out, _ = run(str(pool_path))
    assert code == 1 and "x86_64-cpuid-Xeon-Gold-6148 lacks md-clear (host microcode)" in out
    # Nor does it have SPEC_CTRL: under compat a guest cannot even attempt a Retbleed
    # mitigation there (IBRS, and eIBRS, which needs SPEC_CTRL); the conflict is that one
    # (SSBD, which it lacks too, is a second).
    code, out, _ = run(str(pool_path), "--policy", "compat")
    assert code == 1 and "x86_64-cpuid-Xeon-Gold-6148 cannot expose spec-ctrl" in out
    assert "retbleed affects" in out
    # It has no spec-ctrl either (retbleed); waiving both, compat answers, and names the host
    # where the guest's VERW does not clear buffers.
    code, out, _ = run(str(pool_path), "--policy", "compat", "--waive", "spec_store_bypass", "--waive", "retbleed",
                       "--format", "json")
    assert code == 0
    doc = json.loads(out)
    guest = doc["domains"][0]
    assert guest["guest"]["model"].startswith("Skylake-Server")
    assert "invtsc" not in guest["features"]  # unmigratable: never in a migration domain's guest
    ineffective = {p["bug"]: doc["host_sets"][p["hosts"]] for p in guest["protection"]
                   if p["status"] == "ineffective"}
    assert ineffective["mds"] == ["x86_64-cpuid-Xeon-Gold-6148"]  # VERW without MD_CLEAR microcode
    # and retpolines on Cooper Lake's eIBRS silicon (no spec-ctrl on the other host: no IBRS)
    assert ineffective["spectre_v2"] == ["x86_64-cpuid-Cooperlake"]


def test_probe_writes_a_fact_file(tmp_path):
    import os

    target = tmp_path / "me.json"
    code, _, err = run("probe", "-o", str(target), "--device", "/nonexistent/kvm")
    assert code == 0, err
    facts = json.loads(target.read_text())
    assert facts["schema"] == "cpusolve-facts/1" and facts["features"]
    if os.access("/dev/kvm", os.R_OK | os.W_OK):
        code, _, err = run("probe", "-o", str(target))
        assert code == 0, err
        assert "arch-capabilities" in json.loads(target.read_text())["features"]


@pytest.mark.parametrize("args", [["examples/intel-rack.json", "--bogus"], ["verdict"], ["pool", "init"],
                                  ["solve", "--timeout", "0", "x.json"], ["audit", "x.json"],
                                  ["examples/intel-rack.json", "--format", "yaml"]])
def test_usage_errors_are_one_prefixed_line(args):
    """click's own usage errors keep the promise every other error keeps."""
    proc = subprocess.run([sys.executable, "-m", "cpusolve.cli", *args], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cpusolve: error: ") and "--help" in lines[0], proc.stderr


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.json")), ids=lambda p: p.stem)
def test_every_examples_libvirt_and_nova_output_parses(path, tmp_path):
    """One well-formed libvirt document (every answer, infeasible ones as a <reason>; no host
    name or message in a comment), and one configparser-valid nova.conf fragment per
    compute host."""
    import configparser
    import xml.etree.ElementTree as ET

    code, out, _ = run(str(path), "--format", "libvirt")
    root = ET.fromstring(out.encode())
    assert root.tag == "cpusolve" and root.findall("answer") and "<!--" not in out
    for answer in root.findall("answer"):
        assert answer.find("cpu") is not None or answer.find("reason") is not None
    code, _, _ = run(str(path), "--format", "nova", "-o", str(tmp_path / "nova"))
    files = sorted((tmp_path / "nova").glob("*.conf"))
    assert files
    for f in files:
        conf = configparser.ConfigParser()
        conf.read(f)
        assert conf.sections() in ([], ["libvirt"])
    configured = all("[libvirt]" in f.read_text() for f in files)
    solved = all(a.get("status").startswith("ok") for a in root.findall("answer"))
    assert code == (0 if configured and solved else 1)  # a host Nova cannot configure is exit 1
