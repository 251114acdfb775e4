/* A minimal client of tern-vmm's own API, for --snapshot-to (snapshot_client.h). */
#include "vmm/snapshot_client.h"
#include "core/log.h"

#include <errno.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define REPLY_MAX 65536

/*
 * One request on its own connection ("Connection: close", so the reply ends at EOF).
 * Returns the HTTP status, or -1 (said on stderr); body gets the reply body (malloc'd).
 */
static int request(const char *sock, const char *method, const char *path, const char *json,
		   char **body)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	char head[512], *reply = malloc(REPLY_MAX + 1);
	size_t got = 0;
	int fd = -1, status = -1;

	*body = NULL;
	if (!reply || strlen(sock) >= sizeof(a.sun_path))
		goto out;
	strcpy(a.sun_path, sock);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		fprintf(stderr, "tern-vmm: --snapshot-to: cannot reach '%s': %s\n", sock,
			strerror(errno));
		goto out;
	}
	int n = snprintf(head, sizeof(head),
			 "%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
			 "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
			 method, path, strlen(json));
	/* No zero-length write: the server may already have answered and closed. */
	if (write(fd, head, (size_t)n) != n ||
	    (*json && write(fd, json, strlen(json)) != (ssize_t)strlen(json))) {
		fprintf(stderr, "tern-vmm: --snapshot-to: cannot send to '%s'\n", sock);
		goto out;
	}
	for (ssize_t r; got < REPLY_MAX && (r = read(fd, reply + got, REPLY_MAX - got)) != 0;) {
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			break;
		got += (size_t)r;
	}
	reply[got] = 0;
	if (sscanf(reply, "HTTP/1.%*d %d", &status) != 1) {
		fprintf(stderr, "tern-vmm: --snapshot-to: '%s' did not answer in HTTP\n", sock);
		status = -1;
		goto out;
	}
	char *b = strstr(reply, "\r\n\r\n");
	*body = strdup(b ? b + 4 : "");
out:
	if (fd >= 0)
		close(fd);
	free(reply);
	return status;
}

/* The fault_message of an error body, or the body itself. */
static void report(const char *what, int status, const char *body)
{
	struct json_object *o = json_tokener_parse(body ? body : ""), *m = NULL;
	const char *msg = body ? body : "";

	if (o && json_object_object_get_ex(o, "fault_message", &m))
		msg = json_object_get_string(m);
	fprintf(stderr, "tern-vmm: --snapshot-to: %s: %d %s\n", what, status, msg);
	json_object_put(o);
}

static int call(const char *sock, const char *method, const char *path, const char *json,
		const char *what, char **body)
{
	char *b = NULL;
	int st = request(sock, method, path, json, &b);

	if (st >= 300)
		report(what, st, b);
	if (body)
		*body = b;
	else
		free(b);
	return st;
}

int snapshot_client(const char *sock, const char *spec)
{
	char *copy = strdup(spec), *state, *mem, *kind, *save = NULL, *info = NULL;
	int rc = 1;

	if (!copy)
		return 1;
	signal(SIGPIPE, SIG_IGN); /* a closed socket is an error to report, not a death */
	state = strtok_r(copy, ",", &save);
	mem = strtok_r(NULL, ",", &save);
	kind = strtok_r(NULL, ",", &save);
	if (!state || !mem || (kind && strcmp(kind, "diff") && strcmp(kind, "full")) ||
	    strtok_r(NULL, ",", &save)) {
		free(copy);
		die_usage("--snapshot-to: '%s' is not STATE,MEM[,full|diff]", spec);
	}
	/* Was it running? Then it is resumed afterwards; a paused VM stays paused. */
	if (call(sock, "GET", "/", "", "GET /", &info) != 200)
		goto out;
	bool was_running = strstr(info, "\"Running\"") != NULL;
	if (was_running &&
	    call(sock, "PATCH", "/vm", "{\"state\": \"Paused\"}", "pause", NULL) != 204)
		goto out;

	struct json_object *b = json_object_new_object();
	json_object_object_add(b, "snapshot_path", json_object_new_string(state));
	json_object_object_add(b, "mem_file_path", json_object_new_string(mem));
	json_object_object_add(
		b, "snapshot_type",
		json_object_new_string(kind && !strcmp(kind, "diff") ? "Diff" : "Full"));
	int st = call(sock, "PUT", "/snapshot/create", json_object_to_json_string(b),
		      "snapshot/create", NULL);
	json_object_put(b);
	if (was_running &&
	    call(sock, "PATCH", "/vm", "{\"state\": \"Resumed\"}", "resume", NULL) != 204)
		st = -1;
	if (st == 204) {
		printf("snapshot written: %s (memory in %s)\n", state, mem);
		rc = 0;
	}
out:
	free(info);
	free(copy);
	return rc;
}
