/* COM1 output: poll LSR.THRE, then write THR. */
#include "tiny.h"

#define COM1 0x3f8
#define UART_THR 0
#define UART_LSR 5
#define LSR_THRE 0x20

void serial_putc(char c)
{
	/* Bounded: a UART that never gets ready must not hang the guest silently. */
	for (int i = 0; i < 100000 && !(inb(COM1 + UART_LSR) & LSR_THRE); i++)
		cpu_relax();
	outb(COM1 + UART_THR, (uint8_t)c);
}
