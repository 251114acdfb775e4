"""A stand-in for tern-vmm under tern-monitor (test_monitor.py): prints what it is told
to on stdout (the console) and stderr (its log), echoes console input, and ends as told.

fakevmm.py [--lines N] [--stderr TEXT] [--tick SECONDS] [--status-file PATH --reason R]
           [--exit N]
  --lines N      print "line 0000 ..." N times at start
  --stderr TEXT  write TEXT and a newline on stderr at start
  --tick S       print "tick N" every S seconds while waiting for input
  --status-file PATH --reason R   write PATH as tern-vmm does before exiting
  --exit N       exit with N right after the start lines (else wait for commands)
Commands, one per line on stdin: "echo TEXT" prints "echo: TEXT"; "flood N" prints N
bytes of 100-byte lines (16 KiB each 10 ms: a fast console that readers keep up with)
then "flood done"; "err TEXT" writes TEXT on stderr; "exit N" exits."""
import json
import os
import select
import sys
import time


def out(fd, data):
    while data:
        n = os.write(fd, data)
        data = data[n:]


def finish(a, status):
    if a.get("status-file"):
        with open(a["status-file"] + ".tmp", "w") as f:
            json.dump({"reason": a.get("reason", "poweroff"), "exit_status": status,
                       "message": "fake says " + a.get("reason", "poweroff")}, f)
        os.rename(a["status-file"] + ".tmp", a["status-file"])
    sys.exit(status)


def main():
    argv = sys.argv[1:]
    a = {argv[i][2:]: argv[i + 1] for i in range(0, len(argv) - 1, 2)}
    for i in range(int(a.get("lines", 0))):
        out(1, b"line %04d %s\n" % (i, b"." * 40))
    if "stderr" in a:
        out(2, a["stderr"].encode() + b"\n")
    if "exit" in a:
        finish(a, int(a["exit"]))
    tick = float(a.get("tick", 0)) or None
    ticks = 0
    buf = b""
    while True:
        if not select.select([0], [], [], tick)[0]:
            out(1, b"tick %d\n" % ticks)
            ticks += 1
            continue
        chunk = os.read(0, 4096)
        if not chunk:
            time.sleep(tick or 0.1)  # console input closed: keep running, as tern-vmm does
            continue
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            cmd, _, arg = line.partition(b" ")
            if cmd == b"echo":
                out(1, b"echo: " + arg + b"\n")
            elif cmd == b"flood":
                rows = int(arg) // 100
                row = b"f" * 99 + b"\n"
                while rows > 0:
                    out(1, row * min(rows, 164))
                    rows -= 164
                    time.sleep(0.01)
                out(1, b"flood done\n")
            elif cmd == b"err":
                out(2, arg + b"\n")
            elif cmd == b"exit":
                finish(a, int(arg))


if __name__ == "__main__":
    main()
