/* A reset through the i8042 (command 0xfe) must end the VM before "still alive" prints. */
#include "tiny.h"

TINY_GUEST("reset");

#define I8042_STATUS 0x64
#define I8042_COMMAND 0x64
#define STATUS_INPUT_FULL 0x02
#define CMD_PULSE_RESET 0xfe

int main(void)
{
	for (int i = 0; i < 1000 && (inb(I8042_STATUS) & STATUS_INPUT_FULL); i++)
		cpu_relax();
	SAY("resetting through the i8042");
	outb(I8042_COMMAND, CMD_PULSE_RESET);
	tiny_delay_cycles(300000000); /* ~0.1 s: time for a VMM that resets asynchronously */
	SAY("still alive");
	return TINY_EXIT_ALIVE;
}
