/*
 * The backing chains ternd has seen its VMs' qcow2 disks on (vms/UUID/chain), so that a
 * VM cannot pick the files below its own disk. A qcow2 image names the file below it in
 * its header, and the VM writes its top image while it runs: a taken-over tern-vmm could
 * name any host file there, and at the next start the chain (read from the headers) would
 * put that file in its jail. Its uid opens it, so a file only its owner may read stays
 * shut, but one any user may read would not. libvirt leans on SELinux labels for this;
 * ternd records each hop (a file, the file below it and that one's format) when it is
 * told or makes it, and refuses a start whose headers disagree.
 *
 * A hop is recorded when the VM is defined (the user names the disks: their chains as
 * they are then), when ternd makes an overlay for it (ternd wrote that header), and at a
 * start for a hop that has no record yet (a VM defined before ternd kept them, a disk
 * ternd moved onto a copy): first seen, then held. A hop another VM's records hold (a
 * clone standing on its source's layers) is taken from there, not from the header.
 *
 * What ternd does as root with the files below a disk goes by these records too
 * (snap_layers.c): a merge writes only into the file recorded below an overlay, and the
 * files kept are those the headers or the records hold.
 */
#ifndef TERN_DAEMON_CHAIN_RECORD_H
#define TERN_DAEMON_CHAIN_RECORD_H

#include <stddef.h>

struct json_object;
struct ternd;
struct vm_entry;

/* Records every hop of e's qcow2 disks' chains as the headers name them now. */
void chain_record_define(struct ternd *t, struct vm_entry *e);

/* Records (or replaces) the first hop of overlay, a qcow2 whose header ternd just wrote. */
int chain_record_made(struct ternd *t, struct vm_entry *e, const char *overlay);

/*
 * Before a start: every hop of e's qcow2 disks' chains as the headers name them matches
 * its record (hops without one are recorded). -EACCES with err naming the disk, the file,
 * what its header names and what ternd recorded when one does not.
 */
int chain_record_check(struct ternd *t, struct vm_entry *e, char *err, size_t n);

/*
 * Every VM's recorded hops in one map, for chain_record_below, e's own over any other's
 * for the same file (e may be NULL); the caller puts it.
 */
struct json_object *chain_record_all(struct ternd *t, struct vm_entry *e);

/* The file hops (may be NULL) records below path, and its format into *format; or NULL. */
const char *chain_record_below(struct json_object *hops, const char *path, const char **format);

#endif
