/*
 * Tests for kernel image parsing (ELF vmlinux with and without the PVH note, bzImage),
 * loading into guest RAM, initrd placement, the zero page / PVH start_info and the
 * boot vCPU state. Images are built in memory; parsers run on exact-size heap copies
 * so that ASan catches any read past the end of the file.
 */
#include <elf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86/boot.h"
#include "arch/x86/bootparams.h"
#include "arch/x86/e820.h"
#include "arch/x86/gva.h"
#include "arch/x86/layout.h"
#include "kvm/guest_mem.h"
#include "unit.h"

static void wr16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void wr32(uint8_t *p, uint32_t v)
{
	wr16(p, (uint16_t)v);
	wr16(p + 2, (uint16_t)(v >> 16));
}

static void wr64(uint8_t *p, uint64_t v)
{
	wr32(p, (uint32_t)v);
	wr32(p + 4, (uint32_t)(v >> 32));
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const uint8_t *p)
{
	return rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

/* Parses an exact-size heap copy of file[0..len). */
static int parse(const uint8_t *file, size_t len, struct boot_image *img, const char **why)
{
	uint8_t *copy = malloc(len ? len : 1);
	int r;

	if (!copy)
		return -ENOMEM;
	if (len)
		memcpy(copy, file, len);
	*why = NULL;
	r = boot_image_parse(copy, len, img, why);
	free(copy);
	return r;
}

/* ---- ELF images ---- */

#define ELF_ENTRY 0x1000000ULL
#define ELF_PVH 0x1000040ULL
#define ELF_SEG0_OFF 0x1000
#define ELF_SEG0_FILESZ 0x800
#define ELF_SEG0_PADDR 0x1000000ULL
#define ELF_SEG0_MEMSZ 0x2000
#define ELF_SEG1_OFF 0x1800
#define ELF_SEG1_FILESZ 0x400
#define ELF_SEG1_PADDR 0x1200000ULL
#define ELF_SEG1_MEMSZ 0x400
#define ELF_NOTE_OFF 0x400
#define ELF_LEN 0x1c00
#define ELF_MAX_PH 20

static uint8_t elf[ELF_LEN + 0x400];

static void elf_phdr(uint8_t *file, unsigned int i, uint32_t type, uint64_t off, uint64_t filesz,
		     uint64_t paddr, uint64_t memsz)
{
	Elf64_Phdr ph = {
		.p_type = type,
		.p_flags = PF_R | PF_X,
		.p_offset = off,
		.p_vaddr = paddr + 0xffffffff80000000ULL,
		.p_paddr = paddr,
		.p_filesz = filesz,
		.p_memsz = memsz,
		.p_align = 0x1000,
	};

	memcpy(file + sizeof(Elf64_Ehdr) + i * sizeof(ph), &ph, sizeof(ph));
}

static Elf64_Ehdr elf_ehdr(const uint8_t *file)
{
	Elf64_Ehdr eh;

	memcpy(&eh, file, sizeof(eh));
	return eh;
}

static void elf_set_ehdr(uint8_t *file, const Elf64_Ehdr *eh)
{
	memcpy(file, eh, sizeof(*eh));
}

/* Writes one note at off; returns the offset after it. */
static size_t elf_note(uint8_t *file, size_t off, const char *name, uint32_t namesz, uint32_t type,
		       const void *desc, uint32_t descsz)
{
	wr32(file + off, namesz);
	wr32(file + off + 4, descsz);
	wr32(file + off + 8, type);
	off += 12;
	memcpy(file + off, name, namesz);
	off += (namesz + 3) & ~3u;
	memcpy(file + off, desc, descsz);
	return off + ((descsz + 3) & ~3u);
}

/*
 * Two PT_LOAD segments (the first with BSS), an ignored PT_DYNAMIC with a junk
 * offset, and a PT_NOTE holding a GNU build-id note followed by the Xen PVH note
 * (pvh_descsz 4 or 8; 0 for no Xen note).
 */
static void elf_build(uint32_t pvh_descsz, uint64_t pvh)
{
	Elf64_Ehdr eh = {
		.e_type = ET_EXEC,
		.e_machine = EM_X86_64,
		.e_version = EV_CURRENT,
		.e_entry = ELF_ENTRY,
		.e_phoff = sizeof(Elf64_Ehdr),
		.e_ehsize = sizeof(Elf64_Ehdr),
		.e_phentsize = sizeof(Elf64_Phdr),
		.e_phnum = 4,
	};
	const uint8_t build_id[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	uint8_t desc[8];
	size_t end;

	memset(elf, 0, sizeof(elf));
	memcpy(eh.e_ident, ELFMAG, SELFMAG);
	eh.e_ident[EI_CLASS] = ELFCLASS64;
	eh.e_ident[EI_DATA] = ELFDATA2LSB;
	eh.e_ident[EI_VERSION] = EV_CURRENT;
	elf_set_ehdr(elf, &eh);
	for (size_t i = ELF_SEG0_OFF; i < ELF_LEN; i++)
		elf[i] = (uint8_t)(i * 7 + 3);
	elf_phdr(elf, 0, PT_LOAD, ELF_SEG0_OFF, ELF_SEG0_FILESZ, ELF_SEG0_PADDR, ELF_SEG0_MEMSZ);
	elf_phdr(elf, 1, PT_DYNAMIC, 0xffffffffffff0000ULL, 0x100000, 0, 0x100000);
	end = elf_note(elf, ELF_NOTE_OFF, "GNU", 4, NT_GNU_BUILD_ID, build_id, sizeof(build_id));
	if (pvh_descsz) {
		wr64(desc, pvh);
		end = elf_note(elf, end, "Xen", 4, 18, desc, pvh_descsz);
	}
	elf_phdr(elf, 2, PT_NOTE, ELF_NOTE_OFF, end - ELF_NOTE_OFF, 0, 0);
	elf_phdr(elf, 3, PT_LOAD, ELF_SEG1_OFF, ELF_SEG1_FILESZ, ELF_SEG1_PADDR, ELF_SEG1_MEMSZ);
}

static Elf64_Phdr elf_get_phdr(unsigned int i)
{
	Elf64_Phdr ph;

	memcpy(&ph, elf + sizeof(Elf64_Ehdr) + i * sizeof(ph), sizeof(ph));
	return ph;
}

static void elf_put_phdr(unsigned int i, const Elf64_Phdr *ph)
{
	memcpy(elf + sizeof(Elf64_Ehdr) + i * sizeof(*ph), ph, sizeof(*ph));
}

TEST(boot_elf_valid_with_pvh_note)
{
	struct boot_image img;
	const char *why;

	elf_build(4, ELF_PVH);
	REQUIRE(parse(elf, ELF_LEN, &img, &why) == 0);
	CHECK(img.kind == BOOT_ELF);
	CHECK(img.entry64 == ELF_ENTRY);
	CHECK(img.has_entry64);
	CHECK(img.pvh_entry == ELF_PVH);
	REQUIRE(img.nseg == 2);
	CHECK(img.seg[0].file_off == ELF_SEG0_OFF);
	CHECK(img.seg[0].file_size == ELF_SEG0_FILESZ);
	CHECK(img.seg[0].gpa == ELF_SEG0_PADDR); /* physical, not the virtual address */
	CHECK(img.seg[0].mem_size == ELF_SEG0_MEMSZ);
	CHECK(img.seg[1].file_off == ELF_SEG1_OFF);
	CHECK(img.seg[1].gpa == ELF_SEG1_PADDR);
	CHECK(img.end == ELF_SEG1_PADDR + ELF_SEG1_MEMSZ);
}

TEST(boot_elf_pvh_note_8_byte_desc)
{
	struct boot_image img;
	const char *why;

	elf_build(8, 0x123456789abcdef0ULL);
	REQUIRE(parse(elf, ELF_LEN, &img, &why) == 0);
	CHECK(img.pvh_entry == 0x123456789abcdef0ULL);
}

TEST(boot_elf_without_pvh_note)
{
	struct boot_image img;
	const char *why;
	uint8_t desc[4];
	size_t end;

	elf_build(0, 0);
	REQUIRE(parse(elf, ELF_LEN, &img, &why) == 0);
	CHECK(img.pvh_entry == 0);
	CHECK(img.nseg == 2);

	/* Type 18 under another owner's name is not the PVH entry. */
	elf_build(0, 0);
	wr32(desc, 0x1234000);
	end = elf_note(elf, ELF_NOTE_OFF, "Linux", 6, 18, desc, 4);
	elf_phdr(elf, 2, PT_NOTE, ELF_NOTE_OFF, end - ELF_NOTE_OFF, 0, 0);
	REQUIRE(parse(elf, ELF_LEN, &img, &why) == 0);
	CHECK(img.pvh_entry == 0);

	/* Xen note with a 2-byte descriptor is malformed: ignored. */
	elf_build(0, 0);
	end = elf_note(elf, ELF_NOTE_OFF, "Xen", 4, 18, desc, 2);
	elf_phdr(elf, 2, PT_NOTE, ELF_NOTE_OFF, end - ELF_NOTE_OFF, 0, 0);
	REQUIRE(parse(elf, ELF_LEN, &img, &why) == 0);
	CHECK(img.pvh_entry == 0);
}

TEST(boot_elf_truncated_header)
{
	struct boot_image img;
	const char *why;

	elf_build(4, ELF_PVH);
	for (size_t n = 4; n < sizeof(Elf64_Ehdr); n++) {
		CHECK(parse(elf, n, &img, &why) == -EINVAL);
		CHECK(why != NULL);
	}
}

TEST(boot_elf_every_truncation_fails_until_segments_fit)
{
	struct boot_image img;
	const char *why;

	elf_build(4, ELF_PVH);
	/* The last byte any PT_LOAD/PT_NOTE needs is the end of segment 1's file data. */
	for (size_t n = 0; n <= ELF_LEN; n++) {
		int r = parse(elf, n, &img, &why);
		if (n < ELF_SEG1_OFF + ELF_SEG1_FILESZ) {
			CHECK(r < 0);
			CHECK(why != NULL);
		} else {
			CHECK(r == 0);
		}
	}
}

TEST(boot_elf_phoff_past_end)
{
	struct boot_image img;
	const char *why;
	Elf64_Ehdr eh;

	elf_build(4, ELF_PVH);
	eh = elf_ehdr(elf);
	eh.e_phoff = ELF_LEN - 4 * sizeof(Elf64_Phdr) + 1; /* last header one byte out */
	elf_set_ehdr(elf, &eh);
	CHECK(parse(elf, ELF_LEN, &img, &why) == -EINVAL);
	CHECK(why && strstr(why, "program header"));

	eh.e_phoff = ELF_LEN * 4;
	elf_set_ehdr(elf, &eh);
	CHECK(parse(elf, ELF_LEN, &img, &why) == -EINVAL);
}

TEST(boot_elf_phdr_table_overflow)
{
	struct boot_image img;
	const char *why;
	Elf64_Ehdr eh;

	elf_build(4, ELF_PVH);
	eh = elf_ehdr(elf);
	/* e_phoff + e_phnum * e_phentsize wraps to a small number. */
	eh.e_phoff = UINT64_MAX - sizeof(Elf64_Phdr) + 1;
	eh.e_phnum = 2;
	elf_set_ehdr(elf, &eh);
	CHECK(parse(elf, ELF_LEN, &img, &why) == -EINVAL);

	eh = elf_ehdr(elf);
	eh.e_phoff = sizeof(Elf64_Ehdr);
	eh.e_phnum = 0xffff; /* far more headers than the file holds */
	elf_set_ehdr(elf, &eh);
	CHECK(parse(elf, ELF_LEN, &img, &why) == -EINVAL);

	/* A header size other than Elf64_Phdr's would make the walk read garbage. */
	eh.e_phnum = 4;
	eh.e_phentsize = 32;
	elf_set_ehdr(elf, &eh);
	CHECK(parse(elf, ELF_LEN, &img, &why) == -EINVAL);

	eh.e_phentsize = sizeof(Elf64_Phdr);
	eh.e_phnum = 0;
	elf_set_ehdr(elf, &eh);
	CHECK(parse(elf, ELF_LEN, &img, &why) == -EINVAL);
}

TEST(boot_elf_segment_out_of_file)
{
	struct boot_image img;
	const char *why;
	Elf64_Phdr ph;

	elf_build(4, ELF_PVH);
	ph = elf_get_phdr(3);
	ph.p_filesz = ELF_LEN - ph.p_offset + 1;
	ph.p_memsz = ph.p_filesz;
	elf_put_phdr(3, &ph);
	CHECK(parse(elf, ELF_LEN, &img, &why) == -EINVAL);
	CHECK(why && strstr(why, "out of file"));

	/* p_offset + p_filesz wraps around. */
	elf_build(4, ELF_PVH);
	ph = elf_get_phdr(0);
	ph.p_offset = UINT64_MAX - 0x10;
	elf_put_phdr(0, &ph);
	CHECK(parse(elf, ELF_LEN, &img, &why) == -EINVAL);

	/* The same for a note segment. */
	elf_build(4, ELF_PVH);
	ph = elf_get_phdr(2);
	ph.p_filesz = ELF_LEN;
	elf_put_phdr(2, &ph);
	CHECK(parse(elf, ELF_LEN, &img, &why) == -EINVAL);

	/* Exactly up to the end of the file is fine. */
	elf_build(4, ELF_PVH);
	ph = elf_get_phdr(0);
	ph.p_filesz = ELF_LEN - ph.p_offset;
	elf_put_phdr(0, &ph);
	REQUIRE(parse(elf, ELF_LEN, &img, &why) == 0);
	CHECK(img.seg[0].file_size == ELF_LEN - ELF_SEG0_OFF);
}

TEST(boot_elf_filesz_larger_than_memsz)
{
	struct boot_image img;
	const char *why;
	Elf64_Phdr ph;

	elf_build(4, ELF_PVH);
	ph = elf_get_phdr(0);
	ph.p_memsz = ph.p_filesz - 1;
	elf_put_phdr(0, &ph);
	CHECK(parse(elf, ELF_LEN, &img, &why) == -EINVAL);
	CHECK(why && strstr(why, "sizes"));
}

TEST(boot_elf_paddr_memsz_overflow)
{
	struct boot_image img;
	const char *why;
	Elf64_Phdr ph;

	elf_build(4, ELF_PVH);
	ph = elf_get_phdr(3);
	ph.p_paddr = UINT64_MAX - 0x100;
	elf_put_phdr(3, &ph);
	CHECK(parse(elf, ELF_LEN, &img, &why) == -EINVAL);
}

TEST(boot_elf_empty_load_segment_skipped)
{
	struct boot_image img;
	const char *why;
	Elf64_Phdr ph;

	elf_build(4, ELF_PVH);
	ph = elf_get_phdr(3);
	ph.p_filesz = ph.p_memsz = 0;
	ph.p_paddr = 0x7000000; /* would raise end if it counted */
	elf_put_phdr(3, &ph);
	REQUIRE(parse(elf, ELF_LEN, &img, &why) == 0);
	CHECK(img.nseg == 1);
	CHECK(img.end == ELF_SEG0_PADDR + ELF_SEG0_MEMSZ);

	/* And with no non-empty PT_LOAD at all the image is refused. */
	ph = elf_get_phdr(0);
	ph.p_filesz = ph.p_memsz = 0;
	elf_put_phdr(0, &ph);
	CHECK(parse(elf, ELF_LEN, &img, &why) == -EINVAL);
	CHECK(why && strstr(why, "no loadable"));
}

static void elf_with_loads(unsigned int nload)
{
	Elf64_Ehdr eh;

	elf_build(0, 0);
	eh = elf_ehdr(elf);
	eh.e_phnum = (uint16_t)nload;
	elf_set_ehdr(elf, &eh);
	for (unsigned int i = 0; i < nload; i++)
		elf_phdr(elf, i, PT_LOAD, ELF_SEG0_OFF + i * 0x10, 0x10, 0x1000000 + i * 0x1000,
			 0x1000);
}

TEST(boot_elf_too_many_segments)
{
	struct boot_image img;
	const char *why;

	elf_with_loads(BOOT_MAX_SEGMENTS);
	REQUIRE(parse(elf, ELF_LEN, &img, &why) == 0);
	CHECK(img.nseg == BOOT_MAX_SEGMENTS);
	CHECK(img.seg[BOOT_MAX_SEGMENTS - 1].gpa == 0x1000000 + (BOOT_MAX_SEGMENTS - 1) * 0x1000);
	CHECK(img.end == 0x1000000 + BOOT_MAX_SEGMENTS * 0x1000);

	elf_with_loads(BOOT_MAX_SEGMENTS + 1);
	CHECK(parse(elf, ELF_LEN, &img, &why) == -EINVAL);
	CHECK(why && strstr(why, "too many"));
}

/* A PT_NOTE area that is the very end of the file, parsed from an exact-size copy. */
static int parse_note_at_end(const uint8_t *note, size_t note_len, struct boot_image *img)
{
	const char *why;
	size_t off = ELF_SEG1_OFF + ELF_SEG1_FILESZ;

	elf_build(0, 0);
	memcpy(elf + off, note, note_len);
	elf_phdr(elf, 2, PT_NOTE, off, note_len, 0, 0);
	return parse(elf, off + note_len, img, &why);
}

TEST(boot_elf_note_huge_sizes_no_overread)
{
	struct boot_image img;
	uint8_t note[32];

	/* namesz and descsz both 0xffffffff. */
	memset(note, 0, sizeof(note));
	wr32(note, 0xffffffff);
	wr32(note + 4, 0xffffffff);
	wr32(note + 8, 18);
	REQUIRE(parse_note_at_end(note, sizeof(note), &img) == 0);
	CHECK(img.pvh_entry == 0);

	/* A proper "Xen" name but a descriptor that runs past the area. */
	memset(note, 0, sizeof(note));
	wr32(note, 4);
	wr32(note + 4, 0xfffffff0);
	wr32(note + 8, 18);
	memcpy(note + 12, "Xen", 4);
	REQUIRE(parse_note_at_end(note, 20, &img) == 0);
	CHECK(img.pvh_entry == 0);

	/* An 8-byte descriptor cut to 4 bytes by the end of the area. */
	memset(note, 0, sizeof(note));
	wr32(note, 4);
	wr32(note + 4, 8);
	wr32(note + 8, 18);
	memcpy(note + 12, "Xen", 4);
	wr32(note + 16, 0x1000000);
	REQUIRE(parse_note_at_end(note, 20, &img) == 0);
	CHECK(img.pvh_entry == 0);

	/* The same note complete is found: the cases above failed for the right reason. */
	wr32(note + 20, 0);
	REQUIRE(parse_note_at_end(note, 24, &img) == 0);
	CHECK(img.pvh_entry == 0x1000000);

	/* Trailing bytes too short for a note header. */
	REQUIRE(parse_note_at_end(note, 11, &img) == 0);
	CHECK(img.pvh_entry == 0);
}

TEST(boot_elf_32bit_rejected)
{
	struct boot_image img;
	const char *why;

	elf_build(4, ELF_PVH);
	elf[EI_CLASS] = ELFCLASS32;
	CHECK(parse(elf, ELF_LEN, &img, &why) == -EINVAL);
	CHECK(why && strstr(why, "64-bit"));

	elf_build(4, ELF_PVH);
	elf[EI_DATA] = ELFDATA2MSB;
	CHECK(parse(elf, ELF_LEN, &img, &why) == -EINVAL);
}

TEST(boot_elf_wrong_machine_or_type_rejected)
{
	struct boot_image img;
	const char *why;
	Elf64_Ehdr eh;

	elf_build(4, ELF_PVH);
	eh = elf_ehdr(elf);
	eh.e_machine = EM_AARCH64;
	elf_set_ehdr(elf, &eh);
	CHECK(parse(elf, ELF_LEN, &img, &why) == -EINVAL);
	CHECK(why && strstr(why, "x86-64"));

	elf_build(4, ELF_PVH);
	eh = elf_ehdr(elf);
	eh.e_type = ET_REL;
	elf_set_ehdr(elf, &eh);
	CHECK(parse(elf, ELF_LEN, &img, &why) == -EINVAL);

	eh.e_type = ET_DYN; /* relocatable kernels are ET_DYN: accepted */
	elf_set_ehdr(elf, &eh);
	CHECK(parse(elf, ELF_LEN, &img, &why) == 0);
}

/* ---- bzImage ---- */

#define BZ_SETUP_SECTS 8
#define BZ_KOFF ((BZ_SETUP_SECTS + 1) * 512)
#define BZ_KLEN 0x3000
#define BZ_LEN (BZ_KOFF + BZ_KLEN)
#define BZ_HDR_END 0x26c

static uint8_t bz[BZ_LEN];

static void bz_build(void)
{
	memset(bz, 0, sizeof(bz));
	for (size_t i = BZ_KOFF; i < BZ_LEN; i++)
		bz[i] = (uint8_t)(i * 13 + 1);
	bz[0x1f1] = BZ_SETUP_SECTS;
	wr16(bz + 0x1fe, 0xaa55);
	bz[0x200] = 0xeb; /* jmp short over the header */
	bz[0x201] = BZ_HDR_END - 0x202;
	memcpy(bz + 0x202, "HdrS", 4);
	wr16(bz + 0x206, 0x020f);
	bz[0x211] = 0x01;			    /* LOADED_HIGH */
	wr32(bz + 0x22c, 0x7fffffff);		    /* initrd_addr_max */
	wr32(bz + 0x230, 0x200000);		    /* kernel_alignment */
	bz[0x234] = 1;				    /* relocatable */
	wr16(bz + 0x236, 0x0001 | 0x0002 | 0x0008); /* KERNEL_64, CAN_BE_LOADED_ABOVE_4G, EFI64 */
	wr32(bz + 0x238, 2047);			    /* cmdline_size */
	wr64(bz + 0x258, 0x1000000);		    /* pref_address */
	wr32(bz + 0x260, 0x2000000);		    /* init_size */
}

TEST(boot_bzimage_valid_64bit)
{
	struct boot_image img;
	const char *why;

	bz_build();
	REQUIRE(parse(bz, BZ_LEN, &img, &why) == 0);
	CHECK(img.kind == BOOT_BZIMAGE);
	CHECK(img.has_entry64);
	CHECK(img.entry64 == 0x100000 + 0x200);
	CHECK(img.entry32 == 0x100000);
	CHECK(img.pvh_entry == 0);
	CHECK(img.version == 0x020f);
	CHECK(img.initrd_addr_max == 0x7fffffff);
	CHECK(img.cmdline_size == 2047);
	CHECK(img.setup_hdr_len == BZ_HDR_END - BOOT_SETUP_HDR_OFF);
	REQUIRE(img.nseg == 1);
	CHECK(img.seg[0].file_off == BZ_KOFF);
	CHECK(img.seg[0].file_size == BZ_KLEN);
	CHECK(img.seg[0].gpa == 0x100000);
	CHECK(img.seg[0].mem_size == BZ_KLEN);
	/* Decompresses at pref_address (above the aligned load address) and needs init_size. */
	CHECK(img.end == 0x1000000 + 0x2000000);
}

TEST(boot_bzimage_without_kernel64)
{
	struct boot_image img;
	const char *why;

	bz_build();
	wr16(bz + 0x236, 0x0002);
	REQUIRE(parse(bz, BZ_LEN, &img, &why) == 0);
	CHECK(!img.has_entry64);
	CHECK(img.entry32 == 0x100000);

	/* xloadflags only exists from 2.12; before that the field is something else. */
	bz_build();
	wr16(bz + 0x206, 0x020b);
	REQUIRE(parse(bz, BZ_LEN, &img, &why) == 0);
	CHECK(!img.has_entry64);
}

TEST(boot_bzimage_old_protocol_rejected)
{
	struct boot_image img;
	const char *why;

	bz_build();
	wr16(bz + 0x206, 0x0209);
	CHECK(parse(bz, BZ_LEN, &img, &why) == -EINVAL);
	CHECK(why && strstr(why, "2.10"));

	wr16(bz + 0x206, 0x020a);
	CHECK(parse(bz, BZ_LEN, &img, &why) == 0);
}

TEST(boot_bzimage_not_loaded_high_rejected)
{
	struct boot_image img;
	const char *why;

	bz_build();
	bz[0x211] = 0x80; /* CAN_USE_HEAP only */
	CHECK(parse(bz, BZ_LEN, &img, &why) == -EINVAL);
	CHECK(why && strstr(why, "zImage"));
}

TEST(boot_bzimage_setup_sects_past_end_rejected)
{
	struct boot_image img;
	const char *why;

	bz_build();
	bz[0x1f1] = 0xff;
	CHECK(parse(bz, BZ_LEN, &img, &why) == -EINVAL);
	CHECK(why && strstr(why, "truncated"));

	/* The protected-mode kernel must have at least one byte. */
	bz_build();
	CHECK(parse(bz, BZ_KOFF, &img, &why) == -EINVAL);
	REQUIRE(parse(bz, BZ_KOFF + 1, &img, &why) == 0);
	CHECK(img.seg[0].file_size == 1);
}

TEST(boot_bzimage_setup_sects_zero_means_four)
{
	struct boot_image img;
	const char *why;

	bz_build();
	bz[0x1f1] = 0;
	REQUIRE(parse(bz, BZ_LEN, &img, &why) == 0);
	CHECK(img.seg[0].file_off == 5 * 512);
	CHECK(img.seg[0].file_size == BZ_LEN - 5 * 512);
}

TEST(boot_bzimage_header_length_checked)
{
	struct boot_image img;
	const char *why;

	/* A header shorter than init_size's end cannot describe this kernel. */
	bz_build();
	bz[0x201] = 0x10;
	CHECK(parse(bz, BZ_LEN, &img, &why) == -EINVAL);
	CHECK(why && strstr(why, "header length"));

	bz_build();
	bz[0x201] = 0xff;
	REQUIRE(parse(bz, BZ_LEN, &img, &why) == 0);
	CHECK(img.setup_hdr_len == 0x202 + 0xff - BOOT_SETUP_HDR_OFF);
}

TEST(boot_bzimage_init_size_overflow_rejected)
{
	struct boot_image img;
	const char *why;

	bz_build();
	wr64(bz + 0x258, UINT64_MAX - 0x1000); /* pref_address + init_size wraps */
	CHECK(parse(bz, BZ_LEN, &img, &why) == -EINVAL);
	CHECK(why && strstr(why, "init_size"));

	bz_build();
	wr64(bz + 0x258, 1ULL << 40);
	CHECK(parse(bz, BZ_LEN, &img, &why) == -EINVAL);

	/* Ending exactly at the 1 TiB limit is still accepted. */
	bz_build();
	wr64(bz + 0x258, (1ULL << 40) - 0x2000000);
	REQUIRE(parse(bz, BZ_LEN, &img, &why) == 0);
	CHECK(img.end == 1ULL << 40);
}

TEST(boot_bzimage_non_relocatable_runs_at_load_address)
{
	struct boot_image img;
	const char *why;

	bz_build();
	bz[0x234] = 0;
	wr64(bz + 0x258, 0);
	wr32(bz + 0x260, 0x1000);
	REQUIRE(parse(bz, BZ_LEN, &img, &why) == 0);
	/* init_size smaller than the file: the loaded image itself sets the end. */
	CHECK(img.end == 0x100000 + BZ_KLEN);

	/* Relocatable with a 16 MiB alignment and no pref_address: aligned up from 1 MiB. */
	bz[0x234] = 1;
	wr32(bz + 0x230, 0x1000000);
	REQUIRE(parse(bz, BZ_LEN, &img, &why) == 0);
	CHECK(img.end == 0x1000000 + 0x1000);
}

TEST(boot_image_junk_rejected)
{
	struct boot_image img;
	const char *why;
	uint8_t junk[4096];
	uint32_t x = 12345;

	for (size_t i = 0; i < sizeof(junk); i++) {
		x = x * 1103515245 + 12345;
		junk[i] = (uint8_t)(x >> 16);
	}
	junk[0] = 'M'; /* not "\x7fELF" */
	CHECK(parse(junk, sizeof(junk), &img, &why) == -ENOEXEC);
	CHECK(why && strstr(why, "not an ELF or bzImage"));

	/* HdrS without the boot flag is not a bzImage either. */
	bz_build();
	wr16(bz + 0x1fe, 0);
	CHECK(parse(bz, BZ_LEN, &img, &why) == -ENOEXEC);
}

TEST(boot_image_zeros_never_crash)
{
	static uint8_t zeros[2048];
	struct boot_image img;
	const char *why;

	for (size_t n = 0; n <= sizeof(zeros); n++) {
		CHECK(parse(zeros, n, &img, &why) < 0);
		CHECK(why != NULL);
	}
}

TEST(boot_bzimage_every_truncation)
{
	struct boot_image img;
	const char *why;

	bz_build();
	for (size_t n = 0; n <= BZ_LEN; n++) {
		int r = parse(bz, n, &img, &why);
		CHECK((r == 0) == (n > BZ_KOFF));
		if (r == 0)
			CHECK(img.seg[0].file_size == n - BZ_KOFF);
		else
			CHECK(why != NULL);
	}
}

/* ---- loading ---- */

TEST(boot_image_load_copies_and_zeroes_bss)
{
	struct guest_mem m;
	struct boot_image img;
	const char *why;
	uint8_t *seg0, *seg1;

	REQUIRE(guest_mem_create(&m, 64 << 20) == 0);
	elf_build(4, ELF_PVH);
	REQUIRE(parse(elf, ELF_LEN, &img, &why) == 0);
	seg0 = guest_mem_ptr(&m, ELF_SEG0_PADDR, ELF_SEG0_MEMSZ);
	seg1 = guest_mem_ptr(&m, ELF_SEG1_PADDR, ELF_SEG1_MEMSZ);
	REQUIRE(seg0 && seg1);
	memset(seg0, 0xcc, ELF_SEG0_MEMSZ + 16);
	REQUIRE(boot_image_load(&img, elf, &m) == 0);
	CHECK(memcmp(seg0, elf + ELF_SEG0_OFF, ELF_SEG0_FILESZ) == 0);
	for (size_t i = ELF_SEG0_FILESZ; i < ELF_SEG0_MEMSZ; i++)
		if (seg0[i] != 0) {
			CHECK(seg0[i] == 0);
			break;
		}
	CHECK(seg0[ELF_SEG0_MEMSZ] == 0xcc); /* nothing written past mem_size */
	CHECK(memcmp(seg1, elf + ELF_SEG1_OFF, ELF_SEG1_FILESZ) == 0);

	/* bzImage: the protected-mode kernel lands at 1 MiB. */
	bz_build();
	REQUIRE(parse(bz, BZ_LEN, &img, &why) == 0);
	REQUIRE(boot_image_load(&img, bz, &m) == 0);
	CHECK(memcmp(guest_mem_ptr(&m, 0x100000, BZ_KLEN), bz + BZ_KOFF, BZ_KLEN) == 0);
	guest_mem_destroy(&m);
}

TEST(boot_image_load_outside_ram)
{
	struct guest_mem m;
	struct boot_image img;
	const char *why;
	Elf64_Phdr ph;

	REQUIRE(guest_mem_create(&m, 64 << 20) == 0);
	elf_build(4, ELF_PVH);
	ph = elf_get_phdr(3);
	ph.p_paddr = (64 << 20) - 0x100; /* straddles the end of RAM */
	elf_put_phdr(3, &ph);
	REQUIRE(parse(elf, ELF_LEN, &img, &why) == 0);
	CHECK(boot_image_load(&img, elf, &m) == -EFAULT);

	ph.p_paddr = 0xc0000000; /* the MMIO hole */
	elf_put_phdr(3, &ph);
	REQUIRE(parse(elf, ELF_LEN, &img, &why) == 0);
	CHECK(boot_image_load(&img, elf, &m) == -EFAULT);

	ph.p_paddr = (64 << 20) - ELF_SEG1_MEMSZ; /* the last bytes of RAM */
	elf_put_phdr(3, &ph);
	REQUIRE(parse(elf, ELF_LEN, &img, &why) == 0);
	CHECK(boot_image_load(&img, elf, &m) == 0);
	guest_mem_destroy(&m);
}

/* ---- initrd placement ---- */

TEST(boot_params_initrd_placement)
{
	struct guest_mem m;
	struct boot_image img;
	const char *why;
	uint64_t gpa = 0;
	uint64_t size = (1 << 20) + 5;

	guest_mem_layout(&m, 64 << 20);
	bz_build();
	REQUIRE(parse(bz, BZ_LEN, &img, &why) == 0);
	REQUIRE(boot_place_initrd(&m, &img, size, &gpa) == 0);
	CHECK(gpa % 4096 == 0);
	CHECK(gpa + size <= (64 << 20));
	CHECK(gpa + size > (64 << 20) - 4096); /* as high as possible */
	CHECK(gpa >= img.end);

	/* initrd_addr_max is inclusive: the initrd ends at or below it + 1. */
	guest_mem_layout(&m, 2ULL << 30);
	wr32(bz + 0x22c, 0x37ffffff);
	REQUIRE(parse(bz, BZ_LEN, &img, &why) == 0);
	REQUIRE(boot_place_initrd(&m, &img, size, &gpa) == 0);
	CHECK(gpa + size <= 0x38000000);
	CHECK(gpa + size > 0x38000000 - 4096);
	REQUIRE(boot_place_initrd(&m, &img, 1 << 20, &gpa) == 0);
	CHECK(gpa == 0x38000000 - (1 << 20)); /* a page-multiple size ends exactly at the limit */

	/* An ELF has no initrd_addr_max: stays below 2 GiB even with 3 GiB of low RAM. */
	guest_mem_layout(&m, 3ULL << 30);
	elf_build(4, ELF_PVH);
	REQUIRE(parse(elf, ELF_LEN, &img, &why) == 0);
	REQUIRE(boot_place_initrd(&m, &img, size, &gpa) == 0);
	CHECK(gpa + size <= 0x80000000ULL);
	CHECK(gpa + size > 0x80000000ULL - 4096);
	CHECK(gpa % 4096 == 0);
}

TEST(boot_params_initrd_too_big)
{
	struct guest_mem m;
	struct boot_image img;
	const char *why;
	uint64_t gpa = 0x1234;

	guest_mem_layout(&m, 64 << 20);
	bz_build(); /* end = 48 MiB */
	REQUIRE(parse(bz, BZ_LEN, &img, &why) == 0);
	CHECK(boot_place_initrd(&m, &img, 65 << 20, &gpa) == -ENOSPC);
	CHECK(boot_place_initrd(&m, &img, UINT64_MAX, &gpa) == -ENOSPC);
	/* Would overlap the memory the kernel decompresses into. */
	CHECK(boot_place_initrd(&m, &img, (16 << 20) + 1, &gpa) == -ENOSPC);
	CHECK(gpa == 0x1234);
	/* Exactly the room between the kernel's end and the end of RAM fits. */
	REQUIRE(boot_place_initrd(&m, &img, 16 << 20, &gpa) == 0);
	CHECK(gpa == 48 << 20);
}

/* ---- zero page, PVH start_info, vCPU state ---- */

#define MEM_SIZE (64ULL << 20)

static void check_e820_copy(const struct guest_mem *m, const uint8_t *table, size_t stride,
			    unsigned int n)
{
	struct e820_entry e[E820_MAX];
	unsigned int want = e820_build(m, e);

	CHECK(n == want);
	for (unsigned int i = 0; i < n && i < want; i++) {
		CHECK(rd64(table + i * stride) == e[i].addr);
		CHECK(rd64(table + i * stride + 8) == e[i].size);
		CHECK(rd32(table + i * stride + 16) == e[i].type);
	}
}

static void check_identity_tables(const struct guest_mem *m)
{
	const uint8_t *pml4 = guest_mem_ptr(m, LAYOUT_PML4, 4096);
	const uint8_t *pdpt = guest_mem_ptr(m, LAYOUT_PDPT, 4096);
	const uint8_t *pd = guest_mem_ptr(m, LAYOUT_PD, 4 * 4096);
	struct gva_ctx c = { .cr0 = 0x80000011, .cr3 = LAYOUT_PML4, .cr4 = 0x20, .efer = 0x500 };
	const uint64_t probe[] = {
		0, 0x100200, 0x1fffff, 0x200000, 0xbfffffffULL, 0xfee00000ULL, 0xffffffffULL
	};
	uint64_t gpa;

	CHECK((rd64(pml4) & ~0xfffULL) == LAYOUT_PDPT);
	CHECK(rd64(pml4) & 1);
	CHECK(rd64(pml4 + 8) == 0);
	for (int i = 0; i < 4; i++)
		CHECK((rd64(pdpt + i * 8) & ~0xfffULL) == LAYOUT_PD + (uint64_t)i * 4096);
	CHECK(rd64(pdpt + 4 * 8) == 0);
	CHECK(rd64(pd) == 0x83);
	CHECK(rd64(pd + 8) == (0x200000 | 0x83));
	CHECK(rd64(pd + 511 * 8) == (0x3fe00000 | 0x83));
	CHECK(rd64(pd + 512 * 8) == (0x40000000 | 0x83));
	CHECK(rd64(pd + 2047 * 8) == (0xffe00000ULL | 0x83));
	/* Walked the way the CPU does, every probe maps to itself. */
	for (size_t i = 0; i < sizeof(probe) / sizeof(probe[0]); i++) {
		CHECK(gva_translate(m, &c, probe[i], true, &gpa) == 0 && gpa == probe[i]);
	}
	CHECK(gva_translate(m, &c, 0x100000000ULL, false, &gpa) == -EFAULT);
}

TEST(boot_params_linux64_bzimage)
{
	struct guest_mem m;
	struct boot_image img;
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	const char *why;
	const char *cmd = "console=ttyS0 root=/dev/vda";

	REQUIRE(guest_mem_create(&m, MEM_SIZE) == 0);
	bz_build();
	REQUIRE(parse(bz, BZ_LEN, &img, &why) == 0);
	struct boot_setup b = { .img = &img,
				.file = bz,
				.entry = BOOT_ENTRY_LINUX64,
				.cmdline = cmd,
				.initrd_gpa = 0x3c00000,
				.initrd_size = 0x123456,
				.rsdp_gpa = 0xe0000 };
	uint8_t *bp = guest_mem_ptr(&m, LAYOUT_ZERO_PAGE, 4096);
	memset(bp, 0xee, 4096);
	REQUIRE(boot_write_params(&m, &b) == 0);

	CHECK(rd32(bp + BP_HDR_CMD_LINE_PTR) == LAYOUT_CMDLINE);
	CHECK(strcmp(guest_mem_ptr(&m, LAYOUT_CMDLINE, strlen(cmd) + 1), cmd) == 0);
	CHECK(rd32(bp + BP_HDR_RAMDISK_IMAGE) == 0x3c00000);
	CHECK(rd32(bp + BP_HDR_RAMDISK_SIZE) == 0x123456);
	CHECK(rd64(bp + BP_ACPI_RSDP) == 0xe0000);
	CHECK(bp[BP_HDR_TYPE_OF_LOADER] == 0xff);
	CHECK(bp[BP_HDR_LOADFLAGS] & 0x01);
	/* The setup header is the kernel's own. */
	CHECK(memcmp(bp + 0x202, "HdrS", 4) == 0);
	CHECK(rd32(bp + 0x260) == 0x2000000);
	CHECK(rd32(bp + 0x238) == 2047);
	/* Outside the header the zero page is cleared. */
	CHECK(bp[0] == 0 && bp[0x100] == 0 && bp[4095] == 0);
	CHECK(bp[BZ_HDR_END] == 0);
	check_e820_copy(&m, bp + BP_E820_TABLE, 20, bp[BP_E820_ENTRIES]);
	check_identity_tables(&m);

	/* GDT entry for the 64-bit code selector has L set, D clear. */
	uint64_t code64 = rd64((uint8_t *)guest_mem_ptr(&m, LAYOUT_GDT, 40) + 0x10);
	CHECK(code64 & (1ULL << 53));
	CHECK(!(code64 & (1ULL << 54)));
	CHECK(code64 & (1ULL << 47)); /* present */

	memset(&sregs, 0xa5, sizeof(sregs));
	boot_cpu_state(&b, &regs, &sregs);
	CHECK(regs.rip == 0x100200);
	CHECK(regs.rsi == LAYOUT_ZERO_PAGE);
	CHECK(regs.rflags == 0x2);
	CHECK((sregs.cr0 & 0x80000001) == 0x80000001);
	CHECK(sregs.cr3 == LAYOUT_PML4);
	CHECK(sregs.cr4 & 0x20);
	CHECK((sregs.efer & 0x500) == 0x500);
	CHECK(sregs.cs.l == 1 && sregs.cs.db == 0);
	CHECK(sregs.cs.selector == 0x10);
	CHECK(sregs.ds.selector == 0x18 && sregs.ss.selector == 0x18);
	CHECK(sregs.gdt.base == LAYOUT_GDT);
	CHECK(sregs.tr.present && !sregs.tr.unusable);
	guest_mem_destroy(&m);
}

TEST(boot_params_linux64_vmlinux_synthesises_header)
{
	struct guest_mem m;
	struct boot_image img;
	const char *why;

	REQUIRE(guest_mem_create(&m, MEM_SIZE) == 0);
	elf_build(4, ELF_PVH);
	REQUIRE(parse(elf, ELF_LEN, &img, &why) == 0);
	struct boot_setup b = { .img = &img,
				.file = elf,
				.entry = BOOT_ENTRY_LINUX64,
				.cmdline = "",
				.rsdp_gpa = 0xe0000 };
	REQUIRE(boot_write_params(&m, &b) == 0);
	const uint8_t *bp = guest_mem_ptr(&m, LAYOUT_ZERO_PAGE, 4096);
	CHECK(bp[0x1fe] == 0x55 && bp[0x1ff] == 0xaa);
	CHECK(memcmp(bp + 0x202, "HdrS", 4) == 0);
	CHECK((bp[0x206] | bp[0x207] << 8) >= 0x020a);
	CHECK(rd32(bp + 0x238) >= 2047);
	CHECK(rd32(bp + BP_HDR_RAMDISK_SIZE) == 0);
	CHECK(*(const char *)guest_mem_ptr(&m, LAYOUT_CMDLINE, 1) == 0);
	check_e820_copy(&m, bp + BP_E820_TABLE, 20, bp[BP_E820_ENTRIES]);

	struct kvm_regs regs;
	struct kvm_sregs sregs;
	boot_cpu_state(&b, &regs, &sregs);
	CHECK(regs.rip == ELF_ENTRY);
	CHECK(regs.rsi == LAYOUT_ZERO_PAGE);
	guest_mem_destroy(&m);
}

TEST(boot_params_pvh_start_info)
{
	struct guest_mem m;
	struct boot_image img;
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	const char *why;

	REQUIRE(guest_mem_create(&m, MEM_SIZE) == 0);
	elf_build(4, ELF_PVH);
	REQUIRE(parse(elf, ELF_LEN, &img, &why) == 0);
	struct boot_setup b = { .img = &img,
				.file = elf,
				.entry = BOOT_ENTRY_PVH,
				.cmdline = "quiet",
				.initrd_gpa = 0x3000000,
				.initrd_size = 0x4321,
				.rsdp_gpa = 0xe0000 };
	REQUIRE(boot_write_params(&m, &b) == 0);

	const uint8_t *si = guest_mem_ptr(&m, LAYOUT_PVH_START_INFO, 56);
	CHECK(rd32(si) == 0x336ec578);
	CHECK(rd32(si + 4) >= 1);  /* version */
	CHECK(rd32(si + 12) == 1); /* nr_modules */
	uint64_t modlist = rd64(si + 16);
	CHECK(rd64(si + 24) == LAYOUT_CMDLINE);
	CHECK(rd64(si + 32) == 0xe0000);
	uint64_t memmap = rd64(si + 40);
	uint32_t nmap = rd32(si + 48);
	const uint8_t *mod = guest_mem_ptr(&m, modlist, 32);
	REQUIRE(mod);
	CHECK(rd64(mod) == 0x3000000);
	CHECK(rd64(mod + 8) == 0x4321);
	const uint8_t *map = guest_mem_ptr(&m, memmap, (uint64_t)nmap * 24);
	REQUIRE(map);
	check_e820_copy(&m, map, 24, nmap);
	CHECK(strcmp(guest_mem_ptr(&m, LAYOUT_CMDLINE, 6), "quiet") == 0);
	/* The tables must not overlap start_info itself. */
	CHECK(modlist >= LAYOUT_PVH_START_INFO + 56 && memmap >= LAYOUT_PVH_START_INFO + 56);
	CHECK(memmap + nmap * 24 <= LAYOUT_ZERO_PAGE);

	boot_cpu_state(&b, &regs, &sregs);
	CHECK(regs.rip == ELF_PVH);
	CHECK(regs.rbx == LAYOUT_PVH_START_INFO);
	CHECK(sregs.cr0 & 1);
	CHECK(!(sregs.cr0 & 0x80000000));
	CHECK(!(sregs.efer & 0x500));
	CHECK(sregs.cs.db == 1 && sregs.cs.l == 0);
	CHECK(sregs.cs.selector == 0x08);
	CHECK(sregs.cs.limit == 0xffffffff && sregs.cs.base == 0);

	/* Without an initrd there is no module. */
	b.initrd_size = 0;
	REQUIRE(boot_write_params(&m, &b) == 0);
	CHECK(rd32(si + 12) == 0);
	guest_mem_destroy(&m);
}

TEST(boot_params_linux32_entry)
{
	struct boot_image img;
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	const char *why;

	bz_build();
	wr16(bz + 0x236, 0);
	REQUIRE(parse(bz, BZ_LEN, &img, &why) == 0);
	struct boot_setup b = {
		.img = &img, .file = bz, .entry = BOOT_ENTRY_LINUX32, .cmdline = ""
	};
	boot_cpu_state(&b, &regs, &sregs);
	CHECK(regs.rip == 0x100000);
	CHECK(regs.rsi == LAYOUT_ZERO_PAGE);
	CHECK(regs.rbx == 0);
	CHECK(!(sregs.cr0 & 0x80000000) && (sregs.cr0 & 1));
	CHECK(sregs.efer == 0);
	CHECK(sregs.cs.db == 1 && sregs.cs.l == 0);
	/* Boot protocol: CS is __BOOT_CS (0x10), and that descriptor is 32-bit code. */
	CHECK(sregs.cs.selector == 0x10);
	struct guest_mem m;
	REQUIRE(guest_mem_create(&m, MEM_SIZE) == 0);
	REQUIRE(boot_write_params(&m, &b) == 0);
	uint64_t desc;
	memcpy(&desc, guest_mem_ptr(&m, LAYOUT_GDT + 0x10, 8), 8);
	CHECK(((desc >> 53) & 1) == 0); /* L clear */
	CHECK(((desc >> 54) & 1) == 1); /* D set */
	CHECK(((desc >> 43) & 1) == 1); /* code */
	guest_mem_destroy(&m);
}

TEST(boot_params_cmdline_too_long)
{
	struct guest_mem m;
	struct boot_image img;
	const char *why;
	char *cmd = malloc(LAYOUT_CMDLINE_MAX + 1);

	REQUIRE(cmd);
	REQUIRE(guest_mem_create(&m, MEM_SIZE) == 0);
	bz_build(); /* cmdline_size 2047 */
	REQUIRE(parse(bz, BZ_LEN, &img, &why) == 0);
	struct boot_setup b = {
		.img = &img, .file = bz, .entry = BOOT_ENTRY_LINUX64, .cmdline = cmd
	};
	memset(cmd, 'x', 2047);
	cmd[2047] = 0;
	CHECK(boot_write_params(&m, &b) == 0);
	CHECK(((char *)guest_mem_ptr(&m, LAYOUT_CMDLINE, 2048))[2046] == 'x');
	cmd[2047] = 'x';
	cmd[2048] = 0;
	CHECK(boot_write_params(&m, &b) == -E2BIG);

	/* A vmlinux has no limit of its own: tern's 64 KiB area is the limit. */
	elf_build(4, ELF_PVH);
	REQUIRE(parse(elf, ELF_LEN, &img, &why) == 0);
	b.file = elf;
	memset(cmd, 'y', LAYOUT_CMDLINE_MAX - 1);
	cmd[LAYOUT_CMDLINE_MAX - 1] = 0;
	CHECK(boot_write_params(&m, &b) == 0);
	cmd[LAYOUT_CMDLINE_MAX - 1] = 'y';
	cmd[LAYOUT_CMDLINE_MAX] = 0;
	CHECK(boot_write_params(&m, &b) == -E2BIG);
	b.entry = BOOT_ENTRY_PVH;
	CHECK(boot_write_params(&m, &b) == -E2BIG);
	guest_mem_destroy(&m);
	free(cmd);
}

TEST(boot_params_ram_too_small)
{
	struct guest_mem m;
	struct boot_image img;
	const char *why;

	REQUIRE(guest_mem_create(&m, 512 << 10) == 0);
	elf_build(4, ELF_PVH);
	REQUIRE(parse(elf, ELF_LEN, &img, &why) == 0);
	struct boot_setup b = {
		.img = &img, .file = elf, .entry = BOOT_ENTRY_LINUX64, .cmdline = "x"
	};
	CHECK(boot_write_params(&m, &b) == -EFAULT);
	guest_mem_destroy(&m);
}
