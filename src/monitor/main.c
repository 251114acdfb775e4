/*
 * tern-monitor: the small process that makes a VM independent of ternd (docs/ternd.md).
 * Parses the command line and hands over to monitor_run().
 */
#include "core/util.h"
#include "monitor/monitor.h"
#include "monitor/rotlog.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static const char usage[] =
	"usage: tern-monitor --dir DIR [--status-vmm PATH] [--log-size BYTES] [--log-keep N]\n"
	"                    -- PROGRAM [ARGS...]\n"
	"Runs PROGRAM (tern-vmm) and holds its console, so that the VM does not depend on\n"
	"whoever started it. Start it in a session of its own (setsid): it ignores SIGHUP\n"
	"and SIGPIPE, keeps running when its parent dies, and ends when PROGRAM does.\n"
	"  --dir DIR          the VM's directory (must exist), where the monitor keeps:\n"
	"                     pid          \"MONITOR_PID MONITOR_START VMM_PID VMM_START\\n\"\n"
	"                                  (START: field 22 of /proc/PID/stat)\n"
	"                     console.log  PROGRAM's stdout (the console), rotated\n"
	"                     vmm.log      PROGRAM's stderr (its log), rotated\n"
	"                     console.sock the console (below), mode 0600\n"
	"                     status       how PROGRAM ended, JSON, written when it has:\n"
	"                                  exit_status (128+S if signal S killed it), signal,\n"
	"                                  reason, ended_at, message, console_tail (last 20\n"
	"                                  lines); reason and message from the status PROGRAM\n"
	"                                  wrote (tern-vmm --status-file), else \"killed\" or\n"
	"                                  \"error\"\n"
	"  --status-vmm PATH  where PROGRAM writes its status (default DIR/status.vmm); read\n"
	"                     as hostile: a regular file of at most 64 KiB, no symlink\n"
	"  --log-size BYTES   rotate a log when it reaches BYTES, 4096..1073741824\n"
	"                     (default 1048576): LOG becomes LOG.1, LOG.1 LOG.2 ...\n"
	"  --log-keep N       rotated files kept per log, 1..100 (default 4)\n"
	"  -h, --help         this text\n"
	"Console socket: send \"ATTACH rw\\n\" or \"ATTACH ro\\n\", get \"OK\\n\", then the "
	"console\n"
	"output from that moment on; a rw client's bytes go to PROGRAM's stdin, a ro\n"
	"client's are ignored. One rw client at a time and 16 clients in all: beyond that,\n"
	"\"BUSY\\n\". A client more than 256 KiB behind is disconnected.\n"
	"Exit status: 0 once PROGRAM ran and ended (whatever its own status), 1 when it\n"
	"could not be started (the status file says why), 2 bad usage.\n";

static void __attribute__((noreturn, format(printf, 1, 2))) bad_usage(const char *fmt, ...)
{
	va_list ap;

	fputs("tern-monitor: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

/*
 * PROGRAM gets fds 0-2 from pipes made later: were one of them closed here, pipe()
 * could hand out that number and the child's dup2()s would clobber each other.
 */
static void open_std_fds(void)
{
	for (int fd = 0; fd < 3; fd++) {
		if (fcntl(fd, F_GETFD) >= 0)
			continue;
		int n = open("/dev/null", O_RDWR);
		if (n < 0) {
			fprintf(stderr, "tern-monitor: /dev/null: %s\n", strerror(errno));
			exit(1);
		}
		if (n != fd) {
			dup2(n, fd);
			close(n);
		}
	}
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "status-vmm", required_argument, NULL, 'v' },
		{ "log-size", required_argument, NULL, 's' },
		{ "log-keep", required_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct monitor_opts o = {
		.log_size = ROTLOG_DEFAULT_SIZE,
		.log_keep = ROTLOG_DEFAULT_KEEP,
	};
	struct sockaddr_un sa;
	struct stat st;
	uint64_t v;
	int opt;

	opterr = 0;
	/* "+": the first non-option is PROGRAM; its own options are not ours. */
	while ((opt = getopt_long(argc, argv, "+:h", options, NULL)) != -1) {
		switch (opt) {
		case 'd':
			o.dir = optarg;
			break;
		case 'v':
			if (!*optarg)
				bad_usage("--status-vmm: the path is empty");
			o.status_vmm = optarg;
			break;
		case 's':
			if (!parse_u64(optarg, ROTLOG_MIN_SIZE, ROTLOG_MAX_SIZE, &v))
				bad_usage(
					"--log-size: '%s' is not a whole number of bytes from %llu "
					"to %llu",
					optarg, ROTLOG_MIN_SIZE, ROTLOG_MAX_SIZE);
			o.log_size = v;
			break;
		case 'k':
			if (!parse_u64(optarg, ROTLOG_MIN_KEEP, ROTLOG_MAX_KEEP, &v))
				bad_usage("--log-keep: '%s' is not a whole number from %u to %u",
					  optarg, ROTLOG_MIN_KEEP, ROTLOG_MAX_KEEP);
			o.log_keep = (unsigned int)v;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		case ':':
			bad_usage("%s needs a value (see --help)", argv[optind - 1]);
		default:
			bad_usage("unknown option '%s' (see --help)", argv[optind - 1]);
		}
	}
	if (!o.dir)
		bad_usage("--dir is required: the VM's directory (see --help)");
	int e = !*o.dir			       ? ENOENT :
		stat(o.dir, &st) < 0	       ? errno :
		!S_ISDIR(st.st_mode)	       ? ENOTDIR :
		access(o.dir, W_OK | X_OK) < 0 ? errno :
						 0;
	if (e)
		bad_usage("--dir: '%s' is not a directory this user can write in (%s)", o.dir,
			  strerror(e));
	if (strlen(o.dir) + strlen("/console.sock") >= sizeof(sa.sun_path))
		bad_usage("--dir: '%s' is too long: DIR/console.sock must fit in %zu bytes", o.dir,
			  sizeof(sa.sun_path) - 1);
	if (optind >= argc)
		bad_usage("no PROGRAM to run: give it after -- (see --help)");
	o.argv = argv + optind;
	open_std_fds();
	return monitor_run(&o);
}
