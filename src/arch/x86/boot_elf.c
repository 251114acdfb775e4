/* ELF64 vmlinux parsing: PT_LOAD segments and the PVH entry from the Xen ELF note. */
#include "arch/x86/boot.h"
#include "arch/x86/boot_internal.h"

#include <elf.h>
#include <errno.h>
#include <string.h>

#define XEN_ELFNOTE_PHYS32_ENTRY 18

/* Walks one PT_NOTE area; returns the PVH entry or 0. */
static uint64_t find_pvh(const uint8_t *p, uint64_t len)
{
	uint64_t off = 0;

	while (len - off >= 12) {
		uint64_t namesz = boot_le(p + off, 4), descsz = boot_le(p + off + 4, 4);
		uint64_t type = boot_le(p + off + 8, 4);
		uint64_t name_off = off + 12;
		uint64_t desc_off = name_off + ((namesz + 3) & ~3ULL);
		uint64_t next = desc_off + ((descsz + 3) & ~3ULL);

		if (desc_off > len || next > len || next <= off)
			return 0;
		if (type == XEN_ELFNOTE_PHYS32_ENTRY && namesz == 4 &&
		    !memcmp(p + name_off, "Xen", 4) && (descsz == 4 || descsz == 8))
			return boot_le(p + desc_off, descsz);
		off = next;
	}
	return 0;
}

int boot_elf_parse(const uint8_t *file, size_t len, struct boot_image *img, const char **why)
{
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)file;
	Elf64_Ehdr h;
	uint64_t ph_end;

	if (len < sizeof(h)) {
		*why = "ELF header truncated";
		return -EINVAL;
	}
	memcpy(&h, eh, sizeof(h));
	if (h.e_ident[EI_CLASS] != ELFCLASS64 || h.e_ident[EI_DATA] != ELFDATA2LSB) {
		*why = "ELF is not 64-bit little-endian";
		return -EINVAL;
	}
	if (h.e_machine != EM_X86_64 || (h.e_type != ET_EXEC && h.e_type != ET_DYN)) {
		*why = "ELF is not an x86-64 executable";
		return -EINVAL;
	}
	if (h.e_phentsize != sizeof(Elf64_Phdr) || h.e_phnum == 0 ||
	    __builtin_add_overflow(h.e_phoff, (uint64_t)h.e_phnum * sizeof(Elf64_Phdr), &ph_end) ||
	    ph_end > len) {
		*why = "ELF program headers out of file";
		return -EINVAL;
	}
	memset(img, 0, sizeof(*img));
	img->kind = BOOT_ELF;
	img->entry64 = h.e_entry;
	img->has_entry64 = 1;
	for (unsigned int i = 0; i < h.e_phnum; i++) {
		Elf64_Phdr ph;
		uint64_t fend, mend;

		memcpy(&ph, file + h.e_phoff + i * sizeof(ph), sizeof(ph));
		if (ph.p_type != PT_LOAD && ph.p_type != PT_NOTE)
			continue;
		if (__builtin_add_overflow(ph.p_offset, ph.p_filesz, &fend) || fend > len) {
			*why = "ELF segment out of file";
			return -EINVAL;
		}
		if (ph.p_type == PT_NOTE) {
			uint64_t e = find_pvh(file + ph.p_offset, ph.p_filesz);
			if (e)
				img->pvh_entry = e;
			continue;
		}
		if (ph.p_filesz > ph.p_memsz ||
		    __builtin_add_overflow(ph.p_paddr, ph.p_memsz, &mend)) {
			*why = "ELF segment sizes invalid";
			return -EINVAL;
		}
		if (ph.p_memsz == 0)
			continue;
		if (img->nseg == BOOT_MAX_SEGMENTS) {
			*why = "ELF has too many loadable segments";
			return -EINVAL;
		}
		img->seg[img->nseg++] =
			(struct boot_segment){ ph.p_offset, ph.p_filesz, ph.p_paddr, ph.p_memsz };
		if (mend > img->end)
			img->end = mend;
	}
	if (!img->nseg) {
		*why = "ELF has no loadable segment";
		return -EINVAL;
	}
	return 0;
}
