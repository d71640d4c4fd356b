#!/usr/bin/env bash
# Install what the test suite drives, each package only when its command is missing.
# Debian/Ubuntu, as root (or with sudo). Idempotent and quiet; exits non-zero, naming
# the package, when one cannot be installed.
#
#   libiscsi-bin   iscsi-test-cu (conformance), iscsi-ls, iscsi-inq, iscsi-readcapacity16,
#                  iscsi-perf: the real initiator the integration tests log in with
#   tgt            Debian's tgtd, tgtadm and tgt-admin: the reference target that the
#                  differential tests compare our output with
#   mount          losetup: loop devices for the block-device backing-store tests
#   qemu-utils + qemu-block-extra
#                  QEMU's iSCSI driver (qemu-img over iscsi://), a second real initiator:
#                  downloaded (not installed) and unpacked into target/test-deps/qemu-iscsi
#                  of this checkout, or $TGTD_TEST_QEMU_DIR, where tests/tests/cdrom.rs
#                  finds it
#   ceph-mon, ceph-osd, ceph-common (rbd, rados, ceph, monmaptool), librbd1, librados2
#                  a one-node Ceph cluster (scripts/ceph-test-cluster.sh) for the rbd
#                  backing-store tests (tests/tests/rbd.rs, rbd_pr.rs); the daemons dlopen
#                  librbd.so.1 and librados.so.2 at run time
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
sudo=""
[ "$(id -u)" = 0 ] || sudo=sudo

# command -> package
need=(
    "iscsi-test-cu libiscsi-bin"
    "iscsi-ls libiscsi-bin"
    "iscsi-inq libiscsi-bin"
    "iscsi-readcapacity16 libiscsi-bin"
    "tgtd tgt"
    "tgt-admin tgt"
    "losetup mount"
    "ceph-mon ceph-mon"
    "ceph-osd ceph-osd"
    "monmaptool ceph-common"
    "rbd ceph-common"
    "rados ceph-common"
    "ceph ceph-common"
)
missing=()
for pair in "${need[@]}"; do
    cmd=${pair%% *} pkg=${pair##* }
    if ! command -v "$cmd" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$cmd" ]; then
        case " ${missing[*]} " in *" $pkg "*) ;; *) missing+=("$pkg") ;; esac
    fi
done

# Libraries, not commands: the rbd store loads them at run time.
for pair in "librbd.so.1 librbd1" "librados.so.2 librados2"; do
    lib=${pair%% *} pkg=${pair##* }
    if ! /sbin/ldconfig -p 2>/dev/null | grep -q "$lib"; then
        case " ${missing[*]} " in *" $pkg "*) ;; *) missing+=("$pkg") ;; esac
    fi
done

if [ ${#missing[@]} != 0 ]; then
    command -v apt-get >/dev/null || {
        echo "install-test-deps: no apt-get here; install these packages by hand: ${missing[*]}" >&2
        exit 1
    }
    echo "install-test-deps: installing ${missing[*]}" >&2
    $sudo apt-get update -qq >/dev/null
    if ! $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/tmp/install-test-deps.log 2>&1; then
        cat /tmp/install-test-deps.log >&2
        echo "install-test-deps: apt-get could not install: ${missing[*]}" >&2
        exit 1
    fi
    # A package that installed but did not bring its command is as bad as a missing one.
    for pair in "${need[@]}"; do
        cmd=${pair%% *} pkg=${pair##* }
        command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || {
            echo "install-test-deps: package $pkg installed but $cmd is still missing" >&2
            exit 1
        }
    done
fi

# QEMU's iSCSI driver, unpacked where the tests look (the same version of both
# packages: the block module must match the binary).
qemu_dir=${TGTD_TEST_QEMU_DIR:-$(cd "$(dirname "$0")/.." && pwd)/target/test-deps/qemu-iscsi}
install_qemu() {
    local work ver
    command -v apt-get >/dev/null || {
        echo "install-test-deps: no apt-get here; unpack qemu-utils and qemu-block-extra into $qemu_dir by hand" >&2
        return 1
    }
    $sudo apt-get update -qq >/dev/null
    work=$(mktemp -d)
    # The newest version apt can download both packages at (a pinned or partial
    # source may list a version it cannot fetch).
    local got=""
    for ver in $(apt-cache madison qemu-utils | awk '{print $3}'); do
        rm -f "$work"/*.deb
        if (cd "$work" && apt-get download -qq "qemu-utils=$ver" "qemu-block-extra=$ver") \
            >/dev/null 2>&1; then
            got=$ver
            break
        fi
    done
    [ -n "$got" ] || {
        rm -rf "$work"
        echo "install-test-deps: apt-get download qemu-utils and qemu-block-extra failed" >&2
        return 1
    }
    rm -rf "$qemu_dir"
    mkdir -p "$qemu_dir"
    for deb in "$work"/*.deb; do dpkg-deb -x "$deb" "$qemu_dir"; done
    rm -rf "$work"
}
qemu_img="$qemu_dir/usr/bin/qemu-img"
if [ ! -x "$qemu_img" ] || [ -z "$(find "$qemu_dir" -name block-iscsi.so 2>/dev/null)" ]; then
    echo "install-test-deps: unpacking QEMU's iSCSI driver into $qemu_dir" >&2
    install_qemu
fi
# Its shared libraries come from the system (libiscsi with libiscsi-bin, glib, ...),
# so this runs after the packages above are in.
if ldd "$qemu_img" "$(find "$qemu_dir" -name block-iscsi.so | head -n1)" | grep -q "not found"; then
    echo "install-test-deps: QEMU in $qemu_dir lacks libraries:" >&2
    ldd "$qemu_img" "$(find "$qemu_dir" -name block-iscsi.so | head -n1)" | grep "not found" >&2
    exit 1
fi
