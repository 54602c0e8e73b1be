#!/usr/bin/env bash
# The plugin API as a third party sees it: vmbk-plugin.h compiles as C90 and as C++; a plugin
# built out of tree against the installed header (make install) loads, and is listed by
# 'vmbk plugins'; shipped plugins export vmbk_plugin_init and nothing else; plugins vmbk cannot
# use (unknown name, a future API version, a truncated struct) are refused or read safely.
source "${abs_top_srcdir:-..}/tests/functions.sh"
requires nm make
: "${CC:=cc}" "${CXX:=c++}"
requires "${CC%% *}" "${CXX%% *}"
cd "$TMPDIR_TEST"

# Installed, as a user would have it.
make -s -C "$abs_top_builddir/include" install prefix="$TMPDIR_TEST/inst" >/dev/null
hdr=$TMPDIR_TEST/inst/include/vmbk-plugin.h
[ -f "$hdr" ] || fail "make install did not install vmbk-plugin.h"

printf '#include <vmbk-plugin.h>\nint main(void) { struct vmbk_plugin p; p._struct_size = 0; return (int) p._struct_size; }\n' >c90.c
$CC -std=c90 -pedantic-errors -Wall -Wextra -Werror -I inst/include -c c90.c -o c90.o ||
    fail "vmbk-plugin.h is not C90"
cp c90.c cxx.cc
$CXX -std=c++11 -pedantic-errors -Wall -Wextra -Werror -I inst/include -c cxx.cc -o cxx.o ||
    fail "vmbk-plugin.h is not C++"

# An out-of-tree plugin: the header and the compiler, nothing else of vmbk.
mkdir plugins
cat >hello.c <<'PLUGIN'
#include <string.h>
#include <vmbk-plugin.h>

static struct vmbk_output *out;

static void *hello_open(struct vmbk_sink *sink, const struct vmbk_point *point)
{
    static int h;
    if (!(out = vmbk_output_open(sink, "hello.txt", 0)))
        return NULL;
    return &h;
}
static int hello_disk_begin(void *h, const struct vmbk_disk *disk)
{
    return vmbk_output_write(out, disk->target, strlen(disk->target));
}
static int hello_close(void *h) { return vmbk_output_close(out); }

static struct vmbk_plugin plugin = {
    .name = "hello", .version = "9.9", .description = "out of tree",
    .open = hello_open, .disk_begin = hello_disk_begin, .close = hello_close,
};
VMBK_REGISTER_PLUGIN(plugin)
PLUGIN
$CC -std=c11 -Wall -Werror -fPIC -shared -I inst/include hello.c -o plugins/vmbk-hello-plugin.so
VMBK_PLUGIN_PATH=$TMPDIR_TEST/plugins "$VMBK" plugins --json >list.json
[ "$(jq -r '.[] | select(.name == "hello") | [.kind, .version] | join(" ")' list.json)" = "block 9.9" ] ||
    fail "the out-of-tree plugin is not listed: $(cat list.json)"

# The shipped plugins: listed with their kind, exporting one symbol.
"$VMBK" plugins --json >list.json
for p in qcow2:block catalog:file example:block,file raw:block; do
    [ "$(jq -r --arg n "${p%%:*}" '.[] | select(.name == $n) | .kind' list.json)" = "${p#*:}" ] ||
        fail "'vmbk plugins' does not list ${p%%:*} as ${p#*:}: $(cat list.json)"
done
for so in $(jq -r '.[] | .path // empty' list.json); do
    syms=$(nm -D --defined-only "$so" | awk '{print $3}')
    [ "$syms" = vmbk_plugin_init ] || fail "$so exports more than vmbk_plugin_init: $syms"
done

# Plugins vmbk cannot use, refused before anything is touched (no domain is needed to tell).
libs=$abs_top_builddir/tests/.libs
expect_fail 2 "no plugin named 'nope' in .*'vmbk plugins' lists those installed" \
    "$VMBK" backup no-such-domain -r repo --plugin nope
expect_fail 2 "no plugin named 'Bad'" "$VMBK" backup no-such-domain -r repo --plugin Bad
expect_fail 2 "no plugin file 'x/\.\./y.so'" "$VMBK" backup no-such-domain -r repo --plugin x/../y.so
expect_fail 2 "plugin 'future' failed to load: .*uses API version 99; this vmbk knows version 1" \
    "$VMBK" backup no-such-domain -r repo --plugin "$libs/vmbk-future-plugin.so"
expect_fail 2 "the qcow2 plugin is built in and always runs" \
    "$VMBK" backup no-such-domain -r repo --plugin qcow2
expect_fail 2 "--plugin raw:x: 'x' is not key=value" "$VMBK" backup no-such-domain -r repo --plugin raw:x
expect_fail 2 "plugin 'raw' failed to load: size=1: unknown parameter 'size'" \
    "$VMBK" backup no-such-domain -r repo --plugin raw:size=1
expect_fail 2 "plugin 'example' failed to load: zeroes=maybe: 'maybe' is not a boolean" \
    "$VMBK" backup no-such-domain -r repo --plugin example:zeroes=maybe
expect_fail 2 "plugin 'raw' is given twice" "$VMBK" backup no-such-domain -r repo --plugin raw --plugin raw
[ ! -e repo ] || fail "a refused plugin left a repository behind"

# An older plugin's struct is read up to its _struct_size: what lies past it is not a callback.
VMBK_PLUGIN_PATH=$libs "$VMBK" plugins --json >list.json
[ "$(jq -r '.[] | select(.name == "short") | .kind' list.json)" = block ] ||
    fail "the loader read past a plugin's _struct_size: $(cat list.json)"
exit 0
