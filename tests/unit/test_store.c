/* ternd's database: schema creation and versions, VM rows, states and the event log. */
#include "daemon/store.h"
#include "tmpfile.h"
#include "unit.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

TEST(store_vms_states_events)
{
	struct tmp t;
	struct store *s;
	struct store_vm *v;
	struct store_event *e;
	size_t n;
	char err[256];

	REQUIRE(tmp_make(&t, "ternd.db"));
	REQUIRE(!store_open(&s, t.path, err, sizeof(err)));
	CHECK(!store_vm_add(s, "u1", "b", "{\"b\": 1}"));
	CHECK(!store_vm_add(s, "u2", "a", "{\"a\": 1}"));
	CHECK(store_vm_add(s, "u3", "a", "{}") == -EEXIST); /* name taken */
	CHECK(store_vm_add(s, "u1", "c", "{}") == -EEXIST); /* uuid taken */
	CHECK(!store_vm_set_state(s, "u1", "running", "booted", NULL, 12.5));
	CHECK(store_vm_set_state(s, "nope", "running", "booted", NULL, 0) == -ENOENT);
	CHECK(!store_vm_set_definition(s, "u2", "{\"a\": 2}"));
	REQUIRE(!store_vm_list(s, &v, &n));
	REQUIRE(n == 2);
	CHECK(!strcmp(v[0].name, "a") && !strcmp(v[0].definition, "{\"a\": 2}") &&
	      !strcmp(v[0].state, "shut off") && !strcmp(v[0].reason, "never"));
	CHECK(!strcmp(v[1].name, "b") && !strcmp(v[1].state, "running") && v[1].started_at == 12.5);
	store_vms_free(v, n);
	CHECK(!store_event_add(s, "a", "defined", "added", NULL));
	CHECK(!store_vm_set_state(s, "u1", "shut off", "crashed", "{\"signal\": 9}", 12.5));
	REQUIRE(!store_events(s, 0, 10, &e, &n));
	REQUIRE(n == 3);
	CHECK(!strcmp(e[0].name, "b") && !strcmp(e[0].state, "running"));
	CHECK(!strcmp(e[1].state, "defined"));
	CHECK(!strcmp(e[2].reason, "crashed") && !strcmp(e[2].detail, "{\"signal\": 9}"));
	int64_t second = e[1].id;
	store_events_free(e, n);
	REQUIRE(!store_events(s, second, 10, &e, &n));
	CHECK(n == 1 && store_last_event(s) == e[0].id);
	store_events_free(e, n);
	CHECK(!store_vm_delete(s, "u2"));
	CHECK(store_vm_delete(s, "u2") == -ENOENT);
	store_close(s);
	/* Reopened: everything is still there, and the schema is not applied twice. */
	REQUIRE(!store_open(&s, t.path, err, sizeof(err)));
	REQUIRE(!store_vm_list(s, &v, &n));
	CHECK(n == 1 && !strcmp(v[0].name, "b") && !strcmp(v[0].reason, "crashed"));
	store_vms_free(v, n);
	store_close(s);
	unlink(strcat(t.path, "-wal"));
	t.path[strlen(t.path) - 4] = 0;
	unlink(strcat(t.path, "-shm"));
	t.path[strlen(t.path) - 4] = 0;
	tmp_remove(&t);
}

TEST(store_refuses_a_newer_schema)
{
	struct tmp t;
	struct store *s;
	sqlite3 *db;
	char err[256] = "";

	REQUIRE(tmp_make(&t, "ternd.db"));
	REQUIRE(!store_open(&s, t.path, err, sizeof(err)));
	store_close(s);
	REQUIRE(sqlite3_open(t.path, &db) == SQLITE_OK);
	CHECK(sqlite3_exec(db, "UPDATE meta SET value = '99' WHERE key = 'schema_version'", NULL,
			   NULL, NULL) == SQLITE_OK);
	sqlite3_close(db);
	CHECK(store_open(&s, t.path, err, sizeof(err)) == -EPROTO);
	CHECK(strstr(err, "schema version 99") && strstr(err, "newer"));
	/* Not a database at all. */
	FILE *f = fopen(t.path, "w");
	REQUIRE(f);
	fputs("this is not sqlite, but long enough to be looked at as a header......\n", f);
	fclose(f);
	unlink(strcat(t.path, "-wal"));
	t.path[strlen(t.path) - 4] = 0;
	CHECK(store_open(&s, t.path, err, sizeof(err)) < 0);
	printf("  %s\n", err);
	unlink(strcat(t.path, "-shm"));
	t.path[strlen(t.path) - 4] = 0;
	tmp_remove(&t);
}

/* A version-1 database (before snapshots) is migrated in place; its VMs stay. */
TEST(store_migrates_v1_and_keeps_snapshots_per_vm)
{
	struct tmp t;
	struct store *s;
	struct store_vm *v;
	struct store_snap *sn;
	sqlite3 *db;
	size_t n;
	char err[256] = "", *msg = NULL;

	REQUIRE(tmp_make(&t, "ternd.db"));
	REQUIRE(sqlite3_open(t.path, &db) == SQLITE_OK);
	/* Schema version 1 as ternd 0.x wrote it. */
	CHECK(sqlite3_exec(
		      db,
		      "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
		      "CREATE TABLE vms(uuid TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
		      " definition TEXT NOT NULL, state TEXT NOT NULL, reason TEXT NOT NULL,"
		      " detail TEXT, started_at REAL NOT NULL DEFAULT 0, created_at REAL NOT "
		      "NULL);"
		      "CREATE TABLE events(id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT "
		      "NULL, name TEXT NOT NULL, state TEXT NOT NULL, reason TEXT NOT NULL,"
		      " detail TEXT);"
		      "INSERT INTO meta VALUES('schema_version', '1');"
		      "INSERT INTO vms VALUES('u1', 'old', '{}', 'shut off', 'never', NULL, 0, 1);",
		      NULL, NULL, &msg) == SQLITE_OK);
	sqlite3_free(msg);
	sqlite3_close(db);
	REQUIRE(!store_open(&s, t.path, err, sizeof(err)));
	REQUIRE(!store_vm_list(s, &v, &n));
	CHECK(n == 1 && !strcmp(v[0].name, "old"));
	store_vms_free(v, n);
	CHECK(!store_vm_add(s, "u2", "other", "{}"));
	CHECK(!store_snap_add(s, "u1", "s1", "running", "{\"d\": 1}"));
	CHECK(!store_snap_add(s, "u1", "s2", "shut off", "{\"d\": 2}"));
	CHECK(store_snap_add(s, "u1", "s1", "paused", "{}") == -EEXIST);
	CHECK(!store_snap_add(s, "u2", "s1", "paused", "{}")); /* names are per VM */
	REQUIRE(!store_snap_list(s, "u1", &sn, &n));
	CHECK(n == 2 && !strcmp(sn[0].name, "s1") && !strcmp(sn[0].vm_state, "running") &&
	      !strcmp(sn[0].definition, "{\"d\": 1}") && !strcmp(sn[1].vm_state, "shut off"));
	store_snaps_free(sn, n);
	CHECK(!store_snap_delete(s, "u1", "s1"));
	CHECK(store_snap_delete(s, "u1", "s1") == -ENOENT);
	/* Undefining a VM drops its snapshots, not another VM's. */
	CHECK(!store_vm_delete(s, "u1"));
	REQUIRE(!store_snap_list(s, "u1", &sn, &n));
	CHECK(n == 0);
	store_snaps_free(sn, n);
	REQUIRE(!store_snap_list(s, "u2", &sn, &n));
	CHECK(n == 1);
	store_snaps_free(sn, n);
	store_close(s);
	REQUIRE(sqlite3_open(t.path, &db) == SQLITE_OK);
	sqlite3_stmt *st;
	REQUIRE(sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = 'schema_version'", -1,
				   &st, NULL) == SQLITE_OK);
	CHECK(sqlite3_step(st) == SQLITE_ROW &&
	      atoi((const char *)sqlite3_column_text(st, 0)) == STORE_SCHEMA_VERSION);
	sqlite3_finalize(st);
	sqlite3_close(db);
	unlink(strcat(t.path, "-wal"));
	t.path[strlen(t.path) - 4] = 0;
	unlink(strcat(t.path, "-shm"));
	t.path[strlen(t.path) - 4] = 0;
	tmp_remove(&t);
}
