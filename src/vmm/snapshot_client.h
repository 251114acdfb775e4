/*
 * `tern-vmm --api-sock PATH --snapshot-to STATE,MEM[,diff]`: the command-line form of
 * PUT /snapshot/create for a tern-vmm that is already running: it asks that process, over
 * its API socket, to pause, write the snapshot and resume (it stays paused if it was).
 */
#ifndef TERN_VMM_SNAPSHOT_CLIENT_H
#define TERN_VMM_SNAPSHOT_CLIENT_H

/* Returns the exit status: 0 done, 1 the VMM refused or could not be reached (said on stderr). */
int snapshot_client(const char *api_sock, const char *spec);

#endif
