/* The MACHINE section: a VM's configuration, written and read field by field. */
#include "vmm/machine_state.h"
#include "core/util.h"
#include "virtio/vsock.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static void put_str(struct vmstate_writer *w, const char *s)
{
	size_t len = s ? strlen(s) : 0;

	vmstate_put_u32(w, (uint32_t)len);
	vmstate_put(w, s, len);
}

/* A string of at most max bytes into buf (max + 1 bytes), no NULs inside. */
static int get_str(struct vmstate_cursor *c, char *buf, size_t max)
{
	uint32_t len = vmstate_get_u32(c);

	if (c->error || len > max)
		return -EINVAL;
	vmstate_get(c, buf, len);
	buf[len] = 0;
	return c->error || strlen(buf) != len ? -EINVAL : 0;
}

void machine_state_save(const struct vmm_config *c, struct vmstate_writer *w)
{
	vmstate_put_u32(w, c->cpus);
	vmstate_put_u64(w, c->mem_mib);
	vmstate_put_bool(w, c->template_set);
	vmstate_put_u8(w, (uint8_t)c->cpu_template);
	vmstate_put_u8(w, (uint8_t)c->transport);
	vmstate_put_u8(w, (uint8_t)c->on_reboot);
	vmstate_put_bool(w, c->debug_exit);
	vmstate_put_bool(w, c->rng);
	vmstate_put_u32(w, c->ndisks);
	for (unsigned int i = 0; i < c->ndisks; i++) {
		const struct disk_config *d = &c->disks[i];
		put_str(w, d->path);
		vmstate_put_bool(w, d->readonly);
		vmstate_put_u8(w, (uint8_t)d->cache);
		vmstate_put_u8(w, (uint8_t)d->engine);
		vmstate_put_u8(w, (uint8_t)d->format);
		put_str(w, d->id);
	}
	vmstate_put_u32(w, c->nnets);
	for (unsigned int i = 0; i < c->nnets; i++) {
		const struct net_config *nc = &c->nets[i];
		put_str(w, nc->id);
		vmstate_put_u8(w, (uint8_t)nc->kind);
		put_str(w, nc->tap_name);
		vmstate_put(w, nc->mac, 6);
		vmstate_put_u16(w, nc->mtu);
		vmstate_put_u32(w, nc->nhostfwd);
		for (unsigned int f = 0; f < nc->nhostfwd; f++) {
			const struct slirp_hostfwd *h = &nc->hostfwd[f];
			vmstate_put_bool(w, h->udp);
			vmstate_put(w, &h->host_addr, 4);
			vmstate_put_u16(w, h->host_port);
			vmstate_put(w, &h->guest_addr, 4);
			vmstate_put_u16(w, h->guest_port);
		}
	}
	vmstate_put_bool(w, c->vsock.enabled);
	vmstate_put_u64(w, c->vsock.cid);
	put_str(w, c->vsock.path);
}

int machine_state_restore(struct vmm_config *o, struct vmstate_cursor *cur, char *err, size_t n)
{
	char path[4096];

	o->cpus = vmstate_get_u32(cur);
	o->mem_mib = vmstate_get_u64(cur);
	if (o->cpus < 1 || o->cpus > VMM_MAX_CPUS)
		return fail_msg(err, n, -EINVAL, "machine: %u vCPUs (1 to %d)", o->cpus,
				VMM_MAX_CPUS);
	if (o->mem_mib < VMM_MIN_MEM_MIB || o->mem_mib > VMM_MAX_MEM_MIB)
		return fail_msg(err, n, -EINVAL, "machine: %llu MiB of RAM (%d to %llu)",
				(unsigned long long)o->mem_mib, VMM_MIN_MEM_MIB, VMM_MAX_MEM_MIB);
	o->template_set = vmstate_get_bool(cur);
	uint8_t t = vmstate_get_u8(cur), tr = vmstate_get_u8(cur), rb = vmstate_get_u8(cur);
	if (t > CPU_TEMPLATE_COMPAT || tr > TRANSPORT_MMIO || rb > ON_REBOOT_RESTART)
		return fail_msg(err, n, -EINVAL,
				"machine: CPU template %u, transport %u or reboot action %u "
				"out of range",
				t, tr, rb);
	o->cpu_template = t;
	o->transport = tr;
	o->on_reboot = rb;
	o->debug_exit = vmstate_get_bool(cur);
	o->rng = vmstate_get_bool(cur);
	o->ndisks = vmstate_get_u32(cur);
	if (o->ndisks > VMM_MAX_DISKS)
		return fail_msg(err, n, -EINVAL, "machine: %u disks (at most %d)", o->ndisks,
				VMM_MAX_DISKS);
	for (unsigned int i = 0; i < o->ndisks; i++) {
		struct disk_config *d = &o->disks[i];
		memset(d, 0, sizeof(*d));
		if (get_str(cur, path, sizeof(path) - 1) || !path[0])
			return fail_msg(err, n, -EINVAL, "machine: disk %u: bad path", i);
		d->readonly = vmstate_get_bool(cur);
		uint8_t cache = vmstate_get_u8(cur), eng = vmstate_get_u8(cur);
		uint8_t fmt = vmstate_get_u8(cur);
		if (cache > DISK_CACHE_NONE || eng > DISK_ENGINE_THREADS ||
		    fmt > DISK_FORMAT_LAST ||
		    ((fmt == DISK_FORMAT_OVERLAY || fmt == DISK_FORMAT_QCOW2) &&
		     eng == DISK_ENGINE_IO_URING))
			return fail_msg(err, n, -EINVAL,
					"machine: disk %u: cache %u, engine %u or format %u out of "
					"range",
					i, cache, eng, fmt);
		d->cache = cache;
		d->engine = eng;
		d->format = fmt;
		if (get_str(cur, d->id, DISK_ID_MAX))
			return fail_msg(err, n, -EINVAL, "machine: disk %u: bad id", i);
		d->path = strdup(path);
		if (!d->path)
			return fail_msg(err, n, -EINVAL, "out of memory");
	}
	o->nnets = vmstate_get_u32(cur);
	if (o->nnets > VMM_MAX_NETS)
		return fail_msg(err, n, -EINVAL, "machine: %u NICs (at most %d)", o->nnets,
				VMM_MAX_NETS);
	for (unsigned int i = 0; i < o->nnets; i++) {
		struct net_config *nc = &o->nets[i];
		memset(nc, 0, sizeof(*nc));
		if (get_str(cur, nc->id, NET_ID_MAX))
			return fail_msg(err, n, -EINVAL, "machine: NIC %u: bad id", i);
		uint8_t kind = vmstate_get_u8(cur);
		if (kind > NET_USER)
			return fail_msg(err, n, -EINVAL,
					"machine: NIC %u: backend kind %u out of range", i, kind);
		nc->kind = kind;
		if (get_str(cur, nc->tap_name, IFNAMSIZ - 1))
			return fail_msg(err, n, -EINVAL, "machine: NIC %u: bad TAP name", i);
		vmstate_get(cur, nc->mac, 6);
		nc->mac_given = true;
		nc->mtu = vmstate_get_u16(cur);
		if (nc->mtu && nc->mtu < NET_MTU_MIN)
			return fail_msg(err, n, -EINVAL, "machine: NIC %u: MTU %u (%d to %d)", i,
					nc->mtu, NET_MTU_MIN, NET_MTU_MAX);
		/* A tap fd belonged to the old process; a restore names a TAP instead. */
		nc->tap_fd = -1;
		nc->nhostfwd = vmstate_get_u32(cur);
		if (nc->nhostfwd > NET_MAX_HOSTFWD)
			return fail_msg(err, n, -EINVAL,
					"machine: NIC %u: %u port forwards (at most %d)", i,
					nc->nhostfwd, NET_MAX_HOSTFWD);
		for (unsigned int f = 0; f < nc->nhostfwd; f++) {
			struct slirp_hostfwd *h = &nc->hostfwd[f];
			h->udp = vmstate_get_bool(cur);
			vmstate_get(cur, &h->host_addr, 4);
			h->host_port = vmstate_get_u16(cur);
			vmstate_get(cur, &h->guest_addr, 4);
			h->guest_port = vmstate_get_u16(cur);
		}
	}
	o->vsock.enabled = vmstate_get_bool(cur);
	o->vsock.cid = vmstate_get_u64(cur);
	if (get_str(cur, o->vsock.path, VSOCK_UDS_PATH_MAX))
		return fail_msg(err, n, -EINVAL, "machine: bad vsock socket path");
	if (o->vsock.enabled && (o->vsock.cid < VSOCK_CID_MIN || o->vsock.cid > VSOCK_CID_MAX))
		return fail_msg(err, n, -EINVAL, "machine: vsock CID %llu (%llu to %llu)",
				(unsigned long long)o->vsock.cid, VSOCK_CID_MIN, VSOCK_CID_MAX);
	if (vmstate_cursor_done(cur))
		return fail_msg(err, n, -EINVAL,
				"machine: the section's size does not match its content");
	return 0;
}

void machine_state_describe(const struct vmm_config *c, FILE *out)
{
	fprintf(out, "  machine: %u vCPUs, %llu MiB RAM, virtio over %s%s\n", c->cpus,
		(unsigned long long)c->mem_mib, c->transport == TRANSPORT_MMIO ? "mmio" : "pci",
		c->rng ? ", virtio-rng" : "");
	for (unsigned int i = 0; i < c->ndisks; i++)
		fprintf(out, "  disk %u: %s (%s)%s%s%s\n", i, c->disks[i].path,
			disk_format_name(c->disks[i].format),
			c->disks[i].readonly ? " (read-only)" : "",
			c->disks[i].id[0] ? ", id " : "", c->disks[i].id);
	for (unsigned int i = 0; i < c->nnets; i++) {
		const uint8_t *m = c->nets[i].mac;
		fprintf(out, "  nic %u (%s): %s%s, MAC %02x:%02x:%02x:%02x:%02x:%02x\n", i,
			c->nets[i].id,
			c->nets[i].kind == NET_USER ? "user-mode networking" : "tap ",
			c->nets[i].kind == NET_USER ? "" : c->nets[i].tap_name, m[0], m[1], m[2],
			m[3], m[4], m[5]);
	}
	if (c->vsock.enabled)
		fprintf(out, "  vsock: CID %llu, %s\n", (unsigned long long)c->vsock.cid,
			c->vsock.path);
}
