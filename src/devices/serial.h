/* 16550A-compatible UART (the PC's COM1): guest output to a host fd, host input to the guest. */
#ifndef TERN_DEVICES_SERIAL_H
#define TERN_DEVICES_SERIAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/machine.h"

#define SERIAL_RX_FIFO 1024

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
};

void serial_init(struct serial *s, const struct machine *m, unsigned int irq, int out_fd);
/* Port handler for the 8 registers at the UART's base. */
void serial_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);
/* Queues host input for the guest; returns how many bytes fit in the FIFO. */
size_t serial_receive(struct serial *s, const uint8_t *buf, size_t len);

#endif
