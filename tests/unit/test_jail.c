/*
 * Tests for the jail's pure parts (src/jail/jail_config.c, jail_entries.c): --jail's spec
 * and its refusals, and the entries: paths made absolute and clean as the jailed process
 * will resolve them, one entry per path with the wider kind, / never a writable directory,
 * tern-vmm's own files found. Building a jail needs root and a lab: tests/guest/test_jail.py.
 */
#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "jail/jail.h"
#include "unit.h"

static bool refused(const char *spec, const char *word)
{
	struct jail_config c;
	char err[256] = "";

	return jail_parse(spec, &c, err, sizeof(err)) == -EINVAL && strstr(err, word) && !c.on;
}

TEST(jail_parse_spec)
{
	struct jail_config c;
	char err[256];

	REQUIRE(jail_parse("uid=1000,gid=1001", &c, err, sizeof(err)) == 0);
	CHECK(c.on && c.uid == 1000 && c.gid == 1001 && !c.netns[0]);
	CHECK(c.nofile == JAIL_DEFAULT_NOFILE && c.nproc == JAIL_DEFAULT_NPROC && !c.fsize_mib);
	REQUIRE(jail_parse("gid=7,uid=8,netns=/run/netns/a,nofile=64,nproc=16,fsize_mib=10", &c,
			   err, sizeof(err)) == 0);
	CHECK(c.uid == 8 && c.gid == 7 && !strcmp(c.netns, "/run/netns/a"));
	CHECK(c.nofile == 64 && c.nproc == 16 && c.fsize_mib == 10);
	REQUIRE(jail_parse("uid=4294967294,gid=1", &c, err, sizeof(err)) == 0);
}

TEST(jail_parse_refusals)
{
	CHECK(refused("uid=0,gid=1", "uid='0'"));
	CHECK(refused("uid=1,gid=0", "never root"));
	CHECK(refused("uid=4294967295,gid=1", "4294967294"));
	CHECK(refused("uid=x,gid=1", "whole number"));
	CHECK(refused("uid=1", "gid= is required"));
	CHECK(refused("gid=1", "uid= is required"));
	CHECK(refused("", "uid= is required"));
	CHECK(refused("uid=1,gid=1,netns=run/netns/a", "absolute"));
	CHECK(refused("uid=1,gid=1,nofile=63", "nofile"));
	CHECK(refused("uid=1,gid=1,nproc=15", "nproc"));
	CHECK(refused("uid=1,gid=1,fsize_mib=0", "fsize_mib"));
	CHECK(refused("uid=1,gid=1,colour=blue", "unknown key 'colour'"));
	CHECK(refused("uid=1,gid=1,uid", "not key=value"));
}

TEST(jail_entries_paths)
{
	struct jail_entries s;
	char err[256], cwd[4096], want[4200];

	memset(&s, 0, sizeof(s));
	REQUIRE(getcwd(cwd, sizeof(cwd)));
	REQUIRE(jail_add(&s, "/a//b/./c/../d", JAIL_READ, err, sizeof(err)) == 0);
	CHECK(!strcmp(s.e[0].path, "/a/b/d"));
	REQUIRE(jail_add(&s, "x/y", JAIL_READ, err, sizeof(err)) == 0);
	snprintf(want, sizeof(want), "%s/x/y", strcmp(cwd, "/") ? cwd : "");
	CHECK(!strcmp(s.e[1].path, want));
	/* The same path twice: one entry, the wider kind. */
	REQUIRE(jail_add(&s, "/a/b/d", JAIL_WRITE, err, sizeof(err)) == 0);
	REQUIRE(jail_add(&s, "/a/b/d", JAIL_READ, err, sizeof(err)) == 0);
	CHECK(s.n == 2 && s.e[0].kind == JAIL_WRITE);
	/* A socket's directory; / itself never. */
	REQUIRE(jail_add_dir_of(&s, "/run/vm/api.sock", err, sizeof(err)) == 0);
	CHECK(s.n == 3 && !strcmp(s.e[2].path, "/run/vm") && s.e[2].kind == JAIL_DIR);
	CHECK(jail_add_dir_of(&s, "/api.sock", err, sizeof(err)) == -EINVAL &&
	      strstr(err, "host's whole /"));
	CHECK(jail_add(&s, "/x/..", JAIL_DIR, err, sizeof(err)) == -EINVAL);
	CHECK(jail_add(&s, "/dev/", JAIL_DIR, err, sizeof(err)) == -EINVAL && strstr(err, "/dev"));
	CHECK(jail_add(&s, "/sys", JAIL_DIR, err, sizeof(err)) == -EINVAL);
	CHECK(jail_add(&s, "/proc/.", JAIL_DIR, err, sizeof(err)) == -EINVAL);
	CHECK(jail_add(&s, "/dev/null", JAIL_DEVICE, err, sizeof(err)) == 0); /* one device */
	CHECK(s.n == 4);
	jail_entries_free(&s);
	CHECK(s.n == 0);
}

TEST(jail_entries_self)
{
	struct jail_entries s;
	char err[256], exe[4096];
	bool found_exe = false, found_libc = false;

	memset(&s, 0, sizeof(s));
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	REQUIRE(n > 0);
	exe[n] = 0;
	REQUIRE(jail_add_self(&s, err, sizeof(err)) == 0);
	for (unsigned int i = 0; i < s.n; i++) {
		CHECK(s.e[i].path[0] == '/');
		if (!strcmp(s.e[i].path, exe))
			found_exe = s.e[i].kind == JAIL_EXEC;
		if (strstr(s.e[i].path, "/libc.so"))
			found_libc = true;
	}
	CHECK(found_exe);
	CHECK(found_libc);
	jail_entries_free(&s);
}
