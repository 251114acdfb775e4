/*
 * A tiny unit-test harness: TEST(name) { ... } registers a case; CHECK() records a
 * failure and continues, REQUIRE() records it and ends the case. The runner prints
 * one "ok"/"FAIL" line per case and a closing "N passed, N failed" line.
 */
#ifndef TERN_TESTS_UNIT_H
#define TERN_TESTS_UNIT_H

#include <stdio.h>

struct unit_case {
	const char *name;
	void (*fn)(void);
	struct unit_case *next;
};

void unit_register(struct unit_case *c);
void unit_fail(const char *file, int line, const char *expr);
extern int unit_case_failed;

#define TEST(name)                                                               \
	static void test_##name(void);                                           \
	static struct unit_case unit_case_##name = { #name, test_##name, NULL }; \
	__attribute__((constructor)) static void unit_register_##name(void)      \
	{                                                                        \
		unit_register(&unit_case_##name);                                \
	}                                                                        \
	static void test_##name(void)

#define CHECK(expr)                                           \
	do {                                                  \
		if (!(expr))                                  \
			unit_fail(__FILE__, __LINE__, #expr); \
	} while (0)

#define REQUIRE(expr)                                         \
	do {                                                  \
		if (!(expr)) {                                \
			unit_fail(__FILE__, __LINE__, #expr); \
			return;                               \
		}                                             \
	} while (0)

#endif
