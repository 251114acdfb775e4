/* Collecting what goes into a jail: each path the VM opens, once, with what it may do there. */
#include "jail/jail.h"
#include "core/util.h"

#include <elf.h>
#include <errno.h>
#include <limits.h>
#include <link.h>
#include <sys/auxv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * path made absolute from the working directory and cleaned lexically ("//", ".", ".."):
 * the jail's tmpfs has no symbolic links, so the jailed process resolves it the same way.
 */
static char *absolute(const char *path)
{
	char cwd[PATH_MAX], *in, *out;
	size_t len;

	if (path[0] == '/') {
		in = strdup(path);
	} else {
		if (!getcwd(cwd, sizeof(cwd)))
			return NULL;
		len = strlen(cwd) + strlen(path) + 2;
		in = malloc(len);
		if (in)
			snprintf(in, len, "%s/%s", cwd, path);
	}
	if (!in)
		return NULL;
	out = calloc(1, strlen(in) + 2);
	if (!out) {
		free(in);
		return NULL;
	}
	size_t o = 0;
	char *save = NULL;
	for (char *c = strtok_r(in, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
		if (!strcmp(c, "."))
			continue;
		if (!strcmp(c, "..")) {
			while (o > 0 && out[o - 1] != '/')
				o--;
			if (o > 0)
				o--; /* the slash before it */
			out[o] = 0;
			continue;
		}
		out[o++] = '/';
		strcpy(out + o, c);
		o += strlen(c);
	}
	if (o == 0)
		strcpy(out, "/");
	free(in);
	return out;
}

/* Which of two kinds a path keeps when it is added twice: the one that allows more. */
static enum jail_kind wider(enum jail_kind a, enum jail_kind b)
{
	static const int rank[] = { [JAIL_READ] = 0,
				    [JAIL_EXEC] = 1,
				    [JAIL_WRITE] = 2,
				    [JAIL_DIR] = 3,
				    [JAIL_DEVICE] = 3 };
	return rank[b] > rank[a] ? b : a;
}

int jail_add(struct jail_entries *s, const char *path, enum jail_kind kind, char *err, size_t n)
{
	char *p = absolute(path);

	if (!p)
		return fail_msg(err, n, -ENOMEM, "'%s': cannot make the path absolute: %s", path,
				strerror(errno ? errno : ENOMEM));
	/* The host's root, devices, processes and kernel are never a VM's to write in. */
	static const char *const whole[] = { "/", "/dev", "/proc", "/sys" };
	for (size_t i = 0; kind == JAIL_DIR && i < ARRAY_SIZE(whole); i++) {
		if (strcmp(p, whole[i]))
			continue;
		free(p);
		return fail_msg(err, n, -EINVAL,
				"'%s' would give the VM the host's whole %s (give it a "
				"directory of its own)",
				path, whole[i]);
	}
	for (unsigned int i = 0; i < s->n; i++) {
		if (!strcmp(s->e[i].path, p)) {
			s->e[i].kind = wider(s->e[i].kind, kind);
			free(p);
			return 0;
		}
	}
	if (s->n == JAIL_MAX_ENTRIES) {
		free(p);
		return fail_msg(err, n, -E2BIG, "more than %d paths to put in the jail",
				JAIL_MAX_ENTRIES);
	}
	s->e[s->n++] = (struct jail_entry){ .path = p, .kind = kind };
	return 0;
}

int jail_add_dir_of(struct jail_entries *s, const char *path, char *err, size_t n)
{
	char *p = absolute(path);
	int r;

	if (!p)
		return fail_msg(err, n, -ENOMEM, "'%s': cannot make the path absolute", path);
	char *slash = strrchr(p, '/');
	if (slash == p)
		slash[1] = 0; /* in / itself */
	else
		*slash = 0;
	r = jail_add(s, p, JAIL_DIR, err, n);
	free(p);
	return r;
}

struct self_walk {
	struct jail_entries *s;
	char *err;
	size_t n;
	int r;
};

/* Each object by the name the loader found it under (a soname link, through its cache). */
static int add_object(struct dl_phdr_info *info, size_t size, void *opaque)
{
	struct self_walk *w = opaque;

	if (!w->r && info->dlpi_name && info->dlpi_name[0] == '/')
		w->r = jail_add(w->s, info->dlpi_name, JAIL_EXEC, w->err, w->n);
	return 0;
}

/* The program interpreter as the executable names it (/lib64/ld-linux-x86-64.so.2). */
static const char *interpreter(void)
{
	const ElfW(Phdr) *ph = (const ElfW(Phdr) *)getauxval(AT_PHDR);
	size_t num = getauxval(AT_PHNUM);
	uintptr_t bias = 0;

	for (size_t i = 0; ph && i < num; i++)
		if (ph[i].p_type == PT_PHDR)
			bias = (uintptr_t)ph - ph[i].p_vaddr;
	for (size_t i = 0; ph && i < num; i++)
		if (ph[i].p_type == PT_INTERP)
			return (const char *)(bias + ph[i].p_vaddr);
	return NULL;
}

/*
 * tern-vmm and what --on-reboot restart needs to load it again inside the jail: the
 * interpreter, the libraries under the names the loader opened them by (its cache's, so
 * one bind each, not the link and its target too), and the cache.
 */
int jail_add_self(struct jail_entries *s, char *err, size_t n)
{
	struct self_walk w = { s, err, n, 0 };
	const char *interp = interpreter();
	char exe[PATH_MAX];
	ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	if (len <= 0)
		return fail_msg(err, n, -errno, "cannot read /proc/self/exe: %s", strerror(errno));
	exe[len] = 0;
	w.r = jail_add(s, exe, JAIL_EXEC, err, n);
	if (!w.r)
		dl_iterate_phdr(add_object, &w);
	if (!w.r && interp)
		w.r = jail_add(s, interp, JAIL_EXEC, err, n);
	if (!w.r && access("/etc/ld.so.cache", R_OK) == 0)
		w.r = jail_add(s, "/etc/ld.so.cache", JAIL_READ, err, n);
	return w.r;
}

void jail_entries_free(struct jail_entries *s)
{
	for (unsigned int i = 0; i < s->n; i++)
		free(s->e[i].path);
	s->n = 0;
}
