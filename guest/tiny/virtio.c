/*
 * A minimal polling virtio-mmio driver (virtio 1.x, register layout version 2, split
 * rings) and the tests that drive tern's virtio-blk and virtio-rng with it. Device i
 * sits at 0xd0000000 + i * 0x1000. Interrupts stay off: the driver polls the used ring
 * with a TSC bound (about 2 s) and acknowledges InterruptStatus by hand. After writing
 * 0 to the status it waits for the status to read 0 (2.4.1).
 *
 * mode=io (slot 0: read-write disk with cache=writeback and id=, slot 1: read-only
 * disk whose sector s holds pattern(s, RO_TAG), slot 2: rng): write/read round trips
 * (direct and indirect chains), GET_ID, FLUSH, out-of-range sectors, read-only
 * writes, an unknown request type, refused feature negotiations, random bytes.
 * Arguments: sectors=N (capacity of disk 0), sector=S (where to write), diskid=ID,
 * evidx=1 (negotiate EVENT_IDX), flush=0 (disk 0 offers no FLUSH).
 *
 * mode=hostile (slot 0: read-write disk of at least 2.25 MiB, slot 1: rng): one
 * malformed chain or queue per case; each must leave the device NEEDS_RESET, and after
 * a reset the same driver must do a valid round trip again. Prints
 * "tiny: case NAME: needs reset (...)" and "tiny: case NAME: recovered" per case.
 * Arguments: sector=S, case=NAME (run only that one).
 *
 * mode=inflight (slot 0: read-write disk of at least 2.25 MiB): resets while big
 * writes are still in the disk engine; the requests after each reset must complete
 * exactly once. Arguments: sector=S, rounds=N.
 */
#include "tiny.h"

TINY_GUEST("virtio");

#define MMIO_BASE 0xd0000000UL
#define MMIO_STRIDE 0x1000UL
#define MMIO_SLOTS 8
#define MMIO_MAGIC 0x74726976 /* "virt" */

/* virtio-mmio registers (4.2.2) */
#define REG_MAGIC 0x000
#define REG_VERSION 0x004
#define REG_DEVICE_ID 0x008
#define REG_DEVICE_FEATURES 0x010
#define REG_DEVICE_FEATURES_SEL 0x014
#define REG_DRIVER_FEATURES 0x020
#define REG_DRIVER_FEATURES_SEL 0x024
#define REG_QUEUE_SEL 0x030
#define REG_QUEUE_NUM_MAX 0x034
#define REG_QUEUE_NUM 0x038
#define REG_QUEUE_READY 0x044
#define REG_QUEUE_NOTIFY 0x050
#define REG_INTERRUPT_STATUS 0x060
#define REG_INTERRUPT_ACK 0x064
#define REG_STATUS 0x070
#define REG_QUEUE_DESC_LOW 0x080
#define REG_QUEUE_DESC_HIGH 0x084
#define REG_QUEUE_DRIVER_LOW 0x090
#define REG_QUEUE_DRIVER_HIGH 0x094
#define REG_QUEUE_DEVICE_LOW 0x0a0
#define REG_QUEUE_DEVICE_HIGH 0x0a4
#define REG_CONFIG_GENERATION 0x0fc
#define REG_CONFIG 0x100

#define S_ACKNOWLEDGE 0x01
#define S_DRIVER 0x02
#define S_DRIVER_OK 0x04
#define S_FEATURES_OK 0x08
#define S_NEEDS_RESET 0x40
#define S_FAILED 0x80

#define ISR_QUEUE 0x1
#define ISR_CONFIG 0x2

#define F_INDIRECT_DESC 28
#define F_EVENT_IDX 29
#define F_VERSION_1 32
#define BLK_F_RO 5
#define BLK_F_FLUSH 9

#define ID_BLOCK 2
#define ID_RNG 4

#define DESC_F_NEXT 1
#define DESC_F_WRITE 2
#define DESC_F_INDIRECT 4

#define BLK_T_IN 0
#define BLK_T_OUT 1
#define BLK_T_FLUSH 4
#define BLK_T_GET_ID 8
#define BLK_S_OK 0
#define BLK_S_IOERR 1
#define BLK_S_UNSUPP 2
#define BLK_ID_BYTES 20
#define SECTOR 512

#define QSIZE 16	       /* our queue size (tern offers 256) */
#define PAST_RAM 0x7f0000000UL /* far above the guest's 128 MiB */
#define RO_TAG 0x55	       /* the read-only image's pattern (tests/guest/test_virtio.py) */
#define NO_USED 0xffffffffu    /* wait_used(): nothing came back */
#define BIG_BUF 0x2000000UL    /* 32 MiB: guest RAM the image does not use, for big writes */
#define BIG_SECTOR 2048	       /* where big writes go: from 1 MiB into the disk */

/* Split virtqueue layout (2.7) */
struct desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct avail {
	uint16_t flags;
	uint16_t idx;
	uint16_t ring[QSIZE];
	uint16_t used_event;
};

struct used_elem {
	uint32_t id;
	uint32_t len;
};

struct used {
	uint16_t flags;
	uint16_t idx;
	struct used_elem ring[QSIZE];
	uint16_t avail_event;
};

/* One page per device: descriptors (16-aligned), driver area (2), device area (4). */
struct rings {
	struct desc desc[QSIZE];
	struct avail avail __attribute__((aligned(64)));
	struct used used __attribute__((aligned(64)));
} __attribute__((aligned(4096)));

_Static_assert(sizeof(struct desc) == 16, "desc");
_Static_assert(sizeof(struct rings) <= 4096, "rings fit a page");

static struct rings ring_mem[MMIO_SLOTS];

struct blk_hdr {
	uint32_t type;
	uint32_t reserved;
	uint64_t sector;
};

/* Request buffers; one request is in flight at a time. */
static struct {
	struct blk_hdr hdr;
	uint8_t status;
	uint8_t out[3 * SECTOR] __attribute__((aligned(512)));
	uint8_t in[3 * SECTOR] __attribute__((aligned(512)));
	struct desc table[8] __attribute__((aligned(16)));
	struct desc table2[4] __attribute__((aligned(16)));
	uint8_t rnd[2][64];
} io __attribute__((aligned(4096)));

struct vdev {
	unsigned int slot;
	uint64_t base;
	uint32_t device_id;
	uint64_t offered, features;
	volatile struct rings *r;
	uint16_t avail_idx; /* next avail->idx */
	uint16_t used_idx;  /* next used entry to consume */
	uint32_t isr;	    /* InterruptStatus bits seen (and acknowledged) since the last init */
};

static uint64_t timeout_cycles;
static bool want_event_idx;

static uint32_t rd(struct vdev *d, uint32_t off)
{
	return mmio_read32(d->base + off);
}

static void wr(struct vdev *d, uint32_t off, uint32_t v)
{
	mmio_write32(d->base + off, v);
}

static uint64_t gpa(const volatile void *p)
{
	return (uint64_t)(uintptr_t)p; /* identity mapped */
}

/* About 2 s of TSC: CPUID 0x16 gives the base frequency where the CPU has it; else 3 GHz. */
static void init_timeout(void)
{
	uint64_t mhz = 3000;

	if (cpuid(0, 0).eax >= 0x16 && (cpuid(0x16, 0).eax & 0xffff))
		mhz = cpuid(0x16, 0).eax & 0xffff;
	timeout_cycles = 2 * mhz * 1000 * 1000;
	SAY("timeout: %lu TSC cycles (%lu MHz)", timeout_cycles, mhz);
}

static unsigned int resets_waited; /* resets whose status did not read 0 at once */

/*
 * Writes 0 to the status and waits (2.4.1) for it to read 0: a device with requests
 * still in flight finishes the reset only once they have drained.
 */
static void reset(struct vdev *d)
{
	uint64_t t0;
	uint32_t status;

	wr(d, REG_STATUS, 0);
	t0 = rdtsc();
	if (rd(d, REG_STATUS) != 0) {
		resets_waited++;
		while ((status = rd(d, REG_STATUS)) != 0) {
			if (rdtsc() - t0 > timeout_cycles) {
				SAY("slot %u: status still 0x%x after the reset", d->slot, status);
				CHECK(0);
			}
			cpu_relax();
		}
	}
	CHECK_EQ(rd(d, REG_INTERRUPT_STATUS), 0);
	d->isr = 0;
}

/*
 * Reset, ACKNOWLEDGE, DRIVER, read the offered features, accept `features` (which
 * may be wrong on purpose), set FEATURES_OK; returns the status read back.
 */
static uint32_t accept_features(struct vdev *d, uint64_t features)
{
	reset(d);
	wr(d, REG_STATUS, S_ACKNOWLEDGE);
	wr(d, REG_STATUS, S_ACKNOWLEDGE | S_DRIVER);
	wr(d, REG_DEVICE_FEATURES_SEL, 0);
	d->offered = rd(d, REG_DEVICE_FEATURES);
	wr(d, REG_DEVICE_FEATURES_SEL, 1);
	d->offered |= (uint64_t)rd(d, REG_DEVICE_FEATURES) << 32;
	d->features = features;
	wr(d, REG_DRIVER_FEATURES_SEL, 0);
	wr(d, REG_DRIVER_FEATURES, (uint32_t)features);
	wr(d, REG_DRIVER_FEATURES_SEL, 1);
	wr(d, REG_DRIVER_FEATURES, (uint32_t)(features >> 32));
	wr(d, REG_STATUS, S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK);
	return rd(d, REG_STATUS);
}

/* Negotiates offered & want; returns with FEATURES_OK set (and checked). */
static void negotiate(struct vdev *d, uint64_t want)
{
	CHECK(d->offered & (1UL << F_VERSION_1));
	CHECK(d->offered & (1UL << F_INDIRECT_DESC));
	CHECK_EQ(accept_features(d, d->offered & want), S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK);
}

/* Programs queue 0 with the given ring addresses and sets QueueReady. */
static void setup_queue(struct vdev *d, uint32_t num, uint64_t desc, uint64_t avail, uint64_t used)
{
	wr(d, REG_QUEUE_SEL, 0);
	CHECK_EQ(rd(d, REG_QUEUE_READY), 0);
	CHECK(rd(d, REG_QUEUE_NUM_MAX) >= QSIZE);
	wr(d, REG_QUEUE_NUM, num);
	wr(d, REG_QUEUE_DESC_LOW, (uint32_t)desc);
	wr(d, REG_QUEUE_DESC_HIGH, (uint32_t)(desc >> 32));
	wr(d, REG_QUEUE_DRIVER_LOW, (uint32_t)avail);
	wr(d, REG_QUEUE_DRIVER_HIGH, (uint32_t)(avail >> 32));
	wr(d, REG_QUEUE_DEVICE_LOW, (uint32_t)used);
	wr(d, REG_QUEUE_DEVICE_HIGH, (uint32_t)(used >> 32));
	wr(d, REG_QUEUE_READY, 1);
}

/* The whole initialization (3.1.1); the device is live afterwards. */
static void vdev_init(struct vdev *d)
{
	uint64_t want = (1UL << F_VERSION_1) | (1UL << F_INDIRECT_DESC);

	if (want_event_idx)
		want |= 1UL << F_EVENT_IDX;
	negotiate(d, want);
	d->r = &ring_mem[d->slot];
	memset((void *)d->r, 0, sizeof(*d->r));
	d->avail_idx = d->used_idx = 0;
	setup_queue(d, QSIZE, gpa(d->r->desc), gpa(&d->r->avail), gpa(&d->r->used));
	CHECK_EQ(rd(d, REG_QUEUE_READY), 1);
	wr(d, REG_STATUS, S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
	CHECK_EQ(rd(d, REG_STATUS), S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
}

static bool vdev_probe(struct vdev *d, unsigned int slot)
{
	d->slot = slot;
	d->base = MMIO_BASE + slot * MMIO_STRIDE;
	if (rd(d, REG_MAGIC) != MMIO_MAGIC)
		return false;
	CHECK_EQ(rd(d, REG_VERSION), 2);
	d->device_id = rd(d, REG_DEVICE_ID);
	wr(d, REG_DEVICE_FEATURES_SEL, 0);
	d->offered = rd(d, REG_DEVICE_FEATURES);
	wr(d, REG_DEVICE_FEATURES_SEL, 1);
	d->offered |= (uint64_t)rd(d, REG_DEVICE_FEATURES) << 32;
	return d->device_id != 0;
}

static void set_desc(volatile struct desc *t, unsigned int i, const volatile void *buf,
		     uint32_t len, uint16_t flags, uint16_t next)
{
	t[i].addr = gpa(buf);
	t[i].len = len;
	t[i].flags = flags;
	t[i].next = next;
}

/* Does the driver have to notify after moving avail->idx from old to new (2.7.10)? */
static bool need_event(uint16_t event, uint16_t new, uint16_t old)
{
	return (uint16_t)(new - event - 1) < (uint16_t)(new - old);
}

/* Publishes head in the avail ring, advancing avail->idx by `advance`, and kicks. */
static void kick(struct vdev *d, uint16_t head, uint16_t advance)
{
	volatile struct rings *r = d->r;
	uint16_t old = d->avail_idx;

	r->avail.ring[old % QSIZE] = head;
	r->avail.used_event = d->used_idx; /* with EVENT_IDX: interrupt for the next one */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	d->avail_idx = (uint16_t)(old + advance);
	r->avail.idx = d->avail_idx;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (d->features & (1UL << F_EVENT_IDX)) {
		/* tern published avail_event = everything it consumed: this must need a kick. */
		CHECK(need_event(r->used.avail_event, d->avail_idx, old));
	}
	wr(d, REG_QUEUE_NOTIFY, 0);
}

/*
 * Waits (about 2 s at most) for the next used entry; returns its id and sets *len, or
 * returns NO_USED. Acknowledges the interrupt it raised.
 */
static uint32_t wait_used(struct vdev *d, uint32_t *len)
{
	volatile struct rings *r = d->r;
	uint64_t t0 = rdtsc();
	uint32_t id;

	while (r->used.idx == d->used_idx) {
		if (rdtsc() - t0 > timeout_cycles)
			return NO_USED;
		cpu_relax();
	}
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	id = r->used.ring[d->used_idx % QSIZE].id;
	*len = r->used.ring[d->used_idx % QSIZE].len;
	d->used_idx++;
	uint32_t isr = rd(d, REG_INTERRUPT_STATUS);
	d->isr |= isr;
	if (isr)
		wr(d, REG_INTERRUPT_ACK, isr);
	/* Without NO_INTERRUPT, and with used_event = this entry, the device must interrupt. */
	CHECK(isr & ISR_QUEUE);
	CHECK_EQ(rd(d, REG_INTERRUPT_STATUS) & isr, 0);
	return id;
}

/* Submits the chain at head (or a one-descriptor indirect table) and waits for it. */
static uint32_t run_chain(struct vdev *d, uint16_t head, uint32_t *len)
{
	uint32_t id;

	kick(d, head, 1);
	id = wait_used(d, len);
	if (id == NO_USED) {
		SAY("slot %u: no completion within the timeout (status 0x%x)", d->slot,
		    rd(d, REG_STATUS));
		CHECK(0);
	}
	CHECK_EQ(id, head);
	CHECK_EQ(d->r->used.flags & ~1u, 0);
	return id;
}

static uint8_t status_byte(void)
{
	return *(volatile uint8_t *)&io.status;
}

/*
 * One virtio-blk request as header + optional data buffer + status byte. Returns the
 * status byte and checks the used length (data bytes written + the status byte).
 */
static uint8_t blk_req(struct vdev *d, uint32_t type, uint64_t sector, void *buf, uint32_t len,
		       bool data_writable)
{
	volatile struct desc *t = d->r->desc;
	uint32_t used_len;
	unsigned int n = 0;

	io.hdr = (struct blk_hdr){ .type = type, .sector = sector };
	io.status = 0xff;
	set_desc(t, n, &io.hdr, sizeof(io.hdr), DESC_F_NEXT, (uint16_t)(n + 1));
	n++;
	if (len) {
		set_desc(t, n, buf, len, DESC_F_NEXT | (data_writable ? DESC_F_WRITE : 0),
			 (uint16_t)(n + 1));
		n++;
	}
	set_desc(t, n, &io.status, 1, DESC_F_WRITE, 0);
	run_chain(d, 0, &used_len);
	uint8_t status = status_byte();
	CHECK(status <= BLK_S_UNSUPP);
	if (status == BLK_S_OK && data_writable)
		CHECK_EQ(used_len, len + 1);
	else if (type != BLK_T_GET_ID)
		CHECK_EQ(used_len, 1);
	return status;
}

static uint8_t pattern(unsigned int i, uint64_t sector, unsigned int tag)
{
	return (uint8_t)(i * 31 + sector * 7 + tag);
}

static void fill(uint8_t *buf, uint64_t sector, unsigned int nsec, unsigned int tag)
{
	for (unsigned int s = 0; s < nsec; s++)
		for (unsigned int i = 0; i < SECTOR; i++)
			buf[s * SECTOR + i] = pattern(i, sector + s, tag);
}

static void check_pattern(const uint8_t *buf, uint64_t sector, unsigned int nsec, unsigned int tag)
{
	for (unsigned int s = 0; s < nsec; s++)
		for (unsigned int i = 0; i < SECTOR; i++)
			if (buf[s * SECTOR + i] != pattern(i, sector + s, tag)) {
				SAY("sector %lu byte %u: 0x%x, expected 0x%x", sector + s, i,
				    buf[s * SECTOR + i], pattern(i, sector + s, tag));
				CHECK(0);
			}
}

/* Writes one sector with the given tag and reads it back. */
static void blk_round_trip(struct vdev *d, uint64_t sector, unsigned int tag)
{
	fill(io.out, sector, 1, tag);
	CHECK_EQ(blk_req(d, BLK_T_OUT, sector, io.out, SECTOR, false), BLK_S_OK);
	memset(io.in, 0, SECTOR);
	CHECK_EQ(blk_req(d, BLK_T_IN, sector, io.in, SECTOR, true), BLK_S_OK);
	check_pattern(io.in, sector, 1, tag);
}

/* Reads two sectors through an indirect table that splits the data at 256 bytes. */
static void blk_read_indirect(struct vdev *d, uint64_t sector)
{
	volatile struct desc *t = io.table;
	uint32_t used_len;

	io.hdr = (struct blk_hdr){ .type = BLK_T_IN, .sector = sector };
	io.status = 0xff;
	memset(io.in, 0, 2 * SECTOR);
	set_desc(t, 0, &io.hdr, sizeof(io.hdr), DESC_F_NEXT, 1);
	set_desc(t, 1, io.in, 256, DESC_F_NEXT | DESC_F_WRITE, 2);
	set_desc(t, 2, io.in + 256, 2 * SECTOR - 256, DESC_F_NEXT | DESC_F_WRITE, 3);
	set_desc(t, 3, &io.status, 1, DESC_F_WRITE, 0);
	set_desc(d->r->desc, 0, io.table, 4 * sizeof(struct desc), DESC_F_INDIRECT, 0);
	run_chain(d, 0, &used_len);
	CHECK_EQ(status_byte(), BLK_S_OK);
	CHECK_EQ(used_len, 2 * SECTOR + 1);
}

/* Writes two sectors from two direct descriptors (header, 2 data, status). */
static void blk_write_two(struct vdev *d, uint64_t sector)
{
	volatile struct desc *t = d->r->desc;
	uint32_t used_len;

	io.hdr = (struct blk_hdr){ .type = BLK_T_OUT, .sector = sector };
	io.status = 0xff;
	set_desc(t, 0, &io.hdr, sizeof(io.hdr), DESC_F_NEXT, 1);
	set_desc(t, 1, io.out, 700, DESC_F_NEXT, 2);
	set_desc(t, 2, io.out + 700, 2 * SECTOR - 700, DESC_F_NEXT, 3);
	set_desc(t, 3, &io.status, 1, DESC_F_WRITE, 0);
	run_chain(d, 0, &used_len);
	CHECK_EQ(status_byte(), BLK_S_OK);
	CHECK_EQ(used_len, 1);
}

static uint64_t blk_capacity(struct vdev *d)
{
	uint32_t gen, lo, hi;

	do {
		gen = rd(d, REG_CONFIG_GENERATION);
		lo = rd(d, REG_CONFIG);
		hi = rd(d, REG_CONFIG + 4);
	} while (gen != rd(d, REG_CONFIG_GENERATION));
	return lo | (uint64_t)hi << 32;
}

static void rng_read(struct vdev *d, uint8_t *buf)
{
	uint32_t used_len;
	unsigned int nonzero = 0;

	memset(buf, 0, 64);
	set_desc(d->r->desc, 0, buf, 64, DESC_F_WRITE, 0);
	run_chain(d, 0, &used_len);
	CHECK_EQ(used_len, 64);
	for (unsigned int i = 0; i < 64; i++)
		nonzero += buf[i] != 0;
	CHECK(nonzero > 0);
}

static void need_device(struct vdev *d, unsigned int slot, uint32_t device_id)
{
	if (!vdev_probe(d, slot)) {
		SAY("no virtio-mmio device in slot %u", slot);
		CHECK(0);
	}
	CHECK_EQ(d->device_id, device_id);
}

static int mode_io(void)
{
	struct vdev disk, ro, rng;
	char want_id[BLK_ID_BYTES + 1];
	char got_id[BLK_ID_BYTES + 1];
	uint64_t s = (uint64_t)tiny_arg_num("sector", 5);
	uint64_t cap;

	need_device(&disk, 0, ID_BLOCK);
	need_device(&ro, 1, ID_BLOCK);
	need_device(&rng, 2, ID_RNG);
	want_event_idx = tiny_arg_is("evidx", "1");

	SAY("disk: init%s", want_event_idx ? " with EVENT_IDX" : "");
	vdev_init(&disk);
	if (want_event_idx)
		CHECK(disk.features & (1UL << F_EVENT_IDX));
	/* flush=0: the disk is cache=none (writes durable on completion), so no FLUSH. */
	bool want_flush = !tiny_arg_is("flush", "0");
	CHECK_EQ(!!(disk.offered & (1UL << BLK_F_FLUSH)), want_flush);
	CHECK(!(disk.offered & (1UL << BLK_F_RO)));
	cap = blk_capacity(&disk);
	SAY("disk: offered 0x%lx, capacity %lu sectors", disk.offered, cap);
	CHECK_EQ(cap, (uint64_t)tiny_arg_num("sectors", 0));

	SAY("disk: write sector %lu, read it back", s);
	blk_round_trip(&disk, s, 0xa0);

	SAY("disk: write sectors %lu-%lu from 2 segments, read back through an indirect table",
	    s + 1, s + 2);
	fill(io.out, s + 1, 2, 0xb0);
	blk_write_two(&disk, s + 1);
	blk_read_indirect(&disk, s + 1);
	check_pattern(io.in, s + 1, 2, 0xb0);

	SAY("disk: GET_ID");
	memset(io.in, 0xee, BLK_ID_BYTES);
	CHECK_EQ(blk_req(&disk, BLK_T_GET_ID, 0, io.in, BLK_ID_BYTES, true), BLK_S_OK);
	memset(want_id, 0, sizeof(want_id));
	CHECK(tiny_arg("diskid", want_id, sizeof(want_id)));
	memcpy(got_id, io.in, BLK_ID_BYTES);
	got_id[BLK_ID_BYTES] = 0;
	SAY("disk: id '%s'", got_id);
	CHECK_EQ(memcmp(io.in, want_id, BLK_ID_BYTES), 0); /* zero-padded to 20 bytes */

	SAY("disk: FLUSH");
	CHECK_EQ(blk_req(&disk, BLK_T_FLUSH, 0, NULL, 0, false),
		 want_flush ? BLK_S_OK : BLK_S_UNSUPP);

	SAY("disk: out-of-range sectors");
	CHECK_EQ(blk_req(&disk, BLK_T_IN, cap, io.in, SECTOR, true), BLK_S_IOERR);
	CHECK_EQ(blk_req(&disk, BLK_T_IN, cap - 1, io.in, 2 * SECTOR, true), BLK_S_IOERR);
	CHECK_EQ(blk_req(&disk, BLK_T_OUT, cap, io.out, SECTOR, false), BLK_S_IOERR);
	CHECK_EQ(blk_req(&disk, BLK_T_IN, ~0UL, io.in, SECTOR, true), BLK_S_IOERR);
	CHECK_EQ(blk_req(&disk, BLK_T_IN, ~0UL >> 9, io.in, SECTOR, true), BLK_S_IOERR);
	SAY("disk: a partial sector");
	CHECK_EQ(blk_req(&disk, BLK_T_IN, 0, io.in, 100, true), BLK_S_IOERR);
	SAY("disk: unknown request type");
	CHECK_EQ(blk_req(&disk, 0x7777, 0, io.in, SECTOR, true), BLK_S_UNSUPP);
	CHECK_EQ(rd(&disk, REG_STATUS) & (S_NEEDS_RESET | S_FAILED), 0);
	SAY("disk: still usable: read sector %lu", s);
	memset(io.in, 0, SECTOR);
	CHECK_EQ(blk_req(&disk, BLK_T_IN, s, io.in, SECTOR, true), BLK_S_OK);
	check_pattern(io.in, s, 1, 0xa0);

	SAY("read-only disk: init");
	vdev_init(&ro);
	CHECK(ro.offered & (1UL << BLK_F_RO));
	CHECK(!(ro.offered & (1UL << BLK_F_FLUSH)));
	SAY("read-only disk: read sector 1");
	CHECK_EQ(blk_req(&ro, BLK_T_IN, 1, io.in, SECTOR, true), BLK_S_OK);
	check_pattern(io.in, 1, 1, RO_TAG);
	SAY("read-only disk: write");
	fill(io.out, 1, 1, 0xc0);
	CHECK_EQ(blk_req(&ro, BLK_T_OUT, 1, io.out, SECTOR, false), BLK_S_IOERR);
	SAY("read-only disk: FLUSH");
	CHECK_EQ(blk_req(&ro, BLK_T_FLUSH, 0, NULL, 0, false), BLK_S_UNSUPP);
	CHECK_EQ(blk_req(&ro, BLK_T_IN, 1, io.in, SECTOR, true), BLK_S_OK);
	check_pattern(io.in, 1, 1, RO_TAG);

	SAY("rng: FEATURES_OK refused without VERSION_1 and with a feature not offered");
	CHECK_EQ(accept_features(&rng, rng.offered & ~(1UL << F_VERSION_1)),
		 S_ACKNOWLEDGE | S_DRIVER);
	CHECK_EQ(accept_features(&rng, rng.offered | (1UL << 50)), S_ACKNOWLEDGE | S_DRIVER);
	SAY("rng: DRIVER_OK refused without FEATURES_OK");
	reset(&rng);
	wr(&rng, REG_STATUS, S_ACKNOWLEDGE);
	wr(&rng, REG_STATUS, S_ACKNOWLEDGE | S_DRIVER);
	wr(&rng, REG_STATUS, S_ACKNOWLEDGE | S_DRIVER | S_DRIVER_OK);
	CHECK_EQ(rd(&rng, REG_STATUS), S_ACKNOWLEDGE | S_DRIVER);

	SAY("rng: init, two 64-byte reads");
	vdev_init(&rng);
	rng_read(&rng, io.rnd[0]);
	rng_read(&rng, io.rnd[1]);
	CHECK(memcmp(io.rnd[0], io.rnd[1], 64) != 0);
	SAY("rng: %x %x %x %x ...", io.rnd[0][0], io.rnd[0][1], io.rnd[0][2], io.rnd[0][3]);

	/* Leave the disk written and reset, as a driver unloading would. */
	reset(&disk);
	reset(&ro);
	reset(&rng);
	return 0;
}

/* --- mode=hostile ---------------------------------------------------------------- */

static uint64_t hostile_sector;
static int good_head = -1; /* a valid chain submitted with the bad one, or -1 */
static unsigned int recover_tag = 0x10;

/* A blk chain: header (readable), data, status, in descriptors 0-2. */
static void valid_blk_chain(struct vdev *d)
{
	volatile struct desc *t = d->r->desc;

	io.hdr = (struct blk_hdr){ .type = BLK_T_IN, .sector = 0 };
	io.status = 0xff;
	set_desc(t, 0, &io.hdr, sizeof(io.hdr), DESC_F_NEXT, 1);
	set_desc(t, 1, io.in, SECTOR, DESC_F_NEXT | DESC_F_WRITE, 2);
	set_desc(t, 2, &io.status, 1, DESC_F_WRITE, 0);
}

/*
 * After a malformed submission: NEEDS_RESET shows up (and stays), nothing was returned,
 * the driver heard of it through a config interrupt; then a reset and a valid round trip.
 */
static void expect_needs_reset(struct vdev *d, const char *name)
{
	uint64_t t0 = rdtsc();
	uint32_t status, isr;
	uint16_t n;

	while (!((status = rd(d, REG_STATUS)) & S_NEEDS_RESET)) {
		if (rdtsc() - t0 > timeout_cycles) {
			SAY("case %s: no NEEDS_RESET (status 0x%x)", name, status);
			CHECK(0);
		}
		cpu_relax();
	}
	isr = rd(d, REG_INTERRUPT_STATUS);
	SAY("case %s: needs reset (status 0x%x, interrupt status 0x%x)", name, status, isr);
	CHECK(isr & ISR_CONFIG);
	wr(d, REG_INTERRUPT_ACK, isr);
	/* The bad chain was not returned (a good one before it may have been). */
	n = (uint16_t)(d->r->used.idx - d->used_idx);
	CHECK(n <= (good_head >= 0));
	if (n)
		CHECK_EQ(d->r->used.ring[d->used_idx % QSIZE].id, good_head);
	good_head = -1;

	/* The driver cannot clear NEEDS_RESET by writing the status register. */
	wr(d, REG_STATUS, status & ~S_NEEDS_RESET);
	CHECK_EQ(rd(d, REG_STATUS), status);

	vdev_init(d);
	if (d->device_id == ID_BLOCK) {
		blk_round_trip(d, hostile_sector, recover_tag++);
	} else {
		rng_read(d, io.rnd[0]);
	}
	CHECK_EQ(rd(d, REG_STATUS) & S_NEEDS_RESET, 0);
	SAY("case %s: recovered", name);
}

/* (a) d0 -> d1 -> d0 -> ...: all readable, so only the loop check can stop it */
static void case_loop(struct vdev *d)
{
	volatile struct desc *t = d->r->desc;

	io.hdr = (struct blk_hdr){ .type = BLK_T_OUT, .sector = hostile_sector };
	set_desc(t, 0, &io.hdr, sizeof(io.hdr), DESC_F_NEXT, 1);
	set_desc(t, 1, io.out, SECTOR, DESC_F_NEXT, 0);
	kick(d, 0, 1);
}

/* (a') a loop that skips the head: d0 -> d1 -> d2 -> d1 -> ... */
static void case_loop_tail(struct vdev *d)
{
	volatile struct desc *t = d->r->desc;

	valid_blk_chain(d);
	t[2].flags = DESC_F_WRITE | DESC_F_NEXT;
	t[2].next = 1;
	kick(d, 0, 1);
}

/* (b) next = queue size */
static void case_next_oob(struct vdev *d)
{
	valid_blk_chain(d);
	d->r->desc[1].next = QSIZE;
	kick(d, 0, 1);
}

/* (c) a buffer of 0xffffffff bytes */
static void case_len_max(struct vdev *d)
{
	valid_blk_chain(d);
	d->r->desc[1].len = 0xffffffff;
	kick(d, 0, 1);
}

/* (d) a buffer far past guest RAM */
static void case_past_ram(struct vdev *d)
{
	valid_blk_chain(d);
	d->r->desc[1].addr = PAST_RAM;
	kick(d, 0, 1);
}

/* (e) an indirect table whose second entry is an indirect descriptor */
static void case_nested_indirect(struct vdev *d)
{
	volatile struct desc *t1 = io.table, *t2 = io.table2;

	io.hdr = (struct blk_hdr){ .type = BLK_T_IN, .sector = 0 };
	set_desc(t2, 0, io.in, SECTOR, DESC_F_NEXT | DESC_F_WRITE, 1);
	set_desc(t2, 1, &io.status, 1, DESC_F_WRITE, 0);
	set_desc(t1, 0, &io.hdr, sizeof(io.hdr), DESC_F_NEXT, 1);
	set_desc(t1, 1, io.table2, 2 * sizeof(struct desc), DESC_F_INDIRECT, 0);
	set_desc(d->r->desc, 0, io.table, 2 * sizeof(struct desc), DESC_F_INDIRECT, 0);
	kick(d, 0, 1);
}

/* (f) avail->idx moved far more than the queue size ahead */
static void case_avail_ahead(struct vdev *d)
{
	valid_blk_chain(d);
	kick(d, 0, QSIZE + 100);
}

/* (g) a header alone: no writable status byte */
static void case_no_status(struct vdev *d)
{
	io.hdr = (struct blk_hdr){ .type = BLK_T_IN, .sector = 0 };
	set_desc(d->r->desc, 0, &io.hdr, sizeof(io.hdr), 0, 0);
	kick(d, 0, 1);
}

/* (h) a head index past the descriptor table in the avail ring */
static void case_head_oob(struct vdev *d)
{
	valid_blk_chain(d);
	kick(d, 200, 1);
}

/* (i) an indirect table whose size is not a multiple of 16 bytes */
static void case_indirect_len(struct vdev *d)
{
	volatile struct desc *t = io.table;

	set_desc(t, 0, &io.hdr, sizeof(io.hdr), DESC_F_NEXT, 1);
	set_desc(t, 1, &io.status, 1, DESC_F_WRITE, 0);
	set_desc(d->r->desc, 0, io.table, 2 * sizeof(struct desc) - 1, DESC_F_INDIRECT, 0);
	kick(d, 0, 1);
}

/* (j) a readable buffer after a writable one */
static void case_write_then_read(struct vdev *d)
{
	valid_blk_chain(d);
	d->r->desc[2].flags = DESC_F_NEXT | DESC_F_WRITE;
	d->r->desc[2].next = 3;
	set_desc(d->r->desc, 3, io.out, SECTOR, 0, 0);
	kick(d, 0, 1);
}

/* A queue the device must refuse when the driver enables it */
static void bad_queue(struct vdev *d, uint32_t num, uint64_t desc)
{
	negotiate(d, (1UL << F_VERSION_1) | (1UL << F_INDIRECT_DESC));
	d->r = &ring_mem[d->slot];
	memset((void *)d->r, 0, sizeof(*d->r));
	d->avail_idx = d->used_idx = 0;
	setup_queue(d, num, desc, gpa(&d->r->avail), gpa(&d->r->used));
	CHECK_EQ(rd(d, REG_QUEUE_READY), 0);
}

/* (k) the descriptor table past RAM */
static void case_ring_past_ram(struct vdev *d)
{
	bad_queue(d, QSIZE, PAST_RAM);
}

/* (l) a descriptor table that is not 16-byte aligned */
static void case_ring_misaligned(struct vdev *d)
{
	bad_queue(d, QSIZE, gpa(d->r->desc) + 8);
}

/* (m) a queue size that is not a power of two */
static void case_qnum_odd(struct vdev *d)
{
	bad_queue(d, 12, gpa(d->r->desc));
}

/* (n) a queue size above QueueNumMax */
static void case_qnum_big(struct vdev *d)
{
	bad_queue(d, rd(d, REG_QUEUE_NUM_MAX) * 2, gpa(d->r->desc));
}

/*
 * (o) a valid 256 KiB write (still in the disk engine, most likely) and a looping
 * chain in one kick: the write may complete, the loop must not, and the reset that
 * follows waits for the write.
 */
static void case_bad_after_good(struct vdev *d)
{
	volatile struct rings *r = d->r;
	volatile struct desc *t = r->desc;

	io.hdr = (struct blk_hdr){ .type = BLK_T_OUT, .sector = BIG_SECTOR };
	io.status = 0xff;
	set_desc(t, 0, &io.hdr, sizeof(io.hdr), DESC_F_NEXT, 1);
	set_desc(t, 1, (void *)BIG_BUF, 256 * 1024, DESC_F_NEXT, 2);
	set_desc(t, 2, &io.status, 1, DESC_F_WRITE, 0);
	set_desc(t, 3, &io.hdr, sizeof(io.hdr), DESC_F_NEXT, 4);
	set_desc(t, 4, io.out, SECTOR, DESC_F_NEXT, 3);
	r->avail.ring[(d->avail_idx + 1) % QSIZE] = 3;
	good_head = 0;
	kick(d, 0, 2);
}

/* rng: a loop among writable descriptors */
static void case_rng_loop(struct vdev *d)
{
	volatile struct desc *t = d->r->desc;

	set_desc(t, 0, io.rnd[0], 32, DESC_F_NEXT | DESC_F_WRITE, 1);
	set_desc(t, 1, io.rnd[0] + 32, 32, DESC_F_NEXT | DESC_F_WRITE, 0);
	kick(d, 0, 1);
}

/* rng: a buffer past RAM */
static void case_rng_past_ram(struct vdev *d)
{
	set_desc(d->r->desc, 0, io.rnd[0], 64, DESC_F_WRITE, 0);
	d->r->desc[0].addr = PAST_RAM;
	kick(d, 0, 1);
}

struct hostile_case {
	const char *name;
	void (*fn)(struct vdev *d);
	bool rng;
};

static const struct hostile_case cases[] = {
	{ "loop", case_loop, false },
	{ "loop-tail", case_loop_tail, false },
	{ "next-oob", case_next_oob, false },
	{ "len-max", case_len_max, false },
	{ "past-ram", case_past_ram, false },
	{ "nested-indirect", case_nested_indirect, false },
	{ "avail-ahead", case_avail_ahead, false },
	{ "no-status", case_no_status, false },
	{ "head-oob", case_head_oob, false },
	{ "indirect-len", case_indirect_len, false },
	{ "write-then-read", case_write_then_read, false },
	{ "ring-past-ram", case_ring_past_ram, false },
	{ "ring-misaligned", case_ring_misaligned, false },
	{ "qnum-odd", case_qnum_odd, false },
	{ "qnum-big", case_qnum_big, false },
	{ "bad-after-good", case_bad_after_good, false },
	{ "rng-loop", case_rng_loop, true },
	{ "rng-past-ram", case_rng_past_ram, true },
};

static int mode_hostile(void)
{
	struct vdev disk, rng;
	const char *only = NULL;
	char buf[32];

	hostile_sector = (uint64_t)tiny_arg_num("sector", 7);
	if (tiny_arg("case", buf, sizeof(buf)))
		only = buf;
	need_device(&disk, 0, ID_BLOCK);
	need_device(&rng, 1, ID_RNG);
	SAY("disk: init, a valid round trip first");
	vdev_init(&disk);
	blk_round_trip(&disk, hostile_sector, recover_tag++);
	vdev_init(&rng);
	rng_read(&rng, io.rnd[0]);
	for (unsigned int i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct hostile_case *c = &cases[i];
		struct vdev *d = c->rng ? &rng : &disk;

		if (only && strncmp(only, c->name, sizeof(buf)))
			continue;
		SAY("case %s", c->name);
		c->fn(d);
		expect_needs_reset(d, c->name);
	}
	SAY("last tag 0x%x", recover_tag - 1);
	reset(&disk);
	reset(&rng);
	return 0;
}

/* --- mode=inflight --------------------------------------------------------------- */

#define NCHAINS 5 /* header + data + status each: 15 of the 16 descriptors */
#define BIG_LEN (256 * 1024)
#define B_BUF (BIG_BUF + NCHAINS * BIG_LEN)

/*
 * Requests still in the disk engine when the driver resets the device must not touch
 * the new queue: after a reset and re-initialization, NCHAINS fresh reads must each
 * complete exactly once, with their status written and their data in place, however
 * the stale writes finish.
 */
static struct blk_hdr chain_hdr[NCHAINS];
static uint8_t chain_status[NCHAINS];

/* NCHAINS chains at heads 0, 3, 6...: header, one data buffer, status; one kick. */
static void submit_chains(struct vdev *d, uint32_t type, const uint64_t *sector, uint8_t *buf,
			  uint32_t len)
{
	volatile struct rings *r = d->r;
	uint16_t wflag = type == BLK_T_IN ? DESC_F_WRITE : 0;

	for (unsigned int c = 0; c < NCHAINS; c++) {
		uint16_t h = (uint16_t)(3 * c);

		chain_hdr[c] = (struct blk_hdr){ .type = type, .sector = sector[c] };
		chain_status[c] = 0xff;
		set_desc(r->desc, h, &chain_hdr[c], sizeof(chain_hdr[c]), DESC_F_NEXT, h + 1);
		set_desc(r->desc, h + 1u, buf + (uint64_t)c * len, len, DESC_F_NEXT | wflag, h + 2);
		set_desc(r->desc, h + 2u, &chain_status[c], 1, DESC_F_WRITE, 0);
		r->avail.ring[(d->avail_idx + c) % QSIZE] = h;
	}
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	d->avail_idx = (uint16_t)(d->avail_idx + NCHAINS);
	r->avail.idx = d->avail_idx;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	wr(d, REG_QUEUE_NOTIFY, 0);
}

/* One round; returns the number of problems seen (each one printed). */
static unsigned int inflight_round(struct vdev *d, long round, uint64_t s)
{
	volatile struct rings *r;
	uint8_t *bbuf = (uint8_t *)B_BUF;
	unsigned int tag = 0x20 + (unsigned int)round, bad = 0, seen = 0;
	uint64_t big[NCHAINS], small[NCHAINS];
	uint64_t t0;

	vdev_init(d);
	blk_round_trip(d, s, tag); /* sector s now holds this round's pattern */
	for (unsigned int c = 0; c < NCHAINS; c++) {
		big[c] = BIG_SECTOR + (uint64_t)c * (BIG_LEN / SECTOR);
		small[c] = s; /* the big buffers are left as they are: filling them is slow here */
	}
	submit_chains(d, BLK_T_OUT, big, (uint8_t *)BIG_BUF, BIG_LEN);
	unsigned int done_before = (uint16_t)(d->r->used.idx - d->used_idx);

	/* Reset at once, re-initialize, and read sector s through NCHAINS chains. */
	vdev_init(d);
	r = d->r;
	memset(bbuf, 0, NCHAINS * SECTOR);
	submit_chains(d, BLK_T_IN, small, bbuf, SECTOR);
	t0 = rdtsc();
	while ((uint16_t)(r->used.idx - d->used_idx) < NCHAINS && rdtsc() - t0 < timeout_cycles)
		cpu_relax();
	/* Give every stale write time to finish too, then look at what came back. */
	tiny_delay_cycles(timeout_cycles / 8);
	uint16_t n = (uint16_t)(r->used.idx - d->used_idx);
	SAY("round %ld: %u of %u writes done before the reset; %u used entries for %u reads", round,
	    done_before, NCHAINS, n, NCHAINS);
	if (n != NCHAINS) {
		SAY("round %ld: BUG: %u used entries after the reset, expected %u", round, n,
		    NCHAINS);
		bad++;
	}
	for (unsigned int i = 0; i < n && i < QSIZE; i++) {
		uint32_t id = r->used.ring[(d->used_idx + i) % QSIZE].id;
		uint32_t len = r->used.ring[(d->used_idx + i) % QSIZE].len;
		if (id % 3 || id / 3 >= NCHAINS || (seen & (1u << (id / 3)))) {
			SAY("round %ld: BUG: used entry %u: head %u (not expected, or twice), len "
			    "%u",
			    round, i, id, len);
			bad++;
			continue;
		}
		seen |= 1u << (id / 3);
		if (len != SECTOR + 1) {
			SAY("round %ld: BUG: head %u: used len %u", round, id, len);
			bad++;
		}
	}
	for (unsigned int c = 0; c < NCHAINS; c++) {
		const uint8_t *p = bbuf + c * SECTOR;
		unsigned int wrong = 0;
		for (unsigned int i = 0; i < SECTOR; i++)
			wrong += p[i] != pattern(i, s, tag);
		if (chain_status[c] != BLK_S_OK || wrong) {
			SAY("round %ld: BUG: read %u: status 0x%x, %u wrong bytes", round, c,
			    chain_status[c], wrong);
			bad++;
		}
	}
	if (bad)
		return bad;
	d->used_idx = (uint16_t)(d->used_idx + n);
	/* The slot table must still be whole: more round trips, each completing once. */
	for (unsigned int k = 0; k < 4; k++)
		blk_round_trip(d, s, tag);
	tiny_delay_cycles(timeout_cycles / 40);
	CHECK_EQ(r->used.idx, d->used_idx);
	return 0;
}

static int mode_inflight(void)
{
	struct vdev disk;
	uint64_t s = (uint64_t)tiny_arg_num("sector", 9);
	long rounds = tiny_arg_num("rounds", 5);
	unsigned int bad = 0;

	need_device(&disk, 0, ID_BLOCK);
	for (long i = 0; i < rounds && !bad; i++)
		bad += inflight_round(&disk, i, s);
	CHECK_EQ(bad, 0);
	SAY("resets that waited for in-flight requests: %u", resets_waited);
	reset(&disk);
	return 0;
}

int main(void)
{
	init_timeout();
	if (tiny_arg_is("mode", "inflight"))
		return mode_inflight();
	if (tiny_arg_is("mode", "io"))
		return mode_io();
	if (tiny_arg_is("mode", "hostile"))
		return mode_hostile();
	SAY("FAIL virtio: mode=io, mode=hostile or mode=inflight");
	return TINY_EXIT_FAIL;
}
