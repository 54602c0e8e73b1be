/* vmbk: where a backup job serves its NBD export, and how vmbk connects to it
 *
 * A unix socket in the job directory when vmbk runs where the guest does (the default); TCP when
 * the reader is elsewhere (--remote, a SAN-attached appliance).  TCP carries the guest's disks in
 * the clear unless TLS is on: libvirt then serves with the certificates of qemu.conf's
 * backup_tls_x509_cert_dir, and vmbk verifies the server against the CA of its own client
 * certificate directory.
 */
#include <config.h>

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libnbd.h>

#include "nbdexport.h"
#include "vmbk-error.h"

void
vmbkNbdExportFree(vmbkNbdExport *ex)
{
    if (!ex)
        return;
    g_free(ex->host);
    g_free(ex->port);
    g_free(ex->tls_dir);
    g_free(ex);
}

bool
vmbkIsLoopback(const char *host)
{
    return g_str_equal(host, "localhost") || g_str_has_prefix(host, "127.") ||
           g_str_equal(host, "::1");
}

const char *
vmbkQemuConfPath(void)
{
    const char *path = g_getenv("VMBK_QEMU_CONF");

    return path && *path ? path : "/etc/libvirt/qemu.conf";
}

char *
vmbkQemuConfGet(const char *key)
{
    g_autofree char *text = NULL;
    g_auto(GStrv) lines = NULL;
    char *value = NULL;
    size_t i;

    if (!g_file_get_contents(vmbkQemuConfPath(), &text, NULL, NULL))
        return NULL;
    lines = g_strsplit(text, "\n", -1);
    for (i = 0; lines[i]; i++) {
        char *line = g_strstrip(lines[i]);
        size_t n = strlen(key);
        char *v;

        if (strncmp(line, key, n) != 0)
            continue;
        v = g_strstrip(line + n);
        if (*v != '=')
            continue;
        v = g_strstrip(v + 1);
        if (*v == '"' && strchr(v + 1, '"')) {
            g_free(value);
            value = g_strndup(v + 1, strchr(v + 1, '"') - v - 1);
        } else if (*v) {
            g_free(value);
            value = g_strdup(v);
        }
    }
    return value; /* the last setting wins, as in libvirt */
}

/* The client's certificate directory: $VMBK_TLS_DIR, else /etc/pki/vmbk, else the directory
 * libvirt serves backups from (backup_tls_x509_cert_dir, default_tls_x509_cert_dir,
 * /etc/pki/qemu), which holds the CA and, where qemu is also a TLS client, a client
 * certificate. */
static char *
vmbkNbdTlsDir(void)
{
    const char *env = g_getenv("VMBK_TLS_DIR");
    char *dir;

    if (env && *env)
        return g_strdup(env);
    if (g_file_test("/etc/pki/vmbk", G_FILE_TEST_IS_DIR))
        return g_strdup("/etc/pki/vmbk");
    if ((dir = vmbkQemuConfGet("backup_tls_x509_cert_dir")) ||
        (dir = vmbkQemuConfGet("default_tls_x509_cert_dir")))
        return dir;
    return g_strdup("/etc/pki/qemu");
}

/* A port free on host now: bind to port 0 and see what the kernel chose.  libvirt binds it a
 * moment later; a port taken in between makes the job fail to start, saying so. */
static int
vmbkFreePort(const char *host, char **out)
{
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE };
    struct addrinfo *res = NULL, *ai;
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char port[NI_MAXSERV];
    int r, fd = -1;

    if ((r = getaddrinfo(host, "0", &hints, &res)) != 0) {
        vmbkError(VMBK_ERR_USAGE, "backup: cannot resolve the export address '%s': %s", host,
                  gai_strerror(r));
        return -1;
    }
    for (ai = res; ai; ai = ai->ai_next) {
        if ((fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0)) < 0)
            continue;
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
            getsockname(fd, (struct sockaddr *) &ss, &len) == 0 &&
            getnameinfo((struct sockaddr *) &ss, len, NULL, 0, port, sizeof(port),
                        NI_NUMERICSERV) == 0)
            break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        /* Not an address of this host: the domain's, where we cannot look for a free port (and
         * libvirt does not pick one). */
        vmbkErrorSystem(errno, "backup: cannot find a free TCP port on '%s' here; give the "
                        "export's port with --export tcp:%s%s%s:PORT", host,
                        strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "");
        return -1;
    }
    close(fd);
    *out = g_strdup(port);
    return 0;
}

vmbkNbdExport *
vmbkNbdExportParse(const char *spec, bool tls, bool insecure, bool local)
{
    g_autoptr(vmbkNbdExport) ex = g_new0(vmbkNbdExport, 1);
    g_autofree char *backup_dir = NULL;
    const char *rest;

    if (!spec || g_str_equal(spec, "unix")) {
        if (tls) {
            vmbkError(VMBK_ERR_USAGE, "backup: --tls is for --export tcp; a unix socket "
                      "stays on this host");
            return NULL;
        }
        return g_steal_pointer(&ex);
    }
    if (!g_str_equal(spec, "tcp") && !g_str_has_prefix(spec, "tcp:")) {
        vmbkError(VMBK_ERR_USAGE, "backup: unknown export '%s'; use --export unix or --export "
                  "tcp[:ADDR[:PORT]]", spec);
        return NULL;
    }
    rest = spec[3] ? spec + 4 : "";
    if (rest[0] == '[') {
        const char *end = strchr(rest, ']');
        if (!end || end == rest + 1 || (end[1] && (end[1] != ':' || !end[2]))) {
            vmbkError(VMBK_ERR_USAGE, "backup: --export '%s': write an IPv6 address as "
                      "tcp:[ADDR] or tcp:[ADDR]:PORT", spec);
            return NULL;
        }
        ex->host = g_strndup(rest + 1, end - rest - 1);
        ex->port = end[1] ? g_strdup(end + 2) : NULL;
    } else if (*rest) {
        const char *colon = strchr(rest, ':');
        if (colon == rest || (colon && (!colon[1] || strchr(colon + 1, ':')))) {
            vmbkError(VMBK_ERR_USAGE, "backup: --export '%s' wants tcp:ADDR or tcp:ADDR:PORT",
                      spec);
            return NULL;
        }
        ex->host = colon ? g_strndup(rest, colon - rest) : g_strdup(rest);
        ex->port = colon ? g_strdup(colon + 1) : NULL;
    } else {
        ex->host = g_strdup("127.0.0.1");
    }
    if (ex->port) {
        char *end;
        guint64 p = g_ascii_strtoull(ex->port, &end, 10);
        if (*end || p == 0 || p > 65535) {
            vmbkError(VMBK_ERR_USAGE, "backup: --export '%s': '%s' is not a TCP port", spec,
                      ex->port);
            return NULL;
        }
    }

    /* libvirt on this host serves backups with TLS: so do we, unasked. */
    if (!tls && local && (backup_dir = vmbkQemuConfGet("backup_tls_x509_cert_dir"))) {
        vmbkDebug("export: TLS, as %s sets backup_tls_x509_cert_dir = '%s'", vmbkQemuConfPath(),
                  backup_dir);
        tls = true;
    }
    ex->tls = tls;
    if (!tls && !insecure && !vmbkIsLoopback(ex->host)) {
        vmbkError(VMBK_ERR_USAGE, "backup: serving the disks on '%s' without TLS lets anyone on "
                  "that network read them; pass --tls (libvirt's backup_tls_x509_cert_dir), or "
                  "--insecure if that is what you want", ex->host);
        return NULL;
    }
    if (tls) {
        g_autofree char *ca = NULL;

        ex->tls_dir = vmbkNbdTlsDir();
        ca = g_build_filename(ex->tls_dir, "ca-cert.pem", NULL);
        if (access(ca, R_OK) < 0) {
            vmbkErrorSystem(errno, "backup: no CA certificate '%s' to check the TLS export "
                            "with; set VMBK_TLS_DIR to a directory holding ca-cert.pem, "
                            "client-cert.pem and client-key.pem", ca);
            return NULL;
        }
    }
    if (!ex->port && vmbkFreePort(ex->host, &ex->port) < 0)
        return NULL;
    return g_steal_pointer(&ex);
}

char *
vmbkNbdExportUri(const vmbkNbdExport *ex, const char *name)
{
    g_autofree char *path = g_uri_escape_string(name, NULL, FALSE);

    return g_strdup_printf("%s://%s%s%s:%s/%s", ex->tls ? "nbds" : "nbd",
                           strchr(ex->host, ':') ? "[" : "", ex->host,
                           strchr(ex->host, ':') ? "]" : "", ex->port, path);
}

int
vmbkNbdExportConnect(struct nbd_handle *nbd, const vmbkNbdExport *ex, const char *socket,
                     const char *name, const char *what)
{
    g_autofree char *uri = NULL;

    if (!ex || !ex->host) {
        if (nbd_set_export_name(nbd, name) < 0 || nbd_connect_unix(nbd, socket) < 0) {
            vmbkError(VMBK_ERR_NBD, "cannot connect to the NBD export '%s' at '%s' for %s",
                      name, socket, what);
            return -1;
        }
        return 0;
    }
    uri = vmbkNbdExportUri(ex, name);
    if (ex->tls && (nbd_set_tls_certificates(nbd, ex->tls_dir) < 0 ||
                    nbd_set_tls_verify_peer(nbd, true) < 0)) {
        vmbkError(VMBK_ERR_NBD, "cannot set up TLS for '%s'", uri);
        return -1;
    }
    if (nbd_connect_uri(nbd, uri) < 0) {
        if (ex->tls)
            vmbkError(VMBK_ERR_NBD, "cannot connect to '%s' for %s over TLS, checking the "
                      "server against the CA in '%s' (set VMBK_TLS_DIR to the right one)", uri,
                      what, ex->tls_dir);
        else
            vmbkError(VMBK_ERR_NBD, "cannot connect to '%s' for %s", uri, what);
        return -1;
    }
    return 0;
}
