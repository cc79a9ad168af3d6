"""A guest CPU: a catalog model plus flags, and the -cpu string that names it."""

from __future__ import annotations

from dataclasses import dataclass

from cpusolve.encodings.catalog import catalog
from cpusolve.encodings.cpu import CpuView


@dataclass(frozen=True)
class GuestCpu:
    """A guest CPU: a catalog model plus flags, optionally showing another f/m/s."""

    model: str
    plus: tuple[str, ...] = ()
    minus: tuple[str, ...] = ()
    #: family/model/stepping shown instead of the model's own, when truthfulness needs it
    fms: tuple[int, int, int] | None = None
    #: a CPUID vendor shown instead of the model's (QEMU's ``vendor=``; read from running
    #: guests, never chosen by the solver)
    vendor: str | None = None
    #: threads per core of the vCPU topology; 2 where protection needs the guest to know its
    #: vCPUs may be SMT siblings (QEMU -smp ...,threads=2; libvirt <topology threads='2'>)
    threads: int = 1

    def visible(self) -> frozenset[str]:
        base = catalog().model(self.model).features
        return (base - frozenset(self.minus)) | frozenset(self.plus)

    def identity(self) -> tuple[str, int, int, int]:
        m = catalog().model(self.model)
        fam, mod, step = self.fms or m.fms
        return (self.vendor or m.vendor, fam, mod, step)

    def view(self, features: frozenset[str] | None = None, fms: tuple[int, int, int] | None = None):
        """What a Linux guest sees of this CPU (optionally with other features or f/m/s)."""
        vendor, fam, mod, step = self.identity()
        fam, mod, step = fms or (fam, mod, step)
        return CpuView(vendor, fam, mod, step, self.visible() if features is None else features,
                       hypervisor=True, smt=self.threads > 1)

    def flags(self) -> list[str]:
        return [f"+{f}" for f in self.plus] + [f"-{f}" for f in self.minus]

    def to_dict(self) -> dict:
        vendor, fam, mod, step = self.identity()
        return {
            "model": self.model, "plus": list(self.plus), "minus": list(self.minus),
            "vendor": vendor, "family": fam, "model_number": mod, "stepping": step,
            "fms_override": self.fms is not None, "threads": self.threads,
        }


def qemu_cpu_arg(guest: GuestCpu) -> str:
    """The ``-cpu`` argument: versioned model, f/m/s override, flags, and enforce."""
    parts = [guest.model]
    if guest.vendor is not None:
        parts.append(f"vendor={guest.vendor}")
    if guest.fms is not None:
        fam, mod, step = guest.fms
        parts += [f"family={fam}", f"model={mod}", f"stepping={step}"]
    parts += guest.flags()
    parts.append("enforce")
    return ",".join(parts)
