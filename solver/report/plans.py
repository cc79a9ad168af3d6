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
