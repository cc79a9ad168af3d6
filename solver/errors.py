"""The one exception family cpusolve raises, so callers can catch exactly what we mean."""

from __future__ import annotations


class CpusolveError(Exception):
    """Base of every error cpusolve reports; the message is one line an operator can act on."""

    exit_code = 2


class InputError(CpusolveError):
    """The input (pool file, fact file, requirement, flag) is wrong; exit code 2."""

    exit_code = 2


class InternalError(CpusolveError):
    """cpusolve produced something its own checker rejects: a bug in cpusolve, never output."""

    exit_code = 3


def check_timeout(seconds: float, name: str = "timeout") -> float:
    """A time bound must be a positive, finite number of seconds."""
    import math

    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not math.isfinite(seconds) \
            or seconds <= 0:
        raise InputError(f"{name} must be positive and finite (seconds), not {seconds!r}")
    return float(seconds)
