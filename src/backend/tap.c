/*
 * TAP backend: one queue of a Linux tap interface. Frames carry the 12-byte virtio-net
 * header (TUNSETVNETHDRSZ), so partial checksums and GSO frames cross in both directions
 * without being touched; what the host may hand the guest follows the driver's features
 * (TUNSETOFFLOAD). The header is little-endian, which on x86 is the tap's native order.
 */
#include "backend/tap.h"
#include "core/log.h"
#include "virtio/net_hdr.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

struct tap {
	struct net_backend be;
	int fd;
	bool rx_offloads; /* TUNSETOFFLOAD works: the guest may get partial checksums and GSO */
	char ifname[IFNAMSIZ];
};

/* Host-to-guest offloads (TUNSETOFFLOAD) and guest-to-host ones (always, with the header). */
#define TAP_RX_FEATURES                                                    \
	(NET_F(VIRTIO_NET_F_GUEST_CSUM) | NET_F(VIRTIO_NET_F_GUEST_TSO4) | \
	 NET_F(VIRTIO_NET_F_GUEST_TSO6) | NET_F(VIRTIO_NET_F_GUEST_ECN))
#define TAP_TX_FEATURES                                             \
	(NET_F(VIRTIO_NET_F_CSUM) | NET_F(VIRTIO_NET_F_HOST_TSO4) | \
	 NET_F(VIRTIO_NET_F_HOST_TSO6) | NET_F(VIRTIO_NET_F_HOST_ECN))

unsigned int tap_offload_flags(uint64_t f)
{
	unsigned int t;

	/* The tun driver takes TSO only with CSUM, and ECN only with some TSO. */
	if (!(f & NET_F(VIRTIO_NET_F_GUEST_CSUM)))
		return 0;
	t = TUN_F_CSUM;
	if (f & NET_F(VIRTIO_NET_F_GUEST_TSO4))
		t |= TUN_F_TSO4;
	if (f & NET_F(VIRTIO_NET_F_GUEST_TSO6))
		t |= TUN_F_TSO6;
	if ((t & (TUN_F_TSO4 | TUN_F_TSO6)) && (f & NET_F(VIRTIO_NET_F_GUEST_ECN)))
		t |= TUN_F_TSO_ECN;
	return t;
}

static int tap_send(struct net_backend *be, const struct iovec *iov, unsigned int n)
{
	struct tap *t = (struct tap *)be;
	ssize_t r;

	do
		r = writev(t->fd, iov, (int)n);
	while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : 0;
}

static ssize_t tap_recv(struct net_backend *be, void *buf, size_t len)
{
	struct tap *t = (struct tap *)be;
	ssize_t r;

	do
		r = read(t->fd, buf, len);
	while (r < 0 && errno == EINTR);
	if (r >= 0)
		return r;
	if (errno == EAGAIN)
		return -EAGAIN;
	/* The frame did not fit the buffer: the kernel has consumed it. */
	if (errno == EINVAL || errno == EFAULT || errno == EMSGSIZE)
		return -EMSGSIZE;
	return -errno;
}

static int tap_set_offloads(struct net_backend *be, uint64_t features)
{
	struct tap *t = (struct tap *)be;

	if (!t->rx_offloads)
		return 0;
	return ioctl(t->fd, TUNSETOFFLOAD, tap_offload_flags(features)) < 0 ? -errno : 0;
}

static void tap_close(struct net_backend *be)
{
	struct tap *t = (struct tap *)be;

	close(t->fd);
	free(t);
}

static const struct net_backend_ops tap_ops = {
	.send = tap_send,
	.recv = tap_recv,
	.set_offloads = tap_set_offloads,
	.close = tap_close,
};

/* SIOCSIFMTU / SIOCGIFFLAGS+SIOCSIFFLAGS on the interface by name. 0 or -errno. */
static int ifreq_op(const char *name, unsigned long req, struct ifreq *ifr)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), r = 0;

	if (s < 0)
		return -errno;
	snprintf(ifr->ifr_name, IFNAMSIZ, "%s", name);
	if (ioctl(s, req, ifr) < 0)
		r = -errno;
	close(s);
	return r;
}

static int set_mtu(const char *name, uint16_t mtu)
{
	struct ifreq ifr = { .ifr_mtu = mtu };

	return ifreq_op(name, SIOCSIFMTU, &ifr);
}

static int set_up(const char *name)
{
	struct ifreq ifr;
	int r;

	memset(&ifr, 0, sizeof(ifr));
	if ((r = ifreq_op(name, SIOCGIFFLAGS, &ifr)))
		return r;
	if (ifr.ifr_flags & IFF_UP)
		return 0;
	ifr.ifr_flags |= IFF_UP;
	return ifreq_op(name, SIOCSIFFLAGS, &ifr);
}

/* The common part once fd is an attached tap queue: header size, offload probe, MTU. */
static int setup(struct tap *t, bool vnet, uint16_t mtu, const char *what, char *err, size_t errlen)
{
	int fl = fcntl(t->fd, F_GETFL), r;

	if (fl < 0 || fcntl(t->fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		r = -errno;
		snprintf(err, errlen, "%s: cannot make the tap non-blocking: %s", what,
			 strerror(-r));
		return r;
	}
	t->be.ops = &tap_ops;
	t->be.poll_fd = t->fd;
	t->be.vnet_hdr = vnet;
	snprintf(t->be.name, sizeof(t->be.name), "tap %s", t->ifname);
	if (vnet) {
		int sz = NET_HDR_LEN;
		if (ioctl(t->fd, TUNSETVNETHDRSZ, &sz) < 0) {
			r = -errno;
			snprintf(err, errlen, "%s: cannot set the virtio-net header size: %s", what,
				 strerror(-r));
			return r;
		}
		t->be.features = TAP_TX_FEATURES;
		/* Probe the receive offloads, then start with none until a driver accepts them. */
		if (ioctl(t->fd, TUNSETOFFLOAD,
			  TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN) == 0) {
			t->rx_offloads = true;
			t->be.features |= TAP_RX_FEATURES;
		}
		if (ioctl(t->fd, TUNSETOFFLOAD, 0) < 0)
			t->rx_offloads = false, t->be.features &= ~TAP_RX_FEATURES;
	}
	if (mtu && (r = set_mtu(t->ifname, mtu))) {
		snprintf(err, errlen, "%s: cannot set the MTU of %s to %u: %s%s", what, t->ifname,
			 mtu, strerror(-r), r == -EPERM ? " (needs CAP_NET_ADMIN)" : "");
		return r;
	}
	return 0;
}

static const char *setiff_why(int e, bool existed)
{
	switch (e) {
	case EPERM:
		return existed ? "exists but this user may not attach to it (it belongs to another "
				 "user: make it with 'ip tuntap add NAME mode tap user USER', or "
				 "run with CAP_NET_ADMIN)" :
				 "does not exist and creating it needs CAP_NET_ADMIN (or make it "
				 "beforehand with 'ip tuntap add NAME mode tap user USER')";
	case EBUSY:
		return "is already in use by another process";
	case EINVAL:
		return existed ? "exists and is not a tap interface" : "cannot be created";
	default:
		return NULL;
	}
}

int tap_open(struct net_backend **out, const char *name, uint16_t mtu, char *err, size_t errlen)
{
	struct tap *t;
	struct ifreq ifr;
	bool existed;
	char what[IFNAMSIZ + 8];
	int r;

	*out = NULL;
	snprintf(what, sizeof(what), "tap=%s", name);
	if (!*name || strlen(name) >= IFNAMSIZ) {
		snprintf(err, errlen, "%s: an interface name is 1 to %d characters", what,
			 IFNAMSIZ - 1);
		return -EINVAL;
	}
	t = calloc(1, sizeof(*t));
	if (!t) {
		snprintf(err, errlen, "%s: out of memory", what);
		return -ENOMEM;
	}
	t->fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
	if (t->fd < 0) {
		r = -errno;
		snprintf(err, errlen, "%s: cannot open /dev/net/tun: %s%s", what, strerror(-r),
			 r == -ENOENT ? " (is the tun module loaded?)" : "");
		free(t);
		return r;
	}
	existed = if_nametoindex(name) != 0;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name);
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	if (ioctl(t->fd, TUNSETIFF, &ifr) < 0) {
		r = -errno;
		const char *why = setiff_why(-r, existed);
		if (why)
			snprintf(err, errlen, "%s: the interface %s", what, why);
		else
			snprintf(err, errlen, "%s: cannot open the interface: %s", what,
				 strerror(-r));
		goto fail;
	}
	memcpy(t->ifname, ifr.ifr_name, IFNAMSIZ);
	t->ifname[IFNAMSIZ - 1] = 0;
	if ((r = setup(t, true, mtu, what, err, errlen)))
		goto fail;
	/* One we created is ours to bring up; an existing one is configured by its owner. */
	if (!existed && (r = set_up(t->ifname))) {
		snprintf(err, errlen, "%s: cannot bring the new interface up: %s", what,
			 strerror(-r));
		goto fail;
	}
	log_debug("%s: %s%s, receive offloads %s", what, existed ? "opened" : "created",
		  t->be.vnet_hdr ? " with virtio-net headers" : "", t->rx_offloads ? "on" : "off");
	*out = &t->be;
	return 0;
fail:
	close(t->fd);
	free(t);
	return r;
}

/*
 * Was the queue attached without IFF_NO_PI (frames then start with 4 bytes of packet
 * information)? TUNGETIFF cannot say: it reports "no socket filter" (IFF_NOFILTER) in the
 * same bit. The interface's sysfs tun_flags can, when it is in our network namespace, or
 * when we cannot tell which namespace it is in (TUNGETDEVNETNS needs CAP_NET_ADMIN) and
 * its name is visible here. 1 yes, 0 no, -1 unknown.
 */
static int has_pi(int fd, const char ifname[IFNAMSIZ])
{
	char path[64], buf[32] = { 0 };
	struct stat a, b;
	int ns = ioctl(fd, TUNGETDEVNETNS), f;

	if (ns >= 0) {
		bool same = fstat(ns, &a) == 0 && stat("/proc/self/ns/net", &b) == 0 &&
			    a.st_dev == b.st_dev && a.st_ino == b.st_ino;
		close(ns);
		if (!same)
			return -1;
	}
	snprintf(path, sizeof(path), "/sys/class/net/%.*s/tun_flags", IFNAMSIZ, ifname);
	f = open(path, O_RDONLY | O_CLOEXEC);
	if (f < 0)
		return -1;
	ssize_t n = read(f, buf, sizeof(buf) - 1);
	close(f);
	if (n <= 0)
		return -1;
	return !(strtoul(buf, NULL, 16) & IFF_NO_PI);
}

int tap_open_fd(struct net_backend **out, int fd, uint16_t mtu, char *err, size_t errlen)
{
	struct tap *t;
	struct ifreq ifr;
	char what[32];
	int r;

	*out = NULL;
	snprintf(what, sizeof(what), "tap-fd=%d", fd);
	if (fd < 0 || fcntl(fd, F_GETFD) < 0) {
		snprintf(err, errlen, "%s: not an open file descriptor", what);
		return -EBADF;
	}
	memset(&ifr, 0, sizeof(ifr));
	if (ioctl(fd, TUNGETIFF, &ifr) < 0) {
		r = -errno;
		snprintf(err, errlen,
			 "%s: not a tap file descriptor (TUNGETIFF: %s; open /dev/net/tun and "
			 "attach it with TUNSETIFF first)",
			 what, strerror(-r));
		return r;
	}
	if (!(ifr.ifr_flags & IFF_TAP)) {
		snprintf(err, errlen, "%s: %.*s is a tun (layer 3) interface; a tap is needed",
			 what, IFNAMSIZ, ifr.ifr_name);
		return -EINVAL;
	}
	if (has_pi(fd, ifr.ifr_name) == 1) {
		snprintf(err, errlen, "%s: %.*s was attached without IFF_NO_PI", what, IFNAMSIZ,
			 ifr.ifr_name);
		return -EINVAL;
	}
	t = calloc(1, sizeof(*t));
	if (!t) {
		snprintf(err, errlen, "%s: out of memory", what);
		return -ENOMEM;
	}
	t->fd = fd;
	memcpy(t->ifname, ifr.ifr_name, IFNAMSIZ);
	t->ifname[IFNAMSIZ - 1] = 0;
	if ((r = setup(t, ifr.ifr_flags & IFF_VNET_HDR, mtu, what, err, errlen))) {
		free(t); /* the fd stays the caller's on failure */
		return r;
	}
	if (!t->be.vnet_hdr)
		log_info("%s: %s has no virtio-net header (IFF_VNET_HDR): no offloads", what,
			 t->ifname);
	*out = &t->be;
	return 0;
}
