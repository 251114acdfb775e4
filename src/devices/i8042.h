/* PS/2 controller (i8042): enough for Linux's probe, the reset line and keyboard input. */
#ifndef TERN_DEVICES_I8042_H
#define TERN_DEVICES_I8042_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/machine.h"

struct vmstate_cursor;
struct vmstate_writer;

#define I8042_STATE_VERSION 1 /* section version of VMSTATE_TAG_I8042 */
#define I8042_QUEUE 32	      /* the controller's own replies waiting to be read */
#define I8042_KBD_QUEUE 16    /* the keyboard's buffer, as a real keyboard's */

struct i8042_fifo {
	uint8_t b[I8042_KBD_QUEUE];
	unsigned int head, len;
};

struct i8042 {
	pthread_mutex_t lock;
	const struct machine *machine;
	uint8_t ctr; /* controller configuration byte */
	uint8_t status;
	uint8_t pending_cmd; /* command waiting for its data byte, 0 if none */
	/* Controller output: its own replies, aux bytes, and one keyboard byte at a time. */
	struct {
		uint8_t byte;
		bool aux;
	} q[I8042_QUEUE];
	unsigned int q_head, q_len;
	bool xlate_break; /* translation: a set-2 0xf0 (break) prefix waits for its code */
	int irq1_level, irq12_level;
	/* The MF2 keyboard behind the first port. */
	struct {
		uint8_t pending;	 /* command waiting for its argument, 0 if none */
		bool enabled;		 /* scanning: 0xf4 enables, 0xf5 disables */
		uint8_t set;		 /* scan code set it sends: 1 or 2 */
		struct i8042_fifo reply; /* answers to commands: sent before key bytes */
		struct i8042_fifo keys;	 /* key bytes in its scan code set */
	} kbd;
};

void i8042_init(struct i8042 *k, const struct machine *m);
/* Handler for ports 0x60..0x64 (offset 0 = data, 4 = status/command). */
void i8042_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);
/*
 * Key presses and releases as the keyboard's scanner produces them in scan code set 2
 * (make codes, 0xe0/0xe1 prefixes, 0xf0 before a break code): the keyboard sends them
 * in the set the guest selected, and the controller translates them to set 1 when the
 * configuration byte's XLATE bit is set, as on a PC. Dropped when the keyboard is
 * disabled (0xf5); kept in the keyboard while the guest inhibits its port (config bit 4).
 * All or nothing: returns false when they do not fit in the keyboard's buffer.
 */
bool i8042_key_bytes(struct i8042 *k, const uint8_t *set2, unsigned int n);
/* Left Ctrl, Left Alt, Delete pressed, then released (Firecracker's SendCtrlAltDel). */
void i8042_send_ctrl_alt_del(struct i8042 *k);

/*
 * Snapshot state, inside a section the caller opened (VMSTATE_TAG_I8042, version
 * I8042_STATE_VERSION): the controller's configuration byte, status, half-done command
 * and output queue, and the keyboard's mode, half-done command and buffers. Always 0
 * (the writer keeps the first error).
 */
int i8042_save(struct i8042 *k, struct vmstate_writer *w);
/*
 * Loads an i8042_save() payload into a controller fresh from i8042_init(), then drives
 * IRQ 1 and 12 to the levels the restored output queue implies. The payload is untrusted:
 * -EINVAL with err naming the field, and k unchanged, when anything is out of range or
 * the payload has the wrong size.
 */
int i8042_restore(struct i8042 *k, struct vmstate_cursor *c, char *err, size_t errlen);

#endif
