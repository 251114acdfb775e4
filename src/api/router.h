/* The API's request dispatcher (an http_handler_fn; opaque is the struct api). */
#ifndef TERN_API_ROUTER_H
#define TERN_API_ROUTER_H

#include "api/http.h"

void api_handle(void *opaque, const struct http_request *req, struct http_response *resp);

#endif
