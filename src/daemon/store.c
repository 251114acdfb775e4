/* ternd's SQLite database: schema, migrations, VM rows and the event log. */
#include "daemon/store.h"

#include "core/util.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct store {
	sqlite3 *db;
	pthread_mutex_t lock;
};

/* migrations[v] takes a version-v database to v + 1; version 0 is an empty file. */
static const char *const migrations[] = {
	"CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
	"CREATE TABLE vms(uuid TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
	" definition TEXT NOT NULL, state TEXT NOT NULL, reason TEXT NOT NULL, detail TEXT,"
	" started_at REAL NOT NULL DEFAULT 0, created_at REAL NOT NULL);"
	"CREATE TABLE events(id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL,"
	" name TEXT NOT NULL, state TEXT NOT NULL, reason TEXT NOT NULL, detail TEXT);",
	/* 2: snapshots, each with the definition it was taken with (a revert brings it back). */
	"CREATE TABLE snapshots(vm_uuid TEXT NOT NULL, name TEXT NOT NULL,"
	" created_at REAL NOT NULL, vm_state TEXT NOT NULL, definition TEXT NOT NULL,"
	" PRIMARY KEY(vm_uuid, name));",
};
_Static_assert(ARRAY_SIZE(migrations) == STORE_SCHEMA_VERSION,
	       "one migration step per schema version");

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int schema_version(sqlite3 *db)
{
	sqlite3_stmt *st;
	int v = 0;

	/* No meta table yet: a new, empty database. */
	if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = 'schema_version'", -1, &st,
			       NULL) != SQLITE_OK)
		return 0;
	if (sqlite3_step(st) == SQLITE_ROW)
		v = atoi((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return v;
}

static int migrate(sqlite3 *db, char *err, size_t n)
{
	int v = schema_version(db);
	char *msg = NULL;

	if (v > STORE_SCHEMA_VERSION)
		return fail_msg(err, n, -EPROTO,
				"the database has schema version %d, newer than this ternd's %d: "
				"run the newer ternd",
				v, STORE_SCHEMA_VERSION);
	for (; v < STORE_SCHEMA_VERSION; v++) {
		char sql[4096];
		/* Each step and its version stamp commit together, or not at all. */
		snprintf(sql, sizeof(sql),
			 "BEGIN IMMEDIATE; %s INSERT OR REPLACE INTO meta VALUES('schema_version',"
			 " '%d'); COMMIT;",
			 migrations[v], v + 1);
		if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
			fail_msg(err, n, -EIO, "migrating the database to schema version %d: %s",
				 v + 1, msg ? msg : "?");
			sqlite3_free(msg);
			return -EIO;
		}
	}
	return 0;
}

int store_open(struct store **out, const char *path, char *err, size_t errlen)
{
	struct store *s = calloc(1, sizeof(*s));
	char *msg = NULL;
	int r;

	if (!s)
		return -ENOMEM;
	if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
	    SQLITE_OK) {
		r = fail_msg(err, errlen, -EIO, "%s: %s", path,
			     s->db ? sqlite3_errmsg(s->db) : "cannot open");
		goto fail;
	}
	sqlite3_busy_timeout(s->db, 5000);
	/* WAL: readers never wait for the writer; synchronous=FULL: a commit survives a crash. */
	if (sqlite3_exec(s->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", NULL, NULL,
			 &msg) != SQLITE_OK) {
		r = fail_msg(err, errlen, -EIO, "%s: %s", path, msg ? msg : "?");
		sqlite3_free(msg);
		goto fail;
	}
	if ((r = migrate(s->db, err, errlen)))
		goto fail;
	pthread_mutex_init(&s->lock, NULL);
	*out = s;
	return 0;
fail:
	sqlite3_close(s->db);
	free(s);
	return r;
}

void store_close(struct store *s)
{
	if (!s)
		return;
	sqlite3_close(s->db);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

/* Runs one statement with text/double parameters ("t" or "d" per character of types). */
static int exec(struct store *s, const char *sql, const char *types, ...)
{
	sqlite3_stmt *st;
	va_list ap;
	int r;

	pthread_mutex_lock(&s->lock);
	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
		pthread_mutex_unlock(&s->lock);
		return -EIO;
	}
	va_start(ap, types);
	for (int i = 0; types[i]; i++) {
		if (types[i] == 't')
			sqlite3_bind_text(st, i + 1, va_arg(ap, const char *), -1,
					  SQLITE_TRANSIENT);
		else
			sqlite3_bind_double(st, i + 1, va_arg(ap, double));
	}
	va_end(ap);
	r = sqlite3_step(st);
	sqlite3_finalize(st);
	r = r == SQLITE_DONE	   ? (sqlite3_changes(s->db) ? 0 : -ENOENT) :
	    r == SQLITE_CONSTRAINT ? -EEXIST :
				     -EIO;
	pthread_mutex_unlock(&s->lock);
	return r;
}

int store_vm_add(struct store *s, const char *uuid, const char *name, const char *definition)
{
	return exec(s,
		    "INSERT INTO vms(uuid, name, definition, state, reason, created_at)"
		    " VALUES(?, ?, ?, 'shut off', 'never', ?)",
		    "tttd", uuid, name, definition, now());
}

int store_vm_set_definition(struct store *s, const char *uuid, const char *definition)
{
	return exec(s, "UPDATE vms SET definition = ? WHERE uuid = ?", "tt", definition, uuid);
}

int store_vm_delete(struct store *s, const char *uuid)
{
	exec(s, "DELETE FROM snapshots WHERE vm_uuid = ?", "t", uuid);
	return exec(s, "DELETE FROM vms WHERE uuid = ?", "t", uuid);
}

int store_event_add(struct store *s, const char *name, const char *state, const char *reason,
		    const char *detail)
{
	return exec(s, "INSERT INTO events(at, name, state, reason, detail) VALUES(?, ?, ?, ?, ?)",
		    "dtttt", now(), name, state, reason, detail);
}

int store_vm_set_state(struct store *s, const char *uuid, const char *state, const char *reason,
		       const char *detail, double started_at)
{
	int r = exec(
		s,
		"UPDATE vms SET state = ?, reason = ?, detail = ?, started_at = ? WHERE uuid = ?",
		"tttdt", state, reason, detail, started_at, uuid);

	if (r)
		return r;
	return exec(s,
		    "INSERT INTO events(at, name, state, reason, detail)"
		    " SELECT ?, name, ?, ?, ? FROM vms WHERE uuid = ?",
		    "dtttt", now(), state, reason, detail, uuid);
}

static char *col_dup(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);

	return t ? strdup((const char *)t) : NULL;
}

static void col_copy(sqlite3_stmt *st, int i, char *out, size_t n)
{
	const unsigned char *t = sqlite3_column_text(st, i);

	snprintf(out, n, "%s", t ? (const char *)t : "");
}

int store_vm_list(struct store *s, struct store_vm **out, size_t *count)
{
	sqlite3_stmt *st;
	struct store_vm *v = NULL;
	size_t n = 0, cap = 0;
	int r = 0;

	pthread_mutex_lock(&s->lock);
	if (sqlite3_prepare_v2(s->db,
			       "SELECT uuid, name, definition, state, reason, detail, started_at"
			       " FROM vms ORDER BY name",
			       -1, &st, NULL) != SQLITE_OK) {
		pthread_mutex_unlock(&s->lock);
		return -EIO;
	}
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == cap) {
			struct store_vm *nv = realloc(v, (cap = cap ? cap * 2 : 16) * sizeof(*v));
			if (!nv) {
				r = SQLITE_NOMEM;
				break;
			}
			v = nv;
		}
		struct store_vm *e = &v[n++];
		memset(e, 0, sizeof(*e));
		col_copy(st, 0, e->uuid, sizeof(e->uuid));
		col_copy(st, 1, e->name, sizeof(e->name));
		e->definition = col_dup(st, 2);
		col_copy(st, 3, e->state, sizeof(e->state));
		col_copy(st, 4, e->reason, sizeof(e->reason));
		e->detail = col_dup(st, 5);
		e->started_at = sqlite3_column_double(st, 6);
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->lock);
	if (r != SQLITE_DONE) {
		store_vms_free(v, n);
		return -EIO;
	}
	*out = v;
	*count = n;
	return 0;
}

void store_vms_free(struct store_vm *v, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		free(v[i].definition);
		free(v[i].detail);
	}
	free(v);
}

int store_events(struct store *s, int64_t after, size_t max, struct store_event **out,
		 size_t *count)
{
	sqlite3_stmt *st;
	struct store_event *e = calloc(max ? max : 1, sizeof(*e));
	size_t n = 0;
	int r;

	if (!e)
		return -ENOMEM;
	pthread_mutex_lock(&s->lock);
	if (sqlite3_prepare_v2(s->db,
			       "SELECT id, at, name, state, reason, detail FROM events WHERE id > ?"
			       " ORDER BY id LIMIT ?",
			       -1, &st, NULL) != SQLITE_OK) {
		pthread_mutex_unlock(&s->lock);
		free(e);
		return -EIO;
	}
	sqlite3_bind_int64(st, 1, after);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)max);
	while ((r = sqlite3_step(st)) == SQLITE_ROW && n < max) {
		e[n].id = sqlite3_column_int64(st, 0);
		e[n].at = sqlite3_column_double(st, 1);
		col_copy(st, 2, e[n].name, sizeof(e[n].name));
		col_copy(st, 3, e[n].state, sizeof(e[n].state));
		col_copy(st, 4, e[n].reason, sizeof(e[n].reason));
		e[n].detail = col_dup(st, 5);
		n++;
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->lock);
	if (r != SQLITE_DONE && r != SQLITE_ROW) {
		store_events_free(e, n);
		return -EIO;
	}
	*out = e;
	*count = n;
	return 0;
}

void store_events_free(struct store_event *e, size_t count)
{
	for (size_t i = 0; i < count; i++)
		free(e[i].detail);
	free(e);
}

int64_t store_last_event(struct store *s)
{
	sqlite3_stmt *st;
	int64_t id = 0;

	pthread_mutex_lock(&s->lock);
	if (sqlite3_prepare_v2(s->db, "SELECT MAX(id) FROM events", -1, &st, NULL) == SQLITE_OK) {
		if (sqlite3_step(st) == SQLITE_ROW)
			id = sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
	}
	pthread_mutex_unlock(&s->lock);
	return id;
}

int store_snap_add(struct store *s, const char *uuid, const char *name, const char *vm_state,
		   const char *definition)
{
	return exec(s,
		    "INSERT INTO snapshots(vm_uuid, name, created_at, vm_state, definition)"
		    " VALUES(?, ?, ?, ?, ?)",
		    "ttdtt", uuid, name, now(), vm_state, definition);
}

int store_snap_delete(struct store *s, const char *uuid, const char *name)
{
	return exec(s, "DELETE FROM snapshots WHERE vm_uuid = ? AND name = ?", "tt", uuid, name);
}

int store_snap_list(struct store *s, const char *uuid, struct store_snap **out, size_t *count)
{
	sqlite3_stmt *st;
	struct store_snap *v = NULL;
	size_t n = 0, cap = 0;
	int r;

	pthread_mutex_lock(&s->lock);
	if (sqlite3_prepare_v2(s->db,
			       "SELECT name, created_at, vm_state, definition FROM snapshots"
			       " WHERE vm_uuid = ? ORDER BY created_at, name",
			       -1, &st, NULL) != SQLITE_OK) {
		pthread_mutex_unlock(&s->lock);
		return -EIO;
	}
	sqlite3_bind_text(st, 1, uuid, -1, SQLITE_TRANSIENT);
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == cap) {
			struct store_snap *nv = realloc(v, (cap = cap ? cap * 2 : 8) * sizeof(*v));
			if (!nv) {
				r = SQLITE_NOMEM;
				break;
			}
			v = nv;
		}
		struct store_snap *e = &v[n++];
		memset(e, 0, sizeof(*e));
		col_copy(st, 0, e->name, sizeof(e->name));
		e->created_at = sqlite3_column_double(st, 1);
		col_copy(st, 2, e->vm_state, sizeof(e->vm_state));
		e->definition = col_dup(st, 3);
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->lock);
	if (r != SQLITE_DONE) {
		store_snaps_free(v, n);
		return -EIO;
	}
	*out = v;
	*count = n;
	return 0;
}

void store_snaps_free(struct store_snap *v, size_t count)
{
	for (size_t i = 0; i < count; i++)
		free(v[i].definition);
	free(v);
}
