/*
 * The source side of a live migration (migrate.h). A thread of its own connects, sends
 * the machine and then RAM in rounds: every page once, then the pages written meanwhile
 * (KVM's dirty log OR'd with the pages tern's devices were handed), until what is left
 * fits the downtime limit at the bandwidth measured. The switchover runs on the event
 * loop, where the devices live: pause, drain and flush the disks and give up their locks,
 * send the last pages and the device state (a whole state file, as a snapshot writes it),
 * and wait for the destination to say the VM runs there. Until the destination says it is
 * built (PREPARED), every failure resumes the VM here as it was.
 */
#include "core/log.h"
#include "core/util.h"
#include "vmm/machine_state.h"
#include "vmm/migrate.h"
#include "vmm/migrate_disk.h"
#include "vmm/vm.h"
#include "vmstate/migration.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SECTION_TARGET (MIG_RUN_MAX_PAGES * MIG_PAGE) /* a RAM section's data, about */
#define ZERO_RUN_MAX (1u << 20)			      /* pages in one zero run */
#define REPLY_TIMEOUT_MS 60000 /* the destination checking the machine, building the VM */
#define STALL_TIMEOUT_MS 30000 /* a destination that takes nothing this long has failed */
#define THROTTLE_PERIOD_NS 10000000L
#define POSTCOPY_AFTER_ROUNDS 3 /* pre-copy rounds before post-copy takes over */
/* What is left below this long at the measured bandwidth is not worth another round. */
#define POLISH_MIN_US 2000
#define THROTTLE_FIRST 20 /* QEMU's cpu-throttle-initial and -increment */
#define THROTTLE_STEP 10
#define THROTTLE_MAX 99

struct migration {
	struct vm *vm;
	struct migrate_params p;
	int fd;
	struct vmstate_writer w;
	uint8_t *dirty; /* pages to send next */
	uint64_t pages;
	uint8_t *rbuf; /* replies */
	size_t rcap;
	uint64_t t0_ns, pause_ns;
	uint64_t round_bytes; /* sent in the round that ended last */
	int switch_fd;	      /* eventfd: the thread asks the loop for the switchover */
	bool log_was_on;      /* KVM logging was on before (track_dirty): leave it on */
	bool was_paused;      /* the user had paused the VM: it stays paused there */
	pthread_t throttler;
	atomic_bool throttling;
	unsigned int above_half; /* rounds in a row where the guest dirtied >= half of what went */
	struct disk_copy_src dc; /* copy_storage */
	bool postcopy;		 /* the switchover leaves the dirty pages for later */
	bool committed;		 /* post-copy: the destination runs the VM */
	/* Set by the thread when it gives up; the loop then finishes (it owns switch_fd). */
	enum migrate_state thread_end;
	char thread_err[512];
};

static pthread_mutex_t prog_lock = PTHREAD_MUTEX_INITIALIZER;
static struct migrate_progress prog;
static struct migration *active; /* the source migration under way, or NULL */
static atomic_bool cancel_req;

static const char *const state_names[] = {
	[MIGRATE_NONE] = "none",	   [MIGRATE_SETUP] = "setup",
	[MIGRATE_ACTIVE] = "active",	   [MIGRATE_SWITCHOVER] = "switchover",
	[MIGRATE_COMPLETED] = "completed", [MIGRATE_FAILED] = "failed",
	[MIGRATE_CANCELLED] = "cancelled", [MIGRATE_INCOMING] = "incoming",
	[MIGRATE_POSTCOPY] = "postcopy",
};
_Static_assert(sizeof(state_names) / sizeof(state_names[0]) == MIGRATE_POSTCOPY + 1,
	       "a name for every state");

const char *migrate_state_name(enum migrate_state s)
{
	return state_names[s];
}

void migrate_get_progress(struct migrate_progress *out)
{
	pthread_mutex_lock(&prog_lock);
	*out = prog;
	pthread_mutex_unlock(&prog_lock);
}

void migrate_progress_set_incoming(const struct migrate_progress *p)
{
	pthread_mutex_lock(&prog_lock);
	prog = *p;
	prog.incoming = true;
	pthread_mutex_unlock(&prog_lock);
}

static void set_state(enum migrate_state s)
{
	pthread_mutex_lock(&prog_lock);
	prog.state = s;
	pthread_mutex_unlock(&prog_lock);
}

/* ---- RAM ---- */

static bool page_zero(const uint8_t *p)
{
	return mem_is_zero(p, MIG_PAGE);
}

static bool bit(const uint8_t *bm, uint64_t p)
{
	return bm[p / 8] & (1u << (p % 8));
}

/* How long the stream is ahead of the bandwidth cap: ms to wait before sending more. */
static int ahead_of_cap_ms(const struct migration *m)
{
	if (!m->p.bandwidth_mib_s)
		return 0;
	uint64_t due_ns = m->w.written * 1000000000ULL / (m->p.bandwidth_mib_s << 20);
	uint64_t el = monotonic_ns() - m->t0_ns;
	return el >= due_ns ? 0 : (int)((due_ns - el) / 1000000 + 1);
}

/* Holds the stream to the bandwidth cap: sleeps while we are ahead of it. */
static void keep_to_cap(struct migration *m)
{
	for (int ms; (ms = ahead_of_cap_ms(m)) > 0 && !atomic_load(&cancel_req);) {
		struct timespec ts = { 0, (long)(ms > 100 ? 100 : ms) * 1000000 };
		nanosleep(&ts, NULL);
	}
}

/*
 * Sends the pages set in dirty (every page when dirty is NULL), clearing the bits it sent.
 * 0 or the stream's -errno.
 */
static int send_pages(struct migration *m, uint8_t *dirty)
{
	const uint8_t *ram = m->vm->mem.host;
	uint64_t p = 0, zero = 0, data = 0;
	bool open = false;

	while (p < m->pages && !m->w.err) {
		if (atomic_load(&cancel_req))
			return -ECANCELED;
		if (dirty && !bit(dirty, p)) {
			/* whole clean bytes at a time */
			p = (p % 8 || dirty[p / 8]) ? p + 1 : p + 8;
			continue;
		}
		bool z = page_zero(ram + p * MIG_PAGE);
		uint64_t q = p + 1, max = z ? ZERO_RUN_MAX : MIG_RUN_MAX_PAGES;
		while (q < m->pages && q - p < max && (!dirty || bit(dirty, q)) &&
		       page_zero(ram + q * MIG_PAGE) == z)
			q++;
		/* A section stays within what the destination takes (MIG_RAM_SECTION_MAX). */
		if (open && m->w.len + 16 + (z ? 0 : (q - p) * MIG_PAGE) > SECTION_TARGET) {
			vmstate_end(&m->w);
			open = false;
			keep_to_cap(m);
			pthread_mutex_lock(&prog_lock);
			prog.bytes_sent = m->w.written;
			pthread_mutex_unlock(&prog_lock);
		}
		if (!open) {
			vmstate_begin(&m->w, VMSTATE_TAG_MIG_RAM, 0, MIG_SECTION_VERSION);
			open = true;
		}
		mig_run_put(&m->w, p, (uint32_t)(q - p), z ? MIG_RUN_ZERO : MIG_RUN_DATA,
			    ram + p * MIG_PAGE);
		if (dirty)
			for (uint64_t i = p; i < q; i++)
				dirty[i / 8] &= (uint8_t) ~(1u << (i % 8));
		*(z ? &zero : &data) += q - p;
		p = q;
	}
	if (open)
		vmstate_end(&m->w);
	pthread_mutex_lock(&prog_lock);
	prog.bytes_sent = m->w.written;
	prog.zero_pages += zero;
	prog.data_pages += data;
	pthread_mutex_unlock(&prog_lock);
	return m->w.err;
}

static uint64_t count_bits(const uint8_t *bm, uint64_t pages)
{
	uint64_t n = 0;

	for (uint64_t i = 0; i < (pages + 7) / 8; i++)
		n += (uint64_t)__builtin_popcount(bm[i]);
	return n;
}

/* Moves the pages written since the last call into m->dirty (and a diff snapshot's set). */
static int collect(struct migration *m)
{
	int r = snapshot_collect_dirty(m->vm, m->dirty);

	if (!r && m->vm->dirty_pending)
		for (uint64_t i = 0; i < (m->pages + 7) / 8; i++)
			m->vm->dirty_pending[i] |= m->dirty[i];
	return r;
}

/* ---- auto-converge ---- */

static void *throttle_thread(void *arg)
{
	struct migration *m = arg;
	struct vm *vm = m->vm;
	int sig = vm_kick_signal();

	pthread_setname_np(pthread_self(), "mig-throttle");
	while (atomic_load(&m->throttling)) {
		struct timespec ts = { 0, THROTTLE_PERIOD_NS };
		nanosleep(&ts, NULL);
		for (unsigned int i = 0; i < vm->ncpus; i++)
			pthread_kill(vm->vcpus[i].thread, sig);
	}
	return NULL;
}

static void throttle_set(struct migration *m, unsigned int pct)
{
	atomic_store(&m->vm->throttle_pct, pct);
	if (pct && !atomic_load(&m->throttling)) {
		atomic_store(&m->throttling, true);
		if (pthread_create(&m->throttler, NULL, throttle_thread, m)) {
			atomic_store(&m->throttling, false);
			atomic_store(&m->vm->throttle_pct, 0);
			log_warn("migration: cannot start the vCPU throttle");
			return;
		}
	}
	pthread_mutex_lock(&prog_lock);
	prog.throttle_pct = atomic_load(&m->vm->throttle_pct);
	pthread_mutex_unlock(&prog_lock);
	if (pct)
		log_info("migration: vCPUs throttled to %u%% of their time", 100 - pct);
}

static void throttle_stop(struct migration *m)
{
	atomic_store(&m->vm->throttle_pct, 0);
	if (atomic_exchange(&m->throttling, false))
		pthread_join(m->throttler, NULL);
}

/* ---- ending ---- */

/* Reads the next section from the destination (an ERROR's message goes into err). */
static int read_reply(struct migration *m, struct vmstate_section *s, int timeout_ms, char *err,
		      size_t n)
{
	int r = vmstate_read_section(m->fd, s, &m->rbuf, &m->rcap, MIG_MESSAGE_MAX + 64, timeout_ms,
				     err, n);
	if (r)
		return r;
	if (s->tag == VMSTATE_TAG_MIG_ERROR) {
		char msg[MIG_MESSAGE_MAX + 1];
		mig_message_get(s, msg, sizeof(msg));
		return fail_msg(err, n, -ECONNREFUSED, "the destination refused: %s", msg);
	}
	return 0;
}

/* After a failed write: the destination may have said why before it closed. */
static void stream_failed(struct migration *m, int r, char *err, size_t n)
{
	struct vmstate_section s;
	char why[MIG_MESSAGE_MAX + 64];

	if (r == -ECANCELED || atomic_load(&cancel_req)) {
		snprintf(err, n, "cancelled");
		return;
	}
	if (read_reply(m, &s, 1000, why, sizeof(why)) == -ECONNREFUSED)
		snprintf(err, n, "%.500s", why);
	else
		snprintf(err, n, "the stream to the destination failed: %s",
			 r == -ETIMEDOUT ? "it took nothing for 30 s" : strerror(-r));
}

/*
 * Sends ERROR with msg so that the destination leaves nothing behind, without ever waiting
 * on a destination that stopped reading (this runs on the event loop): one non-blocking
 * send; a destination that gets part of it sees a broken stream, which it refuses too.
 */
static void tell_destination(struct migration *m, const char *msg)
{
	struct vmstate_writer w;
	int fd = memfd_create("tern-migration-error", MFD_CLOEXEC);
	uint8_t buf[MIG_MESSAGE_MAX + 128];

	if (fd < 0)
		return;
	/* The header went long ago; only the section goes. */
	vmstate_writer_init(&w, fd);
	mig_message_put(&w, msg);
	off_t len = lseek(fd, 0, SEEK_END) - VMSTATE_HEADER_SIZE;
	if (!w.err && len > 0 && (size_t)len <= sizeof(buf) &&
	    pread(fd, buf, (size_t)len, VMSTATE_HEADER_SIZE) == len &&
	    send(m->fd, buf, (size_t)len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		log_debug("migration: the destination was not told: %s", strerror(errno));
	free(w.buf);
	close(fd);
}

/* Leaves the VM as it was before the migration; the state says how it ended. */
static void finish(struct migration *m, enum migrate_state state, const char *err)
{
	throttle_stop(m);
	disk_copy_src_stop(&m->dc, m->vm);
	if (!m->log_was_on && m->vm->dirty_log_on && state != MIGRATE_COMPLETED)
		vm_set_dirty_log(m->vm, false);
	if (m->fd >= 0 && state != MIGRATE_COMPLETED) {
		tell_destination(m, err && *err ? err : "the source gave up");
		shutdown(m->fd, SHUT_RDWR);
	}
	pthread_mutex_lock(&prog_lock);
	prog.state = state;
	if (err)
		snprintf(prog.error, sizeof(prog.error), "%s", err);
	prog.total_ms = (monotonic_ns() - m->t0_ns) / 1000000;
	active = NULL;
	pthread_mutex_unlock(&prog_lock);
	if (state == MIGRATE_COMPLETED)
		log_info("migration completed: downtime %.1f ms, %llu ms in all, %u rounds, %llu "
			 "MiB sent",
			 prog.downtime_us / 1000.0, (unsigned long long)prog.total_ms, prog.round,
			 (unsigned long long)(prog.bytes_sent >> 20));
	else
		log_error("migration %s: %s", state_names[state], err ? err : "");
	if (m->fd >= 0)
		close(m->fd);
	free(m->w.buf);
	free(m->dirty);
	free(m->rbuf);
	if (m->switch_fd >= 0) {
		loop_del(m->vm->loop, m->switch_fd);
		close(m->switch_fd);
	}
	free(m);
}

/* ---- the switchover, on the event-loop thread ---- */

static void disks_lock(struct vm *vm, bool lock)
{
	for (unsigned int i = 0; i < vm->cfg.ndisks; i++) {
		struct disk *d = &vm->blk[i]->disk;
		struct flock fl = { .l_type = lock ? (d->readonly ? F_RDLCK : F_WRLCK) : F_UNLCK,
				    .l_whence = SEEK_SET };
		/* A destination that gave up may hold the lock until its process is gone. */
		int r, tries = 0;
		while ((r = fcntl(d->fd, F_OFD_SETLK, &fl)) < 0 && lock &&
		       (errno == EAGAIN || errno == EACCES) && tries++ < 50) {
			struct timespec ts = { 0, 100000000 };
			nanosleep(&ts, NULL);
		}
		if (r < 0)
			log_warn("migration: cannot %s disk %s: %s", lock ? "lock" : "unlock",
				 d->path, strerror(errno));
	}
}

static int send_devices(struct migration *m, char *err, size_t n)
{
	struct mem_file_info mem = { .kind = MEM_FILE_FULL, .size = m->vm->mem.size };
	int fd = memfd_create("tern-migration-state", MFD_CLOEXEC), r;
	uint8_t *buf = NULL;
	size_t len = 0;

	if (fd < 0)
		return fail_msg(err, n, -errno, "memfd_create: %s", strerror(errno));
	if ((r = snapshot_write_state(m->vm, fd, &mem, err, n)))
		goto out;
	off_t end = lseek(fd, 0, SEEK_END);
	len = end > 0 ? (size_t)end : 0;
	buf = malloc(len ? len : 1);
	if (!buf || pread(fd, buf, len, 0) != (ssize_t)len) {
		r = fail_msg(err, n, -EIO, "cannot read back the device state");
		goto out;
	}
	vmstate_begin(&m->w, VMSTATE_TAG_MIG_DEVICES, 0, MIG_SECTION_VERSION);
	vmstate_put(&m->w, buf, len);
	vmstate_end(&m->w);
	/*
	 * COMPLETE (or POSTCOPY, with the pages still to come) says whether the VM runs on at
	 * the destination or stays paused.
	 */
	vmstate_begin(&m->w, m->postcopy ? VMSTATE_TAG_MIG_POSTCOPY : VMSTATE_TAG_MIG_COMPLETE, 0,
		      MIG_SECTION_VERSION);
	vmstate_put_bool(&m->w, !m->was_paused);
	if (m->postcopy)
		vmstate_put(&m->w, m->dirty, (m->pages + 7) / 8);
	vmstate_end(&m->w);
	if ((r = m->w.err))
		stream_failed(m, r, err, n);
out:
	free(buf);
	close(fd);
	return r;
}

/* ---- post-copy, on a thread of its own once the device state went ---- */

/* One page (a request), as a RAM section of its own. */
static void send_one_page(struct migration *m, uint64_t p)
{
	const uint8_t *page = m->vm->mem.host + p * MIG_PAGE;
	bool z = page_zero(page);

	vmstate_begin(&m->w, VMSTATE_TAG_MIG_RAM, 0, MIG_SECTION_VERSION);
	mig_run_put(&m->w, p, 1, z ? MIG_RUN_ZERO : MIG_RUN_DATA, page);
	vmstate_end(&m->w);
	m->dirty[p / 8] &= (uint8_t) ~(1u << (p % 8));
}

/* The next up to MIG_RUN_MAX_PAGES pending pages from *cursor, as one RAM section. */
static bool send_batch(struct migration *m, uint64_t *cursor)
{
	const uint8_t *ram = m->vm->mem.host;
	uint64_t p = *cursor, sent = 0;
	bool open = false;

	while (p < m->pages && sent < MIG_RUN_MAX_PAGES) {
		if (!bit(m->dirty, p)) {
			p = (p % 8 || m->dirty[p / 8]) ? p + 1 : p + 8;
			continue;
		}
		bool z = page_zero(ram + p * MIG_PAGE);
		uint64_t q = p + 1;
		while (q < m->pages && sent + (q - p) < MIG_RUN_MAX_PAGES && bit(m->dirty, q) &&
		       page_zero(ram + q * MIG_PAGE) == z)
			q++;
		if (!open) {
			vmstate_begin(&m->w, VMSTATE_TAG_MIG_RAM, 0, MIG_SECTION_VERSION);
			open = true;
		}
		mig_run_put(&m->w, p, (uint32_t)(q - p), z ? MIG_RUN_ZERO : MIG_RUN_DATA,
			    ram + p * MIG_PAGE);
		for (uint64_t i = p; i < q; i++)
			m->dirty[i / 8] &= (uint8_t) ~(1u << (i % 8));
		sent += q - p;
		p = q;
	}
	if (open)
		vmstate_end(&m->w);
	*cursor = p;
	return sent > 0;
}

/*
 * Answers what the destination sends: page requests (answered at once, whatever was sent
 * before: it may be on its way still), PREPARED and RESUMED. 0, or -errno + err.
 */
static int postcopy_serve(struct migration *m, int timeout_ms, char *err, size_t n)
{
	struct vmstate_section s;
	struct pollfd pfd = { .fd = m->fd, .events = POLLIN };
	int r;

	while (poll(&pfd, 1, timeout_ms) > 0) {
		if ((r = read_reply(m, &s, 10000, err, n)))
			return r;
		if (s.tag == VMSTATE_TAG_MIG_PAGE_REQ) {
			struct vmstate_cursor c;
			vmstate_cursor_init(&c, &s);
			uint64_t p = vmstate_get_u64(&c);
			if (vmstate_cursor_done(&c) || p >= m->pages)
				return fail_msg(err, n, -EINVAL, "a page request outside RAM");
			send_one_page(m, p);
		} else if (s.tag == VMSTATE_TAG_MIG_PREPARED) {
			m->committed = true; /* from here the destination may run the guest */
		} else if (s.tag == VMSTATE_TAG_MIG_RESUMED) {
			pthread_mutex_lock(&prog_lock);
			prog.downtime_us = (monotonic_ns() - m->pause_ns) / 1000;
			pthread_mutex_unlock(&prog_lock);
			log_info("post-copy: the VM runs at the destination after %.1f ms",
				 prog.downtime_us / 1000.0);
		} else {
			return fail_msg(err, n, -EPROTO, "the destination sent %s in post-copy",
					vmstate_tag_name(s.tag));
		}
		if (m->w.err)
			return m->w.err;
		timeout_ms = 0;
	}
	return 0;
}

static void *postcopy_thread(void *arg)
{
	struct migration *m = arg;
	char err[512] = "";
	uint64_t cursor = 0, one = 1;
	int r = 0;

	pthread_setname_np(pthread_self(), "mig-postcopy");
	/* Requests first; the rest of the pending pages in order between them. */
	while (!r) {
		if ((r = postcopy_serve(m, 0, err, sizeof(err))))
			break;
		if (!send_batch(m, &cursor)) {
			if (cursor < m->pages) {
				cursor = m->pages;
				continue;
			}
			/* Everything went once; the destination may still ask for what it has. */
			if (!m->committed || !prog.downtime_us) {
				r = postcopy_serve(m, 1000, err, sizeof(err));
				continue;
			}
			break;
		}
		if ((r = m->w.err)) {
			stream_failed(m, r, err, sizeof(err));
			break;
		}
		/* The cap holds back the background pages only: requests are served meanwhile. */
		for (int ms; !r && (ms = ahead_of_cap_ms(m)) > 0;)
			r = postcopy_serve(m, ms > 100 ? 100 : ms, err, sizeof(err));
	}
	if (!r) {
		struct mig_report rep = { .total_ms = (monotonic_ns() - m->t0_ns) / 1000000,
					  .bytes_sent = m->w.written };
		pthread_mutex_lock(&prog_lock);
		rep.downtime_us = prog.downtime_us;
		rep.rounds = prog.round;
		prog.bytes_left = 0;
		pthread_mutex_unlock(&prog_lock);
		mig_signal_put(&m->w, VMSTATE_TAG_MIG_COMPLETE);
		mig_report_put(&m->w, &rep);
		r = vmstate_writer_finish(&m->w);
		if (r)
			stream_failed(m, r, err, sizeof(err));
	}
	if (r && m->committed)
		snprintf(m->thread_err, sizeof(m->thread_err),
			 "post-copy failed after the destination started the VM (%.300s): its "
			 "memory is split between the hosts; this VM stays paused here",
			 err);
	else
		snprintf(m->thread_err, sizeof(m->thread_err), "%.500s", err);
	m->thread_end = r ? MIGRATE_FAILED : MIGRATE_COMPLETED;
	if (write(m->switch_fd, &one, sizeof(one)) != sizeof(one))
		log_error("migration: cannot reach the event loop: %s", strerror(errno));
	return NULL;
}

static int postcopy_start(struct migration *m)
{
	pthread_t t;
	int r = pthread_create(&t, NULL, postcopy_thread, m);

	if (r)
		return -r;
	pthread_detach(t);
	return 0;
}

static void on_switch(void *opaque, uint32_t events)
{
	struct migration *m = opaque;
	struct vm *vm = m->vm;
	struct vmstate_section s;
	char err[512] = "";
	uint64_t v, t[6], left;
	int r;

	if (read(m->switch_fd, &v, sizeof(v)) < 0)
		return;
	if (m->thread_end) {
		enum migrate_state end = m->thread_end;
		if (end == MIGRATE_FAILED && m->postcopy && !m->committed) {
			/* The destination never ran it: the VM goes on here. */
			disks_lock(vm, true);
			if (!m->was_paused)
				vm_resume(vm);
		}
		finish(m, end, m->thread_err);
		if (end == MIGRATE_COMPLETED)
			machine_stop(&vm->machine, MACHINE_MIGRATED, 0);
		return;
	}
	set_state(MIGRATE_SWITCHOVER);
	m->was_paused = vm_is_paused(vm);
	m->pause_ns = monotonic_ns();
	if (!m->was_paused && vm_pause(vm)) {
		finish(m, MIGRATE_FAILED, "the vCPUs did not stop for the switchover");
		return;
	}
	t[0] = monotonic_ns();
	throttle_stop(m);
	if ((r = snapshot_quiesce_disks(vm, err, sizeof(err))))
		goto resume;
	if ((r = collect(m))) {
		snprintf(err, sizeof(err), "cannot read the dirty page log: %s", strerror(-r));
		goto resume;
	}
	t[1] = monotonic_ns();
	left = count_bits(m->dirty, m->pages);
	if (m->p.copy_storage)
		disk_copy_src_collect(&m->dc, vm);
	/* Post-copy leaves the dirty pages for after the switchover: that is its point. */
	if ((!m->postcopy && (r = send_pages(m, m->dirty))) ||
	    (m->p.copy_storage && (r = disk_copy_src_send(&m->dc, &m->w, &cancel_req)))) {
		stream_failed(m, r, err, sizeof(err));
		goto resume;
	}
	t[2] = monotonic_ns();
	/* The destination opens the disks once it has everything: they are its from here. */
	disks_lock(vm, false);
	if ((r = send_devices(m, err, sizeof(err))))
		goto relock;
	if (m->postcopy) {
		/* The post-copy thread answers the destination from here on (migrate_postcopy.c). */
		set_state(MIGRATE_POSTCOPY);
		if ((r = postcopy_start(m))) {
			snprintf(err, sizeof(err), "cannot start the post-copy thread: %s",
				 strerror(-r));
			goto relock;
		}
		return;
	}
	t[3] = monotonic_ns();
	if ((r = read_reply(m, &s, REPLY_TIMEOUT_MS, err, sizeof(err))))
		goto relock;
	t[4] = monotonic_ns();
	if (s.tag != VMSTATE_TAG_MIG_PREPARED) {
		snprintf(err, sizeof(err), "the destination answered %s, not prepared",
			 vmstate_tag_name(s.tag));
		goto relock;
	}
	/*
	 * Past this point the destination may be running the guest: whatever happens, this
	 * side must not run it too. Without its word, the VM stays paused here.
	 */
	if ((r = read_reply(m, &s, REPLY_TIMEOUT_MS, err, sizeof(err))) ||
	    s.tag != VMSTATE_TAG_MIG_RESUMED) {
		char why[700];
		snprintf(why, sizeof(why),
			 "the destination built the VM but did not confirm it runs (%s); this "
			 "VM stays paused: resume it only if the destination is not running it",
			 r ? err : vmstate_tag_name(s.tag));
		finish(m, MIGRATE_FAILED, why);
		return;
	}
	uint64_t end = monotonic_ns();
	t[5] = end;
	/* Where the downtime went, for whoever has to make it shorter. */
	log_info("switchover: pause %.1f ms, disks and dirty log %.1f ms, last %llu pages %.1f ms, "
		 "device state %.1f ms, destination built the VM %.1f ms, started it %.1f ms",
		 (t[0] - m->pause_ns) / 1e6, (t[1] - t[0]) / 1e6, (unsigned long long)left,
		 (t[2] - t[1]) / 1e6, (t[3] - t[2]) / 1e6, (t[4] - t[3]) / 1e6,
		 (t[5] - t[4]) / 1e6);
	struct mig_report rep = { .downtime_us = (end - m->pause_ns) / 1000,
				  .total_ms = (end - m->t0_ns) / 1000000,
				  .bytes_sent = m->w.written };
	pthread_mutex_lock(&prog_lock);
	prog.downtime_us = rep.downtime_us;
	rep.rounds = prog.round;
	prog.bytes_left = 0;
	pthread_mutex_unlock(&prog_lock);
	mig_report_put(&m->w, &rep);
	vmstate_writer_finish(&m->w);
	finish(m, MIGRATE_COMPLETED, NULL);
	machine_stop(&vm->machine, MACHINE_MIGRATED, 0);
	return;
relock:
	disks_lock(vm, true);
resume:
	if (!m->was_paused)
		vm_resume(vm);
	finish(m, atomic_load(&cancel_req) ? MIGRATE_CANCELLED : MIGRATE_FAILED, err);
}

/* ---- pre-copy, on the migration thread ---- */

static int handshake(struct migration *m, char *err, size_t n)
{
	struct mig_hello h = { MIG_PROTOCOL_VERSION, MIG_PAGE, m->vm->mem.size,
			       m->p.copy_storage ? MIG_HELLO_COPY_STORAGE : 0 };
	struct vmstate_section s;
	int r;

	/* Non-blocking, so that a destination that stops reading is noticed (and cancel works). */
	fcntl(m->fd, F_SETFL, fcntl(m->fd, F_GETFL) | O_NONBLOCK);
	vmstate_writer_init(&m->w, m->fd);
	m->w.timeout_ms = STALL_TIMEOUT_MS;
	mig_hello_put(&m->w, &h);
	vmstate_begin(&m->w, VMSTATE_TAG_MACHINE, 0, MACHINE_STATE_VERSION);
	machine_state_save(&m->vm->cfg, &m->w);
	vmstate_end(&m->w);
	if (m->p.copy_storage && (r = disk_copy_src_start(&m->dc, m->vm, &m->w, err, n)))
		return r;
	if ((r = m->w.err)) {
		stream_failed(m, r, err, n);
		return r;
	}
	if ((r = vmstate_read_header(m->fd, REPLY_TIMEOUT_MS, err, n)) ||
	    (r = read_reply(m, &s, REPLY_TIMEOUT_MS, err, n)))
		return r;
	if (s.tag != VMSTATE_TAG_MIG_READY)
		return fail_msg(err, n, -EPROTO, "the destination answered %s, not ready",
				vmstate_tag_name(s.tag));
	return 0;
}

/*
 * Decides after each round: 1 switch over now, 0 another round, 2 another round although
 * the rest fits (it makes the rest smaller), -1 give up (err).
 */
static int decide(struct migration *m, uint64_t round_ns, uint64_t left_bytes, char *err, size_t n)
{
	uint64_t bw = round_ns ? m->round_bytes * 1000000000ULL / round_ns : 0;
	uint64_t dirty_bps = round_ns ? left_bytes * 1000000000ULL / round_ns : 0;
	uint64_t expect_us = bw ? left_bytes * 1000000 / bw : (left_bytes ? UINT64_MAX : 0);
	uint64_t expect_ms = expect_us == UINT64_MAX ? UINT64_MAX : expect_us / 1000;
	unsigned int round;

	pthread_mutex_lock(&prog_lock);
	prog.bytes_left = left_bytes;
	if (bw)
		prog.bandwidth_bps = bw;
	prog.dirty_rate_bps = dirty_bps;
	prog.expected_downtime_ms = expect_ms;
	round = prog.round;
	pthread_mutex_unlock(&prog_lock);
	log_debug("migration round %u: %llu KiB left, %llu KiB/s sent, %llu KiB/s dirtied", round,
		  (unsigned long long)(left_bytes >> 10), (unsigned long long)(bw >> 10),
		  (unsigned long long)(dirty_bps >> 10));
	if (expect_ms <= m->p.downtime_limit_ms) {
		/*
		 * It fits, but another round may leave less for the pause: the pages left are
		 * what the guest wrote while the last round went, and if that is at most half
		 * of what the round sent, the next round (sent while the guest runs) takes at
		 * most half as long and leaves at most about half as much. A long round that
		 * ends with a rest which fits (the first pass over all of RAM, typically) would
		 * otherwise hand the whole rest to the downtime. Stop once the rest stops
		 * halving, is worth under POLISH_MIN_US, or the rounds run out.
		 */
		if (left_bytes * 2 > m->round_bytes || expect_us < POLISH_MIN_US ||
		    round >= m->p.max_rounds)
			return 1;
		log_info("migration round %u: what is left (%llu KiB, %.1f ms) fits the limit; "
			 "one more round to shrink it",
			 round, (unsigned long long)(left_bytes >> 10), expect_us / 1000.0);
		return 2;
	}
	if (round >= m->p.max_rounds) {
		fail_msg(err, n, -ETIMEDOUT,
			 "did not converge in %u rounds: the guest dirtied %llu KiB/s, %llu KiB/s "
			 "went; %llu ms of downtime expected, the limit is %llu ms (raise "
			 "downtime_limit_ms or bandwidth, or turn on auto_converge)",
			 round, (unsigned long long)(dirty_bps >> 10),
			 (unsigned long long)(bw >> 10), (unsigned long long)expect_ms,
			 (unsigned long long)m->p.downtime_limit_ms);
		return -1;
	}
	/* QEMU's rule: the guest dirtied at least half of what went, two rounds running. */
	m->above_half = left_bytes * 2 >= m->round_bytes ? m->above_half + 1 : 0;
	if (m->p.auto_converge && m->above_half >= 2) {
		unsigned int pct = atomic_load(&m->vm->throttle_pct);
		pct = pct ? pct + THROTTLE_STEP : THROTTLE_FIRST;
		throttle_set(m, pct > THROTTLE_MAX ? THROTTLE_MAX : pct);
		m->above_half = 0;
	}
	return 0;
}

static void *migration_thread(void *arg)
{
	struct migration *m = arg;
	char err[512] = "";
	uint64_t one = 1;
	int r;

	pthread_setname_np(pthread_self(), "migration");
	m->fd = -1;
	struct mig_uri u;
	if (mig_uri_parse(m->p.uri, &u, err, sizeof(err)) ||
	    (m->fd = mig_uri_connect(&u, err, sizeof(err))) < 0) {
		m->fd = -1;
		goto fail;
	}
	if ((r = handshake(m, err, sizeof(err))))
		goto fail;
	/* Logging on, and the log read once, before the first page goes: nothing is missed. */
	if (!m->vm->dirty_log_on && (r = vm_set_dirty_log(m->vm, true))) {
		snprintf(err, sizeof(err), "cannot turn on dirty page logging: %s", strerror(-r));
		goto fail;
	}
	if (!m->vm->mem.dirty && guest_mem_track_dirty(&m->vm->mem)) {
		snprintf(err, sizeof(err), "out of memory for the dirty page bitmap");
		goto fail;
	}
	if ((r = collect(m))) {
		snprintf(err, sizeof(err), "cannot read the dirty page log: %s", strerror(-r));
		goto fail;
	}
	memset(m->dirty, 0, (m->pages + 7) / 8);
	set_state(MIGRATE_ACTIVE);
	for (;;) {
		uint64_t t = monotonic_ns(), before = m->w.written;
		if ((r = send_pages(m, prog.round ? m->dirty : NULL)) ||
		    (m->p.copy_storage && (r = disk_copy_src_send(&m->dc, &m->w, &cancel_req)))) {
			stream_failed(m, r, err, sizeof(err));
			goto fail;
		}
		m->round_bytes = m->w.written - before;
		if ((r = collect(m))) {
			snprintf(err, sizeof(err), "cannot read the dirty page log: %s",
				 strerror(-r));
			goto fail;
		}
		pthread_mutex_lock(&prog_lock);
		prog.round++;
		pthread_mutex_unlock(&prog_lock);
		if (m->p.copy_storage)
			disk_copy_src_collect(&m->dc, m->vm);
		uint64_t left = count_bits(m->dirty, m->pages) * MIG_PAGE +
				(m->p.copy_storage ? disk_copy_src_pending(&m->dc) : 0);
		int d = decide(m, monotonic_ns() - t, left, err, sizeof(err));
		/* Not converging (0; a rest that fits, 2, needs no post-copy). */
		if (d == 0 && m->p.post_copy && prog.round >= POSTCOPY_AFTER_ROUNDS) {
			log_info("migration: switching to post-copy after %u rounds", prog.round);
			m->postcopy = true;
			d = 1;
		}
		if (d < 0)
			goto fail;
		if (atomic_load(&cancel_req)) {
			snprintf(err, sizeof(err), "cancelled");
			goto fail;
		}
		if (d == 1)
			break;
	}
	/* The rest happens on the event loop, which owns the devices. */
	if (write(m->switch_fd, &one, sizeof(one)) == sizeof(one))
		return NULL;
	snprintf(err, sizeof(err), "cannot reach the event loop: %s", strerror(errno));
fail:
	snprintf(m->thread_err, sizeof(m->thread_err), "%s", err);
	m->thread_end = atomic_load(&cancel_req) ? MIGRATE_CANCELLED : MIGRATE_FAILED;
	if (write(m->switch_fd, &one, sizeof(one)) != sizeof(one))
		log_error("migration: cannot reach the event loop: %s", strerror(errno));
	return NULL;
}

/* ---- the API's side ---- */

int migrate_start(struct vm *vm, const struct migrate_params *p, char *err, size_t n)
{
	struct mig_uri u;
	struct migration *m;
	pthread_t t;
	int r;

	if ((r = mig_uri_parse(p->uri, &u, err, n)))
		return r;
	if (migrate_under_way())
		return fail_msg(err, n, -EBUSY,
				"a migration is already under way (GET /migrate; PUT "
				"/migrate/cancel)");
	if (vm->software_kvm)
		return fail_msg(err, n, -EINVAL,
				"live migration needs KVM's dirty page log, which the software KVM "
				"backend does not keep");
	m = calloc(1, sizeof(*m));
	if (!m)
		return fail_msg(err, n, -ENOMEM, "out of memory");
	m->vm = vm;
	m->p = *p;
	m->fd = -1;
	m->pages = vm->mem.size / MIG_PAGE;
	m->dirty = calloc((m->pages + 7) / 8, 1);
	m->log_was_on = vm->dirty_log_on;
	m->t0_ns = monotonic_ns();
	m->switch_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (!m->dirty || m->switch_fd < 0 ||
	    loop_add_service(vm->loop, m->switch_fd, EPOLLIN, on_switch, m) < 0) {
		if (m->switch_fd >= 0)
			close(m->switch_fd);
		free(m->dirty);
		free(m);
		return fail_msg(err, n, -ENOMEM, "cannot set up the migration");
	}
	atomic_store(&cancel_req, false);
	pthread_mutex_lock(&prog_lock);
	memset(&prog, 0, sizeof(prog));
	prog.state = MIGRATE_SETUP;
	prog.ram_bytes = vm->mem.size;
	active = m;
	pthread_mutex_unlock(&prog_lock);
	if ((r = pthread_create(&t, NULL, migration_thread, m))) {
		finish(m, MIGRATE_FAILED, "cannot start the migration thread");
		return fail_msg(err, n, -r, "cannot start the migration thread: %s", strerror(r));
	}
	pthread_detach(t);
	log_info("migrating to %s (downtime limit %llu ms%s%s)", p->uri,
		 (unsigned long long)p->downtime_limit_ms,
		 p->auto_converge ? ", auto-converge" : "",
		 p->bandwidth_mib_s ? ", bandwidth capped" : "");
	return 0;
}

bool migrate_under_way(void)
{
	pthread_mutex_lock(&prog_lock);
	bool busy = active != NULL;
	pthread_mutex_unlock(&prog_lock);
	return busy;
}

int migrate_cancel(char *err, size_t n)
{
	pthread_mutex_lock(&prog_lock);
	struct migration *m = active;
	enum migrate_state st = prog.state;
	/*
	 * The thread sees the flag between two sections (writes to a destination that stopped
	 * reading give up after STALL_TIMEOUT_MS), and then tells the destination why.
	 */
	bool late = st == MIGRATE_SWITCHOVER || st == MIGRATE_POSTCOPY;
	if (m && !late)
		atomic_store(&cancel_req, true);
	pthread_mutex_unlock(&prog_lock);
	if (!m)
		return fail_msg(err, n, -EINVAL, "no migration is under way");
	if (late)
		return fail_msg(
			err, n, -EBUSY, "the migration is %s; it can no longer be cancelled",
			st == MIGRATE_POSTCOPY ? "in post-copy (the destination runs the VM)" :
						 "switching over");
	return 0;
}
