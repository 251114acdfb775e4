/*
 * Console: stdin feeds the guest's UART. On a tty it is raw (so Ctrl-c reaches the
 * guest) and Ctrl-a x quits, as in QEMU; from a pipe bytes pass unchanged.
 */
#include "vmm/console.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#define CTRL_A 0x01

static struct termios saved;
static int saved_fd = -1;

void console_restore(void)
{
	if (saved_fd >= 0)
		tcsetattr(saved_fd, TCSANOW, &saved);
}

void console_init(struct console *c, int in_fd)
{
	memset(c, 0, sizeof(*c));
	c->in_fd = in_fd;
	c->tty = isatty(in_fd);
	if (!c->tty || tcgetattr(in_fd, &saved) < 0)
		return;
	struct termios raw = saved;
	cfmakeraw(&raw);
	/* Keep output post-processing so tern's own log lines still start at column 0. */
	raw.c_oflag |= OPOST | ONLCR;
	if (tcsetattr(in_fd, TCSANOW, &raw) == 0) {
		saved_fd = in_fd;
		atexit(console_restore);
	}
}

static void feed(struct console *c, struct serial *s, const unsigned char *b, size_t n)
{
	if (c->pending_len) {
		/* Keep order: queue behind what is already waiting. */
		size_t room = sizeof(c->pending) - c->pending_len;
		if (n > room)
			n = room;
		memcpy(c->pending + c->pending_len, b, n);
		c->pending_len += (unsigned int)n;
		return;
	}
	size_t took = serial_receive(s, b, n);
	n -= took;
	if (n > sizeof(c->pending))
		n = sizeof(c->pending);
	memcpy(c->pending, b + took, n);
	c->pending_len = (unsigned int)n;
}

void console_flush_pending(struct console *c, struct serial *s)
{
	if (!c->pending_len)
		return;
	size_t took = serial_receive(s, c->pending, c->pending_len);
	memmove(c->pending, c->pending + took, c->pending_len - took);
	c->pending_len -= (unsigned int)took;
}

bool console_input(struct console *c, struct serial *s)
{
	unsigned char buf[256], out[256];
	size_t n_out = 0;
	ssize_t n = read(c->in_fd, buf, sizeof(buf));

	if (n <= 0) {
		if (n == 0 || (errno != EINTR && errno != EAGAIN))
			c->eof = true;
		return false;
	}
	for (ssize_t i = 0; i < n; i++) {
		if (!c->tty) {
			out[n_out++] = buf[i];
		} else if (c->escape) {
			c->escape = false;
			if (buf[i] == 'x')
				return true;
			out[n_out++] = buf[i] == 'a' ? CTRL_A : buf[i];
		} else if (buf[i] == CTRL_A) {
			c->escape = true;
		} else {
			out[n_out++] = buf[i];
		}
	}
	feed(c, s, out, n_out);
	return false;
}
