/* Persistent TAPs on bridges for ternd's bridge NICs (TUNSETPERSIST, SIOCBRADDIF). */
#include "daemon/bridge.h"

#include "core/log.h"
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/sockios.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

void bridge_tap_name(const struct vmdef *d, unsigned int nic, char out[IFNAMSIZ])
{
	snprintf(out, IFNAMSIZ, "tn%.8s-%u", d->uuid, nic);
}

/* Makes the TAP persistent (on), usable by uid and its gid (not 0: a jailed tern-vmm has
 * no CAP_NET_ADMIN to attach to it otherwise), or removes it (off). */
static int tap_persist(const char *name, bool on, uid_t uid)
{
	struct ifreq ifr = { 0 };
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC), r = 0;

	if (fd < 0)
		return -errno;
	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name);
	/* The flags tern-vmm opens it with: TUNSETIFF refuses an existing TAP made otherwise. */
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	if (ioctl(fd, TUNSETIFF, &ifr) < 0 ||
	    (on && uid &&
	     (ioctl(fd, TUNSETOWNER, (unsigned long)uid) < 0 ||
	      ioctl(fd, TUNSETGROUP, (unsigned long)uid) < 0)) ||
	    ioctl(fd, TUNSETPERSIST, on ? 1 : 0) < 0)
		r = -errno;
	close(fd);
	return r;
}

static int attach_up(const char *bridge, const char *tap)
{
	struct ifreq ifr = { 0 };
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), r = 0;

	if (s < 0)
		return -errno;
	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", bridge);
	ifr.ifr_ifindex = (int)if_nametoindex(tap);
	if (!ifr.ifr_ifindex || ioctl(s, SIOCBRADDIF, &ifr) < 0) {
		r = -errno;
		goto out;
	}
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", tap);
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) {
		r = -errno;
		goto out;
	}
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
		r = -errno;
out:
	close(s);
	return r;
}

int bridge_taps_create(const struct vmdef *d, uid_t uid, char *err, size_t errlen)
{
	char tap[IFNAMSIZ];
	int r;

	for (unsigned int i = 0; i < d->nnics; i++) {
		const struct vmdef_nic *n = &d->nics[i];
		if (n->type != VMDEF_NIC_BRIDGE)
			continue;
		if (!if_nametoindex(n->bridge)) {
			r = fail_msg(err, errlen, -EINVAL,
				     "'nics[%u].bridge': there is no bridge %s", i, n->bridge);
			goto fail;
		}
		bridge_tap_name(d, i, tap);
		tap_persist(tap, false, 0); /* one left from a run that ended with ternd away */
		if ((r = tap_persist(tap, true, uid))) {
			fail_msg(err, errlen, r, "nics[%u]: cannot make TAP %s: %s%s", i, tap,
				 strerror(-r), r == -EPERM ? " (ternd needs CAP_NET_ADMIN)" : "");
			goto fail;
		}
		if ((r = attach_up(n->bridge, tap))) {
			fail_msg(err, errlen, r == -EOPNOTSUPP ? -EINVAL : r,
				 "'nics[%u].bridge': cannot attach TAP %s to %s: %s", i, tap,
				 n->bridge, strerror(-r));
			r = r == -EOPNOTSUPP ? -EINVAL : r;
			goto fail;
		}
	}
	return 0;
fail:
	bridge_taps_delete(d);
	return r;
}

void bridge_taps_delete(const struct vmdef *d)
{
	char tap[IFNAMSIZ];

	for (unsigned int i = 0; i < d->nnics; i++)
		if (d->nics[i].type == VMDEF_NIC_BRIDGE) {
			bridge_tap_name(d, i, tap);
			/* The ended tern-vmm's queue may still be let go of (an io_uring's files
			 * are released after its process is reaped): busy for a moment. */
			int r = 0;
			for (int k = 0; k < 100 && if_nametoindex(tap); k++) {
				if ((r = tap_persist(tap, false, 0)) != -EBUSY)
					break;
				usleep(20000);
			}
			if (r)
				log_warn("cannot remove TAP %s: %s", tap, strerror(-r));
		}
}
