/*
 * Software-KVM module: completes, on behalf of KVM's instruction emulator, the
 * instructions it cannot run, with the architectural result a real CPU would give.
 * Facts behind each case: ../shared/SOFTWARE-KVM.md.
 */
#include "arch/x86/swkvm.h"
#include "arch/x86/cpuid.h"
#include "arch/x86/gva.h"
#include "core/log.h"
#include "kvm/kvm.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <unistd.h>

#define MSR_STAR 0xc0000081
#define MSR_LSTAR 0xc0000082
#define MSR_SYSCALL_MASK 0xc0000084
#define MSR_KERNEL_GS_BASE 0xc0000102

#define RFLAGS_CF (1ULL << 0)
#define RFLAGS_PF (1ULL << 2)
#define RFLAGS_AF (1ULL << 4)
#define RFLAGS_ZF (1ULL << 6)
#define RFLAGS_SF (1ULL << 7)
#define RFLAGS_OF (1ULL << 11)
#define RFLAGS_RF (1ULL << 16)
#define RFLAGS_AC (1ULL << 18)
#define RFLAGS_ARITH (RFLAGS_CF | RFLAGS_PF | RFLAGS_AF | RFLAGS_ZF | RFLAGS_SF | RFLAGS_OF)
/* Bits IRET may load at CPL0 (VM and VIF/VIP stay as they are in 64-bit mode). */
#define RFLAGS_IRET_MASK 0x3f7fd5ULL

#define CR0_MP (1ULL << 1)
#define CR0_TS (1ULL << 3)
#define CR4_OSFXSR (1ULL << 9)
#define CR4_FSGSBASE (1ULL << 16)
#define EFER_LMA (1ULL << 10)

#define VEC_UD 6
#define VEC_NM 7
#define VEC_BP 3
#define VEC_GP 13
#define VEC_PF 14

bool swkvm_detect(void)
{
	const char *force = getenv("TERN_SOFTWARE_KVM");

	if (force && !strcmp(force, "on"))
		return true;
	if (force && !strcmp(force, "off"))
		return false;
	return access("/sys/module/kvm_pvm", F_OK) == 0;
}

void swkvm_init(struct swkvm *s, const struct guest_mem *mem)
{
	memset(s, 0, sizeof(*s));
	s->mem = mem;
}

void swkvm_cpuid_fixup(struct kvm_cpuid2 *c)
{
	struct kvm_cpuid_entry2 *e;

	/*
	 * The backend honours only some of these bits (SOFTWARE-KVM.md); clearing the
	 * rest still tells a guest that reads CPUID carefully what not to use.
	 */
	if ((e = cpuid_find(c, 1, 0)))
		e->ecx &= ~(CPUID1_ECX_CX16 | CPUID1_ECX_XSAVE | CPUID1_ECX_OSXSAVE |
			    CPUID1_ECX_AVX | CPUID1_ECX_FMA | CPUID1_ECX_F16C);
	if ((e = cpuid_find(c, 7, 0))) {
		e->ebx &= ~(CPUID7_EBX_AVX2 | CPUID7_EBX_ERMS | 0xdc230000u); /* AVX-512 family */
		e->ecx &= ~((1u << 8) | (1u << 9) | (1u << 10) | (1u << 11) | (1u << 12) |
			    (1u << 14) |
			    (1u << 1)); /* GFNI VAES VPCLMULQDQ VNNI BITALG VPOPCNTDQ VBMI */
		e->edx &= ~((1u << 4) | (1u << 22) | (1u << 24) | (1u << 25)); /* FSRM, AMX */
	}
	for (uint32_t i = 0; i < c->nent; i++)
		if (c->entries[i].function == 0xd)
			c->entries[i].eax = c->entries[i].ebx = c->entries[i].ecx =
				c->entries[i].edx = 0;
	/* Paravirtual IPIs, unhalt and yield go through hypercalls the emulator lacks. */
	if ((e = cpuid_find(c, 0x40000001, 0)))
		e->eax &= ~(KVM_PV_FEATURE_PV_UNHALT | KVM_PV_FEATURE_PV_SEND_IPI |
			    KVM_PV_FEATURE_PV_SCHED_YIELD);
}

const char *swkvm_cmdline_extra(void)
{
	/*
	 * XSAVE and the SSE4/AES/SHA/GFNI families stay visible in CPUID whatever tern
	 * writes, and the emulator cannot run them; ERMS/FSRM string copies run byte by
	 * byte there. popcnt and rdrand are completed below but cheaper avoided.
	 */
	return "noxsave clearcpuid=cx16,popcnt,ssse3,sse4_1,sse4_2,pclmulqdq,aes,sha_ni,gfni,"
	       "vaes,vpclmulqdq,erms,fsrm";
}

/* One emulated-instruction context: the vCPU's state, read once, written back on success. */
struct ctx {
	struct swkvm *s;
	int fd;
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct gva_ctx gva;
	uint64_t gpr[16];
	bool sregs_dirty;
};

static __u64 *gpr_ptr(struct kvm_regs *r, unsigned int i)
{
	__u64 *map[16] = { &r->rax, &r->rcx, &r->rdx, &r->rbx, &r->rsp, &r->rbp, &r->rsi, &r->rdi,
			   &r->r8,  &r->r9,  &r->r10, &r->r11, &r->r12, &r->r13, &r->r14, &r->r15 };
	return map[i & 15];
}

static void set_gpr(struct ctx *c, unsigned int i, uint64_t v, unsigned int size)
{
	__u64 *p = gpr_ptr(&c->regs, i);

	if (size == 8)
		*p = v;
	else if (size == 4)
		*p = (uint32_t)v; /* 32-bit writes zero-extend */
	else
		*p = (*p & ~0xffffULL) | (v & 0xffff);
}

static uint64_t trunc_to(uint64_t v, unsigned int size)
{
	return size == 8 ? v : v & ((1ULL << (size * 8)) - 1);
}

static int inject(struct ctx *c, unsigned int vector, bool has_error, uint32_t error)
{
	struct kvm_vcpu_events ev;

	if (ioctl(c->fd, KVM_GET_VCPU_EVENTS, &ev) < 0)
		return -errno;
	ev.exception.injected = 1;
	ev.exception.nr = (uint8_t)vector;
	ev.exception.has_error_code = has_error;
	ev.exception.error_code = error;
	return ioctl(c->fd, KVM_SET_VCPU_EVENTS, &ev) < 0 ? -errno : 0;
}

static bool canonical(uint64_t v)
{
	return (uint64_t)((int64_t)(v << 16) >> 16) == v;
}

static unsigned int cpl(const struct ctx *c)
{
	return c->sregs.cs.selector & 3;
}

static uint64_t seg_base(const struct ctx *c, int seg)
{
	bool long64 = c->sregs.efer & EFER_LMA;

	if (seg == 4)
		return c->sregs.fs.base;
	if (seg == 5)
		return c->sregs.gs.base;
	if (long64)
		return 0;
	return seg == 0 ? c->sregs.es.base :
	       seg == 1 ? c->sregs.cs.base :
	       seg == 2 ? c->sregs.ss.base :
			  c->sregs.ds.base;
}

static int page_fault(struct ctx *c, uint64_t addr, bool write)
{
	c->sregs.cr2 = addr;
	c->sregs_dirty = true;
	return inject(c, VEC_PF, true, write ? 0x2 : 0x0);
}

/* Builds a KVM segment from the descriptor of selector sel in the guest's GDT. */
static int load_descriptor(struct ctx *c, uint16_t sel, struct kvm_segment *seg)
{
	uint64_t d;

	if ((sel & 4) || (uint32_t)(sel | 7) > c->sregs.gdt.limit)
		return -EINVAL;
	if (gva_read(c->s->mem, &c->gva, c->sregs.gdt.base + (sel & ~7u), &d, 8))
		return -EFAULT;
	uint32_t lo = (uint32_t)d, hi = (uint32_t)(d >> 32);
	memset(seg, 0, sizeof(*seg));
	seg->selector = sel;
	seg->base = (lo >> 16) | ((hi & 0xff) << 16) | (hi & 0xff000000u);
	seg->limit = (lo & 0xffff) | (hi & 0xf0000);
	seg->type = (hi >> 8) & 0xf;
	seg->s = (hi >> 12) & 1;
	seg->dpl = (hi >> 13) & 3;
	seg->present = (hi >> 15) & 1;
	seg->avl = (hi >> 20) & 1;
	seg->l = (hi >> 21) & 1;
	seg->db = (hi >> 22) & 1;
	seg->g = (hi >> 23) & 1;
	if (seg->g)
		seg->limit = (seg->limit << 12) | 0xfff;
	return seg->present ? 0 : -EINVAL;
}

/* Flat 64-bit code / data segments as SYSCALL and SYSRET define them. */
static void flat_seg(struct kvm_segment *s, uint16_t sel, bool code, unsigned int dpl)
{
	*s = (struct kvm_segment){ .base = 0,
				   .limit = 0xffffffff,
				   .selector = sel,
				   .type = code ? 0xb : 0x3,
				   .present = 1,
				   .dpl = (uint8_t)dpl,
				   .db = code ? 0 : 1,
				   .s = 1,
				   .l = code ? 1 : 0,
				   .g = 1 };
}

static int do_iret(struct ctx *c, const struct insn *in)
{
	uint64_t f[5]; /* RIP, CS, RFLAGS, RSP, SS */
	struct kvm_segment cs, ss;

	if (!(c->sregs.efer & EFER_LMA) || in->opsize != 8)
		return -ENOTSUP;
	if (gva_read(c->s->mem, &c->gva, c->regs.rsp, f, sizeof(f)))
		return page_fault(c, c->regs.rsp, false);
	uint16_t cs_sel = (uint16_t)f[1], ss_sel = (uint16_t)f[4];
	unsigned int rpl = cs_sel & 3;
	if (rpl < cpl(c) || load_descriptor(c, cs_sel, &cs) || !cs.s || !(cs.type & 8))
		return inject(c, VEC_GP, true, cs_sel & ~3u);
	if (ss_sel & ~3u) {
		if (load_descriptor(c, ss_sel, &ss) || (ss.type & 8) || (ss_sel & 3) != rpl)
			return inject(c, VEC_GP, true, ss_sel & ~3u);
	} else {
		if (rpl == 3)
			return inject(c, VEC_GP, true, 0);
		flat_seg(&ss, ss_sel, false, rpl);
		ss.unusable = 1;
	}
	/* The descriptor says what CPL the segment grants; KVM reads CPL from SS.DPL. */
	ss.dpl = (uint8_t)rpl;
	c->regs.rip = f[0];
	c->regs.rflags = (c->regs.rflags & ~RFLAGS_IRET_MASK) | (f[2] & RFLAGS_IRET_MASK) | 2;
	c->regs.rsp = f[3];
	c->sregs.cs = cs;
	c->sregs.ss = ss;
	c->sregs_dirty = true;

	/* IRET ends NMI blocking. */
	struct kvm_vcpu_events ev;
	if (ioctl(c->fd, KVM_GET_VCPU_EVENTS, &ev) == 0 && ev.nmi.masked) {
		ev.nmi.masked = 0;
		ioctl(c->fd, KVM_SET_VCPU_EVENTS, &ev);
	}
	return 0;
}

static int do_sysret(struct ctx *c, const struct insn *in)
{
	uint64_t star;

	if (!(c->sregs.efer & EFER_LMA) || cpl(c) != 0)
		return inject(c, VEC_GP, true, 0);
	if (kvm_vcpu_get_msr(c->fd, MSR_STAR, &star))
		return -EIO;
	uint16_t base = (uint16_t)(star >> 48);
	if (in->rex_w) {
		if (!canonical(c->regs.rcx))
			return inject(c, VEC_GP, true, 0);
		flat_seg(&c->sregs.cs, (uint16_t)((base + 16) | 3), true, 3);
		c->regs.rip = c->regs.rcx;
	} else {
		flat_seg(&c->sregs.cs, (uint16_t)(base | 3), true, 3);
		c->sregs.cs.l = 0;
		c->sregs.cs.db = 1;
		c->regs.rip = (uint32_t)c->regs.rcx;
	}
	flat_seg(&c->sregs.ss, (uint16_t)((base + 8) | 3), false, 3);
	c->regs.rflags = (c->regs.r11 & 0x3c7fd7ULL) | 2;
	c->sregs_dirty = true;
	return 0;
}

struct gate {
	uint64_t offset;
	uint16_t sel;
	unsigned int type, dpl, ist;
	bool present;
};

/* Reads the guest's 64-bit IDT gate for vector. */
static int gate_read(struct ctx *c, unsigned int vector, struct gate *g)
{
	uint64_t e[2];

	if ((uint64_t)vector * 16 + 15 > c->sregs.idt.limit ||
	    gva_read(c->s->mem, &c->gva, c->sregs.idt.base + vector * 16, e, sizeof(e)))
		return -EFAULT;
	g->offset = (e[0] & 0xffff) | ((e[0] >> 32) & 0xffff0000ULL) | (e[1] << 32);
	g->sel = (uint16_t)(e[0] >> 16);
	g->ist = (unsigned int)(e[0] >> 32) & 7;
	g->type = (unsigned int)(e[0] >> 40) & 0xf;
	g->dpl = (unsigned int)(e[0] >> 45) & 3;
	g->present = (e[0] >> 47) & 1;
	return 0;
}

/* True when RIP is the first instruction of the handler for vector (after an optional endbr64). */
static bool at_handler_entry(struct ctx *c, unsigned int vector)
{
	struct gate g;

	return cpl(c) == 0 && (c->sregs.efer & EFER_LMA) && !gate_read(c, vector, &g) &&
	       (c->regs.rip == g.offset || c->regs.rip == g.offset + 4);
}

/*
 * The backend's broken SYSCALL: the vCPU reaches LSTAR with RCX, R11 and the
 * masked RFLAGS already set but still at CPL3, so the first fetch at LSTAR
 * page-faults into the guest's #PF handler. That handler's first emulated
 * instruction is clac (SMAP); there tern recognises the frame and turns it into the
 * CPL0 syscall entry the guest asked for. Returns 1 if it did.
 */
static int fix_broken_syscall(struct ctx *c)
{
	uint64_t lstar, star, fmask, frame[6];

	if (!at_handler_entry(c, VEC_PF))
		return 0;
	if (kvm_vcpu_get_msr(c->fd, MSR_LSTAR, &lstar) || c->sregs.cr2 != lstar)
		return 0;
	if (gva_read(c->s->mem, &c->gva, c->regs.rsp, frame, sizeof(frame)))
		return 0;
	/* frame: error code, RIP, CS, RFLAGS, RSP, SS */
	if (frame[1] != lstar || (frame[2] & 3) != 3)
		return 0;
	if (kvm_vcpu_get_msr(c->fd, MSR_STAR, &star) ||
	    kvm_vcpu_get_msr(c->fd, MSR_SYSCALL_MASK, &fmask))
		return 0;
	uint16_t kcs = (uint16_t)(star >> 32) & ~3u;
	flat_seg(&c->sregs.cs, kcs, true, 0);
	flat_seg(&c->sregs.ss, (uint16_t)(kcs + 8), false, 0);
	c->regs.rip = lstar;
	c->regs.rsp = frame[4];
	c->regs.rflags = (c->regs.r11 & ~fmask & ~RFLAGS_RF) | 2;
	c->sregs_dirty = true;
	atomic_fetch_add(&c->s->syscall_fixups, 1);
	return 1;
}

/*
 * The backend also delivers `int n` from ring 3 as #UD at the int instruction.
 * Seen at the #UD handler's first clac: undo that delivery and deliver vector n
 * as the CPU would (gate from the IDT, stack from the TSS, #GP if the gate's DPL
 * forbids ring 3). Returns 1 if it did.
 */
static int fix_user_int(struct ctx *c)
{
	uint64_t frame[5], stack, rflags; /* RIP, CS, RFLAGS, RSP, SS */
	uint8_t op[2];
	struct gate g;
	struct kvm_segment cs;
	bool err = false;
	uint64_t errcode = 0;

	if (!at_handler_entry(c, VEC_UD) ||
	    gva_read(c->s->mem, &c->gva, c->regs.rsp, frame, sizeof(frame)) ||
	    (frame[1] & 3) != 3 || gva_read(c->s->mem, &c->gva, frame[0], op, 2) || op[0] != 0xcd)
		return 0;
	unsigned int vector = op[1];
	uint64_t ret = frame[0] + 2;
	if (gate_read(c, vector, &g) || !g.present || g.dpl < 3) {
		/* A gate ring 3 may not use: #GP with the IDT-vector error code, at the int. */
		errcode = (uint64_t)vector * 8 + 2;
		err = true;
		vector = VEC_GP;
		ret = frame[0];
		if (gate_read(c, vector, &g) || !g.present)
			return 0;
	}
	if (load_descriptor(c, g.sel, &cs) || !cs.l)
		return 0;
	/* Ring 3 -> 0 takes RSP0 from the TSS, or the gate's IST slot. */
	uint64_t tss_off = g.ist ? 0x24 + (uint64_t)(g.ist - 1) * 8 : 4;
	if (gva_read(c->s->mem, &c->gva, c->sregs.tr.base + tss_off, &stack, 8))
		return 0;
	uint64_t push[6] = { errcode, ret, frame[1], frame[2], frame[3], frame[4] };
	unsigned int n = err ? 6 : 5;
	stack = (stack & ~0xfULL) - n * 8;
	if (gva_write(c->s->mem, &c->gva, stack, err ? push : push + 1, n * 8))
		return 0;
	rflags = frame[2] & ~((1ULL << 8) | (1ULL << 14) | RFLAGS_RF | (1ULL << 17));
	if (g.type == 0xe)
		rflags &= ~(1ULL << 9); /* interrupt gates clear IF */
	c->sregs.cs = cs;
	c->sregs.cs.selector = g.sel & ~3u;
	flat_seg(&c->sregs.ss, 0, false, 0);
	c->sregs.ss.unusable = 1;
	c->regs.rip = g.offset;
	c->regs.rsp = stack;
	c->regs.rflags = rflags | 2;
	c->sregs_dirty = true;
	atomic_fetch_add(&c->s->user_int_fixups, 1);
	return 1;
}

/*
 * LAR / LSL: access rights or limit of the descriptor a selector names, with ZF
 * saying whether the selector was valid and visible at this privilege. Linux's
 * paranoid entry (NMI, #DB, #MC) reads the CPU number with lsl when it has no RDPID.
 */
static int do_lar_lsl(struct ctx *c, const struct insn *in, uint64_t sel)
{
	uint64_t d = 0;
	uint16_t s = (uint16_t)sel;
	bool ok = false;

	if ((s & ~3u) && !(s & 4) && (uint32_t)(s | 7) <= c->sregs.gdt.limit &&
	    !gva_read(c->s->mem, &c->gva, c->sregs.gdt.base + (s & ~7u), &d, 8)) {
		uint32_t hi = (uint32_t)(d >> 32);
		unsigned int type = (hi >> 8) & 0xf, dpl = (hi >> 13) & 3;
		bool system = !((hi >> 12) & 1);
		bool conforming_code = !system && (type & 0xc) == 0xc;
		/* System descriptors that have a limit / rights: LDT, TSS (16/32/64-bit). */
		bool sys_ok = type == 1 || type == 2 || type == 3 || type == 9 || type == 11 ||
			      (in->op == INSN_LAR && (type == 4 || type == 12));
		unsigned int rpl = s & 3, priv = cpl(c) > rpl ? cpl(c) : rpl;
		ok = (hi >> 15) & 1 && (system ? sys_ok : true) && (conforming_code || dpl >= priv);
	}
	if (ok) {
		uint32_t lo = (uint32_t)d, hi = (uint32_t)(d >> 32);
		uint64_t v;
		if (in->op == INSN_LSL) {
			v = (lo & 0xffff) | (hi & 0xf0000);
			if (hi & (1u << 23))
				v = (v << 12) | 0xfff;
		} else {
			v = hi & 0x00f0ff00u;
		}
		set_gpr(c, in->reg, v, in->opsize);
		c->regs.rflags |= RFLAGS_ZF;
	} else {
		c->regs.rflags &= ~RFLAGS_ZF;
	}
	return 0;
}

static int read_operand(struct ctx *c, const struct insn *in, unsigned int size, uint64_t *v)
{
	if (in->mod_reg) {
		*v = trunc_to(*gpr_ptr(&c->regs, in->rm), size);
		return 0;
	}
	uint64_t a = seg_base(c, in->seg) + insn_ea(in, c->gpr, c->regs.rip + in->len);
	*v = 0;
	if (gva_read(c->s->mem, &c->gva, a, v, size))
		return page_fault(c, a, false) ?: 1;
	return 0;
}

/*
 * MXCSR lives in the XSAVE legacy area (byte 24); on this backend KVM_GET/SET_FPU
 * do not carry it, KVM_GET/SET_XSAVE do.
 */
static int mxcsr_access(int fd, uint32_t *mx, bool write)
{
	struct kvm_xsave *x = malloc(sizeof(*x));
	int r = 0;

	if (!x)
		return -ENOMEM;
	if (ioctl(fd, KVM_GET_XSAVE, x) < 0) {
		r = -errno;
	} else if (write) {
		x->region[6] = *mx;
		/*
		 * KVM takes MXCSR from the buffer only when XSTATE_BV (byte 512) marks
		 * SSE state present; the XMM registers in the buffer are the current ones.
		 */
		x->region[128] |= 1u << 1;
		if (ioctl(fd, KVM_SET_XSAVE, x) < 0)
			r = -errno;
	} else {
		*mx = x->region[6];
	}
	free(x);
	return r;
}

static uint64_t random_u64(void)
{
	uint64_t v = 0;

	while (getrandom(&v, sizeof(v), 0) != sizeof(v))
		;
	return v;
}

/* Executes one decoded instruction. 0 = done (RIP advanced or exception injected). */
static int execute(struct ctx *c, const struct insn *in)
{
	uint64_t v, a;
	int r;

	switch (in->op) {
	case INSN_INT3:
		/* Trap: the #BP frame points after the int3. */
		c->regs.rip += in->len;
		return inject(c, VEC_BP, false, 0);
	case INSN_UD2:
		return inject(c, VEC_UD, false, 0);
	case INSN_FWAIT:
		/* #NM when the FPU is marked as not loaded; otherwise no x87 exception can be pending. */
		if ((c->sregs.cr0 & (CR0_TS | CR0_MP)) == (CR0_TS | CR0_MP))
			return inject(c, VEC_NM, false, 0);
		break;
	case INSN_STAC:
	case INSN_CLAC:
		if (cpl(c) != 0)
			return inject(c, VEC_UD, false, 0);
		if (in->op == INSN_STAC) {
			c->regs.rflags |= RFLAGS_AC;
		} else {
			c->regs.rflags &= ~RFLAGS_AC;
			if (fix_broken_syscall(c) || fix_user_int(c))
				return 0;
		}
		break;
	case INSN_SWAPGS:
		if (cpl(c) != 0)
			return inject(c, VEC_UD, false, 0);
		if (kvm_vcpu_get_msr(c->fd, MSR_KERNEL_GS_BASE, &v) ||
		    kvm_vcpu_set_msr(c->fd, MSR_KERNEL_GS_BASE, c->sregs.gs.base))
			return -EIO;
		c->sregs.gs.base = v;
		c->sregs_dirty = true;
		break;
	case INSN_SYSRET:
		return do_sysret(c, in);
	case INSN_IRET:
		return do_iret(c, in);
	case INSN_POPCNT:
		if ((r = read_operand(c, in, in->opsize, &v)))
			return r < 0 ? r : 0;
		set_gpr(c, in->reg, (uint64_t)__builtin_popcountll(v), in->opsize);
		c->regs.rflags &= ~RFLAGS_ARITH;
		if (!v)
			c->regs.rflags |= RFLAGS_ZF;
		break;
	case INSN_LAR:
	case INSN_LSL:
		if ((r = read_operand(c, in, 2, &v)))
			return r < 0 ? r : 0;
		do_lar_lsl(c, in, v);
		break;
	case INSN_RDRAND:
	case INSN_RDSEED:
		set_gpr(c, in->rm, trunc_to(random_u64(), in->opsize), in->opsize);
		c->regs.rflags = (c->regs.rflags & ~RFLAGS_ARITH) | RFLAGS_CF;
		break;
	case INSN_RDFSBASE:
	case INSN_RDGSBASE:
	case INSN_WRFSBASE:
	case INSN_WRGSBASE: {
		if (!(c->sregs.cr4 & CR4_FSGSBASE))
			return inject(c, VEC_UD, false, 0);
		struct kvm_segment *s = (in->op == INSN_RDFSBASE || in->op == INSN_WRFSBASE) ?
						&c->sregs.fs :
						&c->sregs.gs;
		if (in->op == INSN_RDFSBASE || in->op == INSN_RDGSBASE) {
			set_gpr(c, in->rm, trunc_to(s->base, in->opsize), in->opsize);
		} else {
			v = trunc_to(*gpr_ptr(&c->regs, in->rm), in->opsize);
			if (!canonical(v))
				return inject(c, VEC_GP, true, 0);
			s->base = v;
			c->sregs_dirty = true;
		}
		break;
	}
	case INSN_LDMXCSR:
	case INSN_STMXCSR: {
		uint32_t mx;
		if (!(c->sregs.cr4 & CR4_OSFXSR))
			return inject(c, VEC_UD, false, 0);
		a = seg_base(c, in->seg) + insn_ea(in, c->gpr, c->regs.rip + in->len);
		if (in->op == INSN_LDMXCSR) {
			if (gva_read(c->s->mem, &c->gva, a, &mx, 4))
				return page_fault(c, a, false);
			if (mx & 0xffff0000u)
				return inject(c, VEC_GP, true, 0);
			if ((r = mxcsr_access(c->fd, &mx, true)))
				return r;
		} else {
			if ((r = mxcsr_access(c->fd, &mx, false)))
				return r;
			if (gva_write(c->s->mem, &c->gva, a, &mx, 4))
				return page_fault(c, a, true);
		}
		break;
	}
	default:
		return -ENOTSUP;
	}
	c->regs.rip += in->len;
	return 0;
}

static void log_unhandled(const struct ctx *c, const uint8_t *b, size_t n, const char *why)
{
	char hex[64] = "";

	for (size_t i = 0; i < n && i < 15; i++)
		snprintf(hex + 3 * i, sizeof(hex) - 3 * i, "%02x ", b[i]);
	log_error("software KVM: cannot complete instruction at rip 0x%llx (%s): %s",
		  (unsigned long long)c->regs.rip, why, hex);
}

int swkvm_handle(struct swkvm *s, int vcpu_fd)
{
	struct ctx c = { .s = s, .fd = vcpu_fd };
	uint8_t b[15];
	size_t n;
	struct insn in;

	if (ioctl(vcpu_fd, KVM_GET_REGS, &c.regs) < 0 ||
	    ioctl(vcpu_fd, KVM_GET_SREGS, &c.sregs) < 0)
		return -errno;
	c.gva = (struct gva_ctx){ c.sregs.cr0, c.sregs.cr3, c.sregs.cr4, c.sregs.efer };
	for (unsigned int i = 0; i < 16; i++)
		c.gpr[i] = *gpr_ptr(&c.regs, i);
	bool long64 = (c.sregs.efer & EFER_LMA) && c.sregs.cs.l;
	uint64_t pc = c.regs.rip + (long64 ? 0 : c.sregs.cs.base);
	/* Fetch as much as is mapped: the instruction may end just before an unmapped page. */
	for (n = 0; n < sizeof(b); n++)
		if (gva_read(s->mem, &c.gva, pc + n, &b[n], 1))
			break;
	if (insn_decode(b, n, long64, &in)) {
		log_unhandled(&c, b, n, "not an instruction tern completes");
		return -ENOTSUP;
	}
	int r = execute(&c, &in);
	if (r) {
		log_unhandled(&c, b, n, insn_name(in.op));
		return r;
	}
	if (c.sregs_dirty && ioctl(vcpu_fd, KVM_SET_SREGS, &c.sregs) < 0)
		return -errno;
	if (ioctl(vcpu_fd, KVM_SET_REGS, &c.regs) < 0)
		return -errno;
	atomic_fetch_add(&s->handled[in.op], 1);
	return 0;
}

void swkvm_log_stats(struct swkvm *s)
{
	char line[512];
	int n = snprintf(line, sizeof(line), "software KVM: completed");

	for (int i = 1; i < INSN_COUNT && n > 0 && (size_t)n < sizeof(line); i++) {
		unsigned long v = atomic_load(&s->handled[i]);
		if (v)
			n += snprintf(line + n, sizeof(line) - (size_t)n, " %s=%lu", insn_name(i),
				      v);
	}
	if (n > 0 && (size_t)n < sizeof(line))
		snprintf(line + n, sizeof(line) - (size_t)n,
			 " syscall-fixups=%lu user-int-fixups=%lu", atomic_load(&s->syscall_fixups),
			 atomic_load(&s->user_int_fixups));
	log_info("%s", line);
}
