/*
 * virtio-net (virtio 1.x, 5.1): one receive and one transmit queue over a network backend
 * (src/backend/net.h), and a control queue whose one command is the acknowledgement of
 * VIRTIO_NET_F_GUEST_ANNOUNCE. Offloads are offered only as far as the backend carries them.
 */
#ifndef TERN_VIRTIO_NET_H
#define TERN_VIRTIO_NET_H

#include "backend/net.h"
#include "core/loop.h"
#include "virtio/device.h"
#include "virtio/net_hdr.h"

#define VIRTIO_NET_RXQ 0
#define VIRTIO_NET_TXQ 1
#define VIRTIO_NET_CTRLQ 2 /* the last queue: after the one queue pair */
#define VIRTIO_NET_QUEUE_SIZE 256
#define VIRTIO_NET_CONFIG_SIZE 12  /* mac, status, max_virtqueue_pairs, mtu */
#define VIRTIO_NET_STATE_VERSION 2 /* section version of VMSTATE_TAG_VIRTIO_NET */

/* Control queue (5.1.6.5): class, command, data, then the ack byte the device writes. */
#define VIRTIO_NET_OK 0
#define VIRTIO_NET_ERR 1
#define VIRTIO_NET_CTRL_ANNOUNCE 3
#define VIRTIO_NET_CTRL_ANNOUNCE_ACK 0

struct vmstate_cursor;
struct vmstate_writer;

struct virtio_net_stats {
	unsigned long long rx_frames, rx_bytes, tx_frames, tx_bytes;
	unsigned long long
		rx_dropped; /* too big for the driver's buffers, or a header it cannot take */
	unsigned long long rx_stalls;	 /* times the driver's receive buffers ran out */
	unsigned long long tx_dropped;	 /* runt, oversized, or a header the device did not offer */
	unsigned long long tx_errors;	 /* the backend refused the frame */
	unsigned long long ctrl_refused; /* control commands answered VIRTIO_NET_ERR */
};

struct virtio_net {
	struct virtio_dev dev;
	struct virtio_dev_ops ops; /* per device: the features depend on the backend */
	struct net_backend *be;	   /* owned */
	struct loop *loop;
	uint8_t mac[6];
	uint16_t mtu;  /* 0: VIRTIO_NET_F_MTU not offered */
	bool keep_mac; /* a clone: restore keeps the configured (new) MAC */
	int kick_fd;   /* eventfd: more work (either queue) after a full budget */
	/*
	 * Receive: a frame read from the backend waits in rx_buf until enough buffers are
	 * posted for it (rx_len != 0). rx_stalled: the driver's buffers ran out, so the
	 * backend is not read until it posts more.
	 */
	size_t rx_len;
	bool rx_stalled;
	struct virtq_chain rx_first, rx_scratch;
	struct net_rx_out rx_out;
	/* Transmit */
	struct virtq_chain tx_chain;
	uint8_t tx_hdr[NET_HDR_LEN];
	struct iovec tx_iov[VIRTQ_MAX_SIZE + 1];
	/* Control */
	struct virtq_chain ctrl_chain;
	bool announce; /* VIRTIO_NET_S_ANNOUNCE: asked, and the driver has not acked yet */
	struct virtio_net_stats stats;
	/* One spare byte past the largest frame tells an oversized read apart. */
	uint8_t rx_buf[NET_HDR_LEN + NET_MAX_FRAME + 1];
	/* Software offloads (SOFT_OFFLOADS): the frame in one piece, and one segment. */
	uint8_t tx_lin[NET_MAX_FRAME], tx_seg[NET_MAX_FRAME];
};

/*
 * Sets up the device over an open backend (which it then owns) and watches the backend's
 * fd on loop. mtu 0 leaves VIRTIO_NET_F_MTU out. 0 or -errno.
 */
int virtio_net_init(struct virtio_net *n, const struct guest_mem *mem, const char *name,
		    struct net_backend *be, const uint8_t mac[6], uint16_t mtu, struct loop *loop);
/* Stops watching the backend and closes it. */
void virtio_net_destroy(struct virtio_net *n);

/*
 * Asks the guest to announce itself on the network (gratuitous ARP, IPv6 unsolicited
 * neighbour advertisements): the guest moved (restored from a snapshot, migrated) and the
 * switches and peers on its new link do not know where its MAC is. Sets VIRTIO_NET_S_ANNOUNCE
 * and raises a configuration-change interrupt, if the driver negotiated
 * VIRTIO_NET_F_GUEST_ANNOUNCE and the device is live; otherwise does nothing (logged at
 * debug level). Takes the lock.
 */
void virtio_net_announce(struct virtio_net *n);

/*
 * Snapshot state, VMSTATE_TAG_VIRTIO_NET payload: the 6-byte MAC, u16 MTU (0: none), u8
 * flags (bit 0: an announcement the driver has not acked; version 2 on). The queues,
 * the control queue too, are the core's (virtio_dev_save_state()). A version 1 payload
 * (no flags) is not read: its device offered neither the control queue nor
 * GUEST_ANNOUNCE, so the core's offered-features check refuses such a snapshot anyway.
 * Nothing else of the device outlives a restore: a frame read from the backend and still
 * waiting in rx_buf for receive buffers is not saved, so a restore drops it (as a lossy
 * link would; the guest's protocols retransmit). The backend's offloads are set from the
 * restored driver features by virtio_dev_resume_kick(), as activation sets them. Save
 * takes the lock; always 0.
 */
int virtio_net_save(struct virtio_net *n, struct vmstate_writer *w);
/*
 * Loads a virtio_net_save() payload into a device set up as at boot. The MTU is the
 * configuration's and must match (-EINVAL naming the device otherwise, nothing changed);
 * the MAC is the one the guest already uses, so it replaces a different configured or
 * random one (logged).
 */
int virtio_net_restore(struct virtio_net *n, struct vmstate_cursor *c, char *err, size_t errlen);

#endif
