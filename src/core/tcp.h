/*
 * TCP endpoints for the links between hosts (ternd --listen-tls, tern --connect):
 * parsing HOST:PORT as users write it, listening, and connecting with a deadline.
 */
#ifndef TERN_CORE_TCP_H
#define TERN_CORE_TCP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct hostport {
	char host[254]; /* an IP address (IPv6 without its brackets) or a DNS name */
	uint16_t port;
	bool ip; /* host is an IPv4 or IPv6 address */
};

/*
 * Parses "HOST:PORT" or "[IPV6]:PORT" (port 1 to 65535). With ip_only the host must be
 * an IP address (a listening address), else a DNS name is taken too. 0, or -EINVAL
 * with err saying what is accepted (callers put the option's name before it).
 */
int hostport_parse(const char *s, bool ip_only, struct hostport *out, char *err, size_t errlen);
/* "HOST:PORT", or "[HOST]:PORT" for an IPv6 address, into buf. */
const char *hostport_text(const struct hostport *hp, char *buf, size_t n);

/* A listening socket (close-on-exec) on hp, an IP address. fd, or -errno with err. */
int tcp_listen(const struct hostport *hp, int backlog, char *err, size_t errlen);
/*
 * A socket connected to hp (a name is resolved; each address is tried in turn) within
 * timeout_ms. fd (blocking, close-on-exec, TCP_NODELAY), or -errno with err.
 */
int tcp_connect(const struct hostport *hp, int timeout_ms, char *err, size_t errlen);
/* An accepted peer's address as "ADDR:PORT" / "[ADDR]:PORT", for logs. */
const char *tcp_peer_text(const struct sockaddr *sa, socklen_t len, char *buf, size_t n);

#endif
