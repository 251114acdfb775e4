/*
 * CMOS RTC. Time registers are computed from the host clock on every read, so
 * "update in progress" never needs to be shown; a guest that sets the clock (SET bit
 * in register B, then the time registers) moves an offset, never the host clock.
 */
#include "devices/rtc.h"
#include "core/util.h"
#include "vmstate/vmstate.h"

#include <errno.h>
#include <string.h>

enum {
	REG_SEC = 0x00,
	REG_MIN = 0x02,
	REG_HOUR = 0x04,
	REG_WDAY = 0x06,
	REG_MDAY = 0x07,
	REG_MON = 0x08,
	REG_YEAR = 0x09,
	REG_A = 0x0a,
	REG_B = 0x0b,
	REG_C = 0x0c,
	REG_D = 0x0d,
	REG_CENTURY = 0x32,
};

#define A_UIP 0x80
#define B_SET 0x80
#define B_BINARY 0x04
#define B_24H 0x02
#define D_VRT 0x80 /* valid RAM and time: register D never reads anything else */

/*
 * The furthest a guest can move its clock from the host's: its fields reach year
 * 255 * 100 + 255 plus some overflowing month/day values at most (binary mode), about
 * 8e11 s from now. Bounding a restored offset keeps now() + offset far from overflow
 * and inside what gmtime_r() converts.
 */
#define RTC_MAX_OFFSET 1000000000000LL

static time_t host_now(void)
{
	return time(NULL);
}

void rtc_init(struct rtc *r)
{
	memset(r, 0, sizeof(*r));
	pthread_mutex_init(&r->lock, NULL);
	r->ram[REG_A] = 0x26; /* 32.768 kHz time base, 1024 Hz periodic rate */
	r->ram[REG_B] = B_24H;
	r->ram[REG_D] = D_VRT;
	r->now = host_now;
}

static uint8_t to_guest(const struct rtc *r, int v)
{
	if (r->ram[REG_B] & B_BINARY)
		return (uint8_t)v;
	return (uint8_t)(((v / 10) << 4) | (v % 10));
}

static int from_guest(const struct rtc *r, uint8_t v)
{
	if (r->ram[REG_B] & B_BINARY)
		return v;
	return (v >> 4) * 10 + (v & 0x0f);
}

static void current_tm(const struct rtc *r, struct tm *tm)
{
	time_t t = r->now() + r->offset;

	gmtime_r(&t, tm);
}

static uint8_t read_time(const struct rtc *r, uint8_t reg)
{
	struct tm tm;

	current_tm(r, &tm);
	switch (reg) {
	case REG_SEC:
		return to_guest(r, tm.tm_sec);
	case REG_MIN:
		return to_guest(r, tm.tm_min);
	case REG_HOUR:
		if (r->ram[REG_B] & B_24H)
			return to_guest(r, tm.tm_hour);
		/* 12-hour mode: 1..12 with bit 7 for PM. */
		return (uint8_t)(to_guest(r, tm.tm_hour % 12 ? tm.tm_hour % 12 : 12) |
				 (tm.tm_hour >= 12 ? 0x80 : 0));
	case REG_WDAY:
		return to_guest(r, tm.tm_wday + 1);
	case REG_MDAY:
		return to_guest(r, tm.tm_mday);
	case REG_MON:
		return to_guest(r, tm.tm_mon + 1);
	case REG_YEAR:
		return to_guest(r, tm.tm_year % 100);
	default: /* REG_CENTURY */
		return to_guest(r, (tm.tm_year + 1900) / 100);
	}
}

/* The guest wrote one time field: recompute the offset so the field reads back as written. */
static void write_time(struct rtc *r, uint8_t reg, uint8_t v)
{
	struct tm tm;
	int val = from_guest(r, v);

	current_tm(r, &tm);
	switch (reg) {
	case REG_SEC:
		tm.tm_sec = val;
		break;
	case REG_MIN:
		tm.tm_min = val;
		break;
	case REG_HOUR:
		if (r->ram[REG_B] & B_24H)
			tm.tm_hour = val;
		else
			tm.tm_hour = from_guest(r, v & 0x7f) % 12 + ((v & 0x80) ? 12 : 0);
		break;
	case REG_MDAY:
		tm.tm_mday = val;
		break;
	case REG_MON:
		tm.tm_mon = val - 1;
		break;
	case REG_YEAR:
		tm.tm_year = (tm.tm_year + 1900) / 100 * 100 + val - 1900;
		break;
	case REG_CENTURY:
		tm.tm_year = val * 100 + tm.tm_year % 100 - 1900;
		break;
	default: /* day of week follows from the date */
		return;
	}
	time_t t = timegm(&tm);
	if (t != (time_t)-1)
		r->offset = (int64_t)t - (int64_t)r->now();
}

static bool is_time_reg(uint8_t reg)
{
	return reg <= REG_YEAR ? !(reg & 1) || reg == REG_MDAY || reg == REG_YEAR :
				 reg == REG_CENTURY;
}

void rtc_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct rtc *r = opaque;

	pthread_mutex_lock(&r->lock);
	if (offset == 0) {
		if (is_write)
			r->index = data[0] & 0x7f; /* bit 7 masks NMI; nothing to mask here */
		else
			memset(data, 0xff, len);
	} else if (is_write) {
		uint8_t reg = r->index;
		if (is_time_reg(reg))
			write_time(r, reg, data[0]);
		else if (reg == REG_B)
			r->ram[REG_B] = data[0];
		else if (reg == REG_A)
			r->ram[REG_A] = data[0] & (uint8_t)~A_UIP; /* UIP is read-only */
		else if (reg != REG_C && reg != REG_D)
			r->ram[reg] = data[0];
	} else {
		uint8_t reg = r->index;
		memset(data, 0, len);
		if (is_time_reg(reg)) {
			data[0] = read_time(r, reg);
		} else if (reg == REG_C) {
			data[0] = r->ram[REG_C];
			r->ram[REG_C] = 0; /* reading C acknowledges interrupts */
		} else {
			data[0] = r->ram[reg];
		}
	}
	pthread_mutex_unlock(&r->lock);
}

/* ---- snapshot state ---- */

int rtc_save(struct rtc *r, struct vmstate_writer *w)
{
	pthread_mutex_lock(&r->lock);
	vmstate_put_u8(w, r->index);
	/* Guest time minus host UTC: still right however long the snapshot sits. */
	vmstate_put_u64(w, (uint64_t)r->offset);
	/* The clock registers' slots stay 0 (they are computed on read); the rest is state. */
	vmstate_put(w, r->ram, sizeof(r->ram));
	pthread_mutex_unlock(&r->lock);
	return 0;
}

int rtc_restore(struct rtc *r, struct vmstate_cursor *c, char *err, size_t errlen)
{
	uint8_t index, ram[sizeof(r->ram)];
	int64_t offset;

	/* Everything lands in locals first: a refused payload leaves the RTC untouched. */
	index = vmstate_get_u8(c);
	offset = (int64_t)vmstate_get_u64(c);
	vmstate_get(c, ram, sizeof(ram));
	if (vmstate_cursor_done(c))
		return vmstate_cursor_size_error(c, "rtc", err, errlen);
	if (index > 0x7f)
		return fail_msg(err, errlen, -EINVAL, "rtc: index register 0x%02x > 0x7f", index);
	if (offset > RTC_MAX_OFFSET || offset < -RTC_MAX_OFFSET)
		return fail_msg(err, errlen, -EINVAL, "rtc: clock offset %lld s is beyond +-%lld s",
				(long long)offset, RTC_MAX_OFFSET);
	/* Bytes only the device writes: anything but what it writes means a bad file. */
	for (unsigned int i = 0; i < sizeof(ram); i++)
		if (is_time_reg((uint8_t)i) && ram[i])
			return fail_msg(err, errlen, -EINVAL,
					"rtc: clock register 0x%02x is 0x%02x; clock registers are "
					"computed, their slots stay 0",
					i, ram[i]);
	if (ram[REG_A] & A_UIP)
		return fail_msg(err, errlen, -EINVAL, "rtc: register A 0x%02x has UIP set",
				ram[REG_A]);
	if (ram[REG_C])
		return fail_msg(err, errlen, -EINVAL,
				"rtc: register C 0x%02x: no interrupt flag can be pending",
				ram[REG_C]);
	if (ram[REG_D] != D_VRT)
		return fail_msg(err, errlen, -EINVAL, "rtc: register D 0x%02x, not 0x%02x",
				ram[REG_D], D_VRT);

	/* The RTC raises no interrupts in tern, so there is no line to drive. */
	pthread_mutex_lock(&r->lock);
	r->index = index;
	r->offset = offset;
	memcpy(r->ram, ram, sizeof(ram));
	pthread_mutex_unlock(&r->lock);
	return 0;
}
