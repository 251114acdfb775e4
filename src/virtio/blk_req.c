/* virtio-blk request parsing: header, data slices, status byte, range checks. */
#include "virtio/blk_req.h"

#include <errno.h>
#include <string.h>

/* Appends bytes [off, off+len) of the segments iov[0..n) to p->data; -E2BIG if too many. */
static int slice(struct blk_parsed *p, const struct iovec *iov, unsigned int n, uint64_t off,
		 uint64_t len)
{
	for (unsigned int i = 0; i < n && len; i++) {
		if (off >= iov[i].iov_len) {
			off -= iov[i].iov_len;
			continue;
		}
		uint64_t take = iov[i].iov_len - off;
		if (take > len)
			take = len;
		if (p->ndata == VIRTIO_BLK_SEG_MAX)
			return -E2BIG;
		p->data[p->ndata++] = (struct iovec){ (uint8_t *)iov[i].iov_base + off, take };
		p->data_len += take;
		len -= take;
		off = 0;
	}
	return 0;
}

/* Is [sector, sector + bytes/512) inside the disk? Overflow-safe. */
static int in_range(uint64_t sector, uint64_t bytes, uint64_t capacity)
{
	uint64_t start, end;

	if (__builtin_mul_overflow(sector, (uint64_t)VIRTIO_BLK_SECTOR, &start) ||
	    __builtin_add_overflow(start, bytes, &end))
		return 0;
	return end <= capacity;
}

int blk_parse(const struct virtq_chain *c, uint64_t capacity, struct blk_parsed *p)
{
	uint8_t hdr[16];
	const struct iovec *rd = c->iov, *wr = c->iov + c->nread;

	/*
	 * Every field but the segments, of which only the first ndata are ever read:
	 * clearing all 126 of them cost a 2 KiB memset per request.
	 */
	p->type = 0;
	p->sector = 0;
	p->ndata = 0;
	p->data_len = 0;
	p->status = NULL;
	p->range_sector = 0;
	p->range_sectors = 0;
	if (c->read_len < sizeof(hdr) || c->write_len < 1 ||
	    virtq_iov_read(rd, c->nread, 0, hdr, sizeof(hdr)) != sizeof(hdr))
		return -EBADMSG;
	/* The status byte is the last writable byte of the chain. */
	const struct iovec *last = &wr[c->nwrite - 1];
	for (unsigned int i = c->nwrite; i > 0 && last->iov_len == 0; i--)
		last = &wr[i - 1];
	if (last->iov_len == 0)
		return -EBADMSG;
	p->status = (uint8_t *)last->iov_base + last->iov_len - 1;
	memcpy(&p->type, hdr, 4);
	memcpy(&p->sector, hdr + 8, 8);

	switch (p->type) {
	case VIRTIO_BLK_T_IN:
		if (slice(p, wr, c->nwrite, 0, c->write_len - 1))
			return VIRTIO_BLK_S_IOERR;
		break;
	case VIRTIO_BLK_T_OUT:
		if (slice(p, rd, c->nread, sizeof(hdr), c->read_len - sizeof(hdr)))
			return VIRTIO_BLK_S_IOERR;
		break;
	case VIRTIO_BLK_T_GET_ID:
		if (slice(p, wr, c->nwrite, 0, c->write_len - 1))
			return VIRTIO_BLK_S_IOERR;
		return VIRTIO_BLK_S_OK;
	case VIRTIO_BLK_T_FLUSH:
		return VIRTIO_BLK_S_OK;
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES: {
		/* One 16-byte range (max_discard_seg = max_write_zeroes_seg = 1). */
		uint8_t seg[16];
		uint32_t flags;
		if (c->read_len - sizeof(hdr) != sizeof(seg) ||
		    virtq_iov_read(rd, c->nread, sizeof(hdr), seg, sizeof(seg)) != sizeof(seg))
			return VIRTIO_BLK_S_IOERR;
		memcpy(&p->range_sector, seg, 8);
		memcpy(&p->range_sectors, seg + 8, 4);
		memcpy(&flags, seg + 12, 4);
		/* Only WRITE_ZEROES' unmap bit is defined. */
		if ((p->type == VIRTIO_BLK_T_DISCARD && flags) || (flags & ~1u))
			return VIRTIO_BLK_S_UNSUPP;
		if (!p->range_sectors ||
		    !in_range(p->range_sector, (uint64_t)p->range_sectors * VIRTIO_BLK_SECTOR,
			      capacity))
			return VIRTIO_BLK_S_IOERR;
		return VIRTIO_BLK_S_OK;
	}
	default:
		return VIRTIO_BLK_S_UNSUPP;
	}
	if (p->data_len % VIRTIO_BLK_SECTOR || !in_range(p->sector, p->data_len, capacity))
		return VIRTIO_BLK_S_IOERR;
	return VIRTIO_BLK_S_OK;
}
