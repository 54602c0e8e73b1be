/* vmbk: the backup appliance VM (see appliance.h, DESIGN.md, appliance/README.md)
 *
 * The appliance directory holds the built image (kernel, initrd, root: ext2, read-only to the
 * VM), the stamp that says what it was built from, and for each appliance running it (by name,
 * vmbk-appliance unless $VMBK_APPLIANCE_NAME says otherwise) the console log, a lock that one
 * vmbk at a time holds while it talks to the agent, and in run/, owned by the qemu user, the
 * socket where qemu listens on the agent's channel.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gstdio.h>
#include <libvirt/virterror.h>
#include <libxml/xpathInternals.h>

#include "accel.h"
#include "appliance.h"
#include "backupjob.h"
#include "digest.h"
#include "qemunbd.h"
#include "runner.h"
#include "spawn.h"
#include "vmbk-autoptr.h"
#include "vmbk-error.h"
#include "xml.h"

#define VMBK_APPLIANCE_BOOT_TIMEOUT_MS (180 * 1000) /* a cold boot under TCG on a busy host */
/* A running appliance: longer than the agent's wait for a disk that never appears (DIGEST's
 * timeout), after which it answers what is queued. */
#define VMBK_APPLIANCE_HELLO_TIMEOUT_MS (60 * 1000)
#define VMBK_APPLIANCE_DISK_TIMEOUT_S 10
#define VMBK_APPLIANCE_ACCEL_TIMEOUT_MS 5000
#define VMBK_APPLIANCE_ROOT_SIZE "1G"

char *
vmbkApplianceDir(void)
{
    const char *dir = g_getenv("VMBK_APPLIANCE_DIR");
    const char *state = g_getenv("VMBK_STATE_DIR");

    if (dir && *dir)
        return g_strdup(dir);
    return g_build_filename(state && *state ? state : "/var/lib/vmbk", "appliance", NULL);
}

const char *
vmbkApplianceName(void)
{
    const char *name = g_getenv("VMBK_APPLIANCE_NAME");

    return name && *name ? name : "vmbk-appliance";
}

/* A file of the running appliance in dir: NAME.console.log, NAME.lock, run/NAME.sock. */
static char *
vmbkApplianceFile(const char *dir, const char *suffix)
{
    g_autofree char *file = g_strconcat(vmbkApplianceName(), suffix, NULL);

    return g_build_filename(dir, file, NULL);
}

/* What the appliance is made of: the recipe's directory, the agent, the domain template. */
static const char *
vmbkApplianceEnv(const char *var, const char *def)
{
    const char *v = g_getenv(var);

    return v && *v ? v : def;
}
#define RECIPE_DIR() vmbkApplianceEnv("VMBK_APPLIANCE_RECIPE", PKGDATADIR "/appliance")
#define AGENT_PATH() vmbkApplianceEnv("VMBK_AGENT", PKGLIBEXECDIR "/vmbk-agent")
#define TEMPLATE_PATH() vmbkApplianceEnv("VMBK_APPLIANCE_XML", PKGDATADIR "/appliance.xml")

/* A directory others can traverse (libvirt and qemu read the image in it). */
static int
vmbkApplianceMkdir(const char *dir)
{
    mode_t old = umask(022);
    int r = g_mkdir_with_parents(dir, 0755);

    umask(old);
    if (r < 0) {
        vmbkErrorSystem(errno, "cannot create '%s'", dir);
        return -1;
    }
    return 0;
}

/* The stamp: one line per input with its SHA-256.  The installed packages are the dpkg status
 * file: an upgrade of any package rebuilds the appliance. */
static char *
vmbkApplianceStamp(void)
{
    const char *recipe = RECIPE_DIR();
    const char *const files[] = { "packages", "excludefiles", "hostfiles", "init" };
    g_autoptr(GString) s = g_string_new(NULL);
    g_autofree char *kernels = NULL;
    size_t i;

    for (i = 0; i < G_N_ELEMENTS(files); i++) {
        g_autofree char *path = g_build_filename(recipe, files[i], NULL);
        g_autofree char *sum = vmbkDigestFile(path, NULL);
        if (!sum)
            return NULL;
        g_string_append_printf(s, "%s %s\n", files[i], sum);
    }
    {
        g_autofree char *sum = vmbkDigestFile(AGENT_PATH(), NULL);
        g_autofree char *dpkg = vmbkDigestFile("/var/lib/dpkg/status", NULL);
        if (!sum || !dpkg)
            return NULL;
        g_string_append_printf(s, "vmbk-agent %s\ndpkg-status %s\n", sum, dpkg);
    }
    {
        g_autoptr(GDir) d = g_dir_open("/boot", 0, NULL);
        const char *name;
        while (d && (name = g_dir_read_name(d))) {
            if (g_str_has_prefix(name, "vmlinuz-"))
                g_string_append_printf(s, "kernel %s\n", name);
        }
    }
    g_string_append_printf(s, "vmbk %s\n", PACKAGE_VERSION);
    return g_string_free(g_steal_pointer(&s), FALSE);
}

/* A tarball of one file, as supermin wants extra files: dir/NAME.tar.gz holding ./dest. */
static int
vmbkApplianceTar(const char *out, const char *src, const char *dest, const char *stage)
{
    g_autofree char *path = g_build_filename(stage, dest, NULL);
    g_autofree char *parent = g_path_get_dirname(path);
    g_autofree char *data = NULL;
    g_autofree char *rel = g_strdup_printf("./%s", dest);
    g_autoptr(GError) err = NULL;
    gsize len;

    if (g_mkdir_with_parents(parent, 0755) < 0) {
        vmbkErrorSystem(errno, "cannot create '%s'", parent);
        return -1;
    }
    if (!g_file_get_contents(src, &data, &len, &err) ||
        !g_file_set_contents_full(path, data, len, G_FILE_SET_CONTENTS_NONE, 0755, &err)) {
        vmbkError(VMBK_ERR_INTERNAL, "cannot copy '%s' into the appliance: %s", src,
                  err->message);
        return -1;
    }
    {
        const char *argv[] = { "/bin/tar", "-C", stage, "--owner=root", "--group=root",
                               "-czf", out, rel, NULL };
        return vmbkRun(argv, NULL);
    }
}

int
vmbkApplianceBuild(bool force, bool *built)
{
    g_autofree char *dir = vmbkApplianceDir();
    g_autofree char *stampfile = g_build_filename(dir, "stamp", NULL);
    g_autofree char *stamp = NULL;
    g_autofree char *old = NULL;
    g_autofree char *tmp = NULL;
    g_autofree char *sd = NULL;
    g_autofree char *out = NULL;
    g_autofree char *stage = NULL;
    g_autoptr(GError) err = NULL;
    const char *recipe = RECIPE_DIR();
    const char *const outputs[] = { "kernel", "initrd", "root" };
    const char *const copies[] = { "packages", "excludefiles", "hostfiles" };
    size_t i;
    int ret = -1;

    *built = false;
    if (!g_file_test(AGENT_PATH(), G_FILE_TEST_IS_EXECUTABLE)) {
        vmbkError(VMBK_ERR_OPERATION, "no vmbk-agent at '%s'; install vmbk or set VMBK_AGENT",
                  AGENT_PATH());
        return -1;
    }
    if (!(stamp = vmbkApplianceStamp()))
        return -1;
    if (!force && g_file_get_contents(stampfile, &old, NULL, NULL) && g_str_equal(old, stamp)) {
        for (i = 0; i < G_N_ELEMENTS(outputs); i++) {
            g_autofree char *p = g_build_filename(dir, outputs[i], NULL);
            if (!g_file_test(p, G_FILE_TEST_IS_REGULAR))
                break;
        }
        if (i == G_N_ELEMENTS(outputs))
            return 0;
    }

    if (vmbkApplianceMkdir(dir) < 0)
        return -1;
    tmp = g_build_filename(dir, ".build-XXXXXX", NULL);
    if (!g_mkdtemp(tmp)) {
        vmbkErrorSystem(errno, "cannot create a build directory in '%s'", dir);
        return -1;
    }
    sd = g_build_filename(tmp, "supermin.d", NULL);
    out = g_build_filename(tmp, "out", NULL);
    stage = g_build_filename(tmp, "stage", NULL);
    if (g_mkdir(sd, 0755) < 0) {
        vmbkErrorSystem(errno, "cannot create '%s'", sd);
        goto cleanup;
    }
    for (i = 0; i < G_N_ELEMENTS(copies); i++) {
        g_autofree char *src = g_build_filename(recipe, copies[i], NULL);
        g_autofree char *dst = g_build_filename(sd, copies[i], NULL);
        g_autofree char *data = NULL;
        gsize len;

        if (!g_file_get_contents(src, &data, &len, &err) ||
            !g_file_set_contents(dst, data, len, &err)) {
            vmbkError(VMBK_ERR_OPERATION, "cannot copy the appliance recipe's '%s': %s; install "
                      "vmbk or set VMBK_APPLIANCE_RECIPE", src, err->message);
            goto cleanup;
        }
    }
    {
        g_autofree char *init = g_build_filename(recipe, "init", NULL);
        g_autofree char *inittar = g_build_filename(sd, "init.tar.gz", NULL);
        g_autofree char *agenttar = g_build_filename(sd, "vmbk-agent.tar.gz", NULL);
        g_autofree char *stage1 = g_build_filename(stage, "1", NULL);
        g_autofree char *stage2 = g_build_filename(stage, "2", NULL);

        if (vmbkApplianceTar(inittar, init, "init", stage1) < 0 ||
            vmbkApplianceTar(agenttar, AGENT_PATH(), "usr/bin/vmbk-agent", stage2) < 0)
            goto cleanup;
    }
    {
        const char *argv[] = { SUPERMIN, "--build", "-f", "ext2", "--copy-kernel",
                               "--host-cpu", "x86_64", "--size", VMBK_APPLIANCE_ROOT_SIZE,
                               "-o", out, sd, NULL };
        vmbkDebug("appliance: supermin --build into '%s'", out);
        if (vmbkRun(argv, NULL) < 0)
            goto cleanup;
    }
    for (i = 0; i < G_N_ELEMENTS(outputs); i++) {
        g_autofree char *src = g_build_filename(out, outputs[i], NULL);
        g_autofree char *dst = g_build_filename(dir, outputs[i], NULL);

        /* A running appliance keeps the files it opened; the next start gets these. */
        if (chmod(src, 0644) < 0 || rename(src, dst) < 0) {
            vmbkErrorSystem(errno, "cannot move the appliance's '%s' into '%s'", outputs[i],
                            dir);
            goto cleanup;
        }
    }
    if (!g_file_set_contents(stampfile, stamp, -1, &err)) {
        vmbkError(VMBK_ERR_INTERNAL, "cannot write '%s': %s", stampfile, err->message);
        goto cleanup;
    }
    *built = true;
    ret = 0;

 cleanup:
    {
        const char *argv[] = { "/bin/rm", "-rf", "--", tmp, NULL };
        if (vmbkRun(argv, NULL) < 0)
            vmbkErrorReset();
    }
    return ret;
}

virDomainPtr
vmbkApplianceLookup(virConnectPtr conn)
{
    virDomainPtr dom = virDomainLookupByName(conn, vmbkApplianceName());

    virResetLastError();
    if (dom && virDomainIsActive(dom) != 1) {
        virDomainFree(dom);
        return NULL;
    }
    return dom;
}

/* Set what the XPath selects (an attribute or an element) to value. */
static int
vmbkApplianceSet(xmlXPathContextPtr ctx, const char *expr, const char *value)
{
    g_autoptr(xmlXPathObject) obj = vmbkXPathNodes(ctx, NULL, expr);
    xmlNodePtr node;

    if (!obj || !obj->nodesetval || obj->nodesetval->nodeNr != 1) {
        vmbkError(VMBK_ERR_OPERATION, "the appliance's domain template '%s' has no single %s",
                  TEMPLATE_PATH(), expr);
        return -1;
    }
    node = obj->nodesetval->nodeTab[0];
    /* Both escape what they are given (xmlNodeSetContent would parse entities). */
    if (node->type == XML_ATTRIBUTE_NODE) {
        xmlSetProp(node->parent, node->name, BAD_CAST value);
    } else {
        xmlNodeSetContent(node, NULL);
        xmlNodeAddContent(node, BAD_CAST value);
    }
    return 0;
}

/* The domain XML: the template with the image, the channel and the accelerator filled in. */
static char *
vmbkApplianceDomainXml(const char *dir, const char *channel, unsigned int idle)
{
    g_autoptr(xmlDoc) doc = vmbkXmlParseFile(TEMPLATE_PATH());
    g_autoptr(xmlXPathContext) ctx = NULL;
    g_autofree char *kernel = g_build_filename(dir, "kernel", NULL);
    g_autofree char *initrd = g_build_filename(dir, "initrd", NULL);
    g_autofree char *root = g_build_filename(dir, "root", NULL);
    g_autofree char *console = vmbkApplianceFile(dir, ".console.log");
    g_autofree char *cmdline = NULL;
    g_autofree char *notice = NULL;
    xmlChar *text = NULL;
    char *ret;
    int len;
    vmbkAccel accel;

    if (!doc)
        return NULL;
    if (vmbkAccelProbe(VMBK_APPLIANCE_ACCEL_TIMEOUT_MS, &accel, &notice) < 0)
        return NULL;
    ctx = xmlXPathNewContext(doc);
    if (vmbkApplianceSet(ctx, "/domain/@type", vmbkAccelDomainType(accel)) < 0 ||
        vmbkApplianceSet(ctx, "/domain/name", vmbkApplianceName()) < 0 ||
        vmbkApplianceSet(ctx, "/domain/os/kernel", kernel) < 0 ||
        vmbkApplianceSet(ctx, "/domain/os/initrd", initrd) < 0 ||
        vmbkApplianceSet(ctx, "/domain/devices/disk/source/@file", root) < 0 ||
        vmbkApplianceSet(ctx, "/domain/devices/channel/source/@path", channel) < 0 ||
        vmbkApplianceSet(ctx, "/domain/devices/serial/source/@path", console) < 0)
        return NULL;
    {
        g_autofree char *base = vmbkXPathString(ctx, NULL, "/domain/os/cmdline");
        cmdline = g_strdup_printf("%s vmbk.idle=%u", base ? base : "", idle);
        if (vmbkApplianceSet(ctx, "/domain/os/cmdline", cmdline) < 0)
            return NULL;
    }
    xmlDocDumpMemory(doc, &text, &len);
    ret = g_strndup((const char *) text, len);
    xmlFree(text);
    return ret;
}

static char *
vmbkApplianceChannel(void)
{
    g_autofree char *dir = vmbkApplianceDir();

    g_autofree char *run = g_build_filename(dir, "run", NULL);

    return vmbkApplianceFile(run, ".sock");
}

static int
vmbkApplianceStart(virConnectPtr conn, unsigned int idle, virDomainPtr *out)
{
    g_autofree char *dir = vmbkApplianceDir();
    g_autofree char *run = g_build_filename(dir, "run", NULL);
    g_autofree char *channel = vmbkApplianceChannel();
    g_autofree char *xml = NULL;
    bool built;
    uid_t uid;
    gid_t gid;

    if (vmbkApplianceBuild(false, &built) < 0)
        return -1;
    if (built)
        fprintf(stderr, "%s: built the appliance in '%s'\n", vmbk_progname, dir);
    /* qemu creates the channel's socket here. */
    if (vmbkApplianceMkdir(run) < 0)
        return -1;
    g_unlink(channel);
    if (getuid() == 0 && vmbkQemuUser(&uid, &gid) && (chown(run, uid, gid) < 0 ||
                                                      chmod(run, 0700) < 0)) {
        vmbkErrorSystem(errno, "cannot give '%s' to the qemu user", run);
        return -1;
    }
    if (!(xml = vmbkApplianceDomainXml(dir, channel, idle)))
        return -1;
    vmbkDebug("appliance: starting");
    if (!(*out = virDomainCreateXML(conn, xml, 0))) {
        vmbkError(VMBK_ERR_LIBVIRT, "cannot start the appliance '%s'", vmbkApplianceName());
        return -1;
    }
    return 0;
}

vmbkApplianceSession *
vmbkApplianceOpen(virConnectPtr conn, bool start, unsigned int idle)
{
    g_autoptr(vmbkApplianceSession) s = g_new0(vmbkApplianceSession, 1);
    g_autofree char *dir = vmbkApplianceDir();
    g_autofree char *lock = vmbkApplianceFile(dir, ".lock");
    g_autofree char *channel = vmbkApplianceChannel();
    gint64 t0;

    s->lockfd = -1;
    if (vmbkApplianceMkdir(dir) < 0)
        return NULL;
    if ((s->lockfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0) {
        vmbkErrorSystem(errno, "cannot open '%s'", lock);
        return NULL;
    }
    /* One vmbk at a time talks to the agent (qemu serves one client on the channel). */
    if (flock(s->lockfd, LOCK_EX) < 0) {
        vmbkErrorSystem(errno, "cannot lock '%s'", lock);
        return NULL;
    }
    t0 = g_get_monotonic_time();
    if (!(s->dom = vmbkApplianceLookup(conn))) {
        if (!start) {
            vmbkError(VMBK_ERR_OPERATION, "the appliance is not running; start it with 'vmbk "
                      "appliance start'");
            return NULL;
        }
        if (vmbkApplianceStart(conn, idle, &s->dom) < 0)
            return NULL;
        s->started = true;
        t0 = g_get_monotonic_time();
    }
    /* Detach first what a killed vmbk left: an agent still reading such a disk answers only once
     * its reads fail. */
    if (!s->started && vmbkApplianceSweep(s->dom) < 0)
        return NULL;
    if (!(s->agent = vmbkAgentConnect(channel, s->started ? VMBK_APPLIANCE_BOOT_TIMEOUT_MS
                                                          : VMBK_APPLIANCE_HELLO_TIMEOUT_MS)))
        return NULL;
    if (s->started)
        s->boot_seconds = (g_get_monotonic_time() - t0) / 1e6;
    vmbkDebug("appliance: agent says hello%s", s->started ? " after a cold boot" : "");
    return g_steal_pointer(&s);
}

void
vmbkApplianceClose(vmbkApplianceSession *s)
{
    if (!s)
        return;
    vmbkAgentClose(s->agent);
    if (s->dom)
        virDomainFree(s->dom);
    if (s->lockfd >= 0)
        close(s->lockfd);
    g_free(s);
}

int
vmbkApplianceSweep(virDomainPtr dom)
{
    g_autofree char *xml = virDomainGetXMLDesc(dom, 0);
    g_autoptr(xmlDoc) doc = NULL;
    g_autoptr(xmlXPathContext) ctx = NULL;
    g_autoptr(xmlXPathObject) disks = NULL;
    int i, n = 0;

    if (!xml) {
        vmbkError(VMBK_ERR_LIBVIRT, "cannot get the XML of the appliance");
        return -1;
    }
    if (!(doc = vmbkXmlParse(xml, "the XML of the appliance")))
        return -1;
    ctx = xmlXPathNewContext(doc);
    disks = vmbkXPathNodes(ctx, NULL, "/domain/devices/disk[starts-with(serial, 'vmbk-') and "
                                      "serial != '" VMBK_APPLIANCE_ROOT_SERIAL "']");
    for (i = 0; disks && disks->nodesetval && i < disks->nodesetval->nodeNr; i++) {
        xmlNodePtr node = disks->nodesetval->nodeTab[i];
        g_autofree char *serial = vmbkXPathString(ctx, node, "serial");
        xmlBufferPtr buf = xmlBufferCreate();
        g_autofree char *disk = NULL;

        xmlNodeDump(buf, doc, node, 0, 0);
        disk = g_strdup((const char *) xmlBufferContent(buf));
        xmlBufferFree(buf);
        g_autofree char *socket = vmbkXPathString(ctx, node, "source/host/@socket");

        if (vmbkApplianceDetach(dom, disk, serial) < 0)
            return -1;
        fprintf(stderr, "%s: detached disk '%s' that an interrupted vmbk left in the "
                "appliance\n", vmbk_progname, serial);
        n++;
        /* And the qemu-nbd that served it, from a job directory whose vmbk is gone (a backup's,
         * a plugin run's or a file restore's). */
        if (socket) {
            g_autofree char *jobdir = g_path_get_dirname(socket);
            g_autofree char *owner = g_build_filename(jobdir, "owner", NULL);
            g_autofree char *kind = NULL;
            g_autofree char *jobs = vmbkJobsDir();

            if (g_str_has_prefix(jobdir, jobs) && g_file_test(owner, G_FILE_TEST_IS_REGULAR) &&
                vmbkJobDirOwner(jobdir, &kind) == 0)
                vmbkJobDirRemove(jobdir);
        }
    }
    return n;
}

int
vmbkApplianceStop(virConnectPtr conn)
{
    g_autoptr(virDomain) dom = vmbkApplianceLookup(conn);
    g_autofree char *channel = vmbkApplianceChannel();
    int i;

    if (!dom)
        return 0;
    {
        g_autoptr(vmbkAgent) agent = vmbkAgentConnect(channel, 5000);
        g_autofree char *r = agent ? vmbkAgentRequest(agent, VMBK_AGENT_MSG_SHUTDOWN, "", 5000,
                                                      NULL)
                                   : NULL;
        vmbkErrorReset();
        for (i = 0; r && i < 100 && virDomainIsActive(dom) == 1; i++)
            g_usleep(100 * 1000);
    }
    virResetLastError();
    if (virDomainIsActive(dom) == 1 && virDomainDestroy(dom) < 0 &&
        virDomainIsActive(dom) == 1) {
        vmbkError(VMBK_ERR_LIBVIRT, "cannot stop the appliance '%s'", vmbkApplianceName());
        return -1;
    }
    virResetLastError();
    return 0;
}

/* A free SCSI target name for a hotplugged disk. */
static char *
vmbkApplianceFreeTarget(virDomainPtr dom)
{
    g_autofree char *xml = virDomainGetXMLDesc(dom, 0);
    g_autoptr(xmlDoc) doc = NULL;
    g_autoptr(xmlXPathContext) ctx = NULL;
    int i;

    if (!xml) {
        vmbkError(VMBK_ERR_LIBVIRT, "cannot get the XML of the appliance");
        return NULL;
    }
    if (!(doc = vmbkXmlParse(xml, "the XML of the appliance")))
        return NULL;
    ctx = xmlXPathNewContext(doc);
    for (i = 1; i < 26; i++) {
        g_autofree char *dev = g_strdup_printf("sd%c", 'a' + i);
        g_autofree char *expr =
            g_strdup_printf("/domain/devices/disk/target[@dev='%s']/@dev", dev);
        g_autofree char *used = vmbkXPathString(ctx, NULL, expr);
        if (!used)
            return g_steal_pointer(&dev);
    }
    vmbkError(VMBK_ERR_OPERATION, "the appliance has no free disk slot; run 'vmbk appliance "
              "stop'");
    return NULL;
}

int
vmbkApplianceAttach(virDomainPtr dom, const char *socket, const char *serial, char **xml)
{
    return vmbkApplianceAttachNbd(dom, socket, NULL, NULL, NULL, false, serial, xml);
}

int
vmbkApplianceAttachNbd(virDomainPtr dom, const char *socket, const char *host, const char *port,
                       const char *export, bool tls, const char *serial, char **xml)
{
    g_autofree char *target = vmbkApplianceFreeTarget(dom);
    xmlBufferPtr buf = NULL;
    xmlTextWriterPtr w;
    g_autofree char *disk = NULL;

    if (!target)
        return -1;
    if (!(w = vmbkXmlWriterNew(&buf)))
        return -1;
    xmlTextWriterStartElement(w, BAD_CAST "disk");
    xmlTextWriterWriteAttribute(w, BAD_CAST "type", BAD_CAST "network");
    xmlTextWriterWriteAttribute(w, BAD_CAST "device", BAD_CAST "disk");
    xmlTextWriterStartElement(w, BAD_CAST "driver");
    xmlTextWriterWriteAttribute(w, BAD_CAST "name", BAD_CAST "qemu");
    xmlTextWriterWriteAttribute(w, BAD_CAST "type", BAD_CAST "raw");
    xmlTextWriterEndElement(w);
    xmlTextWriterStartElement(w, BAD_CAST "source");
    xmlTextWriterWriteAttribute(w, BAD_CAST "protocol", BAD_CAST "nbd");
    if (export)
        xmlTextWriterWriteAttribute(w, BAD_CAST "name", BAD_CAST export);
    if (tls)
        xmlTextWriterWriteAttribute(w, BAD_CAST "tls", BAD_CAST "yes");
    xmlTextWriterStartElement(w, BAD_CAST "host");
    if (socket) {
        xmlTextWriterWriteAttribute(w, BAD_CAST "transport", BAD_CAST "unix");
        xmlTextWriterWriteAttribute(w, BAD_CAST "socket", BAD_CAST socket);
    } else {
        xmlTextWriterWriteAttribute(w, BAD_CAST "name", BAD_CAST host);
        xmlTextWriterWriteAttribute(w, BAD_CAST "port", BAD_CAST port);
    }
    xmlTextWriterEndElement(w);
    xmlTextWriterEndElement(w);
    xmlTextWriterStartElement(w, BAD_CAST "target");
    xmlTextWriterWriteAttribute(w, BAD_CAST "dev", BAD_CAST target);
    xmlTextWriterWriteAttribute(w, BAD_CAST "bus", BAD_CAST "scsi");
    xmlTextWriterEndElement(w);
    xmlTextWriterStartElement(w, BAD_CAST "readonly");
    xmlTextWriterEndElement(w);
    xmlTextWriterWriteElement(w, BAD_CAST "serial", BAD_CAST serial);
    xmlTextWriterEndElement(w);
    if (!(disk = vmbkXmlWriterFinish(w, buf)))
        return -1;
    if (virDomainAttachDeviceFlags(dom, disk, VIR_DOMAIN_AFFECT_LIVE) < 0) {
        vmbkError(VMBK_ERR_LIBVIRT, "cannot hotplug disk '%s' into the appliance", serial);
        return -1;
    }
    *xml = g_steal_pointer(&disk);
    return 0;
}

/* Detach the disk and wait until it is gone: 0, or -1 with *why (not reported: a caller that
 * cleans up after a failure must not bury the failure's own message). */
static int
vmbkApplianceDetachWait(virDomainPtr dom, const char *xml, const char *serial, char **why)
{
    g_autofree char *tag = g_strdup_printf("<serial>%s</serial>", serial);
    gint64 deadline = g_get_monotonic_time() + VMBK_APPLIANCE_DETACH_TIMEOUT_MS * 1000;

    if (virDomainDetachDeviceFlags(dom, xml, VIR_DOMAIN_AFFECT_LIVE) < 0) {
        *why = g_strdup_printf("cannot detach disk '%s' from the appliance: %s", serial,
                               virGetLastErrorMessage());
        virResetLastError();
        return -1;
    }
    /* libvirt returns once the request is sent, or after waiting 5 s for the guest: a loaded
     * appliance under TCG can take longer to let the disk go, and its server must not stop
     * while the disk is still there. */
    for (;;) {
        g_autofree char *live = virDomainGetXMLDesc(dom, 0);

        if (!live || !strstr(live, tag)) {
            virResetLastError();
            return 0;
        }
        if (g_get_monotonic_time() > deadline) {
            *why = g_strdup_printf("the appliance has not let disk '%s' go after %d s", serial,
                                   VMBK_APPLIANCE_DETACH_TIMEOUT_MS / 1000);
            return -1;
        }
        g_usleep(50 * 1000);
    }
}

int
vmbkApplianceDetach(virDomainPtr dom, const char *xml, const char *serial)
{
    g_autofree char *why = NULL;

    if (vmbkApplianceDetachWait(dom, xml, serial, &why) < 0) {
        vmbkError(VMBK_ERR_OPERATION, "%s", why);
        return -1;
    }
    return 0;
}

void
vmbkApplianceDiskFree(vmbkApplianceDisk *d)
{
    if (!d)
        return;
    vmbkQemuNbdStop(d->srv);
    g_free(d->target);
    g_free(d->serial);
    g_free(d->xml);
    g_free(d);
}

GPtrArray *
vmbkApplianceAttachImages(vmbkApplianceSession *s, const char *jobdir, GPtrArray *targets,
                          GPtrArray *images)
{
    g_autoptr(GPtrArray) disks =
        g_ptr_array_new_with_free_func((GDestroyNotify) vmbkApplianceDiskFree);
    guint i;
    uid_t uid;
    gid_t gid;

    for (i = 0; i < targets->len; i++) {
        vmbkApplianceDisk *d = g_new0(vmbkApplianceDisk, 1);
        gint64 t0 = g_get_monotonic_time();

        g_ptr_array_add(disks, d);
        d->target = g_strdup(g_ptr_array_index(targets, i));
        d->serial = g_strdup_printf("vmbk-%s-%06x", d->target, g_random_int_range(0, 1 << 24));
        /* The appliance, and vmbk for the extents a plugin is given. */
        if (!(d->srv = vmbkQemuNbdStart(g_ptr_array_index(images, i), "qcow2", true, 2, jobdir)))
            goto failed;
        /* qemu (the appliance) connects as the qemu user. */
        if (getuid() == 0 && vmbkQemuUser(&uid, &gid) && chown(d->srv->socket, uid, gid) < 0) {
            vmbkErrorSystem(errno, "cannot give '%s' to the qemu user", d->srv->socket);
            goto failed;
        }
        if (vmbkApplianceAttach(s->dom, d->srv->socket, d->serial, &d->xml) < 0)
            goto failed;
        vmbkDebug("appliance: %s attached as '%s' in %.3f s", d->target, d->serial,
                  (g_get_monotonic_time() - t0) / 1e6);
    }
    return g_steal_pointer(&disks);

 failed:
    vmbkApplianceDetachImages(s, g_steal_pointer(&disks));
    return NULL;
}

void
vmbkApplianceDetachImages(vmbkApplianceSession *s, GPtrArray *disks)
{
    guint i;

    for (i = 0; disks && i < disks->len; i++) {
        vmbkApplianceDisk *d = g_ptr_array_index(disks, i);
        gint64 t0 = g_get_monotonic_time();

        g_autofree char *why = NULL;

        if (!d->xml)
            continue;
        /* Nothing stays attached to an appliance that stopped.  A detach that fails leaves the
         * disk to the next command (vmbkApplianceSweep); the point's result stands either way. */
        if (virDomainIsActive(s->dom) == 1 &&
            vmbkApplianceDetachWait(s->dom, d->xml, d->serial, &why) < 0)
            fprintf(stderr, "%s: warning: %s; the next vmbk command detaches it\n",
                    vmbk_progname, why);
        virResetLastError();
        vmbkDebug("appliance: %s detached in %.3f s", d->target,
                  (g_get_monotonic_time() - t0) / 1e6);
    }
    if (disks)
        g_ptr_array_unref(disks);
}

struct nbd_handle *
vmbkApplianceDiskConnect(const vmbkApplianceDisk *d, int64_t *size)
{
    g_autoptr(vmbkNbd) nbd = NULL;

    if (!(nbd = nbd_create()) ||
        nbd_add_meta_context(nbd, LIBNBD_CONTEXT_BASE_ALLOCATION) < 0 ||
        nbd_add_meta_context(nbd, "qemu:allocation-depth") < 0 ||
        nbd_connect_unix(nbd, d->srv->socket) < 0 || (*size = nbd_get_size(nbd)) < 0) {
        vmbkError(VMBK_ERR_NBD, "cannot read the image of disk '%s'", d->target);
        return NULL;
    }
    return g_steal_pointer(&nbd);
}

/* The leaf ranges (u64 first, u64 count) that an incremental's extents touch, merged. */
typedef struct {
    GByteArray *ranges;
    uint64_t first, count; /* the range being gathered */
} vmbkLeafRanges;

/* Add the range gathered, in pieces a DIGEST request can take. */
static void
vmbkLeafRangesFlush(vmbkLeafRanges *lr)
{
    while (lr->count > 0) {
        uint64_t n = MIN(lr->count, (uint64_t) VMBK_AGENT_DIGEST_LEAVES);
        uint8_t r[16];

        vmbkAgentPut64(r, lr->first);
        vmbkAgentPut64(r + 8, n);
        g_byte_array_append(lr->ranges, r, sizeof(r));
        lr->first += n;
        lr->count -= n;
    }
}

static int
vmbkLeafRangesAdd(void *opaque, uint64_t offset, uint64_t length, int type G_GNUC_UNUSED)
{
    vmbkLeafRanges *lr = opaque;
    uint64_t first = offset / VMBK_DIGEST_LEAF_SIZE;
    uint64_t last = (offset + length - 1) / VMBK_DIGEST_LEAF_SIZE;

    if (lr->count && first <= lr->first + lr->count) {
        lr->count = MAX(lr->count, last + 1 - lr->first);
        return 0;
    }
    vmbkLeafRangesFlush(lr);
    lr->first = first;
    lr->count = last + 1 - first;
    return 0;
}

/* Have the agent hash the leaves of ranges (at most VMBK_AGENT_DIGEST_LEAVES) and compare them
 * with the point's own (mine). */
static int
vmbkApplianceCheckLeaves(vmbkApplianceSession *s, const vmbkApplianceDisk *d, vmbkDigest *mine,
                         const uint8_t *ranges, size_t len, volatile int *interrupted)
{
    g_autofree char *req = g_strdup_printf("serial=%s\ntimeout=%d\n", d->serial,
                                           VMBK_APPLIANCE_DISK_TIMEOUT_S);
    g_autoptr(GBytes) frame = NULL;
    g_autoptr(vmbkAgentFrame) f = NULL;
    g_autofree char *header = NULL;
    g_autofree uint8_t *own = NULL;
    const uint8_t *theirs;
    size_t tlen, i, at = 0;
    uint32_t id = s->agent->next_id++;

    frame = vmbkAgentFrameEncodeData(VMBK_AGENT_MSG_DIGEST, id, req, ranges, len);
    if (vmbkAgentSendFrame(s->agent, frame) < 0 || vmbkAgentNext(s->agent, id, interrupted, &f) < 0)
        return -1;
    if (f->type != (VMBK_AGENT_MSG_DIGEST | VMBK_AGENT_RESPONSE)) {
        g_autofree char *msg = vmbkAgentPayloadGet(f->payload->str, "message");
        vmbkError(VMBK_ERR_OPERATION, "the appliance's agent failed DIGEST: %s",
                  msg ? msg : vmbkAgentMsgName(f->type));
        return -1;
    }
    header = vmbkAgentPayloadSplit(f->payload, &theirs, &tlen);
    for (i = 0; i < len; i += 16) {
        uint64_t first = vmbkAgentGet64(ranges + i), n = vmbkAgentGet64(ranges + i + 8), k;

        own = g_realloc(own, n * VMBK_DIGEST_HASH_SIZE);
        if (at + n * VMBK_DIGEST_HASH_SIZE > tlen) {
            vmbkError(VMBK_ERR_OPERATION, "the appliance's agent answered DIGEST with %zu bytes "
                      "of leaves, too few", tlen);
            return -1;
        }
        if (vmbkDigestRead(mine, first, n, own) < 0)
            return -1;
        for (k = 0; k < n; k++) {
            if (memcmp(own + k * VMBK_DIGEST_HASH_SIZE, theirs + at + k * VMBK_DIGEST_HASH_SIZE,
                       VMBK_DIGEST_HASH_SIZE) != 0) {
                vmbkError(VMBK_ERR_OPERATION, "disk '%s' reads differently in the appliance "
                          "than on the host, at offset %" PRIu64, d->target,
                          (first + k) * VMBK_DIGEST_LEAF_SIZE);
                return -1;
            }
        }
        at += n * VMBK_DIGEST_HASH_SIZE;
    }
    return 0;
}

/* An incremental: only what the point changed is read in the appliance, and each leaf of it must
 * be the host's (whose leaves, with the parent's others, make the point's digest). */
static int
vmbkApplianceCheckChanged(vmbkApplianceSession *s, const vmbkApplianceDisk *d,
                          const char *leaves, volatile int *interrupted)
{
    g_autoptr(vmbkNbd) nbd = NULL;
    g_autoptr(vmbkDigest) mine = NULL;
    g_autoptr(GByteArray) ranges = g_byte_array_new();
    vmbkLeafRanges lr = { .ranges = ranges };
    gint64 t0 = g_get_monotonic_time();
    uint64_t total = 0;
    size_t i;
    int64_t size;

    if (!(nbd = vmbkApplianceDiskConnect(d, &size)) ||
        vmbkRunnerExtents(nbd, d->target, size, true, vmbkLeafRangesAdd, &lr, interrupted) < 0)
        return -1;
    vmbkLeafRangesFlush(&lr);
    nbd_shutdown(nbd, 0);
    if (!(mine = vmbkDigestOpen(leaves, size)))
        return -1;
    /* In requests of at most VMBK_AGENT_DIGEST_LEAVES leaves (no range is longer). */
    for (i = 0; i < ranges->len;) {
        size_t j = i;
        uint64_t batch = 0;

        while (j < ranges->len &&
               batch + vmbkAgentGet64(ranges->data + j + 8) <= VMBK_AGENT_DIGEST_LEAVES) {
            batch += vmbkAgentGet64(ranges->data + j + 8);
            j += 16;
        }
        if (vmbkApplianceCheckLeaves(s, d, mine, ranges->data + i, j - i, interrupted) < 0)
            return -1;
        total += batch;
        i = j;
    }
    vmbkDebug("appliance: %s digest of the %" PRIu64 " changed leaves in %.3f s", d->target,
              total, (g_get_monotonic_time() - t0) / 1e6);
    return 0;
}

int
vmbkApplianceCheckDigest(vmbkApplianceSession *s, const vmbkApplianceDisk *d,
                         const char *digest, const char *leaves, volatile int *interrupted)
{
    g_autofree char *req = g_strdup_printf("serial=%s\ntimeout=%d\n", d->serial,
                                           VMBK_APPLIANCE_DISK_TIMEOUT_S);
    g_autofree char *resp = NULL;
    g_autofree char *root = NULL;
    g_autofree char *secs = NULL;

    if (leaves)
        return vmbkApplianceCheckChanged(s, d, leaves, interrupted);
    /* Reading and hashing the whole disk under TCG: allow for it. */
    if (!(resp = vmbkAgentRequest(s->agent, VMBK_AGENT_MSG_DIGEST, req, 24 * 3600 * 1000,
                                  interrupted)))
        return -1;
    root = vmbkAgentPayloadGet(resp, "root");
    secs = vmbkAgentPayloadGet(resp, "seconds");
    vmbkDebug("appliance: %s digest %s in %s s", d->target, root ? root : "-", secs ? secs : "-");
    if (!root || !g_str_equal(root, digest)) {
        vmbkError(VMBK_ERR_OPERATION, "disk '%s' reads differently in the appliance (digest "
                  "%s) than on the host (%s)", d->target, root ? root : "none", digest);
        return -1;
    }
    return 0;
}
