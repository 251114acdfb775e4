/*
 * i8042 PS/2 controller. The reset line (command 0xfe, or output-port bit 0
 * cleared) is how tiny guests and `reboot=k` reboot a PC, so it matters most; the
 * rest answers Linux's probe: self tests, the configuration byte and the aux loop.
 * There is no mouse: commands for the aux device are refused (0xfe).
 */
#include "devices/i8042.h"

#include <string.h>

#define ST_OBF 0x01
#define ST_SYS 0x04
#define ST_CMD 0x08
#define ST_UNLOCKED 0x10 /* keyboard not inhibited by the keylock */
#define ST_AUXDATA 0x20

#define CTR_KBDINT 0x01
#define CTR_AUXINT 0x02
#define CTR_KBDDIS 0x10
#define CTR_AUXDIS 0x20

#define IRQ_KBD 1
#define IRQ_AUX 12

void i8042_init(struct i8042 *k, const struct machine *m)
{
	memset(k, 0, sizeof(*k));
	pthread_mutex_init(&k->lock, NULL);
	k->machine = m;
	k->ctr = CTR_KBDINT | CTR_AUXDIS | 0x04; /* keyboard interrupts on, SYS flag, aux off */
	k->status = ST_SYS | ST_UNLOCKED;
}

static void push(struct i8042 *k, uint8_t b, bool aux)
{
	if (k->q_len == I8042_QUEUE)
		return;
	unsigned int i = (k->q_head + k->q_len++) % I8042_QUEUE;
	k->q[i].byte = b;
	k->q[i].aux = aux;
}

static void update(struct i8042 *k)
{
	int kbd = 0, aux = 0;

	k->status &= (uint8_t) ~(ST_OBF | ST_AUXDATA);
	if (k->q_len) {
		k->status |= ST_OBF;
		if (k->q[k->q_head].aux) {
			k->status |= ST_AUXDATA;
			aux = !!(k->ctr & CTR_AUXINT);
		} else {
			kbd = !!(k->ctr & CTR_KBDINT);
		}
	}
	if (kbd != k->irq1_level) {
		k->irq1_level = kbd;
		machine_set_irq(k->machine, IRQ_KBD, kbd);
	}
	if (aux != k->irq12_level) {
		k->irq12_level = aux;
		machine_set_irq(k->machine, IRQ_AUX, aux);
	}
}

static void reset_machine(struct i8042 *k)
{
	machine_stop(k->machine, MACHINE_RESET, 0);
}

static void command(struct i8042 *k, uint8_t c)
{
	switch (c) {
	case 0x20: /* read configuration byte */
		push(k, k->ctr, false);
		break;
	case 0x60: /* write configuration byte: data follows */
	case 0xd1: /* write output port */
	case 0xd2: /* write keyboard output buffer */
	case 0xd3: /* write aux output buffer (loop) */
	case 0xd4: /* write to aux device */
		k->pending_cmd = c;
		break;
	case 0xa7:
		k->ctr |= CTR_AUXDIS;
		break;
	case 0xa8:
		k->ctr &= (uint8_t)~CTR_AUXDIS;
		break;
	case 0xa9: /* aux interface test: 0 = ok */
	case 0xab: /* keyboard interface test */
		push(k, 0x00, false);
		break;
	case 0xaa: /* controller self test */
		push(k, 0x55, false);
		break;
	case 0xad:
		k->ctr |= CTR_KBDDIS;
		break;
	case 0xae:
		k->ctr &= (uint8_t)~CTR_KBDDIS;
		break;
	case 0xc0: /* read input port */
		push(k, 0x00, false);
		break;
	case 0xd0: /* read output port: bit 0 = not in reset, bit 1 = A20 */
		push(k, 0x03, false);
		break;
	default:
		/* 0xf0..0xff pulse output lines; a low bit 0 pulses the CPU reset line. */
		if (c >= 0xf0 && !(c & 1))
			reset_machine(k);
		break;
	}
}

static void keyboard_command(struct i8042 *k, uint8_t c)
{
	if (k->kbd_pending) {
		k->kbd_pending = 0;
		push(k, 0xfa, false);
		return;
	}
	switch (c) {
	case 0xff: /* reset: ack, then self-test passed */
		push(k, 0xfa, false);
		push(k, 0xaa, false);
		break;
	case 0xf2: /* identify: an MF2 keyboard */
		push(k, 0xfa, false);
		push(k, 0xab, false);
		push(k, 0x83, false);
		break;
	case 0xee: /* echo */
		push(k, 0xee, false);
		break;
	case 0xed: /* LEDs and typematic rate take an argument */
	case 0xf3:
	case 0xf0:
		k->kbd_pending = c;
		push(k, 0xfa, false);
		break;
	default:
		push(k, 0xfa, false);
		break;
	}
}

static void data_write(struct i8042 *k, uint8_t v)
{
	uint8_t c = k->pending_cmd;

	k->pending_cmd = 0;
	switch (c) {
	case 0x60:
		k->ctr = v;
		break;
	case 0xd1:
		if (!(v & 1))
			reset_machine(k);
		break;
	case 0xd2:
		push(k, v, false);
		break;
	case 0xd3:
		push(k, v, true);
		break;
	case 0xd4:
		push(k, 0xfe, true); /* no mouse behind the aux port */
		break;
	default:
		keyboard_command(k, v);
		break;
	}
}

void i8042_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct i8042 *k = opaque;

	pthread_mutex_lock(&k->lock);
	if (offset == 0 && is_write) {
		k->status &= (uint8_t)~ST_CMD;
		data_write(k, data[0]);
	} else if (offset == 0) {
		memset(data, 0, len);
		if (k->q_len) {
			data[0] = k->q[k->q_head].byte;
			k->q_head = (k->q_head + 1) % I8042_QUEUE;
			k->q_len--;
		}
	} else if (offset == 4 && is_write) {
		k->status |= ST_CMD;
		command(k, data[0]);
	} else if (offset == 4) {
		memset(data, 0, len);
		data[0] = k->status;
	} else if (!is_write) {
		memset(data, 0xff, len);
	}
	update(k);
	pthread_mutex_unlock(&k->lock);
}

void i8042_key_bytes(struct i8042 *k, const uint8_t *codes, unsigned int n)
{
	pthread_mutex_lock(&k->lock);
	for (unsigned int i = 0; i < n; i++)
		push(k, codes[i], false);
	update(k);
	pthread_mutex_unlock(&k->lock);
}
