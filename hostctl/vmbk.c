/* vmbk: live backups of libvirt/KVM guests into qcow2 chains
 *
 * main(): global options, then one command.  Exit status 0 on success, 1 on failure with one
 * message on stderr, 2 on a usage error.
 */
#include <config.h>

#include <locale.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>

#include "vmbk.h"

static const vmbkCommand commands[] = {
    { "backup", "DOMAIN -r REPO [-l full|inc|diff|auto] [--disk TARGET]... [--quiesce] "
      "[--method checkpoint|snapshot] [--plugin NAME[:KEY=VALUE,...]]... [--via host|appliance] "
      "[--no-catalog] [--json]",
      "take a live, point-in-time backup of a running domain", vmbkCmdBackup },
    { "list", "-r REPO [DOMAIN] [--json]", "list the points in a repository", vmbkCmdList },
    { "verify", "-r REPO DOMAIN [--point ID|latest|all]",
      "check points against their digests; exit 0 only if intact", vmbkCmdVerify },
    { "restore", "-r REPO DOMAIN [--point ID] [--disk TARGET] (-o FILE [--format raw|qcow2 | "
      "--from stream] | --define NAME [--instant]) | --stream FILE... -o FILE",
      "restore a disk image or a new domain from a point, or a disk from stream files",
      vmbkCmdRestore },
    { "snapshot", "create|list|export|delete [DOMAIN] [--disk TARGET]... [--tcp ADDR:PORT] "
      "[--since CHECKPOINT] [--json]",
      "live point-in-time views of a domain's disks, served read-only over NBD",
      vmbkCmdSnapshot },
    { "index", "-r REPO DOMAIN [--point ID | --all]",
      "inspect a point and build its file catalog", vmbkCmdIndex },
    { "inspect", "-r REPO DOMAIN [--point ID|live] [--json]",
      "the operating system and filesystems of a point", vmbkCmdInspect },
    { "ls", "-r REPO DOMAIN [--point ID|live] PATH [-l]", "list a directory of a point",
      vmbkCmdLs },
    { "cat", "-r REPO DOMAIN [--point ID|live] PATH", "print a file of a point", vmbkCmdCat },
    { "copy-out", "-r REPO DOMAIN [--point ID|live] PATH... DEST",
      "copy files and directories of a point to the host, with metadata", vmbkCmdCopyOut },
    { "find", "-r REPO DOMAIN PATTERN [--json]",
      "the points where matching files exist (catalogs only)", vmbkCmdFind },
    { "mount", "-r REPO DOMAIN [--point ID] [--device DEVICE] MOUNTPOINT",
      "mount a point read-only through FUSE (guestmount)", vmbkCmdMount },
    { "disks", "DOMAIN [--json]", "list a domain's disks and whether each can be backed up",
      vmbkCmdDisks },
    { "accel", "", "say whether VMs vmbk starts get KVM or TCG (probes KVM)",
      vmbkCmdAccel },
    { "appliance", "build|start|stop|status [--force] [--idle SECONDS] [--json]",
      "the backup appliance VM: build its image, start, stop, status", vmbkCmdAppliance },
    { "plugins", "[--json]", "list the installed plugins", vmbkCmdPlugins },
    /* Internal: the child process a plugin runs in (runner.c); not in --help. */
    { "plugin-run", "--plugin SO ...", NULL, vmbkCmdPluginRun },
};

static void
vmbkUsage(FILE *fp)
{
    size_t i;

    fprintf(fp,
            "Usage: %s [-c URI] COMMAND [OPTIONS...]\n"
            "\n"
            "Live, point-in-time backups of libvirt/KVM domains into qcow2 chains.\n"
            "\n"
            "Global options:\n"
            "  -c, --connect URI   libvirt connection URI (default: $LIBVIRT_DEFAULT_URI,\n"
            "                      else qemu:///system)\n"
            "  -h, --help          show this help, or a command's with COMMAND --help\n"
            "  -V, --version       show the version\n"
            "\n"
            "Commands:\n",
            vmbk_progname);
    for (i = 0; i < G_N_ELEMENTS(commands); i++) {
        if (commands[i].summary)
            fprintf(fp, "  %-10s %s\n", commands[i].name, commands[i].summary);
    }
    fprintf(fp, "\nSee '%s COMMAND --help' and vmbk(1).\n", vmbk_progname);
}

int
vmbkParseOptions(const vmbkCommand *cmd, GOptionEntry *entries, const char *description,
                 int *argc, char ***argv, int nargs_min, int nargs_max)
{
    g_autofree char *prgname = g_strdup_printf("%s %s", vmbk_progname, cmd->name);
    g_autoptr(GOptionContext) ctx = g_option_context_new(cmd->args);
    g_autoptr(GError) err = NULL;
    int nargs, i;

    /* GOption's help starts "Usage: PRGNAME [OPTION…] ARGS": make that "vmbk COMMAND ...". */
    g_set_prgname(prgname);
    g_option_context_set_summary(ctx, cmd->summary);
    if (description)
        g_option_context_set_description(ctx, description);
    if (entries)
        g_option_context_add_main_entries(ctx, entries, NULL);
    if (!g_option_context_parse(ctx, argc, argv, &err)) {
        vmbkError(VMBK_ERR_USAGE, "%s: %s; see '%s %s --help'", cmd->name, err->message,
                  vmbk_progname, cmd->name);
        return -1;
    }

    /* (*argv)[0] is the command's name. */
    nargs = *argc - 1;
    /* GOption leaves the "--" that ends the options wherever it was: drop the first one. */
    for (i = 1; i <= nargs; i++) {
        if (!g_str_equal((*argv)[i], "--"))
            continue;
        memmove(&(*argv)[i], &(*argv)[i + 1], sizeof(char *) * (nargs - i));
        nargs--;
        (*argc)--;
        break;
    }
    if (nargs < nargs_min) {
        vmbkError(VMBK_ERR_USAGE, "%s: missing argument; usage: %s %s %s", cmd->name,
                  vmbk_progname, cmd->name, cmd->args);
        return -1;
    }
    if (nargs_max >= 0 && nargs > nargs_max) {
        vmbkError(VMBK_ERR_USAGE, "%s: unexpected argument '%s'; usage: %s %s %s", cmd->name,
                  (*argv)[1 + nargs_max], vmbk_progname, cmd->name, cmd->args);
        return -1;
    }
    return 0;
}

static int
vmbkExit(int ret)
{
    const char *msg;

    if (ret == 0)
        return EXIT_SUCCESS;
    msg = vmbkErrorMessage();
    fprintf(stderr, "%s: %s\n", vmbk_progname,
            msg ? msg : "internal error: a failure was not reported");
    return vmbkErrorGetCode() == VMBK_ERR_USAGE ? 2 : 1;
}

int
main(int argc, char **argv)
{
    vmbkGlobal global = { 0 };
    const vmbkCommand *cmd = NULL;
    int i;
    size_t j;

    setlocale(LC_ALL, "");
    /* A connection that dies (libvirtd restarted) must be an error we report, not SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);
    /* What vmbk writes (points, sockets, restored disks) holds guests' data: private, whatever
     * umask the caller has; qemu gets at job directories through their owner. */
    umask(umask(0) | 077);
    /* qemu-nbd --fork daemonizes: as a subreaper we can still wait for it. */
    prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    vmbkErrorInitLibvirt();

    /* Global options stop at the first word that is not one: the command. */
    for (i = 1; i < argc; i++) {
        const char *arg = argv[i];

        if (g_str_equal(arg, "-h") || g_str_equal(arg, "--help")) {
            vmbkUsage(stdout);
            return EXIT_SUCCESS;
        } else if (g_str_equal(arg, "-V") || g_str_equal(arg, "--version")) {
            printf("%s %s\n", PACKAGE_NAME, PACKAGE_VERSION);
            return EXIT_SUCCESS;
        } else if (g_str_equal(arg, "-c") || g_str_equal(arg, "--connect")) {
            if (++i == argc) {
                vmbkError(VMBK_ERR_USAGE, "option '%s' needs a libvirt URI", arg);
                return vmbkExit(-1);
            }
            global.uri = argv[i];
        } else if (g_str_has_prefix(arg, "--connect=")) {
            global.uri = arg + strlen("--connect=");
        } else if (arg[0] == '-') {
            vmbkError(VMBK_ERR_USAGE, "unknown option '%s'; see '%s --help'", arg, vmbk_progname);
            return vmbkExit(-1);
        } else {
            break;
        }
    }

    if (i == argc) {
        vmbkUsage(stderr);
        vmbkError(VMBK_ERR_USAGE, "no command given");
        return vmbkExit(-1);
    }
    for (j = 0; j < G_N_ELEMENTS(commands); j++) {
        if (g_str_equal(argv[i], commands[j].name))
            cmd = &commands[j];
    }
    if (!cmd) {
        vmbkError(VMBK_ERR_USAGE, "unknown command '%s'; see '%s --help'", argv[i],
                  vmbk_progname);
        return vmbkExit(-1);
    }
    if (!global.uri)
        global.uri = g_getenv("LIBVIRT_DEFAULT_URI");
    if (!global.uri || !*global.uri)
        global.uri = "qemu:///system";

    return vmbkExit(cmd->run(&global, cmd, argc - i, argv + i));
}
