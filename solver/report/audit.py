"""What an audit found about one running guest."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class GuestAudit:
    name: str
    cpu: str
    status: str  # "safe" | "unsafe" | "unrunnable" | "unreadable"
    hosts: tuple[str, ...]
    unrunnable: list[dict] = field(default_factory=list)  # {"host", "missing": [...]}
    #: {"bug", "kernels", "hosts", "why"}: where the guest's kernel is not protected
    unprotected: list[dict] = field(default_factory=list)
    fix: str | None = None  # a -cpu string
    fix_kind: str | None = None  # "flags" (same model) | "domain-answer"
    #: the fix as a libvirt <cpu> element, for guests that came as a domain XML
    fix_libvirt: str | None = None
    error: str | None = None  # why the guest's CPU could not be read
    kind: str = "qemu"  # "libvirt": the guest came as a domain XML
    mode: str | None = None  # "host-passthrough" / "host-model"
    #: SMT threads per core the fix's vCPU topology needs (not part of -cpu)
    fix_threads: int = 1

    def to_dict(self) -> dict:
        return {"name": self.name, "cpu": self.cpu, "status": self.status, "hosts": list(self.hosts),
                "unrunnable": self.unrunnable, "unprotected": self.unprotected,
                "fix": self.fix, "fix_kind": self.fix_kind, "fix_libvirt": self.fix_libvirt,
                "error": self.error, "mode": self.mode, "fix_threads": self.fix_threads}
