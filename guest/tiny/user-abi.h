/* System calls between the user guest's ring-3 program (user-ring3.S) and its kernel (user.c) */
#ifndef TINY_USER_ABI_H
#define TINY_USER_ABI_H

#define SYS_SUM 1      /* rdi = the loop's sum; rsi/rdx = the RCX/R11 to expect; returns rdi + 1 */
#define SYS_CHECK_GP 2 /* rdi = RIP of the hlt that must have raised #GP */
#define SYS_EXIT 3
#define SYS_FAIL 4	    /* rdi = the ring-3 step that failed */
#define INT80_MAGIC 0x8080  /* what int $0x80 returns in rax */
#define LOOP_SUM 5000050000 /* 1 + ... + 100000 */

#endif
