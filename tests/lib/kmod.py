"""Kernel modules of an installed Debian kernel, in the order insmod needs them.

Used for the lab's initramfs (tests/lab) and for the Debian guests' initramfs
(tests/linux/debian.py): both load modules with busybox insmod, which knows nothing
of dependencies, so modules.dep is resolved here, dependencies first.
"""
import os


class NoModule(Exception):
    pass


def module_order(version, names):
    """[(name, path of its .ko)] for names and everything they need, dependencies first."""
    base = os.path.join("/lib/modules", version)
    deps = {}
    try:
        with open(os.path.join(base, "modules.dep")) as f:
            for line in f:
                mod, _, rest = line.partition(":")
                deps[os.path.basename(mod)[:-3]] = (mod, [os.path.basename(d)[:-3] for d in rest.split()])
    except OSError as e:
        raise NoModule("cannot read the modules of kernel %s: %s" % (version, e))
    order = []

    def visit(n):
        if n not in deps:
            alt = n.replace("-", "_") if "-" in n else n.replace("_", "-")
            if alt not in deps:
                raise NoModule("module %s is not in %s/modules.dep" % (n, base))
            n = alt
        if n in order:
            return
        for d in deps[n][1]:
            visit(d)
        order.append(n)

    for n in names:
        visit(n)
    return [(n, os.path.join(base, deps[n][0])) for n in order]
