"""``cpusolve probe``: this host's fact file, from KVM's own answer through /dev/kvm.

What a guest can be given is decided by KVM, not by /proc/cpuinfo: KVM hides bits it cannot
virtualise and emulates others (ARCH_CAPABILITIES on every host, with ``*-no`` bits computed
from the host's bugs).  So the probe asks KVM itself, with the system ioctls QEMU uses:

* ``KVM_GET_SUPPORTED_CPUID``: every CPUID leaf KVM can give a guest;
* ``KVM_GET_MSR_FEATURE_INDEX_LIST`` + ``KVM_GET_MSRS`` on the system fd: the feature MSRs,
  above all IA32_ARCH_CAPABILITIES (0x10a) as KVM would present it to a guest.

Identity (vendor, family/model/stepping, model name) comes from /proc/cpuinfo and the bugs
from /sys/devices/system/cpu/vulnerabilities/.  Without usable /dev/kvm the probe falls back
to /proc/cpuinfo's flags (the silicon's bits), and says so in the file and on stderr.
"""

from __future__ import annotations

import errno
import fcntl
import os
import platform
import re
import struct
from pathlib import Path
from typing import Any

from cpusolve.encodings.catalog import ALWAYS_GUEST
from cpusolve.errors import CpusolveError, InputError
from cpusolve.inputs.facts import cpuinfo as cpuinfo_reader
from cpusolve.inputs.facts.common import (
    FeatureNames,
    cpuid_signature,
    decode_text,
    read_bytes,
    vendor_string,
    warn,
)
from cpusolve.inputs.facts.cpuid import ARCH_CAPABILITIES, decodable_msrs, decode_cpuid, decode_msrs, in_range
from cpusolve.inputs.facts.facts import SCHEMA
from cpusolve.inputs.facts.linux_flags import features_from_flags

# -- ioctl numbers (include/uapi/linux/kvm.h, include/uapi/asm-generic/ioctl.h) ----------
KVMIO = 0xAE
_IOC_WRITE = 1
_IOC_READ = 2


def _ioc(direction: int, nr: int, size: int) -> int:
    """asm-generic _IOC(): dir in bits 30-31, size in 16-29, type in 8-15, number in 0-7."""
    return direction << 30 | size << 16 | KVMIO << 8 | nr


def _io(nr: int) -> int:
    return _ioc(0, nr, 0)


def _iowr(nr: int, size: int) -> int:
    return _ioc(_IOC_READ | _IOC_WRITE, nr, size)


#: struct kvm_cpuid2 { __u32 nent; __u32 padding; struct kvm_cpuid_entry2 entries[]; }
KVM_CPUID2 = struct.Struct("<II")
#: struct kvm_cpuid_entry2 { __u32 function, index, flags, eax, ebx, ecx, edx, padding[3]; }
KVM_CPUID_ENTRY2 = struct.Struct("<7I12x")
#: struct kvm_msr_list { __u32 nmsrs; __u32 indices[]; }
KVM_MSR_LIST = struct.Struct("<I")
#: struct kvm_msrs { __u32 nmsrs; __u32 pad; struct kvm_msr_entry entries[]; }
KVM_MSRS = struct.Struct("<II")
#: struct kvm_msr_entry { __u32 index; __u32 reserved; __u64 data; }
KVM_MSR_ENTRY = struct.Struct("<IIQ")

KVM_GET_API_VERSION = _io(0x00)                                     # 0xae00
KVM_CHECK_EXTENSION = _io(0x03)                                     # 0xae03
KVM_GET_SUPPORTED_CPUID = _iowr(0x05, KVM_CPUID2.size)             # 0xc008ae05
KVM_GET_MSR_FEATURE_INDEX_LIST = _iowr(0x0A, KVM_MSR_LIST.size)    # 0xc004ae0a
KVM_GET_MSRS = _iowr(0x88, KVM_MSRS.size)                          # 0xc008ae88
KVM_API_VERSION = 12
KVM_CAP_GET_MSR_FEATURES = 153
MAX_CPUID_ENTRIES = 4096

CPUINFO = "/proc/cpuinfo"
VULNERABILITIES = "/sys/devices/system/cpu/vulnerabilities"


class KvmUnavailable(Exception):
    """/dev/kvm cannot answer; the message says why (goes into the fact file)."""


# -- KVM --------------------------------------------------------------------------------
def supported_cpuid(fd: int) -> dict[tuple[int, int], tuple[int, int, int, int]]:
    """KVM_GET_SUPPORTED_CPUID, growing the entry array while KVM answers E2BIG."""
    nent = 128
    while True:
        buf = bytearray(KVM_CPUID2.pack(nent, 0) + bytes(KVM_CPUID_ENTRY2.size * nent))
        try:
            fcntl.ioctl(fd, KVM_GET_SUPPORTED_CPUID, buf, True)
            break
        except OSError as e:
            if e.errno != errno.E2BIG or nent >= MAX_CPUID_ENTRIES:
                raise
            nent *= 2
    count = KVM_CPUID2.unpack_from(buf)[0]
    leaves = {}
    for i in range(count):
        function, index, _flags, eax, ebx, ecx, edx = KVM_CPUID_ENTRY2.unpack_from(
            buf, KVM_CPUID2.size + i * KVM_CPUID_ENTRY2.size)
        leaves[(function, index)] = (eax, ebx, ecx, edx)
    return leaves


def feature_msr_list(fd: int) -> list[int]:
    """KVM_GET_MSR_FEATURE_INDEX_LIST: first ask the count (E2BIG), then the indices."""
    buf = bytearray(KVM_MSR_LIST.pack(0))
    try:
        fcntl.ioctl(fd, KVM_GET_MSR_FEATURE_INDEX_LIST, buf, True)
    except OSError as e:
        if e.errno != errno.E2BIG:
            raise
    count = KVM_MSR_LIST.unpack_from(buf)[0]
    buf = bytearray(KVM_MSR_LIST.pack(count) + bytes(4 * count))
    fcntl.ioctl(fd, KVM_GET_MSR_FEATURE_INDEX_LIST, buf, True)
    count = KVM_MSR_LIST.unpack_from(buf)[0]
    return list(struct.unpack_from(f"<{count}I", buf, KVM_MSR_LIST.size))


def read_feature_msr(fd: int, index: int) -> int | None:
    """KVM_GET_MSRS on the system fd for one feature MSR (returns how many it read)."""
    buf = bytearray(KVM_MSRS.pack(1, 0) + KVM_MSR_ENTRY.pack(index, 0, 0))
    if fcntl.ioctl(fd, KVM_GET_MSRS, buf, True) != 1:
        return None
    return KVM_MSR_ENTRY.unpack_from(buf, KVM_MSRS.size)[2]


def ask_kvm(dev: str) -> dict[str, Any]:
    """Everything KVM says a guest can have; :class:`KvmUnavailable` if it cannot say."""
    try:
        fd = os.open(dev, os.O_RDWR | os.O_CLOEXEC)
    except OSError as e:
        raise KvmUnavailable(f"cannot open {dev}: {e.strerror or e}") from None
    try:
        try:
            api = fcntl.ioctl(fd, KVM_GET_API_VERSION)
        except OSError as e:
            raise KvmUnavailable(f"{dev} is not a KVM device: {e.strerror or e}") from None
        if api != KVM_API_VERSION:
            raise KvmUnavailable(f"{dev}: KVM API version {api}, expected {KVM_API_VERSION}")
        try:
            leaves = supported_cpuid(fd)
        except OSError as e:
            raise KvmUnavailable(f"{dev}: KVM_GET_SUPPORTED_CPUID failed: {e.strerror or e}") from None
        msrs: dict[int, int] = {}
        listed: list[int] = []
        notes = []
        if fcntl.ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_GET_MSR_FEATURES) > 0:
            listed = feature_msr_list(fd)
            for index in sorted(set(listed) & decodable_msrs()):
                value = read_feature_msr(fd, index)
                if value is None:
                    notes.append(f"KVM_GET_MSRS could not read MSR {index:#x}")
                else:
                    msrs[index] = value
        else:
            notes.append("KVM lacks KVM_CAP_GET_MSR_FEATURES: feature MSRs (ARCH_CAPABILITIES) unknown")
        return dict(api=api, leaves=leaves, listed=listed, msrs=msrs, notes=notes)
    finally:
        os.close(fd)


# -- the fact file ----------------------------------------------------------------------
def probe(dev: str = "/dev/kvm", cpuinfo: str = CPUINFO, vulnerabilities: str = VULNERABILITIES) -> dict:
    """This host's ``cpusolve-facts/1`` fact file as a dict (see :mod:`cpusolve.readers.facts`)."""
    machine = platform.machine()
    if machine not in ("x86_64", "amd64", "AMD64"):
        raise CpusolveError(f"cpusolve probe runs on x86_64 hosts only; this machine is {machine}")
    label = cpuinfo
    text = decode_text(read_bytes(Path(cpuinfo), label), label)
    blocks = cpuinfo_reader.processors(text)
    if not blocks:
        raise InputError(f"{label}: no processor block; cannot identify this CPU")
    vendor, family, model, stepping, _ = cpuinfo_reader.identity(blocks[0], label)
    vulns = Path(vulnerabilities)
    bugs = sorted(cpuinfo_reader.read_vulnerabilities(vulns, vulnerabilities)) if vulns.is_dir() else None
    source: dict[str, Any] = {"identity": cpuinfo,
                              "bugs": vulnerabilities if bugs is not None else None}
    try:
        kvm = ask_kvm(dev)
    except KvmUnavailable as why:
        reason = f"{why}; features are /proc/cpuinfo flags (the CPU's own bits, not what KVM exposes)"
        warn(f"probe: {reason}")
        flags = set(blocks[0].get("flags", "").split())
        features = features_from_flags(sorted(flags), vendor, FeatureNames(label))
        source.update(method="cpuinfo-fallback", reason=reason, device=dev)
        exposable = False
    else:
        leaves = in_range(kvm["leaves"])
        # QEMU sets CPUID.1:ECX.HYPERVISOR for every KVM guest (kvm_arch_get_supported_cpuid).
        features = frozenset(decode_cpuid(leaves) | decode_msrs(kvm["msrs"]) | ALWAYS_GUEST)
        source.update(method="kvm", device=dev, kvm_api_version=kvm["api"],
                      supported_cpuid_entries=len(kvm["leaves"]),
                      feature_msrs=[f"{i:#x}" for i in kvm["listed"]],
                      msrs={f"{i:#x}": f"{v:#018x}" for i, v in sorted(kvm["msrs"].items())})
        notes = list(kvm["notes"])
        if ARCH_CAPABILITIES not in kvm["msrs"]:
            notes.append("IA32_ARCH_CAPABILITIES not readable through KVM: no ARCH_CAPABILITIES bits")
        notes += _identity_check(kvm["leaves"], vendor, (family, model, stepping))
        if notes:
            source["notes"] = notes
        exposable = True
    return {
        "schema": SCHEMA,
        "arch": "x86_64",
        "vendor": vendor,
        "family": family,
        "model": model,
        "stepping": stepping,
        "model_name": blocks[0].get("model name", ""),
        "features": sorted(features),
        "exposable": exposable,
        "bugs": bugs,
        "kernel": platform.release(),
        **tool_versions(source),
        "source": source,
    }


#: where each tool's version is asked, in order (the daemon that starts guests: the
#: modular virtqemud where it runs, else libvirtd)
TOOLS = {"qemu": ("qemu-system-x86_64",), "libvirt": ("virtqemud", "libvirtd")}
_VERSION = re.compile(r"(?:version|\(libvirt\))\s+(\d{1,4}(?:\.\d{1,4}){1,3})")


def tool_versions(source: dict) -> dict[str, str]:
    """The QEMU and libvirt versions this host runs, from the tools' own ``--version``
    (so that answers use only names they know); a tool not found is said in ``source``,
    never guessed."""
    import shutil
    import subprocess

    out: dict[str, str] = {}
    for key, programs in TOOLS.items():
        why = []
        for program in programs:
            path = shutil.which(program)
            if path is None:
                continue
            try:
                text = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10,
                                      check=False).stdout
            except (OSError, subprocess.SubprocessError) as e:
                why.append(f"{program} --version failed: {e}"[:200])
                continue
            m = _VERSION.search(text[:4096])
            if m:
                out[key] = m.group(1)
                source[f"{key}_version_from"] = f"{program} --version"
                break
            why.append(f"{program} --version printed no version")
        else:
            found = "; ".join(why) if why else f"none of {', '.join(programs)} found on PATH"
            source.setdefault("notes", []).append(f"{key}: {found} (its version is not stated)")
    return out


def _identity_check(leaves: dict, vendor: str, fms: tuple[int, int, int]) -> list[str]:
    """KVM reports the host's own leaf 0/1: say so if they disagree with /proc/cpuinfo."""
    notes = []
    if (0, 0) in leaves:
        _, ebx, ecx, edx = leaves[(0, 0)]
        if vendor_string(ebx, ecx, edx) != vendor:
            notes.append(f"KVM leaf 0 vendor {vendor_string(ebx, ecx, edx)!r} differs from /proc/cpuinfo")
    if (1, 0) in leaves and cpuid_signature(leaves[(1, 0)][0]) != fms:
        notes.append(f"KVM leaf 1 signature {cpuid_signature(leaves[(1, 0)][0])} differs from /proc/cpuinfo")
    return notes
