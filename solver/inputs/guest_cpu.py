"""Parse what operators already wrote: a QEMU ``-cpu`` string or a libvirt ``<cpu>`` element.

A guest's visible CPU follows QEMU's rules: the model's features, then each ``+f``/``-f``
(or ``f=on``/``f=off``) in order, then dependencies: removing a feature removes everything
that needs it (``-arch-capabilities`` removes every ARCH_CAPABILITIES bit), as QEMU's
feature_dependencies do when it expands the model.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from cpusolve.core.guest import GuestCpu
from cpusolve.encodings.catalog import catalog
from cpusolve.encodings.spelling import is_qemu_cpu_option
from cpusolve.errors import InputError
from cpusolve.inputs.untrusted import check_name, read_xml


def parse_qemu_cpu(text: str, where: str = "") -> GuestCpu:
    """A ``-cpu`` string as the guest CPU it describes (QEMU's reading of the flags)."""
    cat = catalog()
    parts = [p.strip() for p in text.strip().split(",") if p.strip()]
    if not parts:
        raise InputError(f"{where}empty -cpu string")
    model = cat.model(parts[0], where)
    features = set(model.features)
    ident = {"family": model.family, "model": model.model, "stepping": model.stepping}
    vendor = model.vendor
    for part in parts[1:]:
        if part[0] in "+-":
            name, on = part[1:], part[0] == "+"
        elif "=" in part:
            key, value = part.split("=", 1)
            if key in ident:
                try:
                    ident[key] = int(value, 0)
                except ValueError:
                    raise InputError(f"{where}{key}={value} is not a number") from None
                continue
            if key == "vendor":
                vendor = value
                continue
            if is_qemu_cpu_option(key):
                continue
            if value not in ("on", "off", "true", "false"):
                raise InputError(f"{where}property {key}={value}: expected on or off")
            name, on = key, value in ("on", "true")
        elif is_qemu_cpu_option(part):
            continue
        else:
            raise InputError(f"{where}cannot read '{part}' in the -cpu string (expected +feature, "
                             "-feature, feature=on|off or family=/model=/stepping=)")
        if is_qemu_cpu_option(name):
            continue
        canonical = cat.feature(name, where).name
        if on:
            features.add(canonical)
        else:
            features.discard(canonical)
    features = frozenset(cat.without_unmet(features))
    fms = (ident["family"], ident["model"], ident["stepping"])
    return GuestCpu(model=model.name, plus=tuple(sorted(features - model.features)),
                    minus=tuple(sorted(model.features - features)),
                    fms=fms if fms != model.fms else None,
                    vendor=vendor if vendor != model.vendor else None)


def parse_libvirt_cpu(path: Path) -> GuestCpu:
    """A libvirt domain XML (or a bare ``<cpu>``) in custom mode, with the SMT threads of
    its ``<topology>`` (a guest kernel that sees sibling threads mitigates differently)."""
    return _libvirt_guest(path)[0]


def _libvirt_guest(path: Path) -> tuple[GuestCpu, str]:
    """The guest CPU of a libvirt XML and the ``-cpu`` string it stands for."""
    text, threads = _libvirt_cpu(path)
    return dataclasses.replace(parse_qemu_cpu(text, f"{path}: "), threads=threads), text


def _libvirt_cpu(path: Path) -> tuple[str, int]:
    """The ``<cpu>`` of a libvirt domain XML as the ``-cpu`` string it stands for
    (libvirt's feature spellings kept), and the threads per core its ``<topology>`` gives."""
    where = f"{path}: "
    root = read_xml(path, str(path), "a libvirt domain XML")
    cpu = root if root.tag == "cpu" else root.find("cpu")
    if cpu is None:
        raise InputError(f"{where}no <cpu> element")
    mode = cpu.get("mode", "custom")
    if mode in ("host-passthrough", "host-model", "maximum"):
        raise HostCpuGuest(mode)
    model = cpu.findtext("model")
    if not model:
        raise InputError(f"{where}<cpu> has no <model>")
    model = check_name(model, str(path), "<model>")
    flags = []
    for feat in cpu.findall("feature"):
        policy, name = feat.get("policy", "require"), check_name(feat.get("name", ""), str(path), "<feature> name")
        if policy in ("require", "force"):
            flags.append(f"+{name}")
        elif policy in ("disable", "forbid"):
            flags.append(f"-{name}")
    # what libvirt hands QEMU besides: family/model/stepping set with -global on the CPU's
    # QOM type (cpusolve's own passthrough), in <qemu:commandline>
    qom = f"{model}-x86_64-cpu."
    args = [a.get("value", "") for a in root.iter("{http://libvirt.org/schemas/domain/qemu/1.0}arg")]
    props = []
    for flag, value in zip(args, args[1:], strict=False):
        if flag == "-global" and value.startswith(qom):
            prop, _, number = value[len(qom):].partition("=")
            if prop in ("family", "model", "stepping") and number.strip().isdigit():
                props.append(f"{prop}={int(number)}")
    threads = 1
    topology = cpu.find("topology")
    if topology is not None and topology.get("threads") is not None:
        value = topology.get("threads", "").strip()
        if not value.isdigit() or len(value) > 4 or int(value) < 1:
            raise InputError(f"{where}<topology threads=...> must be a whole number of threads per core, "
                             f"not {value[:20]!r}")
        threads = 2 if int(value) > 1 else 1  # what a guest kernel reads: siblings or none
    return ",".join([model, *props, *flags]), threads


class HostCpuGuest(InputError):
    """A guest in host-passthrough / host-model mode: it sees its start host's own CPU."""

    def __init__(self, mode: str) -> None:
        super().__init__(f"<cpu mode='{mode}'>")
        self.mode = mode


def parse_cpu(spec: str) -> tuple[GuestCpu, str]:
    """A ``-cpu`` string, or a path to a libvirt XML file: the guest CPU and its ``-cpu``
    string."""
    if spec.endswith(".xml") or ("/" in spec and "," not in spec) or _is_file(spec):
        return _libvirt_guest(Path(spec))
    return parse_qemu_cpu(spec), spec


def _is_file(spec: str) -> bool:
    """Whether a CPU argument names an existing file (a -cpu string longer than a file name
    can be is not one)."""
    try:
        return len(spec) < 4096 and Path(spec).is_file()
    except (OSError, ValueError):
        return False
