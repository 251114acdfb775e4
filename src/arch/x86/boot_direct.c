/*
 * Entering a bzImage's kernel proper directly: what arch/x86/boot/compressed/misc.c does
 * after decompressing (parse_elf lays the PT_LOAD segments out from the load address by
 * p_paddr - LOAD_PHYSICAL_ADDR; handle_relocations applies the KASLR virtual offset),
 * done in the host on the decompressed vmlinux.bin + vmlinux.relocs.
 *
 * On x86-64 only the virtual offset needs relocating: the kernel's startup_64 finds its
 * physical address itself (__startup_64's load_delta), so a random physical address
 * costs nothing here.
 */
#include "arch/x86/boot_decompress.h"
#include "arch/x86/boot_internal.h"
#include "core/util.h"

#include <elf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define HDR_LOADFLAGS 0x211
#define HDR_KERNEL_ALIGNMENT 0x230
#define HDR_RELOCATABLE 0x234
#define HDR_PAYLOAD_OFFSET 0x248
#define HDR_PAYLOAD_LENGTH 0x24c
#define HDR_PREF_ADDRESS 0x258
#define HDR_INIT_SIZE 0x260
#define KASLR_FLAG 0x02

#define START_KERNEL_MAP 0xffffffff80000000ULL /* __START_KERNEL_map */
#define KERNEL_IMAGE_SIZE (1ULL << 30)	       /* with CONFIG_RANDOMIZE_BASE */
#define MIN_KERNEL_ALIGN (2ULL << 20)	       /* PMD_SIZE: the kernel maps itself in 2 MiB pages */

int boot_bz_payload(const uint8_t *file, size_t len, const struct boot_image *img,
		    struct bz_payload *p, const char **why)
{
	if (img->kind != BOOT_BZIMAGE || !img->has_entry64 || img->version < 0x0208 ||
	    img->nseg != 1) {
		*why = "no 64-bit entry or boot protocol < 2.08";
		return -ENOENT;
	}
	/* boot_bzimage_parse checked that the setup and the header lie inside the file. */
	size_t koff = img->seg[0].file_off, klen = len - koff;
	uint32_t off = (uint32_t)boot_le(file + HDR_PAYLOAD_OFFSET, 4);
	uint32_t plen = (uint32_t)boot_le(file + HDR_PAYLOAD_LENGTH, 4);

	if (plen < 8 || off > klen || plen > klen - off) {
		*why = "payload_offset/payload_length out of the file";
		return -ENOENT;
	}
	memset(p, 0, sizeof(*p));
	p->data = file + koff + off;
	p->len = plen;
	p->init_size = (uint32_t)boot_le(file + HDR_INIT_SIZE, 4);
	p->align = (uint32_t)boot_le(file + HDR_KERNEL_ALIGNMENT, 4);
	p->pref = boot_le(file + HDR_PREF_ADDRESS, 8);
	p->relocatable = file[HDR_RELOCATABLE] != 0;
	p->setup_len = koff;
	p->expect_size = (uint32_t)boot_le(p->data + plen - 4, 4);
	return 0;
}

/* Where the ELF file's own bytes end: anything after is the relocation table. */
static uint64_t elf_file_end(const uint8_t *elf, size_t len, const struct boot_image *e)
{
	Elf64_Ehdr h;
	uint64_t end = sizeof(h), sh;

	memcpy(&h, elf, sizeof(h));
	if (h.e_phoff + (uint64_t)h.e_phnum * sizeof(Elf64_Phdr) > end)
		end = h.e_phoff + (uint64_t)h.e_phnum * sizeof(Elf64_Phdr);
	for (unsigned int i = 0; i < e->nseg; i++)
		if (e->seg[i].file_off + e->seg[i].file_size > end)
			end = e->seg[i].file_off + e->seg[i].file_size;
	if (h.e_shoff && h.e_shoff <= len &&
	    !__builtin_add_overflow(h.e_shoff, (uint64_t)h.e_shnum * h.e_shentsize, &sh) &&
	    sh <= len && sh > end)
		end = sh;
	return end;
}

static uint32_t word(const uint8_t *p, size_t at)
{
	return (uint32_t)boot_le(p + at, 4);
}

/*
 * The table read backwards from the end (arch/x86/tools/relocs.c writes it): 32-bit
 * entries, 0, inverse 32-bit entries, 0, 64-bit entries, 0 — that last 0 must be the
 * table's first word, right after the ELF.
 */
static bool relocs_well_formed(const uint8_t *elf, size_t len, size_t start)
{
	if (len <= start || (len - start) % 4 || len - start < 12)
		return false;
	size_t at = len;
	for (int list = 0; list < 3; list++) {
		do {
			at -= 4;
		} while (at > start && word(elf, at));
		if (word(elf, at))
			return false;
		if (list < 2 && at == start)
			return false;
	}
	return at == start;
}

int boot_vmlinux_parse(const uint8_t *elf, size_t len, uint64_t pref, struct boot_vmlinux *v,
		       const char **why)
{
	uint64_t hi = 0, fhi = 0, lo = UINT64_MAX;

	memset(v, 0, sizeof(*v));
	if (len < 4 || memcmp(elf, ELFMAG, SELFMAG)) {
		*why = "decompressed payload is not an ELF vmlinux";
		return -EINVAL;
	}
	if (boot_elf_parse(elf, len, &v->elf, why))
		return -EINVAL;
	for (unsigned int i = 0; i < v->elf.nseg; i++) {
		const struct boot_segment *s = &v->elf.seg[i];
		if (s->gpa < lo)
			lo = s->gpa;
		if (s->gpa + s->mem_size > hi)
			hi = s->gpa + s->mem_size;
		if (s->gpa + s->file_size > fhi)
			fhi = s->gpa + s->file_size;
	}
	/* Laid out from LOAD_PHYSICAL_ADDR (pref_address), like parse_elf does. */
	if (lo < pref || hi - pref > KERNEL_IMAGE_SIZE || v->elf.entry64 < pref ||
	    v->elf.entry64 >= hi) {
		*why = "vmlinux segments or entry not where the header says it loads";
		return -EINVAL;
	}
	v->base = pref;
	v->span = hi - pref;
	v->file_span = fhi - pref;
	v->relocs_off = (size_t)elf_file_end(elf, len, &v->elf);
	v->has_relocs = relocs_well_formed(elf, len, v->relocs_off);
	/*
	 * Laid out over the ELF itself, as parse_elf does: each segment moves down (its place
	 * in the layout is at or below its file offset), in ascending order, and the layout
	 * ends before the relocation table, which is read afterwards.
	 */
	v->in_place = v->file_span <= v->relocs_off;
	for (unsigned int i = 0; i < v->elf.nseg; i++) {
		const struct boot_segment *s = &v->elf.seg[i];
		if (s->gpa - pref > s->file_off ||
		    (i && s->gpa < v->elf.seg[i - 1].gpa + v->elf.seg[i - 1].mem_size))
			v->in_place = false;
	}
	return 0;
}

void boot_choose_place(const struct bz_payload *p, const struct boot_vmlinux *v, size_t out_len,
		       uint64_t limit, bool kaslr, uint64_t (*rnd)(void), struct boot_place *pl)
{
	uint64_t align = p->align;

	*pl = (struct boot_place){ .phys = p->pref };
	if (!kaslr || !v->has_relocs || !p->relocatable)
		return;
	pl->kaslr = true;
	if (align < MIN_KERNEL_ALIGN || (align & (align - 1)))
		align = MIN_KERNEL_ALIGN;
	/* The memory hole the decompressor reserves, and at least what tern reserves. */
	uint64_t image = v->span > out_len ? v->span : out_len;
	uint64_t need = image > p->init_size ? image : p->init_size;
	uint64_t lo = align_up(p->pref, align);

	if (limit >= lo + need) {
		uint64_t slots = (limit - need - lo) / align + 1;
		pl->phys = lo + (rnd() % slots) * align;
	}
	/* find_random_virt_addr(LOAD_PHYSICAL_ADDR, image): the image stays below 1 GiB. */
	if (KERNEL_IMAGE_SIZE >= p->pref + image) {
		uint64_t slots = 1 + (KERNEL_IMAGE_SIZE - p->pref - image) / align;
		pl->virt_off = (rnd() % slots) * align;
	}
}

/* A table entry (a kernel virtual address, sign-extended) as an offset into flat. */
static int target(uint32_t w, const struct boot_vmlinux *v, size_t size, size_t *off)
{
	uint64_t phys = (uint64_t)(int64_t)(int32_t)w - START_KERNEL_MAP;

	if (phys < v->base || phys - v->base > v->file_span ||
	    v->file_span - (phys - v->base) < size)
		return -1;
	*off = (size_t)(phys - v->base);
	return 0;
}

int boot_apply_relocs(const uint8_t *elf, size_t len, const struct boot_vmlinux *v, uint8_t *flat,
		      uint64_t delta, const char **why)
{
	size_t at = len, off;

	if (!delta)
		return 0;
	if (!v->has_relocs) {
		*why = "no relocation table";
		return -EINVAL;
	}
	/* The structure was checked by boot_vmlinux_parse: three lists, each ended by a 0. */
	for (int list = 0; list < 3; list++) {
		size_t size = list == 2 ? 8 : 4;
		for (at -= 4; word(elf, at); at -= 4) {
			if (target(word(elf, at), v, size, &off)) {
				*why = "relocation outside of the kernel";
				return -EINVAL;
			}
			uint8_t *q = flat + off;
			if (list == 0) { /* 32-bit: *(u32 *)ptr += delta */
				uint32_t x = (uint32_t)boot_le(q, 4) + (uint32_t)delta;
				memcpy(q, &x, 4);
			} else if (list == 1) { /* inverse 32-bit: *(s32 *)ptr -= delta */
				uint32_t x = (uint32_t)boot_le(q, 4) - (uint32_t)delta;
				memcpy(q, &x, 4);
			} else { /* 64-bit */
				uint64_t x = boot_le(q, 8) + delta;
				memcpy(q, &x, 8);
			}
		}
	}
	return 0;
}

int boot_build_direct(const uint8_t *file, const struct boot_image *bz, const struct bz_payload *p,
		      const uint8_t *elf, size_t elf_len, const struct boot_vmlinux *v,
		      const struct boot_place *pl, uint8_t *buf, struct boot_image *img,
		      const char **why)
{
	uint8_t *flat = buf + p->setup_len;
	uint64_t done = 0; /* the layout is final below this */

	memcpy(buf, file, p->setup_len);
	if (!v->in_place)
		memset(flat, 0, v->file_span);
	for (unsigned int i = 0; i < v->elf.nseg; i++) {
		const struct boot_segment *s = &v->elf.seg[i];
		uint64_t at = s->gpa - v->base;
		if (v->in_place && at > done)
			memset(flat + done, 0, at - done); /* the gap before it */
		memmove(flat + at, elf + s->file_off, s->file_size);
		done = at + s->file_size;
	}
	int r = boot_apply_relocs(elf, elf_len, v, flat, pl->virt_off, why);
	if (r)
		return r;
	/* What the decompressor tells the kernel: KASLR_FLAG set only if it randomized. */
	buf[HDR_LOADFLAGS] =
		(uint8_t)((buf[HDR_LOADFLAGS] & ~KASLR_FLAG) | (pl->kaslr ? KASLR_FLAG : 0));

	*img = *bz;
	img->nseg = 1;
	img->seg[0] = (struct boot_segment){ p->setup_len, v->file_span, pl->phys, v->span };
	img->entry64 = pl->phys + (v->elf.entry64 - v->base);
	img->entry32 = 0;
	img->has_entry64 = 1;
	uint64_t need = p->init_size > v->span ? p->init_size : v->span;
	img->end = pl->phys + need;
	return 0;
}

bool boot_cmdline_nokaslr(const char *s)
{
	while (s && *s) {
		size_t n;

		s += strspn(s, " \t\n");
		n = strcspn(s, " \t\n");
		if (n == 2 && !memcmp(s, "--", 2))
			return false; /* the rest is init's */
		if (n == 7 && !memcmp(s, "nokaslr", 7))
			return true;
		s += n;
	}
	return false;
}
