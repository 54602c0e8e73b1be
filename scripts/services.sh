# shellcheck shell=bash
# Start the host services vmbk needs (virtlogd, libvirtd) on a machine
# without an init system that would start them for us.
#
# Sourced by scripts/setup-host.sh and tests/functions.sh; defines
# functions only and changes no shell options.

VMBK_LIBVIRT_URI=${VMBK_LIBVIRT_URI:-qemu:///system}

# vmbk_pid_alive PIDFILE: true if PIDFILE names a live process.
vmbk_pid_alive ()
{
    local pid
    [ -r "$1" ] || return 1
    pid=$(cat "$1" 2>/dev/null) || return 1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

# vmbk_libvirtd_answers: true if libvirtd accepts a connection.
vmbk_libvirtd_answers ()
{
    timeout 10 virsh -c "$VMBK_LIBVIRT_URI" list >/dev/null 2>&1
}

# vmbk_start_services [TIMEOUT]: start virtlogd and libvirtd unless they
# already run, then wait up to TIMEOUT seconds (default 60) for libvirtd
# to answer.  Idempotent.  Returns 1 with a message on timeout.
vmbk_start_services ()
{
    local timeout=${1:-60} i

    if ! vmbk_pid_alive /run/virtlogd.pid && ! pgrep -x virtlogd >/dev/null; then
        echo "starting virtlogd" >&2
        virtlogd -d
    fi

    if vmbk_libvirtd_answers; then
        return 0
    fi
    if ! vmbk_pid_alive /run/libvirtd.pid && ! pgrep -x libvirtd >/dev/null; then
        echo "starting libvirtd" >&2
        libvirtd -d
    fi

    for ((i = 0; i < timeout; i++)); do
        if vmbk_libvirtd_answers; then
            return 0
        fi
        sleep 1
    done
    echo "error: libvirtd did not answer on $VMBK_LIBVIRT_URI within ${timeout}s;" \
         "see /var/log/libvirt/libvirtd.log" >&2
    return 1
}
