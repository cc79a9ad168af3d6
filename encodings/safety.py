"""What a guest CPU must show so that its kernel mitigates every bug of every host it may reach.

The obligations are expressions in the rule-table grammar over the *guest* CPU, so the
optimizer (Z3 interpreter) and the checker (concrete interpreter) read the same facts:

* rule 2, ``truthful``: for every host bug B the guest kernel must conclude it is affected
  by B (for every guest kernel version we model);
* rule 3, ``mechanism`` (policy strict): the guest gets the CPU mechanism B's mitigation
  needs (``spec-ctrl``, ``ssbd``, ``md-clear``...);
* ``hint``: where every host can set RSBA and one suffers it, the guest sees RSBA (Xen's
  guest policy: a guest must see RSBA whenever a server it may run on suffers it).
"""

from __future__ import annotations

from dataclasses import dataclass

from cpusolve.encodings.rules import load_rules


@dataclass(frozen=True)
class Obligation:
    kind: str  # "truthful" | "mechanism" | "hint"
    bug: str | None
    kernel: str  # rule table used to read ``expr``
    expr: object  # rule-grammar expression over the guest CPU that must hold
    #: indexes of the domain's host types that cause this obligation
    causes: tuple[int, ...]

    def describe(self) -> str:
        if self.kind == "truthful":
            return f"a Linux {self.kernel} guest must see itself affected by {self.bug}"
        if self.kind == "mechanism":
            return f"the guest needs {mechanism_text(self.expr)} to mitigate {self.bug}"
        return "the guest must see rsba (a host suffers RSBA and every host can say so)"


def mechanism_text(expr) -> str:
    alts = [" + ".join(a["feature"] for a in alt["all"]) for alt in expr["any"]]
    return " or ".join(alts) if alts else "a mechanism no feature provides"


def obligations(vendor: str, types, kernels, policy: str, waive) -> list[Obligation]:
    """Every obligation a guest of this domain has, in a stable order."""
    out: list[Obligation] = []
    bugs: dict[str, list[int]] = {}
    for i, facts in enumerate(types):
        for bug in facts.bugs:
            bugs.setdefault(bug, []).append(i)
    for bug in sorted(bugs):
        if bug in waive:
            continue
        causes = tuple(bugs[bug])
        for kernel in kernels:
            table = load_rules(kernel)
            if bug not in table.bug_rules or table.scope(bug) != "guest":
                continue
            out.append(Obligation("truthful", bug, kernel, {"bug": bug}, causes))
        if policy == "strict":
            table = load_rules(kernels[-1])
            if bug in table.bug_rules:
                alts = table.mechanisms(bug, vendor)
                # An empty alternative means the kernel mitigates in software alone.
                if alts and all(alts):
                    expr = {"any": [{"all": [{"feature": f} for f in alt]} for alt in alts]}
                    out.append(Obligation("mechanism", bug, kernels[-1], expr, causes))
    suffer = tuple(i for i, f in enumerate(types) if "rsba" in f.features)
    if suffer and len(suffer) == len(types):
        out.append(Obligation("hint", None, kernels[-1], {"feature": "rsba"}, suffer))
    return out
