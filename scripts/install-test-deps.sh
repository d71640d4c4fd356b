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
)
missing=()
for pair in "${need[@]}"; do
    cmd=${pair%% *} pkg=${pair##* }
    if ! command -v "$cmd" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$cmd" ]; then
        case " ${missing[*]} " in *" $pkg "*) ;; *) missing+=("$pkg") ;; esac
    fi
done
[ ${#missing[@]} = 0 ] && exit 0

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
