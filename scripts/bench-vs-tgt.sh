#!/usr/bin/env bash
# The performance goals of the data path in one run: both our daemons and Debian's
# tgtd (1.0.85) serve a LUN each on the same machine, every workload runs against
# each of them back to back, and iperf3 measures the loopback TCP ceiling in the
# same run. Prints one table (IOPS, MB/s, p50 latency, target CPU per command) and
# one line per goal with the ratio and whether it is met. The rows with
# --connections 1/2/4 (one session, MC/S) are measured on our daemons only. The
# "-poll" rows repeat a workload with iscsi-bench --busy-poll (the load generator
# never sleeps, so its wake-ups are not in any target's latency).
#
#   bench-vs-tgt.sh [SECONDS]
#
# SECONDS (default 5) is each run's length. Environment:
#   BIN=target/release   where tgtd-mio, tgtd-tokio, tgtadm and iscsi-bench are
#   FLAVOURS="mio tokio" which of our daemons to measure
#   TGT=1                also Debian's tgtd (0: skip; ratios to tgt are then left out)
#   TGT_PORT=3299        tgtd's portal port and control port (tgtd -C)
#   SIZE=1G              each LUN's backing file, written in full and cached first
#   ROUNDS=1             repeat every workload, each round in another order of the
#                        targets; the median of the rounds is kept
#   ONLY="a b"           run only these workloads (names as in the table)
#   DAEMON_ARGS="..."    extra options for our daemons (e.g. "--busy-poll 0")
# Needs root (tgtd's control socket), jq, iperf3. CPU-heavy and sensitive to other
# load: numbers are only comparable within one run; the load average is printed.
set -euo pipefail
case "${1:-}" in -h | --help) sed -n '2,24p' "$0"; exit 0 ;; esac
secs=${1:-5}
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${BIN:-$root/target/release}
flavours=${FLAVOURS:-mio tokio}
tgt=${TGT:-1}
tgt_port=${TGT_PORT:-3299}
size=${SIZE:-1G}
rounds=${ROUNDS:-1}
iqn=iqn.2026-12.rs.tgtd:bench
for t in jq iperf3 "$bin/iscsi-bench" "$bin/tgtadm"; do
    command -v "$t" >/dev/null || { echo "bench-vs-tgt: $t not found" >&2; exit 2; }
done
[ "$tgt" = 1 ] && { command -v tgtd >/dev/null || { echo "bench-vs-tgt: tgtd not found (apt install tgt, or TGT=0)" >&2; exit 2; }; }
work=$(mktemp -d /tmp/bench-vs-tgt.XXXXXX)
declare -A iops mbs p50 cpu pid portals
# shellcheck source=bench-lib.sh
. "$root/scripts/bench-lib.sh"
trap bench_cleanup EXIT

# name rw pattern bs qd extra-options
workloads=(
    "write4k-qd32 write rand 4k 32"
    "write128k-qd8 write seq 128k 8"
    "write128k-qd8-dig write seq 128k 8 --header-digest --data-digest"
    "read4k-qd1 read rand 4k 1"
    "read4k-qd32 read rand 4k 32"
    "read4k-qd1-poll read rand 4k 1 --busy-poll"
    "read4k-qd32-poll read rand 4k 32 --busy-poll"
    "read4k-64x8 read rand 4k 8 --sessions 64"
    "read128k-qd8 read seq 128k 8"
    "read128k-qd8-dig read seq 128k 8 --header-digest --data-digest"
    "read1m-qd4 read seq 1m 4"
    "read128k-qd16-c1 read seq 128k 16 --connections 1"
    "read128k-qd16-c2 read seq 128k 16 --connections 2"
    "read128k-qd16-c4 read seq 128k 16 --connections 4"
)

# Clock ticks of user + system time of a process.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# Median; of an even count, the mean of the middle two (ROUNDS=2: both orders).
median() {
    tr ' ' '\n' | grep -v '^$' | sort -g |
        awk '{a[NR]=$1} END{m=int((NR+1)/2); print (NR % 2 ? a[m] : (a[m] + a[m+1]) / 2)}'
}

# One iscsi-bench run; appends this round's figures to the lists under KEY,NAME.
run_iscsi() {
    local key=$1 name=$2 rw=$3 pattern=$4 bs=$5 qd=$6 j t0 t1
    shift 6
    # Every write run starts from clean pages: otherwise one target's run pays for
    # writing back what the run before it dirtied (the cost of a buffered write
    # depends on whether its page is dirty already).
    [ "$rw" = read ] || sync
    t0=$(ticks "${pid[$key]}")
    j=$("$bin/iscsi-bench" "${portals[$key]}" "$iqn" 1 --qd "$qd" --bs "$bs" --rw "$rw" \
        --pattern "$pattern" --duration "$secs" --json "$@")
    t1=$(ticks "${pid[$key]}")
    local errs ops
    errs=$(jq -r '.errors_total + .failed_commands_total' <<<"$j")
    [ "$errs" = 0 ] || echo "$key $name: $errs errors" >&2
    ops=$(jq -r '.ops' <<<"$j")
    iops[$key,$name]+=" $(jq -r '.iops | floor' <<<"$j")"
    mbs[$key,$name]+=" $(jq -r '.mb_per_s * 10 | floor / 10' <<<"$j")"
    p50[$key,$name]+=" $(jq -r '.latency_us.p50' <<<"$j")"
    cpu[$key,$name]+=" $(awk -v t=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" -v n="$ops" \
        'BEGIN{printf "%.1f", n ? t / hz * 1e6 / n : 0}')"
}

keys=$flavours
[ "$tgt" = 1 ] && keys="$keys tgt"
# A spare file is written first: the first file of a run served 128 KiB buffered
# writes 15-20% slower than the others, whichever target it belonged to (changing
# the daemons' start order and the files' creation order moved the loss with the
# file; the cause in the kernel is not known). With the spare first, mio and tokio
# were within 2% (22.9k / 23.2k IOPS).
for k in spare $keys; do
    # Written in full so that no target pays for block allocation, then cached.
    head -c "$size" /dev/zero >"$work/$k.img"
    cat "$work/$k.img" >/dev/null
done
# On disk before the first run: otherwise the kernel writes those gigabytes back
# during the first workloads, and the first target measured (mio) pays for it.
sync
for f in $flavours; do start_ours "$f" --backing-store "$work/$f.img"; done
[ "$tgt" = 1 ] && start_tgt --backing-store "$work/tgt.img"

iperf_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 5299)
iperf=""
# Rotated every round: whoever runs a workload first meets the page cache as the
# previous workload left it (measured: the first of two daemons on 128K writes ran
# 11-14% behind the second, whichever daemon it was).
read -r -a order <<<"$keys"
for round in $(seq "$rounds"); do
    shift_by=$(((round - 1) % ${#order[@]}))
    rotated="${order[*]:shift_by} ${order[*]:0:shift_by}"
    for w in "${workloads[@]}"; do
        read -r name rw pattern bs qd extra <<<"$w"
        if [ -n "${ONLY:-}" ] && [[ " $ONLY " != *" $name "* ]]; then continue; fi
        # shellcheck disable=SC2086 # extra holds options, split on purpose
        for k in $rotated; do
            # tgt refuses a second connection in a session: MC/S rows are ours only.
            [ "$k" = tgt ] && [[ "$extra" == *--connections* ]] && continue
            run_iscsi "$k" "$name" "$rw" "$pattern" "$bs" "$qd" $extra
        done
    done
    iperf3 -s -p "$iperf_port" -1 >/dev/null 2>&1 &
    sleep 0.5
    iperf+=" $(iperf3 -c 127.0.0.1 -p "$iperf_port" -l 1M -t "$secs" -J |
        jq -r '.end.sum_received.bits_per_second / 8e6 | floor')"
    wait $! 2>/dev/null || true
done
iperf=$(median <<<"$iperf")
for a in iops mbs p50 cpu; do
    unset -n arr 2>/dev/null || true
    declare -n arr=$a
    for i in "${!arr[@]}"; do arr[$i]=$(median <<<"${arr[$i]}"); done
done
# IOPS whole, MB/s, p50 and CPU to one decimal (a median of two may end in .5).
for i in "${!iops[@]}"; do iops[$i]=$(printf '%.0f' "${iops[$i]}"); done
for a in mbs p50 cpu; do
    unset -n arr
    declare -n arr=$a
    for i in "${!arr[@]}"; do arr[$i]=$(printf '%.1f' "${arr[$i]}"); done
done

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)   runs ${secs}s x $rounds   iperf3 1 MiB writes, 1 stream: $iperf MB/s"
printf '%-18s' workload
for k in $keys; do printf ' %35s' "$k IOPS / MB/s / p50us / CPUus"; done
echo
for w in "${workloads[@]}"; do
    read -r name _ <<<"$w"
    [ -n "${iops[${keys%% *},$name]:-}" ] || continue
    printf '%-18s' "$name"
    for k in $keys; do
        if [ -n "${iops[$k,$name]:-}" ]; then
            printf ' %35s' "${iops[$k,$name]} / ${mbs[$k,$name]} / ${p50[$k,$name]} / ${cpu[$k,$name]}"
        else
            printf ' %35s' -
        fi
    done
    echo
done

# goal: label, value, comparison (ge|le), bound
goal() {
    local ok
    ok=$(awk -v v="$2" -v b="$4" -v op="$3" 'BEGIN{print (op == "ge" ? v >= b : v <= b) ? "met" : "MISSED"}')
    printf '%-58s %8s   (%s %s)  %s\n' "$1" "$2" "$([ "$3" = ge ] && echo '>=' || echo '<=')" "$4" "$ok"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", b ? a / b : 0}'; }
have() { [ -n "${iops[$1,$2]:-}" ]; }
echo
for f in $flavours; do
    if [ "$tgt" = 1 ]; then
        for n in write4k-qd32 write128k-qd8; do
            have "$f" $n && goal "$f $n / tgt (IOPS)" "$(ratio "${iops[$f,$n]}" "${iops[tgt,$n]}")" ge 2
        done
        have "$f" read4k-qd32 && goal "$f read4k-qd32 / tgt (IOPS)" "$(ratio "${iops[$f,read4k-qd32]}" "${iops[tgt,read4k-qd32]}")" ge 5
        have "$f" read4k-qd1 && goal "$f read4k-qd1 p50 / tgt p50" "$(ratio "${p50[$f,read4k-qd1]}" "${p50[tgt,read4k-qd1]}")" le 0.8
        # The same with a load generator that never sleeps (iscsi-bench
        # --busy-poll): its own wake-up, on these VMs about as long as a target's
        # whole answer, is then not part of every target's figure.
        have "$f" read4k-qd32-poll && goal "$f read4k-qd32-poll / tgt (IOPS)" "$(ratio "${iops[$f,read4k-qd32-poll]}" "${iops[tgt,read4k-qd32-poll]}")" ge 5
        have "$f" read4k-qd1-poll && goal "$f read4k-qd1-poll p50 / tgt p50" "$(ratio "${p50[$f,read4k-qd1-poll]}" "${p50[tgt,read4k-qd1-poll]}")" le 0.8
        have "$f" read4k-qd32 && goal "$f read4k-qd32 CPU per command / tgt" "$(ratio "${cpu[$f,read4k-qd32]}" "${cpu[tgt,read4k-qd32]}")" le 0.33
        for n in read128k-qd8-dig write128k-qd8-dig; do
            have "$f" $n && goal "$f $n / tgt with digests (MB/s)" "$(ratio "${mbs[$f,$n]}" "${mbs[tgt,$n]}")" ge 5
        done
    fi
    for n in read128k-qd8 write128k-qd8; do
        have "$f" "$n-dig" && have "$f" $n &&
            goal "$f $n digests on / off (MB/s)" "$(ratio "${mbs[$f,$n-dig]}" "${mbs[$f,$n]}")" ge 0.8
    done
    have "$f" read1m-qd4 && goal "$f read1m-qd4 / iperf3 (MB/s)" "$(ratio "${mbs[$f,read1m-qd4]}" "$iperf")" ge 0.9
    have "$f" read4k-64x8 && have "$f" read4k-qd32 &&
        goal "$f 64 sessions x QD8 / one session QD32 (IOPS)" "$(ratio "${iops[$f,read4k-64x8]}" "${iops[$f,read4k-qd32]}")" ge 1
done
set -- $flavours
if [ $# -ge 2 ]; then
    for w in "${workloads[@]}"; do
        read -r name _ <<<"$w"
        have "$1" "$name" || continue
        goal "$1 / $2 $name (IOPS), within 10%" "$(ratio "${iops[$1,$name]}" "${iops[$2,$name]}")" ge 0.9
        goal "$2 / $1 $name (IOPS), within 10%" "$(ratio "${iops[$2,$name]}" "${iops[$1,$name]}")" ge 0.9
    done
fi
