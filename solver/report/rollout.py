"""What ``cpusolve rollout`` plans: what the change does to each running guest, and the
steps (guest CPU changes at their next reboot, moves, host updates) that keep every guest
runnable and protected on every host it may reach throughout."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GuestImpact:
    name: str
    cpu: str  # its -cpu now (or the XML path / mode for guests not checked)
    #: "unaffected": its CPU stays safe everywhere it may reach, at every step;
    #: "cpu-change": it needs the CPU(s) in ``new_cpus`` at its next reboot(s);
    #: "moved": it runs on a retired host and moves first;
    #: "blocked": no order keeps it safe (``why``);
    #: "not-planned": it meets an update, but other guests block every order;
    #: "not-checked": its CPU could not be read, or it is host-passthrough/host-model
    status: str
    host: str | None
    #: what the change would break with its CPU as it is (the checker's findings, per host)
    breaks: tuple[str, ...] = ()
    #: the CPU(s) it changes to, in order, at reboots the plan's steps name
    new_cpus: tuple[str, ...] = ()
    #: SMT threads per core each new CPU's vCPU topology needs (not part of -cpu)
    new_threads: tuple[int, ...] = ()
    #: a libvirt guest's new CPUs as the <cpu> element its domain XML needs
    new_libvirt: tuple[str, ...] = ()
    moved_to: str | None = None
    #: its CPU is already not runnable or not protected somewhere it may reach today
    unsafe_today: bool = False
    why: str = ""

    def to_dict(self) -> dict:
        return {"name": self.name, "cpu": self.cpu, "status": self.status, "host": self.host,
                "breaks": list(self.breaks), "new_cpus": list(self.new_cpus),
                "new_threads": list(self.new_threads), "new_libvirt": list(self.new_libvirt),
                "moved_to": self.moved_to,
                "unsafe_today": self.unsafe_today, "why": self.why}


@dataclass(frozen=True)
class Step:
    #: "change-cpus" (at the guests' next reboot, before what follows), "move",
    #: "update", "add", "remove"
    action: str
    hosts: tuple[str, ...] = ()
    #: (guest, new -cpu) for change-cpus, (guest, target host) for move
    guests: tuple[tuple[str, str], ...] = ()
    #: the change strings behind a host step
    changes: tuple[str, ...] = ()
    #: change-cpus: SMT threads per core each new CPU's vCPU topology needs
    threads: tuple[int, ...] = ()

    def to_dict(self) -> dict:
        threads = self.threads or (1,) * len(self.guests)
        return {"action": self.action, "hosts": list(self.hosts),
                "guests": [{"guest": g, "to": t} | ({"threads": n} if n > 1 else {})
                           for (g, t), n in zip(self.guests, threads, strict=True)],
                "changes": list(self.changes)}


@dataclass(frozen=True)
class RolloutResult:
    source: str
    changes: tuple[str, ...]
    #: "ok": the steps keep every checked guest safe; "impossible": no order does (exact
    #: search); "not-found": the search ran out of steps first
    status: str
    guests: tuple[GuestImpact, ...]
    steps: tuple[Step, ...]
    #: why no order exists (with the guests that make it so)
    blockers: tuple[str, ...] = ()
    #: host-by-host states the independent checker replayed, and guest checks made there
    states_checked: int = 0
    method: str = "exact"
    notes: tuple[str, ...] = ()

    @property
    def exit_code(self) -> int:
        """0: a plan that keeps every guest safe; 1: no plan, or guests not checked."""
        if self.status != "ok":
            return 1
        return int(any(g.status == "not-checked" for g in self.guests))

    def to_dict(self) -> dict:
        return {"schema": "cpusolve-rollout/1", "source": self.source, "changes": list(self.changes),
                "status": self.status, "method": self.method, "steps": [s.to_dict() for s in self.steps],
                "guests": [g.to_dict() for g in self.guests], "blockers": list(self.blockers),
                "states_checked": self.states_checked, "notes": list(self.notes)}
