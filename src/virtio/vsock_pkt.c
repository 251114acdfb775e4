/* virtio-vsock header coding and the checks on transmitted packets and receive buffers. */
#include "virtio/vsock_pkt.h"
#include "core/le.h"

#include <errno.h>
#include <string.h>

void vsock_hdr_decode(const uint8_t in[VSOCK_HDR_SIZE], struct vsock_hdr *h)
{
	h->src_cid = le_get64(in);
	h->dst_cid = le_get64(in + 8);
	h->src_port = le_get32(in + 16);
	h->dst_port = le_get32(in + 20);
	h->len = le_get32(in + 24);
	h->type = le_get16(in + 28);
	h->op = le_get16(in + 30);
	h->flags = le_get32(in + 32);
	h->buf_alloc = le_get32(in + 36);
	h->fwd_cnt = le_get32(in + 40);
}

void vsock_hdr_encode(const struct vsock_hdr *h, uint8_t out[VSOCK_HDR_SIZE])
{
	le_put64(out, h->src_cid);
	le_put64(out + 8, h->dst_cid);
	le_put32(out + 16, h->src_port);
	le_put32(out + 20, h->dst_port);
	le_put32(out + 24, h->len);
	le_put16(out + 28, h->type);
	le_put16(out + 30, h->op);
	le_put32(out + 32, h->flags);
	le_put32(out + 36, h->buf_alloc);
	le_put32(out + 40, h->fwd_cnt);
}

/* Slices bytes [off, off+len) of iov[0..n) into out[0..*nout); returns the bytes sliced. */
static uint64_t slice(const struct iovec *iov, unsigned int n, uint64_t off, uint64_t len,
		      struct iovec *out, unsigned int *nout)
{
	uint64_t done = 0;

	*nout = 0;
	for (unsigned int i = 0; i < n && done < len; i++) {
		if (off >= iov[i].iov_len) {
			off -= iov[i].iov_len;
			continue;
		}
		uint64_t take = iov[i].iov_len - off;
		if (take > len - done)
			take = len - done;
		out[(*nout)++] = (struct iovec){ (uint8_t *)iov[i].iov_base + off, take };
		done += take;
		off = 0;
	}
	return done;
}

static int verdict(struct vsock_pkt *p, int v, const char *why)
{
	p->why = why;
	return v;
}

int vsock_pkt_parse(const struct virtq_chain *c, uint64_t guest_cid, struct vsock_pkt *p)
{
	uint8_t raw[VSOCK_HDR_SIZE];
	const struct vsock_hdr *h = &p->hdr;

	p->ndata = 0;
	p->why = NULL;
	/* One copy: the guest may rewrite the buffer while we look at it. */
	if (c->read_len < VSOCK_HDR_SIZE ||
	    virtq_iov_read(c->iov, c->nread, 0, raw, sizeof(raw)) != sizeof(raw))
		return -EBADMSG;
	vsock_hdr_decode(raw, &p->hdr);
	if (h->src_cid != guest_cid)
		return verdict(p, VSOCK_PKT_DROP, "source CID is not the guest's");
	if (h->dst_cid != VSOCK_HOST_CID)
		return verdict(p, VSOCK_PKT_DROP, "destination CID is not the host");
	if (h->type != VSOCK_TYPE_STREAM)
		return verdict(p, VSOCK_PKT_RESET, "type is not STREAM");
	if (h->op == VSOCK_OP_INVALID || h->op > VSOCK_OP_CREDIT_REQUEST)
		return verdict(p, VSOCK_PKT_RESET, "unknown op");
	if (h->op != VSOCK_OP_RW) {
		if (h->len)
			return verdict(p, VSOCK_PKT_RESET, "payload on a control packet");
		return VSOCK_PKT_OK;
	}
	if (h->len > VSOCK_MAX_PAYLOAD)
		return verdict(p, VSOCK_PKT_RESET, "payload larger than 64 KiB");
	if (h->len > c->read_len - VSOCK_HDR_SIZE)
		return verdict(p, VSOCK_PKT_RESET, "len beyond the buffer");
	if (slice(c->iov, c->nread, VSOCK_HDR_SIZE, h->len, p->data, &p->ndata) != h->len)
		return verdict(p, VSOCK_PKT_RESET, "len beyond the buffer");
	return VSOCK_PKT_OK;
}

int vsock_pkt_rx_room(const struct virtq_chain *c, uint32_t max, struct iovec *iov, unsigned int *n)
{
	const struct iovec *wr = c->iov + c->nread;

	*n = 0;
	if (c->write_len < VSOCK_HDR_SIZE)
		return -EBADMSG;
	if (max > VSOCK_MAX_PAYLOAD)
		max = VSOCK_MAX_PAYLOAD;
	return (int)slice(wr, c->nwrite, VSOCK_HDR_SIZE, max, iov, n);
}

void vsock_pkt_rx_put_hdr(const struct virtq_chain *c, const struct vsock_hdr *h)
{
	uint8_t raw[VSOCK_HDR_SIZE];

	vsock_hdr_encode(h, raw);
	virtq_iov_write(c->iov + c->nread, c->nwrite, 0, raw, sizeof(raw));
}
