/*
 * Tests for the software-KVM instruction decoder: each recognised instruction from
 * its bytes (length, operand size, ModRM/SIB/displacement, prefixes), rejection of
 * truncated and unknown encodings, and effective-address computation.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86/insn.h"
#include "unit.h"

#define RAX 0
#define RCX 1
#define RDX 2
#define RBX 3
#define RSP 4
#define RBP 5
#define RSI 6
#define RDI 7
#define R8 8
#define R9 9
#define R12 12
#define R13 13

/* Decodes from an exact-size heap copy so reads past n are caught by ASan. */
static int dec(const uint8_t *b, size_t n, bool long64, struct insn *in)
{
	uint8_t *copy = calloc(1, n ? n : 1);
	int r;

	if (!copy)
		return -ENOMEM;
	if (n)
		memcpy(copy, b, n);
	r = insn_decode(copy, n, long64, in);
	free(copy);
	return r;
}

/*
 * Decodes b as one whole instruction in 64-bit mode (or 32-bit when !long64) and
 * checks that every shorter prefix of it is rejected as truncated.
 */
#define DECODE(in, long64, ...)                                                                \
	decode_all((const uint8_t[]){ __VA_ARGS__ }, sizeof((const uint8_t[]){ __VA_ARGS__ }), \
		   long64, in)

static int decode_all(const uint8_t *b, size_t n, bool long64, struct insn *in)
{
	struct insn tmp;
	int r = dec(b, n, long64, in);

	if (r == 0) {
		CHECK(in->len == n);
		for (size_t k = 0; k < n; k++)
			CHECK(dec(b, k, long64, &tmp) == -EINVAL);
	}
	return r;
}

TEST(insn_simple_opcodes)
{
	struct insn in;

	REQUIRE(DECODE(&in, true, 0xcc) == 0);
	CHECK(in.op == INSN_INT3 && in.len == 1);
	REQUIRE(DECODE(&in, true, 0x0f, 0x0b) == 0);
	CHECK(in.op == INSN_UD2 && in.len == 2);
	REQUIRE(DECODE(&in, true, 0x9b) == 0);
	CHECK(in.op == INSN_FWAIT && in.len == 1);
	REQUIRE(DECODE(&in, true, 0x0f, 0x01, 0xca) == 0);
	CHECK(in.op == INSN_CLAC && in.len == 3);
	REQUIRE(DECODE(&in, true, 0x0f, 0x01, 0xcb) == 0);
	CHECK(in.op == INSN_STAC && in.len == 3);
	REQUIRE(DECODE(&in, true, 0x0f, 0x01, 0xf8) == 0);
	CHECK(in.op == INSN_SWAPGS && in.len == 3);
	REQUIRE(DECODE(&in, true, 0x48, 0x0f, 0x07) == 0);
	CHECK(in.op == INSN_SYSRET && in.len == 3 && in.rex_w && in.opsize == 8);
	REQUIRE(DECODE(&in, true, 0x48, 0xcf) == 0);
	CHECK(in.op == INSN_IRET && in.len == 2 && in.rex_w && in.opsize == 8);
	/* Without REX.W these are the 32-bit forms. */
	REQUIRE(DECODE(&in, true, 0xcf) == 0);
	CHECK(in.op == INSN_IRET && !in.rex_w && in.opsize == 4);
	REQUIRE(DECODE(&in, true, 0x0f, 0x07) == 0);
	CHECK(in.op == INSN_SYSRET && !in.rex_w);
	/* Prefixes count in the length. */
	REQUIRE(DECODE(&in, true, 0x2e, 0x3e, 0x0f, 0x0b) == 0);
	CHECK(in.op == INSN_UD2 && in.len == 4);
}

TEST(insn_32bit_mode)
{
	struct insn in;

	/* swapgs exists only in 64-bit mode. */
	CHECK(DECODE(&in, false, 0x0f, 0x01, 0xf8) == -EINVAL);
	/* 0x48 is "dec eax" outside 64-bit mode, not REX.W. */
	CHECK(DECODE(&in, false, 0x48, 0xcf) == -EINVAL);
	REQUIRE(DECODE(&in, false, 0xcf) == 0);
	CHECK(in.op == INSN_IRET && in.len == 1);
	REQUIRE(DECODE(&in, false, 0x0f, 0x01, 0xcb) == 0);
	CHECK(in.op == INSN_STAC);
	/* 16-bit addressing is not decoded. */
	CHECK(DECODE(&in, false, 0x67, 0xf3, 0x0f, 0xb8, 0x00) == -EINVAL);
}

TEST(insn_names)
{
	CHECK(strcmp(insn_name(INSN_POPCNT), "popcnt") == 0);
	CHECK(strcmp(insn_name(INSN_LDMXCSR), "ldmxcsr") == 0);
	CHECK(strcmp(insn_name(INSN_UNKNOWN), "unknown") == 0);
	CHECK(strcmp(insn_name(INSN_COUNT), "unknown") == 0);
	CHECK(strcmp(insn_name((enum insn_op)1000), "unknown") == 0);
	for (int op = INSN_INT3; op < INSN_COUNT; op++) {
		REQUIRE(insn_name((enum insn_op)op) != NULL);
		CHECK(strcmp(insn_name((enum insn_op)op), "unknown") != 0);
		for (int other = INSN_INT3; other < op; other++)
			CHECK(strcmp(insn_name((enum insn_op)op), insn_name((enum insn_op)other)));
	}
}

TEST(insn_popcnt_register)
{
	struct insn in;

	/* popcnt eax, ecx */
	REQUIRE(DECODE(&in, true, 0xf3, 0x0f, 0xb8, 0xc1) == 0);
	CHECK(in.op == INSN_POPCNT && in.len == 4);
	CHECK(in.mod_reg && in.reg == RAX && in.rm == RCX && in.opsize == 4);
	/* popcnt rax, rcx */
	REQUIRE(DECODE(&in, true, 0xf3, 0x48, 0x0f, 0xb8, 0xc1) == 0);
	CHECK(in.op == INSN_POPCNT && in.opsize == 8 && in.len == 5);
	/* popcnt r9, r8: REX.R and REX.B extend reg and rm */
	REQUIRE(DECODE(&in, true, 0xf3, 0x4d, 0x0f, 0xb8, 0xc8) == 0);
	CHECK(in.reg == R9 && in.rm == R8 && in.opsize == 8);
	/* popcnt ax, cx */
	REQUIRE(DECODE(&in, true, 0x66, 0xf3, 0x0f, 0xb8, 0xc1) == 0);
	CHECK(in.opsize == 2);
	/* REX.W wins over 0x66. */
	REQUIRE(DECODE(&in, true, 0x66, 0xf3, 0x48, 0x0f, 0xb8, 0xc1) == 0);
	CHECK(in.opsize == 8);
	/* 0f b8 without f3 is not popcnt. */
	CHECK(DECODE(&in, true, 0x0f, 0xb8, 0xc1) == -EINVAL);
}

TEST(insn_popcnt_memory_operands)
{
	struct insn in;

	/* [rdi] */
	REQUIRE(DECODE(&in, true, 0xf3, 0x0f, 0xb8, 0x07) == 0);
	CHECK(!in.mod_reg && in.base == RDI && in.index == -1 && in.disp == 0 && !in.rip_rel);
	/* [rsp+8]: rm=4 needs a SIB with no index */
	REQUIRE(DECODE(&in, true, 0xf3, 0x0f, 0xb8, 0x44, 0x24, 0x08) == 0);
	CHECK(in.base == RSP && in.index == -1 && in.disp == 8 && in.len == 6);
	/* [rsi-16]: disp8 is sign-extended */
	REQUIRE(DECODE(&in, true, 0xf3, 0x0f, 0xb8, 0x46, 0xf0) == 0);
	CHECK(in.base == RSI && in.disp == -16);
	/* rax, [rbx+rcx*4+0x12345678] */
	REQUIRE(DECODE(&in, true, 0xf3, 0x48, 0x0f, 0xb8, 0x84, 0x8b, 0x78, 0x56, 0x34, 0x12) == 0);
	CHECK(in.base == RBX && in.index == RCX && in.scale == 4 && in.disp == 0x12345678);
	CHECK(in.len == 10 && in.opsize == 8);
	/* disp32 is sign-extended too: [rbp-0x100] */
	REQUIRE(DECODE(&in, true, 0xf3, 0x0f, 0xb8, 0x85, 0x00, 0xff, 0xff, 0xff) == 0);
	CHECK(in.base == RBP && in.disp == -0x100);
	/* [rcx*8+0x1000]: SIB base 5 with mod 0 means no base, disp32 */
	REQUIRE(DECODE(&in, true, 0xf3, 0x0f, 0xb8, 0x04, 0xcd, 0x00, 0x10, 0x00, 0x00) == 0);
	CHECK(in.base == -1 && in.index == RCX && in.scale == 8 && in.disp == 0x1000);
	CHECK(in.len == 9);
	/* [rbp+rcx*4+0x10]: SIB base 5 is rbp when mod is not 0 */
	REQUIRE(DECODE(&in, true, 0xf3, 0x0f, 0xb8, 0x44, 0x8d, 0x10) == 0);
	CHECK(in.base == RBP && in.index == RCX && in.scale == 4 && in.disp == 0x10);
	CHECK(in.len == 6);
	/* [r12+r12*8]: REX.X and REX.B; index field 4 with REX.X is r12, not "none" */
	REQUIRE(DECODE(&in, true, 0xf3, 0x43, 0x0f, 0xb8, 0x04, 0xe4) == 0);
	CHECK(in.base == R12 && in.index == R12 && in.scale == 8 && in.disp == 0);
	/* [r13+0]: r13 as base needs mod 1 like rbp */
	REQUIRE(DECODE(&in, true, 0xf3, 0x41, 0x0f, 0xb8, 0x45, 0x00) == 0);
	CHECK(in.base == R13 && !in.rip_rel && in.len == 6);
	/* [rip+0x10] */
	REQUIRE(DECODE(&in, true, 0xf3, 0x0f, 0xb8, 0x05, 0x10, 0x00, 0x00, 0x00) == 0);
	CHECK(in.rip_rel && in.base == -1 && in.index == -1 && in.disp == 0x10 && in.len == 8);
	/* rm=5 mod=0 is RIP-relative whatever REX.B says */
	REQUIRE(DECODE(&in, true, 0xf3, 0x41, 0x0f, 0xb8, 0x05, 0x10, 0x00, 0x00, 0x00) == 0);
	CHECK(in.rip_rel && in.base == -1);
	/* ... and a plain disp32 outside 64-bit mode */
	REQUIRE(DECODE(&in, false, 0xf3, 0x0f, 0xb8, 0x05, 0x10, 0x00, 0x00, 0x00) == 0);
	CHECK(!in.rip_rel && in.base == -1 && in.disp == 0x10 && in.addr32);
	/* address-size prefix */
	REQUIRE(DECODE(&in, true, 0x67, 0xf3, 0x0f, 0xb8, 0x00) == 0);
	CHECK(in.addr32 && in.base == RAX && in.len == 5);
	REQUIRE(DECODE(&in, true, 0xf3, 0x0f, 0xb8, 0x00) == 0);
	CHECK(!in.addr32);
}

TEST(insn_rdrand_rdseed)
{
	struct insn in;

	REQUIRE(DECODE(&in, true, 0x0f, 0xc7, 0xf0) == 0);
	CHECK(in.op == INSN_RDRAND && in.mod_reg && in.rm == RAX && in.opsize == 4 && in.len == 3);
	REQUIRE(DECODE(&in, true, 0x66, 0x0f, 0xc7, 0xf3) == 0);
	CHECK(in.op == INSN_RDRAND && in.rm == RBX && in.opsize == 2 && in.len == 4);
	REQUIRE(DECODE(&in, true, 0x48, 0x0f, 0xc7, 0xf0) == 0);
	CHECK(in.op == INSN_RDRAND && in.opsize == 8);
	REQUIRE(DECODE(&in, true, 0x49, 0x0f, 0xc7, 0xf1) == 0);
	CHECK(in.op == INSN_RDRAND && in.rm == R9 && in.opsize == 8);
	REQUIRE(DECODE(&in, true, 0x0f, 0xc7, 0xfa) == 0);
	CHECK(in.op == INSN_RDSEED && in.rm == RDX && in.opsize == 4);
	REQUIRE(DECODE(&in, true, 0x66, 0x0f, 0xc7, 0xf8) == 0);
	CHECK(in.op == INSN_RDSEED && in.opsize == 2);
	REQUIRE(DECODE(&in, true, 0x48, 0x0f, 0xc7, 0xf8) == 0);
	CHECK(in.op == INSN_RDSEED && in.opsize == 8);
	REQUIRE(DECODE(&in, false, 0x0f, 0xc7, 0xf0) == 0);
	CHECK(in.op == INSN_RDRAND && in.opsize == 4);
	/* cmpxchg8b [rsi] (memory form, /1) and /1 register form are something else */
	CHECK(DECODE(&in, true, 0x0f, 0xc7, 0x0e) == -EINVAL);
	CHECK(DECODE(&in, true, 0x0f, 0xc7, 0xc8) == -EINVAL);
	/* rdrand's /6 with a memory operand is vmptrld: not ours */
	CHECK(DECODE(&in, true, 0x0f, 0xc7, 0x30) == -EINVAL);
	/* f3 0f c7 /7 is rdpid */
	CHECK(DECODE(&in, true, 0xf3, 0x0f, 0xc7, 0xf8) == -EINVAL);
}

TEST(insn_fsgsbase)
{
	struct insn in;

	REQUIRE(DECODE(&in, true, 0xf3, 0x0f, 0xae, 0xc0) == 0);
	CHECK(in.op == INSN_RDFSBASE && in.rm == RAX && in.opsize == 4 && in.len == 4);
	REQUIRE(DECODE(&in, true, 0xf3, 0x48, 0x0f, 0xae, 0xcb) == 0);
	CHECK(in.op == INSN_RDGSBASE && in.rm == RBX && in.opsize == 8 && in.len == 5);
	REQUIRE(DECODE(&in, true, 0xf3, 0x48, 0x0f, 0xae, 0xd7) == 0);
	CHECK(in.op == INSN_WRFSBASE && in.rm == RDI && in.opsize == 8);
	REQUIRE(DECODE(&in, true, 0xf3, 0x49, 0x0f, 0xae, 0xd8) == 0);
	CHECK(in.op == INSN_WRGSBASE && in.rm == R8 && in.opsize == 8);
	REQUIRE(DECODE(&in, true, 0xf3, 0x0f, 0xae, 0xd9) == 0);
	CHECK(in.op == INSN_WRGSBASE && in.rm == RCX && in.opsize == 4);
	/* 0x66 does not make a 16-bit form. */
	REQUIRE(DECODE(&in, true, 0x66, 0xf3, 0x0f, 0xae, 0xc0) == 0);
	CHECK(in.op == INSN_RDFSBASE && in.opsize == 4);
	/* Only in 64-bit mode, only with f3, only /0../3 */
	CHECK(DECODE(&in, false, 0xf3, 0x0f, 0xae, 0xc0) == -EINVAL);
	CHECK(DECODE(&in, true, 0x0f, 0xae, 0xc0) == -EINVAL);
	CHECK(DECODE(&in, true, 0xf3, 0x0f, 0xae, 0xe0) == -EINVAL);
}

TEST(insn_ldmxcsr_stmxcsr)
{
	struct insn in;

	/* ldmxcsr [rsp+8] */
	REQUIRE(DECODE(&in, true, 0x0f, 0xae, 0x54, 0x24, 0x08) == 0);
	CHECK(in.op == INSN_LDMXCSR && in.base == RSP && in.index == -1 && in.disp == 8);
	CHECK(in.len == 5 && in.seg == -1);
	/* stmxcsr [rsp+8] */
	REQUIRE(DECODE(&in, true, 0x0f, 0xae, 0x5c, 0x24, 0x08) == 0);
	CHECK(in.op == INSN_STMXCSR && in.base == RSP && in.disp == 8);
	/* ldmxcsr [rip+0x100] */
	REQUIRE(DECODE(&in, true, 0x0f, 0xae, 0x15, 0x00, 0x01, 0x00, 0x00) == 0);
	CHECK(in.op == INSN_LDMXCSR && in.rip_rel && in.disp == 0x100 && in.len == 7);
	/* stmxcsr fs:[rax], ldmxcsr gs:[r8+0x10] */
	REQUIRE(DECODE(&in, true, 0x64, 0x0f, 0xae, 0x18) == 0);
	CHECK(in.op == INSN_STMXCSR && in.seg == 4 && in.base == RAX && in.len == 4);
	REQUIRE(DECODE(&in, true, 0x65, 0x41, 0x0f, 0xae, 0x50, 0x10) == 0);
	CHECK(in.op == INSN_LDMXCSR && in.seg == 5 && in.base == R8 && in.disp == 0x10);
	CHECK(in.len == 6);
	/* Register forms are lfence etc.; /7 is clflush; 66 makes it clflushopt-like */
	CHECK(DECODE(&in, true, 0x0f, 0xae, 0xd0) == -EINVAL);
	CHECK(DECODE(&in, true, 0x0f, 0xae, 0xe8) == -EINVAL);
	CHECK(DECODE(&in, true, 0x0f, 0xae, 0x38) == -EINVAL);
	CHECK(DECODE(&in, true, 0x66, 0x0f, 0xae, 0x10) == -EINVAL);
	CHECK(DECODE(&in, true, 0xf3, 0x0f, 0xae, 0x10) == -EINVAL);
}

TEST(insn_segment_prefixes)
{
	const uint8_t prefix[] = { 0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65 };
	struct insn in;

	for (int i = 0; i < 6; i++) {
		uint8_t b[] = { prefix[i], 0x0f, 0xae, 0x10 };
		REQUIRE(dec(b, sizeof(b), true, &in) == 0);
		CHECK(in.seg == i);
	}
	/* The last segment prefix wins. */
	REQUIRE(DECODE(&in, true, 0x64, 0x65, 0x0f, 0xae, 0x10) == 0);
	CHECK(in.seg == 5);
}

TEST(insn_unknown_and_truncated)
{
	struct insn in;

	CHECK(dec(NULL, 0, true, &in) == -EINVAL);
	CHECK(DECODE(&in, true, 0x90) == -EINVAL);	       /* nop */
	CHECK(DECODE(&in, true, 0x0f, 0x05) == -EINVAL);       /* syscall */
	CHECK(DECODE(&in, true, 0x0f, 0xa2) == -EINVAL);       /* cpuid */
	CHECK(DECODE(&in, true, 0x0f, 0x01, 0xd0) == -EINVAL); /* xgetbv */
	CHECK(DECODE(&in, true, 0x0f, 0x01, 0xf9) == -EINVAL); /* rdtscp */
	CHECK(DECODE(&in, true, 0xcd, 0x80) == -EINVAL);       /* int 0x80 */
	CHECK(DECODE(&in, true, 0xf0) == -EINVAL);	       /* lock alone */
	CHECK(DECODE(&in, true, 0x66, 0x67, 0xf3) == -EINVAL); /* prefixes only */
	CHECK(DECODE(&in, true, 0x48) == -EINVAL);	       /* REX alone */
	CHECK(DECODE(&in, true, 0x0f) == -EINVAL);
	/* A failed decode leaves no stale operation behind. */
	REQUIRE(DECODE(&in, true, 0xcc) == 0);
	CHECK(DECODE(&in, true, 0x0f, 0x01) == -EINVAL);
	CHECK(in.op == INSN_UNKNOWN);
}

TEST(insn_length_limit)
{
	uint8_t b[16];
	struct insn in;

	/* 14 prefixes + int3 is the longest legal instruction. */
	memset(b, 0x66, sizeof(b));
	b[14] = 0xcc;
	REQUIRE(dec(b, 15, true, &in) == 0);
	CHECK(in.op == INSN_INT3 && in.len == 15);
	b[14] = 0x66;
	b[15] = 0xcc;
	CHECK(dec(b, 16, true, &in) == -EINVAL);
}

TEST(insn_effective_address)
{
	uint64_t gpr[16];
	struct insn in;

	for (int i = 0; i < 16; i++)
		gpr[i] = 0x1111111100000000ULL * (uint64_t)i;
	gpr[RBX] = 0x1000;
	gpr[RCX] = 0x10;
	gpr[RSI] = 0x2000;
	gpr[RSP] = 0x7ffff000;
	gpr[R12] = 0x300;
	gpr[RAX] = 0xffffffff00001000ULL;

	/* [rbx+rcx*4+0x12345678] */
	REQUIRE(DECODE(&in, true, 0xf3, 0x48, 0x0f, 0xb8, 0x84, 0x8b, 0x78, 0x56, 0x34, 0x12) == 0);
	CHECK(insn_ea(&in, gpr, 0) == 0x1000 + 0x40 + 0x12345678);
	/* [rsi-16] */
	REQUIRE(DECODE(&in, true, 0xf3, 0x0f, 0xb8, 0x46, 0xf0) == 0);
	CHECK(insn_ea(&in, gpr, 0) == 0x1ff0);
	/* [rsp+8] */
	REQUIRE(DECODE(&in, true, 0x0f, 0xae, 0x54, 0x24, 0x08) == 0);
	CHECK(insn_ea(&in, gpr, 0xdead) == 0x7ffff008);
	/* [r12+r12*8] */
	REQUIRE(DECODE(&in, true, 0xf3, 0x43, 0x0f, 0xb8, 0x04, 0xe4) == 0);
	CHECK(insn_ea(&in, gpr, 0) == 0x300 * 9);
	/* [rcx*8+0x1000]: no base register, so rbp's value must not leak in */
	REQUIRE(DECODE(&in, true, 0xf3, 0x0f, 0xb8, 0x04, 0xcd, 0x00, 0x10, 0x00, 0x00) == 0);
	CHECK(insn_ea(&in, gpr, 0) == 0x1000 + 0x80);
	/* [rip+0x100] is relative to the next instruction */
	REQUIRE(DECODE(&in, true, 0x0f, 0xae, 0x15, 0x00, 0x01, 0x00, 0x00) == 0);
	CHECK(insn_ea(&in, gpr, 0xffffffff81000007ULL) == 0xffffffff81000107ULL);
	/* [rip-8] */
	REQUIRE(DECODE(&in, true, 0x0f, 0xae, 0x15, 0xf8, 0xff, 0xff, 0xff) == 0);
	CHECK(insn_ea(&in, gpr, 0x401007) == 0x400fff);
	/* 32-bit code: disp32 is absolute; next_rip is not added */
	REQUIRE(DECODE(&in, false, 0xf3, 0x0f, 0xb8, 0x05, 0x10, 0x00, 0x00, 0x00) == 0);
	CHECK(insn_ea(&in, gpr, 0x5000) == 0x10);
	/* addr32: upper half of rax ignored, sums wrap at 4 GiB */
	REQUIRE(DECODE(&in, true, 0x67, 0xf3, 0x0f, 0xb8, 0x40, 0x10) == 0);
	CHECK(insn_ea(&in, gpr, 0) == 0x1010);
	gpr[RAX] = 0xfffffff0;
	CHECK(insn_ea(&in, gpr, 0) == 0x0);
	/* without it the sum is 64-bit */
	REQUIRE(DECODE(&in, true, 0xf3, 0x0f, 0xb8, 0x40, 0x10) == 0);
	CHECK(insn_ea(&in, gpr, 0) == 0x100000000ULL);
	/* 64-bit wrap with a negative displacement */
	gpr[RSI] = 8;
	REQUIRE(DECODE(&in, true, 0xf3, 0x0f, 0xb8, 0x46, 0xf0) == 0);
	CHECK(insn_ea(&in, gpr, 0) == 0xfffffffffffffff8ULL);
}
