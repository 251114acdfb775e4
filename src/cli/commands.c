/* tern's commands: the table that dispatch and help share, with each command's help. */
#include "cli/cli.h"

#include <string.h>

const struct cli_command cli_commands[] = {
	{ "list", cmd_list, true, "[--all]", "list the running and paused VMs (--all: every VM)",
	  "  --all    every defined VM, shut off ones too\n"
	  "Prints a table NAME STATE REASON AUTOSTART; with --json the API's array of VMs.\n",
	  "tern list --all" },
	{ "info", cmd_info, true, "NAME", "a VM's state, resources and how its last run ended",
	  "Prints the state and reason; for a running VM its uptime, vCPUs, memory, CPU time,\n"
	  "RSS and pid; for a shut-off one how its last run ended (exit status or signal, the\n"
	  "message, and the last console lines of a crashed one). NAME may be the uuid.\n",
	  "tern info web" },
	{ "dumpconfig", cmd_dumpconfig, true, "NAME", "print a VM's definition (JSON)",
	  "Prints the stored definition, every field with its defaults written out: the\n"
	  "input of `tern define`.\n",
	  "tern dumpconfig web > web.json" },
	{ "define", cmd_define, true, "FILE", "define a VM from a JSON definition (- = stdin)",
	  "FILE is a definition as docs/ternd.md describes it; a missing uuid and MACs are\n"
	  "generated. The VM is defined shut off: `tern start` starts it.\n",
	  "tern define web.json" },
	{ "create", cmd_create, true,
	  "NAME --kernel FILE [--initrd FILE] [--cmdline TEXT]\n"
	  "            [--memory MIB] [--huge-pages transparent|none|2M] [--cpus N]\n"
	  "            [--disk PATH[,readonly][,cache=none|writeback][,id=ID][,format=F]]...\n"
	  "            [--nic user[,mac=MAC][,hostfwd=tcp::HOSTPORT-:GUESTPORT]...]...\n"
	  "            [--nic bridge=NAME[,mac=MAC]]... [--vsock-cid N] [--rng] [--autostart]\n"
	  "            [--on-poweroff|--on-reboot|--on-crash destroy|restart] [--no-start]",
	  "define a VM from options and start it",
	  "Defines the VM, then starts it (--no-start: only defines it). When the start fails\n"
	  "the definition is removed again: nothing is left half-created.\n"
	  "  --kernel, --initrd   relative paths are made absolute\n"
	  "  --memory MIB         16 to 1048576 (default 256)\n"
	  "  --huge-pages KIND    guest RAM on transparent huge pages (default), 4 KiB pages\n"
	  "                       (none) or 2 MiB hugetlbfs pages the host has reserved (2M:\n"
	  "                       sysctl vm.nr_hugepages; --memory a multiple of 2)\n"
	  "  --cpus N             1 to 254 (default 1)\n"
	  "  --disk SPEC          at most 16; PATH must not contain commas; id= is the serial\n"
	  "                       the guest sees (1 to 20 characters); format= auto (the\n"
	  "                       default: qcow2 if the file is one, else raw), raw or qcow2\n"
	  "  --nic SPEC           at most 8; user networking (hostfwd= up to 8 times), or a\n"
	  "                       TAP on bridge NAME; MACs are generated unless given\n"
	  "  --vsock-cid N        a vsock device with guest CID N (3 to 4294967294)\n"
	  "  --rng                a virtio-rng device\n"
	  "  --autostart          start it whenever ternd starts\n"
	  "  --on-poweroff A      destroy (default) or restart\n"
	  "  --on-reboot A        restart (default) or destroy\n"
	  "  --on-crash A         destroy (default) or restart\n",
	  "tern create web --kernel /srv/vmlinux --memory 1024 --cpus 2 \\\n"
	  "         --disk /srv/web.img --nic user,hostfwd=tcp::2222-:22" },
	{ "edit", cmd_edit, false, "NAME", "edit a shut-off VM's definition in $VISUAL/$EDITOR",
	  "Opens the definition in $VISUAL, else $EDITOR, else vi, and stores what you save.\n"
	  "An unchanged file sends nothing. When ternd refuses the file, the error is shown\n"
	  "and the editor opens again (save it unchanged to give up, exit status 2); without a\n"
	  "terminal on stdin tern exits 2 at once. The name and uuid cannot change.\n",
	  "EDITOR=nano tern edit web" },
	{ "undefine", cmd_undefine, false, "NAME [--remove-storage]",
	  "remove a shut-off VM's definition and files",
	  "  --remove-storage   delete its disk files too, and the overlays its snapshots\n"
	  "                     left that no other VM stands on (not images tern did not\n"
	  "                     make, such as the one a snapshot froze)\n",
	  "tern undefine web" },
	{ "start", cmd_start, true, "NAME", "start a VM (or restore its managed save)",
	  "A VM saved by `tern save` resumes where it was.\n", "tern start web" },
	{ "shutdown", cmd_shutdown, true, "NAME [--timeout S]",
	  "press the power button; destroy after S seconds",
	  "  --timeout S   how long the guest has to power off, 0 to 86400 (default 60); then\n"
	  "                the VM is destroyed and tern exits 1\n",
	  "tern shutdown web --timeout 120" },
	{ "destroy", cmd_destroy, true, "NAME", "stop a VM at once (pulls the plug)", "",
	  "tern destroy web" },
	{ "reboot", cmd_reboot, true, "NAME", "send Ctrl-Alt-Del to the guest",
	  "Returns once the key press is sent; the guest reboots in its own time.\n",
	  "tern reboot web" },
	{ "suspend", cmd_suspend, true, "NAME", "pause a running VM's vCPUs", "",
	  "tern suspend web" },
	{ "resume", cmd_resume, true, "NAME", "resume a paused VM", "", "tern resume web" },
	{ "save", cmd_save, true, "NAME", "save a VM's state to disk and stop it (managed save)",
	  "The VM is then shut off (saved); `tern start` restores it. Shows the elapsed time\n"
	  "on a terminal while the memory is written.\n",
	  "tern save web" },
	{ "restore", cmd_restore, true, "NAME", "restore a VM's managed save (tern save made it)",
	  "What `tern start` does for a saved VM, but refused (exit 1) when there is no\n"
	  "managed save, rather than booting the VM afresh.\n",
	  "tern save web && tern restore web" },
	{ "snapshot", cmd_snapshot, true, "create|list|revert|delete NAME [SNAP]",
	  "take, list, revert to or delete a VM's snapshots",
	  "  create NAME SNAP   the memory and disks of a running or paused VM (paused while\n"
	  "                     they are written), the disks only of a shut-off one\n"
	  "  list NAME          NAME's snapshots, oldest first\n"
	  "  revert NAME SNAP   the definition and disks back as they were; a snapshot with\n"
	  "                     memory runs (or stays paused) from that moment, a running VM\n"
	  "                     is stopped first\n"
	  "  delete NAME SNAP   removes it (a VM running from it is not affected); a shut-off\n"
	  "                     VM's overlays that nothing else stands on now merge back\n"
	  "                     into its images\n"
	  "A snapshot freezes each writable disk's image and the VM goes on on a new qcow2\n"
	  "overlay in front of it (VM-diskI.SNAP.qcow2, beside it), as libvirt's external\n"
	  "snapshots; a revert puts it on a new overlay in front of the snapshot's images.\n"
	  "Overlays nothing stands on any more are removed; your own images never are.\n"
	  "The virsh names snapshot-create, snapshot-list, snapshot-revert and\n"
	  "snapshot-delete work too.\n",
	  "tern snapshot create web before-upgrade" },
	{ "snapshot-create", cmd_snapshot_create, true, "NAME SNAP", "= snapshot create", "",
	  "tern snapshot-create web s1" },
	{ "snapshot-list", cmd_snapshot_list, true, "NAME", "= snapshot list", "",
	  "tern snapshot-list web" },
	{ "snapshot-revert", cmd_snapshot_revert, true, "NAME SNAP", "= snapshot revert", "",
	  "tern snapshot-revert web s1" },
	{ "snapshot-delete", cmd_snapshot_delete, true, "NAME SNAP", "= snapshot delete", "",
	  "tern snapshot-delete web s1" },
	{ "clone", cmd_clone, true, "NAME NEW [--copy]", "a new VM from a shut-off one",
	  "The clone gets a new uuid, new MACs and a new vsock CID, no host port forwards\n"
	  "and autostart off, and its own writable disks beside the source's, named\n"
	  "NEW-diskI.img, .qcow2 or .ovl: a reflink where the file system has them; else a\n"
	  "qcow2 overlay in front of the source's image, and the source moves onto a qcow2\n"
	  "overlay of its own (SOURCE-diskI.qcow2), since both need that image unchanged\n"
	  "from then on (tern img commit merges one back; tern img convert flattens one).\n"
	  "  --copy   full copies of the disks instead; shows the elapsed time on a terminal\n",
	  "tern clone web web2 && tern start web2" },
	{ "migrate", cmd_migrate, true,
	  "NAME tls://HOST:PORT [--live] [--downtime MS] [--bandwidth MIB]\n"
	  "            [--auto-converge] [--post-copy] [--copy-storage] [--undefine-source]",
	  "move a running or paused VM to another host's ternd",
	  "HOST's ternd (ternd --listen-tls; the port is required, there is no default) gets\n"
	  "the definition and starts a tern-vmm that waits for the VM; the stream goes over\n"
	  "mutual TLS with this ternd's client certificate (ternd --tls-dir). Disks must be on\n"
	  "storage both hosts reach at the same paths (or go too: --copy-storage), and the\n"
	  "kernel must be there too. Afterwards the VM runs there and is shut off here\n"
	  "(migrated); its definition stays here unless --undefine-source. When it fails the VM\n"
	  "runs on here and the destination keeps nothing. Shows the progress on a terminal;\n"
	  "Ctrl-C (or tern abort NAME) cancels it; exit status 1 when it failed or was cancelled.\n"
	  "  --live              copy the memory while the guest runs (pre-copy); without it the\n"
	  "                      VM is paused first and resumed there\n"
	  "  --downtime MS       the pause allowed at the switchover, 1 to 3600000 (default 300)\n"
	  "  --bandwidth MIB     MiB/s at most, 0 to 1048576 (default 0: no limit)\n"
	  "  --auto-converge     slow the vCPUs down when they dirty memory faster than it goes\n"
	  "  --post-copy         when pre-copy has not converged after 3 rounds, run it there at\n"
	  "                      once and fetch the rest of its memory as it touches it\n"
	  "  --copy-storage      copy the writable disks too (made there at the same paths as\n"
	  "                      raw images, a qcow2 chain flattened; none may exist there\n"
	  "                      yet); with --post-copy they\n"
	  "                      still arrive whole before the VM runs there\n"
	  "  --undefine-source   remove the definition here once it runs there\n",
	  "tern migrate web tls://host2.example.org:16514 --live" },
	{ "abort", cmd_abort, true, "NAME", "stop the migration running on a VM",
	  "As virsh domjobabort: the migration ends as cancelled, the VM runs on here and the\n"
	  "destination keeps nothing. Ctrl-C in tern migrate does the same. Other jobs (save,\n"
	  "snapshot, clone) cannot be stopped half-way.\n",
	  "tern abort web" },
	{ "stats", cmd_stats, true, "NAME", "a running VM's disk and NIC counters",
	  "Bytes, requests and packets since the VM started, per disk and per NIC; --json\n"
	  "adds the vCPU exits, vsock and rng counters.\n",
	  "tern stats web" },
	{ "set", cmd_set, true,
	  "NAME [--cpu-max PCT] [--cpu-weight N] [--memory-max MIB] [--pids-max N]\n"
	  "            [--disk I [--read-iops N] [--write-iops N] [--read-mib N] [--write-mib N]]",
	  "change a VM's cgroup limits, at once if it runs",
	  "Changes the limits in the definition (in any state); a running VM's cgroup gets\n"
	  "them at once, and when the kernel refuses one nothing changes. 0 is the default.\n"
	  "  --cpu-max PCT      cpu.max: % of one CPU, 1 to 100 x vCPUs (0: no cap)\n"
	  "  --cpu-weight N     cpu.weight: 1 to 10000 (0: 100)\n"
	  "  --memory-max MIB   memory.max: at least memory + 64 (0: no cap)\n"
	  "  --pids-max N       pids.max: 16 to 65536 (0: 512)\n"
	  "  --disk I           which disk (0, 1, ... in the definition's order) the next take:\n"
	  "  --read-iops N      io.max riops on the block device under its image, 0 to 1000000\n"
	  "  --write-iops N     wiops, likewise; --read-mib N, --write-mib N: MiB/s, 0 to 100000\n"
	  "                     (0: no cap; disks on one device share it: the sum of their caps)\n",
	  "tern set web --cpu-max 50 --memory-max 1536" },
	{ "blockresize", cmd_blockresize, true, "NAME DISK SIZE",
	  "grow a running VM's disk; the guest sees it at once",
	  "DISK is the disk's index (0, 1, ... in the definition's order) or its id; SIZE is\n"
	  "the new size in bytes, or with K, M, G or T (binary: 10G), a multiple of 512 and\n"
	  "not smaller than now (a disk in use does not shrink). tern-vmm grows the raw file\n"
	  "or qcow2 image and tells the guest (a configuration change); a file system on it\n"
	  "still needs its own resize2fs. A paused VM works too; a shut-off VM's image grows\n"
	  "with `tern img resize`. A block device grows with its own tools (lvextend).\n",
	  "tern blockresize web 0 20G" },
	{ "autostart", cmd_autostart, true, "NAME [--disable]",
	  "start a VM whenever ternd starts (--disable: not)",
	  "Changes the definition, which ternd allows only while the VM is shut off.\n",
	  "tern autostart web" },
	{ "events", cmd_events, true, "[--follow] [--since ID]", "print the VMs' state changes",
	  "One line per event: time, VM, state, reason, and the event's id (#ID).\n"
	  "  --since ID   only events after ID (default: every event ternd has kept)\n"
	  "  --follow     keep printing new events until interrupted; without --since only\n"
	  "               the events to come; with --json one JSON object per line\n",
	  "tern events --follow" },
	{ "console", cmd_console, false, "NAME [--ro] [--log]",
	  "attach to a running VM's serial console",
	  "On a terminal the console is raw; Ctrl-] detaches. Only one read-write client at a\n"
	  "time: --ro watches without typing. Without a terminal, stdin and stdout are the\n"
	  "console's. It needs a local ternd: over --connect it is refused (the console is a\n"
	  "socket on ternd's host).\n"
	  "  --ro    read-only: what you type is not sent\n"
	  "  --log   print the console log (older rotated logs first) instead, also of a\n"
	  "          shut-off VM\n",
	  "tern console web" },
	{ "img", cmd_img, true, "info|create|commit|convert|resize FILE ...",
	  "look into, make, merge and flatten disk images on this host (as qemu-img)",
	  "  info FILE          format, virtual size, allocation and the backing chain\n"
	  "  create FILE [--size SIZE] [--backing BASE] [--cluster-size BYTES]\n"
	  "                     [--lazy-refcounts]   a new qcow2 image (version 3); with\n"
	  "                     --backing it reads BASE (raw or qcow2) where it has\n"
	  "                     nothing of its own, and is as large as BASE unless --size\n"
	  "  commit FILE [--keep]  writes what the qcow2 image FILE holds itself into\n"
	  "                     its backing file (no VM may be using either), then empties\n"
	  "                     FILE so that it reads through to it (--keep: leave it)\n"
	  "  convert FILE OUT [--format raw|qcow2] [--compress] [--compression zlib|zstd]\n"
	  "                     a new image OUT (never over a file) with what a guest on\n"
	  "                     FILE sees (qcow2 with its chain, raw, or a tern overlay);\n"
	  "                     raw by default, sparse; --compress: qcow2 clusters\n"
	  "                     compressed (zlib unless --compression zstd), as qemu-img -c\n"
	  "  resize FILE [+]SIZE [--shrink]  a raw or qcow2 image's new virtual size (or\n"
	  "                     +SIZE more); no VM may be using it. Smaller only with\n"
	  "                     --shrink (what lies past the end goes)\n"
	  "SIZE: bytes, or with K, M, G or T (binary). These work on files directly, not\n"
	  "through ternd; the img-* names (tern img-info ...) work too.\n",
	  "tern img info web-disk0.qcow2" },
	{ "img-info", cmd_img_info, true, "FILE", "= img info", "", "tern img-info a.qcow2" },
	{ "img-create", cmd_img_create, true,
	  "FILE [--size SIZE] [--backing BASE] [--cluster-size BYTES] [--lazy-refcounts]",
	  "= img create", "", "tern img-create a.qcow2 --backing base.img" },
	{ "img-commit", cmd_img_commit, true, "FILE [--keep]", "= img commit", "",
	  "tern img-commit a.qcow2" },
	{ "img-convert", cmd_img_convert, true,
	  "FILE OUT [--format raw|qcow2] [--compress] [--compression zlib|zstd]", "= img convert",
	  "", "tern img-convert a.qcow2 a.img" },
	{ "img-resize", cmd_img_resize, true, "FILE [+]SIZE [--shrink]", "= img resize", "",
	  "tern img-resize a.qcow2 +10G" },
	{ "help", NULL, false, "[COMMAND]", "this help, or a command's", "", "tern help create" },
	{ 0 },
};

const struct cli_command *cli_command_find(const char *name)
{
	for (const struct cli_command *k = cli_commands; k->name; k++)
		if (!strcmp(k->name, name))
			return k;
	return NULL;
}
