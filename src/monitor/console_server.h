/*
 * console.sock: the monitor's console socket. A client connects, sends one line,
 * "ATTACH rw\n" or "ATTACH ro\n", and gets "OK\n"; from then on it receives every byte
 * of console output, and what a rw client sends goes to PROGRAM's stdin (a ro client's
 * bytes are read and dropped). Only one rw client at a time: a second gets "BUSY\n" and
 * is closed, as is a connection beyond CONSOLE_MAX_CLIENTS; a malformed line, or none
 * within CONSOLE_HANDSHAKE_SECONDS, gets "ERROR ...\n" and is closed.
 *
 * Nothing here may block the VM: sockets are non-blocking, output a client has not taken
 * yet waits in its own buffer of CONSOLE_CLIENT_BUF bytes, and a client that would
 * overflow it is disconnected. Input waits in one buffer for PROGRAM's stdin; while that
 * is full the rw client is not read, so only the rw client waits for a VM that does not
 * read its console.
 */
#ifndef TERN_MONITOR_CONSOLE_SERVER_H
#define TERN_MONITOR_CONSOLE_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/loop.h"

#define CONSOLE_MAX_CLIENTS 16
#define CONSOLE_CLIENT_BUF (256 * 1024)
#define CONSOLE_INPUT_BUF (64 * 1024)
#define CONSOLE_HANDSHAKE_SECONDS 10

struct console_client;

struct console_server {
	struct loop *loop;
	char *path;
	int listen_fd;
	int timer_fd; /* one-shot: the next handshake deadline */
	int input_fd; /* PROGRAM's stdin, non-blocking; -1 when none or closed */
	bool input_watched;
	struct console_client *clients; /* live ones, and dead ones until the next reap */
	struct console_client *rw;
	uint8_t input[CONSOLE_INPUT_BUF];
	size_t input_len;
	void (*note)(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
};

/*
 * Serves path (mode 0600). A socket left there by a process that is gone is replaced;
 * one that still answers is not: -EADDRINUSE. note() reports what the monitor should log
 * (a client cut off, input lost). 0, or -errno with a message in err.
 */
int console_server_open(struct console_server *s, struct loop *loop, const char *path,
			void (*note)(const char *fmt, ...), char *err, size_t errlen);
/* Where rw clients' bytes go (PROGRAM's stdin); the server owns the fd from now on. */
void console_server_set_input(struct console_server *s, int fd);
/* Sends console output to every attached client. */
void console_server_output(struct console_server *s, const void *buf, size_t n);
/*
 * Frees the clients that ended during the last loop turn. Call after each
 * loop_run_once(): deferring it keeps a loop slot from being reused while that turn's
 * events for it are still being delivered.
 */
void console_server_reap(struct console_server *s);
/*
 * The end: gives clients up to timeout_ms to take the output they still have buffered,
 * closes them and the input, and removes the socket.
 */
void console_server_close(struct console_server *s, int timeout_ms);

#endif
