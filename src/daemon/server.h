/*
 * ternd's API sockets: each connection is served on a thread of its own, so a request that
 * waits (a shutdown, an events long-poll, a hung tern-vmm) holds up only its own client.
 */
#ifndef TERN_DAEMON_SERVER_H
#define TERN_DAEMON_SERVER_H

#include "daemon/mgmt.h"

#include <sys/types.h>

#define SERVER_MAX_CONNS 64 /* per socket; more wait in the listen backlog */

/*
 * Listens on path (a stale socket file there is replaced) with mode and group (gid -1:
 * leave it), and serves it on a thread. 0, or -errno with err saying why.
 */
int server_start(struct mgmt_listener *l, const char *path, mode_t mode, gid_t gid, char *err,
		 size_t errlen);

struct hostport;
struct tls_creds;
/*
 * Listens on TCP addr and serves each connection over mutual TLS with creds (a client
 * without a certificate the CA signed is refused and logged) on a thread. 0, or -errno
 * with err saying why.
 */
int server_start_tls(struct mgmt_listener *l, const struct hostport *addr, struct tls_creds *creds,
		     char *err, size_t errlen);

/*
 * From a request handler (mgmt.c), on the connection's own thread: once the answer it is
 * giving is sent, the connection becomes a byte tunnel to the connected socket fd (relay.h)
 * until either end closes; fd is the tunnel's from here (closed if the answer cannot be
 * sent). label names fd's side in the log. The client must send nothing after its request
 * until it has the answer: bytes that came with the request would not reach fd.
 */
void server_tunnel_after_reply(int fd, const char *label);

#endif
