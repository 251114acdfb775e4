/* Tests for `tern create`'s options to a VM definition (src/cli/create_opts.c). */
#include <json-c/json.h>
#include <limits.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include "cli/create_opts.h"
#include "unit.h"

#define MAX_ARGS 32

static struct create_opts o;
static char err[1024];

/* Parses "create" followed by the given arguments (NULL-terminated). */
static int create(const char *first, ...)
{
	char *argv[MAX_ARGS + 1] = { "create" };
	int argc = 1;
	va_list ap;

	va_start(ap, first);
	for (const char *a = first; a && argc < MAX_ARGS; a = va_arg(ap, const char *))
		argv[argc++] = (char *)a;
	va_end(ap);
	argv[argc] = NULL;
	json_object_put(o.def);
	o.def = NULL;
	err[0] = 0;
	return create_opts_parse(argc, argv, &o, err, sizeof(err));
}

/* The definition as compact JSON text, for whole-document comparisons. */
static const char *def_text(void)
{
	return o.def ? json_object_to_json_string_ext(
			       o.def, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE) :
		       "(none)";
}

static bool def_is(const char *want)
{
	if (!strcmp(def_text(), want))
		return true;
	printf("  got  %s\n  want %s\n", def_text(), want);
	return false;
}

/* Refused, with a message that has every word given (the option and its range). */
static bool refused(int r, const char *w1, const char *w2)
{
	if (!r) {
		printf("  accepted: %s\n", def_text());
		return false;
	}
	if ((w1 && !strstr(err, w1)) || (w2 && !strstr(err, w2))) {
		printf("  message '%s' lacks '%s' / '%s'\n", err, w1 ? w1 : "", w2 ? w2 : "");
		return false;
	}
	return !o.def;
}

TEST(cli_create_minimal)
{
	REQUIRE(create("web", "--kernel", "/boot/vmlinux", NULL) == 0);
	/* Only what was given: ternd writes its defaults. */
	CHECK(def_is("{\"name\":\"web\",\"kernel\":\"/boot/vmlinux\"}"));
	CHECK(o.start && !o.json && !o.help);
	/* Options and the name in any order (getopt permutes). */
	REQUIRE(create("--kernel", "/k", "--no-start", "db", "--json", NULL) == 0);
	CHECK(def_is("{\"name\":\"db\",\"kernel\":\"/k\"}"));
	CHECK(!o.start && o.json);
}

TEST(cli_create_everything)
{
	REQUIRE(create("web", "--kernel", "/k", "--initrd", "/i", "--cmdline",
		       "console=ttyS0 root=/dev/vda", "--memory", "1024", "--huge-pages", "2M",
		       "--cpus", "4", "--vsock-cid", "42", "--rng", "--autostart", "--on-poweroff",
		       "restart", "--on-reboot", "destroy", "--on-crash", "restart", NULL) == 0);
	CHECK(def_is(
		"{\"name\":\"web\",\"kernel\":\"/k\",\"initrd\":\"/i\","
		"\"cmdline\":\"console=ttyS0 root=/dev/vda\",\"memory_mib\":1024,"
		"\"huge_pages\":\"2M\",\"vcpus\":4,"
		"\"vsock\":{\"cid\":42},\"rng\":true,\"autostart\":true,"
		"\"on_poweroff\":\"restart\",\"on_reboot\":\"destroy\",\"on_crash\":\"restart\"}"));
}

TEST(cli_create_disks)
{
	REQUIRE(create("web", "--kernel", "/k", "--disk", "/a.img", "--disk",
		       "/b.img,readonly,cache=none,id=data", "--disk",
		       "path=/c.img,id=x,cache=writeback", NULL) == 0);
	CHECK(def_is(
		"{\"name\":\"web\",\"disks\":[{\"path\":\"/a.img\"},"
		"{\"path\":\"/b.img\",\"cache\":\"none\",\"id\":\"data\",\"readonly\":true},"
		"{\"path\":\"/c.img\",\"id\":\"x\",\"cache\":\"writeback\"}],\"kernel\":\"/k\"}"));
	/* ternd wants absolute paths: relative ones are taken from here. */
	char cwd[PATH_MAX], want[PATH_MAX + 64];
	REQUIRE(getcwd(cwd, sizeof(cwd)));
	REQUIRE(create("web", "--kernel", "./vmlinux", "--disk", "img/root.img,readonly", NULL) ==
		0);
	snprintf(want, sizeof(want), "\"path\":\"%s/img/root.img\"", cwd);
	CHECK(strstr(def_text(), want));
	snprintf(want, sizeof(want), "\"kernel\":\"%s/vmlinux\"", cwd);
	CHECK(strstr(def_text(), want));
}

TEST(cli_create_disk_errors)
{
	CHECK(refused(create("w", "--kernel", "/k", "--disk", "/a,ro", NULL), "--disk", "'ro'"));
	CHECK(refused(create("w", "--kernel", "/k", "--disk", "/a,cache=fast", NULL),
		      "cache=", "none or writeback"));
	CHECK(refused(create("w", "--kernel", "/k", "--disk", "/a,cache=none,cache=none", NULL),
		      "cache=", NULL));
	CHECK(refused(create("w", "--kernel", "/k", "--disk", "/a,id=", NULL), "id=", "1 to 20"));
	CHECK(refused(create("w", "--kernel", "/k", "--disk", "/a,id=123456789012345678901", NULL),
		      "id=", "1 to 20"));
	CHECK(refused(create("w", "--kernel", "/k", "--disk", "/a,,readonly", NULL), "--disk",
		      "PATH[,readonly]"));
	CHECK(refused(create("w", "--kernel", "/k", "--disk", "", NULL), "--disk", NULL));
	/* At most 16, as ternd takes. */
	char *argv[64] = { "create", "w", "--kernel", "/k" };
	int argc = 4;
	for (int i = 0; i < 17; i++) {
		argv[argc++] = "--disk";
		argv[argc++] = "/d";
	}
	json_object_put(o.def);
	CHECK(create_opts_parse(argc, argv, &o, err, sizeof(err)) != 0 && strstr(err, "16"));
}

TEST(cli_create_nics)
{
	REQUIRE(create("web", "--kernel", "/k", "--nic", "user", "--nic",
		       "user,mac=52:54:00:12:34:56,hostfwd=tcp::2222-:22,hostfwd=tcp::8080-:80",
		       "--nic", "bridge=br0", "--nic", "bridge=virbr1,mac=02:00:00:00:00:01",
		       NULL) == 0);
	CHECK(def_is("{\"name\":\"web\",\"nics\":[{\"type\":\"user\"},"
		     "{\"type\":\"user\",\"mac\":\"52:54:00:12:34:56\","
		     "\"hostfwd\":[\"tcp::2222-:22\",\"tcp::8080-:80\"]},"
		     "{\"type\":\"bridge\",\"bridge\":\"br0\"},"
		     "{\"type\":\"bridge\",\"bridge\":\"virbr1\",\"mac\":\"02:00:00:00:00:01\"}],"
		     "\"kernel\":\"/k\"}"));
}

TEST(cli_create_nic_errors)
{
	CHECK(refused(create("w", "--kernel", "/k", "--nic", "tap", NULL), "--nic",
		      "user or bridge=NAME"));
	CHECK(refused(create("w", "--kernel", "/k", "--nic", "bridge=", NULL),
		      "bridge=", "1 to 15"));
	CHECK(refused(create("w", "--kernel", "/k", "--nic", "bridge=averyveryverylongname", NULL),
		      "bridge=", "1 to 15"));
	CHECK(refused(create("w", "--kernel", "/k", "--nic", "user,mac=01:00:00:00:00:01", NULL),
		      "mac=", "unicast"));
	CHECK(refused(create("w", "--kernel", "/k", "--nic", "user,mac=52:54:00:12:34", NULL),
		      "mac=", NULL));
	CHECK(refused(create("w", "--kernel", "/k", "--nic", "user,hostfwd=udp::53-:53", NULL),
		      "hostfwd=", "tcp::HOSTPORT-:GUESTPORT"));
	CHECK(refused(create("w", "--kernel", "/k", "--nic", "user,hostfwd=tcp::0-:22", NULL),
		      "hostfwd=", "1 to 65535"));
	CHECK(refused(create("w", "--kernel", "/k", "--nic", "user,hostfwd=tcp::22-:65536", NULL),
		      "hostfwd=", NULL));
	CHECK(refused(create("w", "--kernel", "/k", "--nic", "bridge=br0,hostfwd=tcp::1-:2", NULL),
		      "hostfwd=", "user networking only"));
	CHECK(refused(create("w", "--kernel", "/k", "--nic", "user,mtu=9000", NULL), "--nic",
		      "'mtu=9000'"));
}

TEST(cli_create_errors)
{
	CHECK(refused(create("--kernel", "/k", NULL), "NAME", "missing"));
	CHECK(refused(create("web", NULL), "--kernel", "required"));
	CHECK(refused(create("-bad", "--kernel", "/k", NULL), "unknown option", NULL));
	CHECK(refused(create("we b", "--kernel", "/k", NULL), "NAME", "1 to 63"));
	CHECK(refused(create("a", "b", "--kernel", "/k", NULL), "unexpected", "'b'"));
	CHECK(refused(create("w", "--kernel", "/k", "--memory", "15", NULL), "--memory",
		      "16 to 1048576 MiB"));
	CHECK(refused(create("w", "--kernel", "/k", "--memory", "1g", NULL), "--memory", NULL));
	CHECK(refused(create("w", "--kernel", "/k", "--huge-pages", "1G", NULL), "--huge-pages",
		      "transparent, none or 2M"));
	CHECK(refused(create("w", "--kernel", "/k", "--cpus", "0", NULL), "--cpus", "1 to 254"));
	CHECK(refused(create("w", "--kernel", "/k", "--cpus", "255", NULL), "--cpus", "1 to 254"));
	CHECK(refused(create("w", "--kernel", "/k", "--vsock-cid", "2", NULL), "--vsock-cid",
		      "3 to 4294967294"));
	CHECK(refused(create("w", "--kernel", "/k", "--on-crash", "reboot", NULL), "--on-crash",
		      "destroy or restart"));
	CHECK(refused(create("w", "--kernel", "/k", "--frobnicate", NULL), "--frobnicate", NULL));
	CHECK(refused(create("w", "--kernel", NULL), "--kernel", "needs a value"));
	/* --help stops there: nothing is defined. */
	REQUIRE(create("--help", NULL) == 0);
	CHECK(o.help && !o.def);
	json_object_put(o.def);
	o.def = NULL;
}
