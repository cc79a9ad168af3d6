"""The ``cpusolve`` command.  ``cpusolve POOL`` solves; subcommands read and probe hosts.

Errors are one line on stderr and an exit code: 0 every domain solved, 1 some domain has no
answer (infeasible or timed out), 2 bad input, 3 internal error (an answer the checker
rejected: never printed).
"""

from __future__ import annotations

import gc
import os
import sys
from pathlib import Path

import click

from cpusolve.errors import CpusolveError, check_timeout, one_line
from cpusolve.writers.atomic import write_all_atomic, write_atomic


class DefaultGroup(click.Group):
    """A group whose first argument, when it is not a subcommand, is a pool to solve."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h", "--version"):
            args.insert(0, "solve")
        return super().parse_args(ctx, args)

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        """A usage error is one line with the same prefix as every other error (exit 2).

        From a real command line (``args`` None) the process leaves without tearing down
        its heap: freeing a 10,000-host solve's objects one by one took most of a second,
        and every output is written (atomically, fsynced) and flushed by then.  For the same
        reason the cyclic collector stays off to the end (engine.collector): turned back on
        after a solve, its first collection walked every object the solve left alive once
        more (0.3 s of a 10,000-host run), just before the process left."""
        if args is not None:  # a caller in Python (tests' CliRunner): a normal SystemExit
            return self._main(args, prog_name, complete_var, **extra)
        gc.disable()
        try:
            self._main(args, prog_name, complete_var, **extra)
            code = 0
        except SystemExit as e:
            code = e.code
        _leave(code)

    def _main(self, args, prog_name, complete_var, **extra):
        try:
            code = super().main(args, prog_name or "cpusolve", complete_var, standalone_mode=False, **extra)
        except click.UsageError as e:
            path = e.ctx.command_path if e.ctx is not None else "cpusolve"
            hint = f" (see {path} --help)"
            click.echo(f"cpusolve: error: {one_line(e.format_message())}{hint}", err=True)
            sys.exit(2)
        except click.Abort:
            sys.exit(130)
        except click.ClickException as e:
            click.echo(f"cpusolve: error: {one_line(e.format_message())}", err=True)
            sys.exit(e.exit_code)
        sys.exit(code if isinstance(code, int) else 0)


def _leave(code) -> None:
    """Exit now with ``code`` (a SystemExit code), after flushing what was printed."""
    if code is None:
        code = 0
    elif not isinstance(code, int):
        sys.stderr.write(f"{code}\n")
        code = 1
    try:
        sys.stdout.flush()
    except BrokenPipeError:  # the reader left: nothing more to say
        code = code or 141
    try:
        sys.stderr.flush()
    except OSError:
        pass
    os._exit(code)


INTERRUPTED = b"cpusolve: interrupted; nothing written\n"


def _stop(signum, frame):
    """Ctrl-C, SIGTERM, SIGHUP: stop now, remove a temporary file being written, exit 130.
    Exiting here (not raising into whatever runs, a ctypes call into Z3, a destructor) is
    what keeps it one line; during a Z3 check Z3 catches SIGINT itself and cancels, which the
    backend turns into KeyboardInterrupt at a safe point."""
    from cpusolve.writers.atomic import discard_temporaries

    discard_temporaries()
    parallel = sys.modules.get("cpusolve.engine.parallel")  # loaded: there may be workers
    if parallel is not None:
        parallel.kill_workers()
    os.write(2, INTERRUPTED)
    os._exit(130)


def run(fn) -> None:
    import signal

    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        try:
            previous[sig] = signal.signal(sig, _stop)
        except (ValueError, OSError):  # not the main thread: leave the defaults
            pass
    from cpusolve.engine.collector import collection_paused

    try:
        with collection_paused():  # a command is one solve or a few: engine.collector
            code = _run(fn)
    finally:  # a library caller (a test's CliRunner) gets its own handlers back
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    sys.exit(code or 0)


def _run(fn) -> int:
    try:
        code = fn()
    except CpusolveError as e:
        click.echo(f"cpusolve: error: {e}", err=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        from cpusolve.writers.atomic import discard_temporaries

        discard_temporaries()
        sys.stderr.write(INTERRUPTED.decode())
        sys.exit(130)
    except BrokenPipeError:  # `cpusolve ... | head`: the reader left, nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(141)
    except Exception as e:  # a bug: one line, details on request
        if os.environ.get("CPUSOLVE_DEBUG"):
            raise
        click.echo(f"cpusolve: internal error: {type(e).__name__}: {e} (set CPUSOLVE_DEBUG=1 for details)",
                   err=True)
        sys.exit(3)
    return code or 0


@click.group(cls=DefaultGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cpusolve")
def main() -> None:
    """Pick, for every migration domain of a pool, the maximal guest CPU model that every host
    can run and on which the guest is protected, on every host, from the bugs that host has.

    \b
    cpusolve POOL.json [--format text|json|qemu|libvirt]   solve a pool
    cpusolve probe [-o FILE]                                this host's facts from /dev/kvm
    cpusolve pool init FILES... [--group NAME]              a pool from host fact files
    cpusolve verdict CPU [--kernel 6.1|6.12]                what a Linux guest concludes on CPU
    cpusolve audit POOL --guests FILE                       which running guests are unsafe
    cpusolve apply POOL DOMAIN_XML [--host HOST]            put the answer into a libvirt domain
    cpusolve split POOL [--format text|json|dot]            which migration edges to cut
    cpusolve rollout POOL --guests FILE --change CHANGE...  roll out host changes safely
    """


def format_option(*formats: str):
    return click.option("--format", "fmt", default=formats[0], show_default=True, type=click.Choice(formats),
                        help="Output format.")


def _timeout(ctx, param, value):
    try:
        return check_timeout(value, "--timeout")
    except CpusolveError as e:
        raise click.BadParameter(str(e)) from None


policy_option = click.option(
    "--policy", type=click.Choice(["strict", "compat"]), default=None,
    help="strict: the guest's mitigation must work on every host (default from the pool, else strict); "
         "compat: the right kind of mitigation suffices where a host's microcode makes it ineffective.")
timeout_option = click.option("--timeout", type=float, default=30.0, show_default=True, callback=_timeout,
                              help="Seconds Z3 may spend on one domain.")
qemu_option = click.option("--qemu", "qemu", type=click.Choice(["7.2", "10.2", "current"]), default=None,
                           help="Only use models and feature names this QEMU knows.")
output_option = click.option("-o", "--output", default=None, help="Write here atomically instead of stdout.")


@main.command("solve")
@click.argument("pool", metavar="POOL")
@format_option("text", "json", "qemu", "libvirt", "nova", "dot")
@policy_option
@click.option("--kernel", "kernels", multiple=True, metavar="VERSION",
              help="Guest Linux kernel(s) whose mitigation choices must protect (6.1, 6.12); repeatable.")
@qemu_option
@click.option("--libvirt", "libvirt", type=click.Choice(["9.0", "11.3"]), default=None,
              help="Guests are started through this libvirt: only its model and feature names.")
@click.option("--waive", multiple=True, metavar="BUG", help="Accept a bug guests will not mitigate.")
@timeout_option
@click.option("--without", "without", multiple=True, metavar="HOST",
              help="What if HOST were retired (repeatable); prints how answers change.")
@click.option("--add", "add", multiple=True, metavar="NAME=MODEL[xN][@PEER]",
              help="What if host NAME were upgraded to MODEL, or a new host joined PEER (repeatable).")
@click.option("--suggest", "suggest_k", type=click.IntRange(0), default=0, metavar="K",
              help="Name the K host kinds whose retirement or upgrade gains the most.")
@click.option("--jobs", "-j", type=click.IntRange(1, 256), default=1, show_default=True,
              help="Processes solving the domains, this one included (or, with --executor, chunks per worker).")
@click.option("--executor", default=None, metavar="dask:ADDRESS|dask:local",
              help="Solve the domains on a dask.distributed cluster (the scheduler's address, or "
                   "'local' for a LocalCluster of -j workers); needs the 'dask' extra.")
@click.option("--json-schema", "json_schema", type=click.Choice(["1", "2"]), default="2", show_default=True,
              help="--format json: schema 2 names each host list once; 1 is the old schema (one more release).")
@click.option("--summary", is_flag=True, help="Text: one block per kind of domain instead of every domain.")
@output_option
def solve_cmd(pool, fmt, policy, kernels, qemu, libvirt, waive, timeout, without, add, suggest_k, jobs,
              executor, json_schema, summary, output) -> None:
    """Solve POOL (a pool.json, a node-link graph JSON, or - for stdin)."""
    def go() -> int:
        import dataclasses

        from cpusolve.api import load_pool, solve, with_requirements
        from cpusolve.errors import InputError
        from cpusolve.writers import render

        if executor and (without or add):
            raise InputError("--executor solves a pool as it is: drop --without/--add, or --executor")
        if summary and (without or add or suggest_k):
            raise InputError("--summary shows domains, not what-if changes or suggestions: "
                             "drop --summary, or --without/--add/--suggest")
        if summary and fmt != "text":
            raise InputError("--summary is a text report: drop --format or use --format text")
        p = load_pool(pool)
        p.requirements = with_requirements(p.requirements, policy=policy, kernels=kernels, qemu=qemu, waive=waive,
                                           libvirt=libvirt or _libvirt_default(p.requirements, fmt))
        prerender = None  # with -j and JSON, the workers write the report's domains too
        if without or add:
            from cpusolve.planning.whatif import what_if

            result = what_if(p, without, add, timeout=timeout, jobs=jobs)
        elif executor:
            from cpusolve.engine.executors import open_executor

            with open_executor(executor, jobs) as (ex, chunks):
                result = solve(p, timeout=timeout, jobs=chunks, executor=ex)
        else:
            if fmt == "json" and jobs > 1:
                from cpusolve.writers.json_out import JsonChunks

                prerender = JsonChunks(int(json_schema))
                if not suggest_k:  # the report is all that is asked: the records stay in the workers
                    from cpusolve.engine.solve import solve_written

                    written = solve_written(p, timeout, jobs, prerender)
                    if written is not None:
                        head, solved = written
                        write_atomic(prerender.render_written(head), output)
                        return 0 if solved else 1
            result = solve(p, timeout=timeout, jobs=jobs, prerender=prerender)
        if suggest_k:
            from cpusolve.planning.suggest import suggest

            result = dataclasses.replace(result, suggestions=tuple(suggest(p, result, suggest_k, timeout)))
        if fmt == "nova" and output not in (None, "-"):
            return _write_nova(result, Path(output))
        if summary:
            from cpusolve.writers.summary import render_summary

            write_atomic(render_summary(result), output)
            return result.exit_code
        write_atomic(render(result, fmt, int(json_schema), prerender), output)
        if fmt == "nova":
            from cpusolve.writers.nova import nova_files

            return result.exit_code or int(not all(f.usable for f in nova_files(result)))
        return result.exit_code

    run(go)


def _libvirt_default(req, fmt: str) -> str | None:
    """Answers printed for libvirt or Nova are started through libvirt: unless the pool or
    its hosts say which, they use the names of the newest libvirt whose CPU map is known."""
    if fmt not in ("libvirt", "nova") or req.libvirt is not None:
        return None
    from cpusolve.encodings.libvirt import newest

    return newest()


def _write_nova(result, directory: Path) -> int:
    """One nova.conf fragment per compute host, DIR/<host>.conf (exit 1 if one configures nothing)."""
    from cpusolve.errors import InputError
    from cpusolve.writers.nova import nova_files

    files = nova_files(result)
    for f in files:
        if not f.host or "/" in f.host or f.host.startswith(".") or "\x00" in f.host:
            raise InputError(f"--format nova: host name {f.host!r} cannot be a file name in {directory}")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"-o {directory}: cannot create the directory: {e.strerror or e}") from None
    for f in files:
        write_atomic(f.text, str(directory / f"{f.host}.conf"))
    return result.exit_code or int(not all(f.usable for f in files))


@main.command("apply")
@click.argument("pool", metavar="POOL")
@click.argument("domain_xml", metavar="DOMAIN_XML")
@click.option("--host", "host", default=None, metavar="HOST",
              help="The host the VM starts on: its migration domain's answer is applied.")
@policy_option
@click.option("--kernel", "kernels", multiple=True, metavar="VERSION", help="Guest Linux rule table(s).")
@qemu_option
@click.option("--libvirt", "libvirt", type=click.Choice(["9.0", "11.3"]), default=None,
              help="The libvirt that defines the domain (default: the hosts' own, else the newest known).")
@click.option("--waive", multiple=True, metavar="BUG", help="Accept a bug guests will not mitigate.")
@timeout_option
@output_option
def apply_cmd(pool, domain_xml, host, policy, kernels, qemu, libvirt, waive, timeout, output) -> None:
    """Put the answer for HOST's domain into DOMAIN_XML (virsh dumpxml): its <cpu> and the
    family/model/stepping passthrough replaced, everything else kept; then virsh define it."""
    def go() -> int:
        from cpusolve.api import load_pool, solve, with_requirements
        from cpusolve.inputs.domain_xml import read_domain_xml
        from cpusolve.planning.apply import answer_for_host
        from cpusolve.writers.libvirt import NotExpressible, apply_to_domain, render_domain

        domain = read_domain_xml(domain_xml)
        p = load_pool(pool)
        p.requirements = with_requirements(p.requirements, policy=policy, kernels=kernels, qemu=qemu, waive=waive,
                                           libvirt=libvirt or _libvirt_default(p.requirements, "libvirt"))
        d = answer_for_host(solve(p, timeout=timeout), host)
        try:
            apply_to_domain(domain, d)
        except NotExpressible as e:
            click.echo(f"cpusolve: error: {e}; solve with --libvirt (the version that defines the domain)", err=True)
            return 1
        write_atomic(render_domain(domain), output)
        return 0

    run(go)


@main.command("probe")
@click.option("-o", "--output", default="-", show_default=True, help="Fact file to write (atomically).")
@click.option("--device", default="/dev/kvm", show_default=True, help="The KVM device to ask.")
def probe_cmd(output, device) -> None:
    """Write this host's fact file from KVM's own answers (/dev/kvm), for a pool's "facts"."""
    def go() -> int:
        from cpusolve.inputs.probe import probe
        from cpusolve.writers.facts import render_facts

        write_atomic(render_facts(probe(dev=device)), output)
        return 0

    run(go)


@main.group("pool")
def pool_group() -> None:
    """Build pool files."""


@pool_group.command("init")
@click.argument("files", nargs=-1, required=True, metavar="FACT_FILES...")
@click.option("--group", default=None, help="Put every host in one migration group with this name.")
@click.option("--directed", is_flag=True, help="Mark the migration graph as directed.")
@click.option("--no-merge", is_flag=True, help="Keep hosts with identical facts separate.")
@click.option("-o", "--output", default=None, help="Pool file to write (atomically); default stdout.")
def pool_init_cmd(files, group, directed, no_merge, output) -> None:
    """A pool.json with one host per fact file (libvirt XML, QMP JSON, cpuinfo, probe output...)."""
    def go() -> int:
        import json

        from cpusolve.inputs.pool_init import pool_from_facts

        base = Path(output).parent if output not in (None, "-") else Path.cwd()
        pool = pool_from_facts(files, group, directed=directed, merge=not no_merge, base=base)
        write_atomic(json.dumps(pool, indent=2) + "\n", output)
        return 0

    run(go)


@main.command("audit")
@click.argument("pool", metavar="POOL")
@click.option("--guests", "guests", required=True, metavar="FILE", help="The running guests (JSON).")
@format_option("text", "json")
@policy_option
@timeout_option
@output_option
def audit_cmd(pool, guests, fmt, policy, timeout, output) -> None:
    """Which running guests cannot run where they may migrate, or would run unprotected there."""
    def go() -> int:
        from cpusolve.api import load_pool, with_requirements
        from cpusolve.inputs.guests_file import read_guests
        from cpusolve.planning.audit import audit
        from cpusolve.writers.audit import render_audit

        p = load_pool(pool)
        p.requirements = with_requirements(p.requirements, policy=policy)
        results = audit(p, read_guests(guests, p), timeout)
        write_atomic(render_audit(results, fmt), output)
        return 0 if all(r.status == "safe" for r in results) else 1

    run(go)


@main.command("split")
@click.argument("pool", metavar="POOL")
@format_option("text", "json", "dot")
@policy_option
@click.option("--kernel", "kernels", multiple=True, metavar="VERSION", help="Guest Linux rule table(s).")
@qemu_option
@click.option("--waive", multiple=True, metavar="BUG", help="Accept a bug guests will not mitigate.")
@click.option("--held-back", "held_back", type=float, default=None, metavar="PCT",
              help="Also split a component in two where that raises its guest features x machines by PCT %.")
@timeout_option
@click.option("--jobs", "-j", type=click.IntRange(1, 256), default=1, show_default=True,
              help="Worker processes for the domains.")
@click.option("--write-pool", "write_pool", default=None, metavar="FILE",
              help="Also write the split pool as a pool.json (atomically), ready to solve.")
@output_option
def split_cmd(pool, fmt, policy, kernels, qemu, waive, held_back, timeout, jobs, write_pool, output) -> None:
    """Which migration edges to cut so that every domain of POOL has a protected answer."""
    def go() -> int:
        import json

        from cpusolve.api import load_pool, with_requirements
        from cpusolve.errors import InputError
        from cpusolve.planning.split import split, split_pool_file
        from cpusolve.writers.split import render_split

        if write_pool and output not in (None, "-") and Path(write_pool).resolve() == Path(output).resolve():
            raise InputError(f"{output}: --write-pool and -o name the same file; give the split pool its own")
        p = load_pool(pool)
        p.requirements = with_requirements(p.requirements, policy=policy, kernels=kernels, qemu=qemu, waive=waive)
        result = split(p, timeout=timeout, held_back=held_back, jobs=jobs)
        report = [(render_split(result, fmt), output)]
        if write_pool:  # both or neither: an -o that cannot be written leaves no new pool behind
            report.insert(0, (json.dumps(split_pool_file(result, pool, write_pool), indent=2) + "\n", write_pool))
        write_all_atomic(report)
        return result.exit_code

    run(go)


@main.command("rollout")
@click.argument("pool", metavar="POOL")
@click.option("--guests", "guests", required=True, metavar="FILE", help="The running guests (JSON, as for audit).")
@click.option("--change", "changes", multiple=True, required=True, metavar="CHANGE",
              help="HOSTS:+bit,-bit (or kernel=, qemu=, libvirt=; HOSTS may be a glob), +NAME=MODEL[@PEER], "
                   "or -HOST; repeatable.")
@format_option("text", "json")
@policy_option
@timeout_option
@output_option
def rollout_cmd(pool, guests, changes, fmt, policy, timeout, output) -> None:
    """In which order to change hosts and guest CPUs so that no running guest is stranded
    or left unprotected on a host it may reach."""
    def go() -> int:
        from cpusolve.api import load_pool, with_requirements
        from cpusolve.inputs.guests_file import read_guests
        from cpusolve.planning.rollout import rollout
        from cpusolve.writers.rollout import render_rollout

        p = load_pool(pool)
        p.requirements = with_requirements(p.requirements, policy=policy)
        result = rollout(p, read_guests(guests, p), list(changes), timeout)
        write_atomic(render_rollout(result, fmt), output)
        return result.exit_code

    run(go)


@main.command("verdict")
@click.argument("cpu", metavar="CPU")
@click.option("--kernel", default="6.1", show_default=True, help="Guest Linux rule table (6.1 or 6.12).")
@format_option("text", "json")
def verdict_cmd(cpu, kernel, fmt) -> None:
    """What a Linux guest concludes about each CPU bug on CPU.

    CPU is a QEMU -cpu string ('Westmere-v1', 'Skylake-Server-v4,+md-clear,-arch-capabilities')
    or a libvirt XML file with a <cpu> element.
    """
    def go() -> int:
        from cpusolve.api import verdict
        from cpusolve.writers.verdict import render_verdicts

        write_atomic(render_verdicts(verdict(cpu, kernel), fmt), None)
        return 0

    run(go)


if __name__ == "__main__":
    main()
