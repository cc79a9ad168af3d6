"""What a Linux guest concludes about each CPU bug on one guest CPU (``cpusolve verdict``)."""

from __future__ import annotations

from dataclasses import dataclass

from cpusolve.core.guest import GuestCpu


@dataclass(frozen=True)
class BugVerdict:
    bug: str
    #: /sys/devices/system/cpu/vulnerabilities/<bug> says anything but "Not affected"
    affected: bool
    why: str
    #: what that file will say ("Mitigation: Retpolines; ..."), as the actions table
    #: predicts it for a KVM guest (None: the view does not decide it)
    text: str | None = None


@dataclass(frozen=True)
class GuestVerdicts:
    cpu: str  # the -cpu string or XML file, as given
    guest: GuestCpu
    kernel: str  # the rule table's full version
    bugs: tuple[BugVerdict, ...]  # in sysfs order
    #: the mitigation lines the kernel prints at boot (Spectre V2 mode, return thunk...)
    dmesg: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        vendor, fam, mod, step = self.guest.identity()
        return {"cpu": self.cpu, "model": self.guest.model, "kernel": self.kernel, "vendor": vendor,
                "family": fam, "model_number": mod, "stepping": step,
                "threads": self.guest.threads, "dmesg": list(self.dmesg),
                "bugs": {b.bug: {"affected": b.affected, "why": b.why, "sysfs": b.text} for b in self.bugs}}
