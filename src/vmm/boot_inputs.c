/* Reading and checking the kernel and initrd (see boot_inputs.h). */
#include "vmm/boot_inputs.h"
#include "arch/x86/boot_host.h"
#include "arch/x86/bootparams.h"
#include "core/log.h"
#include "core/util.h"
#include "kvm/guest_mem.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const struct boot_input_names boot_names_cli = { "--kernel", "--initrd", "--memory",
						 "--boot-entry" };
const struct boot_input_names boot_names_api = { "kernel_image_path", "initrd_path", "mem_size_mib",
						 "--boot-entry" };

static int read_input(const char *name, const char *path, uint8_t **buf, size_t *len, char *err,
		      size_t n)
{
	int r = file_read_all(path, buf, len);

	if (r == -EINVAL)
		return fail_msg(err, n, -EINVAL, "%s: '%s' is not a regular file", name, path);
	if (r)
		return fail_msg(err, n, -EINVAL, "%s: cannot read '%s': %s", name, path,
				strerror(-r));
	return 0;
}

static int choose_entry(const struct vmm_config *c, const struct boot_input_names *nm,
			struct boot_inputs *in, char *err, size_t n)
{
	const struct boot_image *img = &in->img;

	if (img->kind == BOOT_BZIMAGE) {
		if (c->entry == ENTRY_PVH)
			return fail_msg(err, n, -EINVAL,
					"%s: pvh needs an ELF kernel with a PVH note; '%s' is a "
					"bzImage",
					nm->entry, c->kernel);
		if (img->has_entry64) {
			in->entry = BOOT_ENTRY_LINUX64;
			return 0;
		}
		if (c->entry == ENTRY_LINUX64)
			return fail_msg(err, n, -EINVAL,
					"%s: '%s' has no 64-bit entry (boot protocol < 2.12)",
					nm->entry, c->kernel);
		in->entry = BOOT_ENTRY_LINUX32;
		return 0;
	}
	if (c->entry == ENTRY_PVH && !img->pvh_entry)
		return fail_msg(err, n, -EINVAL,
				"%s: '%s' has no PVH note (XEN_ELFNOTE_PHYS32_ENTRY)", nm->entry,
				c->kernel);
	in->entry = c->entry == ENTRY_PVH || (c->entry == ENTRY_AUTO && img->pvh_entry) ?
			    BOOT_ENTRY_PVH :
			    BOOT_ENTRY_LINUX64;
	return 0;
}

/*
 * Where the kernel may end: below the initrd, which goes at the top of what the header
 * allows (boot_place_initrd), or below the end of low RAM without one.
 */
static uint64_t kernel_limit(const struct guest_mem *layout, const struct boot_image *img,
			     size_t initrd_len)
{
	uint64_t max = layout->low_size;

	if (!initrd_len)
		return max;
	if (img->initrd_addr_max && (uint64_t)img->initrd_addr_max + 1 < max)
		max = (uint64_t)img->initrd_addr_max + 1;
	return initrd_len < max ? align_down(max - initrd_len, 4096) : 0;
}

/* A bzImage decompressed in the host replaces in->kernel and in->img (boot_host.h). */
static int host_decompress(const struct vmm_config *cfg, const struct boot_input_names *nm,
			   const struct guest_mem *layout, struct boot_inputs *in, char *err,
			   size_t n)
{
	const char *why = "";
	uint8_t *direct;
	size_t direct_len;
	/* Under --jail only the jail's files exist: no cache there. */
	struct boot_host_opts o = { .cmdline = cfg->cmdline,
				    .limit = kernel_limit(layout, &in->img, in->initrd_len),
				    .cache = !cfg->jail.on };
	int r = boot_host_decompress(in->kernel, in->kernel_len, &in->img, &o, &direct, &direct_len,
				     &why);

	if (r == -ENOENT) {
		log_debug("%s: '%s' boots with its own decompressor: %s", nm->kernel, cfg->kernel,
			  why);
		return 0;
	}
	if (r)
		return fail_msg(err, n, -EINVAL, "%s: '%s': %s", nm->kernel, cfg->kernel, why);
	free(in->kernel);
	in->kernel = direct;
	in->kernel_len = direct_len;
	return 0;
}

int boot_inputs_load(const struct vmm_config *cfg, const struct boot_input_names *nm,
		     struct boot_inputs *in, char *err, size_t n)
{
	const char *why = "";
	struct guest_mem layout;
	int r;

	memset(in, 0, sizeof(*in));
	uint64_t t = monotonic_ns();
	if ((r = read_input(nm->kernel, cfg->kernel, &in->kernel, &in->kernel_len, err, n)))
		return r;
	log_debug("%s: read %zu bytes in %.1f ms", nm->kernel, in->kernel_len,
		  (double)(monotonic_ns() - t) / 1e6);
	if (boot_image_parse(in->kernel, in->kernel_len, &in->img, &why)) {
		r = fail_msg(err, n, -EINVAL, "%s: '%s': %s", nm->kernel, cfg->kernel, why);
		goto out;
	}
	if ((r = choose_entry(cfg, nm, in, err, n)))
		goto out;
	guest_mem_layout(&layout, cfg->mem_mib * MIB);
	/* The initrd's size first: a randomized kernel must stay clear of where it goes. */
	if (cfg->initrd &&
	    (r = read_input(nm->initrd, cfg->initrd, &in->initrd, &in->initrd_len, err, n)))
		goto out;
	if (!cfg->no_host_decompress && in->entry == BOOT_ENTRY_LINUX64 &&
	    (r = host_decompress(cfg, nm, &layout, in, err, n)))
		goto out;
	if (in->img.end > layout.low_size) {
		r = fail_msg(err, n, -EINVAL,
			     "%s: the kernel needs %llu MiB of RAM below 3 GiB; %llu MiB given",
			     nm->memory, (unsigned long long)((in->img.end + MIB - 1) / MIB),
			     (unsigned long long)cfg->mem_mib);
		goto out;
	}
	if (!cfg->initrd)
		return 0;
	if (boot_place_initrd(&layout, &in->img, in->initrd_len, &in->initrd_gpa)) {
		r = fail_msg(err, n, -EINVAL,
			     "%s: '%s' (%zu bytes) does not fit in guest RAM above the kernel (%s "
			     "%llu MiB)",
			     nm->initrd, cfg->initrd, in->initrd_len, nm->memory,
			     (unsigned long long)cfg->mem_mib);
		goto out;
	}
	return 0;
out:
	boot_inputs_free(in);
	return r;
}

void boot_inputs_free(struct boot_inputs *in)
{
	free(in->kernel);
	free(in->initrd);
	in->kernel = in->initrd = NULL;
}
