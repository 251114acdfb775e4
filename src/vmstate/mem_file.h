/*
 * A snapshot's memory file: the guest's RAM image as the VMM maps it (RAM below 3 GiB,
 * then RAM from 4 GiB, back to back), then a 4 KiB trailer, then (diff files) a bitmap of
 * the 4 KiB pages the file holds:
 *
 *   [0, size)            RAM; all-zero runs are holes, so the file is sparse
 *   [size, size + 4096)  trailer: "TERNMEM1", kind (full/diff), RAM size, this file's id,
 *                        and for a diff its base's id and path; CRC-32
 *   [size + 4096, ...)   diff only: one bit per page, set for the pages written here
 *
 * Restore maps the RAM part MAP_PRIVATE (nothing is read up front; clones share the page
 * cache) and, for a diff, maps each run of its pages over its base the same way. The state
 * file records the id of its memory file, so a state file never loads with memory from
 * another snapshot (a crash between the two renames, or a user mixing files up).
 */
#ifndef TERN_VMSTATE_MEM_FILE_H
#define TERN_VMSTATE_MEM_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kvm/guest_mem.h"

#define MEM_FILE_PAGE 4096ULL
#define MEM_FILE_TRAILER 4096ULL
#define MEM_FILE_BASE_PATH_MAX 3072
#define MEM_FILE_MAX_CHAIN 16

enum mem_file_kind { MEM_FILE_FULL = 0, MEM_FILE_DIFF = 1 };

struct mem_file_info {
	enum mem_file_kind kind;
	uint64_t size;
	uint8_t id[16], base_id[16];
	char base_path[MEM_FILE_BASE_PATH_MAX + 1];
};

/*
 * Writes guest RAM to fd: every page (full; zero runs become holes) or only the pages set
 * in dirty (diff; base->id and base->base_path are the id and absolute path of the
 * previous snapshot's memory file). info->id is filled with a fresh random id. 0 or -errno.
 */
int mem_file_write(const struct guest_mem *m, int fd, const uint8_t *dirty,
		   const struct mem_file_info *base, struct mem_file_info *info);
/* Reads and checks the trailer of the memory file at fd. 0 or -EINVAL/-errno + err. */
int mem_file_read_info(int fd, struct mem_file_info *info, char *err, size_t errlen);
/*
 * Follows the chain from the memory file at path (expected id, RAM size) down to its full
 * file, checking each trailer and id; avoid (an absolute path or NULL) must not be one of
 * them. Nothing is mapped. 0 or -errno + err naming the file at fault.
 */
int mem_file_check_chain(const char *path, uint64_t size, const uint8_t id[16], const char *avoid,
			 char *err, size_t errlen);
/*
 * Maps the memory file at path (expected id and RAM size) into m, following a diff's chain
 * of bases. 0 or -errno + err.
 */
int mem_file_map(struct guest_mem *m, const char *path, uint64_t size, const uint8_t id[16],
		 char *err, size_t errlen);
/*
 * The same memory file (and chain), of m's RAM size, read into the RAM m already has (a
 * restore onto huge pages); pages that read as zeros are not written, so m's stay
 * untouched. 0 or -errno + err.
 */
int mem_file_load(struct guest_mem *m, const char *path, const uint8_t id[16], char *err,
		  size_t errlen);

#endif
