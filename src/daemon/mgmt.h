/* ternd's management API handler (an http_handler_fn; docs/ternd.md). */
#ifndef TERN_DAEMON_MGMT_H
#define TERN_DAEMON_MGMT_H

#include "api/http.h"

#include <stdbool.h>

struct ternd;

/* One listening socket: the read-write one, or the read-only one (GET only). */
struct mgmt_listener {
	struct ternd *ternd;
	bool readonly;
};

void mgmt_handle(void *opaque, const struct http_request *req, struct http_response *resp);

#endif
