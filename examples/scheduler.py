"""A Nova-style placement loop on cpusolve's public API.

A scheduler keeps a Planner over its fleet.  When a VM is created it gets the guest CPU
of the domain of the host it lands on; a host filter then only admits hosts a running VM's
CPU can safely run on (check), and live migration targets come from targets().  Run it:

    python examples/scheduler.py examples/intel-rack.json
"""

from __future__ import annotations

import sys

from cpusolve import Planner, check, load_pool, qemu_cpu_arg, targets


def cpu_for_new_vm(planner: Planner, host: str) -> str:
    """The -cpu argument a VM started on ``host`` must get (its migration domain's answer)."""
    answer = planner.domain_of(host)
    if answer.guest is None:
        raise RuntimeError(f"no safe guest CPU for VMs on {host}: {answer.conflicts[0].text}")
    return qemu_cpu_arg(answer.guest)


def host_filter(cpu: str, candidates: list[str], planner: Planner) -> list[str]:
    """Nova's HostFilter contract: keep the hosts this VM's CPU may run on, safely."""
    return [h for h in candidates if check(cpu, planner.host(h), reasons=False).ok]


def main(path: str) -> int:
    planner = Planner(load_pool(path))
    first = sorted(planner.pool.hosts)[0]
    cpu = cpu_for_new_vm(planner, first)
    print(f"new VM on {first}: -cpu {cpu}")
    print(f"  may live-migrate to: {', '.join(targets(cpu, planner.pool))}")
    # The fleet grows: an Ice Lake rack joins the first host's cluster.  Only the changed
    # domain is re-solved; the running VM keeps its CPU and the filter says where it fits.
    planner.add_host("icx-new", {"cpu": "Icelake-Server-v7", "count": 8,
                                 "add": ["md-clear", "flush-l1d", "ssbd", "stibp"]}, peers=[first])
    print(f"after adding icx-new: new VMs on {first} get -cpu {cpu_for_new_vm(planner, first)}")
    print(f"  running VM may go to: {', '.join(host_filter(cpu, sorted(planner.pool.hosts), planner))}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "examples/intel-rack.json"))
