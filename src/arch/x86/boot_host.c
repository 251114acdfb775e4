/* Host-side decompression of a bzImage, with the cache and the cost of each step. */
#include "arch/x86/boot_host.h"
#include "arch/x86/boot_cache.h"
#include "arch/x86/boot_decompress.h"
#include "core/log.h"
#include "core/util.h"

#include <errno.h>
#include <linux/prctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>

static uint64_t random64(void)
{
	uint64_t v = 0;

	/* The guest's decompressor would use RDRAND/RDTSC; a failure just means no entropy. */
	if (getrandom(&v, sizeof(v), 0) != sizeof(v))
		v = monotonic_ns();
	return v;
}

static double ms(uint64_t a, uint64_t b)
{
	return (double)(b - a) / 1e6;
}

/*
 * A restarted tern-vmm (--on-reboot restart) already runs under the main thread's
 * seccomp list, which has no mkdir: it only reads the cache (the first boot wrote it).
 */
static bool may_write_cache(void)
{
	return prctl(PR_GET_SECCOMP, 0, 0, 0, 0) == 0;
}

int boot_host_decompress(const uint8_t *file, size_t len, struct boot_image *img,
			 const struct boot_host_opts *o, uint8_t **out, size_t *out_len,
			 const char **why)
{
	struct bz_payload p;
	struct boot_vmlinux v;
	struct boot_place pl;
	uint8_t key[BOOT_CACHE_KEY];
	char dir[4096];
	const uint8_t *elf = NULL;
	uint8_t *fresh = NULL, *buf = NULL; /* fresh: the payload at fresh + p.setup_len */
	size_t elf_len = 0;
	bool hit = false, cache = o->cache;
	int r;

	uint64_t t0 = monotonic_ns();
	if ((r = boot_bz_payload(file, len, img, &p, why)))
		return r;
	/*
	 * A kernel that cannot fit is left to the old path, which says how much RAM it needs;
	 * this also bounds what a hostile header can make tern allocate by guest RAM.
	 */
	if (p.pref + p.init_size > o->limit) {
		*why = "the kernel does not fit in guest RAM below the initrd";
		return -ENOENT;
	}
	const char *fmt = boot_compression_name(p.data, p.len);
	if (!fmt) {
		*why = "payload compression not recognised";
		return -ENOENT;
	}
	/* Only where it pays: a fast format decodes quicker than the cache reads back. */
	cache = cache && boot_compression_slow(p.data, p.len);
	if (cache && o->cache_dir)
		snprintf(dir, sizeof(dir), "%s", o->cache_dir);
	else if (cache && boot_cache_dir(dir, sizeof(dir)))
		cache = false;
	if (cache)
		boot_cache_key(file, len, key);
	uint64_t t_hash = monotonic_ns();
	if (cache)
		hit = !boot_cache_get(dir, key, p.setup_len, &fresh, &elf_len);
	uint64_t t_get = monotonic_ns();
	if (!hit) {
		/* The size the build appended bounds the output; init_size bounds that. */
		size_t max =
			p.expect_size && p.expect_size <= p.init_size ? p.expect_size : p.init_size;
		/* Room for the setup in front: the kernel is then laid out where it lies. */
		if ((r = boot_decompress(p.data, p.len, max, p.setup_len, &fresh, &elf_len, why)))
			return r;
		if (p.expect_size && elf_len != p.expect_size) {
			free(fresh);
			*why = "decompressed payload shorter than the kernel says";
			return -EINVAL;
		}
	}
	elf = fresh + p.setup_len;
	uint64_t t_dec = monotonic_ns();
	if ((r = boot_vmlinux_parse(elf, elf_len, p.pref, &v, why)))
		goto out;
	if (cache && !hit && may_write_cache()) {
		int w = boot_cache_put(dir, key, elf, elf_len);
		if (w)
			log_debug("kernel cache: not written in %s: %s", dir, strerror(-w));
	}
	uint64_t t_put = monotonic_ns();
	bool kaslr = !boot_cmdline_nokaslr(o->cmdline);
	boot_choose_place(&p, &v, elf_len, o->limit, kaslr, o->rnd ? o->rnd : random64, &pl);
	if (v.in_place) {
		buf = fresh;
		fresh = NULL;
	} else if (!(buf = boot_alloc_populated(p.setup_len + v.file_span))) {
		*why = "out of memory for the kernel image";
		r = -ENOMEM;
		goto out;
	}
	r = boot_build_direct(file, img, &p, elf, elf_len, &v, &pl, buf, img, why);
	uint64_t t_end = monotonic_ns();
	if (r)
		goto out;
	log_debug("host decompression: hash %.1f ms, cache %s %.1f ms, %s %zu -> %zu bytes "
		  "%.1f ms, cache write %.1f ms",
		  ms(t0, t_hash),
		  !cache ? "off" :
		  hit	 ? "hit" :
			   "miss",
		  ms(t_hash, t_get), hit ? "cached" : fmt, p.len, elf_len, ms(t_get, t_dec),
		  ms(t_dec, t_put));
	log_debug("host decompression: layout and relocation %.1f ms: physical 0x%llx, "
		  "virtual offset 0x%llx, KASLR %s",
		  ms(t_put, t_end), (unsigned long long)pl.phys, (unsigned long long)pl.virt_off,
		  pl.kaslr	? "on" :
		  !kaslr	? "off (nokaslr)" :
		  !v.has_relocs ? "off (no relocation table)" :
				  "off (not relocatable)");
	log_info("kernel decompressed in the host (%s%s) in %.1f ms; entering at 0x%llx", fmt,
		 hit ? ", cached" : "", ms(t0, t_end), (unsigned long long)img->entry64);
	*out = buf;
	*out_len = p.setup_len + v.file_span;
	buf = NULL;
out:
	free(fresh);
	free(buf);
	return r;
}
