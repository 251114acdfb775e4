/*
 * libFuzzer harness for the virtio-vsock packet checks (src/virtio/vsock_pkt.c) and the
 * host handshake line (vsock_uds_parse_connect in src/backend/vsock_uds.c). A chain is
 * described as virtq_pop() would return it, each segment in its own exact-size heap
 * block so ASan catches any byte read or handed out beyond one; the harness recomputes
 * the expected verdict from the raw bytes and checks every slice the parser returns.
 *
 * Input layout (little-endian):
 *   0      mode: 0 tx packet (vsock_pkt_parse), 1 rx buffer (vsock_pkt_rx_room and
 *          vsock_pkt_rx_put_hdr), 2 connect line; other values are taken modulo 3
 *   mode 2: the rest is the line
 *   1..8   mode 0: the guest CID (u64); mode 1: bytes 1..4 are the payload max (u32)
 *   9      number of segments (0..255)
 *   10     how many of them are device-readable (clamped; the rest are writable)
 *   11..   segment lengths, u16 each, one per segment
 *   then   the bytes of the segments in chain order (zero-filled when the input ends)
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend/vsock_uds.h"
#include "virtio/queue.h"
#include "virtio/vsock_pkt.h"
#include "fuzz.h"

#define HDR 11u

static struct virtq_chain chain;
static struct vsock_pkt pkt;
static struct iovec room[VIRTQ_MAX_SIZE];

/* Is [p, p+len) inside one segment of iov[0..n)? */
static bool inside(const struct iovec *iov, unsigned int n, const uint8_t *p, size_t len)
{
	for (unsigned int i = 0; i < n; i++) {
		const uint8_t *b = iov[i].iov_base;
		if (p >= b && len <= iov[i].iov_len && (size_t)(p - b) <= iov[i].iov_len - len)
			return true;
	}
	return false;
}

/* The chain's bytes [off, off+len) of iov[0..n), flattened. */
static void flatten(const struct iovec *iov, unsigned int n, uint64_t off, uint8_t *out, size_t len)
{
	ASSERT(virtq_iov_read(iov, n, off, out, len) == len);
}

static void check_tx(uint64_t cid)
{
	const struct virtq_chain *c = &chain;
	int r = vsock_pkt_parse(c, cid, &pkt);
	uint8_t raw[VSOCK_HDR_SIZE];
	struct vsock_hdr h;

	if (c->read_len < VSOCK_HDR_SIZE) {
		ASSERT(r == -EBADMSG);
		return;
	}
	flatten(c->iov, c->nread, 0, raw, sizeof(raw));
	vsock_hdr_decode(raw, &h);
	ASSERT(h.op == pkt.hdr.op && h.len == pkt.hdr.len && h.src_cid == pkt.hdr.src_cid);

	int want;
	if (h.src_cid != cid || h.dst_cid != VSOCK_HOST_CID)
		want = VSOCK_PKT_DROP;
	else if (h.type != VSOCK_TYPE_STREAM || h.op == 0 || h.op > VSOCK_OP_CREDIT_REQUEST)
		want = VSOCK_PKT_RESET;
	else if (h.op != VSOCK_OP_RW)
		want = h.len ? VSOCK_PKT_RESET : VSOCK_PKT_OK;
	else if (h.len > VSOCK_MAX_PAYLOAD || h.len > c->read_len - VSOCK_HDR_SIZE)
		want = VSOCK_PKT_RESET;
	else
		want = VSOCK_PKT_OK;
	ASSERT(r == want);
	ASSERT(r == VSOCK_PKT_OK || pkt.why);
	if (r != VSOCK_PKT_OK || h.op != VSOCK_OP_RW) {
		ASSERT(pkt.ndata == 0 || r == VSOCK_PKT_OK);
		return;
	}
	/* The payload: exactly len bytes, inside readable segments, in chain order. */
	uint64_t total = 0;
	static uint8_t expect[VSOCK_MAX_PAYLOAD];
	flatten(c->iov, c->nread, VSOCK_HDR_SIZE, expect, h.len);
	ASSERT(pkt.ndata <= c->nread);
	for (unsigned int i = 0; i < pkt.ndata; i++) {
		const uint8_t *b = pkt.data[i].iov_base;
		size_t n = pkt.data[i].iov_len;
		ASSERT(n > 0 && inside(c->iov, c->nread, b, n));
		ASSERT(!memcmp(b, expect + total, n));
		total += n;
	}
	ASSERT(total == h.len);
}

static void check_rx(uint32_t max)
{
	const struct virtq_chain *c = &chain;
	const struct iovec *wr = c->iov + c->nread;
	unsigned int n = 12345;
	int r = vsock_pkt_rx_room(c, max, room, &n);

	if (c->write_len < VSOCK_HDR_SIZE) {
		ASSERT(r == -EBADMSG && n == 0);
		return;
	}
	uint64_t want = c->write_len - VSOCK_HDR_SIZE;
	if (want > max)
		want = max;
	if (want > VSOCK_MAX_PAYLOAD)
		want = VSOCK_MAX_PAYLOAD;
	ASSERT(r >= 0 && (uint64_t)r == want && n <= c->nwrite);
	uint64_t total = 0;
	for (unsigned int i = 0; i < n; i++) {
		ASSERT(room[i].iov_len > 0 &&
		       inside(wr, c->nwrite, room[i].iov_base, room[i].iov_len));
		memset(room[i].iov_base, 0xa5, room[i].iov_len); /* as readv would */
		total += room[i].iov_len;
	}
	ASSERT(total == want);
	/* The header goes in front of the room, never over it. */
	struct vsock_hdr h = { .src_cid = 2, .dst_cid = 77, .len = (uint32_t)want, .op = 5 }, back;
	uint8_t raw[VSOCK_HDR_SIZE];
	vsock_pkt_rx_put_hdr(c, &h);
	flatten(wr, c->nwrite, 0, raw, sizeof(raw));
	vsock_hdr_decode(raw, &back);
	ASSERT(back.src_cid == 2 && back.dst_cid == 77 && back.len == want && back.op == 5);
	for (unsigned int i = 0; i < n; i++)
		ASSERT(((uint8_t *)room[i].iov_base)[0] == 0xa5);
}

static void check_line(const uint8_t *data, size_t size)
{
	/* An exact-size copy: reading past it is a report. */
	char *buf = malloc(size ? size : 1);
	uint32_t port = 0xdeadbeef;

	ASSERT(buf);
	memcpy(buf, data, size);
	int r = vsock_uds_parse_connect(buf, size, &port);
	const char *nl = memchr(buf, '\n', size < VSOCK_UDS_LINE_MAX ? size : VSOCK_UDS_LINE_MAX);
	if (r > 0) {
		ASSERT(nl && r == nl - buf + 1 && r <= VSOCK_UDS_LINE_MAX);
		ASSERT(r >= 10 && !memcmp(buf, "CONNECT ", 8));
		uint64_t v = 0;
		for (int i = 8; i < r - 1; i++) {
			ASSERT(buf[i] >= '0' && buf[i] <= '9');
			v = v * 10 + (uint64_t)(buf[i] - '0');
		}
		ASSERT(r - 9 <= 10 && v == port);
	} else if (r == 0) {
		ASSERT(!nl && size < VSOCK_UDS_LINE_MAX);
	} else {
		ASSERT(r == -EINVAL);
	}
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	unsigned int mode = data[0] % 3;
	if (mode == 2) {
		check_line(data + 1, size - 1);
		return 0;
	}
	if (size < HDR)
		return 0;
	uint64_t cid;
	uint32_t max;
	memcpy(&cid, data + 1, 8);
	memcpy(&max, data + 1, 4);
	unsigned int n = data[9];
	if (n > VIRTQ_MAX_SIZE)
		n = VIRTQ_MAX_SIZE;
	unsigned int nread = data[10] < n ? data[10] : n;
	if (size < HDR + 2 * (size_t)n)
		return 0;

	const uint8_t *bytes = data + HDR + 2 * n;
	size_t left = size - HDR - 2 * n;
	memset(&chain, 0, sizeof(chain));
	chain.nread = nread;
	chain.nwrite = n - nread;
	for (unsigned int i = 0; i < n; i++) {
		size_t len = (size_t)(data[HDR + 2 * i] | data[HDR + 2 * i + 1] << 8);
		/* Exact size, even for zero: any access to a zero-length segment is a report. */
		uint8_t *seg = malloc(len);
		if (!seg && len)
			__builtin_trap();
		size_t take = len < left ? len : left;
		memcpy(seg, bytes, take);
		memset(seg + take, 0, len - take);
		bytes += take;
		left -= take;
		chain.iov[i] = (struct iovec){ seg, len };
		if (i < nread)
			chain.read_len += len;
		else
			chain.write_len += len;
	}
	if (mode == 0)
		check_tx(cid);
	else
		check_rx(max);
	for (unsigned int i = 0; i < n; i++)
		free(chain.iov[i].iov_base);
	return 0;
}
