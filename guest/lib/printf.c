/*
 * printf-lite: %d %i %u %x %X %p %s %c %% with an optional 0 flag, a width and
 * the l, ll, z length modifiers. One lock keeps lines from several vCPUs whole.
 */
#include "tiny.h"

static tiny_lock_t print_lock;

static void put_num(uint64_t v, unsigned int base, bool upper, bool neg, int width, char pad)
{
	const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
	char buf[24];
	int n = 0;

	do {
		buf[n++] = digits[v % base];
		v /= base;
	} while (v);
	if (neg)
		width--;
	if (neg && pad == '0')
		serial_putc('-');
	for (; width > n; width--)
		serial_putc(pad);
	if (neg && pad != '0')
		serial_putc('-');
	while (n)
		serial_putc(buf[--n]);
}

static void format(const char *fmt, va_list ap)
{
	for (; *fmt; fmt++) {
		if (*fmt != '%') {
			serial_putc(*fmt);
			continue;
		}
		char pad = ' ';
		int width = 0, lng = 0;
		if (*++fmt == '0') {
			pad = '0';
			fmt++;
		}
		while (*fmt >= '0' && *fmt <= '9')
			width = width * 10 + (*fmt++ - '0');
		while (*fmt == 'l' || *fmt == 'z') {
			lng++;
			fmt++;
		}
		switch (*fmt) {
		case 'd':
		case 'i': {
			int64_t v = lng ? va_arg(ap, int64_t) : va_arg(ap, int);
			put_num(v < 0 ? -(uint64_t)v : (uint64_t)v, 10, false, v < 0, width, pad);
			break;
		}
		case 'u':
		case 'x':
		case 'X': {
			uint64_t v = lng ? va_arg(ap, uint64_t) : va_arg(ap, unsigned int);
			put_num(v, *fmt == 'u' ? 10 : 16, *fmt == 'X', false, width, pad);
			break;
		}
		case 'p':
			serial_putc('0');
			serial_putc('x');
			put_num((uint64_t)va_arg(ap, void *), 16, false, false, width, pad);
			break;
		case 's': {
			const char *s = va_arg(ap, const char *);
			if (!s)
				s = "(null)";
			for (int n = (int)strlen(s); width > n; width--)
				serial_putc(' ');
			while (*s)
				serial_putc(*s++);
			break;
		}
		case 'c':
			serial_putc((char)va_arg(ap, int));
			break;
		case '%':
			serial_putc('%');
			break;
		case '\0':
			return;
		default:
			serial_putc('%');
			serial_putc(*fmt);
		}
	}
}

void tiny_vprintf(const char *fmt, va_list ap)
{
	tiny_lock(&print_lock);
	format(fmt, ap);
	tiny_unlock(&print_lock);
}

void tiny_printf(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	tiny_vprintf(fmt, ap);
	va_end(ap);
}

/* For the fatal-exception path: a fault inside printf must not deadlock the report. */
void tiny_printf_break_lock(void);
void tiny_printf_break_lock(void)
{
	tiny_unlock(&print_lock);
}
