"""Ground truth from a real Debian Linux 6.1 guest kernel booted under QEMU TCG.

- the recording (tests/data/groundtruth/linux-6.1-tcg.json) is well-formed;
- (slow) booting the kernel again gives the recorded flags and vulnerability texts;
- the project's 6.1 rule table agrees with the kernel on every recorded run.

See tests/data/groundtruth/SOURCE.md for how the recording was made.
"""

from __future__ import annotations

import concurrent.futures
import importlib.util
import inspect
import json
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
RECORDING = HERE / "data" / "groundtruth" / "linux-6.1-tcg.json"


def _load_boot():
    name = "cpusolve_groundtruth_boot"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, HERE / "groundtruth" / "boot.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses look the module up while it executes
    spec.loader.exec_module(mod)
    return mod


boot = _load_boot()

RUN_KEYS = {
    "cpu": str,
    "qemu_version": str,
    "kernel_version": str,
    "kernel_release": str,
    "vendor": str,
    "family": int,
    "model": int,
    "stepping": int,
    "flags": list,
    "vulnerabilities": dict,
    "qemu_warnings": list,
}
TOP_KEYS = {"qemu_version", "kernel_release", "kernel_package", "command", "recorded_at", "runs", "refused"}
# files every x86 6.1 kernel has in /sys/devices/system/cpu/vulnerabilities/
CORE_BUGS = {
    "meltdown",
    "spectre_v1",
    "spectre_v2",
    "spec_store_bypass",
    "l1tf",
    "mds",
    "tsx_async_abort",
    "itlb_multihit",
    "srbds",
    "mmio_stale_data",
    "retbleed",
}


@pytest.fixture(scope="module")
def recording() -> dict:
    return json.loads(RECORDING.read_text())


def test_recording_is_well_formed(recording):
    assert TOP_KEYS <= recording.keys(), TOP_KEYS - recording.keys()
    runs = recording["runs"]
    assert len(runs) >= 25
    seen = set()
    for run in runs:
        cpu = run.get("cpu", "?")
        for key, typ in RUN_KEYS.items():
            assert key in run, f"{cpu}: missing {key}"
            assert isinstance(run[key], typ), f"{cpu}: {key} is {type(run[key]).__name__}"
        assert cpu not in seen, f"{cpu} recorded twice"
        seen.add(cpu)
        assert run["vendor"] in {"GenuineIntel", "AuthenticAMD", "HygonGenuine"}, cpu
        assert run["flags"] and all(isinstance(f, str) and f == f.strip() and f for f in run["flags"]), cpu
        assert "hypervisor" in run["flags"], cpu
        vulns = run["vulnerabilities"]
        assert vulns, f"{cpu}: no vulnerabilities"
        assert CORE_BUGS <= vulns.keys(), f"{cpu}: missing {CORE_BUGS - vulns.keys()}"
        assert all(isinstance(t, str) and t for t in vulns.values()), cpu
        assert run["kernel_release"] == recording["kernel_release"], cpu
        assert run["kernel_release"] in run["kernel_version"], cpu
        assert run["qemu_version"] == recording["qemu_version"], cpu
    for entry in recording["refused"]:
        assert {"cpu", "error"} <= entry.keys()
        assert entry["cpu"] not in seen


def test_initramfs_is_newc_cpio(tmp_path):
    """The pure-Python cpio writer produces what the kernel's unpacker expects."""
    fake = tmp_path / "busybox"
    fake.write_bytes(b"\x7fELF" + b"x" * 1001)
    out = boot.build_initramfs(fake, tmp_path / "initrd.gz")
    import gzip

    raw = gzip.decompress(out.read_bytes())
    names, pos = [], 0
    while True:
        assert raw[pos : pos + 6] == b"070701", pos
        fields = [int(raw[pos + 6 + 8 * i : pos + 14 + 8 * i], 16) for i in range(13)]
        namesize, filesize = fields[11], fields[6]
        name = raw[pos + 110 : pos + 110 + namesize - 1].decode()
        pos = (pos + 110 + namesize + 3) & ~3
        data = raw[pos : pos + filesize]
        pos = (pos + filesize + 3) & ~3
        if name == "TRAILER!!!":
            break
        names.append(name)
        if name == "bin/busybox":
            assert data == fake.read_bytes()
        if name == "init":
            assert data.startswith(b"#!/bin/busybox sh\n") and b"poweroff -f" in data
            assert fields[1] & 0o111
    assert {"init", "bin/busybox", "bin/sh", "dev/console", "proc", "sys"} <= set(names)
    assert raw[pos:].strip(b"\0") == b""


def test_parse_console():
    console = "\r\n".join(
        [
            "SeaBIOS junk",
            boot.BEGIN,
            "@@GT uname_r 6.1.0-1-amd64",
            "@@GT proc_version Linux version 6.1.0-1-amd64 (x) #1",
            "@@GT cpuinfo vendor_id\t: GenuineIntel",
            "@@GT cpuinfo cpu family\t: 6",
            "@@GT cpuinfo model\t\t: 44",
            "@@GT cpuinfo model name\t: Westmere",
            "@@GT cpuinfo stepping\t: 1",
            "@@GT cpuinfo flags\t\t: fpu sse2 hypervisor",
            "@@GT vuln retbleed Not affected",
            "@@GT vuln mds Vulnerable: Clear CPU buffers attempted, no microcode; SMT Host state unknown",
            boot.END,
            "[    3.4] reboot: Power down",
        ]
    )
    stderr = "qemu-system-x86_64: warning: TCG doesn't support requested feature: CPUID.07H:EDX.spec-ctrl [bit 26]\n"
    r = boot.parse_console("Westmere-v2", console, stderr, 1.0, 0)
    assert r.ok and (r.vendor, r.family, r.model, r.stepping) == ("GenuineIntel", 6, 44, 1)
    assert r.flags == {"fpu", "sse2", "hypervisor"}
    assert r.vulnerabilities["mds"].endswith("SMT Host state unknown")
    assert r.kernel_release == "6.1.0-1-amd64"
    assert len(r.qemu_warnings) == 1
    assert not boot.parse_console("x", "no block", "qemu-system-x86_64: unable to find CPU model 'x'", 0, 1).ok


@pytest.mark.slow
def test_boot_reproduces_recording(recording):
    missing = boot.missing_requirements()
    if missing:
        pytest.skip("ground-truth boot needs " + "; ".join(missing) + "; " + boot.INSTALL_HINT)
    release = recording["kernel_release"]
    kernel = boot.find_kernel(release)
    if kernel is None:
        pytest.skip(
            f"the recording was made with {release}, but only "
            f"{[boot.kernel_release_of(k) for k in boot.find_kernels()]} is unpacked under "
            f"{boot.cache_dir()}: re-record (python -m tests.groundtruth.boot record) or "
            f"GT_KERNEL_PKG=linux-image-{release} bash .ci/install-groundtruth.sh"
        )
    qv = boot.qemu_version()
    if qv != recording["qemu_version"]:
        pytest.skip(f"recording made with {recording['qemu_version']!r}, this is {qv!r}")
    by_cpu = {r["cpu"]: r for r in recording["runs"]}
    cpus = [c for c in boot.REPRO_CPUS if c in by_cpu]
    assert len(cpus) == 3, cpus
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as ex:
        results = list(ex.map(lambda c: boot.boot(c, 120, kernel=kernel), cpus))
    problems = []
    for res in results:
        rec = by_cpu[res.cpu]
        if not res.ok:
            problems.append(f"{res.cpu}: boot failed: {res.error}\n{res.stdout[-2000:]}")
            continue
        if res.kernel_release != release:
            problems.append(f"{res.cpu}: kernel {res.kernel_release} != {release}")
        ident = (res.vendor, res.family, res.model, res.stepping)
        if ident != (rec["vendor"], rec["family"], rec["model"], rec["stepping"]):
            problems.append(f"{res.cpu}: identity {ident}")
        if res.vulnerabilities != rec["vulnerabilities"]:
            diff = {
                k: (rec["vulnerabilities"].get(k), res.vulnerabilities.get(k))
                for k in rec["vulnerabilities"].keys() | res.vulnerabilities.keys()
                if rec["vulnerabilities"].get(k) != res.vulnerabilities.get(k)
            }
            problems.append(f"{res.cpu}: vulnerabilities (recorded, live) differ: {diff}")
        if res.flags != set(rec["flags"]):
            problems.append(
                f"{res.cpu}: flags only recorded {sorted(set(rec['flags']) - res.flags)}, "
                f"only live {sorted(res.flags - set(rec['flags']))}"
            )
    assert not problems, "\n".join(problems)


def _rule_api():
    try:
        from cpusolve.encodings.catalog import catalog
        from cpusolve.encodings.rules import CpuView, load_rules

        cat = catalog()
        rules = load_rules("6.1")
        for obj, attr in ((cat, "from_linux_flags"), (rules, "sysfs_affected"), (rules, "explain")):
            getattr(obj, attr)
    except (ImportError, AttributeError) as e:
        pytest.skip(f"rule evaluator not available yet ({type(e).__name__}: {e})")
    return cat, rules, CpuView


def test_rules_match_kernel(recording):
    cat, rules, CpuView = _rule_api()
    takes_vendor = "vendor" in inspect.signature(cat.from_linux_flags).parameters
    mismatches = []
    compared = 0
    for run in recording["runs"]:
        flags = set(run["flags"])
        features = cat.from_linux_flags(flags, vendor=run["vendor"]) if takes_vendor else cat.from_linux_flags(flags)
        view = CpuView(
            vendor=run["vendor"],
            family=run["family"],
            model=run["model"],
            stepping=run["stepping"],
            features=frozenset(features),
            hypervisor=True,
        )
        verdicts = rules.sysfs_affected(view)
        for bug, text in sorted(run["vulnerabilities"].items()):
            if bug not in verdicts:
                continue
            compared += 1
            kernel_affected = text != "Not affected"
            if bool(verdicts[bug]) != kernel_affected:
                mismatches.append(
                    f"{run['cpu']} [{run['vendor']} {run['family']}/{run['model']}/{run['stepping']}] {bug}: "
                    f"kernel says {text!r}, rules say {'affected' if verdicts[bug] else 'Not affected'}; "
                    f"{rules.explain(view, bug)}"
                )
    assert compared > 0, "no bug in common between the rule table and the recording"
    assert not mismatches, f"{len(mismatches)} of {compared} verdicts differ from the kernel:\n" + "\n".join(mismatches)
