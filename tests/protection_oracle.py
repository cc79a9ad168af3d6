"""Independent oracle for cpusolve's protection question.

Given a guest CPU (what KVM/QEMU shows the guest kernel) and a host (the real
silicon, its microcode bits, the bugs the host's own bare-metal kernel sets, the
host kernel/KVM version, TSX and SMT state), answer:

* :func:`guest_actions` -- which mitigations the Debian guest kernel (6.1.192 or
  6.12.117, default command line, Debian config) selects at boot under KVM;
* :func:`protected` -- whether those actions protect the guest kernel and its
  processes from the guest's own user space on that host, per bug;
* :func:`attempted` -- whether the guest at least runs the right *kind* of
  mitigation for the bug (even if the host makes it ineffective).

Written from the kernel sources in /work/scratch/linux (Debian linux-source 6.1
and 6.12) and their Documentation/admin-guide/hw-vuln/*.rst.  Citations are
``file:function:line`` against the 6.12 tree unless marked "6.1:" (then against
the 6.1 tree).  Paths are relative to the source root.

Only one thing comes from the product: the guest's X86_BUG_* bits
(``cpusolve.encodings.rules``, validated against real boots); nothing else.
No protection/action/provision/safety tables are read or imported.

Assumptions
===========
A1  Default command line, Debian config (both kernels): CONFIG_*_MITIGATION /
    CPU_* options all =y incl. UNRET_ENTRY, IBPB_ENTRY, IBRS_ENTRY, SRSO, RETHUNK,
    RETPOLINE, PAGE_TABLE_ISOLATION, SPECTRE_BHI, ITS, TSA, RFDS;
    X86_INTEL_TSX_MODE_OFF=y; BPF_UNPRIV_DEFAULT_OFF=y (so the "eIBRS with
    unprivileged eBPF" state never arises); CONFIG_SMP=y; 64-bit.  So retbleed on
    AMD always picks UNRET (never IBPB-on-entry), spectre_v2 "auto" never picks
    LFENCE retpolines, retbleed/ITS "stuff" (call depth tracking) is never chosen.
A2  The guest's vCPU topology decides cpu_smt_control (6.1 on AMD/Hygon only with
    topoext shown, see _select): threads==1 ->
    CPU_SMT_NOT_SUPPORTED (kernel/cpu.c:cpu_smt_set_num_threads:628; 6.1:
    kernel/cpu.c:cpu_smt_check_topology:436), so STIBP is not selected and
    cpu_smt_possible() is false; threads>=2 -> sched_smt_active() true.
A3  IA32_ARCH_CAPABILITIES bits (and "msr10a:<n>") count for the guest only when
    it is shown "arch-capabilities" (QEMU clears FEAT_ARCH_CAPABILITIES with the
    CPUID bit, and KVM's vcpu->arch.arch_capabilities is what QEMU wrote).  The
    host's silicon bits are taken as real (no gating).
A4  Guest and host vendor are the same; otherwise every answer is None (KVM
    cross-vendor guests are not a supported configuration).
A5  Guest-visible mechanisms work on the host iff the host silicon has them
    (QEMU filters features the host lacks; a hand-made guest that shows a
    mechanism the host lacks is treated as getting no effect from it).
    AMD "virt-ssbd" is emulated by KVM from whatever SSBD the host has, taken as
    always available on an SSB-affected AMD host.
A6  "Protected" follows Linux's own notion of "Mitigation: ..." where Linux
    accepts opt-in or SMT-residual exposure: SSB via prctl, conditional IBPB /
    conditional STIBP for user->user spectre_v2 (prctl opt-in), MDS/TAA/MMIO
    cross-thread ("SMT vulnerable") are all accepted.  Spectre_v2 protection is
    the kernel-side protection (BTI, BHI, RSB on context switch); the opt-in
    STIBP that a guest without SMT topology does not set up is NOT counted
    against it (it is opt-in even with SMT).
A7  The SMT rule of the brief applies to *default-on* mitigations a guest skips
    because it believes there is no SMT while host.smt is true:
      - retbleed on Zen1/2 (always-on STIBP complementing UNRET),
      - SRSO_NO on Zen1/2 (srso_select_mitigation: x86 < 0x19 && !cpu_smt_possible()),
      - TSA-SQ idle buffer clearing (cpu_bugs_smt_update: cpu_buf_idle_clear only
        when sched_smt_active()),
      - MSBDS-only MDS idle clearing (update_mds_branch_idle).
    In each such case the answer is False.
A8  L1TF PTE inversion is effective (guest RAM below MAX_PA/2 of the guest's
    phys-bits; l1tf_select_mitigation's e820 check passes).  Host-side EPT L1TF
    (L1D flush on VM entry) is the host's job.
A9  PTI is enabled whenever the guest has X86_BUG_CPU_MELTDOWN
    (arch/x86/mm/pti.c:pti_check_boottime_disable is not in the extracted tree;
    behaviour taken from bugs.c:cpu_show_common:3366 and the default pti=auto).
A10 __user pointer sanitization (array_index_nospec) and usercopy barriers
    (barrier_nospec) are compiled in unconditionally; both spectre_v1 sysfs
    strings say so (bugs.c spectre_v1_strings:891).
A11 MMIO Stale Data: when the host silicon is also MDS-affected, or TAA-affected
    with TSX usable by this guest, fill-buffer data can be sampled from user space,
    so the guest must VERW on return to user (processor_mmio_stale_data.rst
    "Return to user space: Same mitigation as MDS when affected by MDS/TAA").
    Otherwise Linux's mitigation is the VERW it uses for MMIO (idle clear when
    !FBSDP_NO, VMM clear), which must actually clear fill buffers: the guest must
    have selected the MMIO mitigation (X86_BUG_MMIO_STALE_DATA set, not
    MMIO_UNKNOWN) and VERW must clear on this host for this guest (host FB_CLEAR,
    or MD_CLEAR+FLUSH_L1D on non-MDS_NO silicon; and KVM did not set FB_CLEAR_DIS).
    Linux's own doc says return-to-user VERW is not needed there; the oracle
    follows the mitigation Linux deploys (see NOTES.md, unsure #1).
A12 SRSO: Safe-RET protects the kernel only if the sequence matches the silicon
    generation (srso_alias_* for family 0x19 silicon, srso_untrain_ret /
    srso_safe_ret for 0x17/0x18); user->user additionally needs the host's
    IBPB-extending microcode (srso.rst: "Vulnerable: Safe RET, no microcode").
    Host microcode = "ibpb-brtype" in silicon, or family 0x17 with "ibpb"
    (amd.c:init_amd:674-676), or family >= 0x19 with "sbpb" (amd.c:677-679).
    The 6.1 guest's SBPB probe (6.1: amd.c:cpu_has_ibpb_brtype_microcode:1416)
    only matters for family 0x19 where it cannot lead to SRSO_NO, so guest
    actions do not depend on it.
A13 TSX: host.tsx == "off" means no transaction can commit on that host for any
    guest.  With TSX on, a guest can run transactions unless KVM loads
    TSX_CTRL.RTM_DISABLE for it: host has TSX_CTRL and the guest is not shown
    "rtm" (vmx.c:vmx_vcpu_after_set_cpuid:7865-7871; 6.1: vmx.c:7739-7745), or
    the guest is shown tsx-ctrl and its own tsx=off default writes RTM_DISABLE
    (tsx.c:tsx_init:158,219; vmx.c:vmx_set_msr MSR_IA32_TSX_CTRL:2364).  RTM_DISABLE
    is taken to also neutralise HLE (HLE elision is not a TSX_CTRL-era feature).
    Without TSX_CTRL, hiding "rtm" in CPUID does not stop XBEGIN.
A14 The BHB clearing loop is only a BHI mitigation on pre-Alder-Lake silicon; on
    silicon with BHI_CTRL ("bhi-ctrl") only BHI_DIS_S works
    (arch/x86/entry/entry_64.S:clear_bhb_loop comment:1507).
A15 Retpoline with IBRS off on Intel eIBRS silicon ("ibrs-all") is not a
    spectre_v2 mitigation (RET predictions may come from the BTB: bugs.c
    spectre_v2_select_mitigation comment:2009 "RET prediction from a non-RSB
    predictor is still a risk"; the guest cannot see/disable it), whatever
    RRSBA_DIS_S the guest sets.  Legacy IBRS (KERNEL_IBRS) on eIBRS silicon works.
A16 Host-only bugs: itlb_multihit (KVM split huge pages), srbds and
    gather_data_sampling (MCU_OPT_CTRL microcode controls the guest cannot touch;
    the guest reports "Unknown: Dependent on hypervisor status",
    bugs.c:srbds_select_mitigation:683, gds_select_mitigation:816), vmscape
    (host IBPB before exit to user space; never set in guests,
    common.c:cpu_set_bug_bits "Set the bug only on bare-metal"): protected() and
    attempted() return True -- nothing of the guest's to check.
A17 A bug the host does not have is protected (True) whatever the guest does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

INTEL = "GenuineIntel"
AMD_VENDORS = ("AuthenticAMD", "HygonGenuine")

ACTIONS = (
    "verw_user", "pti", "pte_inversion", "retpoline", "retpoline_lfence", "ibrs_entry", "eibrs",
    "ibpb_ctxsw", "stibp", "untrained_ret", "ibpb_entry", "srso_safe_ret", "srso_alias",
    "bhb_clear_loop", "bhi_dis_s", "ssbd", "its_thunks", "swapgs_fences", "usercopy_barriers",
    "call_depth_tracking",
)

HOST_ONLY_BUGS = ("itlb_multihit", "srbds", "gather_data_sampling", "vmscape")
GUEST_BUGS = (
    "mds", "tsx_async_abort", "mmio_stale_data", "reg_file_data_sampling", "tsa", "spectre_v2",
    "retbleed", "spec_rstack_overflow", "spec_store_bypass", "meltdown", "l1tf", "spectre_v1",
    "indirect_target_selection",
)
INTERNAL_BUGS = ("MSBDS_ONLY", "SWAPGS", "BHI", "EIBRS_PBRSB", "SMT_RSB", "MMIO_UNKNOWN",
                 "ITS_NATIVE_ONLY", "IBPB_NO_RET")

#: IA32_ARCH_CAPABILITIES bits by canonical QEMU name (arch/x86/include/asm/msr-index.h).
ARCH_CAP_NAMES = frozenset({
    "rdctl-no", "ibrs-all", "rsba", "skip-l1dfl-vmentry", "ssb-no", "mds-no", "pschange-mc-no",
    "tsx-ctrl", "taa-no", "sbdr-ssdp-no", "fbsdp-no", "psdp-no", "fb-clear", "bhi-no", "pbrsb-no",
    "gds-no", "rfds-no", "rfds-clear", "its-no",
})
RRSBA = "msr10a:19"          # ARCH_CAP_RRSBA
FB_CLEAR_CTRL = "msr10a:18"  # ARCH_CAP_FB_CLEAR_CTRL


@dataclass(frozen=True)
class Host:
    vendor: str
    family: int
    model: int
    stepping: int
    silicon: frozenset[str]
    bugs: frozenset[str]
    kernel: str
    tsx: str
    smt: bool


@dataclass(frozen=True)
class Guest:
    vendor: str
    family: int
    model: int
    stepping: int
    features: frozenset[str]
    smt: bool


def norm_kernel(kernel: str) -> str:
    k = str(kernel).strip()
    for known in ("6.12", "6.1"):
        if k == known or k.startswith(known + "."):
            return known
    raise ValueError(f"unknown kernel {kernel!r} (known: 6.1, 6.12)")


# --------------------------------------------------------------------------------------
# The guest's bug bits: the only thing taken from the product (rule tables validated
# against real boots).
# --------------------------------------------------------------------------------------
@lru_cache(maxsize=4096)
def guest_bugs(guest: Guest, kernel: str) -> dict[str, bool]:
    """X86_BUG_* bits of the guest kernel (sysfs names + internal names)."""
    from cpusolve.encodings.expr import Ref, fold
    from cpusolve.encodings.rules import Concrete, CpuView, load_rules

    table = load_rules(norm_kernel(kernel))
    view = CpuView(guest.vendor, guest.family, guest.model, guest.stepping, frozenset(guest.features), True)
    out = dict(table.affected(view))
    ops = Concrete(table, view)
    for name in INTERNAL_BUGS:
        try:
            out[name] = bool(fold(Ref("bug", name), ops))
        except KeyError:
            out[name] = False
    return out


def _shown(features: frozenset[str], name: str) -> bool:
    """Whether the guest kernel reads ``name`` as set (A3: MSR 0x10a bits need the
    arch-capabilities CPUID bit, common.c:x86_read_arch_cap_msr)."""
    if name not in features:
        return False
    if name in ARCH_CAP_NAMES or name.startswith("msr10a:"):
        return "arch-capabilities" in features
    return True


# --------------------------------------------------------------------------------------
# What the guest kernel selects
# --------------------------------------------------------------------------------------
@dataclass
class Selection:
    kernel: str
    bugs: dict
    intel: bool
    amd: bool
    # spectre_v2 (bugs.c:spectre_v2_select_mitigation:1905)
    v2_mode: str = "none"           # none | retpoline | ibrs | eibrs
    rrsba_disabled: bool = False     # bugs.c:spec_ctrl_disable_kernel_rrsba:1743
    rrsba_dis_s: bool = False
    bhi: str = "none"                # none | retpoline | dis_s | loop
    # retbleed (bugs.c:retbleed_select_mitigation:1057)
    retbleed: str = "none"           # none | unret | ibpb | ibrs | eibrs
    # spectre_v2_user (bugs.c:spectre_v2_user_select_mitigation:1511)
    ibpb_ctxsw: bool = False
    stibp: str = "none"              # none | cond | strict
    # SRSO (bugs.c:srso_select_mitigation:2814; 6.1: 2738)
    srso: str = "none"               # none | srso_no | safe_ret | alias | ibpb | ibpb_vmexit
    untrain: str = "none"            # none | retbleed | srso_zen12 | alias  (entry untraining)
    # VERW users
    clear_cpu_buf: bool = False      # X86_FEATURE_CLEAR_CPU_BUF: VERW on return to user
    verw_sources: tuple = ()
    mds_idle_clear: bool = False     # update_mds_branch_idle (MSBDS_ONLY + SMT)
    mmio_on: bool = False            # mmio_mitigation != OFF
    mmio_ucode_ok: bool = False      # MMIO_MITIGATION_VERW vs UCODE_NEEDED (text only)
    mmio_idle_clear: bool = False
    rfds_state: str = "none"         # none | verw | ucode_needed
    tsa_on: bool = False
    tsa_idle_clear: bool = False
    taa_state: str = "none"          # none | verw | tsx_disabled
    guest_tsx_disabled: bool = False  # guest's own tsx=off via TSX_CTRL
    rtm_after_tsx_init: bool = False
    # the rest
    pti: bool = False
    pte_inversion: bool = False
    fence_kernel: bool = False
    fence_user: bool = False
    ssbd: bool = False
    ssbd_mech: tuple = ()
    its: bool = False
    actions: frozenset = field(default_factory=frozenset)


def _freeze_guest(guest) -> Guest:
    """A hashable Guest (the test may hand in sets, or its own Guest-like class)."""
    return Guest(guest.vendor, int(guest.family), int(guest.model), int(guest.stepping),
                 frozenset(guest.features), bool(guest.smt))


def _freeze_host(host) -> Host:
    bugs = set(host.bugs)
    bugs |= {b.upper() for b in host.bugs if b.upper() in INTERNAL_BUGS}
    return Host(host.vendor, int(host.family), int(host.model), int(host.stepping),
                frozenset(host.silicon), frozenset(bugs), norm_kernel(host.kernel),
                "on" if str(host.tsx).strip().lower() == "on" else "off", bool(host.smt))


def select(guest, kernel: str) -> Selection:
    """What the guest kernel selects (see :class:`Selection`)."""
    return _select(_freeze_guest(guest), norm_kernel(kernel))


@lru_cache(maxsize=4096)
def _select(guest: Guest, kernel: str) -> Selection:
    k = norm_kernel(kernel)
    f = frozenset(guest.features)
    b = guest_bugs(guest, k)
    intel = guest.vendor == INTEL
    amd = guest.vendor in AMD_VENDORS
    s = Selection(kernel=k, bugs=b, intel=intel, amd=amd)

    def has(name: str) -> bool:
        return _shown(f, name)

    # common.c:init_speculation_control:936 (6.1: 970) -- synthetic flags.
    feat_ibrs = has("spec-ctrl") or has("ibrs")
    feat_ibpb = has("spec-ctrl") or has("ibpb")
    feat_stibp = has("stibp") or has("amd-stibp")
    ssbd_mech = tuple(m for m in ("ssbd", "virt-ssbd", "amd-ssbd") if has(m))
    feat_ssbd = bool(ssbd_mech)
    # common.c:cpu_set_bug_bits:1405-1408: ARCH_CAP_IBRS_ALL or AutoIBRS -> IBRS_ENHANCED.
    feat_autoibrs = has("auto-ibrs")
    feat_eibrs = has("ibrs-all") or feat_autoibrs
    smt_possible = bool(guest.smt)  # A2
    if kernel == "6.1" and guest.vendor in ("AuthenticAMD", "HygonGenuine") and not has("topoext"):
        # A2 (6.1): smp_num_siblings comes only from leaf 0x8000001E on AMD/Hygon
        # (amd.c amd_get_topology(), topoext), so without topoext the kernel sees no SMT
        # (smt/control "notsupported"; seen in the recorded 6.1 boots with threads=2).
        smt_possible = False

    # tsx.c:tsx_init:158: TSX_CTRL present -> Debian's TSX_MODE_OFF disables TSX and
    # clears RTM/HLE (tsx.c:212-224).  Without TSX_CTRL the RTM bit stays as shown.
    s.guest_tsx_disabled = has("tsx-ctrl")
    s.rtm_after_tsx_init = has("rtm") and not s.guest_tsx_disabled

    # ---- spectre_v1 (bugs.c:spectre_v1_select_mitigation:926; 6.1: 923) ----
    s.pti = b.get("meltdown", False)  # A9
    if b.get("spectre_v1", False):
        # smap_works_speculatively:909: SMAP and not X86_BUG_CPU_MELTDOWN
        smap_ok = has("smap") and not b.get("meltdown", False)
        if has("fsgsbase") or not smap_ok:
            s.fence_kernel = True                                      # bugs.c:965
            s.fence_user = b.get("SWAPGS", False) and not s.pti        # bugs.c:956-958

    # ---- spectre_v2 (bugs.c:spectre_v2_select_mitigation:1905; 6.1: 1840) ----
    if b.get("spectre_v2", False):
        if feat_eibrs:
            s.v2_mode = "eibrs"                                        # bugs.c:1924-1926
        elif b.get("retbleed", False) and feat_ibrs and intel:
            s.v2_mode = "ibrs"                                         # bugs.c:1929-1936 (IBRS_ENTRY=y)
        else:
            s.v2_mode = "retpoline"                                    # spectre_v2_select_retpoline
        # bugs.c:2010-2014: RETPOLINE -> spec_ctrl_disable_kernel_rrsba():1743
        if s.v2_mode == "retpoline":
            if not has(RRSBA):
                s.rrsba_disabled = True                                # bugs.c:1748-1751
            elif has("rrsba-ctrl"):
                s.rrsba_dis_s = True
                s.rrsba_disabled = True                                # bugs.c:1753-1758
        # bugs.c:2016-2017 -> bhi_select_mitigation:1854 (6.1: 1791)
        if b.get("BHI", False):
            if s.v2_mode == "retpoline" and s.rrsba_disabled:
                s.bhi = "retpoline"                                    # bugs.c:1859-1864
            elif has("bhi-ctrl"):
                s.bhi = "dis_s"                                        # spec_ctrl_bhi_dis
            else:
                s.bhi = "loop"                                         # bugs.c:1879-1881; 6.1: 1815

    # ---- retbleed (bugs.c:retbleed_select_mitigation:1057; 6.1: 1048) ----
    if b.get("retbleed", False):
        if amd:
            s.retbleed = "unret"                                       # bugs.c:1105-1109 (UNRET_ENTRY=y)
        if intel:                                                      # bugs.c:1179-1196
            s.retbleed = {"ibrs": "ibrs", "eibrs": "eibrs"}.get(s.v2_mode, "none")

    # ---- spectre_v2_user (bugs.c:spectre_v2_user_select_mitigation:1511; 6.1: 1452) ----
    # spectre_v2_cmd is only set when spectre_v2_select_mitigation got past its early
    # return (bug bit set), otherwise it stays SPECTRE_V2_CMD_NONE -> user cmd NONE.
    if b.get("spectre_v2", False) and (feat_ibpb or feat_stibp):
        if feat_ibpb:
            s.ibpb_ctxsw = True                                        # bugs.c:1559-1562 (conditional)
        if feat_stibp and smt_possible and not (s.v2_mode == "eibrs" and not feat_autoibrs):
            strict = has("stibp-always-on") or s.retbleed in ("unret", "ibpb")  # bugs.c:1592-1604
            s.stibp = "strict" if strict else "cond"

    # ---- SSB (bugs.c:__ssb_select_mitigation:2315): auto -> prctl ----
    if feat_ssbd and b.get("spec_store_bypass", False):
        s.ssbd = True
        s.ssbd_mech = ssbd_mech

    # ---- L1TF (bugs.c:l1tf_select_mitigation:2682; A8) ----
    s.pte_inversion = b.get("l1tf", False)

    # ---- MDS / TAA / MMIO / RFDS (bugs.c:md_clear_select_mitigation:607) ----
    verw = []
    if b.get("mds", False):
        verw.append("mds")                                             # bugs.c:279
        if b.get("MSBDS_ONLY", False) and smt_possible:
            s.mds_idle_clear = True                                    # update_mds_branch_idle
    if b.get("tsx_async_abort", False):
        if not s.rtm_after_tsx_init:
            s.taa_state = "tsx_disabled"                               # bugs.c:taa_select_mitigation:337-341
        else:
            s.taa_state = "verw"
            verw.append("taa")                                         # bugs.c:381
    if b.get("mmio_stale_data", False) and not b.get("MMIO_UNKNOWN", False):
        s.mmio_on = True
        if b.get("mds", False) or (b.get("tsx_async_abort", False) and s.rtm_after_tsx_init):
            verw.append("mmio")                                        # bugs.c:443-446
        s.mmio_idle_clear = not has("fbsdp-no")                        # bugs.c:462-463
        s.mmio_ucode_ok = has("fb-clear") or (has("md-clear") and has("flush-l1d") and not has("mds-no"))
    if b.get("reg_file_data_sampling", False):
        if has("rfds-clear"):
            s.rfds_state = "verw"
            verw.append("rfds")                                        # bugs.c:533-534
        else:
            s.rfds_state = "ucode_needed"
    # ---- TSA (bugs.c:tsa_select_mitigation:2203; 6.1: 2137): in a VM even without
    # VERW_CLEAR the mitigation is forced on (UCODE_NEEDED falls through to FULL).
    if b.get("tsa", False):
        s.tsa_on = True
        verw.append("tsa")                                             # bugs.c:2238
        s.tsa_idle_clear = smt_possible                                # cpu_bugs_smt_update:3076-3083
    s.verw_sources = tuple(verw)
    s.clear_cpu_buf = bool(verw)

    # ---- SRSO (bugs.c:srso_select_mitigation:2814; 6.1: 2738) ----
    if b.get("spec_rstack_overflow", False):
        if k == "6.12":
            has_mc = has("ibpb-brtype")                                # bugs.c:2816
        else:
            # 6.1: bugs.c:2749 + amd.c:cpu_has_ibpb_brtype_microcode:1416 (family 0x19 SBPB
            # probe ignored, A12: it cannot lead to SRSO_NO)
            has_mc = has("ibpb-brtype") or (guest.family == 0x17 and has("ibpb"))
        if has_mc and guest.family < 0x19 and not smt_possible:
            s.srso = "srso_no"                                         # bugs.c:2833-2836; 6.1: 2764-2767
        elif has_mc and s.retbleed == "ibpb":
            s.srso = "ibpb"                                            # never with A1
        elif k == "6.12" and has("srso-user-kernel-no"):
            s.srso = "ibpb_vmexit"                                     # bugs.c:2859-2860
        else:
            s.srso = "alias" if guest.family == 0x19 else "safe_ret"   # bugs.c:2870-2876; 6.1: 2798-2804

    # Entry untraining actually executed (nospec-branch.h:CALL_UNTRAIN_RET:319, 6.1: 177;
    # retpoline.S:entry_untrain_ret:348, 6.1: 335): SRSO_ALIAS wins over UNRET, and
    # entry_untrain_ret picks srso_untrain_ret when X86_FEATURE_SRSO.
    if s.srso == "alias":
        s.untrain = "alias"
    elif s.srso == "safe_ret":
        s.untrain = "srso_zen12"
    elif s.retbleed == "unret":
        s.untrain = "retbleed"

    # ---- ITS (bugs.c:its_select_mitigation:1258; 6.1: 1220) ----
    if b.get("indirect_target_selection", False) and s.v2_mode != "none":
        s.its = True                                                   # bugs.c:1316-1322

    acts = {"usercopy_barriers"}                                       # A10
    if s.clear_cpu_buf:
        acts.add("verw_user")
    if s.pti:
        acts.add("pti")
    if s.pte_inversion:
        acts.add("pte_inversion")
    if s.v2_mode == "retpoline":
        acts.add("retpoline")
    elif s.v2_mode == "ibrs":
        acts.add("ibrs_entry")
    elif s.v2_mode == "eibrs":
        acts.add("eibrs")
    if s.ibpb_ctxsw:
        acts.add("ibpb_ctxsw")
    if s.stibp != "none":
        acts.add("stibp")
    if s.retbleed == "unret":
        acts.add("untrained_ret")
    if s.retbleed == "ibpb" or s.srso == "ibpb":
        acts.add("ibpb_entry")
    if s.srso == "safe_ret":
        acts.add("srso_safe_ret")
    if s.srso == "alias":
        acts.add("srso_alias")
    if s.bhi == "loop":
        acts.add("bhb_clear_loop")
    if s.bhi == "dis_s":
        acts.add("bhi_dis_s")
    if s.ssbd:
        acts.add("ssbd")
    if s.its:
        acts.add("its_thunks")
    if s.fence_kernel or s.fence_user:
        acts.add("swapgs_fences")
    s.actions = frozenset(acts)
    return s


def guest_actions(guest: Guest, kernel: str) -> frozenset[str]:
    """The mitigation actions the guest kernel selects at boot under KVM."""
    return select(guest, kernel).actions


# --------------------------------------------------------------------------------------
# The host side
# --------------------------------------------------------------------------------------
def _host_clear_cpu_buf(h: Host) -> bool:
    """The host kernel's own X86_FEATURE_CLEAR_CPU_BUF (same selection as above, on
    bare metal; TAA with RTM means tsx on; RFDS needs RFDS_CLEAR)."""
    bugs, sil = h.bugs, h.silicon
    return ("mds" in bugs or ("tsx_async_abort" in bugs and h.tsx == "on")
            or ("reg_file_data_sampling" in bugs and "rfds-clear" in sil)
            or "tsa" in bugs)


def fb_clear_disabled(h: Host, g: Guest) -> bool:
    """KVM sets FB_CLEAR_DIS around this guest's execution.

    vmx.c:vmx_update_fb_clear_dis:400-427 (6.1: vmx.c:412-429 with
    vmx_setup_fb_clear_ctrl:376-387): host CLEAR_CPU_BUF off, host FB_CLEAR_CTRL,
    host neither MDS nor TAA; unless the guest's ARCH_CAPABILITIES show FB_CLEAR or
    all of MDS_NO, TAA_NO, PSDP_NO, FBSDP_NO, SBDR_SSDP_NO.
    """
    if h.vendor != INTEL:
        return False
    if _host_clear_cpu_buf(h):
        return False
    if FB_CLEAR_CTRL not in h.silicon:
        return False
    if "mds" in h.bugs or "tsx_async_abort" in h.bugs:
        return False
    f = frozenset(g.features)
    if _shown(f, "fb-clear"):
        return False
    if all(_shown(f, n) for n in ("mds-no", "taa-no", "psdp-no", "fbsdp-no", "sbdr-ssdp-no")):
        return False
    return True


def host_verw_clears_fill_buffers(h: Host) -> bool:
    """processor_mmio_stale_data.rst "Bit 17 - FB_CLEAR": explicit FB_CLEAR, or MD_CLEAR
    plus L1D_FLUSH on MDS-affected (not MDS_NO) parts (bugs.c:mmio_select_mitigation:472-477)."""
    s = h.silicon
    return "fb-clear" in s or ("md-clear" in s and "flush-l1d" in s and "mds-no" not in s)


def host_verw_clears_for_taa(h: Host) -> bool:
    """tsx_async_abort.rst status table: MDS_NO=0 & MD_CLEAR=1 -> VERW works;
    MDS_NO=1 needs the TSX_CTRL microcode (bugs.c:taa_select_mitigation:370-372)."""
    s = h.silicon
    if "mds-no" in s:
        return "tsx-ctrl" in s
    return "md-clear" in s


def guest_can_run_tsx(h: Host, g: Guest, sel: Selection) -> bool:
    """A13."""
    if h.tsx != "on":
        return False
    if "tsx-ctrl" in h.silicon:
        f = frozenset(g.features)
        if "rtm" not in f:
            return False     # vmx.c:7865-7871: RTM_DISABLE loaded for an RTM-less guest
        if sel.guest_tsx_disabled:
            return False     # the guest's own tsx=off (tsx.c:tsx_disable) reaches hardware
    return True


def host_ibpb_brtype_microcode(h: Host) -> bool:
    """A12: amd.c:init_amd:674-679 (6.12), 6.1: amd.c:cpu_has_ibpb_brtype_microcode:1416."""
    s = h.silicon
    if "ibpb-brtype" in s:
        return True
    if h.family == 0x17 and "ibpb" in s:
        return True
    if h.family >= 0x19 and "sbpb" in s:
        return True
    return False


def _srso_generation(family: int) -> str | None:
    """Which safe-RET sequence the silicon needs (srso.rst "Mitigation: Safe RET";
    retpoline.S:144-156 alias for Zen3/4, :201-245 srso_untrain_ret for Zen1/2)."""
    if family == 0x19:
        return "alias"
    if family in (0x17, 0x18):
        return "safe_ret"
    return None


# --------------------------------------------------------------------------------------
# Protection per bug
# --------------------------------------------------------------------------------------
def _check(guest, kernel: str, host):
    guest, host = _freeze_guest(guest), _freeze_host(host)
    if guest.vendor != host.vendor:
        return None, guest, host  # A4
    return select(guest, kernel), guest, host


def protected(guest: Guest, kernel: str, host: Host, bug: str) -> bool | None:
    """True: the guest kernel's actions protect against ``bug`` on ``host`` (module
    docstring, threat model and Assumptions); False: not protected; None: unsettled."""
    sel, guest, host = _check(guest, kernel, host)
    if sel is None:
        return None
    if bug in HOST_ONLY_BUGS:
        return True  # A16
    if bug not in GUEST_BUGS:
        return None
    if bug not in host.bugs:
        return True  # A17
    fn = _PROTECT[bug]
    return fn(guest, sel, host)


def attempted(guest: Guest, kernel: str, host: Host, bug: str) -> bool:
    """The guest runs the right kind of mitigation for ``bug`` (even if this host's
    microcode, KVM or silicon generation makes it ineffective)."""
    sel, guest, host = _check(guest, kernel, host)
    if sel is None:
        return False
    if bug in HOST_ONLY_BUGS:
        return True  # A16
    a = sel.actions
    if bug == "mds":
        return "verw_user" in a
    if bug == "tsx_async_abort":
        return "verw_user" in a or sel.guest_tsx_disabled
    if bug == "mmio_stale_data":
        return "verw_user" in a or sel.mmio_on
    if bug in ("reg_file_data_sampling", "tsa"):
        return "verw_user" in a
    if bug == "spectre_v2":
        return bool(a & {"retpoline", "retpoline_lfence", "ibrs_entry", "eibrs"})
    if bug == "retbleed":
        if host.vendor == INTEL:
            return bool(a & {"ibrs_entry", "eibrs", "call_depth_tracking"})
        return bool(a & {"untrained_ret", "ibpb_entry", "srso_safe_ret", "srso_alias"})
    if bug == "spec_rstack_overflow":
        return bool(a & {"srso_safe_ret", "srso_alias", "ibpb_entry"})
    if bug == "spec_store_bypass":
        return "ssbd" in a
    if bug == "meltdown":
        return "pti" in a
    if bug == "l1tf":
        return "pte_inversion" in a
    if bug == "spectre_v1":
        return "usercopy_barriers" in a
    if bug == "indirect_target_selection":
        return bool(a & {"its_thunks", "call_depth_tracking"})
    return False


# --- MDS --------------------------------------------------------------------------------
def _p_mds(g: Guest, sel: Selection, h: Host) -> bool:
    # mds.rst / bugs.c:mds_select_mitigation:268: VERW on return to user clears the
    # buffers only with MD_CLEAR microcode on the host.  Any CLEAR_CPU_BUF source does it
    # (the same VERW on exit to user); the guest's own md-clear bit only changes text.
    if not sel.clear_cpu_buf or "md-clear" not in h.silicon:
        return False
    # MSBDS-only silicon: the idle clear makes SMT safe (update_mds_branch_idle); a guest
    # without SMT topology skips it on an SMT host (A7).
    if "MSBDS_ONLY" in h.bugs and h.smt and not sel.mds_idle_clear:
        return False
    return True


# --- TAA --------------------------------------------------------------------------------
def _p_taa(g: Guest, sel: Selection, h: Host) -> bool:
    # tsx_async_abort.rst "Virtualization mitigation": TSX off on the host protects all VMs.
    if not guest_can_run_tsx(h, g, sel):
        return True
    # TSX usable: the guest must VERW on return to user, and VERW must clear for TAA.
    return sel.clear_cpu_buf and host_verw_clears_for_taa(h)


# --- MMIO Stale Data ----------------------------------------------------------------------
def _p_mmio(g: Guest, sel: Selection, h: Host) -> bool:
    eff = host_verw_clears_fill_buffers(h) and not fb_clear_disabled(h, g)
    user_sampling = "mds" in h.bugs or ("tsx_async_abort" in h.bugs and guest_can_run_tsx(h, g, sel))
    if user_sampling:
        # A11 first half: same as MDS at the user boundary.
        return sel.clear_cpu_buf and eff
    # A11 second half: the VERW Linux deploys for MMIO must clear fill buffers.
    return sel.mmio_on and eff


# --- RFDS ---------------------------------------------------------------------------------
def _p_rfds(g: Guest, sel: Selection, h: Host) -> bool:
    # reg-file-data-sampling.rst / bugs.c:rfds_select_mitigation:524: VERW clears the
    # register file only with RFDS_CLEAR microcode.
    return sel.clear_cpu_buf and "rfds-clear" in h.silicon


# --- TSA ----------------------------------------------------------------------------------
def _p_tsa(g: Guest, sel: Selection, h: Host) -> bool:
    # bugs.c:tsa_select_mitigation:2203: VERW clears with VERW_CLEAR microcode only.
    if not sel.clear_cpu_buf or "verw-clear" not in h.silicon:
        return False
    # cpu_bugs_smt_update:3076-3083 TSA-SQ idle clearing only when SMT active (A7).
    if h.smt and not sel.tsa_idle_clear:
        return False
    return True


# --- Spectre v2 (incl. BHI) ----------------------------------------------------------------
def _p_spectre_v2(g: Guest, sel: Selection, h: Host) -> bool:
    s = h.silicon
    intel = h.vendor == INTEL
    mode = sel.v2_mode
    if mode == "none":
        return False
    if mode == "eibrs":
        # Intel: SPEC_CTRL.IBRS set once only protects on eIBRS silicon; AMD: EFER.AUTOIBRS.
        if intel and "ibrs-all" not in s:
            return False
        if not intel and "auto-ibrs" not in s:
            return False
    elif mode == "ibrs":
        # Legacy IBRS (KERNEL_IBRS written on every entry) works on legacy and eIBRS silicon.
        if "spec-ctrl" not in s and "ibrs" not in s:
            return False
    elif mode == "retpoline":
        if intel and "ibrs-all" in s:
            return False  # A15
    # BHI (bugs.c:bhi_select_mitigation:1854): host BHI-affected silicon needs BHI_DIS_S,
    # or the SW loop on pre-Alder-Lake silicon (A14).
    if "BHI" in h.bugs:
        if sel.bhi == "dis_s":
            if "bhi-ctrl" not in s:
                return False
        elif sel.bhi == "loop":
            if "bhi-ctrl" in s:
                return False
        elif sel.bhi == "retpoline":
            # Only reachable with retpoline mode; on BHI (eIBRS) silicon A15 already said no.
            if intel and "ibrs-all" in s:
                return False
        else:
            return False
    return True


# --- Retbleed -----------------------------------------------------------------------------
def _p_retbleed(g: Guest, sel: Selection, h: Host) -> bool:
    s = h.silicon
    if h.vendor == INTEL:
        # bugs.c:retbleed_select_mitigation:1179-1196: only IBRS / eIBRS mitigate on Intel.
        if sel.v2_mode == "ibrs":
            return "spec-ctrl" in s or "ibrs" in s
        if sel.v2_mode == "eibrs":
            return "ibrs-all" in s
        return False
    # AMD/Hygon Zen1/2-era silicon (retbleed bug): the untraining must be a Zen1/2 one
    # (retpoline.S:265 "They are interchangeable": retbleed_untrain_ret / srso_untrain_ret);
    # srso_alias_untrain_ret relies on Zen3/4 BTB aliasing (retpoline.S:144-156).
    ok = False
    if "ibpb_entry" in sel.actions and ("ibpb" in s or "spec-ctrl" in s):
        ok = True
    elif sel.untrain in ("retbleed", "srso_zen12") and h.family != 0x19:
        ok = True
    if not ok:
        return False
    # 6.1: retpoline.S:232 "STIBP must be enabled, or SMT disabled, to prevent the sibling
    # thread from re-poisoning the BTB prediction"; STIBP is forced always-on with UNRET
    # (bugs.c:1597-1604) only if the guest has STIBP and SMT topology (A7).
    if h.smt:
        if sel.stibp != "strict":
            return False
        if "amd-stibp" not in s and "stibp" not in s:
            return False
    return True


# --- SRSO ---------------------------------------------------------------------------------
def _p_srso(g: Guest, sel: Selection, h: Host) -> bool:
    s = h.silicon
    if "srso-user-kernel-no" in s:
        return True  # user/kernel boundary not affected on this silicon (srso.rst)
    gen = _srso_generation(h.family)
    mc = host_ibpb_brtype_microcode(h)
    if sel.srso == "srso_no":
        # bugs.c:2828-2836: "Zen1/2 with SMT off aren't vulnerable after the right IBPB
        # microcode has been applied" -- true only if the host core has no SMT (A7) and is
        # really Zen1/2 with that microcode.
        return gen == "safe_ret" and mc and not h.smt
    if sel.srso in ("safe_ret", "alias"):
        if gen is None or sel.srso != gen:
            return False  # A12: each sequence is built for one generation
        return mc
    if sel.srso == "ibpb" or "ibpb_entry" in sel.actions:
        return mc
    return False  # none, or ibpb_vmexit without srso-user-kernel-no silicon


# --- SSB ----------------------------------------------------------------------------------
def _p_ssb(g: Guest, sel: Selection, h: Host) -> bool:
    if not sel.ssbd:
        return False
    s = h.silicon
    for mech in sel.ssbd_mech:
        if mech == "virt-ssbd" and h.vendor in AMD_VENDORS:
            return True  # A5: KVM emulates VIRT_SPEC_CTRL
        if mech in s:
            return True
    return False


# --- Meltdown / L1TF ------------------------------------------------------------------------
def _p_meltdown(g: Guest, sel: Selection, h: Host) -> bool:
    return sel.pti


def _p_l1tf(g: Guest, sel: Selection, h: Host) -> bool:
    return sel.pte_inversion


# --- Spectre v1 ------------------------------------------------------------------------------
def _p_spectre_v1(g: Guest, sel: Selection, h: Host) -> bool:
    # bugs.c:spectre_v1_select_mitigation:926: SWAPGS fences are needed when FSGSBASE is
    # usable or SMAP does not work speculatively -- on the *host silicon* (meltdown).
    f = frozenset(g.features)
    smap_ok = _shown(f, "smap") and "meltdown" not in h.bugs
    need_kernel = _shown(f, "fsgsbase") or not smap_ok
    if not need_kernel:
        return True
    if not sel.fence_kernel:
        return False
    if "SWAPGS" in h.bugs and not sel.pti and not sel.fence_user:
        return False
    return True


# --- ITS -------------------------------------------------------------------------------------
def _p_its(g: Guest, sel: Selection, h: Host) -> bool:
    # indirect-target-selection.rst "Mitigation in guests": aligned thunks (or retpoline +
    # call depth tracking) -- ITS_NATIVE_ONLY parts are still affected by intra-mode BTI.
    return sel.its or "call_depth_tracking" in sel.actions


_PROTECT = {
    "mds": _p_mds,
    "tsx_async_abort": _p_taa,
    "mmio_stale_data": _p_mmio,
    "reg_file_data_sampling": _p_rfds,
    "tsa": _p_tsa,
    "spectre_v2": _p_spectre_v2,
    "retbleed": _p_retbleed,
    "spec_rstack_overflow": _p_srso,
    "spec_store_bypass": _p_ssb,
    "meltdown": _p_meltdown,
    "l1tf": _p_l1tf,
    "spectre_v1": _p_spectre_v1,
    "indirect_target_selection": _p_its,
}
