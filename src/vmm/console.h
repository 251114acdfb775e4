/* The terminal side of the serial console: raw mode, escape keys, input to the UART. */
#ifndef TERN_VMM_CONSOLE_H
#define TERN_VMM_CONSOLE_H

#include <stdbool.h>

#include "devices/serial.h"

struct console {
	int in_fd;
	bool tty;
	bool escape; /* the last key was Ctrl-a */
	bool eof;
	unsigned char pending[256]; /* input the UART FIFO had no room for */
	unsigned int pending_len;
};

/* Puts a tty into raw mode (restored at exit). */
void console_init(struct console *c, int in_fd);
void console_restore(void);
/*
 * Reads what is available and feeds it to the UART. Returns true when the user
 * typed the quit sequence (Ctrl-a x).
 */
bool console_input(struct console *c, struct serial *s);
/* Retries input held back by a full FIFO. */
void console_flush_pending(struct console *c, struct serial *s);

#endif
