"""The CPU records every reading of CPU facts shares.

A :class:`Cpu` is what software can know of a processor: vendor, family/model/stepping and
its feature bits in canonical QEMU names.  A :class:`CpuView` is that CPU as a kernel sees
it (whether it runs under a hypervisor), the input of every rule interpreter.  The rest of
the family extends :class:`Cpu`: a host kind (``core.hosts.HostFacts``: what a host can
expose, and its bugs) and a fact file's reading (``inputs.facts.FactFile``); a guest CPU
(``core.guest.GuestCpu``: a model plus flags) is a recipe whose ``view()`` is a CpuView.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Cpu:
    vendor: str
    family: int
    model: int
    stepping: int
    #: canonical QEMU feature names
    features: frozenset[str]

    @property
    def fms(self) -> tuple[int, int, int]:
        return (self.family, self.model, self.stepping)


@dataclass(frozen=True)
class CpuView(Cpu):
    """What a kernel sees of its CPU: identity, feature bits, whether it is a guest, and
    (for what the kernel does, not what it believes) its vCPU topology and the facts of the
    machine it boots on."""

    hypervisor: bool = True
    #: the vCPU topology has more than one thread per core (QEMU -smp ...,threads=2)
    smt: bool = False
    #: facts of the boot machine the kernel probes ("msr_ok:PRED_CMD_SBPB", "env:NAME"), true ones
    boot: frozenset[str] = frozenset()
