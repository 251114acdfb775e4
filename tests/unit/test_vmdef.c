/* ternd's VM definitions: defaults, every refusal naming its field, canonical JSON, tern-vmm's options. */
#include "daemon/vmdef.h"
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool refused(const char *json, const char *words)
{
	struct vmdef d;
	char err[512] = "";

	if (!vmdef_parse(json, strlen(json), &d, false, err, sizeof(err))) {
		vmdef_free(&d);
		printf("  accepted: %s\n", json);
		return false;
	}
	if (!strstr(err, words)) {
		printf("  %s\n  refused with \"%s\", not mentioning \"%s\"\n", json, err, words);
		return false;
	}
	return true;
}

#define K "\"kernel\": \"/k\""

TEST(vmdef_defaults_and_generated_ids)
{
	struct vmdef d, e;
	char err[256];
	const char *j = "{\"name\": \"web-1.a_b\", " K ", \"nics\": [{\"type\": \"user\"}]}";

	REQUIRE(!vmdef_parse(j, strlen(j), &d, false, err, sizeof(err)));
	CHECK(!strcmp(d.name, "web-1.a_b"));
	CHECK(vmdef_uuid_ok(d.uuid));
	CHECK(d.vcpus == 1 && d.memory_mib == 256);
	CHECK(!strcmp(d.cmdline, "console=ttyS0"));
	CHECK(d.on_poweroff == VMDEF_DESTROY && d.on_reboot == VMDEF_RESTART &&
	      d.on_crash == VMDEF_DESTROY);
	/* Locally administered (bit 1 of the first byte), unicast (bit 0 clear). */
	unsigned int first =
		(unsigned int)strtoul((char[3]){ d.nics[0].mac[0], d.nics[0].mac[1], 0 }, NULL, 16);
	CHECK(d.nnics == 1 && strlen(d.nics[0].mac) == 17 && (first & 3) == 2);
	/* Generated values are kept: the canonical JSON reads back the same. */
	char *json = vmdef_to_json(&d);
	REQUIRE(json);
	REQUIRE(!vmdef_parse(json, strlen(json), &e, false, err, sizeof(err)));
	CHECK(!strcmp(e.uuid, d.uuid) && !strcmp(e.nics[0].mac, d.nics[0].mac));
	char *again = vmdef_to_json(&e);
	CHECK(again && !strcmp(again, json));
	free(again);
	free(json);
	vmdef_free(&e);
	vmdef_free(&d);
	/* Two new VMs never share an id. */
	char a[VMDEF_UUID_LEN + 1], b[VMDEF_UUID_LEN + 1];
	vmdef_new_uuid(a);
	vmdef_new_uuid(b);
	CHECK(vmdef_uuid_ok(a) && strcmp(a, b) && a[14] == '4');
}

TEST(vmdef_refusals_name_the_field)
{
	CHECK(refused("[]", "object"));
	CHECK(refused("{" K "}", "'name' is required"));
	CHECK(refused("{\"name\": \"\", " K "}", "'name'"));
	CHECK(refused("{\"name\": \"-a\", " K "}", "starting with a letter or digit"));
	CHECK(refused("{\"name\": \"a b\", " K "}", "'name'"));
	CHECK(refused("{\"name\": "
		      "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\", " K
		      "}",
		      "1 to 63"));
	CHECK(refused("{\"name\": \"a\"}", "'kernel' is required"));
	CHECK(refused("{\"name\": \"a\", \"kernel\": \"rel/k\"}", "absolute"));
	CHECK(refused("{\"name\": \"a\", " K ", \"uuid\": \"nope\"}", "'uuid'"));
	CHECK(refused("{\"name\": \"a\", " K ", \"vcpus\": 0}", "'vcpus'"));
	CHECK(refused("{\"name\": \"a\", " K ", \"vcpus\": 255}", "1 to 254"));
	CHECK(refused("{\"name\": \"a\", " K ", \"memory_mib\": 15}", "'memory_mib'"));
	CHECK(refused("{\"name\": \"a\", " K ", \"memory_mib\": \"lots\"}", "'memory_mib'"));
	CHECK(refused("{\"name\": \"a\", " K ", \"colour\": 1}", "'colour'"));
	CHECK(refused("{\"name\": \"a\", " K ", \"disks\": {}}", "'disks'"));
	CHECK(refused("{\"name\": \"a\", " K ", \"disks\": [{}]}", "'disks[0].path' is required"));
	CHECK(refused("{\"name\": \"a\", " K ", \"disks\": [{\"path\": \"/d\", \"cache\": \"x\"}]}",
		      "disks[0]"));
	CHECK(refused("{\"name\": \"a\", " K ", \"disks\": [{\"path\": \"/d\", \"id\": \"\"}]}",
		      "'disks[0].id'"));
	CHECK(refused("{\"name\": \"a\", " K ", \"disks\": [{\"path\": \"/d\", \"x\": 1}]}",
		      "unknown field 'x' in disks[0]"));
	CHECK(refused("{\"name\": \"a\", " K ", \"nics\": [{}]}", "'nics[0].type' is required"));
	CHECK(refused("{\"name\": \"a\", " K ", \"nics\": [{\"type\": \"tap\"}]}", "nics[0]"));
	CHECK(refused("{\"name\": \"a\", " K ", \"nics\": [{\"type\": \"bridge\"}]}",
		      "'nics[0].bridge' is required"));
	CHECK(refused("{\"name\": \"a\", " K
		      ", \"nics\": [{\"type\": \"user\", \"mac\": \"01:00:00:00:00:01\"}]}",
		      "unicast"));
	CHECK(refused("{\"name\": \"a\", " K
		      ", \"nics\": [{\"type\": \"user\", \"hostfwd\": [\"udp::1-:2\"]}]}",
		      "'nics[0].hostfwd[0]'"));
	CHECK(refused("{\"name\": \"a\", " K
		      ", \"nics\": [{\"type\": \"user\", \"hostfwd\": [\"tcp::0-:22\"]}]}",
		      "1 to 65535"));
	CHECK(refused("{\"name\": \"a\", " K ", \"nics\": [{\"type\": \"bridge\", \"bridge\": "
		      "\"br0\", \"hostfwd\": [\"tcp::1-:2\"]}]}",
		      "only for type \"user\""));
	CHECK(refused(
		"{\"name\": \"a\", " K ", \"nics\": [{\"type\": \"user\", \"mac\": "
		"\"02:00:00:00:00:01\"}, {\"type\": \"user\", \"mac\": \"02:00:00:00:00:01\"}]}",
		"also nics[0]"));
	CHECK(refused("{\"name\": \"a\", " K ", \"vsock\": {\"cid\": 2}}", "'cid'"));
	CHECK(refused("{\"name\": \"a\", " K ", \"vsock\": {}}", "'vsock.cid' is required"));
	CHECK(refused("{\"name\": \"a\", " K ", \"on_crash\": \"reboot\"}", "'on_crash'"));
	CHECK(refused("{\"name\": \"a\", " K ", \"rng\": 1}", "'rng'"));
}

TEST(vmdef_files_are_checked_when_asked)
{
	struct vmdef d;
	char err[256] = "";
	const char *j = "{\"name\": \"a\", \"kernel\": \"/nonexistent/kernel\"}";

	CHECK(vmdef_parse(j, strlen(j), &d, true, err, sizeof(err)) < 0);
	CHECK(strstr(err, "'kernel'") && strstr(err, "No such file"));
	j = "{\"name\": \"a\", \"kernel\": \"/proc/self/exe\", \"disks\": [{\"path\": "
	    "\"/nonexistent\"}]}";
	CHECK(vmdef_parse(j, strlen(j), &d, true, err, sizeof(err)) < 0);
	CHECK(strstr(err, "'disks[0].path'"));
}

TEST(vmdef_vmm_options)
{
	struct vmdef d;
	char err[256], line[4096] = "";
	const char *j =
		"{\"name\": \"a\", " K ", \"initrd\": \"/i\", \"cmdline\": \"quiet\", \"vcpus\": 2,"
		" \"memory_mib\": 64, \"rng\": true, \"on_reboot\": \"destroy\", \"vsock\": "
		"{\"cid\": 9},"
		" \"disks\": [{\"path\": \"/d\", \"readonly\": true, \"id\": \"root\", \"cache\": "
		"\"none\"}],"
		" \"nics\": [{\"type\": \"user\", \"mac\": \"02:00:00:00:00:01\","
		" \"hostfwd\": [\"tcp::2222-:22\"]}]}";

	REQUIRE(!vmdef_parse(j, strlen(j), &d, false, err, sizeof(err)));
	char **a = vmdef_vmm_args(&d, "/run/v.sock", NULL);
	REQUIRE(a);
	for (char **p = a; *p; p++) {
		strcat(line, *p);
		strcat(line, " ");
	}
	printf("  %s\n", line);
	CHECK(!strcmp(line,
		      "--kernel /k --initrd /i --cmdline quiet --cpus 2 --memory 64 --huge-pages "
		      "transparent --on-reboot exit --id a --disk "
		      "path=/d,readonly=on,cache=none,format=auto,id=root --net "
		      "user,mac=02:00:00:00:00:01,hostfwd=tcp::2222-:22 --vsock "
		      "cid=9,uds=/run/v.sock --rng "));
	vmdef_free_args(a);
	vmdef_free(&d);
}

TEST(vmdef_huge_pages)
{
	struct vmdef d;
	char err[256];
	const char *j = "{\"name\": \"h\", " K ", \"memory_mib\": 64, \"huge_pages\": \"2M\"}";

	REQUIRE(!vmdef_parse(j, strlen(j), &d, false, err, sizeof(err)));
	CHECK(d.huge_pages == VMDEF_HUGE_2M);
	char **a = vmdef_vmm_args(&d, NULL, NULL), *js = vmdef_to_json(&d);
	REQUIRE(a && js);
	bool found = false;
	for (char **p = a; *p && p[1]; p++)
		found |= !strcmp(p[0], "--huge-pages") && !strcmp(p[1], "2M");
	CHECK(found);
	CHECK(strstr(js, "\"huge_pages\":\"2M\"") != NULL);
	free(js);
	vmdef_free_args(a);
	vmdef_free(&d);

	/* Left out: transparent, written out in the canonical JSON. */
	j = "{\"name\": \"h\", " K "}";
	REQUIRE(!vmdef_parse(j, strlen(j), &d, false, err, sizeof(err)));
	CHECK(d.huge_pages == VMDEF_HUGE_TRANSPARENT);
	js = vmdef_to_json(&d);
	CHECK(js && strstr(js, "\"huge_pages\":\"transparent\"") != NULL);
	free(js);
	vmdef_free(&d);

	CHECK(refused("{\"name\": \"h\", " K ", \"memory_mib\": 65, \"huge_pages\": \"2M\"}",
		      "'memory_mib' 65 is not a whole number of 2 MiB pages"));
	CHECK(refused("{\"name\": \"h\", " K ", \"huge_pages\": \"1G\"}",
		      "one of transparent, none, 2M"));
}

TEST(vmdef_limits_defaults_ranges_and_refusals)
{
	struct vmdef d;
	char err[256];
	const char *j = "{\"name\": \"l\", " K ", \"vcpus\": 2, \"memory_mib\": 512, \"limits\": "
			"{\"cpu_max_percent\": 150, \"memory_max_mib\": 576}}";

	REQUIRE(!vmdef_parse(j, strlen(j), &d, false, err, sizeof(err)));
	CHECK(d.limits.cpu_max_percent == 150 && d.limits.memory_max_mib == 576);
	/* Unset ones take their defaults, which follow the VM's size. */
	CHECK(vmdef_memory_max_mib(&d) == 576 && vmdef_cpu_weight(&d) == 100 &&
	      vmdef_pids_max(&d) == 512);
	char *json = vmdef_to_json(&d);
	CHECK(json && strstr(json, "\"cpu_max_percent\":150") && strstr(json, "\"pids_max\":0"));
	free(json);
	vmdef_free(&d);
	j = "{\"name\": \"l\", " K ", \"memory_mib\": 1024}";
	REQUIRE(!vmdef_parse(j, strlen(j), &d, false, err, sizeof(err)));
	CHECK(vmdef_memory_max_mib(&d) == 0); /* no cap */
	vmdef_free(&d);
	/* Each refusal names limits.FIELD and what it takes. */
	CHECK(refused("{\"name\": \"l\", " K ", \"limits\": 5}", "'limits' must be an object"));
	CHECK(refused(
		"{\"name\": \"l\", " K ", \"limits\": {\"cpu_max_percent\": 101}}",
		"'limits.cpu_max_percent' must be 0 (no cap) or a whole number from 1 to 100"));
	CHECK(refused("{\"name\": \"l\", " K
		      ", \"vcpus\": 4, \"limits\": {\"cpu_max_percent\": 401}}",
		      "from 1 to 400"));
	CHECK(refused("{\"name\": \"l\", " K ", \"limits\": {\"cpu_weight\": 10001}}",
		      "'limits.cpu_weight'"));
	CHECK(refused("{\"name\": \"l\", " K ", \"memory_mib\": 256, \"limits\": "
		      "{\"memory_max_mib\": 300}}",
		      "'limits.memory_max_mib' must be 0 (no cap) or a whole "
		      "number from 320"));
	CHECK(refused("{\"name\": \"l\", " K ", \"limits\": {\"pids_max\": 15}}",
		      "'limits.pids_max'"));
	CHECK(refused("{\"name\": \"l\", " K ", \"limits\": {\"pids_max\": -1}}",
		      "'limits.pids_max'"));
	CHECK(refused("{\"name\": \"l\", " K ", \"limits\": {\"pids_max\": \"9\"}}",
		      "'limits.pids_max'"));
	CHECK(refused("{\"name\": \"l\", " K ", \"limits\": {\"io_max\": 1}}", "io_max"));
}

TEST(vmdef_limits_disks_io)
{
	struct vmdef d;
	char err[256];
	const char *j =
		"{\"name\": \"io\", " K ", \"disks\": [{\"path\": \"/a\"}, {\"path\": \"/b\"}], "
		"\"limits\": {\"disks\": [{\"read_iops\": 40, \"write_mib_s\": 10}, {}]}}";

	REQUIRE(!vmdef_parse(j, strlen(j), &d, false, err, sizeof(err)));
	CHECK(d.limits.ndisks == 2);
	CHECK(d.limits.disks[0].read_iops == 40 && d.limits.disks[0].write_mib_s == 10);
	CHECK(!d.limits.disks[0].write_iops && !d.limits.disks[0].read_mib_s);
	CHECK(!d.limits.disks[1].read_iops);
	char *json = vmdef_to_json(&d);
	CHECK(json && strstr(json, "\"read_iops\":40") && strstr(json, "\"write_mib_s\":10"));
	/* Read back, the same. */
	struct vmdef d2;
	REQUIRE(json && !vmdef_parse(json, strlen(json), &d2, false, err, sizeof(err)));
	CHECK(d2.limits.ndisks == 2 && d2.limits.disks[0].read_iops == 40);
	vmdef_free(&d2);
	free(json);
	vmdef_free(&d);
	/* None given: none written. */
	j = "{\"name\": \"io\", " K ", \"disks\": [{\"path\": \"/a\"}]}";
	REQUIRE(!vmdef_parse(j, strlen(j), &d, false, err, sizeof(err)));
	json = vmdef_to_json(&d);
	CHECK(json && !strstr(json, "read_iops"));
	free(json);
	vmdef_free(&d);
	CHECK(refused("{\"name\": \"l\", " K ", \"disks\": [{\"path\": \"/a\"}], \"limits\": "
		      "{\"disks\": [{}, {}]}}",
		      "'limits.disks' has 2 entries; l has 1 disk"));
	CHECK(refused("{\"name\": \"l\", " K ", \"limits\": {\"disks\": [{}]}}", "has 0 disks"));
	CHECK(refused("{\"name\": \"l\", " K ", \"disks\": [{\"path\": \"/a\"}], \"limits\": "
		      "{\"disks\": {}}}",
		      "'limits.disks' must be an array"));
	CHECK(refused("{\"name\": \"l\", " K ", \"disks\": [{\"path\": \"/a\"}], \"limits\": "
		      "{\"disks\": [5]}}",
		      "'limits.disks[0]' must be an object"));
	CHECK(refused("{\"name\": \"l\", " K ", \"disks\": [{\"path\": \"/a\"}], \"limits\": "
		      "{\"disks\": [{\"read_iops\": 1000001}]}}",
		      "'limits.disks[0].read_iops' must be 0 (no cap) or a whole number from 1 to "
		      "1000000"));
	CHECK(refused("{\"name\": \"l\", " K ", \"disks\": [{\"path\": \"/a\"}], \"limits\": "
		      "{\"disks\": [{\"read_mib_s\": -1}]}}",
		      "'limits.disks[0].read_mib_s'"));
	CHECK(refused("{\"name\": \"l\", " K ", \"disks\": [{\"path\": \"/a\"}], \"limits\": "
		      "{\"disks\": [{\"riops\": 1}]}}",
		      "riops"));
}

TEST(vmdef_drive_id_is_tern_vmms_name)
{
	const char *j =
		"{\"name\": \"ids\", " K ", \"disks\": [{\"path\": \"/a\"}, "
		"{\"path\": \"/b\", \"id\": \"data-1.x\"}, {\"path\": \"/c\", \"id\": \"a/b\"}]}";
	struct vmdef d;
	char err[512], id[32];

	REQUIRE(!vmdef_parse(j, strlen(j), &d, false, err, sizeof(err)));
	/* None given: its place, as tern-vmm names it; given: the id; one a path breaks: no. */
	CHECK(vmdef_drive_id(&d, 0, id, sizeof(id)) && !strcmp(id, "disk0"));
	CHECK(vmdef_drive_id(&d, 1, id, sizeof(id)) && !strcmp(id, "data-1.x"));
	CHECK(!vmdef_drive_id(&d, 2, id, sizeof(id)));
	vmdef_free(&d);
}
