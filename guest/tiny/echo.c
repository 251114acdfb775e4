/*
 * Serial input, interrupt driven: COM1's IRQ 4 is routed through the IOAPIC, and
 * every byte the host sends arrives in the handler. The guest prints the bytes in
 * hex once it has seen a newline (mode=wait: waits for input forever).
 */
#include "tiny.h"

TINY_GUEST("echo");

#define COM1 0x3f8
#define IOAPIC 0xfec00000UL
#define LAPIC 0xfee00000UL
/* The runtime has a stub for 0x80 besides the exceptions; any vector >= 32 would do. */
#define VEC_SERIAL 0x80

static volatile uint8_t buf[256];
static volatile unsigned int len;
static volatile bool newline;

static void ioapic_route(unsigned int pin, uint8_t vector)
{
	mmio_write32(IOAPIC, 0x10 + 2 * pin + 1); /* high half: destination APIC ID 0 */
	mmio_write32(IOAPIC + 0x10, 0);
	mmio_write32(IOAPIC, 0x10 + 2 * pin); /* low half: fixed, physical, edge, unmasked */
	mmio_write32(IOAPIC + 0x10, vector);
}

static void on_serial(struct tiny_frame *f)
{
	(void)f;
	while (inb(COM1 + 5) & 0x01) { /* LSR data ready */
		uint8_t c = inb(COM1);
		if (len < sizeof(buf))
			buf[len++] = c;
		if (c == '\n')
			newline = true;
	}
	mmio_write32(LAPIC + 0xb0, 0); /* EOI */
}

int main(void)
{
	outb(0x21, 0xff); /* mask both PICs: only the IOAPIC delivers */
	outb(0xa1, 0xff);
	mmio_write32(LAPIC + 0xf0, 0x1ff); /* software-enable the LAPIC, spurious vector 0xff */
	tiny_set_handler(VEC_SERIAL, on_serial);
	ioapic_route(4, VEC_SERIAL);
	outb(COM1 + 1, 0x01); /* IER: received-data interrupt */
	SAY("waiting for input");
	while (!newline)
		__asm__ volatile("sti; hlt; cli");
	tiny_printf("tiny: got");
	for (unsigned int i = 0; i < len; i++)
		tiny_printf(" %x", buf[i]);
	tiny_printf("\n");
	return 0;
}
