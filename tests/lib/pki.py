"""Certificates for the TLS tests, made with GnuTLS's certtool (gnutls-bin), as
docs/ternd.md tells an administrator to make them.

    ca = pki.CA(workdir, "tern test CA")
    ca.server(dirpath, ["127.0.0.1", "localhost"])   # cacert.pem, servercert.pem, serverkey.pem
    ca.client(dirpath, "client1")                     # cacert.pem, clientcert.pem, clientkey.pem
"""
import ipaddress
import os
import shutil
import subprocess

import ternlib


def certtool(*args):
    exe = shutil.which("certtool")
    if not exe:
        raise ternlib.Missing("certtool is not installed (apt install gnutls-bin; scripts/setup does)")
    p = subprocess.run([exe] + list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=60)
    assert p.returncode == 0, "certtool %s: %s" % (" ".join(args), p.stdout.decode(errors="replace"))


def _key(path):
    # ECDSA P-256: generated at once, where an RSA key takes seconds in the lab's emulated CPU.
    certtool("--generate-privkey", "--key-type=ecdsa", "--outfile", path)
    os.chmod(path, 0o600)


def _template(path, lines):
    with open(path, "w") as f:
        f.write("\n".join(lines + ["expiration_days = 30", ""]))
    return path


class CA:
    def __init__(self, workdir, name):
        self.dir = os.path.join(workdir, "ca-" + name.replace(" ", "-"))
        os.makedirs(self.dir, exist_ok=True)
        self.key = os.path.join(self.dir, "cakey.pem")
        self.cert = os.path.join(self.dir, "cacert.pem")
        self.serial = 1
        _key(self.key)
        tpl = _template(os.path.join(self.dir, "ca.info"),
                        ['cn = "%s"' % name, "ca", "cert_signing_key"])
        certtool("--generate-self-signed", "--load-privkey", self.key, "--template", tpl,
                 "--outfile", self.cert)

    def _issue(self, dirpath, kind, lines):
        os.makedirs(dirpath, exist_ok=True)
        shutil.copy(self.cert, os.path.join(dirpath, "cacert.pem"))
        key = os.path.join(dirpath, kind + "key.pem")
        _key(key)
        self.serial += 1
        tpl = _template(os.path.join(self.dir, "%s-%d.info" % (kind, self.serial)),
                        lines + ["serial = %d" % self.serial])
        certtool("--generate-certificate", "--load-privkey", key, "--load-ca-certificate",
                 self.cert, "--load-ca-privkey", self.key, "--template", tpl, "--outfile",
                 os.path.join(dirpath, kind + "cert.pem"))
        return dirpath

    def server(self, dirpath, names):
        """A server certificate whose subject alternative names are names (IP addresses
        or DNS names); the first is its CN."""
        lines = ['cn = "%s"' % names[0], "tls_www_server", "signing_key", "encryption_key"]
        for n in names:
            try:
                ipaddress.ip_address(n)
                lines.append('ip_address = "%s"' % n)
            except ValueError:
                lines.append('dns_name = "%s"' % n)
        return self._issue(dirpath, "server", lines)

    def client(self, dirpath, name):
        return self._issue(dirpath, "client", ['cn = "%s"' % name, 'organization = "tern tests"',
                                              "tls_www_client", "signing_key"])
