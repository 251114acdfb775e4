/* Minimal x86 decoder: prefixes, REX, the recognised opcodes, ModRM/SIB/displacement. */
#include "arch/x86/insn.h"

#include <errno.h>
#include <string.h>

static const char *const names[INSN_COUNT] = {
	[INSN_UNKNOWN] = "unknown",   [INSN_INT3] = "int3",	    [INSN_UD2] = "ud2",
	[INSN_FWAIT] = "fwait",	      [INSN_STAC] = "stac",	    [INSN_CLAC] = "clac",
	[INSN_SWAPGS] = "swapgs",     [INSN_SYSRET] = "sysret",	    [INSN_IRET] = "iret",
	[INSN_POPCNT] = "popcnt",     [INSN_RDRAND] = "rdrand",	    [INSN_RDSEED] = "rdseed",
	[INSN_RDFSBASE] = "rdfsbase", [INSN_RDGSBASE] = "rdgsbase", [INSN_WRFSBASE] = "wrfsbase",
	[INSN_WRGSBASE] = "wrgsbase", [INSN_LDMXCSR] = "ldmxcsr",   [INSN_STMXCSR] = "stmxcsr",
	[INSN_LAR] = "lar",	      [INSN_LSL] = "lsl",
};

const char *insn_name(enum insn_op op)
{
	return op < INSN_COUNT ? names[op] : "unknown";
}

struct cursor {
	const uint8_t *b;
	size_t n, i;
};

static int next(struct cursor *c, uint8_t *v)
{
	if (c->i >= c->n || c->i >= 15)
		return -EINVAL;
	*v = c->b[c->i++];
	return 0;
}

static int imm(struct cursor *c, unsigned int size, int64_t *v)
{
	uint8_t x;
	uint64_t u = 0;

	for (unsigned int k = 0; k < size; k++) {
		if (next(c, &x))
			return -EINVAL;
		u |= (uint64_t)x << (8 * k);
	}
	/* sign-extend */
	unsigned int bits = size * 8;
	*v = (int64_t)(u << (64 - bits)) >> (64 - bits);
	return 0;
}

static int modrm(struct cursor *c, struct insn *in, unsigned int rex, bool long64)
{
	uint8_t m, sib;
	unsigned int mod, rm;

	if (next(c, &m))
		return -EINVAL;
	mod = m >> 6;
	in->reg = ((m >> 3) & 7) | ((rex & 4) << 1);
	rm = m & 7;
	in->base = in->index = -1;
	if (mod == 3) {
		in->mod_reg = true;
		in->rm = rm | ((rex & 1) << 3);
		return 0;
	}
	if (rm == 4) {
		if (next(c, &sib))
			return -EINVAL;
		in->scale = 1u << (sib >> 6);
		unsigned int idx = ((sib >> 3) & 7) | ((rex & 2) << 2);
		if (idx != 4)
			in->index = (int)idx;
		unsigned int base = (sib & 7) | ((rex & 1) << 3);
		if ((sib & 7) == 5 && mod == 0)
			return imm(c, 4, &in->disp);
		in->base = (int)base;
	} else if (rm == 5 && mod == 0) {
		in->rip_rel = long64; /* outside 64-bit mode this is a plain disp32 */
		return imm(c, 4, &in->disp);
	} else {
		in->base = (int)(rm | ((rex & 1) << 3));
	}
	if (mod == 1)
		return imm(c, 1, &in->disp);
	if (mod == 2)
		return imm(c, 4, &in->disp);
	return 0;
}

static int seg_index(uint8_t prefix)
{
	switch (prefix) {
	case 0x26:
		return 0;
	case 0x2e:
		return 1;
	case 0x36:
		return 2;
	case 0x3e:
		return 3;
	case 0x64:
		return 4;
	default:
		return 5;
	}
}

int insn_decode(const uint8_t *b, size_t n, bool long64, struct insn *in)
{
	struct cursor c = { b, n, 0 };
	bool p66 = false, pf3 = false;
	unsigned int rex = 0;
	uint8_t op, op2, m;

	memset(in, 0, sizeof(*in));
	in->seg = -1;
	/* Legacy prefixes, then (64-bit only) one REX immediately before the opcode. */
	for (;;) {
		if (next(&c, &op))
			return -EINVAL;
		switch (op) {
		case 0x66:
			p66 = true;
			continue;
		case 0x67:
			in->addr32 = true;
			continue;
		case 0xf3:
			pf3 = true;
			continue;
		case 0xf2:
		case 0xf0:
			continue;
		case 0x26:
		case 0x2e:
		case 0x36:
		case 0x3e:
		case 0x64:
		case 0x65:
			in->seg = seg_index(op);
			continue;
		}
		if (long64 && (op & 0xf0) == 0x40) {
			rex = op & 0xf;
			if (next(&c, &op))
				return -EINVAL;
		}
		break;
	}
	if (!long64) {
		/* 16-bit addressing (0x67 in 32-bit code) is not something tern decodes. */
		if (in->addr32)
			return -EINVAL;
		in->addr32 = true;
	}
	in->rex_w = rex & 8;
	in->opsize = in->rex_w ? 8 : p66 ? 2 : 4;

	switch (op) {
	case 0xcc:
		in->op = INSN_INT3;
		goto done;
	case 0x9b:
		in->op = INSN_FWAIT;
		goto done;
	case 0xcf:
		in->op = INSN_IRET;
		goto done;
	case 0x0f:
		break;
	default:
		return -EINVAL;
	}
	if (next(&c, &op2))
		return -EINVAL;
	switch (op2) {
	case 0x0b:
		in->op = INSN_UD2;
		goto done;
	case 0x07:
		in->op = INSN_SYSRET;
		goto done;
	case 0x01:
		if (next(&c, &m))
			return -EINVAL;
		if (m == 0xca)
			in->op = INSN_CLAC;
		else if (m == 0xcb)
			in->op = INSN_STAC;
		else if (m == 0xf8 && long64)
			in->op = INSN_SWAPGS;
		else
			return -EINVAL;
		goto done;
	case 0xb8:
		if (!pf3)
			return -EINVAL;
		in->op = INSN_POPCNT;
		break;
	case 0x02:
	case 0x03:
		in->op = op2 == 0x02 ? INSN_LAR : INSN_LSL;
		break;
	case 0xc7:
	case 0xae:
		break;
	default:
		return -EINVAL;
	}
	if (modrm(&c, in, rex, long64))
		return -EINVAL;
	if (op2 == 0xc7) {
		if (!in->mod_reg || pf3 || (in->reg & 7) < 6)
			return -EINVAL;
		in->op = (in->reg & 7) == 6 ? INSN_RDRAND : INSN_RDSEED;
	} else if (op2 == 0xae) {
		unsigned int r = in->reg & 7;
		if (in->mod_reg && pf3 && long64 && r <= 3) {
			const enum insn_op ops[] = { INSN_RDFSBASE, INSN_RDGSBASE, INSN_WRFSBASE,
						     INSN_WRGSBASE };
			in->op = ops[r];
			in->opsize = in->rex_w ? 8 : 4;
		} else if (!in->mod_reg && !pf3 && !p66 && (r == 2 || r == 3)) {
			in->op = r == 2 ? INSN_LDMXCSR : INSN_STMXCSR;
		} else {
			return -EINVAL;
		}
	}
done:
	in->len = (unsigned int)c.i;
	return 0;
}

uint64_t insn_ea(const struct insn *in, const uint64_t gpr[16], uint64_t next_rip)
{
	uint64_t a = (uint64_t)in->disp;

	if (in->rip_rel)
		a += next_rip;
	if (in->base >= 0)
		a += gpr[in->base];
	if (in->index >= 0)
		a += gpr[in->index] * in->scale;
	if (in->addr32)
		a &= 0xffffffffULL;
	return a;
}
