/*
 * In the guest of tests/linux/test_migrate.py: a TCP echo server (every byte a host
 * connection sends comes back) and a fine ticker (a UDP datagram to the host every 2 ms
 * with a sequence number and the guest's monotonic and real-time clocks), so that the host
 * sees whether a migration lost or broke anything, how long the guest was gone from the
 * network, and what its clock did meanwhile.
 *
 * usage: migcheck HOST_IP UDP_PORT TCP_PORT
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static void *echo_conn(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char buf[65536];
	ssize_t n;

	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(fd, buf + off, (size_t)(n - off));
			if (w <= 0)
				goto out;
			off += w;
		}
	}
out:
	close(fd);
	return NULL;
}

static void *echo_server(void *arg)
{
	int port = (int)(intptr_t)arg, one = 1;
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };

	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(s, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(s, 4) < 0) {
		perror("MIGCHECK echo");
		return NULL;
	}
	printf("MIGCHECK echo listening on %d\n", port);
	fflush(stdout);
	for (;;) {
		int c = accept(s, NULL, NULL);
		pthread_t t;
		if (c >= 0 && pthread_create(&t, NULL, echo_conn, (void *)(intptr_t)c) == 0)
			pthread_detach(t);
	}
	return NULL;
}

static uint64_t ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

int main(int argc, char **argv)
{
	pthread_t t;

	if (argc != 4) {
		fprintf(stderr, "usage: migcheck HOST_IP UDP_PORT TCP_PORT\n");
		return 2;
	}
	pthread_create(&t, NULL, echo_server, (void *)(intptr_t)atoi(argv[3]));
	int u = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in h = { .sin_family = AF_INET,
				 .sin_port = htons((uint16_t)atoi(argv[2])) };
	inet_pton(AF_INET, argv[1], &h.sin_addr);
	for (uint64_t seq = 0;; seq++) {
		uint64_t msg[3] = { seq, ns(CLOCK_MONOTONIC), ns(CLOCK_REALTIME) };
		sendto(u, msg, sizeof(msg), 0, (struct sockaddr *)&h, sizeof(h));
		struct timespec d = { 0, 2000000 };
		nanosleep(&d, NULL);
	}
}
