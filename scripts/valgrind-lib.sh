# How Asterisk runs under valgrind memcheck; sourced by scripts/valgrind.sh and, when
# DEVICEUSER_VALGRIND is set, by scripts/asterisk.sh. Needs ROOT, AST and LIBDIR.
# Environment: VALGRIND_OPTS_EXTRA adds valgrind options.

# valgrind 3.19 looks for a .gnu_debuglink name under EXTRA/<object's folder>/ only.
VG_EXTRA=$AST/dbg/links

# The tree's dynamic loader is stripped: memcheck needs its symbols (strlen) from the
# matching libc6-dbg of sid, fetched once with the provisioned private apt state, and
# linked under VG_EXTRA.
vg_prepare() {
    local dbg=$AST/dbg version f arch
    arch=$(dpkg --print-architecture)
    version=$(dpkg-deb -f "$(ls "$AST"/debs/libc6_*_"$arch".deb | head -n1)" Version)
    if [ ! -d "$dbg/$version/usr/lib/debug/.build-id" ]; then
        local aptdir=$AST/apt
        mkdir -p "$dbg"
        (cd "$dbg" && apt-get -o Dir::Etc::SourceList="$aptdir/sources.list" -o Dir::Etc::SourceParts=/dev/null \
            -o Dir::State::Lists="$aptdir/lists" -o Dir::Cache="$aptdir/cache" -o Dir::State::status="$aptdir/status" \
            -o Debug::NoLocking=1 -o Acquire::Languages=none -o Acquire::Check-Valid-Until=false \
            -o APT::Architecture="$arch" -qq download "libc6-dbg=$version" 2>/dev/null)
        dpkg-deb -x "$dbg/libc6-dbg_${version#*:}_${arch}.deb" "$dbg/$version"
    fi
    mkdir -p "$VG_EXTRA$LIBDIR"
    for f in "$dbg/$version"/usr/lib/debug/.build-id/*/*.debug; do
        local link=$VG_EXTRA$LIBDIR/$(basename "$f")
        [ "$(readlink "$link" 2>/dev/null)" = "$f" ] || ln -sfn "$f" "$link"
    done
}

# Fails unless valgrind and the links of vg_prepare are in place.
vg_check() {
    command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; return 1; }
    compgen -G "$VG_EXTRA$LIBDIR/*.debug" >/dev/null || {
        echo "no libc6-dbg symbols under $VG_EXTRA$LIBDIR: run scripts/valgrind.sh (it prepares them)" >&2
        return 1
    }
}

# vg_args LOGFILE: memcheck's options into the array VG_ARGS. --keep-debuginfo keeps the
# symbols of the module after `module unload` dlcloses it.
vg_args() {
    VG_ARGS=(--tool=memcheck --leak-check=full --show-leak-kinds=definite,indirect,possible
        --errors-for-leak-kinds=definite --track-origins=yes --num-callers=40 --keep-debuginfo=yes
        --error-limit=no --extra-debuginfo-path="$VG_EXTRA" --log-file="$1")
    if [ -f "$ROOT/reliability/valgrind.supp" ]; then
        VG_ARGS+=(--suppressions="$ROOT/reliability/valgrind.supp")
    fi
    if [ -n "${VALGRIND_OPTS_EXTRA:-}" ]; then
        local extra
        read -r -a extra <<<"$VALGRIND_OPTS_EXTRA"
        VG_ARGS+=("${extra[@]}")
    fi
}
