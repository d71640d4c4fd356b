#!/usr/bin/env bash
# Compare an rbd LU through our daemons with librbd alone (`rbd bench`) and with
# Debian's tgtd (bs_rbd), in one run on one image: 4K random read/write at QD32 and
# 128K sequential read/write at QD8. Prints one table (IOPS, MB/s, ratios).
#
#   bench-rbd.sh CEPH_CONF POOL/IMAGE [SECONDS]
#
# The image should be written in full first (e.g. `rbd bench --io-type write
# --io-size 4M --io-pattern seq --io-total SIZE`), or reads hit unallocated objects.
# SECONDS (default 15) is each iSCSI run's length. Environment:
#   BIN=target/release   where tgtd-mio, tgtd-tokio, tgtadm and iscsi-bench are
#   FLAVOURS="mio tokio" which of our daemons to measure
#   TGT=1                also Debian's tgtd with --bstype rbd (needs tgt and tgt-rbd; 0: skip)
#   TGT_PORT=3299        its portal port and control port (tgtd -C)
# Needs root (tgtd's control socket), jq, rbd (ceph-common). CPU-heavy: the numbers
# are only comparable within one run; the load average is printed with them.
set -euo pipefail
[ $# -ge 2 ] || { sed -n '2,17p' "$0" >&2; exit 2; }
conf=$1 image=$2 secs=${3:-15}
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${BIN:-$root/target/release}
flavours=${FLAVOURS:-mio tokio}
tgt=${TGT:-1}
tgt_port=${TGT_PORT:-3299}
iqn=iqn.2026-12.rs.tgtd:bench-rbd
work=$(mktemp -d /tmp/bench-rbd.XXXXXX)
declare -A iops mbs pid portals
# shellcheck source=bench-lib.sh
. "$root/scripts/bench-lib.sh"
trap bench_cleanup EXIT

# name rw pattern bs qd
workloads=(
    "4k-randread read rand 4k 32"
    "4k-randwrite write rand 4k 32"
    "128k-read read seq 128k 8"
    "128k-write write seq 128k 8"
)

# librbd alone, without its cache (as our store opens the image).
run_rbd() {
    local name=$1 rw=$2 pattern=$3 bs=$4 qd=$5 total out
    total=$([ "$bs" = 4k ] && echo 64M || echo 512M)
    out=$(rbd -c "$conf" --rbd_cache=false bench --io-type "$rw" --io-size "${bs^^}" \
        --io-threads "$qd" --io-pattern "$pattern" --io-total "$total" "$image" 2>&1 | tail -1)
    # "elapsed: 7   ops: 16384   ops/sec: 2150.13   bytes/sec: 8.4 MiB/s"
    out=$(awk '{print $6}' <<<"$out")
    iops[rbd,$name]=${out%.*}
    mbs[rbd,$name]=$(awk -v i="$out" -v b="${bs%k}" 'BEGIN{printf "%.1f", i*b*1024/1e6}')
}

# iscsi-bench against PORTAL, result under KEY.
run_iscsi() {
    local key=$1 portal=$2 name=$3 rw=$4 pattern=$5 bs=$6 qd=$7 j
    j=$("$bin/iscsi-bench" "$portal" "$iqn" 1 --qd "$qd" --bs "$bs" --rw "$rw" \
        --pattern "$pattern" --duration "$secs" --json)
    iops[$key,$name]=$(jq -r '.iops | floor' <<<"$j")
    mbs[$key,$name]=$(jq -r '.mb_per_s * 10 | floor / 10' <<<"$j")
    errs=$(jq -r '.errors_total' <<<"$j")
    [ "$errs" = 0 ] || echo "$key $name: $errs errors" >&2
}

# Every target up first; then each workload runs on all of them back to back, so
# that the machine's load drifts as little as possible between the numbers compared.
for f in $flavours; do
    start_ours "$f" --backing-store "$image" --bstype rbd --bsopts "conf=$conf"
done
[ "$tgt" = 1 ] && start_tgt --backing-store "$image" --bstype rbd --bsopts "conf=$conf"

for w in "${workloads[@]}"; do
    read -r name rw pattern bs qd <<<"$w"
    run_rbd "$name" "$rw" "$pattern" "$bs" "$qd"
    for k in "${!portals[@]}"; do
        run_iscsi "$k" "${portals[$k]}" "$name" "$rw" "$pattern" "$bs" "$qd"
    done
done

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)   image $image   iSCSI runs ${secs}s"
cols="rbd $flavours"
[ "$tgt" = 1 ] && cols="$cols tgt"
printf '%-13s' workload
for c in $cols; do printf '%18s' "$c IOPS (MB/s)"; done
for f in $flavours; do printf '%10s' "$f/rbd"; [ "$tgt" = 1 ] && printf '%10s' "$f/tgt"; done
echo
for w in "${workloads[@]}"; do
    read -r name _ <<<"$w"
    printf '%-13s' "$name"
    for c in $cols; do printf '%18s' "${iops[$c,$name]} (${mbs[$c,$name]})"; done
    for f in $flavours; do
        printf '%10s' "$(awk -v a="${iops[$f,$name]}" -v b="${iops[rbd,$name]}" 'BEGIN{printf "%.2f", a/b}')"
        [ "$tgt" = 1 ] &&
            printf '%10s' "$(awk -v a="${iops[$f,$name]}" -v b="${iops[tgt,$name]}" 'BEGIN{printf "%.2f", a/b}')"
    done
    echo
done
