"""qcow2 images as QEMU's own tool reads them: the tests' independent reader of the qcow2
files tern writes (clones' overlays, --create-overlay, tern img)."""
import json
import os
import subprocess
import tempfile


def qemu_img(*args, check=True):
    r = subprocess.run(["qemu-img"] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=300)
    out = r.stdout.decode() + r.stderr.decode()
    if check:
        assert r.returncode == 0, "qemu-img %s: %s" % (" ".join(args), out)
    return r.returncode, out


def info(path):
    """`qemu-img info` of path as a dict (format, virtual-size, backing-filename ...)."""
    return json.loads(qemu_img("info", "--output=json", "-U", path)[1])


def backing(path):
    """The backing file path, resolved (None without one)."""
    i = info(path)
    b = i.get("full-backing-filename") or i.get("backing-filename")
    return os.path.realpath(b) if b else None


def unlocked(path):
    """path for --image-opts with QEMU's own image locking off down the chain: a running
    tern-vmm's lock on an image (or on the backing file its clones share) reads to QEMU
    as "in use, not shared", and the tests read such images, as a second reader, while
    the VMs run."""
    depth = len(json.loads(qemu_img("info", "--output=json", "-U", "--backing-chain", path)[1]))
    opts = "driver=qcow2,file.filename=%s,file.locking=off" % path.replace(",", ",,")
    for d in range(1, depth):
        opts += "," + "backing." * d + "file.locking=off"
    return opts


def check(path):
    """`qemu-img check` exit status and output (0: clean, 3: leaked clusters only)."""
    return qemu_img("check", "--image-opts", unlocked(path), check=False)


def here(path):
    """The guest ranges (offset, length) whose data this file holds itself (not below)."""
    out = qemu_img("map", "--output=json", "--image-opts", unlocked(path))[1]
    return [(m["start"], m["length"]) for m in json.loads(out)
            if m.get("depth") == 0 and m.get("data")]


def flatten(path, dest):
    """What a guest on path sees, as a raw image at dest."""
    qemu_img("convert", "--image-opts", "-O", "raw", unlocked(path), dest)


def read(path, off, length):
    """What a guest on path sees at [off, off+length) (path may be in use by a VM)."""
    with tempfile.TemporaryDirectory(prefix="tern-qcow2-read-") as tmp:
        flat = os.path.join(tmp, "flat.img")
        flatten(path, flat)
        with open(flat, "rb") as f:
            f.seek(off)
            return f.read(length)


def allocated(path):
    return os.stat(path).st_blocks * 512
