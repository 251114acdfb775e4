/* 16550A-compatible UART (the PC's COM1): guest output to a host fd, host input to the guest. */
#ifndef TERN_DEVICES_SERIAL_H
#define TERN_DEVICES_SERIAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/machine.h"

struct vmstate_cursor;
struct vmstate_writer;

#define SERIAL_RX_FIFO 1024
#define SERIAL_OUT_BUF 4096
#define SERIAL_FLUSH_NS 2000000ULL /* the longest guest output waits unwritten */
#define SERIAL_STATE_VERSION 1	   /* section version of VMSTATE_TAG_SERIAL */

struct serial {
	pthread_mutex_t lock;
	const struct machine *machine;
	unsigned int irq;
	int out_fd;
	uint8_t ier, lcr, mcr, scr, dll, dlm, fcr;
	bool thre_pending;
	int irq_level;
	uint8_t rx[SERIAL_RX_FIFO];
	size_t rx_head, rx_len;
	/*
	 * Guest output not yet written to out_fd: a write() per line (or per
	 * SERIAL_FLUSH_NS) instead of per byte. flush_timer: a timerfd the owner's loop
	 * answers with serial_flush(); -1 writes every byte at once.
	 */
	uint8_t out[SERIAL_OUT_BUF];
	size_t out_len;
	int flush_timer;
};

void serial_init(struct serial *s, const struct machine *m, unsigned int irq, int out_fd);
/* From now on output is held until a newline, a full buffer or timerfd fires (one-shot). */
void serial_set_flush_timer(struct serial *s, int timerfd);
/* Writes out what the guest sent and is still held (the timer fired, or the VM stops). */
void serial_flush(struct serial *s);
/* Port handler for the 8 registers at the UART's base. */
void serial_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);
/* Queues host input for the guest; returns how many bytes fit in the FIFO. */
size_t serial_receive(struct serial *s, const uint8_t *buf, size_t len);

/*
 * Snapshot state, inside a section the caller opened (VMSTATE_TAG_SERIAL, version
 * SERIAL_STATE_VERSION): the registers, the pending THRE interrupt and the received bytes
 * the guest has not read yet. Always 0 (the writer keeps the first error).
 */
int serial_save(struct serial *s, struct vmstate_writer *w);
/*
 * Loads a serial_save() payload into a UART fresh from serial_init(), then drives the
 * interrupt line to the level the restored registers imply. The payload is untrusted:
 * -EINVAL with err naming the field, and s unchanged, when anything is out of range or
 * the payload has the wrong size.
 */
int serial_restore(struct serial *s, struct vmstate_cursor *c, char *err, size_t errlen);

#endif
