/* Which acknowledgements to the guest a newer one makes redundant (slirp_ack.h). */
#include "backend/slirp_ack.h"
#include "core/be.h"

#include <string.h>

#define ETH_HLEN 14

/* Where the TCP header of a bare IPv4 ACK starts, else 0. */
static size_t bare_ack(const uint8_t *f, size_t len)
{
	if (len < ETH_HLEN + 40 || be_get16(f + 12) != 0x0800 || f[ETH_HLEN] >> 4 != 4 ||
	    f[ETH_HLEN + 9] != 6)
		return 0;
	size_t ihl = (size_t)(f[ETH_HLEN] & 15) * 4, l4 = ETH_HLEN + ihl;
	/* The IP total length says no payload; the TCP header has no options, flags ACK only. */
	if (ihl < 20 || len < l4 + 20 || be_get16(f + ETH_HLEN + 2) != ihl + 20 ||
	    f[l4 + 12] >> 4 != 5 || f[l4 + 13] != 0x10)
		return 0;
	return l4;
}

bool slirp_ack_supersedes(const uint8_t *newer, size_t nlen, const uint8_t *older, size_t olen)
{
	size_t a = bare_ack(newer, nlen), b = bare_ack(older, olen);

	if (!a || a != b)
		return false;
	/* Same addresses (IPv4 source and destination) and ports. */
	if (memcmp(newer + ETH_HLEN + 12, older + ETH_HLEN + 12, 8) ||
	    memcmp(newer + a, older + b, 4))
		return false;
	return (int32_t)(be_get32(newer + a + 8) - be_get32(older + b + 8)) > 0;
}
