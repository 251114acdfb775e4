/*
 * CMOS RTC. Time registers are computed from the host clock on every read, so
 * "update in progress" never needs to be shown; a guest that sets the clock (SET bit
 * in register B, then the time registers) moves an offset, never the host clock.
 */
#include "devices/rtc.h"

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

#define B_SET 0x80
#define B_BINARY 0x04
#define B_24H 0x02

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
	r->ram[REG_D] = 0x80; /* valid RAM and time */
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
			r->ram[REG_A] = data[0] & 0x7f; /* UIP is read-only */
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
