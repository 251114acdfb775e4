/*
 * Pausing a running VM. A pause request kicks every vCPU out of KVM_RUN (immediate_exit
 * plus a signal, so one that is just about to enter returns at once too) and waits until
 * each has parked on a condition variable; the event loop then stops serving device fds.
 * A paused VM therefore runs no guest code and no device emulation, and uses no CPU.
 */
#include "core/log.h"
#include "vmm/snapshot.h"
#include "vmm/vm.h"

#include <errno.h>
#include <signal.h>
#include <time.h>

#define PAUSE_TIMEOUT_S 5

/* The kick signal only has to interrupt KVM_RUN; its handler has nothing to do. */
static void on_kick(int sig)
{
	(void)sig;
}

int vm_kick_signal(void)
{
	static bool installed;

	if (!installed) {
		struct sigaction sa = { .sa_handler = on_kick }; /* no SA_RESTART */
		sigemptyset(&sa.sa_mask);
		sigaction(SIGRTMIN, &sa, NULL);
		installed = true;
	}
	return SIGRTMIN;
}

bool vm_is_paused(const struct vm *vm)
{
	return atomic_load(&vm->pause.want);
}

int vm_pause(struct vm *vm)
{
	struct timespec deadline;
	int sig = vm_kick_signal(), r = 0;

	if (atomic_load(&vm->pause.want))
		return 0;
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += PAUSE_TIMEOUT_S;
	pthread_mutex_lock(&vm->pause.lock);
	atomic_store(&vm->pause.want, true);
	for (unsigned int i = 0; i < vm->ncpus; i++) {
		vm->vcpus[i].k.run->immediate_exit = 1;
		pthread_kill(vm->vcpus[i].thread, sig);
	}
	while (vm->pause.parked + vm->pause.exited < vm->ncpus && !r)
		r = pthread_cond_timedwait(&vm->pause.cond, &vm->pause.lock, &deadline);
	pthread_mutex_unlock(&vm->pause.lock);
	if (r) {
		log_error("pause: %u of %u vCPUs did not stop within %d s; resuming",
			  vm->ncpus - vm->pause.parked - vm->pause.exited, vm->ncpus,
			  PAUSE_TIMEOUT_S);
		vm_resume(vm);
		return -ETIMEDOUT;
	}
	loop_set_paused(vm->loop, true);
	log_info("VM paused");
	return 0;
}

void vm_start_paused(struct vm *vm)
{
	atomic_store(&vm->pause.want, true);
	loop_set_paused(vm->loop, true);
	vm->resume_kick = true;
	vm_start(vm);
}

void vm_resume(struct vm *vm)
{
	if (!atomic_load(&vm->pause.want))
		return;
	loop_set_paused(vm->loop, false);
	if (vm->resume_kick) {
		vm->resume_kick = false;
		snapshot_resume_devices(vm);
	}
	pthread_mutex_lock(&vm->pause.lock);
	atomic_store(&vm->pause.want, false);
	pthread_cond_broadcast(&vm->pause.cond);
	pthread_mutex_unlock(&vm->pause.lock);
	log_info("VM resumed");
}

void vcpu_pause_point(struct vcpu *v)
{
	struct vm *vm = v->vm;

	if (!atomic_load(&vm->pause.want))
		return;
	pthread_mutex_lock(&vm->pause.lock);
	v->k.run->immediate_exit = 0;
	vm->pause.parked++;
	pthread_cond_broadcast(&vm->pause.cond);
	while (atomic_load(&vm->pause.want) && !atomic_load(&vm->stopping))
		pthread_cond_wait(&vm->pause.cond, &vm->pause.lock);
	vm->pause.parked--;
	/* A pause that came and went while parked left immediate_exit set: clear it. */
	v->k.run->immediate_exit = 0;
	pthread_mutex_unlock(&vm->pause.lock);
}

void vcpu_exited(struct vcpu *v)
{
	struct vm *vm = v->vm;

	pthread_mutex_lock(&vm->pause.lock);
	vm->pause.exited++;
	pthread_cond_broadcast(&vm->pause.cond);
	pthread_mutex_unlock(&vm->pause.lock);
}
