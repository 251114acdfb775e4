/*
 * The ticker of bench/migrate's guests: a UDP datagram to the host every PERIOD_US of the
 * guest's CLOCK_MONOTONIC, holding a sequence number and the guest's monotonic and
 * real-time clocks (tests/linux/guestsrc/migcheck.c's 24-byte format). The host stamps
 * each arrival, so the longest silence around the switchover is the downtime as the
 * guest's network saw it, measured the same way for every VMM. The period is an argument,
 * unlike migcheck's 2 ms: in the lab each tick costs the nested guest several exits, and
 * a 2 ms ticker kept its one vCPU busy.
 *
 * A tick that is due while the guest is not running is sent once it runs again, then the
 * ticker goes on from that moment: missed ticks are not made up for with a burst.
 *
 * usage: migtick HOST_IP UDP_PORT PERIOD_US
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

static uint64_t ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: migtick HOST_IP UDP_PORT PERIOD_US\n");
		return 2;
	}
	uint64_t period = strtoull(argv[3], NULL, 0) * 1000;
	int u = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in h = { .sin_family = AF_INET,
				 .sin_port = htons((uint16_t)atoi(argv[2])) };
	if (u < 0 || inet_pton(AF_INET, argv[1], &h.sin_addr) != 1 || !period) {
		fprintf(stderr, "migtick: bad address or period\n");
		return 2;
	}
	uint64_t t = ns(CLOCK_MONOTONIC);
	for (uint64_t seq = 0;; seq++) {
		uint64_t now = ns(CLOCK_MONOTONIC);
		uint64_t msg[3] = { seq, now, ns(CLOCK_REALTIME) };
		sendto(u, msg, sizeof(msg), 0, (struct sockaddr *)&h, sizeof(h));
		t += period;
		if (t < now)
			t = now; /* late: carry on from here */
		struct timespec d = { (time_t)(t / 1000000000ULL), (long)(t % 1000000000ULL) };
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &d, NULL))
			;
	}
}
