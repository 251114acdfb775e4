/* Decoding lsl / lar: register and memory forms, REX.W, operand sizes. */
#include "arch/x86/insn.h"
#include "unit.h"

TEST(insn_lsl_lar_forms)
{
	struct insn in;
	static const uint8_t lsl_rax_eax[] = { 0x48, 0x0f, 0x03,
					       0xc0 }; /* Linux's GET_PERCPU_BASE */
	static const uint8_t lar_ecx_edx[] = { 0x0f, 0x02, 0xca };
	static const uint8_t lsl_mem[] = { 0x0f, 0x03, 0x44, 0x24, 0x08 }; /* lsl eax, [rsp+8] */
	static const uint8_t lsl_r9w[] = { 0x66, 0x45, 0x0f, 0x03, 0xc8 }; /* lsl r9w, r8w */

	REQUIRE(insn_decode(lsl_rax_eax, sizeof(lsl_rax_eax), true, &in) == 0);
	CHECK(in.op == INSN_LSL && in.len == 4 && in.opsize == 8 && in.mod_reg);
	CHECK(in.reg == 0 && in.rm == 0);
	REQUIRE(insn_decode(lar_ecx_edx, sizeof(lar_ecx_edx), true, &in) == 0);
	CHECK(in.op == INSN_LAR && in.len == 3 && in.opsize == 4 && in.reg == 1 && in.rm == 2);
	REQUIRE(insn_decode(lsl_mem, sizeof(lsl_mem), true, &in) == 0);
	CHECK(in.op == INSN_LSL && in.len == 5 && !in.mod_reg && in.base == 4 && in.disp == 8);
	REQUIRE(insn_decode(lsl_r9w, sizeof(lsl_r9w), true, &in) == 0);
	CHECK(in.op == INSN_LSL && in.opsize == 2 && in.reg == 9 && in.rm == 8);
	CHECK(insn_decode(lsl_rax_eax, 3, true, &in) != 0); /* truncated */
	CHECK(insn_name(INSN_LSL)[0] == 'l');
}
