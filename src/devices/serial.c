/*
 * 16550A UART. Transmission is instantaneous (bytes go straight to the host fd), so
 * THR is always empty; the THRE interrupt follows the datasheet: raised when THR
 * empties or when the guest enables it, cleared by reading IIR or writing THR.
 */
#include "devices/serial.h"
#include "core/util.h"
#include "vmstate/vmstate.h"

#include <errno.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

enum { RBR_THR = 0, IER = 1, IIR_FCR = 2, LCR = 3, MCR = 4, LSR = 5, MSR = 6, SCR = 7 };

#define IER_RDA 0x01
#define IER_THRE 0x02
#define IER_MASK 0x0f /* the bits a 16550 keeps */
#define IIR_NONE 0x01
#define IIR_THRE 0x02
#define IIR_RDA 0x04
#define IIR_FIFO 0xc0
#define LCR_DLAB 0x80
#define MCR_LOOP 0x10
#define MCR_MASK 0x1f
#define FCR_MASK 0xc9 /* FIFO enable, DMA mode, trigger level: the rest are actions */
#define LSR_DR 0x01
#define LSR_THRE 0x20
#define LSR_TEMT 0x40

void serial_init(struct serial *s, const struct machine *m, unsigned int irq, int out_fd)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->lock, NULL);
	s->machine = m;
	s->irq = irq;
	s->out_fd = out_fd;
	s->flush_timer = -1;
	s->dll = 0x0c; /* 9600 baud, as after a BIOS */
	s->mcr = 0x08; /* OUT2 */
}

static uint8_t iir(const struct serial *s)
{
	uint8_t fifo = (s->fcr & 1) ? IIR_FIFO : 0;

	if ((s->ier & IER_RDA) && s->rx_len)
		return IIR_RDA | fifo;
	if ((s->ier & IER_THRE) && s->thre_pending)
		return IIR_THRE | fifo;
	return IIR_NONE | fifo;
}

static void update_irq(struct serial *s)
{
	int level = !(iir(s) & IIR_NONE);

	if (level != s->irq_level) {
		s->irq_level = level;
		machine_set_irq(s->machine, s->irq, level);
	}
}

static void rx_push(struct serial *s, uint8_t c)
{
	if (s->rx_len == SERIAL_RX_FIFO)
		return;
	s->rx[(s->rx_head + s->rx_len) % SERIAL_RX_FIFO] = c;
	s->rx_len++;
}

static uint8_t rx_pop(struct serial *s)
{
	if (!s->rx_len)
		return 0;
	uint8_t c = s->rx[s->rx_head];
	s->rx_head = (s->rx_head + 1) % SERIAL_RX_FIFO;
	s->rx_len--;
	return c;
}

/* Called with s->lock held. A reader that is gone or full loses the bytes, as before. */
static void write_out(struct serial *s)
{
	size_t done = 0;

	while (done < s->out_len) {
		ssize_t r = write(s->out_fd, s->out + done, s->out_len - done);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		done += (size_t)r;
	}
	s->out_len = 0;
}

static void transmit(struct serial *s, uint8_t c)
{
	if (s->mcr & MCR_LOOP) {
		rx_push(s, c);
	} else if (s->out_fd >= 0) {
		s->out[s->out_len++] = c;
		if (s->flush_timer < 0 || c == '\n' || s->out_len == sizeof(s->out)) {
			write_out(s);
		} else if (s->out_len == 1) {
			struct itimerspec its = { .it_value = { 0, (long)SERIAL_FLUSH_NS } };
			/* Unarmed, the byte would wait for the next newline: write it now. */
			if (timerfd_settime(s->flush_timer, 0, &its, NULL) < 0)
				write_out(s);
		}
	}
	s->thre_pending = true;
}

void serial_set_flush_timer(struct serial *s, int timerfd)
{
	pthread_mutex_lock(&s->lock);
	s->flush_timer = timerfd;
	pthread_mutex_unlock(&s->lock);
}

void serial_flush(struct serial *s)
{
	pthread_mutex_lock(&s->lock);
	if (s->out_len)
		write_out(s);
	pthread_mutex_unlock(&s->lock);
}

static uint8_t msr(const struct serial *s)
{
	if (!(s->mcr & MCR_LOOP))
		return 0xb0; /* DCD, DSR, CTS: a terminal is always there */
	/* Loopback wires the modem outputs back to the inputs (the 8250 probe checks this). */
	return (uint8_t)(((s->mcr & 0x02) << 3) | ((s->mcr & 0x01) << 5) | ((s->mcr & 0x04) << 4) |
			 ((s->mcr & 0x08) << 4));
}

static uint8_t reg_read(struct serial *s, unsigned int reg)
{
	uint8_t v;

	switch (reg) {
	case RBR_THR:
		return (s->lcr & LCR_DLAB) ? s->dll : rx_pop(s);
	case IER:
		return (s->lcr & LCR_DLAB) ? s->dlm : s->ier;
	case IIR_FCR:
		v = iir(s);
		if ((v & 0x0f) == IIR_THRE)
			s->thre_pending = false;
		return v;
	case LCR:
		return s->lcr;
	case MCR:
		return s->mcr;
	case LSR:
		return LSR_THRE | LSR_TEMT | (s->rx_len ? LSR_DR : 0);
	case MSR:
		return msr(s);
	default:
		return s->scr;
	}
}

static void reg_write(struct serial *s, unsigned int reg, uint8_t v)
{
	switch (reg) {
	case RBR_THR:
		if (s->lcr & LCR_DLAB)
			s->dll = v;
		else
			transmit(s, v);
		break;
	case IER:
		if (s->lcr & LCR_DLAB) {
			s->dlm = v;
		} else {
			/* Enabling THRE with THR empty raises it at once, as on a real 16550. */
			if ((v & IER_THRE) && !(s->ier & IER_THRE))
				s->thre_pending = true;
			s->ier = v & IER_MASK;
		}
		break;
	case IIR_FCR:
		if (v & 0x02)
			s->rx_len = 0;
		s->fcr = v & FCR_MASK;
		break;
	case LCR:
		s->lcr = v;
		break;
	case MCR:
		s->mcr = v & MCR_MASK;
		break;
	case SCR:
		s->scr = v;
		break;
	default: /* LSR and MSR are read-only */
		break;
	}
}

void serial_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct serial *s = opaque;

	pthread_mutex_lock(&s->lock);
	/* The registers are byte-wide; a wider access touches only the first. */
	if (is_write) {
		reg_write(s, (unsigned int)offset & 7, data[0]);
	} else {
		memset(data, 0, len);
		data[0] = reg_read(s, (unsigned int)offset & 7);
	}
	update_irq(s);
	pthread_mutex_unlock(&s->lock);
}

size_t serial_receive(struct serial *s, const uint8_t *buf, size_t len)
{
	size_t n = 0;

	pthread_mutex_lock(&s->lock);
	while (n < len && s->rx_len < SERIAL_RX_FIFO)
		rx_push(s, buf[n++]);
	update_irq(s);
	pthread_mutex_unlock(&s->lock);
	return n;
}

/* ---- snapshot state ---- */

int serial_save(struct serial *s, struct vmstate_writer *w)
{
	pthread_mutex_lock(&s->lock);
	vmstate_put_u8(w, s->ier);
	vmstate_put_u8(w, s->lcr);
	vmstate_put_u8(w, s->mcr);
	vmstate_put_u8(w, s->scr);
	vmstate_put_u8(w, s->dll);
	vmstate_put_u8(w, s->dlm);
	vmstate_put_u8(w, s->fcr);
	vmstate_put_bool(w, s->thre_pending);
	/* Oldest first, so the ring's head position is not part of the format. */
	vmstate_put_u32(w, (uint32_t)s->rx_len);
	for (size_t i = 0; i < s->rx_len; i++)
		vmstate_put_u8(w, s->rx[(s->rx_head + i) % SERIAL_RX_FIFO]);
	pthread_mutex_unlock(&s->lock);
	return 0;
}

int serial_restore(struct serial *s, struct vmstate_cursor *c, char *err, size_t errlen)
{
	uint8_t ier, lcr, mcr, scr, dll, dlm, fcr, thre;
	uint32_t rx_len;
	uint8_t rx[SERIAL_RX_FIFO];

	/* Everything lands in locals first: a refused payload leaves the UART untouched. */
	ier = vmstate_get_u8(c);
	lcr = vmstate_get_u8(c);
	mcr = vmstate_get_u8(c);
	scr = vmstate_get_u8(c);
	dll = vmstate_get_u8(c);
	dlm = vmstate_get_u8(c);
	fcr = vmstate_get_u8(c);
	thre = vmstate_get_u8(c); /* read as a byte to name the field if it is not 0/1 */
	rx_len = vmstate_get_u32(c);
	if (c->error)
		return vmstate_cursor_size_error(c, "serial", err, errlen);
	/* The guest cannot set bits outside these masks, so a file that has them is bad. */
	if (ier & ~IER_MASK)
		return fail_msg(err, errlen, -EINVAL, "serial: IER 0x%02x has bits outside 0x%02x",
				ier, IER_MASK);
	if (mcr & ~MCR_MASK)
		return fail_msg(err, errlen, -EINVAL, "serial: MCR 0x%02x has bits outside 0x%02x",
				mcr, MCR_MASK);
	if (fcr & ~FCR_MASK)
		return fail_msg(err, errlen, -EINVAL, "serial: FCR 0x%02x has bits outside 0x%02x",
				fcr, FCR_MASK);
	if (thre > 1)
		return fail_msg(err, errlen, -EINVAL, "serial: THRE pending flag is %u, not 0 or 1",
				thre);
	if (rx_len > SERIAL_RX_FIFO)
		return fail_msg(err, errlen, -EINVAL, "serial: rx FIFO length %u > %u", rx_len,
				SERIAL_RX_FIFO);
	vmstate_get(c, rx, rx_len);
	if (vmstate_cursor_done(c))
		return vmstate_cursor_size_error(c, "serial", err, errlen);

	pthread_mutex_lock(&s->lock);
	s->ier = ier;
	s->lcr = lcr;
	s->mcr = mcr;
	s->scr = scr;
	s->dll = dll;
	s->dlm = dlm;
	s->fcr = fcr;
	s->thre_pending = thre;
	memcpy(s->rx, rx, rx_len);
	s->rx_head = 0;
	s->rx_len = rx_len;
	/*
	 * The line's level is not saved: it follows from the registers. -1 matches neither
	 * level, so update_irq() drives the line either way, and the interrupt controller
	 * (restored before the devices) sees this device's level again.
	 */
	s->irq_level = -1;
	update_irq(s);
	pthread_mutex_unlock(&s->lock);
	return 0;
}
