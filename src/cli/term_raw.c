/* Raw terminal mode with a restore on every exit path (term_raw.h). */
#include "cli/term_raw.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <termios.h>
#include <unistd.h>

static struct termios saved;
static volatile sig_atomic_t raw_fd = -1;

void term_raw_restore(void)
{
	int fd = raw_fd;

	if (fd < 0)
		return;
	raw_fd = -1;
	tcsetattr(fd, TCSAFLUSH, &saved);
}

/* tcsetattr is async-signal-safe: restore, then die of the signal as if not caught. */
static void on_signal(int sig)
{
	term_raw_restore();
	signal(sig, SIG_DFL);
	raise(sig);
}

int term_raw_enter(int fd)
{
	static const int sigs[] = { SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGPIPE };
	static bool registered;
	struct termios raw;

	if (tcgetattr(fd, &saved))
		return -errno;
	raw = saved;
	cfmakeraw(&raw);
	if (!registered) {
		struct sigaction sa = { .sa_handler = on_signal };
		atexit(term_raw_restore);
		for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
			sigaction(sigs[i], &sa, NULL);
		registered = true;
	}
	raw_fd = fd;
	if (tcsetattr(fd, TCSAFLUSH, &raw)) {
		int e = errno;
		raw_fd = -1;
		return -e;
	}
	return 0;
}
