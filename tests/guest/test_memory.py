"""Guest RAM (src/kvm/guest_mem.c): private anonymous memory (named tern-guest-ram in smaps
where the kernel can), placed on a 2 MiB boundary and advised for transparent huge pages unless --huge-pages none
(or huge_pages "None" through the API) says otherwise; --huge-pages 2M (huge_pages "2M") puts it on hugetlbfs
pages reserved from the host's pool.
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
    r = ternlib.run_vmm(["--kernel", COUNTER, "--huge-pages", "1G"])
    assert r.status == 2 and "--huge-pages" in r.err and "transparent, none, 2M" in r.err, r
    r = ternlib.run_vmm(["--kernel", COUNTER, "--huge-pages", "2M", "--memory", "65"])
    assert r.status == 2 and "--memory 65" in r.err and "2 MiB pages" in r.err, r


def hugetlb_ram(pid, mib=MEM_MIB):
    """pid's hugetlbfs mapping of mib MiB: {"size_kb", "page_kb"}, or None."""
    cur, found = None, []
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            head = line.split()
            if not head[0].endswith(":"):
                lo, hi = (int(x, 16) for x in head[0].split("-"))
                cur = None
                if "anon_hugepage" in line and hi - lo == mib << 20:
                    cur = {}
                    found.append(cur)
            elif cur is not None and head[0] == "KernelPageSize:":
                cur["page_kb"] = int(head[1])
            elif cur is not None and head[0] == "Size:":
                cur["size_kb"] = int(head[1])
    assert len(found) <= 1, found
    return found[0] if found else None


def huge_pool():
    """/proc/meminfo's HugePages_Total, _Free and _Rsvd (2 MiB pages here)."""
    got = {}
    with open("/proc/meminfo") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("HugePages_Total", "HugePages_Free", "HugePages_Rsvd", "Hugepagesize"):
                got[k] = int(v.split()[0])
    assert got["Hugepagesize"] == 2048, got
    return got["HugePages_Total"], got["HugePages_Free"], got["HugePages_Rsvd"]


def set_huge_pool(n):
    with open("/proc/sys/vm/nr_hugepages", "w") as f:
        f.write("%d\n" % n)
    total = huge_pool()[0]
    assert total == n, "the lab's kernel gave %d of %d 2 MiB pages" % (total, n)


def in_use(pool):
    total, free, rsvd = pool
    return total - free + rsvd


def test_huge_pages_2m_puts_guest_ram_on_hugetlbfs():
    """--huge-pages 2M: guest RAM is a hugetlbfs mapping of 2 MiB pages, all of it reserved
    from the host's pool when the VM starts and back in the pool when it ends; a pool too
    small stops tern-vmm before the guest runs, with a message naming the pool."""
    ternlib.need_kvm()
    pages = MEM_MIB // 2
    try:
        set_huge_pool(pages - 1)
        r = ternlib.run_vmm(["--kernel", COUNTER, "--memory", str(MEM_MIB), "--huge-pages", "2M"])
        assert r.status != 0 and ("fewer than %d free 2 MiB pages" % pages) in r.err \
            and "vm.nr_hugepages" in r.err, r
        assert in_use(huge_pool()) == 0, huge_pool()
        set_huge_pool(pages + 4)
        v = run_counter(["--huge-pages", "2M"], "mem-hugetlb.log")
        try:
            ram = hugetlb_ram(v.proc.pid)
            assert ram and ram["page_kb"] == 2048 and ram["size_kb"] == MEM_MIB << 10, ram
            assert in_use(huge_pool()) == pages, (huge_pool(), pages)
            assert guest_ram(v.proc.pid) is None  # no anonymous 4 KiB RAM beside it
        finally:
            v.stop()
        assert in_use(huge_pool()) == 0, huge_pool()
    finally:
        set_huge_pool(0)


def test_machine_config_huge_pages_2m():
    """huge_pages "2M" through the API: mem_size_mib must be even (a 400 naming it); a pool
    too small makes InstanceStart a 400 naming it, and tern-vmm waits on; with the pages
    there, the next InstanceStart boots on them."""
    ternlib.need_kvm()
    pages = MEM_MIB // 2
    vmm, c = api.start_api_vmm([], log_name="mem-api-2m.log")
    try:
        set_huge_pool(0)
        api.expect_400(c.put("/machine-config", {"vcpu_count": 1, "mem_size_mib": MEM_MIB - 1,
                                                 "huge_pages": "2M"}), "odd memory", "mem_size_mib",
                       "2 MiB pages")
        api.expect_204(c.put("/machine-config", {"vcpu_count": 1, "mem_size_mib": MEM_MIB,
                                                 "huge_pages": "2M"}), "huge_pages 2M", vmm)
        assert c.get("/machine-config")[1]["huge_pages"] == "2M"
        api.expect_400(c.patch("/machine-config", {"mem_size_mib": MEM_MIB + 1}), "PATCH odd",
                       "2 MiB pages")
        api.expect_204(c.put("/boot-source", {"kernel_image_path": COUNTER,
                                              "boot_args": "console=ttyS0 every=3000"}), "boot-source", vmm)
        api.expect_400(c.put("/actions", {"action_type": "InstanceStart"}), "InstanceStart, no pool",
                       "vm.nr_hugepages")
        assert vmm.proc.poll() is None, vmm
        set_huge_pool(pages)
        api.expect_204(c.put("/actions", {"action_type": "InstanceStart"}), "InstanceStart", vmm)
        assert vmm.wait_for("count 2", 60), vmm
        assert hugetlb_ram(vmm.proc.pid)["page_kb"] == 2048
    finally:
        vmm.stop()
        set_huge_pool(0)


def test_restore_onto_huge_pages():
    """A snapshot comes back on the RAM asked for: --restore with --huge-pages 2M, or PUT
    /snapshot/load huge_pages "2M" or "Transparent", reads the memory file into hugetlbfs or
    anonymous THP RAM (a plain restore maps the file); the guest counts on from where it was.
    A pool too small is a 400 naming it and tern-vmm waits on (the next load works); 2M
    with RAM that is not whole 2 MiB pages is refused naming them."""
    ternlib.need_kvm()
    snap = ternlib.sibling(__file__, "test_snapshot")
    work = snap.workdir("huge")
    pages = MEM_MIB // 2
    vmms = []
    try:
        files = {}
        for mib in (MEM_MIB, 33):
            vmm, c = snap.start_counter(work, "huge-src-%d" % mib, mem_mib=mib)
            vmms.append(vmm)
            last = snap.pause(c, vmm)
            st, mem = (os.path.join(work, "%d.%s" % (mib, x)) for x in ("state", "mem"))
            snap.snapshot(c, st, mem, "snapshot of %d MiB" % mib, vmm)
            vmm.stop()
            files[mib] = (st, mem, last)
        st, mem, last = files[MEM_MIB]
        v = snap.restore_cli(st, mem, "huge-plain")
        vmms.append(v)
        snap.expect_continues(v, last, "a plain restore")
        assert hugetlb_ram(v.proc.pid) is None and guest_ram(v.proc.pid) is None  # the file
        v.stop()

        set_huge_pool(pages)
        v = snap.restore_cli(st, mem, "huge-cli", ["--huge-pages", "2M"])
        vmms.append(v)
        snap.expect_continues(v, last, "--restore --huge-pages 2M")
        ram = hugetlb_ram(v.proc.pid)
        assert ram and ram["page_kb"] == 2048 and ram["size_kb"] == MEM_MIB << 10, ram
        assert in_use(huge_pool()) == pages, huge_pool()
        v.stop()
        odd_st, odd_mem, _ = files[33]
        r = ternlib.run_vmm(["--restore", odd_st, "--restore-mem", odd_mem, "--huge-pages", "2M"])
        assert r.status == 2 and "33 MiB" in r.err and "2 MiB pages" in r.err, r

        set_huge_pool(pages - 1)
        v, c = snap.fresh_api(work, "huge-api")
        vmms.append(v)
        snap.load_refused(c, v, snap.load_body(st, mem, True, huge_pages="2M"), "2M, pool short",
                          "vm.nr_hugepages")
        snap.load_refused(c, v, snap.load_body(odd_st, odd_mem, True, huge_pages="2M"),
                          "2M, 33 MiB", "2 MiB pages")
        snap.load_refused(c, v, snap.load_body(st, mem, True, huge_pages="1G"), "1G",
                          "huge_pages")
        set_huge_pool(pages)
        api.expect_204(c.put("/snapshot/load", snap.load_body(st, mem, True, huge_pages="2M")),
                       "PUT /snapshot/load huge_pages 2M", v)
        snap.expect_continues(v, last, "PUT /snapshot/load huge_pages 2M")
        assert hugetlb_ram(v.proc.pid)["page_kb"] == 2048
        v.stop()
        set_huge_pool(0)

        v, c = snap.fresh_api(work, "huge-api-thp")
        vmms.append(v)
        api.expect_204(c.put("/snapshot/load", snap.load_body(st, mem, True, huge_pages="Transparent")),
                       "PUT /snapshot/load huge_pages Transparent", v)
        snap.expect_continues(v, last, "PUT /snapshot/load huge_pages Transparent")
        ram = guest_ram(v.proc.pid)
        assert ram and "hg" in ram["flags"], ram
    finally:
        snap.stop_all(vmms)
        set_huge_pool(0)


def test_machine_config_huge_pages():
    """PUT /machine-config takes huge_pages "None" and "Transparent" (Firecracker's names) and
    GET reports it; left out of a PUT it is Firecracker's default, "None", unless the command
    line gave --huge-pages; a bad value is a 400, and the setting stays; the VM then runs on
    what was set."""
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


def test_a_vm_on_2m_pages_migrates_pre_copy_and_post_copy():
    """A VM on 2 MiB pages migrates into another tern-vmm on 2 MiB pages: post-copy (a guest
    that outruns a capped link; each 2 MiB page holding a stale 4 KiB page is dropped and
    placed whole once its stale pages came) and pre-copy. The dirtier checks every word at
    the destination; the destination's RAM is on 2 MiB pages both times."""
    mig = ternlib.sibling(__file__, "test_migrate")
    mib = 64
    set_huge_pool(3 * mib // 2 + 4)
    src = None
    try:
        for how in ("post-copy", "pre-copy"):
            work, src, c = mig.start_source("huge-" + how, cmdline="mib=16 static=4 gap=4",
                                            memory=mib, extra=["--huge-pages", "2M"])
            path = os.path.join(work, "incoming.sock")
            dst, dsock = mig.start_destination("huge-" + how, work, "unix:" + path,
                                               extra=["--huge-pages", "2M"], wait_path=path)
            try:
                body = {"destination": "unix:" + path}
                if how == "post-copy":
                    # 1 ms: a round the lab starved the guest in cannot converge by luck.
                    body.update(bandwidth_mib_s=16, post_copy=True, max_rounds=10,
                                downtime_limit_ms=1)
                mig.migrate(c, body, "PUT /migrate " + how, src)
                mig.expect_arrived(src, dst, dsock, how + " onto 2 MiB pages")
                if how == "post-copy":
                    assert "switching to post-copy" in src.err(), src
                    assert dst.wait_for("post-copy complete", 60, stream="err"), dst
                ram = hugetlb_ram(dst.proc.pid, mib)
                assert ram and ram["page_kb"] == 2048, ram
                n = len(mig.passes(dst))
                assert mig.wait_passes(dst, n + 2), "the guest stopped after %s: %r" % (how, dst)
                assert "FAIL" not in dst.out(), dst
            finally:
                dst.stop()
                src.stop()
    finally:
        if src:
            src.stop()
        set_huge_pool(0)
