/* Reads the CMOS RTC as Linux does (no update in progress, same value twice) and prints it. */
#include "tiny.h"

TINY_GUEST("rtc");

#define CMOS_INDEX 0x70
#define CMOS_DATA 0x71
#define RTC_SEC 0x00
#define RTC_MIN 0x02
#define RTC_HOUR 0x04
#define RTC_DAY 0x07
#define RTC_MONTH 0x08
#define RTC_YEAR 0x09
#define RTC_CENTURY 0x32
#define RTC_STATUS_A 0x0a
#define RTC_STATUS_B 0x0b
#define STATUS_A_UIP 0x80
#define STATUS_B_24H 0x02
#define STATUS_B_BINARY 0x04

static uint8_t cmos(uint8_t reg)
{
	outb(CMOS_INDEX, reg);
	return inb(CMOS_DATA);
}

struct rtc_time {
	uint8_t sec, min, hour, day, month, year, century;
};

static void read_time(struct rtc_time *t)
{
	/* Bounded: an update takes under 2 ms on a real RTC */
	for (int i = 0; i < 100000 && (cmos(RTC_STATUS_A) & STATUS_A_UIP); i++)
		cpu_relax();
	t->sec = cmos(RTC_SEC);
	t->min = cmos(RTC_MIN);
	t->hour = cmos(RTC_HOUR);
	t->day = cmos(RTC_DAY);
	t->month = cmos(RTC_MONTH);
	t->year = cmos(RTC_YEAR);
	t->century = cmos(RTC_CENTURY);
}

static unsigned int bcd(uint8_t v)
{
	return (v >> 4) * 10 + (v & 15);
}

int main(void)
{
	struct rtc_time a, b;
	int tries = 0;

	read_time(&a);
	do {
		b = a;
		read_time(&a);
		CHECK(++tries < 10);
	} while (memcmp(&a, &b, sizeof(a)));

	uint8_t status_b = cmos(RTC_STATUS_B);
	SAY("status B 0x%x", status_b);
	CHECK(status_b & STATUS_B_24H);
	if (!(status_b & STATUS_B_BINARY)) {
		a.sec = bcd(a.sec);
		a.min = bcd(a.min);
		a.hour = bcd(a.hour);
		a.day = bcd(a.day);
		a.month = bcd(a.month);
		a.year = bcd(a.year);
		a.century = bcd(a.century);
	}
	SAY("rtc %02u%02u-%02u-%02u %02u:%02u:%02u", a.century, a.year, a.month, a.day, a.hour,
	    a.min, a.sec);
	CHECK(a.century >= 19 && a.century <= 21);
	CHECK(a.month >= 1 && a.month <= 12 && a.day >= 1 && a.day <= 31);
	CHECK(a.hour < 24 && a.min < 60 && a.sec < 60);
	return 0;
}
