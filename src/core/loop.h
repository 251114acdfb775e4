/*
 * The VMM's event loop (epoll): console input, ioeventfd kicks, backend completions,
 * timers. Handlers run on the loop thread; a handler may add or remove fds.
 */
#ifndef TERN_CORE_LOOP_H
#define TERN_CORE_LOOP_H

#include <stdbool.h>
#include <stdint.h>

typedef void (*loop_fn)(void *opaque, uint32_t events);

struct loop;

struct loop *loop_create(void);
/* Watches fd for events (EPOLLIN...); fn(opaque, revents) runs on the loop thread. */
int loop_add(struct loop *l, int fd, uint32_t events, loop_fn fn, void *opaque);
/* The same, for fds that keep being served while the loop is paused (API, stop signal). */
int loop_add_service(struct loop *l, int fd, uint32_t events, loop_fn fn, void *opaque);
/* Changes the events watched on fd. */
int loop_mod(struct loop *l, int fd, uint32_t events);
int loop_del(struct loop *l, int fd);
/*
 * Pause (a paused VM): fds added with loop_add (device kicks, backends, device timers) are
 * not watched until resume; service fds are. 0 or the first -errno.
 */
int loop_set_paused(struct loop *l, bool paused);
bool loop_paused(const struct loop *l);
/* Waits up to timeout_ms (-1: forever) and runs the handlers of what is ready. */
int loop_run_once(struct loop *l, int timeout_ms);
/*
 * Adds a timerfd-based periodic or one-shot timer; returns its fd (for loop_del/close).
 * service: it keeps firing while the loop is paused.
 */
int loop_add_timer(struct loop *l, uint64_t first_ns, uint64_t period_ns, loop_fn fn, void *opaque,
		   bool service);

#endif
