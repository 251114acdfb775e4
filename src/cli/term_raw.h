/*
 * The terminal in raw mode for `tern console`, and back the way it was on every way
 * out: term_raw_restore, exit() (atexit), and the signals that would end tern.
 */
#ifndef TERN_CLI_TERM_RAW_H
#define TERN_CLI_TERM_RAW_H

/* Raw mode on fd (a terminal): keys go to the guest as bytes, ^C included. 0 or -errno. */
int term_raw_enter(int fd);
/* Puts back the settings term_raw_enter found; safe to call more than once. */
void term_raw_restore(void);

#endif
