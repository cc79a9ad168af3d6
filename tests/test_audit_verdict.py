"""cpusolve verdict (against the real kernel's own verdicts) and cpusolve audit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cpusolve.cli import main
from cpusolve.inputs.guest_cpu import parse_qemu_cpu

ROOT = Path(__file__).resolve().parents[1]
FLEET = ROOT / "examples" / "fleet"
GROUND = Path(__file__).resolve().parent / "data" / "groundtruth" / "linux-6.1-tcg.json"


def cli(*args):
    r = CliRunner().invoke(main, [str(a) for a in args])
    return r.exit_code, r.stdout, r.stderr


def clean_runs():
    """Recorded boots where QEMU's TCG dropped no feature: the -cpu string is what the guest saw."""
    data = json.loads(GROUND.read_text())
    return [r for r in data["runs"] if not r.get("qemu_warnings")]


@pytest.mark.parametrize("run", clean_runs(), ids=lambda r: r["cpu"])
def test_verdict_matches_the_real_kernel(run):
    code, out, err = cli("verdict", run["cpu"], "--kernel", "6.1", "--format", "json")
    if code == 2 and "unknown CPU model" in err:
        pytest.skip(f"{run['cpu']} is not a versioned catalog name")
    assert code == 0, err
    bugs = json.loads(out)["bugs"]
    for bug, text in run["vulnerabilities"].items():
        if bug in bugs:
            assert bugs[bug]["affected"] == (text != "Not affected"), (bug, text, bugs[bug]["why"])


def test_enough_clean_runs_recorded():
    assert len(clean_runs()) >= 5


def test_verdict_json_shape_and_westmere_retbleed():
    code, out, _ = cli("verdict", "Westmere-v1", "--format", "json")
    data = json.loads(out)
    assert code == 0 and data["kernel"].startswith("6.1")
    assert data["bugs"]["retbleed"]["affected"] is False and data["bugs"]["retbleed"]["sysfs"] == "Not affected"
    # what the real 6.1 kernel prints under -cpu Westmere-v1 (tests/data/groundtruth)
    assert data["bugs"]["mds"]["sysfs"] == ("Vulnerable: Clear CPU buffers attempted, no microcode; "
                                            "SMT Host state unknown")
    assert "RETBLEED" in data["bugs"]["retbleed"]["why"]
    code, out, _ = cli("verdict", "Westmere-v2,family=6,model=85,stepping=4", "--format", "json")
    assert json.loads(out)["bugs"]["retbleed"]["affected"] is True


def test_removing_a_feature_removes_what_depends_on_it():
    cpu = parse_qemu_cpu("Cascadelake-Server-v5,-arch-capabilities")
    assert not {"mds-no", "rdctl-no", "ibrs-all", "arch-capabilities"} & cpu.visible()
    assert "avx2" not in parse_qemu_cpu("Skylake-Server-v4,-avx").visible()
    assert "avx512f" not in parse_qemu_cpu("Skylake-Server-v4,-avx2").visible()
    code, out, _ = cli("verdict", "Cascadelake-Server-v5,-arch-capabilities", "--format", "json")
    assert json.loads(out)["bugs"]["mds"]["affected"] is True
    code, out, _ = cli("verdict", "Cascadelake-Server-v5", "--format", "json")
    assert json.loads(out)["bugs"]["mds"]["affected"] is False


def test_verdict_bad_cpu():
    code, _, err = cli("verdict", "Westmere-v9")
    assert code == 2 and "did you mean" in err and "'Westmere-v1'" in err
    code, _, err = cli("verdict", "Westmere-v1,+md-claer")
    assert code == 2 and "md-clear" in err


def test_audit_finds_planted_problems():
    code, out, err = cli("audit", FLEET / "pool.json", "--guests", FLEET / "guests.json", "--format", "json")
    assert code == 1, err
    guests = {g["name"]: g for g in json.loads(out)["guests"]}
    assert guests["web-17"]["status"] == "safe" and guests["web-17"]["fix"] is None
    # A Westmere-era pin on Skylake/Cascade Lake hosts: believes itself immune to Retbleed,
    # runs retpolines where Cascade Lake's eIBRS silicon needs IBRS.
    erp = guests["erp-db"]
    assert erp["status"] == "unsafe"
    unprotected = {u["bug"]: u for u in erp["unprotected"]}
    assert {"retbleed", "spectre_v2"} <= set(unprotected)
    assert "believes itself not affected" in unprotected["retbleed"]["why"]
    assert unprotected["spectre_v2"]["hosts"] == "clx-01" and "runs retpoline" in unprotected["spectre_v2"]["why"]
    assert erp["fix"].startswith("Westmere-v1,family=6,model=85,") and erp["fix_kind"] == "flags"
    # TSX was removed from the Cascade Lake hosts: the 2018 guest cannot run there.
    ci = guests["ci-runner-3"]
    assert ci["status"] == "unrunnable"
    assert {"hle", "rtm"} <= set(next(u for u in ci["unrunnable"] if u["hosts"] == "clx-01")["missing"])
    assert "-hle" in ci["fix"] and "-rtm" in ci["fix"]
    # A libvirt XML claiming Cascade Lake's immunities on Skylake hosts.
    an = guests["analytics"]
    assert {u["bug"] for u in an["unprotected"]} >= {"mds", "meltdown", "l1tf"}
    assert all("believes itself not affected" in u["why"] for u in an["unprotected"]
               if u["bug"] in ("mds", "meltdown", "l1tf"))
    assert "mds-no" not in an["fix"]


def test_audit_fix_is_itself_safe():
    code, out, _ = cli("audit", FLEET / "pool.json", "--guests", FLEET / "guests.json", "--format", "json")
    fixed = [{"name": g["name"], "cpu": g["fix"], "host": "skx-01"}
             for g in json.loads(out)["guests"] if g["fix"]]
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump({"guests": fixed}, fh)
    code, out, _ = cli("audit", FLEET / "pool.json", "--guests", fh.name, "--format", "json")
    assert code == 0, out
    Path(fh.name).unlink()


@pytest.mark.parametrize("content,message", [
    ("[", "truncated guests file"),
    ('{"guests": []}', "a guests file is a JSON list"),
    ('[{"name": "a", "cpu": "Westmere-v1", "host": "skx-99"}]', "host 'skx-99' is not in the pool"),
    ('[{"name": "a", "host": "skx-01"}]', "give exactly one of 'cpu'"),
    ('[{"name": "a", "cpu": "Westmere-v1", "host": "skx-01"}, {"name": "a", "cpu": "Westmere-v1", '
     '"host": "skx-01"}]', "duplicate guest name 'a'"),
])
def test_audit_bad_guest_files(tmp_path, content, message):
    """A broken guests file is one error line (exit 2)."""
    evil = '<!DOCTYPE x [<!ENTITY a "aaaa">]><domain><cpu><model>&a;</model></cpu></domain>'
    (tmp_path / "evil.xml").write_text(evil)
    path = tmp_path / "guests.json"
    path.write_text(content)
    code, out, err = cli("audit", FLEET / "pool.json", "--guests", path)
    assert code == 2 and out == "" and message in err and len(err.strip().splitlines()) == 1


def test_one_unreadable_guest_is_its_own_line(tmp_path):
    """A guest whose CPU cannot be read (an unknown model, a hostile XML file) is reported as
    UNREADABLE with the reason; the other guests are still audited (exit 1)."""
    (tmp_path / "evil.xml").write_text('<!DOCTYPE x [<!ENTITY a "aaaa">]><domain><cpu><model>&a;</model></cpu>'
                                       '</domain>')
    path = tmp_path / "guests.json"
    path.write_text(json.dumps([{"name": "typo", "cpu": "Westmere-v9", "host": "skx-01"},
                                {"name": "evil", "libvirt": "evil.xml", "host": "skx-01"},
                                {"name": "ok", "cpu": "Skylake-Server-v4,+md-clear,+ssbd,+stibp", "host": "skx-01"}]))
    code, out, err = cli("audit", FLEET / "pool.json", "--guests", path)
    assert code == 1 and err == ""
    assert "typo: UNREADABLE" in out and "unknown CPU model 'Westmere-v9'" in out
    assert "evil: UNREADABLE" in out and "XML with a <!DOCTYPE ...> declaration refused" in out
    assert "ok: SAFE" in out and "1 of 3 guests safe" in out


def test_audit_reads_what_libvirt_runs(tmp_path):
    """cpusolve's own libvirt answer, family/model/stepping passthrough included, audits SAFE;
    a host-passthrough guest is judged by whether its hosts are alike; a libvirt guest's fix is
    given as libvirt XML."""
    import dataclasses
    import xml.etree.ElementTree as ET

    from cpusolve.api import load_pool, solve
    from cpusolve.writers.libvirt import apply_to_domain, render_domain

    pool = load_pool(str(ROOT / "examples" / "westmere-false-immunity.json"))
    pool.requirements = dataclasses.replace(pool.requirements, libvirt="11.3")
    d = solve(pool).domains[0]
    assert d.guest.fms is not None  # the answer needs the passthrough
    domain = ET.fromstring("<domain type='kvm'><name>g</name><cpu mode='host-passthrough'/></domain>")
    (tmp_path / "answer.xml").write_text(render_domain(apply_to_domain(domain, d, "11.3")))
    (tmp_path / "passthrough.xml").write_text("<domain type='kvm'><name>p</name>"
                                              "<cpu mode='host-passthrough'/></domain>")
    (tmp_path / "westmere.xml").write_text("<domain type='kvm'><name>w</name><cpu mode='custom'>"
                                           "<model>Westmere</model></cpu></domain>")
    (tmp_path / "pool.json").write_text((ROOT / "examples" / "westmere-false-immunity.json").read_text())
    guests = tmp_path / "guests.json"
    guests.write_text(json.dumps([{"name": "answer", "libvirt": "answer.xml", "host": "skx-01"},
                                  {"name": "pt", "libvirt": "passthrough.xml", "host": "skx-01"},
                                  {"name": "old", "libvirt": "westmere.xml", "host": "skx-01"}]))
    code, out, err = cli("audit", tmp_path / "pool.json", "--guests", guests, "--format", "json")
    got = {g["name"]: g for g in json.loads(out)["guests"]}
    assert got["answer"]["status"] == "safe", got["answer"]
    assert got["pt"]["status"] == "unrunnable" and got["pt"]["mode"] == "host-passthrough"
    assert got["old"]["status"] == "unsafe" and got["old"]["fix_libvirt"].startswith("<cpu mode=\"custom\"")



#: an EPYC (Zen 1) host without SMT whose protected answer needs a guest that knows its
#: vCPUs are SMT siblings (from the diverse benchmark pool)
ZEN1_NO_SMT = {"cpu": "EPYC-v2", "add": ["amd-ssbd", "ibpb-brtype", "verw-clear", "virt-ssbd"],
               "remove": ["sha-ni"], "kernel": "6.12", "smt": False}


def test_a_libvirt_guest_keeps_the_smt_topology_of_its_xml(tmp_path):
    import json

    from click.testing import CliRunner

    from cpusolve.cli import main
    from cpusolve.inputs.guest_cpu import parse_libvirt_cpu

    pool = tmp_path / "pool.json"
    pool.write_text(json.dumps({"hosts": {"h": ZEN1_NO_SMT}, "requirements": {"policy": "compat"}}))
    xml = CliRunner().invoke(main, [str(pool), "--format", "libvirt"]).output
    assert "threads=\"2\"" in xml or "threads='2'" in xml
    cpu_xml = xml[xml.index("<cpu "):xml.index("</cpu>") + len("</cpu>")]
    (tmp_path / "g.xml").write_text(cpu_xml)
    assert parse_libvirt_cpu(tmp_path / "g.xml").threads == 2
    (tmp_path / "guests.json").write_text(json.dumps([{"name": "g", "libvirt": "g.xml", "host": "h"}]))
    out = CliRunner().invoke(main, ["audit", str(pool), "--guests", str(tmp_path / "guests.json")])
    assert out.exit_code == 0 and "g: SAFE" in out.output, out.output
    # without the topology the same CPU leaves the guest unprotected, and the fix says so
    (tmp_path / "g.xml").write_text("\n".join(x for x in cpu_xml.splitlines() if "topology" not in x))
    out = CliRunner().invoke(main, ["audit", str(pool), "--guests", str(tmp_path / "guests.json")])
    assert out.exit_code == 1 and "g: UNSAFE" in out.output and "threads=2 per core" in out.output, out.output
    (tmp_path / "g.xml").write_text(cpu_xml)
    (tmp_path / "g.xml").write_text(cpu_xml.replace('threads="2"', 'threads="x"').replace("threads='2'", "threads='x'"))
    out = CliRunner().invoke(main, ["verdict", str(tmp_path / "g.xml")])
    assert out.exit_code == 2 and "<topology threads=...>" in out.output and out.output.count("\n") == 1
