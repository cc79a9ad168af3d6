"""Output writers: one module per format, each a pure function of a checked Result."""

from __future__ import annotations

from cpusolve.errors import InputError
from cpusolve.report.records import Result

FORMATS = ("text", "json", "qemu", "libvirt", "nova", "dot")


def render(result: Result, fmt: str, json_schema: int = 2, chunks=None) -> str:
    """``result`` in ``fmt``; ``chunks`` (json_out.JsonChunks) holds JSON text its domains'
    processes wrote already."""
    if fmt == "text":
        from cpusolve.writers.text import render_text as fn
    elif fmt == "json":
        from cpusolve.writers.json_out import render_json

        return render_json(result, json_schema, chunks)
    elif fmt == "qemu":
        from cpusolve.writers.qemu import render_qemu as fn
    elif fmt == "libvirt":
        from cpusolve.writers.libvirt import render_libvirt as fn
    elif fmt == "nova":
        from cpusolve.writers.nova import render_nova as fn
    elif fmt == "dot":
        from cpusolve.writers.dot import render_dot as fn
    else:
        raise InputError(f"unknown output format '{fmt}' (known: {', '.join(FORMATS)})")
    return fn(result)
