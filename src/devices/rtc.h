/* MC146818-compatible CMOS RTC with the host's time (UTC) and 128 bytes of CMOS RAM. */
#ifndef TERN_DEVICES_RTC_H
#define TERN_DEVICES_RTC_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct vmstate_cursor;
struct vmstate_writer;

#define RTC_STATE_VERSION 1 /* section version of VMSTATE_TAG_RTC */

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

/*
 * Snapshot state, inside a section the caller opened (VMSTATE_TAG_RTC, version
 * RTC_STATE_VERSION): the index register, the CMOS RAM and control registers, and the
 * guest clock's offset from host UTC, never the clock's reading, so a restored guest's
 * clock goes on following the host's. Always 0 (the writer keeps the first error).
 */
int rtc_save(struct rtc *r, struct vmstate_writer *w);
/*
 * Loads an rtc_save() payload into an RTC fresh from rtc_init(). The payload is
 * untrusted: -EINVAL with err naming the field, and r unchanged, when anything is out of
 * range or the payload has the wrong size.
 */
int rtc_restore(struct rtc *r, struct vmstate_cursor *c, char *err, size_t errlen);

#endif
