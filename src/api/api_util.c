/* Small helpers shared by the resource handlers. */
#include "api/api.h"
#include "api/json_in.h"

#include <errno.h>

int api_preboot(const struct api *a, char *err, size_t n)
{
	return a->started ? api_fail(err, n, "%s", API_AFTER_START) : 0;
}

int api_not_implemented(struct json_object *o, const char *field, const char *where, char *err,
			size_t n)
{
	if (jin_has(o, field))
		return api_fail(err, n, "'%s' of %s is not implemented in tern", field, where);
	return 0;
}
