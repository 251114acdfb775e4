/*
 * A human-readable summary of a state file, for --describe-snapshot and for tests: the
 * header, then one line per section (tag, instance, section version, payload bytes).
 */
#ifndef TERN_VMSTATE_DESCRIBE_H
#define TERN_VMSTATE_DESCRIBE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/*
 * Reads the state file at path, checks all of it (vmstate_file_parse) and prints the
 * summary to out. 0; -EINVAL with err when the file does not parse, and nothing printed;
 * -errno with err when it cannot be read (or the summary cannot be written).
 */
int vmstate_describe(const char *path, FILE *out, char *err, size_t errlen);

/* The same for a file already in memory. */
int vmstate_describe_buf(const uint8_t *buf, size_t len, FILE *out, char *err, size_t errlen);

#endif
