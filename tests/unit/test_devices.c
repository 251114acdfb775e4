/*
 * Tests for the port-I/O devices against a fake machine that records interrupt
 * line changes and stop requests: 16550 UART, CMOS RTC, i8042 and the power/reset
 * registers, and the snapshot state of the first three.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "core/util.h"
#include "devices/i8042.h"
#include "devices/machine.h"
#include "devices/power.h"
#include "devices/rtc.h"
#include "devices/serial.h"
#include "devstate.h"
#include "unit.h"

struct fake {
	int irq_calls;
	unsigned int last_irq;
	int level[16];
	int stops;
	enum machine_stop why;
	int status;
};

static void fake_set_irq(void *ctx, unsigned int irq, int level)
{
	struct fake *f = ctx;

	f->irq_calls++;
	f->last_irq = irq;
	if (irq < 16)
		f->level[irq] = level;
}

static void fake_stop(void *ctx, enum machine_stop why, int status)
{
	struct fake *f = ctx;

	f->stops++;
	f->why = why;
	f->status = status;
}

static void fake_init(struct fake *f, struct machine *m)
{
	memset(f, 0, sizeof(*f));
	*m = (struct machine){ fake_set_irq, fake_stop, f };
}

/* ---- serial ---- */

#define COM_IRQ 4
enum { THR = 0, IER = 1, IIR = 2, FCR = 2, LCR = 3, MCR = 4, LSR = 5, MSR = 6, SCR = 7 };

static uint8_t sin8(struct serial *s, unsigned int reg)
{
	uint8_t v = 0x5a;

	serial_io(s, reg, &v, 1, false);
	return v;
}

static void sout8(struct serial *s, unsigned int reg, uint8_t v)
{
	serial_io(s, reg, &v, 1, true);
}

TEST(serial_lsr_and_receive)
{
	struct fake f;
	struct machine m;
	struct serial s;

	fake_init(&f, &m);
	serial_init(&s, &m, COM_IRQ, -1);
	CHECK(sin8(&s, LSR) == 0x60); /* THRE | TEMT, no data */
	CHECK(serial_receive(&s, (const uint8_t *)"ab", 2) == 2);
	CHECK(sin8(&s, LSR) == 0x61);
	CHECK(sin8(&s, THR) == 'a');
	CHECK(sin8(&s, LSR) == 0x61);
	CHECK(sin8(&s, THR) == 'b');
	CHECK(sin8(&s, LSR) == 0x60);
	/* Nothing enabled, so no interrupt either way. */
	CHECK(f.irq_calls == 0);
}

TEST(serial_thre_interrupt)
{
	struct fake f;
	struct machine m;
	struct serial s;

	fake_init(&f, &m);
	serial_init(&s, &m, COM_IRQ, -1);
	CHECK(sin8(&s, IIR) == 0x01);
	sout8(&s, IER, 0x02);
	CHECK(f.irq_calls == 1 && f.last_irq == COM_IRQ && f.level[COM_IRQ] == 1);
	/* Reading IIR reports THRE once and clears it. */
	CHECK(sin8(&s, IIR) == 0x02);
	CHECK(f.level[COM_IRQ] == 0 && f.irq_calls == 2);
	CHECK(sin8(&s, IIR) == 0x01);
	CHECK(f.irq_calls == 2); /* no redundant edges */
	/* Transmitting empties THR again at once: THRE is back. */
	sout8(&s, THR, 'x');
	CHECK(f.level[COM_IRQ] == 1);
	CHECK(sin8(&s, IIR) == 0x02);
	CHECK(f.level[COM_IRQ] == 0);
	/* Re-writing IER with THRE already enabled does not re-raise it. */
	sout8(&s, IER, 0x02);
	CHECK(f.level[COM_IRQ] == 0);
	/* Disabling the interrupt drops the line even if THRE is pending. */
	sout8(&s, THR, 'y');
	CHECK(f.level[COM_IRQ] == 1);
	sout8(&s, IER, 0x00);
	CHECK(f.level[COM_IRQ] == 0);
	CHECK(sin8(&s, IER) == 0x00);
}

TEST(serial_rx_interrupt)
{
	struct fake f;
	struct machine m;
	struct serial s;

	fake_init(&f, &m);
	serial_init(&s, &m, COM_IRQ, -1);
	sout8(&s, IER, 0x01);
	CHECK(f.irq_calls == 0);
	CHECK(serial_receive(&s, (const uint8_t *)"xy", 2) == 2);
	CHECK(f.level[COM_IRQ] == 1 && f.last_irq == COM_IRQ);
	CHECK(sin8(&s, IIR) == 0x04);
	CHECK(sin8(&s, IIR) == 0x04); /* RDA is cleared by reading data, not IIR */
	CHECK(sin8(&s, THR) == 'x');
	CHECK(f.level[COM_IRQ] == 1);
	CHECK(sin8(&s, THR) == 'y');
	CHECK(f.level[COM_IRQ] == 0);
	CHECK(sin8(&s, IIR) == 0x01);
	/* With both enabled, received data outranks THRE. */
	sout8(&s, IER, 0x03);
	CHECK(serial_receive(&s, (const uint8_t *)"z", 1) == 1);
	CHECK(sin8(&s, IIR) == 0x04);
	CHECK(sin8(&s, THR) == 'z');
	CHECK(sin8(&s, IIR) == 0x02);
	CHECK(f.level[COM_IRQ] == 0);
	/* Reading an empty RBR gives 0. */
	CHECK(sin8(&s, THR) == 0);
}

TEST(serial_dlab_switches_registers)
{
	struct fake f;
	struct machine m;
	struct serial s;
	int fds[2];
	char buf[8];

	REQUIRE(pipe2(fds, O_NONBLOCK) == 0);
	fake_init(&f, &m);
	serial_init(&s, &m, COM_IRQ, fds[1]);
	sout8(&s, IER, 0x05);
	sout8(&s, LCR, 0x83);
	CHECK(sin8(&s, LCR) == 0x83);
	CHECK(sin8(&s, THR) == 0x0c); /* 9600 baud after init */
	CHECK(sin8(&s, IER) == 0x00);
	sout8(&s, THR, 0x01);
	sout8(&s, IER, 0x02);
	CHECK(sin8(&s, THR) == 0x01);
	CHECK(sin8(&s, IER) == 0x02);
	/* Divisor writes are not transmitted. */
	CHECK(read(fds[0], buf, sizeof(buf)) < 0);
	sout8(&s, LCR, 0x03);
	CHECK(sin8(&s, IER) == 0x05);
	CHECK(sin8(&s, THR) == 0x00); /* RBR again (empty) */
	sout8(&s, LCR, 0x83);
	CHECK(sin8(&s, THR) == 0x01 && sin8(&s, IER) == 0x02); /* divisor kept */
	close(fds[0]);
	close(fds[1]);
}

TEST(serial_transmit_to_fd)
{
	struct fake f;
	struct machine m;
	struct serial s;
	int fds[2];
	char buf[16] = { 0 };

	REQUIRE(pipe2(fds, O_NONBLOCK) == 0);
	fake_init(&f, &m);
	serial_init(&s, &m, COM_IRQ, fds[1]);
	sout8(&s, THR, 'h');
	sout8(&s, THR, 'i');
	sout8(&s, THR, '\n');
	CHECK(read(fds[0], buf, sizeof(buf)) == 3);
	CHECK(memcmp(buf, "hi\n", 3) == 0);
	CHECK(sin8(&s, LSR) == 0x60); /* still empty, nothing echoed back */
	close(fds[0]);
	close(fds[1]);
}

TEST(serial_holds_output_until_a_newline_or_its_timer)
{
	struct fake f;
	struct machine m;
	struct serial s;
	struct itimerspec its;
	struct pollfd pfd;
	static char buf[SERIAL_OUT_BUF + 16];
	int fds[2], t = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);

	REQUIRE(t >= 0 && pipe2(fds, O_NONBLOCK) == 0);
	fake_init(&f, &m);
	serial_init(&s, &m, COM_IRQ, fds[1]);
	serial_set_flush_timer(&s, t);
	sout8(&s, THR, 'a');
	sout8(&s, THR, 'b');
	CHECK(read(fds[0], buf, sizeof(buf)) < 0 && errno == EAGAIN);
	CHECK(sin8(&s, LSR) == 0x60); /* to the guest, sent at once all the same */
	/* The first held byte armed the one-shot timer the VMM's loop answers. */
	CHECK(timerfd_gettime(t, &its) == 0 && (its.it_value.tv_sec || its.it_value.tv_nsec));
	CHECK(its.it_interval.tv_sec == 0 && its.it_interval.tv_nsec == 0);
	sout8(&s, THR, '\n');
	CHECK(read(fds[0], buf, sizeof(buf)) == 3 && memcmp(buf, "ab\n", 3) == 0);
	/* A prompt with no newline: out when the timer fires and the owner flushes. */
	sout8(&s, THR, '$');
	pfd = (struct pollfd){ .fd = t, .events = POLLIN };
	CHECK(poll(&pfd, 1, 1000) == 1);
	CHECK(read(fds[0], buf, sizeof(buf)) < 0);
	serial_flush(&s);
	CHECK(read(fds[0], buf, sizeof(buf)) == 1 && buf[0] == '$');
	serial_flush(&s); /* nothing held: nothing written */
	CHECK(read(fds[0], buf, sizeof(buf)) < 0);
	/* A line longer than the buffer goes out a buffer at a time, in order. */
	for (unsigned int i = 0; i < SERIAL_OUT_BUF + 5; i++)
		sout8(&s, THR, (uint8_t)('A' + i % 26));
	CHECK(read(fds[0], buf, sizeof(buf)) == SERIAL_OUT_BUF);
	CHECK(buf[0] == 'A' && buf[SERIAL_OUT_BUF - 1] == 'A' + (SERIAL_OUT_BUF - 1) % 26);
	serial_flush(&s);
	CHECK(read(fds[0], buf, sizeof(buf)) == 5 && buf[0] == 'A' + SERIAL_OUT_BUF % 26);
	/* Loopback bytes never reach the host. */
	sout8(&s, MCR, 0x10);
	sout8(&s, THR, 'L');
	serial_flush(&s);
	CHECK(read(fds[0], buf, sizeof(buf)) < 0 && sin8(&s, THR) == 'L');
	close(fds[0]);
	close(fds[1]);
	close(t);
}

TEST(serial_loopback)
{
	struct fake f;
	struct machine m;
	struct serial s;
	int fds[2];
	char buf[8];

	REQUIRE(pipe2(fds, O_NONBLOCK) == 0);
	fake_init(&f, &m);
	serial_init(&s, &m, COM_IRQ, fds[1]);
	CHECK(sin8(&s, MSR) == 0xb0); /* DCD, DSR, CTS */
	sout8(&s, MCR, 0x10);
	CHECK(sin8(&s, MSR) == 0x00);
	sout8(&s, MCR, 0x10 | 0x01); /* DTR -> DSR */
	CHECK(sin8(&s, MSR) == 0x20);
	sout8(&s, MCR, 0x10 | 0x02); /* RTS -> CTS */
	CHECK(sin8(&s, MSR) == 0x10);
	sout8(&s, MCR, 0x10 | 0x04); /* OUT1 -> RI */
	CHECK(sin8(&s, MSR) == 0x40);
	sout8(&s, MCR, 0x10 | 0x08); /* OUT2 -> DCD */
	CHECK(sin8(&s, MSR) == 0x80);
	sout8(&s, MCR, 0x1f);
	CHECK(sin8(&s, MSR) == 0xf0);
	CHECK(sin8(&s, MCR) == 0x1f);

	sout8(&s, THR, 'Z');
	CHECK(sin8(&s, LSR) & 0x01);
	CHECK(sin8(&s, THR) == 'Z');
	CHECK(!(sin8(&s, LSR) & 0x01));
	CHECK(read(fds[0], buf, sizeof(buf)) < 0); /* nothing left the UART */

	sout8(&s, MCR, 0x0b);
	sout8(&s, THR, 'Q');
	CHECK(read(fds[0], buf, sizeof(buf)) == 1 && buf[0] == 'Q');
	CHECK(!(sin8(&s, LSR) & 0x01));
	close(fds[0]);
	close(fds[1]);
}

TEST(serial_fifo_full)
{
	struct fake f;
	struct machine m;
	struct serial s;
	static uint8_t in[SERIAL_RX_FIFO + 10];

	fake_init(&f, &m);
	serial_init(&s, &m, COM_IRQ, -1);
	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)(i * 7);
	CHECK(serial_receive(&s, in, 3) == 3);
	CHECK(sin8(&s, THR) == in[0]); /* move the ring's head off zero */
	CHECK(serial_receive(&s, in + 3, sizeof(in) - 3) == SERIAL_RX_FIFO - 2);
	CHECK(serial_receive(&s, in, 1) == 0);
	/* Everything that fit comes out in order, across the ring's wrap. */
	for (size_t i = 1; i < SERIAL_RX_FIFO + 1; i++) {
		uint8_t v = sin8(&s, THR);
		if (v != in[i]) {
			CHECK(v == in[i]);
			break;
		}
	}
	CHECK(!(sin8(&s, LSR) & 0x01));
	CHECK(serial_receive(&s, in, 1) == 1);
}

TEST(serial_loopback_into_full_fifo)
{
	struct fake f;
	struct machine m;
	struct serial s;
	static uint8_t in[SERIAL_RX_FIFO];

	fake_init(&f, &m);
	serial_init(&s, &m, COM_IRQ, -1);
	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)(i * 5 + 1);
	REQUIRE(serial_receive(&s, in, sizeof(in)) == SERIAL_RX_FIFO);
	/* A looped-back byte finds no room: it is dropped, nothing is overwritten. */
	sout8(&s, MCR, 0x10);
	sout8(&s, THR, 0xee);
	CHECK(s.rx_len == SERIAL_RX_FIFO);
	for (size_t i = 0; i < sizeof(in); i++) {
		uint8_t v = sin8(&s, THR);
		if (v != in[i]) {
			CHECK(v == in[i]);
			break;
		}
	}
	CHECK(!(sin8(&s, LSR) & 0x01));
}

TEST(serial_fcr_scratch_and_wide_access)
{
	struct fake f;
	struct machine m;
	struct serial s;
	uint8_t wide[4] = { 0xaa, 0xbb, 0xcc, 0xdd };

	fake_init(&f, &m);
	serial_init(&s, &m, COM_IRQ, -1);
	sout8(&s, FCR, 0x01);
	CHECK((sin8(&s, IIR) & 0xc0) == 0xc0); /* FIFOs enabled */
	CHECK(serial_receive(&s, (const uint8_t *)"abc", 3) == 3);
	sout8(&s, FCR, 0x03); /* clear receive FIFO */
	CHECK(!(sin8(&s, LSR) & 0x01));
	sout8(&s, FCR, 0x00);
	CHECK(sin8(&s, IIR) == 0x01);
	sout8(&s, SCR, 0x77);
	CHECK(sin8(&s, SCR) == 0x77);
	/* LSR is read-only. */
	sout8(&s, LSR, 0x00);
	CHECK(sin8(&s, LSR) == 0x60);
	/* A 4-byte read fills only the first byte. */
	serial_io(&s, SCR, wide, 4, false);
	CHECK(wide[0] == 0x77 && wide[1] == 0 && wide[2] == 0 && wide[3] == 0);
}

/* ---- RTC ---- */

static time_t rtc_time;

static time_t fixed_now(void)
{
	return rtc_time;
}

#define T_2024_02_29_134556 1709214356
#define T_2024_02_29_003000 1709166600

static uint8_t rtc_rd(struct rtc *r, uint8_t reg)
{
	uint8_t v = reg;

	rtc_io(r, 0, &v, 1, true);
	v = 0x5a;
	rtc_io(r, 1, &v, 1, false);
	return v;
}

static void rtc_wr(struct rtc *r, uint8_t reg, uint8_t val)
{
	rtc_io(r, 0, &reg, 1, true);
	rtc_io(r, 1, &val, 1, true);
}

static void rtc_setup(struct rtc *r, time_t t)
{
	rtc_init(r);
	rtc_time = t;
	r->now = fixed_now;
}

TEST(rtc_bcd_24h_default)
{
	struct rtc r;

	rtc_setup(&r, T_2024_02_29_134556);
	CHECK(rtc_rd(&r, 0x0b) == 0x02);
	CHECK(rtc_rd(&r, 0x00) == 0x56);
	CHECK(rtc_rd(&r, 0x02) == 0x45);
	CHECK(rtc_rd(&r, 0x04) == 0x13);
	CHECK(rtc_rd(&r, 0x06) == 0x05); /* Thursday: 1 = Sunday */
	CHECK(rtc_rd(&r, 0x07) == 0x29);
	CHECK(rtc_rd(&r, 0x08) == 0x02);
	CHECK(rtc_rd(&r, 0x09) == 0x24);
	CHECK(rtc_rd(&r, 0x32) == 0x20);
	CHECK(rtc_rd(&r, 0x0d) & 0x80);	   /* valid RAM and time */
	CHECK(!(rtc_rd(&r, 0x0a) & 0x80)); /* never "update in progress" */
	/* The clock follows the host clock. */
	rtc_time += 3;
	CHECK(rtc_rd(&r, 0x00) == 0x59);
	rtc_time += 1;
	CHECK(rtc_rd(&r, 0x00) == 0x00 && rtc_rd(&r, 0x02) == 0x46);
}

TEST(rtc_binary_mode)
{
	struct rtc r;

	rtc_setup(&r, T_2024_02_29_134556);
	rtc_wr(&r, 0x0b, 0x06);
	CHECK(rtc_rd(&r, 0x0b) == 0x06);
	CHECK(rtc_rd(&r, 0x00) == 56);
	CHECK(rtc_rd(&r, 0x02) == 45);
	CHECK(rtc_rd(&r, 0x04) == 13);
	CHECK(rtc_rd(&r, 0x07) == 29);
	CHECK(rtc_rd(&r, 0x08) == 2);
	CHECK(rtc_rd(&r, 0x09) == 24);
	CHECK(rtc_rd(&r, 0x32) == 20);
}

TEST(rtc_12h_mode)
{
	struct rtc r;

	rtc_setup(&r, T_2024_02_29_134556);
	rtc_wr(&r, 0x0b, 0x00);			  /* BCD, 12h */
	CHECK(rtc_rd(&r, 0x04) == (0x01 | 0x80)); /* 1 PM */
	rtc_wr(&r, 0x0b, 0x04);			  /* binary, 12h */
	CHECK(rtc_rd(&r, 0x04) == (1 | 0x80));
	rtc_time = T_2024_02_29_134556 - 3600; /* 12:45 */
	CHECK(rtc_rd(&r, 0x04) == (12 | 0x80));
	rtc_time = T_2024_02_29_003000; /* 00:30 is 12 AM */
	CHECK(rtc_rd(&r, 0x04) == 12);
	rtc_wr(&r, 0x0b, 0x00);
	CHECK(rtc_rd(&r, 0x04) == 0x12);
	rtc_time += 11 * 3600; /* 11:30 AM */
	CHECK(rtc_rd(&r, 0x04) == 0x11);
	rtc_wr(&r, 0x0b, 0x02);
	CHECK(rtc_rd(&r, 0x04) == 0x11);
}

TEST(rtc_set_time_moves_offset)
{
	struct rtc r;

	rtc_setup(&r, T_2024_02_29_134556);
	rtc_wr(&r, 0x0b, 0x82); /* SET, 24h, BCD */
	rtc_wr(&r, 0x04, 0x08);
	CHECK(r.offset == -5 * 3600);
	rtc_wr(&r, 0x0b, 0x02);
	CHECK(rtc_rd(&r, 0x04) == 0x08);
	CHECK(rtc_rd(&r, 0x02) == 0x45);
	CHECK(rtc_rd(&r, 0x07) == 0x29);
	/* The set clock keeps running with the host's. */
	rtc_time += 10;
	CHECK(rtc_rd(&r, 0x00) == 0x06);
	CHECK(rtc_rd(&r, 0x04) == 0x08);

	/* Date fields, each read back as written; the others stay. */
	rtc_wr(&r, 0x09, 0x25);
	CHECK(rtc_rd(&r, 0x09) == 0x25);
	CHECK(rtc_rd(&r, 0x08) == 0x03 && rtc_rd(&r, 0x07) == 0x01); /* 2025 has no Feb 29 */
	rtc_wr(&r, 0x08, 0x12);
	rtc_wr(&r, 0x07, 0x31);
	CHECK(rtc_rd(&r, 0x08) == 0x12 && rtc_rd(&r, 0x07) == 0x31);
	CHECK(rtc_rd(&r, 0x06) == 0x04); /* 2025-12-31 is a Wednesday */
	rtc_wr(&r, 0x32, 0x19);
	CHECK(rtc_rd(&r, 0x32) == 0x19 && rtc_rd(&r, 0x09) == 0x25);
	/* Writing the day of week changes nothing. */
	int64_t off = r.offset;
	rtc_wr(&r, 0x06, 0x01);
	CHECK(r.offset == off);

	/* Binary mode writes. */
	rtc_wr(&r, 0x0b, 0x06);
	rtc_wr(&r, 0x02, 7);
	rtc_wr(&r, 0x00, 30);
	CHECK(rtc_rd(&r, 0x02) == 7 && rtc_rd(&r, 0x00) == 30);

	/* 12h writes: 7 PM is 19:00; 12 AM is 0:00. */
	rtc_wr(&r, 0x0b, 0x00);
	rtc_wr(&r, 0x04, 0x80 | 0x07);
	CHECK(rtc_rd(&r, 0x04) == (0x80 | 0x07));
	rtc_wr(&r, 0x0b, 0x02);
	CHECK(rtc_rd(&r, 0x04) == 0x19);
	rtc_wr(&r, 0x0b, 0x00);
	rtc_wr(&r, 0x04, 0x12);
	rtc_wr(&r, 0x0b, 0x02);
	CHECK(rtc_rd(&r, 0x04) == 0x00);
}

TEST(rtc_registers_and_ram)
{
	struct rtc r;
	uint8_t v;

	rtc_setup(&r, T_2024_02_29_134556);
	/* Reading C returns the pending flags and clears them; writes to C and D are ignored. */
	r.ram[0x0c] = 0xc0;
	rtc_wr(&r, 0x0c, 0x00);
	CHECK(rtc_rd(&r, 0x0c) == 0xc0);
	CHECK(rtc_rd(&r, 0x0c) == 0x00);
	rtc_wr(&r, 0x0d, 0x00);
	CHECK(rtc_rd(&r, 0x0d) == 0x80);
	/* UIP (A bit 7) is read-only. */
	rtc_wr(&r, 0x0a, 0xa6);
	CHECK(rtc_rd(&r, 0x0a) == 0x26);
	/* Alarm registers and CMOS RAM are plain storage. */
	rtc_wr(&r, 0x01, 0x30);
	CHECK(rtc_rd(&r, 0x01) == 0x30);
	CHECK(rtc_rd(&r, 0x00) == 0x56);
	rtc_wr(&r, 0x40, 0x5a);
	rtc_wr(&r, 0x7f, 0xa5);
	CHECK(rtc_rd(&r, 0x40) == 0x5a && rtc_rd(&r, 0x7f) == 0xa5);
	/* Bit 7 of the index is the NMI mask: it does not select a register. */
	v = 0x80 | 0x40;
	rtc_io(&r, 0, &v, 1, true);
	v = 0;
	rtc_io(&r, 1, &v, 1, false);
	CHECK(v == 0x5a);
	CHECK(rtc_rd(&r, 0x80 | 0x04) == 0x13);
	CHECK(rtc_rd(&r, 0x80 | 0x0b) == 0x02);
	/* The index port itself reads as floating. */
	v = 0;
	rtc_io(&r, 0, &v, 1, false);
	CHECK(v == 0xff);
}

/* ---- i8042 ---- */

#define KBD_IRQ 1
#define AUX_IRQ 12

static uint8_t kin(struct i8042 *k, unsigned int port)
{
	uint8_t v = 0x5a;

	i8042_io(k, port, &v, 1, false);
	return v;
}

static void kout(struct i8042 *k, unsigned int port, uint8_t v)
{
	i8042_io(k, port, &v, 1, true);
}

TEST(i8042_self_test_and_config)
{
	struct fake f;
	struct machine m;
	struct i8042 k;

	fake_init(&f, &m);
	i8042_init(&k, &m);
	CHECK(!(kin(&k, 4) & 0x01));
	kout(&k, 4, 0xaa);
	CHECK(kin(&k, 4) & 0x01);
	CHECK(kin(&k, 4) & 0x08); /* last write was a command */
	CHECK(kin(&k, 0) == 0x55);
	CHECK(!(kin(&k, 4) & 0x01));

	kout(&k, 4, 0x20);
	uint8_t ctr = kin(&k, 0);
	CHECK(ctr & 0x01); /* keyboard interrupt enabled after reset */
	CHECK(ctr & 0x20); /* no aux device */
	kout(&k, 4, 0x60);
	kout(&k, 0, 0x47);
	CHECK(!(kin(&k, 4) & 0x08)); /* data write clears the command flag */
	CHECK(!(kin(&k, 4) & 0x01)); /* the data byte was for the controller, no reply */
	kout(&k, 4, 0x20);
	CHECK(kin(&k, 0) == 0x47);

	kout(&k, 4, 0xab);
	CHECK(kin(&k, 0) == 0x00);
	kout(&k, 4, 0xa9);
	CHECK(kin(&k, 0) == 0x00);
	kout(&k, 4, 0xd0);
	CHECK(kin(&k, 0) & 0x01); /* not in reset */
	/* Enable/disable commands change the configuration byte. */
	kout(&k, 4, 0xad);
	kout(&k, 4, 0x20);
	CHECK(kin(&k, 0) & 0x10);
	kout(&k, 4, 0xae);
	kout(&k, 4, 0x20);
	CHECK(!(kin(&k, 0) & 0x10));
	CHECK(f.stops == 0);
}

TEST(i8042_reset_lines)
{
	struct fake f;
	struct machine m;
	struct i8042 k;

	fake_init(&f, &m);
	i8042_init(&k, &m);
	kout(&k, 4, 0xff); /* pulse nothing */
	CHECK(f.stops == 0);
	kout(&k, 4, 0xfe); /* pulse the reset line */
	CHECK(f.stops == 1 && f.why == MACHINE_RESET);

	fake_init(&f, &m);
	i8042_init(&k, &m);
	kout(&k, 4, 0xd1);
	kout(&k, 0, 0x03); /* A20 on, not in reset */
	CHECK(f.stops == 0);
	kout(&k, 4, 0xd1);
	kout(&k, 0, 0x02); /* bit 0 low: reset */
	CHECK(f.stops == 1 && f.why == MACHINE_RESET);
	/* The byte after the output port write is a keyboard byte again. */
	kout(&k, 0, 0xf4);
	CHECK(f.stops == 1);
	CHECK(kin(&k, 0) == 0xfa);
}

TEST(i8042_keyboard_commands)
{
	struct fake f;
	struct machine m;
	struct i8042 k;

	fake_init(&f, &m);
	i8042_init(&k, &m);
	kout(&k, 0, 0xff);
	CHECK(kin(&k, 0) == 0xfa);
	CHECK(kin(&k, 0) == 0xaa);
	CHECK(!(kin(&k, 4) & 0x01));
	/* Identify: ab 83, and the translating controller turns 83 into 41, as on a PC. */
	kout(&k, 0, 0xf2);
	CHECK(kin(&k, 0) == 0xfa && kin(&k, 0) == 0xab && kin(&k, 0) == 0x41);
	kout(&k, 4, 0x60);
	kout(&k, 0, 0x05); /* XLATE off */
	kout(&k, 0, 0xf2);
	CHECK(kin(&k, 0) == 0xfa && kin(&k, 0) == 0xab && kin(&k, 0) == 0x83);
	kout(&k, 0, 0xee);
	CHECK(kin(&k, 0) == 0xee);
	/* LED command and its argument are both acknowledged; the argument is not a command. */
	kout(&k, 0, 0xed);
	kout(&k, 0, 0xff);
	CHECK(kin(&k, 0) == 0xfa && kin(&k, 0) == 0xfa);
	CHECK(!(kin(&k, 4) & 0x01));
	/* Scan code set: asked with f0 00, set 1 chosen with f0 01, set 3 is not offered. */
	kout(&k, 0, 0xf0);
	kout(&k, 0, 0x00);
	CHECK(kin(&k, 0) == 0xfa && kin(&k, 0) == 0xfa && kin(&k, 0) == 0x02);
	kout(&k, 0, 0xf0);
	kout(&k, 0, 0x03);
	kout(&k, 0, 0xf0);
	kout(&k, 0, 0x00);
	CHECK(kin(&k, 0) == 0xfa && kin(&k, 0) == 0xfa);
	CHECK(kin(&k, 0) == 0xfa && kin(&k, 0) == 0xfa && kin(&k, 0) == 0x02);
	kout(&k, 0, 0xf0);
	kout(&k, 0, 0x01);
	CHECK(kin(&k, 0) == 0xfa && kin(&k, 0) == 0xfa);
	kout(&k, 0, 0xf0);
	kout(&k, 0, 0x00);
	CHECK(kin(&k, 0) == 0xfa && kin(&k, 0) == 0xfa && kin(&k, 0) == 0x01);
	/* Writing the keyboard output buffer makes the byte readable as is. */
	kout(&k, 4, 0x60);
	kout(&k, 0, 0x45); /* XLATE on: d2 bytes are not translated */
	kout(&k, 4, 0xd2);
	kout(&k, 0, 0x1c);
	CHECK(kin(&k, 0) == 0x1c);
	CHECK(!(kin(&k, 4) & 0x01));
}

/* Reads every byte the controller has, up to max; returns how many. */
static unsigned int kdrain(struct i8042 *k, uint8_t *buf, unsigned int max)
{
	unsigned int n = 0;

	while (n < max && (kin(k, 4) & 0x01))
		buf[n++] = kin(k, 0);
	return n;
}

static bool bytes_eq(const uint8_t *a, unsigned int na, const uint8_t *b, unsigned int nb)
{
	return na == nb && !memcmp(a, b, na);
}

TEST(i8042_obf_and_irq1)
{
	struct fake f;
	struct machine m;
	struct i8042 k;
	const uint8_t keys[] = { 0x1c, 0xf0, 0x1c, 0x32 }; /* A pressed and released, B pressed */

	fake_init(&f, &m);
	i8042_init(&k, &m);
	CHECK(i8042_key_bytes(&k, keys, 4));
	CHECK(kin(&k, 4) & 0x01);
	CHECK(!(kin(&k, 4) & 0x20));
	CHECK(f.level[KBD_IRQ] == 1 && f.irq_calls == 1);
	CHECK(kin(&k, 0) == 0x1e);
	/* One byte per interrupt: the edge-triggered line drops and rises for the next byte. */
	CHECK(f.level[KBD_IRQ] == 1 && f.irq_calls == 3);
	CHECK(kin(&k, 0) == 0x9e);
	CHECK(f.level[KBD_IRQ] == 1 && f.irq_calls == 5);
	CHECK(kin(&k, 0) == 0x30);
	CHECK(f.level[KBD_IRQ] == 0 && f.irq_calls == 6);
	CHECK(!(kin(&k, 4) & 0x01));
	/* Reading with nothing queued gives 0 and no edge. */
	CHECK(kin(&k, 0) == 0x00);
	CHECK(f.irq_calls == 6);

	/* With keyboard interrupts off, OBF still shows but IRQ1 stays low. */
	kout(&k, 4, 0x60);
	kout(&k, 0, 0x24);
	CHECK(i8042_key_bytes(&k, keys, 1));
	CHECK(kin(&k, 4) & 0x01);
	CHECK(f.level[KBD_IRQ] == 0);
	/* Turning them back on with a byte waiting raises the line. */
	kout(&k, 4, 0x60);
	kout(&k, 0, 0x25);
	CHECK(f.level[KBD_IRQ] == 1);
	CHECK(kin(&k, 0) == 0x1c); /* XLATE was off when it reached the controller */
	CHECK(f.level[KBD_IRQ] == 0);
}

TEST(i8042_ctrl_alt_del_translated)
{
	struct fake f;
	struct machine m;
	struct i8042 k;
	uint8_t got[32];
	/* Set 1: Ctrl 1d, Alt 38, Delete e0 53, then the breaks with bit 7 set. */
	const uint8_t want[] = { 0x1d, 0x38, 0xe0, 0x53, 0xe0, 0xd3, 0xb8, 0x9d };

	fake_init(&f, &m);
	i8042_init(&k, &m);
	/* What Linux leaves: keyboard interrupt, SYS, aux off, XLATE; the port enabled. */
	kout(&k, 4, 0x20);
	CHECK(kin(&k, 0) & 0x40); /* translation is on from reset, as PC firmware leaves it */
	kout(&k, 4, 0x60);
	kout(&k, 0, 0x65);
	int calls = f.irq_calls;
	i8042_send_ctrl_alt_del(&k);
	CHECK(f.level[KBD_IRQ] == 1);
	unsigned int n = kdrain(&k, got, sizeof(got));
	CHECK(bytes_eq(got, n, want, sizeof(want)));
	CHECK(f.level[KBD_IRQ] == 0);
	/* Every byte came with its own rising edge. */
	CHECK(f.irq_calls - calls == 2 * (int)sizeof(want));
	CHECK(f.stops == 0);
}

TEST(i8042_ctrl_alt_del_raw_set2)
{
	struct fake f;
	struct machine m;
	struct i8042 k;
	uint8_t got[32];
	const uint8_t want[] = { 0x14, 0x11, 0xe0, 0x71, 0xe0, 0xf0, 0x71, 0xf0, 0x11, 0xf0, 0x14 };

	fake_init(&f, &m);
	i8042_init(&k, &m);
	kout(&k, 4, 0x60);
	kout(&k, 0, 0x25); /* XLATE off: Linux's i8042.direct */
	i8042_send_ctrl_alt_del(&k);
	unsigned int n = kdrain(&k, got, sizeof(got));
	CHECK(bytes_eq(got, n, want, sizeof(want)));
}

TEST(i8042_translation_table)
{
	struct fake f;
	struct machine m;
	struct i8042 k;
	uint8_t got[32];
	/* Esc, Q, Enter, Right Ctrl (e0 14), F7 (83), Pause (e1 14 77 e1 f0 14 f0 77). */
	const uint8_t in[] = { 0x76, 0x15, 0x5a, 0xe0, 0x14, 0xe0, 0xf0, 0x14, 0x83, 0xf0, 0x83 };
	const uint8_t want[] = { 0x01, 0x10, 0x1c, 0xe0, 0x1d, 0xe0, 0x9d, 0x41, 0xc1 };
	const uint8_t pause[] = { 0xe1, 0x14, 0x77, 0xe1, 0xf0, 0x14, 0xf0, 0x77 };
	const uint8_t pause1[] = { 0xe1, 0x1d, 0x45, 0xe1, 0x9d, 0xc5 };

	fake_init(&f, &m);
	i8042_init(&k, &m);
	CHECK(i8042_key_bytes(&k, in, sizeof(in)));
	unsigned int n = kdrain(&k, got, sizeof(got));
	CHECK(bytes_eq(got, n, want, sizeof(want)));
	CHECK(i8042_key_bytes(&k, pause, sizeof(pause)));
	n = kdrain(&k, got, sizeof(got));
	CHECK(bytes_eq(got, n, pause1, sizeof(pause1)));

	/* A keyboard switched to set 1 (f0 01) sends set 1 itself; with XLATE off it arrives as is. */
	kout(&k, 4, 0x60);
	kout(&k, 0, 0x25);
	kout(&k, 0, 0xf0);
	kout(&k, 0, 0x01);
	CHECK(kin(&k, 0) == 0xfa && kin(&k, 0) == 0xfa);
	i8042_send_ctrl_alt_del(&k);
	n = kdrain(&k, got, sizeof(got));
	const uint8_t cad1[] = { 0x1d, 0x38, 0xe0, 0x53, 0xe0, 0xd3, 0xb8, 0x9d };
	CHECK(bytes_eq(got, n, cad1, sizeof(cad1)));
}

TEST(i8042_keyboard_port_disabled)
{
	struct fake f;
	struct machine m;
	struct i8042 k;
	uint8_t got[32];
	const uint8_t a[] = { 0x1c, 0xf0, 0x1c };

	fake_init(&f, &m);
	i8042_init(&k, &m);
	/* Port inhibited (0xad): keys wait in the keyboard, no OBF, no interrupt. */
	kout(&k, 4, 0xad);
	CHECK(i8042_key_bytes(&k, a, sizeof(a)));
	CHECK(!(kin(&k, 4) & 0x01));
	CHECK(f.level[KBD_IRQ] == 0);
	/* The controller still answers its own commands meanwhile. */
	kout(&k, 4, 0xaa);
	CHECK(kin(&k, 0) == 0x55);
	CHECK(!(kin(&k, 4) & 0x01));
	/* Enabled again (0xae): they arrive, translated with the XLATE setting of now. */
	kout(&k, 4, 0xae);
	CHECK(f.level[KBD_IRQ] == 1);
	unsigned int n = kdrain(&k, got, sizeof(got));
	const uint8_t a1[] = { 0x1e, 0x9e };
	CHECK(bytes_eq(got, n, a1, sizeof(a1)));

	/* The same through the configuration byte (bit 4). */
	kout(&k, 4, 0x60);
	kout(&k, 0, 0x75);
	CHECK(i8042_key_bytes(&k, a, 1));
	CHECK(!(kin(&k, 4) & 0x01));
	kout(&k, 4, 0x60);
	kout(&k, 0, 0x65);
	CHECK(kin(&k, 0) == 0x1e);

	/* Sending a keyboard command releases an inhibited port; the answer comes first. */
	kout(&k, 4, 0xad);
	CHECK(i8042_key_bytes(&k, a, 1));
	kout(&k, 0, 0xee);
	CHECK(kin(&k, 0) == 0xee);
	CHECK(kin(&k, 0) == 0x1e);
	CHECK(!(kin(&k, 4) & 0x01));
	kout(&k, 4, 0x20);
	CHECK(!(kin(&k, 0) & 0x10));
}

TEST(i8042_keyboard_scanning_disabled)
{
	struct fake f;
	struct machine m;
	struct i8042 k;
	const uint8_t a[] = { 0x1c };

	fake_init(&f, &m);
	i8042_init(&k, &m);
	/* 0xf5: the keyboard stops scanning; keys pressed meanwhile are lost. */
	kout(&k, 0, 0xf5);
	CHECK(kin(&k, 0) == 0xfa);
	CHECK(!i8042_key_bytes(&k, a, 1));
	i8042_send_ctrl_alt_del(&k);
	CHECK(!(kin(&k, 4) & 0x01));
	/* 0xf4 turns it back on. */
	kout(&k, 0, 0xf4);
	CHECK(kin(&k, 0) == 0xfa);
	CHECK(i8042_key_bytes(&k, a, 1));
	CHECK(kin(&k, 0) == 0x1e);
	/* So does a reset (0xff), which also empties its buffer. */
	kout(&k, 0, 0xf5);
	CHECK(kin(&k, 0) == 0xfa);
	kout(&k, 0, 0xff);
	CHECK(kin(&k, 0) == 0xfa && kin(&k, 0) == 0xaa);
	CHECK(i8042_key_bytes(&k, a, 1));
	CHECK(kin(&k, 0) == 0x1e);
}

TEST(i8042_queue_overflow)
{
	struct fake f;
	struct machine m;
	struct i8042 k;
	uint8_t keys[I8042_KBD_QUEUE + 8];

	fake_init(&f, &m);
	i8042_init(&k, &m);
	kout(&k, 4, 0x60);
	kout(&k, 0, 0x25); /* raw bytes */
	for (unsigned int i = 0; i < sizeof(keys); i++)
		keys[i] = (uint8_t)(i + 1);
	CHECK(i8042_key_bytes(&k, keys, 5));
	for (unsigned int i = 0; i < 5; i++)
		CHECK(kin(&k, 0) == keys[i]);
	/* More than the keyboard's buffer holds: refused as a whole, never cut in half. */
	CHECK(!i8042_key_bytes(&k, keys, sizeof(keys)));
	CHECK(!(kin(&k, 4) & 0x01));
	/* The buffer plus the controller's output byte: the first one moves on at once. */
	CHECK(i8042_key_bytes(&k, keys, I8042_KBD_QUEUE));
	CHECK(i8042_key_bytes(&k, keys, 1));
	CHECK(!i8042_key_bytes(&k, keys, 1));
	for (unsigned int i = 0; i < I8042_KBD_QUEUE; i++) {
		uint8_t v = kin(&k, 0);
		if (v != keys[i]) {
			CHECK(v == keys[i]);
			break;
		}
	}
	CHECK(kin(&k, 0) == keys[0]);
	CHECK(!(kin(&k, 4) & 0x01));
	CHECK(kin(&k, 0) == 0x00);
}

TEST(i8042_aux_port)
{
	struct fake f;
	struct machine m;
	struct i8042 k;

	fake_init(&f, &m);
	i8042_init(&k, &m);
	/* No mouse: a byte sent to it is answered with "resend" from the aux side. */
	kout(&k, 4, 0xd4);
	kout(&k, 0, 0xf4);
	CHECK((kin(&k, 4) & 0x21) == 0x21);
	CHECK(f.level[KBD_IRQ] == 0 && f.level[AUX_IRQ] == 0); /* aux interrupts are off */
	CHECK(kin(&k, 0) == 0xfe);
	CHECK(!(kin(&k, 4) & 0x21));

	/* Aux loopback with aux interrupts on raises IRQ12, not IRQ1. */
	kout(&k, 4, 0x60);
	kout(&k, 0, 0x07);
	kout(&k, 4, 0xd3);
	kout(&k, 0, 0x42);
	CHECK(f.level[AUX_IRQ] == 1 && f.level[KBD_IRQ] == 0);
	CHECK((kin(&k, 4) & 0x21) == 0x21);
	CHECK(kin(&k, 0) == 0x42);
	CHECK(f.level[AUX_IRQ] == 0);

	/* Ports 0x61..0x63 are not the controller's. */
	CHECK(kin(&k, 1) == 0xff && kin(&k, 3) == 0xff);
}

/* ---- power ---- */

static void pwr(void (*fn)(void *, uint64_t, uint8_t *, uint32_t, bool), struct machine *m,
		uint64_t off, uint8_t v)
{
	fn(m, off, &v, 1, true);
}

TEST(power_acpi_sleep_and_reset)
{
	struct fake f;
	struct machine m;
	uint8_t v;

	fake_init(&f, &m);
	pwr(power_acpi_io, &m, 0, (uint8_t)(ACPI_S5_TYPE << ACPI_SLP_TYP_SHIFT)); /* no SLP_EN */
	CHECK(f.stops == 0);
	pwr(power_acpi_io, &m, 0, (uint8_t)((1 << ACPI_SLP_TYP_SHIFT) | ACPI_SLP_EN)); /* S1 */
	pwr(power_acpi_io, &m, 0, (uint8_t)((3 << ACPI_SLP_TYP_SHIFT) | ACPI_SLP_EN)); /* S3 */
	pwr(power_acpi_io, &m, 0, (uint8_t)((4 << ACPI_SLP_TYP_SHIFT) | ACPI_SLP_EN)); /* S4 */
	CHECK(f.stops == 0);
	/* S5 written to the status register is not a request. */
	pwr(power_acpi_io, &m, 1, (uint8_t)((5 << ACPI_SLP_TYP_SHIFT) | ACPI_SLP_EN));
	CHECK(f.stops == 0);
	pwr(power_acpi_io, &m, 0, (uint8_t)((5 << ACPI_SLP_TYP_SHIFT) | ACPI_SLP_EN));
	CHECK(f.stops == 1 && f.why == MACHINE_POWEROFF);
	/* Other bits around SLP_TYP/SLP_EN do not matter. */
	pwr(power_acpi_io, &m, 0, (uint8_t)((5 << ACPI_SLP_TYP_SHIFT) | ACPI_SLP_EN | 0x83));
	CHECK(f.stops == 2 && f.why == MACHINE_POWEROFF);

	/* The reset value means nothing in the sleep registers. */
	fake_init(&f, &m);
	pwr(power_acpi_io, &m, 0, 0x01);
	pwr(power_acpi_io, &m, 1, 0x01);
	CHECK(f.stops == 0);
	pwr(power_acpi_io, &m, 2, 0x02);
	pwr(power_acpi_io, &m, 2, 0x00);
	CHECK(f.stops == 0);
	pwr(power_acpi_io, &m, 2, 0x01);
	CHECK(f.stops == 1 && f.why == MACHINE_RESET);

	v = 0xff;
	power_acpi_io(&m, 1, &v, 1, false);
	CHECK(v == 0);
	CHECK(f.stops == 1);
}

TEST(power_cf9_reset)
{
	struct fake f;
	struct machine m;
	uint8_t v = 0xff;

	fake_init(&f, &m);
	pwr(power_cf9_io, &m, 0, 0x02); /* selects hard reset, does not start it */
	pwr(power_cf9_io, &m, 0, 0x00);
	CHECK(f.stops == 0);
	pwr(power_cf9_io, &m, 0, 0x06);
	CHECK(f.stops == 1 && f.why == MACHINE_RESET);
	pwr(power_cf9_io, &m, 0, 0x04);
	CHECK(f.stops == 2 && f.why == MACHINE_RESET);
	power_cf9_io(&m, 0, &v, 1, false);
	CHECK(v == 0 && f.stops == 2);
}

TEST(power_debug_exit)
{
	struct fake f;
	struct machine m;
	uint8_t v = 0;

	fake_init(&f, &m);
	pwr(power_debug_exit_io, &m, 0, 0x2a);
	CHECK(f.stops == 1 && f.why == MACHINE_DEBUG_EXIT && f.status == 0x2a);
	pwr(power_debug_exit_io, &m, 0, 0xff);
	CHECK(f.stops == 2 && f.status == 0xff);
	power_debug_exit_io(&m, 0, &v, 1, false);
	CHECK(v == 0xff && f.stops == 2);
}

/* ---- snapshot state ---- */

/* What a guest can observe of a device, in order, to compare two devices by. */
struct seen {
	uint8_t b[4 * SERIAL_RX_FIFO];
	unsigned int n;
	bool full; /* something did not fit: the two never compare equal */
};

static void see(struct seen *o, int v)
{
	if (o->n < sizeof(o->b))
		o->b[o->n++] = (uint8_t)v;
	else
		o->full = true;
}

static bool seen_eq(const struct seen *a, const struct seen *b)
{
	return !a->full && !b->full && a->n == b->n && !memcmp(a->b, b->b, a->n);
}

/* Every register and every queued byte, with IIR and the line between them (drains it). */
static void serial_observe(struct serial *s, const struct fake *f, struct seen *o)
{
	uint8_t lcr = sin8(s, LCR);

	o->n = 0;
	o->full = false;
	see(o, f->level[COM_IRQ]);
	see(o, lcr);
	sout8(s, LCR, lcr | 0x80);
	see(o, sin8(s, THR)); /* DLL */
	see(o, sin8(s, IER)); /* DLM */
	sout8(s, LCR, lcr & 0x7f);
	see(o, sin8(s, IER));
	see(o, sin8(s, MCR));
	see(o, sin8(s, SCR));
	see(o, sin8(s, MSR));
	while (sin8(s, LSR) & 0x01) {
		see(o, sin8(s, IIR));
		see(o, f->level[COM_IRQ]);
		see(o, sin8(s, THR));
	}
	/* THRE, if pending, shows once, then nothing. */
	for (int i = 0; i < 2; i++) {
		see(o, sin8(s, IIR));
		see(o, f->level[COM_IRQ]);
	}
	see(o, sin8(s, LSR));
}

/* Saves s into a section of a state file and reads that back. */
static int serial_snapshot(struct serial *s, struct devstate *d)
{
	if (devstate_begin(d, VMSTATE_TAG_SERIAL, SERIAL_STATE_VERSION))
		return -1;
	serial_save(s, &d->w);
	return devstate_finish(d);
}

TEST(serial_state_round_trip)
{
	struct fake f, f2;
	struct machine m, m2;
	struct serial s, s2;
	struct devstate d;
	struct vmstate_cursor c;
	static uint8_t in[SERIAL_RX_FIFO];
	static struct seen a, b;
	char err[128] = "";

	fake_init(&f, &m);
	serial_init(&s, &m, COM_IRQ, -1);
	sout8(&s, LCR, 0x83);
	sout8(&s, THR, 0x01); /* divisor 0x0201 */
	sout8(&s, IER, 0x02);
	sout8(&s, LCR, 0x1b);
	sout8(&s, FCR, 0x81);
	sout8(&s, MCR, 0x0b);
	sout8(&s, SCR, 0x5a);
	sout8(&s, IER, 0x03); /* RDA and THRE: THRE pending at once */
	/* A full FIFO whose ring has wrapped: the head is not at 0. */
	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)(i * 13 + 7);
	REQUIRE(serial_receive(&s, in, sizeof(in)) == SERIAL_RX_FIFO);
	for (int i = 0; i < 100; i++)
		sin8(&s, THR);
	REQUIRE(serial_receive(&s, in, 50) == 50);
	REQUIRE(s.rx_head == 100 && s.rx_len == SERIAL_RX_FIFO - 50);
	REQUIRE(f.level[COM_IRQ] == 1 && s.thre_pending);

	REQUIRE(serial_snapshot(&s, &d) == 0);
	CHECK(d.s->version == SERIAL_STATE_VERSION);
	fake_init(&f2, &m2);
	serial_init(&s2, &m2, COM_IRQ, -1);
	devstate_cursor(&d, &c);
	CHECK(serial_restore(&s2, &c, err, sizeof(err)) == 0);
	CHECK(err[0] == 0);
	/* The line is driven once, to the restored level. */
	CHECK(f2.irq_calls == 1 && f2.last_irq == COM_IRQ && f2.level[COM_IRQ] == 1);
	serial_observe(&s, &f, &a);
	serial_observe(&s2, &f2, &b);
	CHECK(a.n > SERIAL_RX_FIFO);
	CHECK(seen_eq(&a, &b));
	CHECK(f2.level[COM_IRQ] == 0);
	devstate_free(&d);
}

TEST(serial_state_line_low)
{
	struct fake f, f2;
	struct machine m, m2;
	struct serial s, s2;
	struct devstate d;
	struct vmstate_cursor c;
	static struct seen a, b;
	char err[128];

	/* Bytes waiting but no interrupt enabled: restore drives the line low. */
	fake_init(&f, &m);
	serial_init(&s, &m, COM_IRQ, -1);
	REQUIRE(serial_receive(&s, (const uint8_t *)"ok", 2) == 2);
	REQUIRE(serial_snapshot(&s, &d) == 0);
	fake_init(&f2, &m2);
	f2.level[COM_IRQ] = 1; /* what the controller might believe */
	serial_init(&s2, &m2, COM_IRQ, -1);
	devstate_cursor(&d, &c);
	CHECK(serial_restore(&s2, &c, err, sizeof(err)) == 0);
	CHECK(f2.irq_calls == 1 && f2.level[COM_IRQ] == 0);
	serial_observe(&s, &f, &a);
	serial_observe(&s2, &f2, &b);
	CHECK(seen_eq(&a, &b));
	devstate_free(&d);
}

/* Payload offsets of serial_save()'s fields. */
enum { SER_IER = 0, SER_MCR = 2, SER_FCR = 6, SER_THRE = 7, SER_RXLEN = 8 };

static int serial_restore_any(void *dev, struct vmstate_cursor *c, char *err, size_t n)
{
	return serial_restore(dev, c, err, n);
}

TEST(serial_state_refused)
{
	struct fake f, f2;
	struct machine m, m2;
	struct serial s, s2, before;
	struct devstate d;
	struct vmstate_cursor c;
	char err[128];
	static const struct devstate_bad bad[] = {
		{ SER_IER, 0x10, "IER" },
		{ SER_MCR, 0x20, "MCR" },
		{ SER_FCR, 0x02, "FCR" },
		{ SER_THRE, 2, "THRE" },
		{ SER_RXLEN + 1, 0x04, "rx FIFO length 1027 > 1024" },
		{ SER_RXLEN + 3, 0x80, "rx FIFO length" },
	};

	fake_init(&f, &m);
	serial_init(&s, &m, COM_IRQ, -1);
	sout8(&s, IER, 0x01);
	REQUIRE(serial_receive(&s, (const uint8_t *)"abc", 3) == 3);
	REQUIRE(serial_snapshot(&s, &d) == 0);
	size_t len = d.s->len;
	REQUIRE(len == 12 + 3);

	fake_init(&f2, &m2);
	serial_init(&s2, &m2, COM_IRQ, -1);
	sout8(&s2, SCR, 0x11); /* something to lose if a refusal touched the UART */
	f2.irq_calls = 0;
	memcpy(&before, &s2, sizeof(s2));
	/* Cut anywhere, or one byte too long. */
	CHECK(devstate_refusals(&d, serial_restore_any, &s2, "serial: ", bad, ARRAY_SIZE(bad),
				false) == 0);
	devstate_altered(&d, &c, len + 1, SIZE_MAX, 0);
	CHECK(serial_restore(&s2, &c, err, sizeof(err)) == -EINVAL);
	CHECK(strstr(err, "after the last field") != NULL);
	/* A short message buffer still gets a terminated prefix. */
	devstate_altered(&d, &c, len, SER_IER, 0x10);
	CHECK(serial_restore(&s2, &c, err, 5) == -EINVAL && !strcmp(err, "seri"));
	CHECK(!memcmp(&before, &s2, sizeof(s2)));
	CHECK(f2.irq_calls == 0);
	CHECK(sin8(&s2, SCR) == 0x11 && !(sin8(&s2, LSR) & 0x01));

	/* The intact payload still loads. */
	devstate_cursor(&d, &c);
	CHECK(serial_restore(&s2, &c, err, sizeof(err)) == 0);
	CHECK(f2.level[COM_IRQ] == 1 && sin8(&s2, THR) == 'a');
	devstate_free(&d);
}

/* RTC: everything readable through the ports, index register first. */
static void rtc_observe(struct rtc *r, struct seen *o)
{
	uint8_t v = 0;

	o->n = 0;
	o->full = false;
	rtc_io(r, 1, &v, 1, false); /* the register the restored index selects */
	see(o, v);
	for (unsigned int reg = 0; reg < 0x80; reg++)
		see(o, rtc_rd(r, (uint8_t)reg));
}

static int rtc_snapshot(struct rtc *r, struct devstate *d)
{
	if (devstate_begin(d, VMSTATE_TAG_RTC, RTC_STATE_VERSION))
		return -1;
	rtc_save(r, &d->w);
	return devstate_finish(d);
}

TEST(rtc_state_round_trip)
{
	struct rtc r, r2;
	struct devstate d;
	struct vmstate_cursor c;
	static struct seen a, b;
	char err[128] = "";

	rtc_setup(&r, T_2024_02_29_134556);
	/* The guest sets its clock 5 hours and 2 years back, in binary mode. */
	rtc_wr(&r, 0x0b, 0x86);
	rtc_wr(&r, 0x04, 8);
	rtc_wr(&r, 0x09, 22);
	rtc_wr(&r, 0x0b, 0x06);
	rtc_wr(&r, 0x0a, 0x2f);
	rtc_wr(&r, 0x01, 0x30); /* alarm seconds */
	rtc_wr(&r, 0x40, 0x5a); /* CMOS RAM */
	rtc_wr(&r, 0x7f, 0xa5);
	uint8_t idx = 0x40;
	rtc_io(&r, 0, &idx, 1, true);
	REQUIRE(r.offset != 0);
	REQUIRE(rtc_snapshot(&r, &d) == 0);

	/* Restored an hour later by the host's clock: the guest clock moved on an hour too. */
	rtc_init(&r2);
	r2.now = fixed_now;
	rtc_time += 3600;
	devstate_cursor(&d, &c);
	CHECK(rtc_restore(&r2, &c, err, sizeof(err)) == 0);
	CHECK(r2.offset == r.offset);
	rtc_observe(&r, &a);
	rtc_observe(&r2, &b);
	CHECK(a.b[0] == 0x5a);
	CHECK(seen_eq(&a, &b));
	CHECK(rtc_rd(&r2, 0x04) == 9 && rtc_rd(&r2, 0x09) == 22 && rtc_rd(&r2, 0x02) == 45);
	devstate_free(&d);
}

/* Payload offsets of rtc_save()'s fields. */
enum { RTC_INDEX = 0, RTC_OFFSET = 1, RTC_RAM = 9 };

static int rtc_restore_any(void *dev, struct vmstate_cursor *c, char *err, size_t n)
{
	return rtc_restore(dev, c, err, n);
}

TEST(rtc_state_refused)
{
	struct rtc r, r2, before;
	struct devstate d;
	struct vmstate_cursor c;
	char err[128];
	static const struct devstate_bad bad[] = {
		{ RTC_INDEX, 0x80, "index register 0x80" },
		{ RTC_OFFSET + 7, 0x40, "clock offset" },
		{ RTC_OFFSET + 7, 0xc0, "clock offset" },
		{ RTC_OFFSET + 5, 0x01, "clock offset" }, /* 2^40 s */
		{ RTC_RAM + 0x00, 0x12, "clock register 0x00" },
		{ RTC_RAM + 0x32, 0x20, "clock register 0x32" },
		{ RTC_RAM + 0x0a, 0xa6, "register A" },
		{ RTC_RAM + 0x0c, 0x80, "register C" },
		{ RTC_RAM + 0x0d, 0x00, "register D" },
	};

	rtc_setup(&r, T_2024_02_29_134556);
	rtc_wr(&r, 0x0b, 0x82);
	rtc_wr(&r, 0x04, 0x08);
	rtc_wr(&r, 0x0b, 0x02);
	REQUIRE(rtc_snapshot(&r, &d) == 0);
	size_t len = d.s->len;
	REQUIRE(len == 1 + 8 + 128);

	rtc_setup(&r2, T_2024_02_29_134556);
	rtc_wr(&r2, 0x40, 0x77);
	memcpy(&before, &r2, sizeof(r2));
	CHECK(devstate_refusals(&d, rtc_restore_any, &r2, "rtc: ", bad, ARRAY_SIZE(bad), false) ==
	      0);
	CHECK(!memcmp(&before, &r2, sizeof(r2)));
	CHECK(rtc_rd(&r2, 0x40) == 0x77 && rtc_rd(&r2, 0x04) == 0x13);
	devstate_cursor(&d, &c);
	CHECK(rtc_restore(&r2, &c, err, sizeof(err)) == 0);
	CHECK(rtc_rd(&r2, 0x04) == 0x08 && rtc_rd(&r2, 0x40) == 0);
	devstate_free(&d);
}

#define KREAD (-1)

/* One step of i8042_observe(): a write to port 0/4, or a data read (KREAD). */
static void kstep(struct i8042 *k, const struct fake *f, struct seen *o, struct seen *data,
		  int port, uint8_t val)
{
	if (port == KREAD) {
		uint8_t v = kin(k, 0);
		see(o, v);
		see(data, v);
	} else {
		kout(k, (unsigned int)port, val);
	}
	see(o, kin(k, 4));
	see(o, f->level[KBD_IRQ]);
	see(o, f->level[AUX_IRQ]);
}

/*
 * i8042: status and both lines around every step of a script that uses each piece of
 * state: the half-done controller command, the queued replies, the keyboard's pending
 * argument, its inhibited buffer and the translation's pending break.
 */
static void i8042_observe(struct i8042 *k, const struct fake *f, struct seen *o, struct seen *data)
{
	o->n = 0;
	o->full = false;
	data->n = 0;
	data->full = false;
	see(o, f->level[KBD_IRQ]);
	see(o, f->level[AUX_IRQ]);
	see(o, kin(k, 4));
	kstep(k, f, o, data, 0, 0x42); /* data for the pending 0xd3: an aux byte */
	for (int i = 0; i < 3; i++)    /* the self test's 0x55, the aux byte, nothing */
		kstep(k, f, o, data, KREAD, 0);
	kstep(k, f, o, data, 4, 0xae); /* port enabled: the keys, the first a break code */
	for (int i = 0; i < 2; i++)
		kstep(k, f, o, data, KREAD, 0);
	/* The LED argument: acknowledged, even a byte that alone is a command (echo). */
	kstep(k, f, o, data, 0, 0xee);
	kstep(k, f, o, data, KREAD, 0);
	kstep(k, f, o, data, 4, 0x20); /* configuration byte */
	kstep(k, f, o, data, KREAD, 0);
	kstep(k, f, o, data, 0, 0xf0); /* which scan code set */
	kstep(k, f, o, data, 0, 0x00);
	for (int i = 0; i < 4; i++)
		kstep(k, f, o, data, KREAD, 0);
}

static int i8042_snapshot(struct i8042 *k, struct devstate *d)
{
	if (devstate_begin(d, VMSTATE_TAG_I8042, I8042_STATE_VERSION))
		return -1;
	i8042_save(k, &d->w);
	return devstate_finish(d);
}

/* Drives k into the state the observation script expects. */
static void i8042_busy(struct i8042 *k)
{
	const uint8_t brk[] = { 0xf0 }, keys[] = { 0x1c, 0x32 };

	kout(k, 4, 0x60);
	kout(k, 0, 0x47); /* both interrupts on, translation on */
	kout(k, 0, 0xed); /* LEDs: argument pending */
	CHECK(kin(k, 0) == 0xfa);
	/* Swallowed by the translation: the next byte from the keyboard is a break code. */
	REQUIRE(i8042_key_bytes(k, brk, 1));
	kout(k, 4, 0xaa);		      /* self test: 0x55 queued */
	kout(k, 4, 0xad);		      /* port inhibited */
	REQUIRE(i8042_key_bytes(k, keys, 2)); /* kept in the keyboard */
	kout(k, 4, 0xd3);		      /* waits for its data byte */
}

TEST(i8042_state_round_trip)
{
	struct fake f, f2;
	struct machine m, m2;
	struct i8042 k, k2;
	struct devstate d;
	struct vmstate_cursor c;
	static struct seen a, b, ad, bd;
	char err[128] = "";

	fake_init(&f, &m);
	i8042_init(&k, &m);
	i8042_busy(&k);
	REQUIRE(k.q_len == 1 && k.pending_cmd == 0xd3 && k.kbd.pending == 0xed);
	REQUIRE(k.kbd.keys.len == 2 && k.xlate_break && f.level[KBD_IRQ] == 1);
	REQUIRE(i8042_snapshot(&k, &d) == 0);

	fake_init(&f2, &m2);
	i8042_init(&k2, &m2);
	devstate_cursor(&d, &c);
	CHECK(i8042_restore(&k2, &c, err, sizeof(err)) == 0);
	CHECK(err[0] == 0);
	/* Both lines driven once each, to the restored levels. */
	CHECK(f2.irq_calls == 2 && f2.level[KBD_IRQ] == 1 && f2.level[AUX_IRQ] == 0);
	i8042_observe(&k, &f, &a, &ad);
	i8042_observe(&k2, &f2, &b, &bd);
	CHECK(seen_eq(&a, &b));
	/* The script met the state it was written for (XLATE turns the set's 02 into 41). */
	const uint8_t want[] = { 0x55, 0x42, 0x00, 0x9e, 0x30, 0xfa, 0x47, 0xfa, 0xfa, 0x41, 0x00 };
	CHECK(bytes_eq(bd.b, bd.n, want, sizeof(want)));
	CHECK(seen_eq(&ad, &bd));
	devstate_free(&d);
}

/* Saves k and loads it into a fresh controller k2 (with its own fake machine). */
static int i8042_copy(struct i8042 *k, struct i8042 *k2, struct fake *f2, struct machine *m2)
{
	struct devstate d;
	struct vmstate_cursor c;
	char err[128];
	int r = -1;

	fake_init(f2, m2);
	i8042_init(k2, m2);
	if (!i8042_snapshot(k, &d)) {
		devstate_cursor(&d, &c);
		r = i8042_restore(k2, &c, err, sizeof(err));
	}
	devstate_free(&d);
	return r;
}

TEST(i8042_state_keyboard_modes)
{
	struct fake f, f2;
	struct machine m, m2;
	struct i8042 k, k2;
	uint8_t a[32], b[32];
	const uint8_t key[] = { 0x1c };

	/* A keyboard in set 1, its answer to identify waiting behind the controller's reply. */
	fake_init(&f, &m);
	i8042_init(&k, &m);
	kout(&k, 0, 0xf0);
	kout(&k, 0, 0x01);
	CHECK(kin(&k, 0) == 0xfa && kin(&k, 0) == 0xfa);
	kout(&k, 4, 0xaa);
	kout(&k, 0, 0xf2);
	REQUIRE(k.q_len == 1 && k.kbd.reply.len == 3 && k.kbd.set == 1);
	REQUIRE(i8042_copy(&k, &k2, &f2, &m2) == 0);
	CHECK(f2.level[KBD_IRQ] == 1);
	unsigned int na = kdrain(&k, a, sizeof(a)), nb = kdrain(&k2, b, sizeof(b));
	const uint8_t want[] = { 0x55, 0xfa, 0xab, 0x41 };
	CHECK(bytes_eq(a, na, want, sizeof(want)) && bytes_eq(b, nb, want, sizeof(want)));
	CHECK(f.level[KBD_IRQ] == 0 && f2.level[KBD_IRQ] == 0);
	/* Set 1 from the keyboard, translated again by the controller: A comes out as 03. */
	CHECK(i8042_key_bytes(&k, key, 1) && i8042_key_bytes(&k2, key, 1));
	CHECK(kin(&k, 0) == 0x03 && kin(&k2, 0) == 0x03);

	/* A keyboard that stopped scanning stays stopped. */
	kout(&k, 0, 0xf5);
	CHECK(kin(&k, 0) == 0xfa);
	REQUIRE(i8042_copy(&k, &k2, &f2, &m2) == 0);
	CHECK(f2.irq_calls == 2 && f2.level[KBD_IRQ] == 0 && f2.level[AUX_IRQ] == 0);
	CHECK(!i8042_key_bytes(&k, key, 1) && !i8042_key_bytes(&k2, key, 1));
	CHECK(!(kin(&k2, 4) & 0x01));
}

/* Payload offsets of i8042_save()'s fields. */
enum {
	KB_STATUS = 1,
	KB_PENDING = 2,
	KB_XLATE = 3,
	KB_KPENDING = 4,
	KB_KENABLED = 5,
	KB_KSET = 6,
	KB_QLEN = 7,
	KB_REPLYLEN = 8,
	KB_KEYSLEN = 9,
	KB_QUEUE = 10,
};

static int i8042_restore_any(void *dev, struct vmstate_cursor *c, char *err, size_t n)
{
	return i8042_restore(dev, c, err, n);
}

TEST(i8042_state_refused)
{
	struct fake f, f2;
	struct machine m, m2;
	struct i8042 k, k2, before;
	struct devstate d;
	struct vmstate_cursor c;
	char err[128];
	static const struct devstate_bad bad[] = {
		{ KB_STATUS, 0x00, "status 0x00" },
		{ KB_STATUS, 0x54, "status 0x54" },
		{ KB_PENDING, 0x61, "pending command 0x61" },
		{ KB_XLATE, 2, "translation break flag" },
		{ KB_KPENDING, 0xf4, "keyboard pending command 0xf4" },
		{ KB_KENABLED, 0xff, "keyboard enabled flag" },
		{ KB_KSET, 3, "scan code set 3" },
		{ KB_KSET, 0, "scan code set 0" },
		{ KB_QLEN, 33, "output queue length 33 > 32" },
		{ KB_REPLYLEN, 17, "reply buffer length 17 > 16" },
		{ KB_KEYSLEN, 200, "key buffer length 200 > 16" },
		{ KB_QUEUE + 1, 2, "output queue byte 0: aux flag" },
	};

	fake_init(&f, &m);
	i8042_init(&k, &m);
	i8042_busy(&k);
	REQUIRE(i8042_snapshot(&k, &d) == 0);
	size_t len = d.s->len;
	REQUIRE(len == KB_QUEUE + 2 * 1 + 0 + 2); /* one queued byte, two keys */

	fake_init(&f2, &m2);
	i8042_init(&k2, &m2);
	kout(&k2, 4, 0xaa); /* something to lose if a refusal touched the controller */
	f2.irq_calls = 0;
	memcpy(&before, &k2, sizeof(k2));
	CHECK(devstate_refusals(&d, i8042_restore_any, &k2, "i8042: ", bad, ARRAY_SIZE(bad),
				false) == 0);
	CHECK(!memcmp(&before, &k2, sizeof(k2)));
	CHECK(f2.irq_calls == 0);
	CHECK(kin(&k2, 0) == 0x55 && !(kin(&k2, 4) & 0x01));

	devstate_cursor(&d, &c);
	CHECK(i8042_restore(&k2, &c, err, sizeof(err)) == 0);
	CHECK(f2.level[KBD_IRQ] == 1 && kin(&k2, 0) == 0x55);
	devstate_free(&d);
}
