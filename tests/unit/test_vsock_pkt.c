/*
 * Tests for the virtio-vsock packet checks (src/virtio/vsock_pkt.c), the host handshake
 * line (src/backend/vsock_uds.c) and --vsock parsing (src/vmm/vsock_opts.c).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "backend/vsock_uds.h"
#include "virtio/vsock.h"
#include "virtio/vsock_pkt.h"
#include "vmm/vsock_opts.h"
#include "unit.h"

#define CID 42

static uint8_t seg_mem[8][VSOCK_HDR_SIZE + 70000];

static struct vsock_hdr rw_hdr(uint32_t len)
{
	return (struct vsock_hdr){
		.src_cid = CID,
		.dst_cid = VSOCK_HOST_CID,
		.src_port = 1000,
		.dst_port = 2000,
		.len = len,
		.type = VSOCK_TYPE_STREAM,
		.op = VSOCK_OP_RW,
		.buf_alloc = 65536,
		.fwd_cnt = 7,
	};
}

/*
 * A chain of segments with the given lengths (the first nread readable) holding the
 * encoded header then bytes 0, 1, 2... in order.
 */
static void make_chain(struct virtq_chain *c, const struct vsock_hdr *h, const uint32_t *lens,
		       unsigned int n, unsigned int nread)
{
	uint8_t flat[VSOCK_HDR_SIZE + 70000];
	uint64_t off = 0;

	vsock_hdr_encode(h, flat);
	for (size_t i = VSOCK_HDR_SIZE; i < sizeof(flat); i++)
		flat[i] = (uint8_t)(i - VSOCK_HDR_SIZE);
	memset(c, 0, sizeof(*c));
	c->nread = nread;
	c->nwrite = n - nread;
	for (unsigned int i = 0; i < n; i++) {
		memcpy(seg_mem[i], flat + off, lens[i]);
		off += lens[i];
		c->iov[i] = (struct iovec){ seg_mem[i], lens[i] };
		if (i < nread)
			c->read_len += lens[i];
		else
			c->write_len += lens[i];
	}
}

static int parse_with(const struct vsock_hdr *h, const uint32_t *lens, unsigned int n,
		      struct vsock_pkt *p)
{
	struct virtq_chain c;

	make_chain(&c, h, lens, n, n);
	return vsock_pkt_parse(&c, CID, p);
}

static struct vsock_pkt pkt;

static bool hdr_eq(const struct vsock_hdr *a, const struct vsock_hdr *b)
{
	return a->src_cid == b->src_cid && a->dst_cid == b->dst_cid && a->src_port == b->src_port &&
	       a->dst_port == b->dst_port && a->len == b->len && a->type == b->type &&
	       a->op == b->op && a->flags == b->flags && a->buf_alloc == b->buf_alloc &&
	       a->fwd_cnt == b->fwd_cnt;
}

TEST(vsock_pkt_header_roundtrip)
{
	struct vsock_hdr h = rw_hdr(123), back;
	uint8_t raw[VSOCK_HDR_SIZE];

	h.flags = 0xdeadbeef;
	vsock_hdr_encode(&h, raw);
	CHECK(raw[0] == CID && raw[8] == 2 && raw[28] == 1 && raw[30] == VSOCK_OP_RW);
	CHECK(raw[24] == 123 && raw[40] == 7);
	vsock_hdr_decode(raw, &back);
	CHECK(hdr_eq(&h, &back));
}

TEST(vsock_pkt_rw_ok)
{
	struct vsock_hdr h = rw_hdr(100);
	uint32_t one[] = { VSOCK_HDR_SIZE + 100 };
	uint32_t split[] = { 10, 34, 50, 50 }; /* header split; payload in two */

	REQUIRE(parse_with(&h, one, 1, &pkt) == VSOCK_PKT_OK);
	CHECK(pkt.hdr.len == 100 && pkt.ndata == 1 && pkt.data[0].iov_len == 100);
	CHECK(((uint8_t *)pkt.data[0].iov_base)[0] == 0 &&
	      ((uint8_t *)pkt.data[0].iov_base)[99] == 99);
	REQUIRE(parse_with(&h, split, 4, &pkt) == VSOCK_PKT_OK);
	CHECK(pkt.ndata == 2 && pkt.data[1].iov_len == 50);
	CHECK(((uint8_t *)pkt.data[1].iov_base)[0] == 50);
	CHECK(pkt.hdr.src_port == 1000 && pkt.hdr.dst_port == 2000 && pkt.hdr.fwd_cnt == 7);
	/* Bytes past len are ignored. */
	h.len = 20;
	REQUIRE(parse_with(&h, one, 1, &pkt) == VSOCK_PKT_OK);
	CHECK(pkt.ndata == 1 && pkt.data[0].iov_len == 20);
	/* The largest payload. */
	h.len = VSOCK_MAX_PAYLOAD;
	uint32_t big[] = { VSOCK_HDR_SIZE, VSOCK_MAX_PAYLOAD };
	CHECK(parse_with(&h, big, 2, &pkt) == VSOCK_PKT_OK && pkt.data[0].iov_len == 65536);
}

TEST(vsock_pkt_control_ok)
{
	struct vsock_hdr h = rw_hdr(0);
	uint32_t lens[] = { VSOCK_HDR_SIZE };

	for (uint16_t op = VSOCK_OP_REQUEST; op <= VSOCK_OP_CREDIT_REQUEST; op++) {
		h.op = op;
		CHECK(parse_with(&h, lens, 1, &pkt) == VSOCK_PKT_OK);
		CHECK(pkt.ndata == 0);
	}
}

TEST(vsock_pkt_short_chain)
{
	struct vsock_hdr h = rw_hdr(0);
	struct virtq_chain c;
	uint32_t short_hdr[] = { VSOCK_HDR_SIZE - 1 };
	uint32_t split_short[] = { 20, 23 };
	uint32_t writable[] = { VSOCK_HDR_SIZE + 10 };

	CHECK(parse_with(&h, short_hdr, 1, &pkt) == -EBADMSG);
	CHECK(parse_with(&h, split_short, 2, &pkt) == -EBADMSG);
	CHECK(parse_with(&h, NULL, 0, &pkt) == -EBADMSG);
	/* A header in a device-writable buffer is no header. */
	make_chain(&c, &h, writable, 1, 0);
	CHECK(vsock_pkt_parse(&c, CID, &pkt) == -EBADMSG);
}

TEST(vsock_pkt_bad_type_and_op)
{
	struct vsock_hdr h = rw_hdr(0);
	uint32_t lens[] = { VSOCK_HDR_SIZE };

	h.type = 2; /* SEQPACKET: not offered */
	CHECK(parse_with(&h, lens, 1, &pkt) == VSOCK_PKT_RESET && pkt.why);
	h.type = 0;
	CHECK(parse_with(&h, lens, 1, &pkt) == VSOCK_PKT_RESET);
	h.type = VSOCK_TYPE_STREAM;
	h.op = VSOCK_OP_INVALID;
	CHECK(parse_with(&h, lens, 1, &pkt) == VSOCK_PKT_RESET);
	h.op = 8;
	CHECK(parse_with(&h, lens, 1, &pkt) == VSOCK_PKT_RESET);
	h.op = 0xffff;
	CHECK(parse_with(&h, lens, 1, &pkt) == VSOCK_PKT_RESET);
}

TEST(vsock_pkt_bad_len)
{
	struct vsock_hdr h = rw_hdr(101);
	uint32_t lens[] = { VSOCK_HDR_SIZE, 100 };
	uint32_t huge[] = { VSOCK_HDR_SIZE, VSOCK_MAX_PAYLOAD + 1 };

	/* len beyond what the chain carries */
	CHECK(parse_with(&h, lens, 2, &pkt) == VSOCK_PKT_RESET && pkt.ndata == 0);
	h.len = 1;
	CHECK(parse_with(&h, lens, 1, &pkt) == VSOCK_PKT_RESET);
	/* huge len, with and without the bytes behind it */
	h.len = 0xffffffffu;
	CHECK(parse_with(&h, lens, 2, &pkt) == VSOCK_PKT_RESET);
	h.len = VSOCK_MAX_PAYLOAD + 1;
	CHECK(parse_with(&h, huge, 2, &pkt) == VSOCK_PKT_RESET);
	/* payload on a control packet */
	h.len = 4;
	h.op = VSOCK_OP_REQUEST;
	CHECK(parse_with(&h, lens, 2, &pkt) == VSOCK_PKT_RESET);
}

TEST(vsock_pkt_bad_addresses)
{
	struct vsock_hdr h = rw_hdr(0);
	uint32_t lens[] = { VSOCK_HDR_SIZE };

	h.src_cid = CID + 1;
	CHECK(parse_with(&h, lens, 1, &pkt) == VSOCK_PKT_DROP);
	h.src_cid = CID | (1ULL << 32); /* reserved upper half */
	CHECK(parse_with(&h, lens, 1, &pkt) == VSOCK_PKT_DROP);
	h.src_cid = CID;
	h.dst_cid = CID;
	CHECK(parse_with(&h, lens, 1, &pkt) == VSOCK_PKT_DROP);
	h.dst_cid = VSOCK_HOST_CID | (1ULL << 40);
	CHECK(parse_with(&h, lens, 1, &pkt) == VSOCK_PKT_DROP);
	/* Dropping wins over a bad type: nobody to answer. */
	h.dst_cid = 1;
	h.type = 9;
	CHECK(parse_with(&h, lens, 1, &pkt) == VSOCK_PKT_DROP);
}

TEST(vsock_pkt_rx_room)
{
	struct vsock_hdr h = rw_hdr(0), back;
	struct virtq_chain c;
	struct iovec iov[VIRTQ_MAX_SIZE];
	unsigned int n;
	uint32_t too_small[] = { VSOCK_HDR_SIZE - 1 };
	uint32_t exact[] = { VSOCK_HDR_SIZE };
	uint32_t split[] = { 8, 30, 16, 4096 }; /* first one readable: ignored */
	uint8_t raw[VSOCK_HDR_SIZE];

	make_chain(&c, &h, too_small, 1, 0);
	CHECK(vsock_pkt_rx_room(&c, 100, iov, &n) == -EBADMSG);
	make_chain(&c, &h, exact, 1, 0);
	CHECK(vsock_pkt_rx_room(&c, 100, iov, &n) == 0 && n == 0);
	make_chain(&c, &h, split, 4, 1);
	REQUIRE(vsock_pkt_rx_room(&c, 1000, iov, &n) == 1000);
	CHECK(n == 2 && iov[0].iov_len == 2 && iov[1].iov_len == 998);
	CHECK(iov[0].iov_base == (uint8_t *)c.iov[2].iov_base + 14);
	CHECK(iov[1].iov_base == c.iov[3].iov_base);
	CHECK(vsock_pkt_rx_room(&c, 100000, iov, &n) == 2 + 4096);
	/* Clamped to one packet's payload. */
	uint32_t big[] = { VSOCK_HDR_SIZE + 70000 };
	make_chain(&c, &h, big, 1, 0);
	CHECK(vsock_pkt_rx_room(&c, 0xffffffffu, iov, &n) == (int)VSOCK_MAX_PAYLOAD);
	/* The header lands across the writable segments. */
	make_chain(&c, &h, split, 4, 1);
	h = rw_hdr(55);
	vsock_pkt_rx_put_hdr(&c, &h);
	memcpy(raw, c.iov[1].iov_base, 30);
	memcpy(raw + 30, c.iov[2].iov_base, 14);
	vsock_hdr_decode(raw, &back);
	CHECK(hdr_eq(&h, &back));
}

TEST(vsock_uds_connect_line)
{
	uint32_t port = 0;

#define LINE(s) (s), sizeof(s) - 1
	CHECK(vsock_uds_parse_connect(LINE("CONNECT 52\n"), &port) == 11 && port == 52);
	CHECK(vsock_uds_parse_connect(LINE("CONNECT 4294967295\n"), &port) == 19 &&
	      port == 4294967295u);
	CHECK(vsock_uds_parse_connect(LINE("CONNECT 0\n"), &port) == 10 && port == 0);
	/* Bytes after the line are not part of it. */
	CHECK(vsock_uds_parse_connect(LINE("CONNECT 7\nhello"), &port) == 10 && port == 7);
	/* Incomplete but possible. */
	CHECK(vsock_uds_parse_connect(LINE(""), &port) == 0);
	CHECK(vsock_uds_parse_connect(LINE("CONN"), &port) == 0);
	CHECK(vsock_uds_parse_connect(LINE("CONNECT "), &port) == 0);
	CHECK(vsock_uds_parse_connect(LINE("CONNECT 123"), &port) == 0);
	/* Malformed. */
	CHECK(vsock_uds_parse_connect(LINE("CONNECT \n"), &port) == -EINVAL);
	CHECK(vsock_uds_parse_connect(LINE("CONNECT 4294967296\n"), &port) == -EINVAL);
	CHECK(vsock_uds_parse_connect(LINE("CONNECT 99999999999"), &port) == -EINVAL);
	CHECK(vsock_uds_parse_connect(LINE("CONNECT 00000000001\n"), &port) == -EINVAL);
	CHECK(vsock_uds_parse_connect(LINE("connect 5\n"), &port) == -EINVAL);
	CHECK(vsock_uds_parse_connect(LINE("CONNECT  5\n"), &port) == -EINVAL);
	CHECK(vsock_uds_parse_connect(LINE("CONNECT -5\n"), &port) == -EINVAL);
	CHECK(vsock_uds_parse_connect(LINE("CONNECT 5\r\n"), &port) == -EINVAL);
	CHECK(vsock_uds_parse_connect(LINE("CONNECT 5 6\n"), &port) == -EINVAL);
	CHECK(vsock_uds_parse_connect(LINE("GET / HTTP/1.1\r\n"), &port) == -EINVAL);
	CHECK(vsock_uds_parse_connect(LINE("\n"), &port) == -EINVAL);
#undef LINE
}

/* ---- --vsock ---- */

static char err[256];
static char dir[64];

static void make_dir(void)
{
	if (!dir[0]) {
		const char *t = getenv("TMPDIR");
		snprintf(dir, sizeof(dir), "%s/tvo-XXXXXX", t && *t && strlen(t) < 30 ? t : "/tmp");
		if (!mkdtemp(dir))
			dir[0] = 0;
	}
}

static bool rejected(const char *spec, const char *word)
{
	struct vsock_config c;

	err[0] = 0;
	int r = vsock_opts_parse(spec, &c, err, sizeof(err));
	if (r == 0 || !strstr(err, word))
		printf("  spec '%s' -> %d '%s' (wanted '%s')\n", spec, r, err, word);
	return r == -EINVAL && !c.enabled && strstr(err, word) != NULL;
}

TEST(vsock_opts_ok)
{
	struct vsock_config c;
	char spec[160];

	make_dir();
	REQUIRE(dir[0]);
	snprintf(spec, sizeof(spec), "cid=3,uds=%s/v.sock", dir);
	REQUIRE(vsock_opts_parse(spec, &c, err, sizeof(err)) == 0);
	CHECK(c.enabled && c.cid == 3);
	CHECK(!strncmp(c.path, dir, strlen(dir)) && !strcmp(c.path + strlen(dir), "/v.sock"));
	snprintf(spec, sizeof(spec), "uds=%s/v.sock,cid=4294967294", dir);
	REQUIRE(vsock_opts_parse(spec, &c, err, sizeof(err)) == 0);
	CHECK(c.cid == 4294967294ULL);
	CHECK(vsock_opts_parse("cid=77,uds=relative.sock", &c, err, sizeof(err)) == 0);
	rmdir(dir);
	dir[0] = 0;
}

TEST(vsock_opts_rejected)
{
	char spec[300], longp[200];

	make_dir();
	REQUIRE(dir[0]);
	CHECK(rejected("cid=0,uds=/tmp/x", "3 to 4294967294"));
	CHECK(rejected("cid=1,uds=/tmp/x", "3 to 4294967294"));
	CHECK(rejected("cid=2,uds=/tmp/x", "3 to 4294967294"));
	CHECK(rejected("cid=-1,uds=/tmp/x", "3 to 4294967294"));
	CHECK(rejected("cid=4294967295,uds=/tmp/x", "3 to 4294967294"));
	CHECK(rejected("cid=18446744073709551615,uds=/tmp/x", "cid="));
	CHECK(rejected("cid=0x10,uds=/tmp/x", "cid="));
	CHECK(rejected("cid=,uds=/tmp/x", "cid="));
	CHECK(rejected("uds=/tmp/x", "cid= is required"));
	CHECK(rejected("cid=5", "uds= is required"));
	CHECK(rejected("cid=5,uds=", "uds="));
	CHECK(rejected("cid=5,uds=/tmp/x,port=3", "unknown key 'port'"));
	CHECK(rejected("cid", "key=value"));
	CHECK(rejected("", "required"));
	CHECK(rejected("cid=5,uds=/nonexistent-dir/x.sock", "/nonexistent-dir"));
	CHECK(rejected("cid=5,uds=/tmp/", "directory"));
	memset(longp, 'a', sizeof(longp));
	longp[0] = '/';
	longp[VSOCK_UDS_PATH_MAX + 1] = 0;
	snprintf(spec, sizeof(spec), "cid=5,uds=%s", longp);
	CHECK(rejected(spec, "at most 96"));
	/* An existing file that is no socket, and a directory, and a symlink to a socket. */
	snprintf(spec, sizeof(spec), "%s/file", dir);
	FILE *f = fopen(spec, "w");
	REQUIRE(f);
	fclose(f);
	snprintf(spec, sizeof(spec), "cid=5,uds=%s/file", dir);
	CHECK(rejected(spec, "not a socket"));
	snprintf(spec, sizeof(spec), "cid=5,uds=%s", dir);
	CHECK(rejected(spec, "not a socket"));
	snprintf(spec, sizeof(spec), "%s/file", dir);
	unlink(spec);
	rmdir(dir);
	dir[0] = 0;
}

/* The listener: a stale socket is replaced, a live one or a non-socket is refused. */
TEST(vsock_uds_listen_rules)
{
	char path[128];
	const char *why;
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd, fd2;

	make_dir();
	REQUIRE(dir[0]);
	snprintf(path, sizeof(path), "%s/l.sock", dir);
	unlink(path);
	fd = vsock_uds_listen(path, &why);
	REQUIRE(fd >= 0);
	/* Someone listens: refused, by --vsock parsing already. */
	CHECK(vsock_uds_listen(path, &why) == -EADDRINUSE && strstr(why, "listens"));
	char spec[200];
	snprintf(spec, sizeof(spec), "cid=5,uds=%s", path);
	CHECK(rejected(spec, "listens on"));
	close(fd);
	/* A stale one passes the check. */
	struct vsock_config vc;
	CHECK(vsock_opts_parse(spec, &vc, err, sizeof(err)) == 0);
	/* Stale now (the file stays after close): replaced. */
	struct stat st;
	REQUIRE(lstat(path, &st) == 0 && S_ISSOCK(st.st_mode));
	fd = vsock_uds_listen(path, &why);
	CHECK(fd >= 0);
	/* It works: a client connects. */
	fd2 = socket(AF_UNIX, SOCK_STREAM, 0);
	memcpy(a.sun_path, path, strlen(path) + 1);
	CHECK(connect(fd2, (struct sockaddr *)&a, sizeof(a)) == 0);
	CHECK(vsock_uds_accept(fd) >= 0);
	CHECK(vsock_uds_accept(fd) == -EAGAIN);
	close(fd2);
	close(fd);
	unlink(path);
	/* A regular file: refused and kept. */
	FILE *f = fopen(path, "w");
	REQUIRE(f);
	fclose(f);
	CHECK(vsock_uds_listen(path, &why) == -EEXIST);
	CHECK(lstat(path, &st) == 0 && S_ISREG(st.st_mode));
	unlink(path);
	/* Connects to PATH_P. */
	CHECK(vsock_uds_connect(path, 9) == -ENOENT);
	snprintf(path, sizeof(path), "%s/l.sock_9", dir);
	fd = vsock_uds_listen(path, &why);
	REQUIRE(fd >= 0);
	snprintf(path, sizeof(path), "%s/l.sock", dir);
	fd2 = vsock_uds_connect(path, 9);
	CHECK(fd2 >= 0);
	close(fd2);
	close(fd);
	snprintf(path, sizeof(path), "%s/l.sock_9", dir);
	unlink(path);
	rmdir(dir);
	dir[0] = 0;
}
