/* Logging and fatal-error helpers shared by every tern program. */
#ifndef TERN_CORE_LOG_H
#define TERN_CORE_LOG_H

#include <stdarg.h>
#include <stdnoreturn.h>

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

void log_set_level(enum log_level level);
enum log_level log_get_level(void);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

/* Set-up failures caused by the user's input: one line on stderr, exit status 2. */
noreturn void die_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Failures of the host or of tern itself: one line on stderr, exit status 1. */
noreturn void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
