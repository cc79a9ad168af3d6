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


@dataclass(frozen=True)
class GuestVerdicts:
    cpu: str  # the -cpu string or XML file, as given
    guest: GuestCpu
    kernel: str  # the rule table's full version
    bugs: tuple[BugVerdict, ...]  # in sysfs order

    def to_dict(self) -> dict:
        vendor, fam, mod, step = self.guest.identity()
        return {"cpu": self.cpu, "model": self.guest.model, "kernel": self.kernel, "vendor": vendor,
                "family": fam, "model_number": mod, "stepping": step,
                "bugs": {b.bug: {"affected": b.affected, "why": b.why} for b in self.bugs}}
