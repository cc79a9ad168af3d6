"""The one exception family cpusolve raises, so callers can catch exactly what we mean."""

from __future__ import annotations


class CpusolveError(Exception):
    """Base of every error cpusolve reports; the message is one line an operator can act on.

    Names from the input are printed as given, so control characters are escaped here:
    a newline in a host name must not split the line, or forge a second message.
    """

    exit_code = 2

    def __init__(self, message: str = "", *args: object) -> None:
        super().__init__(one_line(str(message)), *args)


def one_line(text: str) -> str:
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


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
