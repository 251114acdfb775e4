/*
 * Waits for Ctrl-Alt-Del on the PS/2 keyboard, set up as Linux leaves it: the
 * controller translating to scan code set 1 (XLATE), the keyboard port and the
 * keyboard enabled, interrupts off (the guest polls). Prints every byte it reads
 * ("cad: byte 0x1d"); once it has seen the set-1 make codes of Ctrl (1d), Alt (38)
 * and Delete (e0 53) it prints "cad: ctrl-alt-del" and exits with status 0.
 */
#include "tiny.h"

TINY_GUEST("cad");

#define I8042_DATA 0x60
#define I8042_STATUS 0x64
#define I8042_COMMAND 0x64
#define ST_OBF 0x01
#define ST_IBF 0x02
#define ST_AUXDATA 0x20

#define CTR_KBDINT 0x01
#define CTR_SYS 0x04
#define CTR_KBDDIS 0x10
#define CTR_AUXDIS 0x20
#define CTR_XLATE 0x40

#define HEARTBEAT 200000 /* polls between "cad: waiting" lines (a few seconds here) */

static void wait_input_empty(void)
{
	for (int i = 0; i < 100000 && (inb(I8042_STATUS) & ST_IBF); i++)
		cpu_relax();
}

static void ctl_command(uint8_t c)
{
	wait_input_empty();
	outb(I8042_COMMAND, c);
}

static void ctl_data(uint8_t v)
{
	wait_input_empty();
	outb(I8042_DATA, v);
}

/* Reads one byte within a bounded wait; -1 if none came. */
static int read_byte(void)
{
	for (int i = 0; i < 100000; i++) {
		if (inb(I8042_STATUS) & ST_OBF)
			return inb(I8042_DATA);
		cpu_relax();
	}
	return -1;
}

static void flush(void)
{
	while (inb(I8042_STATUS) & ST_OBF)
		inb(I8042_DATA);
}

int main(void)
{
	flush();
	ctl_command(0xaa); /* controller self test */
	CHECK_EQ(read_byte(), 0x55);
	ctl_command(0x20);
	int ctr = read_byte();
	CHECK(ctr >= 0);
	tiny_printf("cad: config byte 0x%x\n", ctr);
	/* As Linux: keep XLATE, keyboard port on, aux off; polled, so no keyboard interrupt. */
	ctr = (ctr | CTR_XLATE | CTR_SYS | CTR_AUXDIS) & ~(CTR_KBDDIS | CTR_KBDINT);
	ctl_command(0x60);
	ctl_data((uint8_t)ctr);
	ctl_command(0xae); /* enable the keyboard port */
	ctl_data(0xf4);	   /* keyboard: enable scanning */
	CHECK_EQ(read_byte(), 0xfa);
	flush();

	tiny_printf("cad: ready\n");
	bool ctrl = false, alt = false, del = false, ext = false;
	unsigned long polls = 0;
	while (!(ctrl && alt && del)) {
		uint8_t st = inb(I8042_STATUS);
		if (!(st & ST_OBF)) {
			if (++polls % HEARTBEAT == 0)
				tiny_printf("cad: waiting\n");
			cpu_relax();
			continue;
		}
		uint8_t b = inb(I8042_DATA);
		if (st & ST_AUXDATA)
			continue;
		tiny_printf("cad: byte 0x%x\n", b);
		if (b == 0xe0) {
			ext = true;
			continue;
		}
		if (b == 0x1d)
			ctrl = true;
		else if (b == 0x38)
			alt = true;
		else if (ext && b == 0x53)
			del = true;
		ext = false;
	}
	tiny_printf("cad: ctrl-alt-del\n");
	tiny_exit(TINY_EXIT_OK);
}
