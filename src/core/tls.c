/* Mutual TLS over a connected socket with GnuTLS (tls.h). */
#include "core/tls.h"

#include "core/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* TLS 1.2 and 1.3 with GnuTLS's default ciphers: 1.0 and 1.1 are deprecated (RFC 8996). */
#define PRIORITY "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"
/* How long a closing side keeps taking what the peer sends: a refused peer reads our alert,
 * a tunnel's peer gets our last bytes instead of a reset. */
#define LINGER_MS 1000

struct tls_creds {
	gnutls_certificate_credentials_t cred;
	gnutls_priority_t prio;
	enum tls_role role;
};

struct tls_conn {
	gnutls_session_t s;
	int fd;
	enum tls_role role;
	char peer[160];
	char subject[256];
	char err[768];
};

static long long ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static long long deadline_of(int timeout_ms)
{
	return timeout_ms < 0 ? -1 : ms_now() + timeout_ms;
}

/* Waits for the socket in the direction GnuTLS last needed; 0, -EAGAIN (timeout 0 given)
 * or -ETIMEDOUT. */
static int wait_io(struct tls_conn *c, long long deadline, bool nowait)
{
	short ev = gnutls_record_get_direction(c->s) ? POLLOUT : POLLIN;

	if (nowait)
		return -EAGAIN;
	for (;;) {
		long long left = deadline < 0 ? -1 : deadline - ms_now();
		struct pollfd p = { .fd = c->fd, .events = ev };
		if (deadline >= 0 && left <= 0)
			return -ETIMEDOUT;
		int r = poll(&p, 1, (int)left);
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return -errno;
	}
}

/* "DIR/NAME" into buf, after checking that it can be read: the error names the file. */
static int readable(const char *dir, const char *name, char *buf, size_t n, char *err,
		    size_t errlen)
{
	int fd;

	if ((size_t)snprintf(buf, n, "%s/%s", dir, name) >= n)
		return fail_msg(err, errlen, -ENAMETOOLONG, "%s: the path is too long", dir);
	if ((fd = open(buf, O_RDONLY | O_CLOEXEC)) < 0)
		return fail_msg(err, errlen, -errno, "%s: %s", buf, strerror(errno));
	close(fd);
	return 0;
}

/* GnuTLS's verification status in words, without its trailing blanks, into buf. */
static const char *status_text(unsigned int status, char *buf, size_t n)
{
	gnutls_datum_t why = { 0 };
	size_t len;

	gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &why, 0);
	snprintf(buf, n, "%s", why.data ? (const char *)why.data : "verification failed");
	gnutls_free(why.data);
	for (len = strlen(buf); len && buf[len - 1] == ' '; len--)
		buf[len - 1] = 0;
	return buf;
}

/* Catches a server certificate the CA did not sign, or an expired one, when ternd starts
 * rather than at each client's handshake (as libvirtd checks its own). */
static int check_own(struct tls_creds *c, const char *cert, const char *ca, char *err,
		     size_t errlen)
{
	gnutls_x509_trust_list_t tl;
	gnutls_x509_crt_t *crts = NULL;
	unsigned int n = 0, status = 0;
	char why[300];
	int r;

	gnutls_certificate_get_trust_list(c->cred, &tl);
	if ((r = gnutls_certificate_get_x509_crt(c->cred, 0, &crts, &n)) < 0)
		return fail_msg(err, errlen, -EINVAL, "%s: %s", cert, gnutls_strerror(r));
	r = gnutls_x509_trust_list_verify_crt(tl, crts, n, 0, &status, NULL);
	for (unsigned int i = 0; i < n; i++)
		gnutls_x509_crt_deinit(crts[i]);
	gnutls_free(crts);
	if (r < 0)
		return fail_msg(err, errlen, -EINVAL, "%s: %s", cert, gnutls_strerror(r));
	if (!status)
		return 0;
	return fail_msg(err, errlen, -EINVAL, "%s is not valid under %s: %s", cert, ca,
			status_text(status, why, sizeof(why)));
}

int tls_creds_load(struct tls_creds **out, enum tls_role role, const char *dir, char *err,
		   size_t errlen)
{
	char ca[4200], cert[4200], key[4200];
	struct tls_creds *c;
	int r;

	*out = NULL;
	if ((r = readable(dir, "cacert.pem", ca, sizeof(ca), err, errlen)) ||
	    (r = readable(dir, role == TLS_SERVER ? "servercert.pem" : "clientcert.pem", cert,
			  sizeof(cert), err, errlen)) ||
	    (r = readable(dir, role == TLS_SERVER ? "serverkey.pem" : "clientkey.pem", key,
			  sizeof(key), err, errlen)))
		return r;
	if (!(c = calloc(1, sizeof(*c))))
		return -ENOMEM;
	c->role = role;
	if (gnutls_certificate_allocate_credentials(&c->cred) < 0) {
		free(c);
		return fail_msg(err, errlen, -ENOMEM, "cannot allocate TLS credentials");
	}
	r = gnutls_certificate_set_x509_trust_file(c->cred, ca, GNUTLS_X509_FMT_PEM);
	if (r <= 0) {
		r = fail_msg(err, errlen, -EINVAL, "%s: %s", ca,
			     r ? gnutls_strerror(r) : "no PEM certificate in it");
		goto fail;
	}
	r = gnutls_certificate_set_x509_key_file(c->cred, cert, key, GNUTLS_X509_FMT_PEM);
	if (r == GNUTLS_E_CERTIFICATE_KEY_MISMATCH) {
		r = fail_msg(err, errlen, -EINVAL, "%s is not the key of %s", key, cert);
		goto fail;
	}
	if (r < 0) {
		r = fail_msg(err, errlen, -EINVAL,
			     "%s or %s: %s (PEM certificate and key expected)", cert, key,
			     gnutls_strerror(r));
		goto fail;
	}
	/* A client's certificate is the server's to judge (and refuse, which it logs). */
	if (role == TLS_SERVER && (r = check_own(c, cert, ca, err, errlen)))
		goto fail;
	if ((r = gnutls_priority_init(&c->prio, PRIORITY, NULL)) < 0) {
		r = fail_msg(err, errlen, -EINVAL, "TLS priorities: %s", gnutls_strerror(r));
		goto fail;
	}
	*out = c;
	return 0;
fail:
	gnutls_certificate_free_credentials(c->cred);
	free(c);
	return r;
}

void tls_creds_free(struct tls_creds *c)
{
	if (!c)
		return;
	gnutls_priority_deinit(c->prio);
	gnutls_certificate_free_credentials(c->cred);
	free(c);
}

/* The subject of the peer's certificate, kept for messages even when it was refused. */
static void note_subject(struct tls_conn *c)
{
	unsigned int n = 0;
	const gnutls_datum_t *certs = gnutls_certificate_get_peers(c->s, &n);
	gnutls_x509_crt_t crt;
	gnutls_datum_t dn = { 0 };

	if (!certs || !n || gnutls_x509_crt_init(&crt) < 0)
		return;
	if (gnutls_x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER) >= 0 &&
	    gnutls_x509_crt_get_dn3(crt, &dn, 0) >= 0) {
		snprintf(c->subject, sizeof(c->subject), "%s", (const char *)dn.data);
		gnutls_free(dn.data);
	}
	gnutls_x509_crt_deinit(crt);
}

/* Alerts a peer sends when it will not take our certificate. */
static bool alert_about_cert(gnutls_alert_description_t a)
{
	switch (a) {
	case GNUTLS_A_BAD_CERTIFICATE:
	case GNUTLS_A_UNSUPPORTED_CERTIFICATE:
	case GNUTLS_A_CERTIFICATE_REVOKED:
	case GNUTLS_A_CERTIFICATE_EXPIRED:
	case GNUTLS_A_CERTIFICATE_UNKNOWN:
	case GNUTLS_A_UNKNOWN_CA:
	case GNUTLS_A_ACCESS_DENIED:
	case GNUTLS_A_CERTIFICATE_REQUIRED:
		return true;
	default:
		return false;
	}
}

/* Words a GnuTLS failure into c->err and returns the -errno it stands for. */
static int failure(struct tls_conn *c, int r, const char *during)
{
	char subj[300] = "";

	if (c->subject[0])
		snprintf(subj, sizeof(subj), " (%s)", c->subject);
	switch (r) {
	case GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR: {
		char why[300];
		snprintf(
			c->err, sizeof(c->err), "%s%s: certificate refused: %s", c->peer, subj,
			status_text(gnutls_session_get_verify_cert_status(c->s), why, sizeof(why)));
		return -EACCES;
	}
	case GNUTLS_E_CERTIFICATE_REQUIRED:
	case GNUTLS_E_NO_CERTIFICATE_FOUND:
		snprintf(c->err, sizeof(c->err), "%s: refused: it sent no certificate", c->peer);
		return -EACCES;
	case GNUTLS_E_FATAL_ALERT_RECEIVED: {
		gnutls_alert_description_t a = gnutls_alert_get(c->s);
		const char *name = gnutls_alert_get_name(a);
		if (a == GNUTLS_A_CERTIFICATE_REQUIRED) {
			snprintf(c->err, sizeof(c->err),
				 "%s refused us in the TLS handshake: it requires a client "
				 "certificate (alert: %s)",
				 c->peer, name ? name : "?");
			return -EACCES;
		}
		if (alert_about_cert(a)) {
			snprintf(c->err, sizeof(c->err),
				 "%s refused our certificate in the TLS handshake (alert: %s)",
				 c->peer, name ? name : "?");
			return -EACCES;
		}
		snprintf(c->err, sizeof(c->err), "%s ended the TLS session %s (alert: %s)", c->peer,
			 during, name ? name : "?");
		return -EPROTO;
	}
	case GNUTLS_E_PREMATURE_TERMINATION:
	case GNUTLS_E_PULL_ERROR:
	case GNUTLS_E_PUSH_ERROR:
		snprintf(c->err, sizeof(c->err), "%s closed the connection %s", c->peer, during);
		return -ECONNRESET;
	case GNUTLS_E_UNSUPPORTED_VERSION_PACKET:
	case GNUTLS_E_UNEXPECTED_PACKET_LENGTH:
		snprintf(c->err, sizeof(c->err), "%s: not TLS 1.2 or 1.3 (%s)", c->peer,
			 gnutls_strerror(r));
		return -EPROTO;
	default:
		snprintf(c->err, sizeof(c->err), "%s: TLS %s: %s", c->peer, during,
			 gnutls_strerror(r));
		return -EPROTO;
	}
}

/* After a refusal the peer should read our alert, not a reset: stop sending, take what it
 * still sends for a moment, then close. */
static void linger_close(int fd)
{
	long long end = ms_now() + LINGER_MS;
	char buf[4096];

	shutdown(fd, SHUT_WR);
	for (long long left; (left = end - ms_now()) > 0;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, (int)left) <= 0 || recv(fd, buf, sizeof(buf), 0) <= 0)
			break;
	}
	close(fd);
}

static void conn_free(struct tls_conn *c, bool linger)
{
	gnutls_deinit(c->s);
	if (linger)
		linger_close(c->fd);
	else
		close(c->fd);
	free(c);
}

int tls_handshake(struct tls_conn **out, struct tls_creds *creds, int fd, const char *server_name,
		  const char *peer, int timeout_ms, char *err, size_t errlen)
{
	long long deadline = deadline_of(timeout_ms);
	unsigned char ip[16];
	struct tls_conn *c;
	int r, flags;

	*out = NULL;
	if ((flags = fcntl(fd, F_GETFL)) < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 ||
	    !(c = calloc(1, sizeof(*c)))) {
		close(fd);
		return fail_msg(err, errlen, -ENOMEM, "%s: cannot set up TLS", peer);
	}
	c->fd = fd;
	c->role = creds->role;
	snprintf(c->peer, sizeof(c->peer), "%s", peer);
	/* NO_SIGNAL: a peer that is gone must not SIGPIPE the process. */
	r = gnutls_init(&c->s, (creds->role == TLS_SERVER ? GNUTLS_SERVER : GNUTLS_CLIENT) |
				       GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL);
	if (r < 0) {
		close(fd);
		free(c);
		return fail_msg(err, errlen, -ENOMEM, "%s: %s", peer, gnutls_strerror(r));
	}
	gnutls_priority_set(c->s, creds->prio);
	gnutls_credentials_set(c->s, GNUTLS_CRD_CERTIFICATE, creds->cred);
	gnutls_transport_set_int(c->s, fd);
	if (creds->role == TLS_SERVER) {
		gnutls_certificate_server_set_request(c->s, GNUTLS_CERT_REQUIRE);
		/* Not naming the CA we trust makes a client send whatever certificate it has,
		 * so that a refusal can log whose it was. */
		gnutls_certificate_send_x509_rdn_sequence(c->s, 1);
		gnutls_session_set_verify_cert(c->s, NULL, 0);
	} else {
		/* SNI takes DNS names only; an IP address is matched against the IP SANs. */
		if (server_name && inet_pton(AF_INET, server_name, ip) != 1 &&
		    inet_pton(AF_INET6, server_name, ip) != 1)
			gnutls_server_name_set(c->s, GNUTLS_NAME_DNS, server_name,
					       strlen(server_name));
		gnutls_session_set_verify_cert(c->s, server_name, 0);
	}
	while ((r = gnutls_handshake(c->s)) < 0) {
		if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) {
			int w = wait_io(c, deadline, false);
			if (w == -ETIMEDOUT) {
				r = fail_msg(err, errlen, -ETIMEDOUT,
					     "%s: no TLS handshake within %d ms", peer, timeout_ms);
				conn_free(c, false);
				return r;
			}
			if (w)
				break;
			continue;
		}
		if (!gnutls_error_is_fatal(r)) /* a warning alert */
			continue;
		break;
	}
	note_subject(c);
	if (r < 0) {
		int e = failure(c, r, "in the handshake");
		fail_msg(err, errlen, e, "%s", c->err);
		/* Tell the peer why (bad certificate, unknown CA ...) unless it told us. */
		if (r != GNUTLS_E_FATAL_ALERT_RECEIVED && r != GNUTLS_E_PREMATURE_TERMINATION &&
		    r != GNUTLS_E_PULL_ERROR && r != GNUTLS_E_PUSH_ERROR)
			gnutls_alert_send_appropriate(c->s, r);
		conn_free(c, true);
		return e;
	}
	*out = c;
	return 0;
}

ssize_t tls_read(struct tls_conn *c, void *buf, size_t n, int timeout_ms)
{
	long long deadline = deadline_of(timeout_ms);

	for (;;) {
		ssize_t r = gnutls_record_recv(c->s, buf, n);
		if (r >= 0)
			return r;
		if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) {
			int w = wait_io(c, deadline, timeout_ms == 0);
			if (w == -ETIMEDOUT)
				snprintf(c->err, sizeof(c->err), "%s: nothing within %d ms",
					 c->peer, timeout_ms);
			if (w)
				return w;
			continue;
		}
		if (!gnutls_error_is_fatal((int)r)) /* warning alerts, renegotiation requests */
			continue;
		return failure(c, (int)r, "while reading");
	}
}

int tls_write_all(struct tls_conn *c, const void *buf, size_t n, int timeout_ms)
{
	long long deadline = deadline_of(timeout_ms);
	const char *p = buf;

	while (n) {
		/* After GNUTLS_E_AGAIN the same data must be offered again: p and n stay. */
		ssize_t r = gnutls_record_send(c->s, p, n);
		if (r > 0) {
			p += r;
			n -= (size_t)r;
			continue;
		}
		if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) {
			int w = wait_io(c, deadline, false);
			if (w == -ETIMEDOUT)
				snprintf(c->err, sizeof(c->err), "%s: no room to send within %d ms",
					 c->peer, timeout_ms);
			if (w)
				return w;
			continue;
		}
		return failure(c, (int)r, "while writing");
	}
	return 0;
}

void tls_close(struct tls_conn *c)
{
	if (!c)
		return;
	gnutls_bye(c->s, GNUTLS_SHUT_WR); /* one try: the socket is non-blocking */
	conn_free(c, false);
}

void tls_close_linger(struct tls_conn *c)
{
	if (!c)
		return;
	gnutls_bye(c->s, GNUTLS_SHUT_WR);
	conn_free(c, true);
}

int tls_fd(const struct tls_conn *c)
{
	return c->fd;
}

size_t tls_pending(struct tls_conn *c)
{
	return gnutls_record_check_pending(c->s);
}

const char *tls_peer_subject(const struct tls_conn *c)
{
	return c->subject;
}

const char *tls_error(const struct tls_conn *c)
{
	return c->err;
}
