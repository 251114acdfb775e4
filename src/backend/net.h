/*
 * What virtio-net needs from a network backend (TAP, user-mode): send one frame, read one
 * frame, a file descriptor that signals "frames may be waiting", and the offloads the
 * backend can carry. A backend never calls into the device: the device pulls, so a guest
 * that posts no receive buffers simply stops reading its own backend.
 */
#ifndef TERN_BACKEND_NET_H
#define TERN_BACKEND_NET_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

struct net_backend;

struct net_backend_ops {
	/*
	 * Sends one frame, iov[0..n) (at most VIRTQ_MAX_SIZE + 1 segments). With vnet_hdr the
	 * first NET_HDR_LEN bytes are the virtio-net header (already checked). Called from any
	 * thread, with the device lock held. 0, or -errno: the frame was dropped.
	 */
	int (*send)(struct net_backend *be, const struct iovec *iov, unsigned int n);
	/*
	 * Reads one frame into buf (the header first, with vnet_hdr). Returns its length,
	 * -EAGAIN when none is waiting, -EMSGSIZE when the frame was larger than len (it is
	 * consumed and lost), or another -errno. Any thread, device lock held.
	 */
	ssize_t (*recv)(struct net_backend *be, void *buf, size_t len);
	/*
	 * The driver accepted features (virtio-net bits): the backend turns on the receive
	 * offloads (GUEST_CSUM, GUEST_TSO4/6, GUEST_ECN) it can deliver. 0 or -errno.
	 */
	int (*set_offloads)(struct net_backend *be, uint64_t features);
	void (*close)(struct net_backend *be);
};

struct net_backend {
	const struct net_backend_ops *ops;
	/*
	 * Readable when recv() may return a frame. The device watches it edge-triggered: every
	 * new frame must make a new wake-up (a TAP fd, an eventfd written per frame), because
	 * the device stops reading while the guest has no buffers and resumes on its own.
	 */
	int poll_fd;
	/* Frames carry a 12-byte virtio_net_hdr (little-endian) in both directions. */
	bool vnet_hdr;
	/* virtio-net offload feature bits the backend handles (offered to the driver). */
	uint64_t features;
	char name[64]; /* for messages: "tap0", "user" */
};

static inline int net_backend_send(struct net_backend *be, const struct iovec *iov, unsigned int n)
{
	return be->ops->send(be, iov, n);
}

static inline ssize_t net_backend_recv(struct net_backend *be, void *buf, size_t len)
{
	return be->ops->recv(be, buf, len);
}

static inline int net_backend_set_offloads(struct net_backend *be, uint64_t features)
{
	return be->ops->set_offloads ? be->ops->set_offloads(be, features) : 0;
}

static inline void net_backend_close(struct net_backend *be)
{
	if (be)
		be->ops->close(be);
}

#endif
