"""Planning results: how answers change under a what-if, and which host kinds hold a domain back."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class Change:
    """How the answer for the VMs of some start hosts changes."""

    starts: tuple[str, ...]
    before: str  # model or status
    after: str
    gained: tuple[str, ...]
    lost: tuple[str, ...]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self) | {"starts": list(self.starts), "gained": list(self.gained),
                                           "lost": list(self.lost)}

    def text(self) -> str:
        parts = [f"VMs on {', '.join(self.starts)}: {self.before} -> {self.after}"]
        if self.gained:
            parts.append(f"gains {', '.join(self.gained)}")
        if self.lost:
            parts.append(f"loses {', '.join(self.lost)}")
        return "; ".join(parts)


@dataclass(frozen=True)
class Suggestion:
    hosts: tuple[str, ...]  # the hosts of one kind in one domain
    machines: int
    domain: int
    gain: int  # features gained x machines still served
    gained: tuple[str, ...]
    model_after: str | None

    def to_dict(self) -> dict:
        return {"hosts": list(self.hosts), "machines": self.machines, "domain": self.domain, "gain": self.gain,
                "gained": list(self.gained), "model_after": self.model_after}

    def text(self) -> str:
        plural = "s" if self.machines != 1 else ""
        return (f"retire or upgrade {', '.join(self.hosts)} ({self.machines} machine{plural}) in domain {self.domain}: "
                f"gain {self.gain} = {len(self.gained)} features x "
                f"{self.gain // max(len(self.gained), 1)} machines"
                + (f" ({', '.join(self.gained[:8])}{', ...' if len(self.gained) > 8 else ''})"
                   if self.gained else "")
                + (f"; model {self.model_after}" if self.model_after else ""))
