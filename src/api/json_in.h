/*
 * Reading API bodies and --config-file sections (json-c). Every refusal names the field
 * and what it accepts, in err, for the 400 fault_message or the exit-2 line.
 */
#ifndef TERN_API_JSON_IN_H
#define TERN_API_JSON_IN_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JIN_MAX_DEPTH 16

/* Parses a whole body that must be one JSON object. NULL + err on failure. */
struct json_object *jin_parse_object(const char *text, size_t len, char *err, size_t errlen);
/* o's member key when it is an array (a new reference), else a new empty array; o may be NULL. */
struct json_object *jin_array_or_empty(struct json_object *o, const char *key);
/* Refuses any key of o not in allowed (NULL-terminated); where names the resource. */
int jin_only(struct json_object *o, const char *const *allowed, const char *where, char *err,
	     size_t errlen);
/*
 * Field readers: 1 when present, 0 when absent (or null, as Firecracker's optional fields),
 * -EINVAL with err when of the wrong type or out of range.
 */
int jin_string(struct json_object *o, const char *name, size_t maxlen, const char **out, char *err,
	       size_t errlen);
int jin_u64(struct json_object *o, const char *name, uint64_t min, uint64_t max, uint64_t *out,
	    char *err, size_t errlen);
int jin_bool(struct json_object *o, const char *name, bool *out, char *err, size_t errlen);
/* A string that must be one of choices (compared case-sensitively); *index gets its place. */
int jin_enum(struct json_object *o, const char *name, const char *const *choices,
	     unsigned int *index, char *err, size_t errlen);
/* Present and not null. */
bool jin_has(struct json_object *o, const char *name);

#endif
