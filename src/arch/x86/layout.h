/*
 * Fixed guest-physical addresses tern uses on x86 before the guest takes over.
 * Everything below 1 MiB that the guest must not reuse is reserved in the e820 map.
 */
#ifndef TERN_ARCH_X86_LAYOUT_H
#define TERN_ARCH_X86_LAYOUT_H

#define LAYOUT_GDT 0x500ULL		/* boot GDT: null, code32, code64, data, tss */
#define LAYOUT_IDT 0x540ULL		/* empty IDT for the boot CPU */
#define LAYOUT_PVH_START_INFO 0x6000ULL /* struct hvm_start_info + memmap + modules */
#define LAYOUT_ZERO_PAGE 0x7000ULL	/* Linux struct boot_params */
#define LAYOUT_PML4 0x9000ULL		/* identity page tables for 64-bit entry */
#define LAYOUT_PDPT 0xa000ULL
#define LAYOUT_PD 0xb000ULL /* 4 pages: 4 GiB in 2 MiB pages, up to 0xf000 */
#define LAYOUT_BOOT_STACK 0x8ff0ULL
#define LAYOUT_CMDLINE 0x20000ULL
#define LAYOUT_CMDLINE_MAX 0x10000ULL /* 64 KiB, above what Linux accepts (2 KiB..) */
#define LAYOUT_EBDA 0x9fc00ULL	      /* start of the reserved area below 640 KiB */
#define LAYOUT_BIOS_START 0xe0000ULL  /* reserved ROM area: ACPI tables live here */
#define LAYOUT_ACPI_BASE 0xe0000ULL   /* RSDP first (found by the legacy scan too) */
#define LAYOUT_ACPI_SIZE 0x1f000ULL   /* what acpi_build() may fill; tables take a few KiB */
/*
 * The VM generation ID (src/devices/vmgenid.h): 16 bytes in the last page of the reserved
 * ROM area, past everything acpi_build() is given, so no table can grow over it and the
 * guest never takes it for RAM. The ID spec asks for 8-byte alignment.
 */
#define LAYOUT_VMGENID_ADDR 0xff000ULL
#define LAYOUT_VMGENID_SIZE 16ULL
#define LAYOUT_RESET_VECTOR 0xffff0ULL	  /* F000:FFF0, the last 16 bytes below 1 MiB */
#define LAYOUT_HIMEM 0x100000ULL	  /* 1 MiB */
#define LAYOUT_KERNEL_BZIMAGE 0x100000ULL /* protected-mode kernel of a bzImage */

/* The MMIO hole [3 GiB, 4 GiB): device windows, then the IOAPIC and LAPIC. */
#define LAYOUT_PCI_MMIO_BASE 0xc0000000ULL    /* 32-bit PCI BAR window */
#define LAYOUT_PCI_MMIO_SIZE 0x10000000ULL    /* 256 MiB */
#define LAYOUT_VIRTIO_MMIO_BASE 0xd0000000ULL /* virtio-mmio device i at base + i * 0x1000 */
#define LAYOUT_VIRTIO_MMIO_STRIDE 0x1000ULL
#define LAYOUT_VIRTIO_MMIO_MAX 7 /* pins 16..22; 23 is IRQ_GED */
#define LAYOUT_IOAPIC 0xfec00000ULL
#define LAYOUT_LAPIC 0xfee00000ULL

/* Port-I/O devices */
#define PORT_SERIAL_COM1 0x3f8
#define IRQ_SERIAL_COM1 4
#define PORT_I8042_DATA 0x60
#define PORT_I8042_CMD 0x64
#define IRQ_I8042_KBD 1
#define PORT_RTC 0x70
#define IRQ_RTC 8
#define PORT_ACPI_SLEEP_CTL 0x600 /* HW-reduced ACPI sleep control register */
#define PORT_ACPI_SLEEP_STS 0x601 /* HW-reduced ACPI sleep status register */
#define PORT_ACPI_RESET 0x602	  /* FADT reset register */
#define ACPI_RESET_VALUE 0x1
#define PORT_GED 0x604		   /* Generic Event Device's event selector, 4 bytes */
#define PORT_PCI_RESET 0xcf9	   /* PIIX-style reset control, used by reboot=pci */
#define PORT_DEBUG_EXIT 0x501	   /* test-only: tern-vmm exits with the byte written */
#define PORT_PCI_CONFIG_ADDR 0xcf8 /* PCI configuration mechanism #1 */
#define PORT_PCI_CONFIG_DATA 0xcfc

/*
 * Interrupts: IOAPIC pins 16..23 are free of ISA devices (and of the 8259s, so their
 * trigger mode is whatever the DSDT says); virtio-mmio device i uses 16 + i, and the
 * last pin is the Generic Event Device's (VM generation ID changes, the power button).
 */
#define IRQ_VIRTIO_MMIO_BASE 16
#define IRQ_GED 23
#define IOAPIC_PINS 24
/* GSIs from here up are MSI routes (virtio-pci MSI-X vectors). */
#define GSI_MSI_BASE 24

_Static_assert(LAYOUT_ACPI_BASE + LAYOUT_ACPI_SIZE <= LAYOUT_VMGENID_ADDR,
	       "ACPI tables must stop short of the VM generation ID");
_Static_assert(LAYOUT_VMGENID_ADDR % 8 == 0 && LAYOUT_VMGENID_ADDR >= LAYOUT_BIOS_START &&
		       LAYOUT_VMGENID_ADDR + LAYOUT_VMGENID_SIZE <= LAYOUT_HIMEM,
	       "the VM generation ID sits 8-byte aligned in the e820-reserved ROM area");
_Static_assert(LAYOUT_VMGENID_ADDR + LAYOUT_VMGENID_SIZE <= LAYOUT_RESET_VECTOR,
	       "the VM generation ID stops short of the reset vector");
_Static_assert(IRQ_VIRTIO_MMIO_BASE + LAYOUT_VIRTIO_MMIO_MAX <= IRQ_GED && IRQ_GED < IOAPIC_PINS,
	       "virtio-mmio pins stop short of the Generic Event Device's pin, an IOAPIC pin");

#endif
