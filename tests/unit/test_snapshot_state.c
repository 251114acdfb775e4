/*
 * The snapshot sections tern-vmm writes itself: the MACHINE payload round-trips field by
 * field and refuses what the command line would refuse; memory files round-trip (full,
 * sparse, diff over a base) and refuse another snapshot's file.
 */
#include "unit.h"
#include "vmm/machine_state.h"
#include "vmstate/mem_file.h"
#include "vmstate/vmstate.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Writes one MACHINE section for c and parses the file back; the buffer is returned. */
static uint8_t *machine_file(const struct vmm_config *c, struct vmstate_file *f, size_t *len)
{
	struct vmstate_writer w;
	int fd = memfd_create("machine", MFD_CLOEXEC);
	char err[200];

	if (fd < 0 || vmstate_writer_init(&w, fd))
		return NULL;
	vmstate_begin(&w, VMSTATE_TAG_MACHINE, 0, MACHINE_STATE_VERSION);
	machine_state_save(c, &w);
	vmstate_end(&w);
	if (vmstate_writer_finish(&w))
		return NULL;
	*len = (size_t)lseek(fd, 0, SEEK_END);
	uint8_t *buf = malloc(*len);
	if (!buf || pread(fd, buf, *len, 0) != (ssize_t)*len ||
	    vmstate_file_parse(f, buf, *len, err, sizeof(err))) {
		free(buf);
		buf = NULL;
	}
	close(fd);
	return buf;
}

static void sample_config(struct vmm_config *c)
{
	memset(c, 0, sizeof(*c));
	c->cpus = 4;
	c->mem_mib = 512;
	c->template_set = true;
	c->cpu_template = CPU_TEMPLATE_COMPAT;
	c->transport = TRANSPORT_MMIO;
	c->rng = true;
	c->ndisks = 2;
	c->disks[0] = (struct disk_config){ .path = "/img/root.ext4",
					    .cache = DISK_CACHE_NONE,
					    .engine = DISK_ENGINE_THREADS,
					    .id = "rootfs" };
	c->disks[1] = (struct disk_config){ .path = "/img/data", .readonly = true };
	c->nnets = 2;
	c->nets[0] = (struct net_config){ .id = "eth0",
					  .kind = NET_TAP,
					  .tap_name = "tap7",
					  .mac = { 6, 0, 1, 2, 3, 4 },
					  .mtu = 9000 };
	c->nets[1] = (struct net_config){ .id = "eth1", .kind = NET_USER, .nhostfwd = 1 };
	c->nets[1].hostfwd[0].host_port = 2222;
	c->nets[1].hostfwd[0].guest_port = 22;
	c->vsock.enabled = true;
	c->vsock.cid = 42;
	strcpy(c->vsock.path, "/run/v.sock");
}

TEST(machine_state_round_trip)
{
	struct vmm_config c, out;
	struct vmstate_file f;
	struct vmstate_cursor cur;
	char err[200];
	size_t len;

	sample_config(&c);
	uint8_t *buf = machine_file(&c, &f, &len);
	REQUIRE(buf);
	memset(&out, 0, sizeof(out));
	vmstate_cursor_init(&cur, vmstate_find(&f, VMSTATE_TAG_MACHINE, 0));
	REQUIRE(machine_state_restore(&out, &cur, err, sizeof(err)) == 0);
	CHECK(out.cpus == 4 && out.mem_mib == 512 && out.template_set &&
	      out.cpu_template == CPU_TEMPLATE_COMPAT && out.transport == TRANSPORT_MMIO &&
	      out.rng);
	CHECK(out.ndisks == 2 && !strcmp(out.disks[0].path, "/img/root.ext4") &&
	      out.disks[0].cache == DISK_CACHE_NONE && out.disks[0].engine == DISK_ENGINE_THREADS &&
	      !strcmp(out.disks[0].id, "rootfs") && out.disks[1].readonly);
	CHECK(out.nnets == 2 && !strcmp(out.nets[0].tap_name, "tap7") && out.nets[0].mtu == 9000 &&
	      !memcmp(out.nets[0].mac, c.nets[0].mac, 6) && out.nets[1].kind == NET_USER &&
	      out.nets[1].nhostfwd == 1 && out.nets[1].hostfwd[0].host_port == 2222);
	CHECK(out.vsock.enabled && out.vsock.cid == 42 && !strcmp(out.vsock.path, "/run/v.sock"));
	for (unsigned int i = 0; i < out.ndisks; i++)
		free(out.disks[i].path);
	vmstate_file_free(&f);
	free(buf);
}

TEST(machine_state_refuses_out_of_range)
{
	struct vmm_config c, out;
	struct vmstate_file f;
	struct vmstate_cursor cur;
	char err[200];
	size_t len;

	sample_config(&c);
	c.cpus = VMM_MAX_CPUS + 1;
	uint8_t *buf = machine_file(&c, &f, &len);
	REQUIRE(buf);
	vmstate_cursor_init(&cur, vmstate_find(&f, VMSTATE_TAG_MACHINE, 0));
	CHECK(machine_state_restore(&out, &cur, err, sizeof(err)) != 0);
	CHECK(strstr(err, "vCPUs") != NULL);
	vmstate_file_free(&f);
	free(buf);

	sample_config(&c);
	c.vsock.cid = 2;
	buf = machine_file(&c, &f, &len);
	REQUIRE(buf);
	vmstate_cursor_init(&cur, vmstate_find(&f, VMSTATE_TAG_MACHINE, 0));
	CHECK(machine_state_restore(&out, &cur, err, sizeof(err)) != 0);
	CHECK(strstr(err, "CID") != NULL);
	for (unsigned int i = 0; i < out.ndisks; i++)
		free(out.disks[i].path);
	vmstate_file_free(&f);
	free(buf);
}

/* A guest RAM of pages pages in an anonymous mapping (no KVM needed). */
static int fake_ram(struct guest_mem *m, uint64_t pages)
{
	guest_mem_layout(m, pages * MEM_FILE_PAGE);
	m->host = mmap(NULL, m->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return m->host == MAP_FAILED ? -1 : 0;
}

TEST(mem_file_full_and_diff_round_trip)
{
	char dir[] = "/tmp/tern-memfile-XXXXXX", full[80], diff[80];
	struct guest_mem m, back, back2;
	struct mem_file_info fi, di, base;
	uint8_t dirty[4] = { 0 };
	char err[300];
	struct stat st;

	REQUIRE(mkdtemp(dir));
	snprintf(full, sizeof(full), "%s/full.mem", dir);
	snprintf(diff, sizeof(diff), "%s/diff.mem", dir);
	REQUIRE(fake_ram(&m, 32) == 0);
	memset(m.host + 3 * MEM_FILE_PAGE, 0xab, MEM_FILE_PAGE); /* page 3; the rest is zero */
	int fd = open(full, O_RDWR | O_CREAT | O_TRUNC, 0600);
	REQUIRE(fd >= 0);
	REQUIRE(mem_file_write(&m, fd, NULL, NULL, &fi) == 0);
	close(fd);
	/* Sparse: far fewer blocks than the 128 KiB of RAM. */
	REQUIRE(stat(full, &st) == 0);
	CHECK((uint64_t)st.st_size == m.size + MEM_FILE_TRAILER);
	REQUIRE(mem_file_map(&back, full, m.size, fi.id, err, sizeof(err)) == 0);
	CHECK(!memcmp(back.host, m.host, m.size));
	/* Copy-on-write: writing the mapping does not change the file. */
	back.host[0] = 1;

	/* A diff with pages 3 and 17 changed. */
	memset(m.host + 3 * MEM_FILE_PAGE, 0xcd, 100);
	memset(m.host + 17 * MEM_FILE_PAGE, 0xef, MEM_FILE_PAGE);
	dirty[0] = 1u << 3;
	dirty[2] = 1u << 1;
	memcpy(base.id, fi.id, 16);
	snprintf(base.base_path, sizeof(base.base_path), "%s", full);
	fd = open(diff, O_RDWR | O_CREAT | O_TRUNC, 0600);
	REQUIRE(fd >= 0);
	REQUIRE(mem_file_write(&m, fd, dirty, &base, &di) == 0);
	close(fd);
	REQUIRE(mem_file_map(&back2, diff, m.size, di.id, err, sizeof(err)) == 0);
	CHECK(!memcmp(back2.host, m.host, m.size));
	CHECK(back2.host[0] == 0); /* the base file, not the first mapping's private copy */

	/* Another snapshot's id, or the wrong RAM size, is refused. */
	CHECK(mem_file_map(&back2, diff, m.size, fi.id, err, sizeof(err)) != 0);
	CHECK(strstr(err, "another snapshot") != NULL);
	CHECK(mem_file_map(&back2, full, m.size * 2, fi.id, err, sizeof(err)) != 0);
	munmap(m.host, m.size);
	unlink(full);
	unlink(diff);
	rmdir(dir);
}
