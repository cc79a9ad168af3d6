"""Ground truth: what a real Debian Linux 6.1 guest reports under QEMU CPU models.

Boots Debian bookworm's own ``linux-image-6.1.0-*-amd64`` kernel under
``qemu-system-x86_64 -accel tcg`` with a tiny busybox initramfs (built here in
pure Python, no ``cpio`` binary needed) and parses what the guest prints: its
CPU identity and flags from ``/proc/cpuinfo`` and every file in
``/sys/devices/system/cpu/vulnerabilities/``.

Stdlib only (Python 3.11).  The kernel and busybox are downloaded and unpacked
by ``.ci/install-groundtruth.sh``; this module only finds them.  The cache
directory is ``$CPUSOLVE_GT_CACHE`` or ``/var/cache/cpusolve-groundtruth``.

Re-record ``tests/data/groundtruth/linux-6.1-tcg.json`` with (from the repo root)::

    python -m tests.groundtruth.boot record            # or: python tests/groundtruth/boot.py record
    python -m tests.groundtruth.boot show Westmere-v2  # boot one model, print JSON

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
REPO_ROOT = Path(__file__).resolve().parents[2]
RECORDING = REPO_ROOT / "tests" / "data" / "groundtruth" / "linux-6.1-tcg.json"
QEMU = "qemu-system-x86_64"
INSTALL_HINT = "run `bash .ci/install-groundtruth.sh` (as root) to install them"

MARK = "@@GT"
BEGIN = MARK + "-BEGIN"
END = MARK + "-END"

# QEMU CPU models (and -cpu strings) recorded by `record()`.  Models that QEMU
# 7.2 does not know are kept in the list on purpose: they are recorded under
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


# --------------------------------------------------------------------------
# locating the kernel and busybox


def cache_dir() -> Path:
    return Path(os.environ.get("CPUSOLVE_GT_CACHE") or DEFAULT_CACHE)


_VMLINUZ_RE = re.compile(r"vmlinuz-(6\.1\.0-(\d+)-amd64)$")


def kernel_release_of(vmlinuz: Path) -> str:
    m = _VMLINUZ_RE.search(vmlinuz.name)
    return m.group(1) if m else vmlinuz.name.removeprefix("vmlinuz-")


def find_kernels() -> list[Path]:
    """All unpacked Debian 6.1 amd64 kernels in the cache, oldest ABI first."""
    root = cache_dir()
    if not root.is_dir():
        return []
    found = [p for p in root.glob("**/boot/vmlinuz-6.1.0-*-amd64") if p.is_file() and _VMLINUZ_RE.search(p.name)]
    return sorted(found, key=lambda p: int(_VMLINUZ_RE.search(p.name).group(2)))


def find_kernel(release: str | None = None) -> Path | None:
    """The unpacked vmlinuz of ``linux-image-6.1.0-XX-amd64``.

    With ``release`` (``"6.1.0-56-amd64"``) only that one; otherwise the
    newest ABI in the cache.  ``None`` when there is none.
    """
    kernels = find_kernels()
    if release is not None:
        kernels = [k for k in kernels if kernel_release_of(k) == release]
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


def missing_requirements() -> list[str]:
    """Human-readable list of what is missing to boot (empty when all is there)."""
    missing = []
    if find_qemu() is None:
        missing.append(f"{QEMU} (Debian package qemu-system-x86)")
    if find_kernel() is None:
        missing.append(f"an unpacked linux-image-6.1.0-*-amd64 under {cache_dir()}")
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


INIT_SCRIPT = r"""#!/bin/busybox sh
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
# CPU 0's block of /proc/cpuinfo (everything up to the first blank line)
sed -n '1,/^$/p' /proc/cpuinfo | while IFS= read -r line; do
  [ -n "$line" ] && echo "@@GT cpuinfo $line"
done
for f in /sys/devices/system/cpu/vulnerabilities/*; do
  [ -f "$f" ] && echo "@@GT vuln ${f##*/} $(cat "$f")"
done
dmesg | sed -e 's/^\[[ 0-9.]*\] *//' \
  | grep -iE -e 'mitigat|vulnerab|spectre|speculat|retbleed|microcode|mmio stale|tsx|vmscape|smpboot: cpu0' \
             -e '(^| |/)(mds|taa|srbds|gds|rfds|srso|l1tf|its|tsa|ibrs|ibpb|ssb|bhi|bugs)( |:)' \
  | while IFS= read -r line; do echo "@@GT dmesg $line"; done
echo "@@GT-END"
poweroff -f
sleep 5
echo o > /proc/sysrq-trigger
"""

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
    stdout: str = ""
    stderr: str = ""

    def to_json(self) -> dict:
        """The recorded form (no raw console output)."""
        return {
            "cpu": self.cpu,
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
        }


class BootError(RuntimeError):
    pass


def _int_or_none(s: str | None) -> int | None:
    try:
        return int(s) if s is not None else None
    except ValueError:
        return None


def parse_console(cpu: str, stdout: str, stderr: str, seconds: float, returncode: int | None) -> BootResult:
    res = BootResult(cpu=cpu, ok=False, seconds=seconds, returncode=returncode, stdout=stdout, stderr=stderr)
    res.qemu_warnings = [ln.strip() for ln in stderr.splitlines() if "warning:" in ln]
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
        elif kind == "cpuinfo":
            key, _, val = rest.partition(":")
            cpuinfo.setdefault(key.strip(), val.strip())
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


def qemu_command(cpu: str, kernel: Path, initrd: Path) -> list[str]:
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
    ]  # fmt: skip


def boot(
    cpu: str,
    timeout: float = 60,
    *,
    kernel: Path | None = None,
    busybox: Path | None = None,
    initrd: Path | None = None,
) -> BootResult:
    """Boot the Debian 6.1 kernel under ``-cpu <cpu>`` and parse what the guest reports.

    Raises ``BootError`` when qemu, the kernel or busybox are missing.  A boot
    that QEMU refuses (unknown model, bad property) or that times out gives a
    ``BootResult`` with ``ok=False`` and ``error`` set.
    """
    kernel = kernel or find_kernel()
    busybox = busybox or find_busybox()
    missing = missing_requirements()
    if kernel is not None:
        missing = [m for m in missing if "linux-image" not in m]
    if busybox is not None:
        missing = [m for m in missing if "busybox" not in m]
    if missing:
        raise BootError("missing: " + "; ".join(missing) + "; " + INSTALL_HINT)
    initrd = initrd or _initrd_for(busybox)
    cmd = qemu_command(cpu, kernel, initrd)
    t0 = time.monotonic()
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
        out, err, rc = proc.stdout, proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as e:
        out, err, rc = e.stdout or b"", e.stderr or b"", None
    seconds = time.monotonic() - t0
    res = parse_console(cpu, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), seconds, rc)
    if rc is None and not res.ok:
        last = [ln.strip() for ln in re.sub(r"\x1b(\[[0-9;?]*[A-Za-z]|c)", "", res.stdout).splitlines() if ln.strip()]
        res.error = f"timed out after {timeout:g} s" + (f"; last console line: {last[-1][-200:]!r}" if last else "")
    return res


# --------------------------------------------------------------------------
# recording


def record(
    cpus: tuple[str, ...] | list[str] = DEFAULT_CPUS, out: Path = RECORDING, jobs: int = 2, timeout: float = 90
) -> dict:
    """Boot every ``-cpu`` string (``jobs`` at a time) and write the recording JSON."""
    kernel, busybox = find_kernel(), find_busybox()
    if kernel is None or busybox is None or find_qemu() is None:
        raise BootError("missing: " + "; ".join(missing_requirements()) + "; " + INSTALL_HINT)
    initrd = _initrd_for(busybox)
    started = _dt.datetime.now(_dt.timezone.utc)
    qv = qemu_version()

    def one(cpu: str) -> BootResult:
        r = boot(cpu, timeout, kernel=kernel, busybox=busybox, initrd=initrd)
        status = "ok" if r.ok else f"FAILED: {r.error}"
        print(f"{r.seconds:6.1f}s  {cpu}: {status}", file=sys.stderr, flush=True)
        return r

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, min(jobs, 2))) as ex:
        results = list(ex.map(one, cpus))
    runs = [r for r in results if r.ok]
    refused = [{"cpu": r.cpu, "error": r.error, "qemu_warnings": r.qemu_warnings} for r in results if not r.ok]
    secs = sorted(r.seconds for r in runs)
    data = {
        "schema": 1,
        "description": "What Debian bookworm's Linux 6.1 kernel reports as a QEMU TCG guest; see SOURCE.md",
        "recorded_at": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "qemu_version": qv,
        "qemu_package": _dpkg_version("qemu-system-x86"),
        "kernel_package": _kernel_package_of(kernel),
        "kernel_release": kernel_release_of(kernel),
        "busybox_package": deb_version("busybox-static"),
        "command": qemu_command("<CPU>", Path("vmlinuz-" + kernel_release_of(kernel)), Path("initrd.cpio.gz")),
        "boot_seconds_median": round(secs[len(secs) // 2], 1) if secs else None,
        "runs": [dict(r.to_json(), qemu_version=qv, kernel_version=r.proc_version) for r in runs],
        "refused": refused,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")
    print(f"wrote {out}: {len(runs)} runs, {len(refused)} refused", file=sys.stderr)
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
    ap = argparse.ArgumentParser(prog="python -m tests.groundtruth.boot", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("record", help="boot every model and (re)write the recording JSON")
    r.add_argument("--out", type=Path, default=RECORDING)
    r.add_argument("--jobs", type=int, default=2)
    r.add_argument("--timeout", type=float, default=90)
    r.add_argument("cpus", nargs="*", help="-cpu strings (default: the built-in list)")
    s = sub.add_parser("show", help="boot one -cpu string and print the parsed result")
    s.add_argument("cpu")
    s.add_argument("--timeout", type=float, default=120)
    s.add_argument("--raw", action="store_true", help="also print the console and stderr")
    sub.add_parser("check", help="say what is missing to boot")
    sub.add_parser("initrd", help="write the initramfs to the given path").add_argument("out", type=Path)
    a = ap.parse_args(argv)
    if a.cmd == "record":
        record(tuple(a.cpus) or DEFAULT_CPUS, a.out, a.jobs, a.timeout)
    elif a.cmd == "show":
        res = boot(a.cpu, a.timeout)
        print(json.dumps(dict(res.to_json(), ok=res.ok, error=res.error, seconds=round(res.seconds, 1)), indent=1))
        if a.raw:
            print("---- console ----\n" + res.stdout + "\n---- stderr ----\n" + res.stderr)
        return 0 if res.ok else 1
    elif a.cmd == "check":
        missing = missing_requirements()
        print("\n".join(missing) if missing else f"ok: kernel {find_kernel()}, busybox {find_busybox()}, {find_qemu()}")
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
