/*
 * What a device may ask of the machine it sits in: raise or lower an interrupt
 * line, or stop the machine. Kept abstract so devices build and unit-test without KVM.
 */
#ifndef TERN_DEVICES_MACHINE_H
#define TERN_DEVICES_MACHINE_H

enum machine_stop {
	MACHINE_POWEROFF,   /* the guest asked to power off */
	MACHINE_RESET,	    /* the guest asked to reboot */
	MACHINE_DEBUG_EXIT, /* test-only debug port: status is the guest's byte */
	MACHINE_CRASH,	    /* triple fault or an exit tern cannot handle */
	MACHINE_MIGRATED,   /* the VM runs on at a migration's destination */
};

struct machine {
	void (*set_irq)(void *ctx, unsigned int irq, int level);
	void (*stop)(void *ctx, enum machine_stop why, int status);
	void *ctx;
};

static inline void machine_set_irq(const struct machine *m, unsigned int irq, int level)
{
	m->set_irq(m->ctx, irq, level);
}

static inline void machine_stop(const struct machine *m, enum machine_stop why, int status)
{
	m->stop(m->ctx, why, status);
}

#endif
