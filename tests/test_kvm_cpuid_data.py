"""Structure and spot checks for encodings/data/kvm-cpuid.json.

Stdlib + pytest only; does not import cpusolve.  The file says, per Debian kernel (6.1.192,
6.12.117), which QEMU-named CPUID features QEMU with -accel kvm can give a guest:
passthrough (the host's own bit, F() in kvm_set_cpu_caps()), emulated (every host),
conditional (module parameters, vendor module, other host facts) and never.

The spot checks below were read by hand in arch/x86/kvm/cpuid.c, vmx/vmx.c, svm/svm.c of
each kernel and in QEMU's kvm_arch_get_supported_cpuid().
"""
import json
import pathlib

import pytest

DATA = pathlib.Path(__file__).resolve().parent.parent / "encodings" / "data"
KERNELS = ("6.1", "6.12")
CATEGORIES = ("passthrough", "emulated", "conditional", "never")
#: classes whose CPUID bits the file may also place (besides the required "cpu" class)
EXTRA_CLASSES = {"pmu", "unmigratable"}
ALT_KEYS = {"module", "host", "not_affected", "vendor", "family", "params", "qemu", "also", "assume"}
MODULES = {"kvm_intel", "kvm_amd"}
VENDORS = {"GenuineIntel", "AuthenticAMD", "HygonGenuine", "CentaurHauls"}
SYSFS_BUGS = {"meltdown", "spectre_v1", "spectre_v2", "spec_store_bypass", "l1tf", "mds",
              "tsx_async_abort", "itlb_multihit", "srbds", "mmio_stale_data", "retbleed",
              "spec_rstack_overflow", "gather_data_sampling", "reg_file_data_sampling",
              "indirect_target_selection", "tsa", "vmscape"}


def load(name):
    with open(DATA / name) as fh:
        return json.load(fh)


@pytest.fixture(scope="module")
def doc():
    return load("kvm-cpuid.json")


@pytest.fixture(scope="module")
def features():
    return load("features.json")["features"]


@pytest.fixture(scope="module", params=KERNELS)
def kernel(request, doc):
    return request.param, doc[request.param]


def category_of(k, name):
    found = [c for c in CATEGORIES if name in k[c]]
    assert len(found) == 1, (name, found)
    return found[0]


# -- structure --------------------------------------------------------------------------


def test_top_level(doc):
    assert set(KERNELS) <= set(doc)
    for ver in KERNELS:
        assert ver in doc["source"]
    assert "6.1.192-2" in doc["source"]["6.1"]
    assert "6.12.117-1~deb12u1" in doc["source"]["6.12"]
    for ver in KERNELS:
        assert "kvm_set_cpu_caps" in doc["source"][ver]
        assert "cpuid.c" in doc["source"][ver]


def test_category_types(kernel):
    ver, k = kernel
    assert isinstance(k["passthrough"], list)
    assert isinstance(k["emulated"], list)
    assert isinstance(k["conditional"], dict)
    assert isinstance(k["never"], list)
    for c in ("passthrough", "emulated", "never"):
        assert k[c] == sorted(set(k[c])), f"{ver} {c} not sorted/unique"
    assert isinstance(k["notes"], str) and k["notes"]


def test_partition_covers_every_cpu_feature_once(kernel, features):
    ver, k = kernel
    seen: dict[str, str] = {}
    for c in CATEGORIES:
        for name in k[c]:
            assert name not in seen, f"{ver}: {name} in both {seen[name]} and {c}"
            seen[name] = c
    cpu = {n for n, f in features.items() if f["class"] == "cpu"}
    missing = sorted(cpu - set(seen))
    assert not missing, f"{ver}: cpu-class features in no category: {missing}"


def test_only_qemu_names_in_scope(kernel, features):
    ver, k = kernel
    for c in CATEGORIES:
        for name in k[c]:
            assert name in features, f"{ver}: {name} is not a QEMU feature name"
            cls = features[name]["class"]
            assert cls == "cpu" or (cls in EXTRA_CLASSES and features[name].get("cpuid")), (ver, name, cls)
            assert cls != "arch-capabilities"


def test_side_tables_match_categories(kernel):
    ver, k = kernel
    assert set(k["emulated_by"]) == set(k["emulated"])
    assert set(k["conditional_rules"]) == set(k["conditional"])
    assert set(k["passthrough_also_when"]) <= set(k["passthrough"])
    assert set(k["passthrough_only_when"]) <= set(k["passthrough"])
    assert set(k["never_notes"]) == set(k["never"]), "every never bit says why"
    for name, why in k["emulated_by"].items():
        assert why.split(":")[0] in {"kvm", "qemu", "kvm+qemu"}, (name, why)
    for name in k["qemu_adds"]:
        assert category_of(k, name) in ("passthrough", "emulated", "conditional"), name


def check_alternatives(alts, features, where):
    assert isinstance(alts, list), where
    for alt in alts:
        assert alt and set(alt) <= ALT_KEYS, (where, alt)
        if "module" in alt:
            assert alt["module"] in MODULES, where
        for n in alt.get("host", []):
            assert n in features, (where, n)
        for b in alt.get("not_affected", []):
            assert b in SYSFS_BUGS, (where, b)
        if "vendor" in alt:
            assert alt["vendor"] in VENDORS, where
        if "family" in alt:
            assert all(isinstance(f, int) and f >= 15 for f in alt["family"]), where
        if "also" in alt:
            assert isinstance(alt.get("assume"), bool), f"{where}: 'also' needs 'assume'"


def test_rules_are_well_formed(kernel, features):
    ver, k = kernel
    for name, rule in k["conditional_rules"].items():
        assert isinstance(rule["default"], bool), name
        assert rule["when"], name
        check_alternatives(rule["when"], features, f"{ver} conditional {name}")
        assert isinstance(k["conditional"][name], str) and k["conditional"][name]
    for name, extra in k["passthrough_also_when"].items():
        assert extra["text"], name
        check_alternatives(extra["when"], features, f"{ver} also_when {name}")


def test_unnamed_entries(kernel):
    ver, k = kernel
    for e in k["unnamed"]:
        assert e["category"] in CATEGORIES
        assert e["macro"] is None or e["macro"].startswith("X86_FEATURE_")
        assert e["cpuid"]


def test_arch_capabilities_agrees_with_msr_file(doc):
    arch = load("kvm-arch-capabilities.json")
    for ver in KERNELS:
        for name in arch[ver].get("cpuid_emulated", []):
            assert name in doc[ver]["emulated"], (ver, name)


# -- spot checks (read by hand in the sources) ------------------------------------------

BOTH_NEVER = [
    # 1.ECX / 1.EDX '0 /* ... */' gaps in kvm_set_cpu_caps()
    "acpi", "tm", "pbe", "pn", "smx", "est", "tm2", "cid", "xtpr", "dca", "ds-cpl", "ia64",
    # 0x80000001 ECX gaps / absent bits
    "ibs", "skinit", "wdt", "lwp", "extapic", "nodeid-msr", "tce", "perfctr-nb",
    # SVM sub-features svm_set_cpu_caps() never sets
    "svm-lock", "decodeassists", "avic",
    # nothing in KVM emulates IA32_CORE_CAPABILITIES; CET/PKS/arch LBR not virtualized
    "core-capability", "split-lock-detect", "cet-ss", "cet-ibt", "pks", "arch-lbr", "pcommit",
    # CPUID 0x1E subleaf 1 is never enumerated
    "amx-int8-mirror", "amx-fp8",
]
BOTH_PASSTHROUGH = [
    "sse", "sse2", "pni", "ssse3", "sse4.1", "sse4.2", "aes", "pclmulqdq", "avx", "avx2",
    "fma", "f16c", "rdrand", "rdseed", "bmi1", "bmi2", "adx", "movbe", "popcnt", "xsave",
    "xsaveopt", "xsavec", "xsaves", "avx512f", "avx512dq", "avx512bw", "avx512vl",
    "avx512vnni", "avx512-bf16", "avx-vnni", "amx-tile", "pcid", "invpcid", "smep", "smap",
    "fsgsbase", "rdpid", "rdtscp", "pdpe1gb", "lm", "nx", "syscall", "la57", "pku", "umip",
    "md-clear", "spec-ctrl", "stibp", "ssbd", "ibpb", "ibrs", "amd-ssbd", "amd-stibp",
    "amd-no-ssb", "rtm", "hle", "sgx", "sgx1", "mpx", "waitpkg", "invtsc", "erms", "fsrm",
    "serialize", "clwb", "clflushopt", "sha-ni", "gfni", "vaes", "vpclmulqdq", "xop", "fma4",
    "sse4a", "clzero", "wbnoinvd", "xsaveerptr", "no-nested-data-bp", "null-sel-clr-base",
    "lfence-always-serializing", "verw-clear", "tsa-sq-no", "tsa-l1-no", "srso-no",
    "rrsba-ctrl", "bhi-ctrl", "mcdt-no", "fzrm", "fsrs", "fsrc",
]
BOTH_EMULATED = ["x2apic", "hypervisor", "tsc-deadline", "tsc-adjust", "arch-capabilities",
                 "arat", "ht", "topoext", "overflow-recov", "succor"]
ONLY_6_12_PASSTHROUGH = [
    "flush-l1d", "sbpb", "ibpb-brtype", "auto-ibrs", "fs-gs-base-ns", "srso-user-kernel-no",
    "cmpccxadd", "amx-fp16", "avx-ifma", "lam", "avx-vnni-int8", "avx-ne-convert",
    "prefetchiti", "amx-complex", "avx10", "avx10-512", "sgx-edeccssa", "sgx-aex-notify",
]


@pytest.mark.parametrize("name", BOTH_NEVER)
def test_never(doc, name):
    for ver in KERNELS:
        assert category_of(doc[ver], name) == "never", (ver, name)


@pytest.mark.parametrize("name", BOTH_PASSTHROUGH)
def test_passthrough(doc, name):
    for ver in KERNELS:
        assert category_of(doc[ver], name) == "passthrough", (ver, name)


@pytest.mark.parametrize("name", BOTH_EMULATED)
def test_emulated(doc, name):
    for ver in KERNELS:
        assert category_of(doc[ver], name) == "emulated", (ver, name)


@pytest.mark.parametrize("name", ONLY_6_12_PASSTHROUGH)
def test_added_in_6_12(doc, name):
    assert category_of(doc["6.12"], name) == "passthrough", name
    assert category_of(doc["6.1"], name) == "never", name


def test_qemu_side_additions_are_marked(doc):
    for ver in KERNELS:
        k = doc[ver]
        for name in ("hypervisor", "ht", "topoext", "overflow-recov", "succor"):
            assert k["emulated_by"][name].startswith("qemu"), (ver, name)
            assert k["qemu_adds"][name].startswith("always"), (ver, name)
        for name in ("x2apic", "tsc-adjust", "arch-capabilities", "arat"):
            assert k["emulated_by"][name].startswith("kvm:"), (ver, name)
    # 6.1's KVM masks 7.1 EAX to avx-vnni|avx512-bf16; QEMU ORs fzrm/fsrs/fsrc from the host
    assert "6.1's KVM never reports it" in doc["6.1"]["qemu_adds"]["fzrm"]


def rule(doc, ver, name):
    return doc[ver]["conditional_rules"][name]


def test_nested_virtualization(doc):
    for ver in KERNELS:
        k = doc[ver]
        assert category_of(k, "vmx") == "conditional"
        r = rule(doc, ver, "vmx")
        assert r["default"] is True
        assert r["when"] == [{"module": "kvm_intel", "params": ["kvm_intel.nested=1"]}]
        assert "nested=1" in k["conditional"]["vmx"]
        r = rule(doc, ver, "svm")
        assert r["default"] is True and r["when"][0]["module"] == "kvm_amd"
        for sub in ("npt", "nrip-save", "tsc-scale", "v-vmsave-vmload", "vgif", "lbrv",
                    "pause-filter", "pfthreshold"):
            alt = rule(doc, ver, sub)["when"][0]
            assert alt["module"] == "kvm_amd" and sub in alt["host"], (ver, sub)
            assert "kvm_amd.nested=1" in alt["params"], (ver, sub)
        for sub in ("vmcb-clean", "svme-addr-chk"):
            assert "host" not in rule(doc, ver, sub)["when"][0], (ver, sub)
    # 6.12 adds nested FLUSHBYASID (emulated for L1) and vNMI
    assert "host" not in rule(doc, "6.12", "flushbyasid")["when"][0]
    assert rule(doc, "6.12", "vnmi")["when"][0]["host"] == ["vnmi", "vgif"]
    assert category_of(doc["6.1"], "flushbyasid") == "never"
    assert category_of(doc["6.1"], "vnmi") == "never"


def test_monitor_ds_intel_pt(doc):
    for ver in KERNELS:
        k = doc[ver]
        # KVM never advertises MONITOR; only QEMU -overcommit cpu-pm=on adds it
        assert category_of(k, "monitor") == "conditional"
        r = rule(doc, ver, "monitor")
        assert r["default"] is False and r["when"][0]["qemu"] == ["-overcommit cpu-pm=on"]
        # DS/DTES64 only with PEBS virtualization (vmx_pebs_supported()), not by default
        for n in ("ds", "dtes64"):
            assert category_of(k, n) == "conditional"
            r = rule(doc, ver, n)
            assert r["default"] is False and r["when"][0]["module"] == "kvm_intel"
        # Intel PT needs kvm_intel.pt_mode=1 (default 0)
        r = rule(doc, ver, "intel-pt")
        assert r["default"] is False and "kvm_intel.pt_mode=1" in r["when"][0]["params"]


def test_vendor_specific_conditionals(doc):
    for ver in KERNELS:
        # svm_set_cpu_caps() clears BUS_LOCK_DETECT
        assert rule(doc, ver, "bus-lock-detect")["when"] == [
            {"module": "kvm_intel", "host": ["bus-lock-detect"]}]
        # AMD PMU: PERFCTR_CORE only via svm_set_cpu_caps() with enable_pmu
        alt = rule(doc, ver, "perfctr-core")["when"][0]
        assert alt["module"] == "kvm_amd" and "kvm.enable_pmu=1" in alt["params"]
        # VIRT_SSBD: every kvm_amd host with AMD_SSBD or LS_CFG_SSBD
        alts = rule(doc, ver, "virt-ssbd")["when"]
        assert {"module": "kvm_amd", "host": ["amd-ssbd"]} in alts
        assert any(a.get("family") == [21, 22, 23] for a in alts)
        assert rule(doc, ver, "pdcm")["when"][0]["params"] == ["kvm.enable_pmu=1"]
    assert category_of(doc["6.12"], "perfmon-v2") == "conditional"
    assert category_of(doc["6.1"], "perfmon-v2") == "never"


def test_cross_vendor_spec_ctrl_routes(doc):
    for ver in KERNELS:
        aw = doc[ver]["passthrough_also_when"]
        assert aw["spec-ctrl"]["when"] == [{"host": ["ibpb", "ibrs"]}]
        assert aw["ssbd"]["when"] == [{"host": ["amd-ssbd"]}]
        assert aw["amd-ssbd"]["when"] == [{"host": ["ssbd"]}]
        assert aw["ibpb"]["when"] == [{"host": ["spec-ctrl"]}]
        assert aw["stibp"]["when"] == [{"host": ["amd-stibp"]}]
        assert aw["amd-no-ssb"]["when"] == [{"not_affected": ["spec_store_bypass"]}]
        assert aw["umip"]["when"][0]["module"] == "kvm_intel"


def test_flush_l1d_is_6_12_only(doc):
    # 6.1.192's CPUID_7_EDX mask ends at F(AMX_BF16); 6.12 adds F(FLUSH_L1D)
    assert "flush-l1d" in doc["6.1"]["never"]
    assert "6.4" in doc["6.1"]["never_notes"]["flush-l1d"]
    assert "flush-l1d" in doc["6.12"]["passthrough"]


def test_tsx_caveat(doc):
    for ver in KERNELS:
        assert "TSX_MODE_OFF" in doc[ver]["passthrough_only_when"]["rtm"]
