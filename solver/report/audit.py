"""What an audit found about one running guest."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class GuestAudit:
    name: str
    cpu: str
    status: str  # "safe" | "unsafe" | "unrunnable"
    hosts: tuple[str, ...]
    unrunnable: list[dict] = field(default_factory=list)  # {"host", "missing": [...]}
    false_immunities: list[dict] = field(default_factory=list)  # {"bug", "kernels", "hosts", "why"}
    missing_mechanisms: list[dict] = field(default_factory=list)  # {"bug", "needs", "hosts"}
    fix: str | None = None  # a -cpu string
    fix_kind: str | None = None  # "flags" (same model) | "domain-answer"

    def to_dict(self) -> dict:
        return {"name": self.name, "cpu": self.cpu, "status": self.status, "hosts": list(self.hosts),
                "unrunnable": self.unrunnable, "false_immunities": self.false_immunities,
                "missing_mechanisms": self.missing_mechanisms, "fix": self.fix, "fix_kind": self.fix_kind}
