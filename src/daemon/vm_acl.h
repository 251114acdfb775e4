/*
 * A POSIX ACL entry user:UID:r on a file a jailed VM only reads but does not own (a
 * backing file shared with other VMs), given for a run and taken back after (vm_jail.c).
 * Read-modify-write of the system.posix_acl_access xattr, without libacl.
 */
#ifndef TERN_DAEMON_VM_ACL_H
#define TERN_DAEMON_VM_ACL_H

#include <stddef.h>
#include <sys/types.h>

/*
 * What uid's own entry (user:UID) lets it do, the mask applied: 0-7; -ENOENT when the file
 * has no such entry (or no ACL), -EOPNOTSUPP on a file system without ACLs, -errno.
 */
int vmacl_lookup(const char *path, uid_t uid);
/*
 * Adds user:UID:r (or r to uid's entry), with a mask that includes r (the file's group
 * mode bits then show the mask). 0, or -errno with err: -EOPNOTSUPP on a file system
 * without ACLs, -EINVAL for an ACL it cannot read, -EACCES for a mask without r (which
 * it does not widen); the file is then left as it is.
 */
int vmacl_grant_read(const char *path, uid_t uid, char *err, size_t n);
/*
 * Removes uid's entry, others' left as they are; when no named entry remains, the ACL
 * goes and the group mode bits are the owning group's again. 0 (also when there was no
 * entry), or -errno.
 */
int vmacl_revoke(const char *path, uid_t uid);

#endif
