"""cpusolve: safe, maximal guest CPU models for live-migration domains.

The public API is re-exported lazily so that ``cpusolve --help`` does not import Z3.
"""

from __future__ import annotations

__all__ = ["load_pool", "solve", "check", "targets", "Verdict", "Planner", "Result", "DomainResult",
           "GuestCpu", "Requirements", "CpusolveError", "InputError", "qemu_cpu_arg", "split", "rollout"]

_WHERE = {
    "load_pool": "cpusolve.api", "solve": "cpusolve.api", "check": "cpusolve.api",
    "targets": "cpusolve.api", "split": "cpusolve.api", "rollout": "cpusolve.api", "Verdict": "cpusolve.api",
    "Planner": "cpusolve.planning.planner",
    "Result": "cpusolve.report.records", "DomainResult": "cpusolve.report.records",
    "GuestCpu": "cpusolve.core.guest", "qemu_cpu_arg": "cpusolve.core.guest",
    "Requirements": "cpusolve.core.pool",
    "CpusolveError": "cpusolve.errors", "InputError": "cpusolve.errors",
}


def __getattr__(name: str):
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'cpusolve' has no attribute {name!r}")
