/* What tern-vmm passes in the zero page (Linux struct boot_params): command line, e820 map. */
#include "tiny.h"

#define BP_E820_ENTRIES 0x1e8 /* u8 */
#define BP_CMD_LINE_PTR 0x228 /* u32, in the setup header */
#define BP_E820_TABLE 0x2d0

const char *tiny_cmdline(void)
{
	uint32_t p = *(const uint32_t *)(tiny_boot_params + BP_CMD_LINE_PTR);

	return p ? (const char *)(uint64_t)p : "";
}

bool tiny_arg(const char *key, char *buf, size_t len)
{
	size_t klen = strlen(key);

	for (const char *s = tiny_cmdline(); *s;) {
		while (*s == ' ')
			s++;
		const char *w = s;
		while (*s && *s != ' ')
			s++;
		if ((size_t)(s - w) > klen && !strncmp(w, key, klen) && w[klen] == '=') {
			size_t n = 0;
			for (w += klen + 1; w < s && n + 1 < len; w++)
				buf[n++] = *w;
			if (len)
				buf[n] = 0;
			return true;
		}
	}
	return false;
}

bool tiny_arg_is(const char *key, const char *value)
{
	char buf[64];

	return tiny_arg(key, buf, sizeof(buf)) && !strncmp(buf, value, sizeof(buf));
}

long tiny_arg_num(const char *key, long dflt)
{
	char buf[24];
	long v = 0;

	if (!tiny_arg(key, buf, sizeof(buf)) || !buf[0])
		return dflt;
	for (const char *p = buf; *p; p++) {
		if (*p < '0' || *p > '9')
			return dflt;
		v = v * 10 + (*p - '0');
	}
	return v;
}

unsigned int tiny_e820(const struct e820_entry **entries)
{
	*entries = (const struct e820_entry *)(tiny_boot_params + BP_E820_TABLE);
	return *(const uint8_t *)(tiny_boot_params + BP_E820_ENTRIES);
}
