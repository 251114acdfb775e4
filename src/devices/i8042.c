/*
 * i8042 PS/2 controller. The reset line (command 0xfe, or output-port bit 0
 * cleared) is how tiny guests and `reboot=k` reboot a PC, so it matters most; the
 * rest answers Linux's probe: self tests, the configuration byte and the aux loop.
 * There is no mouse: commands for the aux device are refused (0xfe).
 *
 * Behind the first port sits an MF2 keyboard with its own buffer. Its bytes reach the
 * controller's output buffer one at a time, only while the guest has not inhibited the
 * port (configuration bit 4), and after the controller's own replies. With the XLATE
 * bit (6) set, as PC firmware leaves it and Linux keeps it, the controller translates
 * the keyboard's set-2 bytes to set 1 on the way, so a guest reads set-1 codes.
 */
#include "devices/i8042.h"
#include "core/util.h"
#include "vmstate/vmstate.h"

#include <errno.h>
#include <string.h>

#define ST_OBF 0x01
#define ST_SYS 0x04
#define ST_CMD 0x08
#define ST_UNLOCKED 0x10 /* keyboard not inhibited by the keylock */
#define ST_AUXDATA 0x20

#define CTR_KBDINT 0x01
#define CTR_AUXINT 0x02
#define CTR_SYS 0x04
#define CTR_KBDDIS 0x10
#define CTR_AUXDIS 0x20
#define CTR_XLATE 0x40

#define IRQ_KBD 1
#define IRQ_AUX 12

#define KBD_ACK 0xfa
#define SET2_BREAK 0xf0

/*
 * Set-2 code -> set-1 code, for the keys of a 102-key keyboard (extended keys share
 * the code after their 0xe0 prefix with a base key: Delete is e0 71 -> e0 53) plus the
 * Windows, power and Japanese keys. 0 = no entry: the byte passes unchanged.
 */
static const uint8_t set2_to_set1[0x80] = {
	[0x01] = 0x43, /* F9 */
	[0x02] = 0x41, /* (F7 on some keyboards; also the "set 2" answer to 0xf0 0x00) */
	[0x03] = 0x3f, /* F5 */
	[0x04] = 0x3d, /* F3 */
	[0x05] = 0x3b, /* F1 */
	[0x06] = 0x3c, /* F2 */
	[0x07] = 0x58, /* F12 */
	[0x09] = 0x44, /* F10 */
	[0x0a] = 0x42, /* F8 */
	[0x0b] = 0x40, /* F6 */
	[0x0c] = 0x3e, /* F4 */
	[0x0d] = 0x0f, /* Tab */
	[0x0e] = 0x29, /* ` */
	[0x11] = 0x38, /* Left Alt (e0: Right Alt) */
	[0x12] = 0x2a, /* Left Shift */
	[0x13] = 0x70, /* Katakana/Hiragana */
	[0x14] = 0x1d, /* Left Ctrl (e0: Right Ctrl) */
	[0x15] = 0x10, /* Q */
	[0x16] = 0x02, /* 1 */
	[0x1a] = 0x2c, /* Z */
	[0x1b] = 0x1f, /* S */
	[0x1c] = 0x1e, /* A */
	[0x1d] = 0x11, /* W */
	[0x1e] = 0x03, /* 2 */
	[0x1f] = 0x5b, /* e0: Left Windows */
	[0x21] = 0x2e, /* C */
	[0x22] = 0x2d, /* X */
	[0x23] = 0x20, /* D */
	[0x24] = 0x12, /* E */
	[0x25] = 0x05, /* 4 */
	[0x26] = 0x04, /* 3 */
	[0x27] = 0x5c, /* e0: Right Windows */
	[0x29] = 0x39, /* Space */
	[0x2a] = 0x2f, /* V */
	[0x2b] = 0x21, /* F */
	[0x2c] = 0x14, /* T */
	[0x2d] = 0x13, /* R */
	[0x2e] = 0x06, /* 5 */
	[0x2f] = 0x5d, /* e0: Menu */
	[0x31] = 0x31, /* N */
	[0x32] = 0x30, /* B */
	[0x33] = 0x23, /* H */
	[0x34] = 0x22, /* G */
	[0x35] = 0x15, /* Y */
	[0x36] = 0x07, /* 6 */
	[0x37] = 0x5e, /* e0: Power */
	[0x3a] = 0x32, /* M */
	[0x3b] = 0x24, /* J */
	[0x3c] = 0x16, /* U */
	[0x3d] = 0x08, /* 7 */
	[0x3e] = 0x09, /* 8 */
	[0x3f] = 0x5f, /* e0: Sleep */
	[0x41] = 0x33, /* , */
	[0x42] = 0x25, /* K */
	[0x43] = 0x17, /* I */
	[0x44] = 0x18, /* O */
	[0x45] = 0x0b, /* 0 */
	[0x46] = 0x0a, /* 9 */
	[0x49] = 0x34, /* . */
	[0x4a] = 0x35, /* / (e0: keypad /) */
	[0x4b] = 0x26, /* L */
	[0x4c] = 0x27, /* ; */
	[0x4d] = 0x19, /* P */
	[0x4e] = 0x0c, /* - */
	[0x51] = 0x73, /* Ro */
	[0x52] = 0x28, /* ' */
	[0x54] = 0x1a, /* [ */
	[0x55] = 0x0d, /* = */
	[0x58] = 0x3a, /* Caps Lock */
	[0x59] = 0x36, /* Right Shift */
	[0x5a] = 0x1c, /* Enter (e0: keypad Enter) */
	[0x5b] = 0x1b, /* ] */
	[0x5d] = 0x2b, /* backslash */
	[0x5e] = 0x63, /* e0: Wake */
	[0x61] = 0x56, /* the 102nd key */
	[0x64] = 0x79, /* Henkan */
	[0x66] = 0x0e, /* Backspace */
	[0x67] = 0x7b, /* Muhenkan */
	[0x69] = 0x4f, /* keypad 1 (e0: End) */
	[0x6a] = 0x7d, /* Yen */
	[0x6b] = 0x4b, /* keypad 4 (e0: Left) */
	[0x6c] = 0x47, /* keypad 7 (e0: Home) */
	[0x70] = 0x52, /* keypad 0 (e0: Insert) */
	[0x71] = 0x53, /* keypad . (e0: Delete) */
	[0x72] = 0x50, /* keypad 2 (e0: Down) */
	[0x73] = 0x4c, /* keypad 5 */
	[0x74] = 0x4d, /* keypad 6 (e0: Right) */
	[0x75] = 0x48, /* keypad 8 (e0: Up) */
	[0x76] = 0x01, /* Esc */
	[0x77] = 0x45, /* Num Lock */
	[0x78] = 0x57, /* F11 */
	[0x79] = 0x4e, /* keypad + */
	[0x7a] = 0x51, /* keypad 3 (e0: Page Down) */
	[0x7b] = 0x4a, /* keypad - */
	[0x7c] = 0x37, /* keypad * (e0: Print Screen) */
	[0x7d] = 0x49, /* keypad 9 (e0: Page Up) */
	[0x7e] = 0x46, /* Scroll Lock */
};

static uint8_t to_set1(uint8_t c)
{
	if (c == 0x00) /* key detection error / overrun */
		return 0xff;
	if (c == 0x83) /* F7, the one key whose set-2 code has bit 7 set */
		return 0x41;
	if (c == 0x84) /* Alt+SysRq */
		return 0x54;
	if (c < 0x80 && set2_to_set1[c])
		return set2_to_set1[c];
	return c; /* prefixes, replies (0xfa, 0xaa, 0xee, ...) and keys without an entry */
}

/*
 * One set-2 byte to set 1: an 0xf0 prefix produces nothing and makes the next code a
 * break code (bit 7 set). Returns false when nothing comes out.
 */
static bool translate(bool *brk, uint8_t in, uint8_t *out)
{
	if (in == SET2_BREAK) {
		*brk = true;
		return false;
	}
	*out = to_set1(in);
	if (*brk)
		*out |= 0x80;
	*brk = false;
	return true;
}

static bool fifo_put(struct i8042_fifo *f, uint8_t b)
{
	if (f->len == I8042_KBD_QUEUE)
		return false;
	f->b[(f->head + f->len++) % I8042_KBD_QUEUE] = b;
	return true;
}

static uint8_t fifo_get(struct i8042_fifo *f)
{
	uint8_t b = f->b[f->head];

	f->head = (f->head + 1) % I8042_KBD_QUEUE;
	f->len--;
	return b;
}

static void kbd_reset_state(struct i8042 *k)
{
	k->kbd.pending = 0;
	k->kbd.enabled = true;
	k->kbd.set = 2;
	k->kbd.keys.len = 0;
	k->kbd.reply.len = 0;
}

void i8042_init(struct i8042 *k, const struct machine *m)
{
	memset(k, 0, sizeof(*k));
	pthread_mutex_init(&k->lock, NULL);
	k->machine = m;
	/* As PC firmware leaves it: keyboard interrupts and translation on, aux off. */
	k->ctr = CTR_KBDINT | CTR_SYS | CTR_AUXDIS | CTR_XLATE;
	k->status = ST_SYS | ST_UNLOCKED;
	kbd_reset_state(k);
}

static void push(struct i8042 *k, uint8_t b, bool aux)
{
	if (k->q_len == I8042_QUEUE)
		return;
	unsigned int i = (k->q_head + k->q_len++) % I8042_QUEUE;
	k->q[i].byte = b;
	k->q[i].aux = aux;
}

/*
 * Keyboard -> controller: while the output buffer is empty and the port is not
 * inhibited, the keyboard sends its next byte (a command's answer first), which the
 * controller translates if XLATE is set. A lone 0xf0 is swallowed by translation.
 */
static void pump(struct i8042 *k)
{
	while (!k->q_len && !(k->ctr & CTR_KBDDIS)) {
		struct i8042_fifo *f = k->kbd.reply.len ? &k->kbd.reply : &k->kbd.keys;
		uint8_t b;

		if (!f->len)
			return;
		b = fifo_get(f);
		if (k->ctr & CTR_XLATE) {
			if (!translate(&k->xlate_break, b, &b))
				continue;
		} else {
			k->xlate_break = false;
		}
		push(k, b, false);
	}
}

/*
 * Sets OBF and the interrupt lines from the head of the output buffer. The lines are
 * edge-triggered (ISA), and Linux takes one byte per interrupt: after a read with more
 * bytes waiting (pulse), the line drops and rises again so the next byte interrupts too.
 */
static void update(struct i8042 *k, bool pulse)
{
	int kbd = 0, aux = 0;

	pump(k);
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
	if (pulse && kbd && k->irq1_level) {
		k->irq1_level = 0;
		machine_set_irq(k->machine, IRQ_KBD, 0);
	}
	if (pulse && aux && k->irq12_level) {
		k->irq12_level = 0;
		machine_set_irq(k->machine, IRQ_AUX, 0);
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

static void kbd_reply(struct i8042 *k, uint8_t b)
{
	fifo_put(&k->kbd.reply, b);
}

static void kbd_argument(struct i8042 *k, uint8_t cmd, uint8_t v)
{
	if (cmd == 0xf0 && v == 0) { /* which scan code set */
		kbd_reply(k, KBD_ACK);
		kbd_reply(k, k->kbd.set);
		return;
	}
	/* Set 3 is not offered: the keyboard stays in its set, and says so when asked. */
	if (cmd == 0xf0 && (v == 1 || v == 2))
		k->kbd.set = v;
	kbd_reply(k, KBD_ACK);
}

static void keyboard_command(struct i8042 *k, uint8_t c)
{
	if (k->kbd.pending) {
		uint8_t cmd = k->kbd.pending;

		k->kbd.pending = 0;
		kbd_argument(k, cmd, c);
		return;
	}
	switch (c) {
	case 0xff: /* reset: ack, then self-test passed */
		kbd_reset_state(k);
		kbd_reply(k, KBD_ACK);
		kbd_reply(k, 0xaa);
		break;
	case 0xf2: /* identify: an MF2 keyboard (the controller translates 0x83 to 0x41) */
		kbd_reply(k, KBD_ACK);
		kbd_reply(k, 0xab);
		kbd_reply(k, 0x83);
		break;
	case 0xee: /* echo */
		kbd_reply(k, 0xee);
		break;
	case 0xed: /* LEDs, typematic rate and scan code set take an argument */
	case 0xf3:
	case 0xf0:
		k->kbd.pending = c;
		kbd_reply(k, KBD_ACK);
		break;
	case 0xf4: /* enable scanning; the buffer is cleared */
		k->kbd.keys.len = 0;
		k->kbd.enabled = true;
		kbd_reply(k, KBD_ACK);
		break;
	case 0xf5: /* disable scanning and load the defaults */
		k->kbd.keys.len = 0;
		k->kbd.enabled = false;
		k->kbd.set = 2;
		kbd_reply(k, KBD_ACK);
		break;
	case 0xf6: /* load the defaults */
		k->kbd.set = 2;
		kbd_reply(k, KBD_ACK);
		break;
	default:
		kbd_reply(k, KBD_ACK);
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
		/* Sending to the keyboard releases its clock: the port is no longer inhibited. */
		k->ctr &= (uint8_t)~CTR_KBDDIS;
		keyboard_command(k, v);
		break;
	}
}

void i8042_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct i8042 *k = opaque;
	bool pulse = false;

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
			pulse = true;
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
	update(k, pulse);
	pthread_mutex_unlock(&k->lock);
}

bool i8042_key_bytes(struct i8042 *k, const uint8_t *set2, unsigned int n)
{
	uint8_t out[I8042_KBD_QUEUE];
	unsigned int m = 0;
	bool ok = false, brk = false;

	pthread_mutex_lock(&k->lock);
	if (!k->kbd.enabled) /* a disabled keyboard does not scan: the keys are lost */
		goto out;
	/* In set 1 the keyboard itself sends what the controller's translation would make. */
	for (unsigned int i = 0; i < n; i++) {
		uint8_t b = set2[i];

		if (k->kbd.set == 1 && !translate(&brk, b, &b))
			continue;
		if (m == I8042_KBD_QUEUE)
			goto out;
		out[m++] = b;
	}
	if (m > I8042_KBD_QUEUE - k->kbd.keys.len)
		goto out;
	for (unsigned int i = 0; i < m; i++)
		fifo_put(&k->kbd.keys, out[i]);
	ok = true;
	update(k, false);
out:
	pthread_mutex_unlock(&k->lock);
	return ok;
}

void i8042_send_ctrl_alt_del(struct i8042 *k)
{
	/* Set 2: Left Ctrl 14, Left Alt 11, Delete e0 71; releases with the f0 prefix. */
	static const uint8_t seq[] = {
		0x14, 0x11, 0xe0, 0x71, 0xe0, 0xf0, 0x71, 0xf0, 0x11, 0xf0, 0x14,
	};

	i8042_key_bytes(k, seq, sizeof(seq));
}

/* ---- snapshot state ---- */

static void put_fifo(struct vmstate_writer *w, const struct i8042_fifo *f)
{
	for (unsigned int i = 0; i < f->len; i++)
		vmstate_put_u8(w, f->b[(f->head + i) % I8042_KBD_QUEUE]);
}

int i8042_save(struct i8042 *k, struct vmstate_writer *w)
{
	pthread_mutex_lock(&k->lock);
	/* Fixed-size fields first, so a reader checks every length before any byte array. */
	vmstate_put_u8(w, k->ctr);
	vmstate_put_u8(w, k->status);
	vmstate_put_u8(w, k->pending_cmd);
	vmstate_put_bool(w, k->xlate_break);
	vmstate_put_u8(w, k->kbd.pending);
	vmstate_put_bool(w, k->kbd.enabled);
	vmstate_put_u8(w, k->kbd.set);
	vmstate_put_u8(w, (uint8_t)k->q_len);
	vmstate_put_u8(w, (uint8_t)k->kbd.reply.len);
	vmstate_put_u8(w, (uint8_t)k->kbd.keys.len);
	/* Queues oldest first: ring positions are not part of the format. */
	for (unsigned int i = 0; i < k->q_len; i++) {
		unsigned int j = (k->q_head + i) % I8042_QUEUE;
		vmstate_put_u8(w, k->q[j].byte);
		vmstate_put_bool(w, k->q[j].aux);
	}
	put_fifo(w, &k->kbd.reply);
	put_fifo(w, &k->kbd.keys);
	/* irq1_level/irq12_level follow from the queue's head and ctr: restore recomputes them. */
	pthread_mutex_unlock(&k->lock);
	return 0;
}

/* The only commands that wait for a data byte (command() and keyboard_command()). */
static bool valid_pending_cmd(uint8_t c)
{
	return c == 0 || c == 0x60 || c == 0xd1 || c == 0xd2 || c == 0xd3 || c == 0xd4;
}

static bool valid_kbd_pending(uint8_t c)
{
	return c == 0 || c == 0xed || c == 0xf3 || c == 0xf0;
}

/* Status bits the controller computes (OBF, AUXDATA) or the guest toggles (CMD). */
#define ST_VARIABLE (ST_OBF | ST_CMD | ST_AUXDATA)
#define ST_FIXED (ST_SYS | ST_UNLOCKED) /* set at init, never cleared */

int i8042_restore(struct i8042 *k, struct vmstate_cursor *c, char *err, size_t errlen)
{
	uint8_t ctr, status, pending_cmd, xlate_break, kbd_pending, kbd_enabled, kbd_set;
	uint8_t q_len, reply_len, keys_len;
	uint8_t q_byte[I8042_QUEUE], q_aux[I8042_QUEUE];
	struct i8042_fifo reply = { .head = 0 }, keys = { .head = 0 };

	/* Everything lands in locals first: a refused payload leaves the controller untouched. */
	ctr = vmstate_get_u8(c);
	status = vmstate_get_u8(c);
	pending_cmd = vmstate_get_u8(c);
	xlate_break = vmstate_get_u8(c); /* flags read as bytes to name the field if not 0/1 */
	kbd_pending = vmstate_get_u8(c);
	kbd_enabled = vmstate_get_u8(c);
	kbd_set = vmstate_get_u8(c);
	q_len = vmstate_get_u8(c);
	reply_len = vmstate_get_u8(c);
	keys_len = vmstate_get_u8(c);
	if (c->error)
		return vmstate_cursor_size_error(c, "i8042", err, errlen);
	if ((status & ~ST_VARIABLE) != ST_FIXED)
		return fail_msg(
			err, errlen, -EINVAL,
			"i8042: status 0x%02x: outside OBF, CMD and AUXDATA it is always 0x%02x",
			status, ST_FIXED);
	if (!valid_pending_cmd(pending_cmd))
		return fail_msg(err, errlen, -EINVAL,
				"i8042: pending command 0x%02x takes no data byte", pending_cmd);
	if (xlate_break > 1)
		return fail_msg(err, errlen, -EINVAL,
				"i8042: translation break flag is %u, not 0 or 1", xlate_break);
	if (!valid_kbd_pending(kbd_pending))
		return fail_msg(err, errlen, -EINVAL,
				"i8042: keyboard pending command 0x%02x takes no argument",
				kbd_pending);
	if (kbd_enabled > 1)
		return fail_msg(err, errlen, -EINVAL,
				"i8042: keyboard enabled flag is %u, not 0 or 1", kbd_enabled);
	if (kbd_set != 1 && kbd_set != 2)
		return fail_msg(err, errlen, -EINVAL,
				"i8042: keyboard scan code set %u, not 1 or 2", kbd_set);
	if (q_len > I8042_QUEUE)
		return fail_msg(err, errlen, -EINVAL, "i8042: output queue length %u > %u", q_len,
				I8042_QUEUE);
	if (reply_len > I8042_KBD_QUEUE)
		return fail_msg(err, errlen, -EINVAL, "i8042: keyboard reply buffer length %u > %u",
				reply_len, I8042_KBD_QUEUE);
	if (keys_len > I8042_KBD_QUEUE)
		return fail_msg(err, errlen, -EINVAL, "i8042: keyboard key buffer length %u > %u",
				keys_len, I8042_KBD_QUEUE);
	for (unsigned int i = 0; i < q_len; i++) {
		q_byte[i] = vmstate_get_u8(c);
		q_aux[i] = vmstate_get_u8(c);
	}
	vmstate_get(c, reply.b, reply_len);
	reply.len = reply_len;
	vmstate_get(c, keys.b, keys_len);
	keys.len = keys_len;
	if (vmstate_cursor_done(c))
		return vmstate_cursor_size_error(c, "i8042", err, errlen);
	for (unsigned int i = 0; i < q_len; i++)
		if (q_aux[i] > 1)
			return fail_msg(err, errlen, -EINVAL,
					"i8042: output queue byte %u: aux flag is %u, not 0 or 1",
					i, q_aux[i]);

	pthread_mutex_lock(&k->lock);
	k->ctr = ctr;
	k->status = status;
	k->pending_cmd = pending_cmd;
	k->xlate_break = xlate_break;
	k->kbd.pending = kbd_pending;
	k->kbd.enabled = kbd_enabled;
	k->kbd.set = kbd_set;
	k->kbd.reply = reply;
	k->kbd.keys = keys;
	for (unsigned int i = 0; i < q_len; i++) {
		k->q[i].byte = q_byte[i];
		k->q[i].aux = q_aux[i];
	}
	k->q_head = 0;
	k->q_len = q_len;
	/*
	 * The line levels are not saved: they follow from the queue. -1 matches neither
	 * level, so update() drives both lines either way (and sets OBF/AUXDATA), and the
	 * interrupt controller (restored before the devices) sees this device's levels again.
	 */
	k->irq1_level = -1;
	k->irq12_level = -1;
	update(k, false);
	pthread_mutex_unlock(&k->lock);
	return 0;
}
