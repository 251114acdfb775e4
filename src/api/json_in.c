/* JSON input helpers over json-c: one place that words type and range errors. */
#include "api/json_in.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

struct json_object *jin_array_or_empty(struct json_object *o, const char *key)
{
	struct json_object *a;

	if (o && json_object_object_get_ex(o, key, &a) && json_object_is_type(a, json_type_array))
		return json_object_get(a);
	return json_object_new_array();
}

struct json_object *jin_parse_object(const char *text, size_t len, char *err, size_t errlen)
{
	struct json_tokener *tok = json_tokener_new_ex(JIN_MAX_DEPTH);
	struct json_object *o;

	if (!tok) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (len == 0) {
		snprintf(err, errlen, "the request needs a JSON body");
		json_tokener_free(tok);
		return NULL;
	}
	o = json_tokener_parse_ex(tok, text, (int)len);
	enum json_tokener_error e = json_tokener_get_error(tok);
	size_t used = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	if (!o || e != json_tokener_success) {
		snprintf(err, errlen, "malformed JSON body: %s",
			 e == json_tokener_continue ? "it ends too early" :
						      json_tokener_error_desc(e));
		json_object_put(o);
		return NULL;
	}
	/* Whitespace may follow the value, nothing else. */
	for (; used < len; used++) {
		if (!strchr(" \t\r\n", text[used])) {
			snprintf(err, errlen, "malformed JSON body: text after the JSON value");
			json_object_put(o);
			return NULL;
		}
	}
	if (!json_object_is_type(o, json_type_object)) {
		snprintf(err, errlen, "the body must be a JSON object");
		json_object_put(o);
		return NULL;
	}
	return o;
}

int jin_only(struct json_object *o, const char *const *allowed, const char *where, char *err,
	     size_t errlen)
{
	json_object_object_foreach(o, key, val)
	{
		(void)val;
		bool known = false;
		for (const char *const *a = allowed; *a && !known; a++)
			known = !strcmp(*a, key);
		if (!known) {
			snprintf(err, errlen, "unknown field '%.64s' in %s", key, where);
			return -EINVAL;
		}
	}
	return 0;
}

/* The value of name, or NULL when absent or null. */
static struct json_object *field(struct json_object *o, const char *name)
{
	struct json_object *v = NULL;

	if (!json_object_object_get_ex(o, name, &v))
		return NULL;
	return v; /* json null is a NULL object in json-c */
}

bool jin_has(struct json_object *o, const char *name)
{
	return field(o, name) != NULL;
}

int jin_string(struct json_object *o, const char *name, size_t maxlen, const char **out, char *err,
	       size_t errlen)
{
	struct json_object *v = field(o, name);

	if (!v)
		return 0;
	if (!json_object_is_type(v, json_type_string)) {
		snprintf(err, errlen, "'%s' must be a string", name);
		return -EINVAL;
	}
	size_t n = (size_t)json_object_get_string_len(v);
	const char *s = json_object_get_string(v);
	if (n > maxlen) {
		snprintf(err, errlen, "'%s' is %zu bytes long; at most %zu are accepted", name, n,
			 maxlen);
		return -EINVAL;
	}
	if (strlen(s) != n) {
		snprintf(err, errlen, "'%s' must not contain NUL characters", name);
		return -EINVAL;
	}
	*out = s;
	return 1;
}

int jin_u64(struct json_object *o, const char *name, uint64_t min, uint64_t max, uint64_t *out,
	    char *err, size_t errlen)
{
	struct json_object *v = field(o, name);

	if (!v)
		return 0;
	if (!json_object_is_type(v, json_type_int)) {
		snprintf(err, errlen, "'%s' must be an integer from %llu to %llu", name,
			 (unsigned long long)min, (unsigned long long)max);
		return -EINVAL;
	}
	/* json-c keeps integers as int64 or uint64; read both without wrapping. */
	int64_t s = json_object_get_int64(v);
	uint64_t u = json_object_get_uint64(v);
	if (s < 0 || u < min || u > max) {
		snprintf(err, errlen, "'%s' is %s; it must be from %llu to %llu", name,
			 json_object_to_json_string(v), (unsigned long long)min,
			 (unsigned long long)max);
		return -EINVAL;
	}
	*out = u;
	return 1;
}

int jin_bool(struct json_object *o, const char *name, bool *out, char *err, size_t errlen)
{
	struct json_object *v = field(o, name);

	if (!v)
		return 0;
	if (!json_object_is_type(v, json_type_boolean)) {
		snprintf(err, errlen, "'%s' must be true or false", name);
		return -EINVAL;
	}
	*out = json_object_get_boolean(v);
	return 1;
}

int jin_enum(struct json_object *o, const char *name, const char *const *choices,
	     unsigned int *index, char *err, size_t errlen)
{
	const char *s;
	int r = jin_string(o, name, 64, &s, err, errlen);

	if (r <= 0)
		return r;
	for (unsigned int i = 0; choices[i]; i++) {
		if (!strcmp(choices[i], s)) {
			*index = i;
			return 1;
		}
	}
	int n = snprintf(err, errlen, "'%s' is \"%.64s\"; it must be one of", name, s);
	for (unsigned int i = 0; choices[i] && n > 0 && (size_t)n < errlen; i++)
		n += snprintf(err + n, errlen - (size_t)n, "%s %s", i ? "," : "", choices[i]);
	return -EINVAL;
}
