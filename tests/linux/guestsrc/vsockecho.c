/*
 * Guest-side AF_VSOCK helper for the real-kernel tests (busybox has no vsock):
 *   vsockecho serve PORT          accept one connection on PORT, echo it back until EOF
 *   vsockecho send PORT BYTES     connect to the host (CID 2) on PORT, send BYTES of a
 *                                 pattern while reading the echo, and check it
 * Prints one result line; exit status 0 on success.
 */
#include <errno.h>
#include <linux/vm_sockets.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static unsigned char pattern(unsigned long i)
{
	return (unsigned char)(i * 131 + (i >> 11));
}

static int serve(unsigned int port)
{
	struct sockaddr_vm a = { .svm_family = AF_VSOCK,
				 .svm_cid = VMADDR_CID_ANY,
				 .svm_port = port };
	char buf[65536];
	unsigned long total = 0;
	int l = socket(AF_VSOCK, SOCK_STREAM, 0);

	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 1) < 0) {
		printf("VSOCK-SERVE error %s\n", strerror(errno));
		return 1;
	}
	printf("VSOCK-SERVE listening %u\n", port);
	fflush(stdout);
	int c = accept(l, NULL, NULL);
	if (c < 0)
		return 1;
	for (;;) {
		ssize_t n = read(c, buf, sizeof(buf));
		if (n <= 0)
			break;
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(c, buf + off, (size_t)(n - off));
			if (w <= 0)
				return 1;
			off += w;
		}
		total += (unsigned long)n;
	}
	printf("VSOCK-SERVE echoed %lu\n", total);
	close(c);
	return 0;
}

static int send_check(unsigned int port, unsigned long bytes)
{
	struct sockaddr_vm a = { .svm_family = AF_VSOCK, .svm_cid = 2, .svm_port = port };
	unsigned char out[16384], in[16384];
	unsigned long sent = 0, got = 0, bad = 0;
	int s = socket(AF_VSOCK, SOCK_STREAM, 0);

	if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof(a)) < 0) {
		printf("VSOCK-SEND error connect %s\n", strerror(errno));
		return 1;
	}
	while (got < bytes) {
		struct pollfd p = { s, POLLIN | (sent < bytes ? POLLOUT : 0), 0 };
		if (poll(&p, 1, 60000) <= 0)
			break;
		if ((p.revents & POLLOUT) && sent < bytes) {
			size_t n = bytes - sent < sizeof(out) ? bytes - sent : sizeof(out);
			for (size_t i = 0; i < n; i++)
				out[i] = pattern(sent + i);
			ssize_t w = write(s, out, n);
			if (w > 0)
				sent += (unsigned long)w;
			if (sent == bytes)
				shutdown(s, SHUT_WR);
		}
		if (p.revents & (POLLIN | POLLHUP)) {
			ssize_t n = read(s, in, sizeof(in));
			if (n <= 0)
				break;
			for (ssize_t i = 0; i < n; i++)
				bad += in[i] != pattern(got + (unsigned long)i);
			got += (unsigned long)n;
		}
	}
	printf("VSOCK-SEND sent %lu got %lu bad %lu\n", sent, got, bad);
	return !(sent == bytes && got == bytes && !bad);
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "serve"))
		return serve((unsigned int)strtoul(argv[2], NULL, 0));
	if (argc == 4 && !strcmp(argv[1], "send"))
		return send_check((unsigned int)strtoul(argv[2], NULL, 0),
				  strtoul(argv[3], NULL, 0));
	fprintf(stderr, "usage: vsockecho serve PORT | send PORT BYTES\n");
	return 2;
}
