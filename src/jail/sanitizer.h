/*
 * TERN_SANITIZER: defined in the ASan+UBSan build (make SAN=1), whose runtime needs more
 * than tern-vmm itself (its own system calls, LeakSanitizer's ptrace of the threads).
 */
#ifndef TERN_JAIL_SANITIZER_H
#define TERN_JAIL_SANITIZER_H

#if defined(__SANITIZE_ADDRESS__)
#define TERN_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TERN_SANITIZER 1
#endif
#endif

#endif
