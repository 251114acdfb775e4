"""Guest RAM (src/kvm/guest_mem.c): private anonymous memory (named tern-guest-ram in smaps
where the kernel can), placed on a 2 MiB boundary and advised for transparent huge pages unless --huge-pages none
(or huge_pages "None" through the API) says otherwise; "2M" (hugetlbfs) is refused by name.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
import api  # noqa: E402
import ternlib  # noqa: E402

COUNTER = ternlib.guest_path("counter")
MEM_MIB = 66  # no other mapping of tern-vmm has this size (malloc arenas are 64 MiB)


def guest_ram(pid):
    """The smaps entry of pid's guest RAM: {"start", "size_kb", "flags", "anon_huge_kb",
    "thp_eligible"}, or None. The mapping is named tern-guest-ram where the kernel names
    anonymous memory (CONFIG_ANON_VMA_NAME, which Debian's 6.1 lacks); otherwise it is the
    one private anonymous read-write mapping of the guest's size (an odd one, MEM_MIB)."""
    found, cur = [], None
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            head = line.split()
            if not head[0].endswith(":"):  # a mapping's first line: "start-end perms ..."
                lo, hi = (int(x, 16) for x in head[0].split("-"))
                named = head[-1] == "[anon:tern-guest-ram]"
                anon = len(head) == 5 and head[1] == "rw-p"
                cur = None
                if named or (anon and hi - lo == MEM_MIB << 20):
                    cur = {"start": lo, "named": named}
                    found.append(cur)
                continue
            if cur is None:
                continue
            k, v = head[0][:-1], head[1:]
            if k == "Size":
                cur["size_kb"] = int(v[0])
            elif k == "AnonHugePages":
                cur["anon_huge_kb"] = int(v[0])
            elif k == "THPeligible":
                cur["thp_eligible"] = int(v[0])
            elif k == "VmFlags":
                cur["flags"] = v
    assert len(found) <= 1, "more than one mapping looks like guest RAM: %r" % found
    return found[0] if found else None


def thp_mode():
    with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
        return f.read().split("[")[1].split("]")[0]


def run_counter(args, log_name):
    v = api.Vmm(["--kernel", COUNTER, "--memory", str(MEM_MIB), "--cmdline", "every=3000"] + args,
                log_name=log_name)
    assert v.wait_for("count 2", 60), "the counter guest did not count: %r" % v
    return v


def test_guest_ram_is_advised_for_transparent_huge_pages():
    """By default the guest RAM mapping is 2 MiB-aligned, MADV_HUGEPAGE ("hg" in VmFlags) and,
    where the host's THP is not "never", eligible and backed by huge pages once touched."""
    ternlib.need_kvm()
    v = run_counter([], "mem-thp.log")
    try:
        ram = guest_ram(v.proc.pid)
        assert ram, "no guest RAM mapping in smaps: %r" % v
        assert ram["size_kb"] == MEM_MIB << 10, ram
        assert ram["start"] % (2 << 20) == 0, "guest RAM at %#x is not 2 MiB-aligned" % ram["start"]
        assert "hg" in ram["flags"], "guest RAM is not MADV_HUGEPAGE: %r" % ram
        if thp_mode() != "never":
            assert ram["thp_eligible"] == 1, ram
            # The guest's kernel image and its page tables alone touch whole 2 MiB ranges.
            assert ram["anon_huge_kb"] >= 2048, "no huge page backs the guest: %r" % ram
    finally:
        v.stop()


def test_huge_pages_none_and_bad_values():
    """--huge-pages none leaves the mapping unadvised; a bad value is a usage error naming the
    accepted ones."""
    ternlib.need_kvm()
    v = run_counter(["--huge-pages", "none"], "mem-nothp.log")
    try:
        ram = guest_ram(v.proc.pid)
        assert ram and "hg" not in ram["flags"], ram
    finally:
        v.stop()
    r = ternlib.run_vmm(["--kernel", COUNTER, "--huge-pages", "2M"])
    assert r.status == 2 and "--huge-pages" in r.err and "transparent, none" in r.err, r


def test_machine_config_huge_pages():
    """PUT /machine-config takes huge_pages "None" and "Transparent" (Firecracker's names) and
    GET reports it; left out of a PUT it is Firecracker's default, "None", unless the command
    line gave --huge-pages; "2M" is a 400 naming hugetlbfs, and the setting stays; the VM then
    runs on what was set."""
    ternlib.need_kvm()
    vmm, c = api.start_api_vmm(["--huge-pages", "transparent"], log_name="mem-api-cli.log")
    try:
        api.expect_204(c.put("/machine-config", {"vcpu_count": 1, "mem_size_mib": MEM_MIB}),
                       "PUT without huge_pages", vmm)
        st, mc = c.get("/machine-config")
        assert st == 200 and mc["huge_pages"] == "Transparent", (st, mc)  # the command line's
    finally:
        vmm.stop()
    vmm, c = api.start_api_vmm([], log_name="mem-api.log")
    try:
        st, mc = c.get("/machine-config")
        assert st == 200 and mc["huge_pages"] == "Transparent", (st, mc)  # tern-vmm's default
        api.expect_204(c.put("/machine-config", {"vcpu_count": 1, "mem_size_mib": MEM_MIB}),
                       "PUT without huge_pages", vmm)
        st, mc = c.get("/machine-config")
        assert st == 200 and mc["huge_pages"] == "None", (st, mc)  # Firecracker's default
        for want in ("Transparent", "None"):
            api.expect_204(c.put("/machine-config", {"vcpu_count": 1, "mem_size_mib": MEM_MIB,
                                                     "huge_pages": want}), "huge_pages " + want, vmm)
            st, mc = c.get("/machine-config")
            assert st == 200 and mc["huge_pages"] == want, (want, mc)
        api.expect_400(c.put("/machine-config", {"vcpu_count": 1, "mem_size_mib": MEM_MIB,
                                                 "huge_pages": "2M"}), "huge_pages 2M", "2M", "hugetlbfs")
        api.expect_400(c.patch("/machine-config", {"huge_pages": "Always"}), "huge_pages Always",
                       "huge_pages")
        st, mc = c.get("/machine-config")
        assert mc["huge_pages"] == "None", mc
        # PATCH changes only what it names.
        api.expect_204(c.patch("/machine-config", {"huge_pages": "Transparent"}), "PATCH", vmm)
        api.expect_204(c.patch("/machine-config", {"mem_size_mib": MEM_MIB}), "PATCH memory", vmm)
        assert c.get("/machine-config")[1]["huge_pages"] == "Transparent"
        api.expect_204(c.patch("/machine-config", {"huge_pages": "None"}), "PATCH None", vmm)
        api.expect_204(c.put("/boot-source", {"kernel_image_path": COUNTER,
                                              "boot_args": "console=ttyS0 every=3000"}), "boot-source", vmm)
        api.expect_204(c.put("/actions", {"action_type": "InstanceStart"}), "InstanceStart", vmm)
        assert vmm.wait_for("count 2", 60), vmm
        ram = guest_ram(vmm.proc.pid)
        assert ram and "hg" not in ram["flags"], ram
    finally:
        vmm.stop()
