/* PS/2 controller (i8042): enough for Linux's probe, the reset line and keyboard input. */
#ifndef TERN_DEVICES_I8042_H
#define TERN_DEVICES_I8042_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices/machine.h"

#define I8042_QUEUE 32

struct i8042 {
	pthread_mutex_t lock;
	const struct machine *machine;
	uint8_t ctr; /* controller configuration byte */
	uint8_t status;
	uint8_t pending_cmd; /* command waiting for its data byte, 0 if none */
	uint8_t kbd_pending; /* keyboard command waiting for its argument */
	struct {
		uint8_t byte;
		bool aux;
	} q[I8042_QUEUE];
	unsigned int q_head, q_len;
	int irq1_level, irq12_level;
};

void i8042_init(struct i8042 *k, const struct machine *m);
/* Handler for ports 0x60..0x64 (offset 0 = data, 4 = status/command). */
void i8042_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);
/* Queues keyboard bytes as if typed (the caller picks the scancode set). */
void i8042_key_bytes(struct i8042 *k, const uint8_t *codes, unsigned int n);

#endif
