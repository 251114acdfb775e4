/* The status.vmm and status files (run_status.h). */
#include "monitor/run_status.h"
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *const vmm_reasons[] = { "poweroff",	 "reboot", "crash",
					   "debug-exit", "error",  "migrated" };

int run_status_write_file(const char *path, const char *text)
{
	size_t len = strlen(path) + 5;
	char *tmp = malloc(len);
	int fd, r;

	if (!tmp)
		return -ENOMEM;
	snprintf(tmp, len, "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	r = fd_write_all(fd, text, strlen(text));
	if (!r && fsync(fd) < 0)
		r = -errno;
	if (close(fd) < 0 && !r)
		r = -errno;
	if (!r && rename(tmp, path) < 0)
		r = -errno;
	if (r)
		unlink(tmp);
	else if ((r = fsync_dir_of(path)) == -EINVAL)
		r = 0; /* a file system whose directories cannot be synced: the rename stands */
out:
	free(tmp);
	return r;
}

/* The length of the valid UTF-8 sequence at s (at most n bytes), or 0 if it is not one. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	unsigned int cp, need;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		need = 1;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		need = 2;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		need = 3;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	if (n < need + 1)
		return 0;
	for (unsigned int i = 1; i <= need; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	/* Overlong forms, UTF-16 surrogates and code points past U+10FFFF are not text. */
	if ((need == 2 && cp < 0x800) || (need == 3 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return need + 1;
}

/* A JSON string of s with every invalid byte replaced by U+FFFD; NULL when out of memory. */
static json_object *text(const char *s)
{
	size_t n = strlen(s), o = 0;
	char *buf = malloc(3 * n + 1);

	if (!buf)
		return NULL;
	for (size_t i = 0; i < n;) {
		size_t k = utf8_len((const unsigned char *)s + i, n - i);
		if (k) {
			memcpy(buf + o, s + i, k);
			o += k;
			i += k;
		} else {
			memcpy(buf + o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
		}
	}
	json_object *j = json_object_new_string_len(buf, (int)o);
	free(buf);
	return j;
}

static char *to_text(json_object *o)
{
	char *s = NULL;

	if (o)
		s = strdup(json_object_to_json_string_ext(
			o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	return s;
}

/* Adds a member; false when v could not be made (out of memory). */
static bool add(json_object *o, const char *key, json_object *v)
{
	if (!v)
		return false;
	json_object_object_add(o, key, v);
	return true;
}

char *run_status_format_vmm(const char *reason, int exit_status, const char *message)
{
	json_object *o = json_object_new_object();

	if (!o || !add(o, "reason", json_object_new_string(reason)) ||
	    !add(o, "exit_status", json_object_new_int(exit_status)) ||
	    !add(o, "message", text(message ? message : ""))) {
		json_object_put(o);
		return NULL;
	}
	return to_text(o);
}

/*
 * PROGRAM may be a jailed tern-vmm that a hostile guest took over, writing in a directory
 * it owns: a symlink (to a file only root may read), a FIFO (that would block the
 * monitor) or a huge file is not its status.
 */
static int read_status_vmm(const char *path, uint8_t **buf, size_t *len)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	struct stat st;
	ssize_t got;

	if (fd < 0)
		return errno == ELOOP ? -EINVAL : -errno;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_size > RUN_STATUS_VMM_MAX) {
		close(fd);
		return -EINVAL;
	}
	*buf = malloc((size_t)st.st_size + 1);
	got = *buf ? read(fd, *buf, (size_t)st.st_size) : -1;
	close(fd);
	if (got < 0) {
		free(*buf);
		return -EIO;
	}
	*len = (size_t)got;
	return 0;
}

int run_status_read_vmm(const char *path, struct run_status_vmm *out)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	int r = read_status_vmm(path, &buf, &len);

	if (r)
		return r;
	json_tokener *tok = json_tokener_new_ex(4);
	json_object *o = tok ? json_tokener_parse_ex(tok, (const char *)buf, (int)len) : NULL;
	json_object *reason, *status, *message;
	if (tok)
		json_tokener_free(tok);
	free(buf);
	r = -EINVAL;
	if (!o || !json_object_object_get_ex(o, "reason", &reason) ||
	    !json_object_is_type(reason, json_type_string) ||
	    !json_object_object_get_ex(o, "exit_status", &status) ||
	    !json_object_is_type(status, json_type_int) ||
	    !json_object_object_get_ex(o, "message", &message) ||
	    !json_object_is_type(message, json_type_string))
		goto out;
	for (size_t i = 0; i < ARRAY_SIZE(vmm_reasons); i++) {
		if (!strcmp(json_object_get_string(reason), vmm_reasons[i])) {
			snprintf(out->reason, sizeof(out->reason), "%s", vmm_reasons[i]);
			out->exit_status = json_object_get_int(status);
			snprintf(out->message, sizeof(out->message), "%s",
				 json_object_get_string(message));
			r = 0;
			break;
		}
	}
out:
	json_object_put(o);
	return r;
}

char *run_status_compose(const struct run_status_in *in)
{
	int exit_status = -1, sig = 0;
	const char *reason = "error", *message = in->failure;
	char why[256], ended[32];

	if (in->ran && WIFSIGNALED(in->wait_status)) {
		sig = WTERMSIG(in->wait_status);
		exit_status = 128 + sig; /* as a shell (and conmon) reports it */
	} else if (in->ran) {
		exit_status = WEXITSTATUS(in->wait_status);
	}
	if (in->vmm) {
		reason = in->vmm->reason;
		message = in->vmm->message;
	} else if (sig) {
		reason = "killed";
		snprintf(why, sizeof(why), "%s was killed by signal %d (%s)", in->program, sig,
			 strsignal(sig));
		/* A seccomp refusal (docs/security.md): its last line names the call and thread. */
		if (sig == SIGSYS && in->last_log_line && strstr(in->last_log_line, "seccomp:"))
			snprintf(why + strlen(why), sizeof(why) - strlen(why), ": %.180s",
				 in->last_log_line);
		message = why;
	} else if (!message && in->last_log_line && *in->last_log_line) {
		message = in->last_log_line;
	} else if (!message) {
		snprintf(why, sizeof(why), "%s exited with status %d and left no status.vmm",
			 in->program, exit_status);
		message = why;
	}
	snprintf(ended, sizeof(ended), "%.3f", in->ended_at);

	json_object *o = json_object_new_object(), *tail = json_object_new_array();
	bool ok = o && tail;
	ok = ok && add(o, "exit_status", json_object_new_int(exit_status));
	ok = ok && add(o, "signal", json_object_new_int(sig));
	ok = ok && add(o, "reason", json_object_new_string(reason));
	ok = ok && add(o, "ended_at", json_object_new_double_s(in->ended_at, ended));
	ok = ok && add(o, "message", text(message));
	for (size_t i = 0; ok && i < in->ntail; i++) {
		json_object *line = text(in->tail[i]);
		ok = line && json_object_array_add(tail, line) == 0;
		if (line && !ok)
			json_object_put(line);
	}
	if (ok) {
		json_object_object_add(o, "console_tail", tail);
		return to_text(o);
	}
	json_object_put(tail);
	json_object_put(o);
	return NULL;
}
