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
pids=()
cleanup() {
    # tgtd ignores SIGTERM while it has targets (and may refuse to delete them).
    [ "$tgt" = 1 ] && tgtadm -C "$tgt_port" --mode target --op delete --tid 1 --force >/dev/null 2>&1
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    sleep 2
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

# name rw pattern bs qd
workloads=(
    "4k-randread read rand 4k 32"
    "4k-randwrite write rand 4k 32"
    "128k-read read seq 128k 8"
    "128k-write write seq 128k 8"
)
declare -A iops mbs

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
declare -A portals
for f in $flavours; do
    log=$work/$f.log sock=$work/$f.sock
    "$bin/tgtd-$f" -f --iscsi portal=127.0.0.1:0 --control-socket "$sock" 2>"$log" </dev/null &
    pids+=($!)
    for _ in $(seq 100); do grep -qs "serving iSCSI on " "$log" && break; sleep 0.1; done
    portal=$(sed -n 's/.*serving iSCSI on \([0-9.:]*\).*/\1/p' "$log" | head -1)
    [ -n "$portal" ] || { cat "$log" >&2; exit 1; }
    adm() { "$bin/tgtadm" --control-socket "$sock" "$@" >/dev/null; }
    adm --lld iscsi --mode target --op new --tid 1 --targetname "$iqn"
    adm --lld iscsi --mode logicalunit --op new --tid 1 --lun 1 --backing-store "$image" \
        --bstype rbd --bsopts "conf=$conf"
    adm --lld iscsi --mode target --op bind --tid 1 --initiator-address ALL
    portals[$f]=$portal
done
if [ "$tgt" = 1 ]; then
    tgtd -f -C "$tgt_port" --iscsi portal="127.0.0.1:$tgt_port" >"$work/tgt.log" 2>&1 </dev/null &
    pids+=($!)
    for _ in $(seq 100); do tgtadm -C "$tgt_port" --mode target --op show >/dev/null 2>&1 && break; sleep 0.1; done
    tadm() { tgtadm -C "$tgt_port" "$@" >/dev/null; }
    tadm --lld iscsi --mode target --op new --tid 1 --targetname "$iqn"
    tadm --lld iscsi --mode logicalunit --op new --tid 1 --lun 1 --backing-store "$image" \
        --bstype rbd --bsopts "conf=$conf"
    tadm --lld iscsi --mode target --op bind --tid 1 --initiator-address ALL
    portals[tgt]=127.0.0.1:$tgt_port
fi

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
