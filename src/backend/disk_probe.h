/* format=auto's probe and its guard (disk_probe.c); disk.h has the public half. */
#ifndef TERN_BACKEND_DISK_PROBE_H
#define TERN_BACKEND_DISK_PROBE_H

#include <stdbool.h>

struct disk;
struct disk_req;

/*
 * For disk_submit: a write over the start of a disk that format=auto took as raw runs from
 * a copy of its first sector, refused (-EPERM) when that copy starts like a qcow2 image.
 * true when it took r (submitted to the engine), false when r is not such a write.
 */
bool disk_guard_submit(struct disk *d, struct disk_req *r);

#endif
