/*
 * libFuzzer harness for the virtio-net header and receive-buffer code
 * (src/virtio/net_hdr.c) and the software offloads (src/virtio/net_gso.c): a transmit
 * chain is split and its header checked, an accepted frame is segmented, a received
 * header is fixed up for the driver's features, and a received frame is spread over
 * receive chains. Every segment is its own exact-size heap block, so ASan catches any
 * byte touched outside one; the harness checks what each function promises.
 *
 * Input layout (little-endian):
 *   0      mode: bit 0 mergeable receive buffers; bits 1-2 how pop() ends (0 no more
 *          chains, 1 malformed ring, 2/3 no more chains)
 *   1..8   negotiated features (u64)
 *   9      transmit segments (0..VIRTQ_MAX_SIZE; the rest of the byte is ignored)
 *   10     receive chains (0..16, masked)
 *   11     max_chains for the receive fill (0 means VIRTQ_MAX_SIZE)
 *   12..13 frame length (u16; 0xffff and 0xfffe mean NET_MAX_FRAME + 1 and NET_MAX_FRAME)
 *   14..15 csum start, 16..17 csum offset for net_csum_complete (u16 each)
 *   then   transmit segment lengths (u16 each, masked to 0x3fff)
 *   then   per receive chain: segments (byte, masked to 0..7), readable mask (byte),
 *          segment lengths (u16 each, masked to 0x3fff)
 *   then   the received header (12 bytes), then the bytes of the transmit segments and
 *          of the frame (zero-filled when the input ends)
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "virtio/net_gso.h"
#include "virtio/net_hdr.h"
#include "virtio/queue.h"
#include "fuzz.h"

#define MAX_RX_CHAINS 16
#define MAX_RX_SEGS 7

static void run_gso(const struct net_hdr *h, const struct iovec *frame, unsigned int nf,
		    size_t len);

struct cursor {
	const uint8_t *p;
	size_t n;
};

static uint8_t byte(struct cursor *c)
{
	if (!c->n)
		return 0;
	c->n--;
	return *c->p++;
}

static uint16_t u16(struct cursor *c)
{
	uint16_t lo = byte(c);
	return (uint16_t)(lo | byte(c) << 8);
}

static void bytes(struct cursor *c, uint8_t *dst, size_t len)
{
	size_t k = len < c->n ? len : c->n;

	memcpy(dst, c->p, k);
	memset(dst + k, 0, len - k);
	c->p += k;
	c->n -= k;
}

/* Is [p, p+len) inside one of the n segments? */
static bool inside(const struct iovec *iov, unsigned int n, const uint8_t *p, size_t len)
{
	for (unsigned int i = 0; i < n; i++) {
		const uint8_t *b = iov[i].iov_base;
		if (p >= b && len <= iov[i].iov_len && (size_t)(p - b) <= iov[i].iov_len - len)
			return true;
	}
	return false;
}

/* ---- transmit ---- */

static struct iovec tx_in[VIRTQ_MAX_SIZE], tx_frame[VIRTQ_MAX_SIZE];

static void check_tx(struct cursor *c, unsigned int nseg, const uint16_t *lens, uint64_t features)
{
	uint8_t hdr[NET_HDR_LEN];
	unsigned int nf;
	uint64_t total = 0;

	for (unsigned int i = 0; i < nseg; i++) {
		tx_in[i].iov_len = lens[i];
		tx_in[i].iov_base = malloc(lens[i] ? lens[i] : 1);
		bytes(c, tx_in[i].iov_base, lens[i]);
		total += lens[i];
	}
	long r = net_tx_split(tx_in, nseg, hdr, tx_frame, &nf);
	if (total < NET_HDR_LEN) {
		ASSERT(r == -EBADMSG && nf == 0);
	} else if (r == -EMSGSIZE) {
		ASSERT(total - NET_HDR_LEN < NET_ETH_HLEN || total - NET_HDR_LEN > NET_MAX_FRAME);
	} else {
		ASSERT(r >= NET_ETH_HLEN && r <= NET_MAX_FRAME);
		ASSERT((uint64_t)r == total - NET_HDR_LEN);
		ASSERT(nf <= nseg);
		uint64_t sum = 0;
		for (unsigned int i = 0; i < nf; i++) {
			ASSERT(tx_frame[i].iov_len > 0);
			ASSERT(inside(tx_in, nseg, tx_frame[i].iov_base, tx_frame[i].iov_len));
			/* Touch every byte handed out: ASan checks the range. */
			volatile uint8_t x =
				((uint8_t *)tx_frame[i].iov_base)[tx_frame[i].iov_len - 1];
			(void)x;
			sum += tx_frame[i].iov_len;
		}
		ASSERT(sum == (uint64_t)r);

		struct net_hdr h;
		net_hdr_decode(hdr, &h);
		if (net_hdr_check_tx(&h, features, (size_t)r) == 0) {
			uint8_t gso = h.gso_type & (uint8_t)~VIRTIO_NET_HDR_GSO_ECN;
			ASSERT(h.num_buffers == 0);
			ASSERT(!(h.flags & ~VIRTIO_NET_HDR_F_NEEDS_CSUM));
			if (h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
				ASSERT(features & NET_F(VIRTIO_NET_F_CSUM));
				ASSERT((size_t)h.csum_start + h.csum_offset + 2 <= (size_t)r);
			}
			ASSERT(gso == VIRTIO_NET_HDR_GSO_NONE || gso == VIRTIO_NET_HDR_GSO_TCPV4 ||
			       gso == VIRTIO_NET_HDR_GSO_TCPV6);
			if (gso == VIRTIO_NET_HDR_GSO_TCPV4)
				ASSERT(features & NET_F(VIRTIO_NET_F_HOST_TSO4));
			if (gso == VIRTIO_NET_HDR_GSO_TCPV6)
				ASSERT(features & NET_F(VIRTIO_NET_F_HOST_TSO6));
			if (gso != VIRTIO_NET_HDR_GSO_NONE)
				ASSERT(h.gso_size && (h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM));
			if (h.gso_type & VIRTIO_NET_HDR_GSO_ECN)
				ASSERT(gso != VIRTIO_NET_HDR_GSO_NONE &&
				       (features & NET_F(VIRTIO_NET_F_HOST_ECN)));
			run_gso(&h, tx_frame, nf, (size_t)r);
		}
	}
	for (unsigned int i = 0; i < nseg; i++)
		free(tx_in[i].iov_base);
}

/* Every segment net_gso_segment makes is a whole frame inside the segment buffer. */
static size_t gso_room;

static int gso_emit(void *opaque, const uint8_t *frame, size_t len)
{
	ASSERT(len >= NET_ETH_HLEN && len <= gso_room);
	volatile uint8_t x = frame[len - 1];
	(void)x;
	(*(unsigned int *)opaque)++;
	return 0;
}

/* The accepted frame (one heap block of exactly len bytes) through the software offloads. */
static void run_gso(const struct net_hdr *h, const struct iovec *frame, unsigned int nf, size_t len)
{
	uint8_t *lin = malloc(len ? len : 1), *seg = malloc(2048);
	size_t at = 0;
	unsigned int n = 0;

	ASSERT(lin && seg);
	for (unsigned int i = 0; i < nf; i++) {
		memcpy(lin + at, frame[i].iov_base, frame[i].iov_len);
		at += frame[i].iov_len;
	}
	gso_room = h->gso_type ? 2048 : len;
	int r = net_gso_segment(h, lin, len, seg, 2048, gso_emit, &n);
	ASSERT(r == -EINVAL ? n == 0 : r == (int)n && n >= 1);
	free(lin);
	free(seg);
}

/* ---- receive ---- */

struct rx_chain {
	unsigned int nseg;
	uint8_t readable;
	uint16_t len[MAX_RX_SEGS];
	uint8_t *buf[MAX_RX_SEGS];
};

static struct rx_chain chains[MAX_RX_CHAINS];
static unsigned int nchains, next_chain;
static bool pop_fails;
static struct virtq_chain first, scratch;
static struct net_rx_out out;

static int fake_pop(void *opaque, struct virtq_chain *c)
{
	if (next_chain == nchains)
		return pop_fails ? -EBADMSG : 0;
	const struct rx_chain *k = &chains[next_chain];
	c->head = (uint16_t)next_chain++;
	c->nread = c->nwrite = 0;
	c->read_len = c->write_len = 0;
	/* As virtq_pop() builds them: readable segments first, no empty ones. */
	for (int pass = 0; pass < 2; pass++)
		for (unsigned int s = 0; s < k->nseg; s++) {
			bool rd = k->readable >> s & 1;
			if (rd != (pass == 0) || !k->len[s])
				continue;
			c->iov[c->nread + c->nwrite] = (struct iovec){ k->buf[s], k->len[s] };
			if (rd) {
				c->nread++;
				c->read_len += k->len[s];
			} else {
				c->nwrite++;
				c->write_len += k->len[s];
			}
		}
	return 1;
}

static uint64_t writable(const struct rx_chain *k)
{
	uint64_t w = 0;

	for (unsigned int s = 0; s < k->nseg; s++)
		if (!(k->readable >> s & 1))
			w += k->len[s];
	return w;
}

/* Device-readable data, or less room than a header: not a receive buffer. */
static bool chain_bad(const struct rx_chain *k)
{
	for (unsigned int s = 0; s < k->nseg; s++)
		if ((k->readable >> s & 1) && k->len[s])
			return true;
	return writable(k) < NET_HDR_LEN;
}

/* The bytes of chain i's writable segments, in order, from offset 0. */
static void chain_read(unsigned int i, uint8_t *dst, size_t len)
{
	const struct rx_chain *k = &chains[i];
	size_t done = 0;

	for (unsigned int s = 0; s < k->nseg && done < len; s++) {
		if (k->readable >> s & 1)
			continue;
		size_t n = k->len[s] < len - done ? k->len[s] : len - done;
		memcpy(dst + done, k->buf[s], n);
		done += n;
	}
}

static uint8_t stream[NET_HDR_LEN + NET_MAX_FRAME + 2], check[NET_HDR_LEN + NET_MAX_FRAME + 2];

static void check_rx_fill(bool mergeable, unsigned int max_chains, const uint8_t *hdr,
			  const uint8_t *frame, size_t len)
{
	size_t total = NET_HDR_LEN + len;
	int r = net_rx_fill(fake_pop, NULL, &first, &scratch, mergeable, max_chains, hdr, frame,
			    len, &out);
	unsigned int limit = max_chains > VIRTQ_MAX_SIZE ? VIRTQ_MAX_SIZE : max_chains;

	if (!mergeable)
		limit = 1;
	ASSERT(out.n <= limit && out.n == next_chain);
	if (r == -EBADMSG) {
		/* The last chain popped broke the rules, or the pop after the last one failed. */
		if (out.n && chain_bad(&chains[out.n - 1]))
			return;
		ASSERT(pop_fails && out.n == nchains);
		return;
	}
	if (r == NET_RX_NO_BUFFERS) {
		ASSERT(out.n == nchains && !pop_fails);
		uint64_t cap = 0;
		for (unsigned int i = 0; i < out.n; i++)
			cap += writable(&chains[i]);
		ASSERT(cap < total);
		return;
	}
	if (r == NET_RX_TOO_BIG) {
		if (!mergeable)
			ASSERT(out.n == 1 && writable(&chains[0]) < total);
		else
			ASSERT(out.n == limit);
		return;
	}
	ASSERT(r == NET_RX_DONE);
	ASSERT(out.n >= 1);
	/* The chains, in order, hold exactly the header (num_buffers set) then the frame. */
	size_t off = 0;
	for (unsigned int i = 0; i < out.n; i++) {
		ASSERT(out.heads[i] == i);
		ASSERT(out.lens[i] <= writable(&chains[i]));
		ASSERT(out.lens[i] > 0);
		ASSERT(i + 1 == out.n || out.lens[i] == writable(&chains[i]));
		chain_read(i, check + off, out.lens[i]);
		off += out.lens[i];
	}
	ASSERT(off == total);
	memcpy(stream, hdr, NET_HDR_LEN);
	stream[10] = (uint8_t)out.n;
	stream[11] = (uint8_t)(out.n >> 8);
	memcpy(stream + NET_HDR_LEN, frame, len);
	ASSERT(!memcmp(stream, check, total));
}

static void check_rx_hdr(const uint8_t *raw, uint8_t *frame, size_t len, uint64_t features)
{
	struct net_hdr h;
	bool csum = features & NET_F(VIRTIO_NET_F_GUEST_CSUM);

	net_hdr_decode(raw, &h);
	if (net_hdr_fix_rx(&h, frame, len, features))
		return;
	uint8_t gso = h.gso_type & (uint8_t)~VIRTIO_NET_HDR_GSO_ECN;
	ASSERT(h.num_buffers == 0);
	ASSERT(!(h.flags & ~(VIRTIO_NET_HDR_F_NEEDS_CSUM | VIRTIO_NET_HDR_F_DATA_VALID)));
	if (!csum)
		ASSERT(h.flags == 0 && gso == VIRTIO_NET_HDR_GSO_NONE);
	if (h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM)
		ASSERT((size_t)h.csum_start + h.csum_offset + 2 <= len);
	if (gso == VIRTIO_NET_HDR_GSO_TCPV4)
		ASSERT(features & NET_F(VIRTIO_NET_F_GUEST_TSO4));
	else if (gso == VIRTIO_NET_HDR_GSO_TCPV6)
		ASSERT(features & NET_F(VIRTIO_NET_F_GUEST_TSO6));
	else
		ASSERT(gso == VIRTIO_NET_HDR_GSO_NONE);
	if (h.gso_type & VIRTIO_NET_HDR_GSO_ECN)
		ASSERT(features & NET_F(VIRTIO_NET_F_GUEST_ECN));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cursor c = { data, size };
	uint16_t tx_len[VIRTQ_MAX_SIZE];
	uint8_t rx_hdr[NET_HDR_LEN];
	uint64_t features = 0;

	uint8_t mode = byte(&c);
	for (int i = 0; i < 8; i++)
		features |= (uint64_t)byte(&c) << (8 * i);
	unsigned int ntx = byte(&c);
	nchains = byte(&c) % (MAX_RX_CHAINS + 1);
	unsigned int max_chains = byte(&c);
	uint16_t flen16 = u16(&c);
	uint16_t cstart = u16(&c), coff = u16(&c);
	size_t flen = flen16 == 0xffff ? NET_MAX_FRAME + 1 :
		      flen16 == 0xfffe ? NET_MAX_FRAME :
					 flen16;

	if (max_chains == 0)
		max_chains = VIRTQ_MAX_SIZE;
	pop_fails = (mode >> 1 & 3) == 1;
	for (unsigned int i = 0; i < ntx; i++)
		tx_len[i] = u16(&c) & 0x3fff;
	for (unsigned int i = 0; i < nchains; i++) {
		struct rx_chain *k = &chains[i];
		k->nseg = byte(&c) % (MAX_RX_SEGS + 1);
		k->readable = byte(&c);
		for (unsigned int s = 0; s < k->nseg; s++) {
			k->len[s] = u16(&c) & 0x3fff;
			k->buf[s] = malloc(k->len[s] ? k->len[s] : 1);
			memset(k->buf[s], 0xa5, k->len[s]);
		}
	}
	bytes(&c, rx_hdr, NET_HDR_LEN);

	check_tx(&c, ntx, tx_len, features);

	uint8_t *frame = malloc(flen ? flen : 1);
	bytes(&c, frame, flen);
	if (flen <= NET_MAX_FRAME) {
		/* Header fix-up may complete a checksum inside the frame. */
		check_rx_hdr(rx_hdr, frame, flen, features);
		next_chain = 0;
		check_rx_fill(mode & 1, max_chains, rx_hdr, frame, flen);
	}
	int cr = net_csum_complete(frame, flen, cstart, coff);
	ASSERT(cr == 0 ? (size_t)cstart + coff + 2 <= flen : (size_t)cstart + coff + 2 > flen);

	free(frame);
	for (unsigned int i = 0; i < nchains; i++)
		for (unsigned int s = 0; s < chains[i].nseg; s++)
			free(chains[i].buf[s]);
	return 0;
}
