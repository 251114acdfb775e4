/*
 * The host side of virtio-vsock, in the layout Firecracker documents: tern listens on a
 * Unix socket at PATH; a host program connects there, sends "CONNECT PORT\n", gets
 * "OK HOSTPORT\n" once the guest accepted, then has a byte stream to the guest's PORT.
 * A guest connection to host port P goes to the Unix socket "PATH_P".
 */
#ifndef TERN_BACKEND_VSOCK_UDS_H
#define TERN_BACKEND_VSOCK_UDS_H

#include <stddef.h>
#include <stdint.h>

/* Longest PATH: "PATH_4294967295" must still fit sockaddr_un's sun_path (108 bytes). */
#define VSOCK_UDS_PATH_MAX 96
/* Longest connect line read: "CONNECT 4294967295\n" is 19 bytes. */
#define VSOCK_UDS_LINE_MAX 32

/*
 * Checks PATH before anything is created: not empty, at most VSOCK_UDS_PATH_MAX bytes,
 * its directory exists, and nothing exists at PATH but a stale socket (one nobody listens
 * on). Returns 0, or -errno with a sentence in err.
 */
int vsock_uds_check_path(const char *path, char *err, size_t errlen);
/*
 * Creates tern's listening socket at path (non-blocking, close-on-exec). A socket file
 * nobody listens on any more is replaced; a live one (-EADDRINUSE) or a non-socket
 * (-EEXIST) is refused. Returns the fd, or -errno with *why naming the step.
 */
int vsock_uds_listen(const char *path, const char **why);
/* One pending host connection, non-blocking: its fd, or -errno (-EAGAIN: none). */
int vsock_uds_accept(int listen_fd);
/*
 * Connects a non-blocking socket to "path_port". Unix stream connects finish or fail at
 * once: returns the fd, or -errno (-ECONNREFUSED, -ENOENT, -EAGAIN for a full backlog).
 */
int vsock_uds_connect(const char *path, uint32_t port);
/*
 * Parses "CONNECT PORT\n" at the start of buf[0..len). Returns the length of the line
 * with its '\n' and sets *port; 0 when what is there may still become a valid line;
 * -EINVAL when it cannot (bad text, a port beyond 32 bits, no '\n' within
 * VSOCK_UDS_LINE_MAX bytes).
 */
int vsock_uds_parse_connect(const char *buf, size_t len, uint32_t *port);
/*
 * Takes the connect line from a host socket without consuming any byte after it.
 * Returns 1 (and *port), 0 (incomplete: wait for more), -EINVAL (malformed),
 * -ECONNRESET (closed before a line), or another -errno.
 */
int vsock_uds_read_connect(int fd, uint32_t *port);
/* Sends "OK HOSTPORT\n". 0, or -errno (also when only part of it fit: -EAGAIN). */
int vsock_uds_send_ok(int fd, uint32_t host_port);

#endif
