/* Logging and fatal-error helpers shared by every tern program. */
#ifndef TERN_CORE_LOG_H
#define TERN_CORE_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdnoreturn.h>

/*
 * LOG_OFF sits below LOG_ERROR so that "level > current" filters everything; the other
 * values keep their numbers (configurations store them as int).
 */
enum log_level { LOG_OFF = -1, LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* The name that starts each line ("tern-vmm" unless set); name must outlive the log. */
void log_set_program(const char *name);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/*
 * Parses Firecracker's level names, in any case: Error, Warning (or Warn), Info, Debug,
 * Trace (= Debug: tern has nothing finer) and Off. 0, or -EINVAL with *out untouched.
 */
int log_level_parse(const char *s, enum log_level *out);

/*
 * Line format: "tern-vmm: " [level ": "] [file ":" line ": "] message. The level is
 * shown by default (tern's format since the start), the origin is not.
 */
void log_set_show_level(bool show);
void log_set_show_origin(bool show);

/*
 * Sends the log to path (a regular file, created 0600 if missing, or a named pipe)
 * instead of stderr, appending. A FIFO must have a reader already: otherwise -ENXIO
 * with "no reader on the FIFO" in err. A line that cannot be written at once (a full
 * pipe) is dropped rather than blocking the thread that logs it; see log_dropped().
 * Called again, it switches to the new path; path NULL goes back to stderr (the fd
 * number then stays a copy of stderr). 0, or -errno with a message in err.
 * Writing to a FIFO whose reader left raises SIGPIPE: tern-vmm ignores it.
 */
int log_set_file(const char *path, char *err, size_t errlen);
/* Lines lost so far because the log file or pipe refused them. */
unsigned long long log_dropped(void);
/*
 * Opens path the way log_set_file does (O_APPEND, O_NONBLOCK, close-on-exec; a FIFO
 * needs a reader), for other line-oriented outputs such as the metrics file. Returns
 * the fd, or -errno with "PATH: reason" in err.
 */
int log_open_output(const char *path, char *err, size_t errlen);

/* file may be NULL (no origin known); the macros below pass the call site. */
void log_msg_at(enum log_level level, const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg_at(LOG_ERROR, __FILE__, __LINE__, __VA_ARGS__)
#define log_warn(...) log_msg_at(LOG_WARN, __FILE__, __LINE__, __VA_ARGS__)
#define log_info(...) log_msg_at(LOG_INFO, __FILE__, __LINE__, __VA_ARGS__)
#define log_debug(...) log_msg_at(LOG_DEBUG, __FILE__, __LINE__, __VA_ARGS__)

/*
 * Set-up failures caused by the user's input: one line on stderr (whatever the level
 * and the log file; the log file gets it too), exit status 2.
 */
noreturn void die_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Failures of the host or of tern itself: as die_usage, exit status 1. */
noreturn void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
