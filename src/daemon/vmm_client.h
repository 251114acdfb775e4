/*
 * Requests to one tern-vmm's API socket (Firecracker's REST API), for ternd. Blocking,
 * each with a deadline: a hung tern-vmm costs its caller the timeout, never more.
 */
#ifndef TERN_DAEMON_VMM_CLIENT_H
#define TERN_DAEMON_VMM_CLIENT_H

#include <stddef.h>

/*
 * Sends METHOD PATH with body (JSON text or NULL) and waits up to timeout_ms for the
 * whole answer. Returns the HTTP status (200, 204, 400 ...) with the body in *resp
 * (malloc'd, NUL-terminated, "" when none; may be NULL if not wanted), or -errno with
 * err saying why (-ETIMEDOUT, -ECONNREFUSED, -EPROTO for a reply that is not HTTP).
 */
int vmm_request(const char *sock, const char *method, const char *path, const char *body,
		int timeout_ms, char **resp, char *err, size_t errlen);

/* The most descriptors vmm_request_fds sends (tern-vmm's HTTP_MAX_FDS). */
#define VMM_REQUEST_MAX_FDS 32

/* The same, with the open files fds (nfds of them) sent along (SCM_RIGHTS; PUT /files). */
int vmm_request_fds(const char *sock, const char *method, const char *path, const char *body,
		    const int *fds, unsigned int nfds, int timeout_ms, char **resp, char *err,
		    size_t errlen);

#endif
