/* Command-line parsing for tern-vmm. Every rejected value names the option and what it accepts. */
#include "vmm/config.h"
#include "vmm/migrate.h"
#include "backend/qcow2.h"
#include "core/log.h"
#include "core/util.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
	"usage: tern-vmm --kernel PATH [options]\n"
	"       tern-vmm --api-sock PATH [options]     (configured and started through the API)\n"
	"       tern-vmm --config-file FILE [--api-sock PATH | --no-api] [options]\n"
	"  --kernel PATH          ELF vmlinux (64-bit or PVH entry) or bzImage\n"
	"  --initrd PATH          initial ramdisk\n"
	"  --cmdline STR          kernel command line (default \"console=ttyS0\")\n"
	"  --cpus N               vCPUs, 1..254 (default 1)\n"
	"  --memory MIB           guest RAM in MiB, 16..1048576 (default 128)\n"
	"  --huge-pages KIND      transparent|none|2M: guest RAM on transparent huge pages where\n"
	"                         the host's THP allows (default), on 4 KiB pages, or on 2 MiB\n"
	"                         hugetlbfs pages reserved beforehand (vm.nr_hugepages);\n"
	"                         given with --restore, the memory file is read into such RAM\n"
	"  --cpu-template NAME    host|compat (default: compat on a software KVM backend, else "
	"host)\n"
	"  --boot-entry KIND      auto|linux64|pvh: how to enter an ELF kernel (auto: PVH if it "
	"has the note)\n"
	"  --no-host-decompress   boot a bzImage through its own decompressor in the guest\n"
	"                         (default: decompressed by tern, cached, with KASLR kept)\n"
	"  --on-reboot ACTION     exit|restart when the guest reboots (default exit)\n"
	"  --kvm-device PATH      KVM device (default /dev/kvm)\n"
	"  --log-level LEVEL      error|warn|info|debug (default info)\n"
	"  --disk SPEC            virtio-blk disk (repeatable, up to 8):\n"
	"                         path=FILE[,readonly=on|off][,cache=writeback|none][,id=NAME]\n"
	"                         [,aio=io_uring|threads] (default: io_uring where the kernel has "
	"it)\n"
	"                         [,format=auto|raw|qcow2|overlay] (default auto: qcow2 if the\n"
	"                         file starts like one, else raw, whose guest may then not\n"
	"                         write a qcow2 header; overlay: tern's own, read by tern only)\n"
	"                         [,l2-cache-size=BYTES] (qcow2: L2 tables kept in memory,\n"
	"                         default 1M, K or M suffix; 1M maps 8 GiB of 64 KiB clusters)\n"
	"  --rng                  virtio-rng entropy device\n"
	"  --net SPEC             virtio-net NIC (repeatable, up to 8): tap=NAME | tap-fd=N | "
	"user,\n"
	"                         then [,mac=xx:xx:xx:xx:xx:xx] [,mtu=68..65535] and, for user,\n"
	"                         [,hostfwd=tcp:[HADDR]:HPORT-[GADDR]:GPORT]... (HADDR 127.0.0.1\n"
	"                         unless given; udp: too); the MAC is random unless given\n"
	"  --vsock cid=N,uds=PATH virtio-vsock: guest CID 3..4294967294; host programs connect to\n"
	"                         PATH and send \"CONNECT PORT\\n\"; guest connections to port P\n"
	"                         go to the Unix socket PATH_P\n"
	"  --virtio-transport T   pci|mmio (default pci)\n"
	"  --virtio-mmio-cmdline  with mmio: also list the devices as virtio_mmio.device= on the "
	"command line\n"
	"  --api-sock PATH        serve Firecracker's REST API on a Unix socket (docs/api.md)\n"
	"  --config-file FILE     Firecracker's JSON VM configuration; boots at once\n"
	"  --no-api               no API socket (with --config-file)\n"
	"  --id NAME              instance id reported by GET / (default anonymous-instance)\n"
	"  --restore STATE        restore a snapshot: its state file (with --restore-mem)\n"
	"  --restore-mem MEM      the snapshot's memory file (mapped copy-on-write)\n"
	"  --restore-paused       leave the restored VM paused (resume with PATCH /vm)\n"
	"  --restore-disk id=ID,path=PATH[,format=raw|qcow2|overlay|auto]\n"
	"                         restore drive ID (diskN for one without an id) on PATH, of\n"
	"                         the snapshot's size: a qcow2 overlay of its image (repeatable)\n"
	"  --clone                restore with a new identity: MACs, vsock CID and socket,\n"
	"                         copy-on-write copies of writable disks\n"
	"  --track-dirty-pages    log written pages, so diff snapshots can be made\n"
	"  --incoming URI         be a live migration's destination: listen on tcp:HOST:PORT or\n"
	"                         unix:PATH (or take the connected fd:N), receive the VM, run it\n"
	"  --describe-snapshot F  print what the state file F holds, and exit\n"
	"  --create-overlay OVERLAY,base=IMAGE  make a qcow2 image in front of IMAGE (raw or\n"
	"                         qcow2; qemu-img reads it too), and exit (tern img has more)\n"
	"  --snapshot-to STATE,MEM[,full|diff]  with --api-sock: snapshot the tern-vmm serving\n"
	"                         that socket (paused for the write, then resumed), and exit\n"
	"  --status-file PATH     when the VM ends (power-off, reboot, crash, debug-exit, or a\n"
	"                         failure of tern-vmm once it runs), write PATH atomically:\n"
	"                         {\"reason\": "
	"\"poweroff\"|\"reboot\"|\"crash\"|\"debug-exit\"|\"error\"|\"migrated\",\n"
	"                         \"exit_status\": N, \"message\": the line it logs} (for "
	"tern-monitor)\n"
	"  --seccomp MODE         kill|log|off: each thread's system-call allow-list (default\n"
	"                         kill: a call outside it ends tern-vmm, naming the call; log:\n"
	"                         let through and logged by the kernel; off: no filter, unsafe)\n"
	"  --jail SPEC            run in a jail (needs root; docs/security.md), SPEC being\n"
	"                         uid=N,gid=N[,netns=PATH][,nofile=N][,nproc=N][,fsize_mib=N]:\n"
	"                         new mount, PID, IPC and UTS namespaces whose root holds only\n"
	"                         this VM's files, as that user and group with no capabilities,\n"
	"                         rlimits and Landlock\n"
	"  --jail-bind PATH       with --jail: a directory the VM may write in (snapshots, paths\n"
	"                         given through the API), or a file or block device it may\n"
	"                         read and write (a disk given through the API or by a\n"
	"                         migration); repeatable, up to 16\n"
	"  --debug-exit           test only: a byte written to port 0x501 becomes the exit status\n"
	"  -h, --help             this text\n"
	"Console: Ctrl-a x quits, Ctrl-a a sends Ctrl-a.\n"
	"Exit status: 0 guest powered off or rebooted (or migrated away), 1 tern-vmm failed, 2 bad "
	"usage,\n"
	"3 guest crashed (triple fault or an exit tern cannot handle).\n";

enum {
	OPT_KERNEL = 256,
	OPT_INITRD,
	OPT_CMDLINE,
	OPT_CPUS,
	OPT_MEMORY,
	OPT_TEMPLATE,
	OPT_ENTRY,
	OPT_ON_REBOOT,
	OPT_KVM_DEV,
	OPT_LOG_LEVEL,
	OPT_DEBUG_EXIT,
	OPT_DISK,
	OPT_RNG,
	OPT_NET,
	OPT_TRANSPORT,
	OPT_MMIO_CMDLINE,
	OPT_VSOCK,
	OPT_API_SOCK,
	OPT_CONFIG_FILE,
	OPT_NO_API,
	OPT_ID,
	OPT_RESTORE,
	OPT_RESTORE_MEM,
	OPT_RESTORE_PAUSED,
	OPT_RESTORE_DISK,
	OPT_CLONE,
	OPT_TRACK_DIRTY,
	OPT_DESCRIBE,
	OPT_CREATE_OVERLAY,
	OPT_SNAPSHOT_TO,
	OPT_STATUS_FILE,
	OPT_INCOMING,
	OPT_SECCOMP,
	OPT_JAIL,
	OPT_JAIL_BIND,
	OPT_NO_HOST_DECOMPRESS,
	OPT_HUGE_PAGES,
};

static const struct option options[] = {
	{ "kernel", required_argument, NULL, OPT_KERNEL },
	{ "initrd", required_argument, NULL, OPT_INITRD },
	{ "cmdline", required_argument, NULL, OPT_CMDLINE },
	{ "cpus", required_argument, NULL, OPT_CPUS },
	{ "memory", required_argument, NULL, OPT_MEMORY },
	{ "huge-pages", required_argument, NULL, OPT_HUGE_PAGES },
	{ "cpu-template", required_argument, NULL, OPT_TEMPLATE },
	{ "boot-entry", required_argument, NULL, OPT_ENTRY },
	{ "on-reboot", required_argument, NULL, OPT_ON_REBOOT },
	{ "kvm-device", required_argument, NULL, OPT_KVM_DEV },
	{ "log-level", required_argument, NULL, OPT_LOG_LEVEL },
	{ "debug-exit", no_argument, NULL, OPT_DEBUG_EXIT },
	{ "disk", required_argument, NULL, OPT_DISK },
	{ "rng", no_argument, NULL, OPT_RNG },
	{ "net", required_argument, NULL, OPT_NET },
	{ "virtio-transport", required_argument, NULL, OPT_TRANSPORT },
	{ "virtio-mmio-cmdline", no_argument, NULL, OPT_MMIO_CMDLINE },
	{ "vsock", required_argument, NULL, OPT_VSOCK },
	{ "api-sock", required_argument, NULL, OPT_API_SOCK },
	{ "config-file", required_argument, NULL, OPT_CONFIG_FILE },
	{ "no-api", no_argument, NULL, OPT_NO_API },
	{ "id", required_argument, NULL, OPT_ID },
	{ "restore", required_argument, NULL, OPT_RESTORE },
	{ "restore-mem", required_argument, NULL, OPT_RESTORE_MEM },
	{ "restore-paused", no_argument, NULL, OPT_RESTORE_PAUSED },
	{ "restore-disk", required_argument, NULL, OPT_RESTORE_DISK },
	{ "clone", no_argument, NULL, OPT_CLONE },
	{ "track-dirty-pages", no_argument, NULL, OPT_TRACK_DIRTY },
	{ "describe-snapshot", required_argument, NULL, OPT_DESCRIBE },
	{ "create-overlay", required_argument, NULL, OPT_CREATE_OVERLAY },
	{ "snapshot-to", required_argument, NULL, OPT_SNAPSHOT_TO },
	{ "status-file", required_argument, NULL, OPT_STATUS_FILE },
	{ "incoming", required_argument, NULL, OPT_INCOMING },
	{ "seccomp", required_argument, NULL, OPT_SECCOMP },
	{ "jail", required_argument, NULL, OPT_JAIL },
	{ "jail-bind", required_argument, NULL, OPT_JAIL_BIND },
	{ "no-host-decompress", no_argument, NULL, OPT_NO_HOST_DECOMPRESS },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* The status file is written at the very end: a directory it cannot go in is said now. */
static void check_status_dir(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");

	if (!dir)
		die("out of memory");
	if (access(dir, W_OK | X_OK) < 0)
		die_usage("--status-file: cannot write in '%s': %s", dir, strerror(errno));
	free(dir);
}

void config_parse(struct vmm_config *c, int argc, char **argv)
{
	uint64_t v;
	int opt;

	memset(c, 0, sizeof(*c));
	c->cmdline = "console=ttyS0";
	c->cpus = 1;
	c->mem_mib = VMM_DEFAULT_MEM_MIB;
	c->huge_pages = HUGE_PAGES_TRANSPARENT;
	c->kvm_dev = "/dev/kvm";
	c->log_level = LOG_INFO;
	c->id = "anonymous-instance";
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
		switch (opt) {
		case OPT_KERNEL:
		case OPT_INITRD:
		case OPT_CMDLINE:
		case OPT_CPUS:
		case OPT_MEMORY:
		case OPT_DISK:
		case OPT_RNG:
		case OPT_NET:
		case OPT_VSOCK:
			c->vm_flags = true; /* a VM option: not with --config-file */
			break;
		}
		switch (opt) {
		case OPT_KERNEL:
			c->kernel = optarg;
			break;
		case OPT_INITRD:
			c->initrd = optarg;
			break;
		case OPT_CMDLINE:
			c->cmdline = optarg;
			break;
		case OPT_CPUS:
			if (!parse_u64(optarg, 1, VMM_MAX_CPUS, &v))
				die_usage("--cpus: '%s' is not a whole number from 1 to %d", optarg,
					  VMM_MAX_CPUS);
			c->cpus = (unsigned int)v;
			break;
		case OPT_MEMORY:
			if (!parse_u64(optarg, VMM_MIN_MEM_MIB, VMM_MAX_MEM_MIB, &v))
				die_usage("--memory: '%s' is not a whole number of MiB from %d to "
					  "%llu",
					  optarg, VMM_MIN_MEM_MIB, VMM_MAX_MEM_MIB);
			c->mem_mib = v;
			break;
		case OPT_HUGE_PAGES:
			if (!strcmp(optarg, "transparent"))
				c->huge_pages = HUGE_PAGES_TRANSPARENT;
			else if (!strcmp(optarg, "none"))
				c->huge_pages = HUGE_PAGES_NONE;
			else if (!strcmp(optarg, "2M"))
				c->huge_pages = HUGE_PAGES_2M;
			else
				die_usage("--huge-pages: '%s' is not one of transparent, none, 2M",
					  optarg);
			c->huge_pages_given = true;
			break;
		case OPT_TEMPLATE:
			if (cpuid_template_parse(optarg, &c->cpu_template))
				die_usage("--cpu-template: '%s' is not one of host, compat",
					  optarg);
			c->template_set = true;
			break;
		case OPT_ENTRY:
			if (!strcmp(optarg, "auto"))
				c->entry = ENTRY_AUTO;
			else if (!strcmp(optarg, "linux64"))
				c->entry = ENTRY_LINUX64;
			else if (!strcmp(optarg, "pvh"))
				c->entry = ENTRY_PVH;
			else
				die_usage("--boot-entry: '%s' is not one of auto, linux64, pvh",
					  optarg);
			break;
		case OPT_ON_REBOOT:
			if (!strcmp(optarg, "exit"))
				c->on_reboot = ON_REBOOT_EXIT;
			else if (!strcmp(optarg, "restart"))
				c->on_reboot = ON_REBOOT_RESTART;
			else
				die_usage("--on-reboot: '%s' is not one of exit, restart", optarg);
			break;
		case OPT_KVM_DEV:
			c->kvm_dev = optarg;
			break;
		case OPT_LOG_LEVEL:
			if (!strcmp(optarg, "error"))
				c->log_level = LOG_ERROR;
			else if (!strcmp(optarg, "warn"))
				c->log_level = LOG_WARN;
			else if (!strcmp(optarg, "info"))
				c->log_level = LOG_INFO;
			else if (!strcmp(optarg, "debug"))
				c->log_level = LOG_DEBUG;
			else
				die_usage(
					"--log-level: '%s' is not one of error, warn, info, debug",
					optarg);
			break;
		case OPT_DEBUG_EXIT:
			c->debug_exit = true;
			break;
		case OPT_NO_HOST_DECOMPRESS:
			c->no_host_decompress = true;
			break;
		case OPT_DISK: {
			char err[160];
			if (c->ndisks == VMM_MAX_DISKS)
				die_usage("--disk: at most %d disks", VMM_MAX_DISKS);
			if (config_parse_disk(optarg, &c->disks[c->ndisks], err, sizeof(err)))
				die_usage("--disk: %s", err);
			c->disks[c->ndisks++].arg = optarg;
			break;
		}
		case OPT_RNG:
			c->rng = true;
			break;
		case OPT_NET: {
			char err[256];
			if (c->nnets == VMM_MAX_NETS)
				die_usage("--net: at most %d NICs", VMM_MAX_NETS);
			if (net_opts_parse(optarg, &c->nets[c->nnets], err, sizeof(err)))
				die_usage("--net: %s", err);
			snprintf(c->nets[c->nnets].id, sizeof(c->nets[0].id), "eth%u", c->nnets);
			c->nnets++;
			break;
		}
		case OPT_TRANSPORT:
			if (!strcmp(optarg, "pci"))
				c->transport = TRANSPORT_PCI;
			else if (!strcmp(optarg, "mmio"))
				c->transport = TRANSPORT_MMIO;
			else
				die_usage("--virtio-transport: '%s' is not one of pci, mmio",
					  optarg);
			break;
		case OPT_MMIO_CMDLINE:
			c->mmio_cmdline = true;
			break;
		case OPT_VSOCK: {
			char err[200];
			if (c->vsock.enabled)
				die_usage("--vsock: only one vsock device");
			if (vsock_opts_parse(optarg, &c->vsock, err, sizeof(err)))
				die_usage("--vsock: %s", err);
			break;
		}
		case OPT_API_SOCK:
			if (!*optarg)
				die_usage("--api-sock needs a path");
			c->api_sock = optarg;
			break;
		case OPT_CONFIG_FILE:
			c->config_file = optarg;
			break;
		case OPT_NO_API:
			c->no_api = true;
			break;
		case OPT_ID:
			if (!*optarg || strlen(optarg) > 64)
				die_usage("--id: '%s' must be 1 to 64 characters", optarg);
			c->id = optarg;
			break;
		case OPT_RESTORE:
			c->restore_state = optarg;
			break;
		case OPT_RESTORE_MEM:
			c->restore_mem = optarg;
			break;
		case OPT_RESTORE_PAUSED:
			c->restore_paused = true;
			break;
		case OPT_RESTORE_DISK: {
			char err[160];
			if (c->nrestore_disks == VMM_MAX_DISKS)
				die_usage("--restore-disk: at most %d", VMM_MAX_DISKS);
			if (config_parse_restore_disk(optarg, &c->restore_disks[c->nrestore_disks],
						      err, sizeof(err)))
				die_usage("--restore-disk: %s", err);
			for (unsigned int i = 0; i < c->nrestore_disks; i++)
				if (!strcmp(c->restore_disks[i].drive_id,
					    c->restore_disks[c->nrestore_disks].drive_id))
					die_usage("--restore-disk: drive '%s' is given twice",
						  c->restore_disks[i].drive_id);
			c->nrestore_disks++;
			break;
		}
		case OPT_CLONE:
			c->clone = true;
			break;
		case OPT_TRACK_DIRTY:
			c->track_dirty = true;
			break;
		case OPT_CREATE_OVERLAY:
			c->create_overlay = optarg;
			break;
		case OPT_DESCRIBE:
			c->describe_snapshot = optarg;
			break;
		case OPT_SNAPSHOT_TO:
			c->snapshot_to = optarg;
			break;
		case OPT_INCOMING: {
			struct mig_uri u;
			char uerr[256];
			if (mig_uri_parse(optarg, &u, uerr, sizeof(uerr)))
				die_usage("--incoming: %s", uerr);
			c->incoming = optarg;
			break;
		}
		case OPT_JAIL: {
			char err[256];
			unsigned int nb = c->jail.nbinds;
			const char *binds[JAIL_MAX_BINDS];
			memcpy(binds, c->jail.binds, sizeof(binds));
			if (jail_parse(optarg, &c->jail, err, sizeof(err)))
				die_usage("--jail: %s", err);
			c->jail.nbinds = nb; /* --jail-bind may come first */
			memcpy(c->jail.binds, binds, sizeof(binds));
			break;
		}
		case OPT_JAIL_BIND:
			if (c->jail.nbinds == JAIL_MAX_BINDS)
				die_usage("--jail-bind: at most %d paths", JAIL_MAX_BINDS);
			if (!strcmp(optarg, "/") || !*optarg)
				die_usage(
					"--jail-bind: '%s' would give the VM the whole host; name "
					"a directory of its own",
					optarg);
			c->jail.binds[c->jail.nbinds++] = optarg;
			break;
		case OPT_SECCOMP: {
			int m = seccomp_mode_parse(optarg);
			if (m < 0)
				die_usage("--seccomp: '%s' is not one of kill, log, off", optarg);
			c->seccomp = (enum seccomp_mode)m;
			break;
		}
		case OPT_STATUS_FILE:
			if (!*optarg)
				die_usage("--status-file needs a path");
			c->status_file = optarg;
			break;
		case 'h':
			fputs(usage, stdout);
			exit(0);
		case ':':
			die_usage("%s needs a value (see --help)", argv[optind - 1]);
		default:
			die_usage("unknown option '%s' (see --help)", argv[optind - 1]);
		}
	}
	if (optind < argc)
		die_usage("unexpected argument '%s' (see --help)", argv[optind]);
	if (c->no_api && c->api_sock)
		die_usage("--no-api and --api-sock exclude each other");
	if (c->config_file && c->vm_flags)
		die_usage("--config-file: the VM options (--kernel, --initrd, --cmdline, --cpus, "
			  "--memory, --disk, --net, --vsock, --rng) go in the file, not on the "
			  "command line too");
	if (c->status_file && (c->describe_snapshot || c->create_overlay || c->snapshot_to))
		die_usage("--status-file is for running a VM, not with --describe-snapshot, "
			  "--create-overlay or --snapshot-to");
	if (c->status_file)
		check_status_dir(c->status_file);
	if (c->jail.nbinds && !c->jail.on)
		die_usage("--jail-bind needs --jail");
	if (c->describe_snapshot || c->create_overlay)
		return;
	if (c->snapshot_to) {
		if (!c->api_sock)
			die_usage("--snapshot-to needs --api-sock (the socket of the running "
				  "tern-vmm)");
		return;
	}
	if (!c->restore_state != !c->restore_mem)
		die_usage("--restore and --restore-mem go together (the state file and the memory "
			  "file of one snapshot)");
	if ((c->restore_paused || c->clone || c->nrestore_disks) && !c->restore_state)
		die_usage("--restore-paused, --restore-disk and --clone need --restore");
	if (c->restore_state && (c->vm_flags || c->config_file))
		die_usage("--restore: the machine comes from the snapshot; VM options and "
			  "--config-file do not go with it");
	if (c->incoming && (c->restore_state || c->config_file || c->vm_flags || c->kernel))
		die_usage("--incoming: the machine comes from the migration stream; --kernel, VM "
			  "options, --restore and --config-file do not go with it");
	if (!c->kernel && !c->config_file && !c->api_sock && !c->restore_state && !c->incoming)
		die_usage("--kernel is required (or --config-file FILE, or --api-sock PATH to "
			  "configure the VM through the API; see --help)");
	for (unsigned int i = 0; i < c->ndisks; i++)
		for (unsigned int j = 0; j < i; j++)
			if (c->disks[i].id[0] && !strcmp(c->disks[i].id, c->disks[j].id))
				die_usage("--disk: id '%s' is used twice", c->disks[i].id);
	char net_err[256];
	if (net_opts_check_all(c->nets, c->nnets, net_err, sizeof(net_err)))
		die_usage("--net: %s", net_err);
	if (c->huge_pages == HUGE_PAGES_2M && c->mem_mib % 2)
		die_usage("--huge-pages 2M: --memory %llu is not a whole number of 2 MiB pages",
			  (unsigned long long)c->mem_mib);
	if (c->mmio_cmdline && c->transport != TRANSPORT_MMIO)
		die_usage("--virtio-mmio-cmdline needs --virtio-transport mmio");
}

static bool on_off(const char *v, bool *out)
{
	if (!strcmp(v, "on"))
		*out = true;
	else if (!strcmp(v, "off"))
		*out = false;
	else
		return false;
	return true;
}

int config_parse_disk(const char *spec, struct disk_config *d, char *err, size_t errlen)
{
	char *copy = strdup(spec), *save = NULL;

	memset(d, 0, sizeof(*d));
	d->format = DISK_FORMAT_AUTO;
	if (!copy) {
		snprintf(err, errlen, "out of memory");
		return -EINVAL;
	}
	for (char *kv = strtok_r(copy, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
		char *v = strchr(kv, '=');
		if (!v) {
			snprintf(err, errlen,
				 "'%s' is not key=value (keys: path, readonly, cache, id, aio, "
				 "format, l2-cache-size)",
				 kv);
			goto fail;
		}
		*v++ = 0;
		if (!strcmp(kv, "path")) {
			free(d->path);
			d->path = strdup(v);
			if (!d->path || !*v) {
				snprintf(err, errlen, "path= needs a file or block device");
				goto fail;
			}
		} else if (!strcmp(kv, "readonly")) {
			if (!on_off(v, &d->readonly)) {
				snprintf(err, errlen, "readonly='%s' is not on or off", v);
				goto fail;
			}
		} else if (!strcmp(kv, "cache")) {
			if (!strcmp(v, "writeback"))
				d->cache = DISK_CACHE_WRITEBACK;
			else if (!strcmp(v, "none"))
				d->cache = DISK_CACHE_NONE;
			else {
				snprintf(err, errlen, "cache='%s' is not writeback or none", v);
				goto fail;
			}
		} else if (!strcmp(kv, "aio")) {
			if (!strcmp(v, "io_uring"))
				d->engine = DISK_ENGINE_IO_URING;
			else if (!strcmp(v, "threads"))
				d->engine = DISK_ENGINE_THREADS;
			else {
				snprintf(err, errlen, "aio='%s' is not io_uring or threads", v);
				goto fail;
			}
		} else if (!strcmp(kv, "format")) {
			if (disk_format_parse(v, &d->format)) {
				snprintf(err, errlen,
					 "format='%s' is not auto, raw, qcow2 or overlay", v);
				goto fail;
			}
		} else if (!strcmp(kv, "l2-cache-size")) {
			char *end;
			errno = 0;
			unsigned long long b = strtoull(v, &end, 10);
			int shift = *end == 'K' ? 10 : *end == 'M' ? 20 : 0;
			end += shift ? 1 : 0;
			/* From one 512-byte table to 4 GiB: QEMU's option, bounded. */
			if (errno || end == v || *end || *v == '-' || b > (4ULL << 30) >> shift ||
			    (b << shift) < 512) {
				snprintf(
					err, errlen,
					"l2-cache-size='%s' is not 512 to 4294967296 bytes (K or M "
					"suffix allowed)",
					v);
				goto fail;
			}
			d->l2_cache = b << shift;
		} else if (!strcmp(kv, "id")) {
			size_t n = strlen(v);
			if (n == 0 || n > DISK_ID_MAX) {
				snprintf(err, errlen, "id='%s' must be 1 to %d characters", v,
					 DISK_ID_MAX);
				goto fail;
			}
			memcpy(d->id, v, n + 1);
		} else {
			snprintf(err, errlen,
				 "unknown key '%s' (keys: path, readonly, cache, id, aio, format, "
				 "l2-cache-size)",
				 kv);
			goto fail;
		}
	}
	free(copy);
	if (!d->path) {
		snprintf(err, errlen, "path= is required");
		return -EINVAL;
	}
	if (d->format == DISK_FORMAT_OVERLAY && d->engine == DISK_ENGINE_IO_URING) {
		snprintf(err, errlen, "format=%s runs on aio=threads, not aio=io_uring",
			 disk_format_name(d->format));
		free(d->path);
		d->path = NULL;
		return -EINVAL;
	}
	return 0;
fail:
	free(copy);
	free(d->path);
	d->path = NULL;
	return -EINVAL;
}

int config_create_overlay(const char *spec, char *err, size_t errlen)
{
	const char *comma = strstr(spec, ",base=");

	if (!comma || comma == spec || !comma[6])
		return fail_msg(err, errlen, -EINVAL,
				"--create-overlay: '%s' is not OVERLAY,base=IMAGE", spec);
	char *path = strndup(spec, (size_t)(comma - spec));
	if (!path)
		return fail_msg(err, errlen, -ENOMEM, "out of memory");
	/* A qcow2 image (what QEMU's tools read too) in front of a qcow2 or raw base. */
	enum disk_format f;
	int r = disk_probe_path(comma + 6, &f);
	if (r) {
		free(path);
		return fail_msg(err, errlen, r, "--create-overlay: cannot read base '%s': %s",
				comma + 6, strerror(-r));
	}
	struct qcow2_create_args a = { .path = path,
				       .backing = comma + 6,
				       .backing_format = f == DISK_FORMAT_QCOW2 ? "qcow2" : "raw" };
	r = qcow2_create(&a, err, errlen);
	free(path);
	return r;
}

int config_parse_restore_disk(const char *spec, struct restore_disk *d, char *err, size_t errlen)
{
	char *copy = strdup(spec), *save = NULL;
	int r = 0;

	memset(d, 0, sizeof(*d));
	d->format = DISK_FORMAT_AUTO;
	if (!copy) {
		snprintf(err, errlen, "out of memory");
		return -EINVAL;
	}
	for (char *kv = strtok_r(copy, ",", &save); kv && !r; kv = strtok_r(NULL, ",", &save)) {
		char *v = strchr(kv, '=');
		if (!v) {
			snprintf(err, errlen, "'%s' is not key=value (keys: id, path, format)", kv);
			r = -EINVAL;
			break;
		}
		*v++ = 0;
		if (!strcmp(kv, "id")) {
			if (!*v || strlen(v) > DISK_ID_MAX) {
				snprintf(err, errlen, "id= must be 1 to %d characters",
					 DISK_ID_MAX);
				r = -EINVAL;
			} else {
				snprintf(d->drive_id, sizeof(d->drive_id), "%s", v);
			}
		} else if (!strcmp(kv, "path")) {
			free(d->path);
			if (!*v || !(d->path = strdup(v))) {
				snprintf(err, errlen, "path= needs a file or block device");
				r = -EINVAL;
			}
		} else if (!strcmp(kv, "format")) {
			if (disk_format_parse(v, &d->format)) {
				snprintf(err, errlen,
					 "format=%.32s: not one of raw, qcow2, overlay, auto", v);
				r = -EINVAL;
			}
			d->has_format = true;
		} else {
			snprintf(err, errlen, "unknown key '%.32s' (keys: id, path, format)", kv);
			r = -EINVAL;
		}
	}
	free(copy);
	if (!r && (!d->drive_id[0] || !d->path)) {
		snprintf(err, errlen, "id= and path= are both needed");
		r = -EINVAL;
	}
	if (r) {
		free(d->path);
		d->path = NULL;
	}
	return r;
}
