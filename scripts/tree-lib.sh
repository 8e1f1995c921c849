# Sourced by scripts/asterisk.sh and scripts/valgrind.sh. Needs TREE (the unpacked Debian
# packages). Sets LIBDIR (the multiarch library folder that holds asterisk/modules, e.g.
# usr/lib/x86_64-linux-gnu or usr/lib/aarch64-linux-gnu) and LOADER (the dynamic loader in it),
# derived from the tree rather than named for one architecture.
tree_paths() {
    local mods
    mods=$(find "$TREE/usr/lib" "$TREE/usr/lib64" -maxdepth 3 -type d -path '*/asterisk/modules' -print -quit 2>/dev/null || true)
    if [ -z "$mods" ]; then
        echo "no asterisk/modules folder under $TREE/usr/lib*: run scripts/provision.sh" >&2
        return 1
    fi
    LIBDIR=${mods%/asterisk/modules}
    LOADER=$(compgen -G "$LIBDIR/ld-linux*.so.*" | head -n1 || true)
    if [ -z "$LOADER" ]; then
        echo "no dynamic loader (ld-linux*.so.*) in $LIBDIR: run scripts/provision.sh" >&2
        return 1
    fi
}
