/*
 * Guest-side sender for bench/net, the same for every transport so that the rows differ only
 * in the path the bytes take:
 *   guestsend tcp HOST PORT BYTES   connect to HOST (dotted IPv4) on TCP PORT
 *   guestsend vsock PORT BYTES      connect to the host (CID 2) on vsock PORT
 * then write BYTES of zeros in 64 KiB writes and close; stops early if the host closes first
 * (bench/net's time and byte caps). Prints "GUESTSEND KIND sent N" to stdout; exit status 0 if
 * the connection was made, 1 if not, 2 on bad usage.
 *
 * The TCP socket is left as a user program gets it: Nagle stays on (with 64 KiB writes there
 * is always a full segment to send, so it holds nothing back; it only bites on sub-MSS writes
 * such as busybox nc's) and the socket buffer sizes are the guest kernel's defaults.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/vm_sockets.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int usage(void)
{
	fprintf(stderr, "usage: guestsend tcp HOST PORT BYTES\n"
			"       guestsend vsock PORT BYTES\n");
	return 2;
}

/* Returns a connected socket, or -1 with errno set. */
static int connect_tcp(const char *host, const char *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	int s;

	if (inet_pton(AF_INET, host, &a.sin_addr) != 1) {
		errno = EINVAL;
		return -1;
	}
	a.sin_port = htons((unsigned short)strtoul(port, NULL, 0));
	s = socket(AF_INET, SOCK_STREAM, 0);
	if (s < 0)
		return -1;
	if (connect(s, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(s);
		return -1;
	}
	return s;
}

static int connect_vsock(const char *port)
{
	struct sockaddr_vm a = { .svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_HOST };
	int s;

	a.svm_port = (unsigned int)strtoul(port, NULL, 0);
	s = socket(AF_VSOCK, SOCK_STREAM, 0);
	if (s < 0)
		return -1;
	if (connect(s, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(s);
		return -1;
	}
	return s;
}

int main(int argc, char **argv)
{
	/* static: zero-filled without a memset, and off the small initramfs-process stack */
	static char buf[65536];
	unsigned long bytes, sent = 0;
	const char *kind;
	int s;

	if (argc < 2)
		return usage();
	kind = argv[1];
	if (!strcmp(kind, "tcp") && argc == 5) {
		bytes = strtoul(argv[4], NULL, 0);
		s = connect_tcp(argv[2], argv[3]);
	} else if (!strcmp(kind, "vsock") && argc == 4) {
		bytes = strtoul(argv[3], NULL, 0);
		s = connect_vsock(argv[2]);
	} else {
		return usage();
	}
	if (s < 0) {
		printf("GUESTSEND %s error connect %s\n", kind, strerror(errno));
		return 1;
	}
	/* The host ends a capped transfer by closing: take that as EPIPE, not as a signal. */
	signal(SIGPIPE, SIG_IGN);
	while (sent < bytes) {
		size_t n = bytes - sent < sizeof(buf) ? bytes - sent : sizeof(buf);
		ssize_t w = write(s, buf, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		sent += (unsigned long)w;
	}
	close(s);
	printf("GUESTSEND %s sent %lu\n", kind, sent);
	return 0;
}
