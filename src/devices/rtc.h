/* MC146818-compatible CMOS RTC with the host's time (UTC) and 128 bytes of CMOS RAM. */
#ifndef TERN_DEVICES_RTC_H
#define TERN_DEVICES_RTC_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

struct rtc {
	pthread_mutex_t lock;
	uint8_t index;
	uint8_t ram[128];
	int64_t offset;	     /* guest time - host time, seconds, after the guest sets the clock */
	time_t (*now)(void); /* host clock; replaceable in unit tests */
};

void rtc_init(struct rtc *r);
/* Handler for ports 0x70 (index) and 0x71 (data). */
void rtc_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);

#endif
