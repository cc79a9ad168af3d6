"""Ground truth from real Debian Linux 6.1 and 6.12 guest kernels booted under QEMU TCG.

- the recordings (tests/data/groundtruth/linux-6.1-tcg.json, linux-6.12-tcg.json) are
  well-formed;
- (slow) booting a kernel again gives the recorded flags, vulnerability texts and
  mitigation lines;
- each kernel's rule table agrees with the kernel on every recorded verdict, and its
  actions table predicts every sysfs text, every mitigation line of dmesg (Spectre V2
  mode, RETBleed, SRSO, BHI...) and the active return thunk, from the flags and the vCPU
  topology the guest really saw.

See tests/data/groundtruth/SOURCE.md for how the recordings were made.
"""

from __future__ import annotations

import concurrent.futures
import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
DATA = HERE / "data" / "groundtruth"
SERIES = ("6.1", "6.12")


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
    "dmesg": list,
}
TOP_KEYS = {"qemu_version", "kernel_release", "kernel_package", "command", "recorded_at", "runs", "refused",
            "dmesg_filter"}
# files every x86 6.1 and 6.12 kernel has in /sys/devices/system/cpu/vulnerabilities/
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
#: dmesg lines the actions tables are responsible for (the pr_fmt prefixes of bugs.c and
#: the return-thunk lines); the recordings also keep CPU topology, smpboot, UMIP... lines
MODELLED = re.compile(
    r"^(Spectre V1 : |Spectre V2 : |RETBleed: |MDS: |TAA: |MMIO Stale Data|Register File Data Sampling: |"
    r"SRBDS: |GDS: |ITS: |Speculative Store Bypass: |Speculative Return Stack Overflow: |"
    r"Transient Scheduler Attacks: |VMSCAPE: |L1TF: |L1D Flush : |active return thunk: |AMD Zen1 |"
    r"MDS CPU bug present|TAA CPU bug present|MMIO Stale Data CPU bug present|Zenbleed|"
    r"Speculation prctl: |x86/bugs: )")


def _recording(series: str) -> dict:
    return json.loads((DATA / f"linux-{series}-tcg.json").read_text())


@pytest.fixture(scope="module", params=SERIES)
def recording(request) -> dict:
    return _recording(request.param)


def test_recording_is_well_formed(recording):
    assert TOP_KEYS <= recording.keys(), TOP_KEYS - recording.keys()
    runs = recording["runs"]
    assert len(runs) >= 70
    seen = set()
    for run in runs:
        cpu = (run.get("cpu", "?"), run.get("smp"))
        for key, typ in RUN_KEYS.items():
            assert key in run, f"{cpu}: missing {key}"
            assert isinstance(run[key], typ), f"{cpu}: {key} is {type(run[key]).__name__}"
        assert cpu not in seen, f"{cpu} recorded twice"
        seen.add(cpu)
        assert run["vendor"] in {"GenuineIntel", "AuthenticAMD", "HygonGenuine"}, cpu
        assert run["flags"] and all(isinstance(f, str) and f == f.strip() and f for f in run["flags"]), cpu
        assert "hypervisor" in run["flags"], cpu
        vulns = run["vulnerabilities"]
        assert CORE_BUGS <= vulns.keys(), f"{cpu}: missing {CORE_BUGS - vulns.keys()}"
        assert all(isinstance(t, str) and t for t in vulns.values()), cpu
        assert run["kernel_release"] == recording["kernel_release"], cpu
        assert run["kernel_release"] in run["kernel_version"], cpu
        assert run["qemu_version"] == recording["qemu_version"], cpu
    for entry in recording["refused"]:
        assert {"cpu", "error"} <= entry.keys()


def test_the_first_recording_is_kept():
    """The 6.1 recording keeps every run of the first one (one vCPU, the same -cpu strings)
    with the same verdicts: the new recorder changed nothing it already saw."""
    runs = {r["cpu"]: r for r in _recording("6.1")["runs"] if not r.get("smp")}
    for cpu in boot.DEFAULT_CPUS:
        if cpu in runs:
            assert runs[cpu]["vulnerabilities"] and "hypervisor" in runs[cpu]["flags"], cpu
    assert len([c for c in boot.DEFAULT_CPUS if c in runs]) >= 40


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
@pytest.mark.parametrize("series", SERIES)
def test_boot_reproduces_recording(series):
    recording = _recording(series)
    missing = boot.missing_requirements(series)
    if missing:
        pytest.skip("ground-truth boot needs " + "; ".join(missing) + "; " + boot.INSTALL_HINT)
    release = recording["kernel_release"]
    kernel = boot.find_kernel(release)
    if kernel is None:
        pytest.skip(
            f"the recording was made with {release}, but only "
            f"{[boot.kernel_release_of(k) for k in boot.find_kernels(series)]} is unpacked under "
            f"{boot.cache_dir()}: re-record (python tests/groundtruth/boot.py record --kernel {series}) or "
            f"GT_KERNEL_PKGS=linux-image-{release} bash .ci/install-groundtruth.sh"
        )
    qv = boot.qemu_version()
    if qv != recording["qemu_version"]:
        pytest.skip(f"recording made with {recording['qemu_version']!r}, this is {qv!r}")
    by_cpu = {r["cpu"]: r for r in recording["runs"] if not r.get("smp")}
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
        live = [x for x in res.dmesg if MODELLED.match(x)]
        if live != [x for x in rec["dmesg"] if MODELLED.match(x)]:
            problems.append(f"{res.cpu}: mitigation lines differ: live {live}")
    assert not problems, "\n".join(problems)


def _view(run: dict, rt):
    """The guest view a recorded run had: its /proc/cpuinfo flags, its vCPU topology (SMT
    when QEMU gave threads > 1), and TCG's MSR behaviour (unknown MSRs read 0 and ignore
    writes, so every probe the kernel makes succeeds)."""
    import dataclasses

    from cpusolve.encodings.catalog import catalog
    from cpusolve.encodings.cpu import CpuView

    features = catalog().from_linux_flags(set(run["flags"]), vendor=run["vendor"])
    m = re.search(r"threads=(\d+)", run.get("smp") or "")
    view = CpuView(vendor=run["vendor"], family=run["family"], model=run["model"], stepping=run["stepping"],
                   features=frozenset(features), hypervisor=True)
    return dataclasses.replace(view, smt=bool(m and int(m.group(1)) > 1), boot=_msr_probes(rt))


def _msr_probes(rt) -> frozenset[str]:
    found: set[str] = set()

    def walk(node):
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "msr_ok" and isinstance(v, str) and v.isidentifier():
                    found.add(f"msr_ok:{v}")
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk([a.get("when") for a in rt.action_data.values()])
    return frozenset(found)


def _name(run: dict) -> str:
    smp = f" -smp {run['smp']}" if run.get("smp") else ""
    return f"{run['cpu']}{smp} [{run['vendor']} {run['family']}/{run['model']}/{run['stepping']}]"


@pytest.mark.parametrize("series", SERIES)
def test_rules_match_kernel(series):
    """Affected / not affected: the rule table's verdict on every file of every boot."""
    from cpusolve.encodings.rules import load_rules

    rules = load_rules(series)
    mismatches, compared = [], 0
    for run in _recording(series)["runs"]:
        view = _view(run, rules)
        verdicts = rules.sysfs_affected(view)
        for bug, text in sorted(run["vulnerabilities"].items()):
            if bug not in verdicts:
                continue
            compared += 1
            if bool(verdicts[bug]) != (text != "Not affected"):
                mismatches.append(f"{_name(run)} {bug}: kernel says {text!r}, rules say "
                                  f"{'affected' if verdicts[bug] else 'Not affected'}; {rules.explain(view, bug)}")
    assert compared > 70 * len(CORE_BUGS)
    assert not mismatches, f"{len(mismatches)} of {compared} verdicts differ from the kernel:\n" + "\n".join(mismatches)


@pytest.mark.parametrize("series", SERIES)
def test_actions_match_kernel(series):
    """What the kernel does: every sysfs text ("Mitigation: Retpolines; IBPB: conditional;
    ..."), the mitigation lines of dmesg in order (Spectre V2 mode, RETBleed, SRSO, BHI...)
    and the active return thunk, as the actions table predicts them from the view."""
    from cpusolve.encodings.rules import load_rules

    rules = load_rules(series)
    recording = _recording(series)
    filters = [re.compile(p, re.I) for p in recording["dmesg_filter"]]
    bad, compared = [], 0
    for run in recording["runs"]:
        view = _view(run, rules)
        for bug, text in sorted(run["vulnerabilities"].items()):
            compared += 1
            predicted = rules.sysfs_text(view, bug)
            if predicted != text:
                bad.append(f"{_name(run)} sysfs {bug}: predicted {predicted!r}, kernel {text!r}")
        predicted = [x for x in rules.dmesg_lines(view) if any(p.search(x) for p in filters)]
        recorded = [x for x in run["dmesg"] if MODELLED.match(x)]
        compared += 1
        if predicted != recorded:
            bad.append(f"{_name(run)} dmesg: predicted {predicted}, kernel {recorded}")
        thunks = [x.split(": ", 1)[1] for x in run["dmesg"] if x.startswith("active return thunk: ")]
        active = thunks[-1] if thunks else "__x86_return_thunk"
        chosen = sorted(n.split("=", 1)[1] for n in rules.action_data if n.startswith("return_thunk=")
                        and rules.holds(rules.actions[n], view))
        compared += 1
        if chosen != [active]:
            bad.append(f"{_name(run)} return thunk: predicted {chosen}, kernel {active}")
    assert compared > 70 * (len(CORE_BUGS) + 2)
    assert not bad, f"{len(bad)} of {compared} predictions differ from the kernel:\n" + "\n".join(bad[:20])
