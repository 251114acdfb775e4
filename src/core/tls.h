/*
 * Mutual TLS over a connected socket (GnuTLS), the one connection type between hosts:
 * ternd's --listen-tls, `tern --connect` and host-to-host migration use it.
 *
 * Both sides prove who they are with a certificate signed by the CA in the PKI directory
 * (libvirt's layout, flattened): cacert.pem, servercert.pem + serverkey.pem on the
 * server, clientcert.pem + clientkey.pem on a client. A server refuses a client without a
 * certificate the CA signed; a client refuses a server whose certificate the CA did not
 * sign or that is not for the host name (or IP address) it connected to. TLS 1.2 and 1.3
 * only.
 *
 * Every call that waits takes a timeout in milliseconds (-1: none); the socket is made
 * non-blocking, so an event loop can also poll tls_fd() and call with timeout 0 (mind
 * tls_pending(): bytes GnuTLS has decrypted already do not wake a poll).
 */
#ifndef TERN_CORE_TLS_H
#define TERN_CORE_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define TLS_DEFAULT_DIR "/etc/tern/pki"

enum tls_role { TLS_SERVER, TLS_CLIENT };

/* The CA and this side's certificate and key; shared by every connection, on any thread. */
struct tls_creds;

/*
 * Loads dir/cacert.pem and the role's certificate and key. 0, or -errno with err naming
 * the file that is missing, unreadable or not what it should be (-EINVAL).
 */
int tls_creds_load(struct tls_creds **out, enum tls_role role, const char *dir, char *err,
		   size_t errlen);
void tls_creds_free(struct tls_creds *c);

struct tls_conn;

/*
 * Runs the handshake on the connected socket fd (which the connection then owns: closed
 * by tls_close, also on failure). A client names the host it expects in server_name
 * (a DNS name or an IP address, matched against the certificate's subject alternative
 * names); a server passes NULL. peer labels the other side in messages (e.g. its address).
 * 0 and *out, or -errno with err saying why: -EACCES when a certificate was refused
 * (either way), -ETIMEDOUT, -ECONNRESET, -EPROTO.
 */
int tls_handshake(struct tls_conn **out, struct tls_creds *creds, int fd, const char *server_name,
		  const char *peer, int timeout_ms, char *err, size_t errlen);

/* Up to n bytes: > 0, 0 at the peer's end of data, or -errno (-EAGAIN: none within timeout 0;
 * -ETIMEDOUT; -EACCES when the peer refused us with an alert; tls_error() says more). */
ssize_t tls_read(struct tls_conn *c, void *buf, size_t n, int timeout_ms);
/* All n bytes, or -errno (as tls_read) when the connection fails or the time runs out. */
int tls_write_all(struct tls_conn *c, const void *buf, size_t n, int timeout_ms);
/* Ends the session (a close_notify, without waiting for the peer's) and closes the socket. */
void tls_close(struct tls_conn *c);
/*
 * As tls_close, but first takes (and drops) what the peer still sends, for up to a second:
 * closing a socket with unread input resets the connection, which can cost the peer the
 * last bytes we sent (a byte tunnel's end, where the other side may still be sending).
 */
void tls_close_linger(struct tls_conn *c);

/* The socket, for poll(); bytes already decrypted and not yet read (do not poll then). */
int tls_fd(const struct tls_conn *c);
size_t tls_pending(struct tls_conn *c);
/* The peer's certificate subject (e.g. "CN=client,O=example"), "" when none. */
const char *tls_peer_subject(const struct tls_conn *c);
/* What the last failed call on c ran into, for messages. */
const char *tls_error(const struct tls_conn *c);

#endif
