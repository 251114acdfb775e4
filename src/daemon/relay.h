/*
 * A byte tunnel between two connected streams, each a socket or a TLS connection: what
 * carries a live migration between hosts (source tern-vmm <-> ternd <-TLS-> ternd <->
 * destination tern-vmm). Bytes go both ways as they come; when either end closes or
 * fails, the tunnel ends and both ends are closed, so each tern-vmm sees its peer go as
 * it would on a direct connection.
 */
#ifndef TERN_DAEMON_RELAY_H
#define TERN_DAEMON_RELAY_H

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

struct tls_conn;

struct relay_end {
	int fd;		      /* a socket, when tls is NULL */
	struct tls_conn *tls; /* else this */
	const char *name;     /* for messages: "tern-vmm", "ternd at tls://..." */
	uint64_t bytes_in;    /* read from this end */
	bool gone;	      /* a socket end that went away: what is still for it is dropped */
};

/*
 * Runs the tunnel until either end closes or fails, nothing moves either way for idle_ms
 * (-1: no limit), or stop_fd (-1: none; an eventfd, say) becomes readable: the owner gives
 * up. Then closes both ends (a TLS one lingers: tls_close_linger). 0 when an end closed,
 * else -errno; err says which end and why either way.
 */
int relay_run(struct relay_end *a, struct relay_end *b, int idle_ms, int stop_fd, char *err,
	      size_t errlen);

#endif
