"""Host facts: what a hypervisor host can give a guest, and which CPU bugs its silicon has."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from cpusolve.encodings.cpu import Cpu
from cpusolve.encodings.protection import HostView
from cpusolve.encodings.rules import is_arch_cap

VENDORS = ("GenuineIntel", "AuthenticAMD", "HygonGenuine", "CentaurHauls", "  Shanghai  ")


@dataclass(frozen=True)
class HostFacts(Cpu):
    """Everything the solver needs about one kind of host: its identity, what its
    hypervisor can expose to a guest (``features``, canonical QEMU names) and the CPU bugs
    its silicon has.

    Two hosts with equal facts are the same "host kind" and share one set of solver terms,
    which is what keeps a 10,000-host pool of 20 CPU types small.
    """

    #: Linux sysfs names of the CPU bugs the host silicon has
    bugs: frozenset[str] = frozenset()
    #: where the facts came from, e.g. "catalog Skylake-Server-v4" (not part of equality)
    origin: str = field(default="", compare=False)
    #: the host's own CPUID and ARCH_CAPABILITIES bits (silicon and microcode), which decide
    #: whether a guest's mitigation works there; not all of them reach a guest
    silicon: frozenset[str] = frozenset()
    #: Linux's internal bug bits of the silicon (MSBDS_ONLY, SWAPGS, BHI, ...)
    internal_bugs: frozenset[str] = frozenset()
    #: the host's kernel and KVM: "6.1" (Debian 12) or "6.12"
    kernel: str = "6.1"
    #: "on" when TSX transactions run on the host
    tsx: str = "off"
    #: the host runs SMT (hyper-threading)
    smt: bool = True
    #: microcode fixes nothing enumerates, as the pool states them
    microcode_fixes: frozenset[str] = frozenset()
    #: the QEMU and libvirt versions (name tables) the host runs, where known: an answer
    #: may only use names every host of its domain knows
    qemu: str | None = None
    libvirt: str | None = None

    def __hash__(self) -> int:
        """The dataclass's hash (the fields equality compares), made once: host kinds key
        every memo of a solve (domains' kind sets, obligations, protection lines), and a
        10,000-host pool's domains hash them hundreds of thousands of times."""
        h = self.__dict__.get("_hash")
        if h is None:
            h = hash(tuple(getattr(self, name) for name in _COMPARED))
            self.__dict__["_hash"] = h  # a frozen dataclass: bypass its __setattr__
        return h

    def __getstate__(self) -> dict:
        # the remembered hash is this process's (string hashes are salted per process)
        return {k: v for k, v in self.__dict__.items() if k != "_hash"}

    def host_view(self) -> HostView:
        """The host as the protection table reads it: its IA32_ARCH_CAPABILITIES bits count
        only where the host has the MSR (the arch-capabilities CPUID bit), as its kernel reads
        them.  Remembered on the instance (equal facts give equal views; not a field)."""
        view = self.__dict__.get("_host_view")
        if view is not None:
            return view
        bits = self.silicon
        if "arch-capabilities" not in bits:
            bits = frozenset(f for f in bits if not is_arch_cap(f))
        view = HostView(self.vendor, self.family, self.model, self.stepping, bits,
                        bugs=self.bugs | self.internal_bugs, kernel=self.kernel, tsx=self.tsx, smt=self.smt,
                        ucode=self.microcode_fixes)
        self.__dict__["_host_view"] = view  # a frozen dataclass: bypass its __setattr__
        return view


#: the fields HostFacts equality compares, which its hash reads
_COMPARED = tuple(f.name for f in fields(HostFacts) if f.compare)


@dataclass(frozen=True)
class Host:
    """A named host (or ``count`` identical machines) of a pool."""

    name: str
    facts: HostFacts
    count: int = 1
    labels: tuple[tuple[str, str], ...] = ()
    #: the entry as read (inputs.pool_file.HostKindSpec), so that a planned change to the
    #: host (a microcode or kernel update) is derived again as the entry would be; not
    #: part of equality
    kind: object = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class HostRef:
    """A host as a report names it: its name and how many machines it stands for."""

    name: str
    count: int

    def to_dict(self) -> dict:
        return {"name": self.name, "count": self.count}
