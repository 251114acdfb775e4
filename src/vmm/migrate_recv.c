/*
 * The destination side of a live migration (migrate.h): accepts the stream, checks the
 * machine it describes against this host before saying READY (its disks open, RAM to
 * hold it, the CPU template it was given), receives RAM into fresh memory, then builds
 * the VM around that RAM, loads the device state, says PREPARED, starts the vCPUs and says
 * RESUMED. Any failure ends the migration here with nothing left behind (this process
 * exits; the source resumes its VM).
 */
#include "api/api.h"
#include "core/log.h"
#include "core/util.h"
#include "vmm/machine_state.h"
#include "vmm/migrate.h"
#include "vmm/migrate_disk.h"
#include "vmm/migrate_postcopy.h"
#include "vmm/vm.h"
#include "vmstate/migration.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RECV_TIMEOUT_MS 120000 /* the source sends something at least this often */
#define REPORT_TIMEOUT_MS 10000

struct incoming {
	int fd;
	pthread_mutex_t wlock;	 /* replies: post-copy's page requests go out beside them */
	struct postcopy_dst pc;	 /* post-copy */
	uint8_t *stale;		 /* post-copy: the pages to come later */
	struct guest_mem pc_mem; /* post-copy: RAM as its threads see it, for good */
	struct disk_copy_dst dc; /* copy_storage */
	bool copying;
	struct vmstate_writer w; /* replies */
	bool replied;		 /* our header went */
	uint8_t *buf;
	size_t cap;
	struct vmstate_section s;
};

/*
 * PUT /migrate/cancel here: the socket the stream phase blocks on (the listening one, then
 * the stream), shut for reading to wake it; -1 once it is too late to cancel.
 */
static pthread_mutex_t cancel_lock = PTHREAD_MUTEX_INITIALIZER;
static int cancel_fd = -1;
static bool cancelled;

/* From now on a cancel shuts fd (-1: cancelling is over). false if one came already. */
static bool cancel_point(int fd)
{
	pthread_mutex_lock(&cancel_lock);
	bool go = !cancelled;
	cancel_fd = go ? fd : -1;
	pthread_mutex_unlock(&cancel_lock);
	return go;
}

int migrate_incoming_cancel(char *err, size_t n)
{
	pthread_mutex_lock(&cancel_lock);
	int fd = cancel_fd;
	if (fd >= 0) {
		cancelled = true;
		shutdown(fd, SHUT_RD);
	}
	pthread_mutex_unlock(&cancel_lock);
	if (fd < 0)
		return fail_msg(err, n, -EBUSY,
				"the VM has arrived and is being started here; it can no longer "
				"be cancelled");
	return 0;
}

static int next(struct incoming *in, uint64_t max, char *err, size_t n)
{
	return vmstate_read_section(in->fd, &in->s, &in->buf, &in->cap, max, RECV_TIMEOUT_MS, err,
				    n);
}

static void reply(struct incoming *in, uint32_t tag)
{
	pthread_mutex_lock(&in->wlock);
	if (!in->replied) {
		vmstate_writer_init(&in->w, in->fd);
		in->replied = true;
	}
	mig_signal_put(&in->w, tag);
	pthread_mutex_unlock(&in->wlock);
}

/* What this host lacks for the machine, checked before any RAM is sent. */
static int check_host(const struct vmm_config *base, const struct vmm_config *c, char *err,
		      size_t n)
{
	uint64_t avail_kib;

	if (base->template_set && (base->cpu_template != c->cpu_template || !c->template_set))
		return fail_msg(err, n, -EINVAL,
				"the VM runs with CPU template %s; this destination was given %s",
				c->template_set ? cpuid_template_name(c->cpu_template) :
						  "(default)",
				cpuid_template_name(base->cpu_template));
	if (access(c->kvm_dev, R_OK | W_OK) < 0)
		return fail_msg(err, n, -errno, "cannot use %s here: %s", c->kvm_dev,
				strerror(errno));
	for (unsigned int i = 0; i < c->ndisks; i++) {
		const struct disk_config *d = &c->disks[i];
		int fd = open(d->path, (d->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NONBLOCK);
		if (fd < 0)
			return fail_msg(err, n, -errno, "disk '%s' cannot be opened here: %s",
					d->path, strerror(errno));
		close(fd);
	}
	/* 2 MiB pages come from the host's pool, which MemAvailable leaves out: RAM made checks it. */
	avail_kib = c->huge_pages == HUGE_PAGES_2M ? 0 : host_mem_available_kib();
	if (avail_kib && (c->mem_mib << 10) > avail_kib)
		return fail_msg(err, n, -ENOMEM,
				"the VM has %llu MiB of RAM; this host has %llu MiB available",
				(unsigned long long)c->mem_mib,
				(unsigned long long)(avail_kib >> 10));
	return 0;
}

/* Header, hello and machine; fills cfg. 0 or -errno + err. */
static int accept_machine(struct incoming *in, const struct vmm_config *base,
			  const struct restore_overrides *o, struct vmm_config *cfg, char *err,
			  size_t n)
{
	struct mig_hello h;
	struct vmstate_cursor c;
	int r;

	if ((r = vmstate_read_header(in->fd, RECV_TIMEOUT_MS, err, n)) ||
	    (r = next(in, 4096, err, n)) || (r = mig_hello_get(&in->s, &h, err, n)) ||
	    (r = next(in, VMSTATE_MAX_SECTION, err, n)))
		return r;
	if (in->s.tag != VMSTATE_TAG_MACHINE || in->s.version != MACHINE_STATE_VERSION)
		return fail_msg(err, n, -EINVAL, "no machine section this tern-vmm reads (%s %u)",
				vmstate_tag_name(in->s.tag), in->s.version);
	*cfg = *base;
	vmstate_cursor_init(&c, &in->s);
	if ((r = machine_state_restore(cfg, &c, err, n)))
		return r;
	if (cfg->mem_mib << 20 != h.ram_size)
		return fail_msg(err, n, -EINVAL, "the hello's RAM size does not match the machine");
	if ((r = snapshot_apply_overrides(cfg, o, err, n)))
		return r;
	cfg->track_dirty = base->track_dirty;
	cfg->clone = false;
	if (h.flags & MIG_HELLO_COPY_STORAGE) {
		/* The images are made here (new files only), before the host is checked. */
		if ((r = next(in, 4096, err, n)))
			return r;
		if (in->s.tag != VMSTATE_TAG_MIG_DISKS)
			return fail_msg(err, n, -EINVAL, "copy_storage without a disk list (%s)",
					vmstate_tag_name(in->s.tag));
		if ((r = disk_copy_dst_prepare(&in->dc, &in->s, cfg, err, n)))
			return r;
		in->copying = true;
	}
	return check_host(base, cfg, err, n);
}

/* RAM until the device state and COMPLETE; *running from COMPLETE. */
static int receive(struct incoming *in, struct guest_mem *mem, uint8_t **state, size_t *state_len,
		   bool *running, char *err, size_t n)
{
	uint64_t pages = mem->size / MIG_PAGE, done = 0;
	struct migrate_progress p = { .state = MIGRATE_INCOMING,
				      .incoming = true,
				      .ram_bytes = mem->size };
	uint64_t received = 0;
	int r;

	for (;;) {
		if ((r = next(in, VMSTATE_MAX_SECTION, err, n)))
			return r;
		received += in->s.len;
		switch (in->s.tag) {
		case VMSTATE_TAG_MIG_RAM:
			if (in->s.len > MIG_RAM_SECTION_MAX)
				return fail_msg(err, n, -EINVAL, "a RAM section of %llu bytes",
						(unsigned long long)in->s.len);
			/* Zero runs: anonymous pages given back; a 2 MiB page's part is zeroed. */
			if ((r = mig_ram_apply(&in->s, mem->host, mem->anon && !mem->hugetlb, pages,
					       &done, err, n)))
				return r;
			p.bytes_sent = received;
			p.data_pages = done;
			migrate_progress_set_incoming(&p);
			break;
		case VMSTATE_TAG_MIG_DISK:
			if (!in->copying || in->s.len > MIG_DISK_SECTION_MAX)
				return fail_msg(err, n, -EINVAL, "an unexpected disk section");
			if ((r = mig_disk_apply(&in->s, in->dc.t, in->dc.n, &in->dc.bytes, err, n)))
				return r;
			break;
		case VMSTATE_TAG_MIG_DEVICES:
			free(*state);
			*state = malloc(in->s.len ? in->s.len : 1);
			if (!*state)
				return fail_msg(err, n, -ENOMEM,
						"out of memory for the device state");
			memcpy(*state, in->s.payload, in->s.len);
			*state_len = in->s.len;
			break;
		case VMSTATE_TAG_MIG_POSTCOPY: {
			struct vmstate_cursor c;
			uint64_t bm = (pages + 7) / 8;
			vmstate_cursor_init(&c, &in->s);
			*running = vmstate_get_bool(&c);
			if (c.error || in->s.len != 1 + bm || !*state)
				return fail_msg(err, n, -EINVAL,
						"a post-copy section this destination cannot take");
			if (!(in->stale = malloc(bm)))
				return fail_msg(err, n, -ENOMEM, "out of memory");
			vmstate_get(&c, in->stale, bm);
			return 0;
		}
		case VMSTATE_TAG_MIG_COMPLETE: {
			struct vmstate_cursor c;
			vmstate_cursor_init(&c, &in->s);
			*running = vmstate_get_bool(&c);
			if (vmstate_cursor_done(&c))
				return fail_msg(err, n, -EINVAL, "a complete section of %llu bytes",
						(unsigned long long)in->s.len);
			if (!*state)
				return fail_msg(err, n, -EINVAL,
						"the stream completed without the device state");
			return 0;
		}
		case VMSTATE_TAG_MIG_ERROR: {
			char msg[MIG_MESSAGE_MAX + 1];
			mig_message_get(&in->s, msg, sizeof(msg));
			return fail_msg(err, n, -ECONNABORTED, "the source gave up: %s", msg);
		}
		default:
			return fail_msg(err, n, -EINVAL, "unexpected %s section in the RAM phase",
					vmstate_tag_name(in->s.tag));
		}
	}
}

/*
 * The stream's blocking parts run on a thread of their own while this one serves the API
 * on the paused loop (GET /migrate, PUT /migrate/cancel): a paused loop runs only service
 * fds, so devices built early see no event before their state is loaded.
 */
struct arrival {
	struct incoming *in;
	const struct mig_uri *u;
	int lfd;
	const struct vmm_config *base;
	const struct restore_overrides *o;
	struct vmm_config *cfg;
	struct guest_mem *mem;
	uint8_t **state;
	size_t *state_len;
	bool *running;
	char *err;
	size_t n;
};

/* The connection, then what the source's machine is and whether this host can run it. */
static int arrival_connect(struct arrival *ar)
{
	int fd = mig_uri_accept(ar->u, ar->lfd, ar->err, ar->n);

	/* Before lfd closes: a cancel must never shut a number reused meanwhile. */
	if (fd >= 0 && !cancel_point(fd)) {
		close(fd);
		fd = -ECANCELED;
	}
	mig_uri_unlisten(ar->u, ar->lfd);
	if (fd < 0)
		return fd;
	ar->in->fd = fd;
	return accept_machine(ar->in, ar->base, ar->o, ar->cfg, ar->err, ar->n);
}

static int arrival_receive(struct arrival *ar)
{
	return receive(ar->in, ar->mem, ar->state, ar->state_len, ar->running, ar->err, ar->n);
}

struct beside {
	int (*fn)(struct arrival *);
	struct arrival *ar;
	int r;
	int efd;
};

static void *beside_thread(void *opaque)
{
	struct beside *b = opaque;
	uint64_t one = 1;

	b->r = b->fn(b->ar);
	if (write(b->efd, &one, sizeof(one)) < 0)
		log_error("migration: cannot wake the API loop: %s", strerror(errno));
	return NULL;
}

static void on_beside_done(void *opaque, uint32_t events)
{
	(void)events;
	*(bool *)opaque = true;
}

/* fn(ar) on a thread while this one serves the API; what fn returned. */
static int beside_api(struct loop *l, int (*fn)(struct arrival *), struct arrival *ar)
{
	struct beside b = { fn, ar, 0, eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK) };
	bool done = false;
	pthread_t t;

	if (b.efd < 0 || loop_add_service(l, b.efd, EPOLLIN, on_beside_done, &done) < 0) {
		if (b.efd >= 0)
			close(b.efd);
		log_warn("migration: the API is not served while the VM arrives (no eventfd)");
		return fn(ar);
	}
	if (pthread_create(&t, NULL, beside_thread, &b)) {
		loop_del(l, b.efd);
		close(b.efd);
		log_warn("migration: the API is not served while the VM arrives (no thread)");
		return fn(ar);
	}
	while (!done) {
		int r = loop_run_once(l, -1);
		if (r < 0) {
			log_error("event loop: %s; the API waits for the arrival", strerror(-r));
			break;
		}
	}
	pthread_join(t, NULL);
	loop_del(l, b.efd);
	close(b.efd);
	return b.r;
}

static void read_report(struct incoming *in)
{
	struct migrate_progress p;
	struct mig_report rep;
	char err[256] = "";
	int r = next(in, 4096, err, sizeof(err));

	migrate_get_progress(&p);
	p.state = MIGRATE_COMPLETED;
	if (r == 0 && in->s.tag != VMSTATE_TAG_MIG_REPORT)
		snprintf(err, sizeof(err), "a %s section instead", vmstate_tag_name(in->s.tag));
	if (r == 0 && in->s.tag == VMSTATE_TAG_MIG_REPORT && mig_report_get(&in->s, &rep) == 0) {
		p.downtime_us = rep.downtime_us;
		p.total_ms = rep.total_ms;
		p.bytes_sent = rep.bytes_sent;
		p.round = rep.rounds;
		log_info("migration arrived: downtime %.1f ms, %llu ms in all, %u rounds",
			 rep.downtime_us / 1000.0, (unsigned long long)rep.total_ms, rep.rounds);
	} else {
		log_info("migration arrived (the source sent no report: %s)", err);
	}
	migrate_progress_set_incoming(&p);
}

int migrate_incoming(struct api *a, struct vm *vm, const char *uri,
		     const struct restore_overrides *o, char *err, size_t n)
{
	/* Static: in post-copy, its threads go on using the stream after this returns. */
	static struct incoming in = { .fd = -1, .wlock = PTHREAD_MUTEX_INITIALIZER };
	struct vmm_config cfg;
	struct guest_mem mem = { 0 };
	struct vmstate_file file = { 0 };
	uint8_t *state = NULL;
	size_t state_len = 0;
	bool running = true, prepared = false;
	struct mig_uri u;
	struct migrate_progress p = { .state = MIGRATE_INCOMING, .incoming = true };
	int r;

	struct arrival ar = { .in = &in,
			      .u = &u,
			      .base = &a->cfg,
			      .o = o,
			      .cfg = &cfg,
			      .mem = &mem,
			      .state = &state,
			      .state_len = &state_len,
			      .running = &running,
			      .err = err,
			      .n = n };

	migrate_progress_set_incoming(&p);
	if ((r = mig_uri_parse(uri, &u, err, n)))
		return r;
	if ((ar.lfd = mig_uri_listen(&u, err, n)) < 0)
		return ar.lfd;
	cancel_point(ar.lfd);
	log_info("waiting for the migration stream on %s", uri);
	/* Until the VM runs here: the API serves, and nothing else of the loop's. */
	a->arriving = true;
	loop_set_paused(a->loop, true);
	if ((r = beside_api(a->loop, arrival_connect, &ar)))
		goto fail;
	if ((r = vm_ram_create(&mem, &cfg, err, n)))
		goto fail;
	/*
	 * The VM is built now, while the source still runs it, so that building is not part of
	 * the downtime; its raw disks open unlocked and are opened again, locked, once the
	 * source has flushed and unlocked them. An overlay's or a qcow2 image's metadata is
	 * read as it opens, so a VM with one is built at the switchover instead. (A raw image
	 * taken as raw by format=auto stays raw: its guest cannot write a header into it.)
	 */
	struct vm_restore_mem rm = { .mem = &mem };
	bool early = true;
	for (unsigned int i = 0; i < cfg.ndisks; i++) {
		enum disk_format f; /* stays AUTO if unreadable: then not early */
		(void)disk_format_resolve(cfg.disks[i].path, cfg.disks[i].format, &f);
		early &= f == DISK_FORMAT_RAW;
	}
	if (early) {
		cfg.disks_unlocked = true;
		vm_create(vm, &cfg, a->loop, NULL, &rm);
	}
	reply(&in, VMSTATE_TAG_MIG_READY);
	if ((r = beside_api(a->loop, arrival_receive, &ar)))
		goto fail;
	if (!cancel_point(-1)) {
		r = -ECANCELED;
		goto fail;
	}
	uint64_t t0 = monotonic_ns();
	if (in.stale) {
		/* From here every page placed goes through the userfaultfd (post-copy). */
		in.pc_mem = mem;
		if ((r = postcopy_dst_begin(&in.pc, &in.pc_mem, in.stale, in.fd, &in.w, &in.wlock,
					    err, n)))
			goto fail;
		migrate_get_progress(&p);
		p.state = MIGRATE_POSTCOPY;
		migrate_progress_set_incoming(&p);
	}
	char why[256];
	if ((r = vmstate_file_parse(&file, state, state_len, why, sizeof(why)))) {
		fail_msg(err, n, r, "the device state: %s", why);
		goto fail;
	}
	if (in.copying && (r = disk_copy_dst_finish(&in.dc, err, n)))
		goto fail;
	/* The disks are ours only now: the source gave them up just before COMPLETE. */
	if (!early) {
		vm_create(vm, &cfg, a->loop, NULL, &rm);
	} else {
		for (unsigned int i = 0; i < cfg.ndisks; i++) {
			const char *dwhy = "";
			if ((r = disk_reopen_locked(&vm->blk[i]->disk, &dwhy))) {
				fail_msg(err, n, r, "disk '%s' %s: %s", cfg.disks[i].path, dwhy,
					 strerror(-r));
				goto fail;
			}
		}
		vm->cfg.disks_unlocked = cfg.disks_unlocked = false;
	}
	uint64_t t1 = monotonic_ns();
	if ((r = snapshot_restore_state(&file, vm, true, err, n)))
		goto fail;
	uint64_t t2 = monotonic_ns();
	reply(&in, VMSTATE_TAG_MIG_PREPARED);
	prepared = true;
	if ((r = in.w.err)) {
		fail_msg(err, n, r, "the source is gone: %s", strerror(-r));
		goto fail;
	}
	a->arriving = false;
	if (running) {
		loop_set_paused(a->loop, false);
		vm_start(vm);
		snapshot_resume_devices(vm);
	} else {
		vm_start_paused(vm);
	}
	reply(&in, VMSTATE_TAG_MIG_RESUMED);
	log_info("switchover here: %s %.1f ms, state loaded %.1f ms, vCPUs started %.1f ms",
		 early ? "disks reopened" : "VM built", (t1 - t0) / 1e6, (t2 - t1) / 1e6,
		 (monotonic_ns() - t2) / 1e6);
	a->cfg = cfg;
	vmstate_file_free(&file);
	free(state);
	if (in.stale) {
		log_info("post-copy: the VM runs here; the rest of its memory follows");
		return 0; /* the stream is the post-copy threads' now */
	}
	if (in.w.err)
		log_warn("migration: the source did not hear that the VM runs here: %s",
			 strerror(-in.w.err));
	else
		read_report(&in);
	free(in.buf);
	free(in.w.buf);
	close(in.fd);
	return 0;
fail:
	cancel_point(-1);
	if (cancelled)
		fail_msg(err, n, -ECANCELED, "cancelled at the destination (PUT /migrate/cancel)");
	if (!prepared && in.fd >= 0) { /* no stream: no source to tell */
		pthread_mutex_lock(&in.wlock);
		if (!in.replied) {
			vmstate_writer_init(&in.w, in.fd);
			in.replied = true;
		}
		mig_message_put(&in.w, err);
		pthread_mutex_unlock(&in.wlock);
	}
	if (in.copying)
		disk_copy_dst_abort(&in.dc, &cfg);
	migrate_get_progress(&p);
	p.state = MIGRATE_FAILED;
	snprintf(p.error, sizeof(p.error), "%s", err);
	migrate_progress_set_incoming(&p);
	vmstate_file_free(&file);
	free(state);
	free(in.buf);
	free(in.w.buf);
	if (in.fd >= 0) {
		shutdown(in.fd, SHUT_RDWR);
		close(in.fd);
	}
	return r ? r : -EIO;
}
