/* tern img's shared pieces (cmd_img.c, img_copy.c). */
#ifndef TERN_CLI_IMG_H
#define TERN_CLI_IMG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/image_file.h"
#include "backend/qcow2.h"

bool img_parse_size(const char *s, uint64_t *out);
/*
 * The image at path and what is below it, top first, for any format tern reads: qcow2
 * (qcow2_describe), raw, and tern's own overlays (named by their magic: a file handed to
 * a tool is the user's, so probing it is safe). Returns the count or -errno with err.
 */
int img_describe(const char *path, struct qcow2_chain_entry *chain, int max, char *err, size_t n);
struct cli;
/* tern img works on this host's files: with --connect, exits 2 saying so for `what`. */
void img_refuse_remote(const struct cli *c, const char *what);

#endif
