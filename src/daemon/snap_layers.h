/*
 * The qcow2 overlays ternd makes for snapshots (docs/ternd.md), as libvirt's external
 * snapshots: a snapshot freezes each writable disk's image, and the VM goes on on a new
 * qcow2 overlay in front of it, beside it (VM-diskI.SNAP.qcow2); a revert puts the VM on a
 * new overlay in front of the snapshot's frozen images. Nothing is copied and no image is
 * written again once frozen, so `qemu-img info --backing-chain` reads every disk.
 *
 * ternd lists what it made in DIR/layers (JSON): an overlay that no disk of any VM, nor
 * any snapshot, has in its chain any longer (its snapshots deleted, a revert left it) is
 * removed by layers_gc. Images ternd did not make are never removed. What an overlay's
 * header names below it is the VM's to write while it runs: a merge goes only into the
 * file ternd recorded below it (chain_record.h), and what ternd keeps is what either the
 * headers or the records hold.
 */
#ifndef TERN_DAEMON_SNAP_LAYERS_H
#define TERN_DAEMON_SNAP_LAYERS_H

#include <stdbool.h>
#include <stddef.h>

struct ternd;
struct vm_entry;
struct vmdef;

/*
 * Whether each writable disk of d can go on a qcow2 overlay: a raw or qcow2 image (not a
 * tern overlay) whose chain has room for one more file. why says which disk does not.
 */
bool layers_fit(const struct vmdef *d, char *why, size_t n);

/*
 * Makes a new qcow2 overlay in front of each writable disk of d, beside its image and
 * named after vm, disk and snap, recorded in e's layers first; d's disks move onto them
 * (path and format qcow2). The overlay takes its image's owner and mode. On failure the
 * overlays made are removed and d is as it was. 0 or -errno with err.
 */
int layers_put_on_overlays(struct ternd *t, struct vm_entry *e, struct vmdef *d, const char *snap,
			   char *err, size_t n);

/*
 * A free name beside image for disk of VM vm and snapshot snap (VM-diskI.SNAP.EXT, or
 * VM-diskI.SNAP-K.EXT), recorded in e's layers before the file is made, into out: an
 * overlay's, or a revert's copy of a disk whose image a later snapshot froze. 0 or -errno.
 */
int layers_new_name(struct ternd *t, struct vm_entry *e, const char *image, const char *vm,
		    unsigned int disk, const char *snap, const char *ext, char *out, size_t n);

/*
 * Adds to to's layers those of from's that to's disks stand on (a clone's copy of an
 * overlay has the same backing file): either VM's collection removes them once neither
 * does, whichever goes first.
 */
void layers_inherit(struct ternd *t, struct vm_entry *from, struct vm_entry *to);

/*
 * A shut-off VM's disks after one of its snapshots went, as libvirt's snapshot-delete
 * does with block commit: a disk whose top is an overlay ternd made, in front of an image
 * that no snapshot and no other disk (of any VM) stands on any more, is merged into that
 * image (disk_commit.h) and d's disk moves back onto it; the overlay is then for
 * layers_gc. How many disks moved (d changed), or -errno with err; a failure part-way
 * leaves every disk reading as before.
 */
int layers_merge(struct ternd *t, struct vm_entry *e, struct vmdef *d, char *err, size_t n);

/*
 * Whether path is a regular file ternd made for e (listed in its layers): one of the VM's
 * own overlays, which ternd may hand to its jail whatever a header names it.
 */
bool layers_made(struct ternd *t, struct vm_entry *e, const char *path);

/* Removes the overlays of e's layers that no chain of any VM or snapshot holds. */
void layers_gc(struct ternd *t, struct vm_entry *e);

#endif
