/*
 * virtio-vsock (virtio 1.x, 5.10): stream connections between the guest and host
 * programs on Unix sockets (src/backend/vsock_uds.h), with credit-based flow control
 * both ways. tern holds at most VSOCK_CONN_BUF bytes of guest data per connection (what
 * it advertises as buf_alloc) and nothing of host data: that is read straight into the
 * guest's receive buffers, only while the guest's advertised credit allows.
 */
#ifndef TERN_VIRTIO_VSOCK_H
#define TERN_VIRTIO_VSOCK_H

#include <stdbool.h>
#include <stdint.h>

#include "core/loop.h"
#include "virtio/device.h"
#include "virtio/vsock_pkt.h"

struct vmstate_cursor;
struct vmstate_writer;

#define VSOCK_QUEUE_SIZE 256
#define VSOCK_RXQ 0
#define VSOCK_TXQ 1
#define VSOCK_EVQ 2
#define VSOCK_EVENT_TRANSPORT_RESET 0 /* virtio_vsock_event.id (5.10.6.7) */
#define VSOCK_EVENT_SIZE 4	      /* struct virtio_vsock_event: le32 id */
#define VIRTIO_VSOCK_STATE_VERSION 1  /* section version of VMSTATE_TAG_VIRTIO_VSOCK */

#define VSOCK_MAX_CONNS 1024
#define VSOCK_CONN_BUF (256u * 1024) /* buf_alloc tern advertises for each connection */
#define VSOCK_RST_BACKLOG 64	     /* RSTs for packets of no connection awaiting an rx buffer */
#define VSOCK_EPHEMERAL_BASE (1u << 30) /* first host port given to host-initiated connections */
#define VSOCK_HASH_SIZE 1024

/* Guest CIDs a user may give: 0, 1, 2 and 0xffffffff are reserved; the upper half is zero. */
#define VSOCK_CID_MIN 3ULL
#define VSOCK_CID_MAX 0xfffffffeULL

enum vsock_state {
	VSOCK_FREE,
	VSOCK_HANDSHAKE,   /* host socket accepted; waiting for "CONNECT PORT\n" */
	VSOCK_CONNECTING,  /* REQUEST sent to the guest; waiting for RESPONSE or RST */
	VSOCK_ESTABLISHED, /* data both ways */
	VSOCK_CLOSING,	   /* SHUTDOWN both ways sent; waiting for the guest's RST */
	VSOCK_RESETTING,   /* host socket closed; the RST to the guest waits for an rx buffer */
	VSOCK_DRAINING,	   /* the guest reset it after its last byte: only the buffer is left */
};

struct vsock_conn {
	enum vsock_state state;
	uint32_t gen; /* bumped on free: stale epoll events name an older one */
	int fd;
	uint32_t host_port, guest_port;
	bool keyed; /* in the hash (every state but FREE, HANDSHAKE and DRAINING) */
	int32_t hash_next;
	bool in_rx; /* on the list of connections with something for the rx queue */
	int32_t rx_prev, rx_next;
	uint32_t pending;      /* control packets to send (P_* in vsock.c) */
	uint32_t shutdown_out; /* flags of the SHUTDOWN to send */
	uint32_t guest_shut;   /* SHUTDOWN flags the guest sent (sticky) */
	bool host_readable;    /* an EPOLLIN edge not yet read to EAGAIN */
	bool host_eof, host_hup, host_wr_shut, host_wr_gone;
	/* guest -> host: rx_cnt bytes received, fwd_cnt of them written to the host socket */
	uint32_t rx_cnt, fwd_cnt, fwd_sent; /* fwd_sent: the fwd_cnt the guest last saw */
	uint8_t *buf; /* ring of VSOCK_CONN_BUF bytes; only while data waits */
	uint32_t buf_head, buf_len;
	/* host -> guest */
	uint32_t tx_cnt, peer_buf_alloc, peer_fwd_cnt;
	uint64_t deadline_ns; /* 0: none */
};

struct vsock_stats {
	unsigned long long rx_packets, tx_packets; /* to / from the guest */
	unsigned long long rx_bytes, tx_bytes;	   /* payload to / from the guest */
	unsigned long long resets_sent, credit_updates_sent, credit_violations, dropped;
	unsigned long long host_refused; /* host connections closed: table full or bad line */
	uint32_t buffered_max;		 /* most guest bytes one connection ever held */
};

struct virtio_vsock {
	struct virtio_dev dev;
	uint64_t cid;
	char path[128];
	struct loop *loop;
	int listen_fd, epfd, timer_fd;
	bool listen_paused, timer_armed;
	/* Tunables (tests lower them); set before the first connection. */
	unsigned int max_conns; /* <= VSOCK_MAX_CONNS */
	uint64_t handshake_timeout_ns, connect_timeout_ns, close_timeout_ns, tick_ns;
	struct vsock_conn *conn; /* VSOCK_MAX_CONNS slots */
	unsigned int nconns;
	int32_t hash[VSOCK_HASH_SIZE];
	int32_t rx_head, rx_tail;
	struct {
		uint32_t host_port, guest_port;
	} rst[VSOCK_RST_BACKLOG];
	unsigned int rst_head, rst_len;
	bool tx_stalled; /* rst[] was full: tx waits for rx buffers */
	uint32_t next_port;
	bool rx_held; /* rx_chain was popped and is not used yet */
	/* A TRANSPORT_RESET event is owed to the driver (after a restore). */
	bool reset_event;
	struct virtq_chain rx_chain, tx_chain, ev_chain;
	struct vsock_pkt pkt;
	struct vsock_stats stats;
};

/*
 * Listens on uds_path (see vsock_uds_listen) and registers with loop. cid must be in
 * [VSOCK_CID_MIN, VSOCK_CID_MAX]. Returns 0, or -errno with *why naming the step.
 */
int virtio_vsock_init(struct virtio_vsock *v, const struct guest_mem *mem, struct loop *loop,
		      uint64_t cid, const char *uds_path, const char **why);
/* Closes every socket and removes the listening socket's file. */
void virtio_vsock_destroy(struct virtio_vsock *v);
/*
 * The connection (host_port, guest_port), or NULL; for tests and diagnostics. A DRAINING
 * one is not found: the guest forgot it, and may reuse its address pair.
 */
struct vsock_conn *virtio_vsock_find(struct virtio_vsock *v, uint32_t host_port,
				     uint32_t guest_port);

/*
 * Snapshot state, VMSTATE_TAG_VIRTIO_VSOCK payload: u64 guest CID, bool "a transport
 * reset event is owed". Connections are not saved: their host sockets belong to this
 * process. Save takes the lock; always 0.
 */
int virtio_vsock_save(struct virtio_vsock *v, struct vmstate_writer *w);
/*
 * Loads a virtio_vsock_save() payload into a device set up as at boot, from the new
 * configuration: its CID and socket path stay (the saved CID is checked for range and
 * only logged when it differs). As Firecracker does, every connection is dropped and a
 * VIRTIO_VSOCK_EVENT_TRANSPORT_RESET event is owed: it goes on the event queue once the
 * driver is live and has posted an event buffer (virtio_dev_resume_kick(), or its kick),
 * and makes the guest reset its sockets and read the CID again. -EINVAL naming the
 * device for a bad payload, nothing changed.
 */
int virtio_vsock_restore(struct virtio_vsock *v, struct vmstate_cursor *c, char *err,
			 size_t errlen);

#endif
