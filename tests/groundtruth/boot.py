"""Ground truth: what real Debian Linux 6.1 and 6.12 guests report under QEMU CPU models.

Boots Debian's own kernels -- bookworm's ``linux-image-6.1.0-*-amd64`` and the
``linux-image-6.12.*+deb12-amd64`` that bookworm-security carries -- under
``qemu-system-x86_64 -accel tcg`` with a tiny busybox initramfs (built here in
pure Python, no ``cpio`` binary needed) and parses what the guest prints: its
CPU identity, ``bugs:`` and flags from ``/proc/cpuinfo``, every file in
``/sys/devices/system/cpu/vulnerabilities/``, the vCPU topology it saw
(``thread_siblings_list``, ``smt/active``, ``smt/control``) and every dmesg
line the kernel prints about its mitigations (the pr_fmt prefixes of
``arch/x86/kernel/cpu/bugs.c``, ``active return thunk: ...``, ``CPU topo:``).

Each run is a ``Config``: a ``-cpu`` string and an optional ``-smp`` string.

Stdlib only (Python 3.11).  The kernels and busybox are downloaded and unpacked
by ``.ci/install-groundtruth.sh``; this module only finds them.  The cache
directory is ``$CPUSOLVE_GT_CACHE``, else ``cache/`` beside this file when it
exists, else ``/var/cache/cpusolve-groundtruth``.

Re-record ``tests/data/groundtruth/linux-6.1-tcg.json`` and ``linux-6.12-tcg.json`` with::

    python tests/groundtruth/boot.py record --kernel 6.12    # every configuration, 2 boots at a time
    python tests/groundtruth/boot.py record --kernel 6.1
    python tests/groundtruth/boot.py show --kernel 6.12 'EPYC-Rome-v2' --smp 2,sockets=1,cores=1,threads=2
    python tests/groundtruth/boot.py list                    # the configurations, one a line

See ``tests/data/groundtruth/SOURCE.md``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import datetime as _dt
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

DEFAULT_CACHE = Path("/var/cache/cpusolve-groundtruth")
HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
DATA = REPO_ROOT / "tests" / "data" / "groundtruth"
LOCAL_CACHE = HERE / "cache"
RAW_DIR = HERE / "raw"  # whole console logs of a recording (not committed)
QEMU = "qemu-system-x86_64"
INSTALL_HINT = "run `bash .ci/install-groundtruth.sh` (as root) to install them"
SERIES: tuple[str, ...] = ("6.1", "6.12")
DEFAULT_SERIES = "6.12"


def recording_path(series: str) -> Path:
    """Where the recording of one kernel series lives (tests/data/groundtruth)."""
    return DATA / f"linux-{series}-tcg.json"


RECORDING = recording_path("6.1")

MARK = "@@GT"
BEGIN = MARK + "-BEGIN"
END = MARK + "-END"

# QEMU CPU models (and -cpu strings) of the first recording
# (tests/data/groundtruth/linux-6.1-tcg.json), kept exactly so that the new 6.1
# runs compare with it: the "models" group, one vCPU.  Models that QEMU 7.2
# does not know are kept in the list on purpose: they are recorded under
# "refused" with QEMU's error, so the recording says they were tried.
DEFAULT_CPUS: tuple[str, ...] = (
    # Intel, the brief's list
    "Westmere-v1",
    "Westmere-v2",
    "Westmere-v2,family=6,model=85,stepping=4",
    "SandyBridge-v2",
    "Haswell-v4",
    "Broadwell-v4",
    "Skylake-Client-v4",
    "Skylake-Server-v4",
    "Skylake-Server-v5",
    "Cascadelake-Server-v4",
    "Cascadelake-Server-v5",
    "Icelake-Server-v6",
    "Cooperlake-v2",
    "Denverton-v3",
    "Snowridge-v4",
    "KnightsMill-v1",
    "Conroe-v1",
    "Penryn-v1",
    "core2duo-v1",
    "qemu64-v1",
    # AMD / Hygon, the brief's list (EPYC-v4, EPYC-Rome-v4, EPYC-Milan-v2 are
    # newer than QEMU 7.2: recorded as refused).  n270 is left out: it is a
    # 32-bit CPU and the amd64 kernel just prints "This kernel requires an
    # x86-64 CPU" and hangs.
    "EPYC-v4",
    "EPYC-Rome-v4",
    "EPYC-Milan-v2",
    "Opteron_G5-v1",  # hangs under TCG (see below): kept so the recording says so
    "Dhyana-v2",
    # cheap extras
    "EPYC-v3",
    "EPYC-Rome-v2",
    "EPYC-Milan-v1",
    "Nehalem-v1",
    "IvyBridge-v2",
    "Haswell-v1",
    "Skylake-Client-v1",
    "Cascadelake-Server-v1",
    "Icelake-Server-v1",
    "Opteron_G3-v1",
    "phenom-v1",
    "kvm64-v1",
    "max",
    # other family/model/stepping on an old model
    "Westmere-v1,family=6,model=85,stepping=4",
    "Westmere-v2,family=6,model=158,stepping=10",
    "qemu64-v1,vendor=GenuineIntel,family=6,model=85,stepping=7",
    "qemu64-v1,vendor=AuthenticAMD,family=23,model=49,stepping=0",
    # explicit flags that exercise ARCH_CAPABILITIES / speculation CPUID bits
    "Skylake-Server-v4,+arch-capabilities,+rdctl-no,+ibrs-all,+skip-l1dfl-vmentry,+mds-no,+pschange-mc-no,+taa-no",
    "Cascadelake-Server-v4,+md-clear,+taa-no,+pschange-mc-no,+mds-no",
    "Westmere-v2,+arch-capabilities,+rdctl-no,+mds-no",
    "Haswell-v4,+md-clear,+ssbd,+stibp,+arch-capabilities",
    "Icelake-Server-v6,+arch-capabilities,+spec-ctrl,+md-clear,+mds-no,+taa-no,+rdctl-no,+tsx-ctrl",
    # Opteron_G4/G5 (family 0x15) hang early in boot under TCG; without xsave they boot
    "Opteron_G5-v1,-xsave",
    "EPYC-Rome-v2,+amd-no-ssb,+virt-ssbd,+amd-ssbd",
)

# the models the slow reproducibility test boots again
REPRO_CPUS: tuple[str, ...] = ("Westmere-v2", "Skylake-Server-v4", "EPYC-Rome-v2")

# Models the brief asks for that QEMU 7.2 does not know, and the model of 7.2
# booted in their place (same vendor, family, model; under TCG the features
# the newer versions add or remove -- xsaves, the ARCH_CAPABILITIES bits,
# AVX-512 -- are dropped anyway, see SOURCE.md).  The requested string is
# always tried first, so the recording lists it under "refused".
SUBSTITUTES: dict[str, str] = {
    "EPYC-v4": "EPYC-v3",
    "EPYC-Rome-v4": "EPYC-Rome-v2",
    "EPYC-Milan-v2": "EPYC-Milan-v1",
    "EPYC-Genoa-v1": "EPYC-Milan-v1",
    "Icelake-Server-v7": "Icelake-Server-v6",
}

SMT_THREADS = "2,sockets=1,cores=1,threads=2"  # one core, two SMT threads
SMT_CORES = "2,cores=2,threads=1"  # two cores, no SMT
SMT_TOPOLOGIES: tuple[str, ...] = (SMT_THREADS, SMT_CORES)
SMT_MODELS: tuple[str, ...] = (
    "EPYC-Rome-v4",  # family 0x17 (Zen 2)
    "EPYC-Milan-v2",  # family 0x19 (Zen 3)
    "EPYC-v4",  # family 0x17 (Zen 1)
    "Skylake-Server-v4",
    "Cascadelake-Server-v5",
    "Icelake-Server-v7",
    "Broadwell-v4",
)


@dataclasses.dataclass(frozen=True)
class Config:
    """One boot: a ``-cpu`` string and a ``-smp`` string (``None``: QEMU's default, 1 vCPU)."""

    cpu: str
    smp: str | None = None

    @property
    def key(self) -> str:
        return self.cpu if self.smp is None else f"{self.cpu} @smp={self.smp}"

    @classmethod
    def parse(cls, text: str) -> Config:
        """``CPU`` or ``CPU@SMP`` (the form the command line takes)."""
        cpu, sep, smp = text.partition("@")
        return cls(cpu, smp.removeprefix("smp=") if sep else None)


def _groups() -> dict[str, list[Config]]:
    """The configurations the brief asks for, by group (a string may be in several)."""
    g: dict[str, list[Config]] = {}
    # (a) the first recording's list, one vCPU
    g["models"] = [Config(c) for c in DEFAULT_CPUS]
    # (b) SMT on versus SMT off (two vCPUs each way)
    g["smt"] = [Config(c, t) for c in SMT_MODELS for t in SMT_TOPOLOGIES]
    # (c) AMD family/model overrides; both SMT topologies too, since the
    # SRSO choice on family < 0x19 depends on whether SMT is possible
    fam = ["EPYC-Rome-v4,family=25,model=1", "EPYC-Milan-v2,family=23,model=49", "EPYC-Genoa-v1,family=23,model=49"]
    # extra: Genoa's own identity (0x19/0x11) on the newest AMD model 7.2 has
    fam_extra = ["EPYC-Milan-v1,family=25,model=17"]
    g["family"] = [Config(c, s) for c in fam + fam_extra for s in (None,) + SMT_TOPOLOGIES]
    # (d) TSX visible versus hidden.  Skylake-Server-v4 and Cascadelake-Server-v5
    # are already "no TSX" models in QEMU, so their TSX-carrying ancestors
    # (Skylake-Server-v2, Cascadelake-Server-v1) are added; TCG drops hle/rtm anyway.
    g["tsx"] = [
        Config(c)
        for c in (
            "Cascadelake-Server-v5",
            "Cascadelake-Server-v5,-hle,-rtm",
            "Cascadelake-Server-v5,+hle,+rtm",
            "Cascadelake-Server-v1",
            "Cascadelake-Server-v1,-hle,-rtm",
            "Skylake-Server-v4",
            "Skylake-Server-noTSX-IBRS",
            "Skylake-Server-v3",
            "Skylake-Server-v2",
            "Skylake-Server-v2,-hle,-rtm",
        )
    ]
    # (e) single flags and identities
    g["flags"] = [
        Config(c)
        for c in (
            "Skylake-Server-v4,+arch-capabilities,+rsba",
            "Westmere-v2,family=6,model=85,stepping=4",
            "Icelake-Server-v7,-arch-capabilities",
        )
    ]
    return g


def substitute_of(cpu: str) -> str | None:
    """The -cpu string booted in place of ``cpu`` when QEMU 7.2 lacks its model, else ``None``."""
    model, sep, props = cpu.partition(",")
    sub = SUBSTITUTES.get(model)
    return sub + sep + props if sub else None


def configurations() -> list[tuple[Config, list[str], str | None]]:
    """Every configuration to boot, once each: ``(config, groups, substitute_for)``.

    A requested string whose model QEMU 7.2 lacks is listed itself (it is
    refused, and recorded so) and followed by its substitute, whose
    ``substitute_for`` names it.
    """
    seen: dict[Config, tuple[list[str], list[str]]] = {}
    order: list[Config] = []

    def add(cfg: Config, group: str, for_: str | None) -> None:
        if cfg not in seen:
            seen[cfg] = ([], [])
            order.append(cfg)
        groups, subs = seen[cfg]
        if group not in groups:
            groups.append(group)
        if for_ and for_ not in subs:
            subs.append(for_)

    for group, cfgs in _groups().items():
        for cfg in cfgs:
            add(cfg, group, None)
            sub = substitute_of(cfg.cpu)
            if sub:
                add(Config(sub, cfg.smp), group, cfg.cpu)
    return [(c, seen[c][0], ", ".join(seen[c][1]) or None) for c in order]


# --------------------------------------------------------------------------
# locating the kernel and busybox


def cache_dir() -> Path:
    env = os.environ.get("CPUSOLVE_GT_CACHE")
    if env:
        return Path(env)
    return LOCAL_CACHE if LOCAL_CACHE.is_dir() else DEFAULT_CACHE


# Debian's release names: 6.1.0-56-amd64 (ABI 56) and 6.12.117+deb12-amd64 (upstream 6.12.117)
_VMLINUZ_RE = re.compile(r"vmlinuz-((6\.1)\.0-(\d+)-amd64|(6\.12)\.(\d+)\+deb\d+-amd64)$")


def kernel_release_of(vmlinuz: Path) -> str:
    m = _VMLINUZ_RE.search(vmlinuz.name)
    return m.group(1) if m else vmlinuz.name.removeprefix("vmlinuz-")


def kernel_series_of(vmlinuz: Path | str) -> str | None:
    """``"6.1"`` or ``"6.12"`` (``None`` for another kernel)."""
    m = _VMLINUZ_RE.search("vmlinuz-" + str(vmlinuz).rsplit("vmlinuz-", 1)[-1])
    return (m.group(2) or m.group(4)) if m else None


def _kernel_sort_key(p: Path) -> tuple[int, int]:
    m = _VMLINUZ_RE.search(p.name)
    return (SERIES.index(m.group(2) or m.group(4)), int(m.group(3) or m.group(5)))


def find_kernels(series: str | None = None) -> list[Path]:
    """All unpacked Debian 6.1 / 6.12 amd64 kernels in the cache, by series, oldest first."""
    root = cache_dir()
    if not root.is_dir():
        return []
    found = [p for p in root.glob("**/boot/vmlinuz-6.*-amd64") if p.is_file() and _VMLINUZ_RE.search(p.name)]
    if series is not None:
        found = [p for p in found if kernel_series_of(p) == series]
    return sorted(found, key=_kernel_sort_key)


def find_kernel(release: str | None = None, series: str | None = None) -> Path | None:
    """The unpacked vmlinuz of ``linux-image-<release>``.

    With ``release`` (``"6.1.0-56-amd64"``, ``"6.12.117+deb12-amd64"``) only
    that one; otherwise the newest of ``series`` (default: the 6.1 series, as
    the first harness did).  ``None`` when there is none.
    """
    if release is not None:
        kernels = [k for k in find_kernels() if kernel_release_of(k) == release]
    else:
        kernels = find_kernels(series or "6.1")
    return kernels[-1] if kernels else None


def find_busybox() -> Path | None:
    """The statically linked busybox unpacked from ``busybox-static``."""
    root = cache_dir()
    if not root.is_dir():
        return None
    for p in sorted(root.glob("**/bin/busybox")):
        if p.is_file():
            return p
    return None


def find_qemu() -> Path | None:
    q = shutil.which(QEMU)
    return Path(q) if q else None


def missing_requirements(series: str | None = None) -> list[str]:
    """Human-readable list of what is missing to boot (empty when all is there)."""
    missing = []
    if find_qemu() is None:
        missing.append(f"{QEMU} (Debian package qemu-system-x86)")
    for s in (series,) if series else ("6.1",):
        if find_kernel(series=s) is None:
            pattern = "6.1.0-*-amd64" if s == "6.1" else f"{s}.*+deb12-amd64"
            missing.append(f"an unpacked linux-image-{pattern} under {cache_dir()}")
    if find_busybox() is None:
        missing.append(f"an unpacked busybox-static under {cache_dir()}")
    return missing


def qemu_version() -> str:
    out = subprocess.run([QEMU, "--version"], capture_output=True, text=True, check=True).stdout
    return out.splitlines()[0].strip()


def deb_version(package: str) -> str | None:
    """Version of a package downloaded into the cache (the install script writes VERSION files)."""
    for p in cache_dir().glob(f"**/{package}.version"):
        return p.read_text().strip()
    return None


# --------------------------------------------------------------------------
# initramfs


# The dmesg lines kept in the recording: any line matching one of these
# (grep -iE, case-insensitive, timestamps stripped first).  The first two are
# the first harness's filter.  It missed lines whose text has none of its
# words: "active return thunk: srso_return_thunk" (also its_/call_depth_/
# srso_alias_return_thunk; only retbleed_return_thunk matched, by its name),
# "Transient Scheduler Attacks: Mitigation: ..." and "Register File Data
# Sampling: Mitigation: ..." (only their "Vulnerable"/"Mitigation" texts
# matched), "L1D Flush : Conditional flush on switch_mm() enabled".  The third
# pattern names every pr_fmt prefix of arch/x86/kernel/cpu/bugs.c in 6.1 and
# 6.12 (checked with tools/prfmt_check.py), the return-thunk line and the
# "x86/bugs:" prefix later kernels use; the fourth keeps what the kernel says
# about the topology it saw (6.12's "CPU topo:", "smpboot:", "smp:") and the
# AMD errata it mitigates in amd.c.
DMESG_PATTERNS: tuple[str, ...] = (
    "mitigat|vulnerab|spectre|speculat|retbleed|microcode|mmio stale|tsx|vmscape|smpboot: cpu0",
    "(^| |/)(mds|taa|srbds|gds|rfds|srso|l1tf|its|tsa|ibrs|ibpb|ssb|bhi|bugs)( |:)",
    "^(active return thunk|mds|taa|mmio stale data|register file data sampling|srbds|l1d flush ?|gds"
    "|spectre v[12] ?|retbleed|its|transient scheduler attacks|speculative store bypass|speculation prctl"
    "|l1tf|speculative return stack overflow|vmscape|x86/bugs|x86/speculation|tsx):",
    "^(cpu topo|smpboot|smp|x86/cpu):|zen1 |zenbleed",
)

# sysfs files (under /sys/devices/system/cpu/) that say what topology the guest saw
TOPOLOGY_FILES: tuple[str, ...] = (
    "online",
    "possible",
    "present",
    "smt/active",
    "smt/control",
    "cpu0/topology/thread_siblings_list",
    "cpu0/topology/core_cpus_list",
    "cpu0/topology/core_siblings_list",
    "cpu0/topology/core_id",
    "cpu0/topology/physical_package_id",
    "cpu0/topology/die_id",
    "cpu1/topology/thread_siblings_list",
    "cpu1/topology/core_id",
)

INIT_SCRIPT = (
    r"""#!/bin/busybox sh
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
# keep kernel messages off the console while the block is printed
echo 1 > /proc/sys/kernel/printk
exec >/dev/console 2>&1 </dev/null
echo
echo "@@GT-BEGIN"
echo "@@GT uname_r $(uname -r)"
echo "@@GT proc_version $(cat /proc/version)"
echo "@@GT cmdline $(cat /proc/cmdline)"
# CPU 0's block of /proc/cpuinfo (everything up to the first blank line)
sed -n '1,/^$/p' /proc/cpuinfo | while IFS= read -r line; do
  [ -n "$line" ] && echo "@@GT cpuinfo $line"
done
# the identity, topology and bugs lines of every CPU
grep -E '^(processor|physical id|siblings|core id|cpu cores|apicid|bugs)' /proc/cpuinfo | sed -e 's/^/@@GT cpus /'
for f in """
    + " ".join(TOPOLOGY_FILES)
    + r"""; do
  [ -f "/sys/devices/system/cpu/$f" ] && echo "@@GT topo $f $(cat "/sys/devices/system/cpu/$f")"
done
for f in /sys/devices/system/cpu/vulnerabilities/*; do
  [ -f "$f" ] && echo "@@GT vuln ${f##*/} $(cat "$f")"
done
dmesg | sed -e 's/^\[[ 0-9.]*\] *//' \
  | grep -iE """
    + " ".join(f"-e '{p}'" for p in DMESG_PATTERNS)
    + r""" \
  | while IFS= read -r line; do echo "@@GT dmesg $line"; done
# the whole log, for the raw console files only (not recorded in the JSON)
dmesg | sed -e 's/^\[[ 0-9.]*\] *//' -e 's/^/@@GT dmesg_full /'
echo "@@GT-END"
poweroff -f
sleep 5
echo o > /proc/sysrq-trigger
"""
)

APPLETS = ("sh", "mount", "cat", "echo", "sed", "grep", "uname", "dmesg", "poweroff", "sleep", "mkdir", "ls")


def _cpio_entry(
    name: str, mode: int, data: bytes = b"", ino: int = 0, rdev: tuple[int, int] = (0, 0), nlink: int = 1
) -> bytes:
    name_b = name.encode() + b"\0"
    fields = (
        ino,
        mode,
        0,  # uid
        0,  # gid
        nlink,
        0,  # mtime (fixed: the archive is reproducible)
        len(data),
        0,  # devmajor
        0,  # devminor
        rdev[0],
        rdev[1],
        len(name_b),
        0,  # check
    )
    hdr = b"070701" + b"".join(b"%08X" % f for f in fields)
    out = hdr + name_b
    out += b"\0" * (-len(out) % 4)
    out += data
    out += b"\0" * (-len(out) % 4)
    return out


def cpio_newc(entries: list[tuple[str, int, bytes, tuple[int, int]]]) -> bytes:
    """A newc ("070701") cpio archive of ``(name, mode, data, (rdevmajor, rdevminor))``."""
    buf = io.BytesIO()
    for ino, (name, mode, data, rdev) in enumerate(entries, start=1):
        nlink = 2 if (mode & 0o170000) == 0o040000 else 1
        buf.write(_cpio_entry(name, mode, data, ino=ino, rdev=rdev, nlink=nlink))
    buf.write(_cpio_entry("TRAILER!!!", 0, b""))
    return buf.getvalue()


def build_initramfs(busybox: Path, out: Path) -> Path:
    """Write a gzip'd newc cpio initramfs with busybox and an /init that prints the block."""
    S_IFDIR, S_IFREG, S_IFLNK, S_IFCHR = 0o040000, 0o100000, 0o120000, 0o020000
    entries: list[tuple[str, int, bytes, tuple[int, int]]] = []
    for d in ("bin", "dev", "proc", "sys", "tmp"):
        entries.append((d, S_IFDIR | 0o755, b"", (0, 0)))
    entries.append(("dev/console", S_IFCHR | 0o600, b"", (5, 1)))
    entries.append(("dev/null", S_IFCHR | 0o666, b"", (1, 3)))
    entries.append(("bin/busybox", S_IFREG | 0o755, Path(busybox).read_bytes(), (0, 0)))
    for applet in APPLETS:
        entries.append((f"bin/{applet}", S_IFLNK | 0o777, b"busybox", (0, 0)))
    entries.append(("init", S_IFREG | 0o755, INIT_SCRIPT.encode(), (0, 0)))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    raw = cpio_newc(entries)
    with open(out, "wb") as f:
        # mtime=0: byte-for-byte reproducible archive
        with gzip.GzipFile(fileobj=f, mode="wb", compresslevel=6, mtime=0) as gz:
            gz.write(raw)
    return out


# --------------------------------------------------------------------------
# booting


@dataclasses.dataclass
class BootResult:
    cpu: str
    ok: bool
    seconds: float
    returncode: int | None = None
    smp: str | None = None
    cmdline: str | None = None
    error: str | None = None
    kernel_release: str | None = None
    proc_version: str | None = None
    vendor: str | None = None
    family: int | None = None
    model: int | None = None
    stepping: int | None = None
    model_name: str | None = None
    flags: set[str] = dataclasses.field(default_factory=set)
    bugs: set[str] = dataclasses.field(default_factory=set)
    vulnerabilities: dict[str, str] = dataclasses.field(default_factory=dict)
    dmesg: list[str] = dataclasses.field(default_factory=list)
    qemu_warnings: list[str] = dataclasses.field(default_factory=list)
    flags_line: str | None = None
    bugs_line: str | None = None
    cpuinfo: dict[str, str] = dataclasses.field(default_factory=dict)
    cpus: list[dict[str, str]] = dataclasses.field(default_factory=list)
    topology: dict[str, str] = dataclasses.field(default_factory=dict)
    dmesg_full: list[str] = dataclasses.field(default_factory=list)
    stdout: str = ""
    stderr: str = ""

    def summary(self) -> dict:
        """The few facts a reader wants first (derived from the fields below)."""
        return {
            "spectre_v2_mode": _first(self.dmesg, "Spectre V2 : Mitigation: ")
            or _first(self.dmesg, "Spectre V2 : Vulnerable"),
            "return_thunk": _last(self.dmesg, "active return thunk: "),
            "threads_per_core": _threads_per_core(self.topology.get("cpu0/topology/thread_siblings_list")),
            "smt_active": self.topology.get("smt/active"),
            "smt_control": self.topology.get("smt/control"),
            "nr_cpus": len(self.cpus) or None,
        }

    def to_json(self) -> dict:
        """The recorded form (no raw console output)."""
        return {
            "cpu": self.cpu,
            "smp": self.smp,
            "kernel_release": self.kernel_release,
            "proc_version": self.proc_version,
            "vendor": self.vendor,
            "family": self.family,
            "model": self.model,
            "stepping": self.stepping,
            "model_name": self.model_name,
            "flags": sorted(self.flags),
            "bugs": sorted(self.bugs),
            "vulnerabilities": dict(sorted(self.vulnerabilities.items())),
            "qemu_warnings": list(self.qemu_warnings),
            "dmesg": list(self.dmesg),
            "tcg_dropped": tcg_dropped(self.qemu_warnings),
            "summary": self.summary(),
            "topology": dict(self.topology),
            "cpus": [dict(c) for c in self.cpus],
            "flags_line": self.flags_line,
            "bugs_line": self.bugs_line,
            "cpuinfo": dict(self.cpuinfo),
            "cmdline": self.cmdline,
            "seconds": round(self.seconds, 1),
        }


_TCG_DROP_RE = re.compile(r"TCG doesn't support requested feature: (\S+)")


def tcg_dropped(warnings: list[str]) -> list[str]:
    """The features named in QEMU's "TCG doesn't support requested feature: CPUID.07H:EDX.spec-ctrl [bit 26]"
    warnings, as ``CPUID.07H:EDX.spec-ctrl`` (also ``MSR(10AH).rdctl-no``): asked for, not given."""
    return list(dict.fromkeys(m.group(1) for w in warnings for m in [_TCG_DROP_RE.search(w)] if m))


def _first(lines: list[str], prefix: str) -> str | None:
    """The first line starting with ``prefix``: without it when it ends in ": ", else whole."""
    for ln in lines:
        if ln.startswith(prefix):
            return ln.removeprefix(prefix) if prefix.endswith(": ") else ln
    return None


def _last(lines: list[str], prefix: str) -> str | None:
    hits = [ln.removeprefix(prefix) for ln in lines if ln.startswith(prefix)]
    return hits[-1] if hits else None


def _threads_per_core(siblings: str | None) -> int | None:
    """Number of CPUs in a sysfs cpu list ("0-1", "0,2", "0")."""
    if not siblings:
        return None
    n = 0
    for part in siblings.split(","):
        lo, _, hi = part.partition("-")
        try:
            n += int(hi or lo) - int(lo) + 1
        except ValueError:
            return None
    return n


class BootError(RuntimeError):
    pass


def _int_or_none(s: str | None) -> int | None:
    try:
        return int(s) if s is not None else None
    except ValueError:
        return None


def parse_console(
    cpu: str, stdout: str, stderr: str, seconds: float, returncode: int | None, smp: str | None = None
) -> BootResult:
    res = BootResult(cpu=cpu, ok=False, seconds=seconds, returncode=returncode, stdout=stdout, stderr=stderr, smp=smp)
    # QEMU prints its warnings once per vCPU: keep each once, in order
    res.qemu_warnings = list(dict.fromkeys(ln.strip() for ln in stderr.splitlines() if "warning:" in ln))
    lines = [ln.rstrip("\r") for ln in stdout.replace("\r\n", "\n").split("\n")]
    try:
        start = next(i for i, ln in enumerate(lines) if ln.strip() == BEGIN)
        end = next(i for i in range(start, len(lines)) if lines[i].strip() == END)
    except StopIteration:
        errs = [ln.strip() for ln in stderr.splitlines() if ln.strip() and "warning:" not in ln]
        res.error = ("; ".join(errs) if errs else "no result block on the console") + f" (rc={returncode})"
        return res
    cpuinfo: dict[str, str] = {}
    for ln in lines[start + 1 : end]:
        if not ln.startswith(MARK + " "):
            continue
        kind, _, rest = ln[len(MARK) + 1 :].partition(" ")
        if kind == "uname_r":
            res.kernel_release = rest.strip()
        elif kind == "proc_version":
            res.proc_version = rest.strip()
        elif kind == "cmdline":
            res.cmdline = rest.strip()
        elif kind == "cpuinfo":
            key, _, val = rest.partition(":")
            cpuinfo.setdefault(key.strip(), val.strip())
        elif kind == "cpus":
            key, _, val = rest.partition(":")
            if key.strip() == "processor" or not res.cpus:
                res.cpus.append({})
            res.cpus[-1][key.strip()] = val.strip()
        elif kind == "topo":
            name, _, text = rest.partition(" ")
            res.topology[name] = text.strip()
        elif kind == "dmesg_full":
            res.dmesg_full.append(rest.rstrip())
        elif kind == "vuln":
            name, _, text = rest.partition(" ")
            res.vulnerabilities[name] = text.strip()
        elif kind == "dmesg":
            res.dmesg.append(rest.strip())
    res.vendor = cpuinfo.get("vendor_id")
    res.family = _int_or_none(cpuinfo.get("cpu family"))
    res.model = _int_or_none(cpuinfo.get("model"))
    res.stepping = _int_or_none(cpuinfo.get("stepping"))
    res.model_name = cpuinfo.get("model name")
    res.flags = set(cpuinfo.get("flags", "").split())
    res.bugs = set(cpuinfo.get("bugs", "").split())
    res.flags_line = cpuinfo.get("flags")
    res.bugs_line = cpuinfo.get("bugs")
    res.cpuinfo = cpuinfo
    res.ok = bool(res.vulnerabilities) and res.vendor is not None
    if not res.ok:
        res.error = "incomplete result block"
    return res


_INITRD_CACHE: dict[Path, Path] = {}
_INITRD_LOCK = threading.Lock()


def _initrd_for(busybox: Path) -> Path:
    """The initramfs for ``busybox``, built once into the temp dir (named by content, so reused)."""
    with _INITRD_LOCK:
        return _initrd_locked(busybox)


def _initrd_locked(busybox: Path) -> Path:
    if busybox not in _INITRD_CACHE:
        digest = hashlib.sha256(INIT_SCRIPT.encode() + repr(APPLETS).encode() + Path(busybox).read_bytes())
        path = Path(tempfile.gettempdir()) / f"cpusolve-gt-initrd-{digest.hexdigest()[:16]}.cpio.gz"
        if not path.is_file():
            fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
            os.close(fd)
            build_initramfs(busybox, Path(tmp))
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        _INITRD_CACHE[busybox] = path
    return _INITRD_CACHE[busybox]


def qemu_command(cpu: str, kernel: Path, initrd: Path, smp: str | None = None) -> list[str]:
    return [
        QEMU,
        "-accel", "tcg",
        "-machine", "pc",
        "-m", "512",
        "-nographic",
        "-no-reboot",
        "-kernel", str(kernel),
        "-initrd", str(initrd),
        "-append", "console=ttyS0 quiet panic=-1",
        "-cpu", cpu,
    ] + (["-smp", smp] if smp else [])  # fmt: skip


def boot(
    cpu: str,
    timeout: float = 60,
    *,
    kernel: Path | None = None,
    busybox: Path | None = None,
    initrd: Path | None = None,
    smp: str | None = None,
    series: str | None = None,
) -> BootResult:
    """Boot a Debian kernel under ``-cpu <cpu>`` (``-smp <smp>``) and parse what the guest reports.

    ``kernel`` defaults to the newest of ``series`` (default 6.1).  Raises
    ``BootError`` when qemu, the kernel or busybox are missing.  A boot that
    QEMU refuses (unknown model, bad property) or that times out gives a
    ``BootResult`` with ``ok=False`` and ``error`` set.
    """
    kernel = kernel or find_kernel(series=series)
    busybox = busybox or find_busybox()
    missing = missing_requirements(series)
    if kernel is not None:
        missing = [m for m in missing if "linux-image" not in m]
    if busybox is not None:
        missing = [m for m in missing if "busybox" not in m]
    if missing:
        raise BootError("missing: " + "; ".join(missing) + "; " + INSTALL_HINT)
    initrd = initrd or _initrd_for(busybox)
    cmd = qemu_command(cpu, kernel, initrd, smp)
    t0 = time.monotonic()
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
        out, err, rc = proc.stdout, proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as e:
        out, err, rc = e.stdout or b"", e.stderr or b"", None
    seconds = time.monotonic() - t0
    res = parse_console(cpu, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), seconds, rc, smp)
    if rc is None and not res.ok:
        last = [ln.strip() for ln in re.sub(r"\x1b(\[[0-9;?]*[A-Za-z]|c)", "", res.stdout).splitlines() if ln.strip()]
        res.error = f"timed out after {timeout:g} s" + (f"; last console line: {last[-1][-200:]!r}" if last else "")
    return res


# --------------------------------------------------------------------------
# recording


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+=-]+", "_", text).strip("_")


def save_raw(res: BootResult, kernel: Path, raw_dir: Path = RAW_DIR) -> Path:
    """Keep a run's whole console and QEMU stderr (gzip'd) under raw_dir/<release>/."""
    d = Path(raw_dir) / kernel_release_of(kernel)
    d.mkdir(parents=True, exist_ok=True)
    key = res.cpu if res.smp is None else f"{res.cpu}@smp={res.smp}"
    path = d / f"{_slug(key)}.txt.gz"
    text = "---- console ----\n" + res.stdout + "\n---- stderr ----\n" + res.stderr
    with gzip.GzipFile(path, "wb", mtime=0) as gz:
        gz.write(text.encode())
    return path


def record(
    cpus: tuple[str, ...] | list[str] | None = None,
    out: Path | None = None,
    jobs: int = 2,
    timeout: float = 90,
    *,
    series: str = DEFAULT_SERIES,
    kernel: Path | None = None,
    raw_dir: Path | None = RAW_DIR,
) -> dict:
    """Boot every configuration (``jobs`` at a time) and write the recording JSON.

    ``cpus``: ``CPU`` or ``CPU@SMP`` strings (default: ``configurations()``).
    The file is rewritten after every boot with ``"complete": false``, so a
    reader can use it while the recording goes on; the last write says
    ``"complete": true``.
    """
    kernel = kernel or find_kernel(series=series)
    busybox = find_busybox()
    if kernel is None or busybox is None or find_qemu() is None:
        raise BootError("missing: " + "; ".join(missing_requirements(series)) + "; " + INSTALL_HINT)
    series = kernel_series_of(kernel) or series
    out = Path(out) if out else recording_path(series)
    if cpus:
        plan = [(Config.parse(c), ["cli"], None) for c in cpus]
    else:
        plan = configurations()
    initrd = _initrd_for(busybox)
    started = _dt.datetime.now(_dt.timezone.utc)
    qv = qemu_version()
    rel = kernel_release_of(kernel)
    results: dict[int, BootResult] = {}
    lock = threading.Lock()

    def write(complete: bool) -> dict:
        done = [(i, results[i]) for i in sorted(results)]
        runs, refused = [], []
        for i, r in done:
            cfg, groups, sub_for = plan[i]
            extra = {"groups": groups, "substitute_for": sub_for}
            if r.ok:
                runs.append(dict(r.to_json(), qemu_version=qv, kernel_version=r.proc_version, **extra))
            else:
                refused.append(
                    {"cpu": r.cpu, "smp": r.smp, "error": r.error, "qemu_warnings": r.qemu_warnings, **extra}
                )
        secs = sorted(r.seconds for _, r in done if r.ok)
        data = {
            "schema": 2,
            "description": f"What Debian's Linux {series} kernel ({rel}) reports as a QEMU TCG guest; see SOURCE.md",
            "complete": complete,
            "planned": len(plan),
            "recorded_at": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "qemu_version": qv,
            "qemu_package": _dpkg_version("qemu-system-x86"),
            "kernel_series": series,
            "kernel_package": _kernel_package_of(kernel),
            "kernel_release": rel,
            "busybox_package": deb_version("busybox-static"),
            "command": qemu_command("<CPU>", Path("vmlinuz-" + rel), Path("initrd.cpio.gz")) + ["[-smp <SMP>]"],
            "dmesg_filter": list(DMESG_PATTERNS),
            "substitutes": dict(SUBSTITUTES),
            "boot_seconds_median": round(secs[len(secs) // 2], 1) if secs else None,
            "boot_seconds_max": round(secs[-1], 1) if secs else None,
            "runs": runs,
            "refused": refused,
        }
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")
        os.replace(tmp, out)
        return data

    def one(i: int) -> BootResult:
        cfg = plan[i][0]
        r = boot(cfg.cpu, timeout, kernel=kernel, busybox=busybox, initrd=initrd, smp=cfg.smp)
        status = "ok" if r.ok else f"FAILED: {r.error}"
        print(f"{r.seconds:6.1f}s  [{i + 1}/{len(plan)}] {cfg.key}: {status}", file=sys.stderr, flush=True)
        if raw_dir is not None:
            save_raw(r, kernel, raw_dir)
        with lock:
            results[i] = r
            write(False)
        return r

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, min(jobs, 2))) as ex:
        list(ex.map(one, range(len(plan))))
    data = write(True)
    print(f"wrote {out}: {len(data['runs'])} runs, {len(data['refused'])} refused", file=sys.stderr)
    return data


def _dpkg_version(package: str) -> str | None:
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True)
    except OSError:
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _kernel_package_of(kernel: Path) -> str:
    rel = kernel_release_of(kernel)
    ver = deb_version(f"linux-image-{rel}")
    return f"linux-image-{rel} {ver}" if ver else f"linux-image-{rel}"


def load_recording(path: Path = RECORDING) -> dict:
    return json.loads(Path(path).read_text())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python tests/groundtruth/boot.py", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("record", help="boot every configuration and (re)write the recording JSON")
    r.add_argument("--kernel", default=DEFAULT_SERIES, help="series (6.1, 6.12) or release (6.1.0-56-amd64)")
    r.add_argument("--out", type=Path, default=None, help="default: linux-<series>-tcg.json beside boot.py")
    r.add_argument("--jobs", type=int, default=2)
    r.add_argument("--timeout", type=float, default=90)
    r.add_argument("--no-raw", action="store_true", help="do not keep the consoles under raw/")
    r.add_argument("cpus", nargs="*", help="CPU or CPU@SMP strings (default: every configuration)")
    s = sub.add_parser("show", help="boot one -cpu string and print the parsed result")
    s.add_argument("cpu")
    s.add_argument("--kernel", default=DEFAULT_SERIES)
    s.add_argument("--smp", default=None)
    s.add_argument("--timeout", type=float, default=120)
    s.add_argument("--raw", action="store_true", help="also print the console and stderr")
    sub.add_parser("list", help="print the configurations (CPU@SMP, groups, substitute_for)")
    sub.add_parser("check", help="say what is missing to boot")
    sub.add_parser("initrd", help="write the initramfs to the given path").add_argument("out", type=Path)
    a = ap.parse_args(argv)

    def kernel_of(spec: str) -> Path:
        k = find_kernel(series=spec) if spec in SERIES else find_kernel(release=spec)
        if k is None:
            raise SystemExit(f"no kernel {spec!r} under {cache_dir()}; " + INSTALL_HINT)
        return k

    if a.cmd == "record":
        raw_dir = None if a.no_raw else RAW_DIR
        record(tuple(a.cpus), a.out, a.jobs, a.timeout, kernel=kernel_of(a.kernel), raw_dir=raw_dir)
    elif a.cmd == "show":
        res = boot(a.cpu, a.timeout, kernel=kernel_of(a.kernel), smp=a.smp)
        print(json.dumps(dict(res.to_json(), ok=res.ok, error=res.error), indent=1))
        if a.raw:
            print("---- console ----\n" + res.stdout + "\n---- stderr ----\n" + res.stderr)
        return 0 if res.ok else 1
    elif a.cmd == "list":
        for cfg, groups, sub_for in configurations():
            print(f"{cfg.cpu if cfg.smp is None else cfg.cpu + '@' + cfg.smp}\t{','.join(groups)}\t{sub_for or ''}")
    elif a.cmd == "check":
        missing = [m for s_ in SERIES for m in missing_requirements(s_)]
        missing = list(dict.fromkeys(missing))
        ks = ", ".join(str(find_kernel(series=s_)) for s_ in SERIES)
        print("\n".join(missing) if missing else f"ok: kernels {ks}, busybox {find_busybox()}, {find_qemu()}")
        return 1 if missing else 0
    elif a.cmd == "initrd":
        busybox = find_busybox()
        if busybox is None:
            print("busybox missing; " + INSTALL_HINT, file=sys.stderr)
            return 1
        print(build_initramfs(busybox, a.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
