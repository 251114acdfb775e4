/*
 * Guest-side AF_VSOCK sender for bench/net (busybox has no vsock):
 *   vsocksend PORT BYTES    connect to the host (CID 2) on PORT, write BYTES of zeros in
 *                           64 KiB writes, close; stops early if the host closes first.
 * Prints "VSOCK-SINK sent N"; exit status 0 if the connection was made.
 */
#include <errno.h>
#include <linux/vm_sockets.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	static char buf[65536];
	unsigned long bytes, sent = 0;
	struct sockaddr_vm a = { .svm_family = AF_VSOCK, .svm_cid = 2 };
	int s;

	if (argc != 3) {
		fprintf(stderr, "usage: vsocksend PORT BYTES\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	a.svm_port = (unsigned int)strtoul(argv[1], NULL, 0);
	bytes = strtoul(argv[2], NULL, 0);
	s = socket(AF_VSOCK, SOCK_STREAM, 0);
	if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof(a)) < 0) {
		printf("VSOCK-SINK error connect %s\n", strerror(errno));
		return 1;
	}
	while (sent < bytes) {
		size_t n = bytes - sent < sizeof(buf) ? bytes - sent : sizeof(buf);
		ssize_t w = write(s, buf, n);
		if (w <= 0)
			break;
		sent += (unsigned long)w;
	}
	close(s);
	printf("VSOCK-SINK sent %lu\n", sent);
	return 0;
}
