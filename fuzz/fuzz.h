/*
 * What every harness shares: ASSERT (a trap libFuzzer reports with the input that broke
 * the property) and, through core/le.h, little-endian field access for harnesses that
 * patch file formats.
 */
#ifndef TERN_FUZZ_FUZZ_H
#define TERN_FUZZ_FUZZ_H

#include <stdint.h>

#include "core/le.h"

#define ASSERT(x)                         \
	do {                              \
		if (!(x))                 \
			__builtin_trap(); \
	} while (0)

#endif
