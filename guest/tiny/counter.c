/*
 * Counts forever: increments a counter in memory and prints "count N" every
 * `every=` iterations (command line; default below, a few lines per second where
 * kernel code is emulated). Never halts and never exits: the API tests pause it
 * and watch its vCPU's CPU time and its output stop.
 */
#include "tiny.h"

TINY_GUEST("counter");

#define DEFAULT_EVERY 30000

static volatile uint64_t counter;

int main(void)
{
	long every = tiny_arg_num("every", DEFAULT_EVERY);
	uint64_t lines = 0;

	if (every < 1)
		every = DEFAULT_EVERY;
	tiny_printf("counter: every %ld\n", every);
	for (;;) {
		for (long i = 0; i < every; i++)
			counter++;
		tiny_printf("count %lu\n", ++lines);
	}
}
