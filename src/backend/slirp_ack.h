/*
 * Thinning the acknowledgements user-mode networking sends the guest: libslirp answers
 * every TCP segment with an ACK, so a guest sending 16 MiB got some 11,500 frames back
 * to process, each a cumulative ACK that the next one made redundant.
 */
#ifndef TERN_BACKEND_SLIRP_ACK_H
#define TERN_BACKEND_SLIRP_ACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Does frame newer make older redundant? Both are Ethernet frames of one TCP connection
 * over IPv4 (the same addresses and ports) that carry a bare acknowledgement (no data, no
 * options, no flag but ACK), and newer acknowledges strictly more. A duplicate ACK (the
 * same number: a loss signal to the guest) or a window update is never superseded.
 */
bool slirp_ack_supersedes(const uint8_t *newer, size_t nlen, const uint8_t *older, size_t olen);

#endif
