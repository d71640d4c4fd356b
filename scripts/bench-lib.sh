# shellcheck shell=bash
# Shared by the bench-*.sh scripts: start our daemons and Debian's tgtd with one
# target (tid 1, LUN 1) each, and stop them again. The caller sets `bin` (where
# tgtd-mio, tgtd-tokio and tgtadm are), `iqn`, `work` (a scratch directory),
# `tgt` (1: Debian's tgtd is used) and `tgt_port`, and declares the associative
# arrays `portals` and `pid` before sourcing this file.

bench_pids=()

# Stop every daemon started here (tgtd ignores SIGTERM while it has targets, so
# its target goes first), then remove the scratch directory.
bench_cleanup() {
    [ "${tgt:-0}" = 1 ] && tgtadm -C "$tgt_port" --mode target --op delete --tid 1 --force >/dev/null 2>&1
    local p
    for p in "${bench_pids[@]}"; do kill "$p" 2>/dev/null || true; done
    sleep 2
    for p in "${bench_pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    rm -rf "$work"
}

# start_ours FLAVOUR LU-OPTION...: tgtd-FLAVOUR on a free loopback port with LUN 1
# made by `tgtadm --op new` with the given options; sets portals[FLAVOUR], pid[FLAVOUR].
# DAEMON_ARGS (environment) are added to the daemon's command line, e.g. "--busy-poll 0".
start_ours() {
    local f=$1 log=$work/$1.log sock=$work/$1.sock
    shift
    # shellcheck disable=SC2086 # DAEMON_ARGS is a list of words
    "$bin/tgtd-$f" -f --iscsi portal=127.0.0.1:0 --control-socket "$sock" ${DAEMON_ARGS:-} 2>"$log" </dev/null &
    bench_pids+=($!)
    pid[$f]=$!
    disown
    for _ in $(seq 100); do grep -qs "serving iSCSI on " "$log" && break; sleep 0.1; done
    portals[$f]=$(sed -n 's/.*serving iSCSI on \([0-9.:]*\).*/\1/p' "$log" | head -1)
    [ -n "${portals[$f]}" ] || { cat "$log" >&2; exit 1; }
    local adm=("$bin/tgtadm" --control-socket "$sock" --lld iscsi)
    "${adm[@]}" --mode target --op new --tid 1 --targetname "$iqn" >/dev/null
    "${adm[@]}" --mode logicalunit --op new --tid 1 --lun 1 "$@" >/dev/null
    "${adm[@]}" --mode target --op bind --tid 1 --initiator-address ALL >/dev/null
}

# start_tgt LU-OPTION...: Debian's tgtd on 127.0.0.1:tgt_port (control port the
# same) with LUN 1, both digests offered (tgt offers none unless told); sets
# portals[tgt], pid[tgt].
start_tgt() {
    tgtd -f -C "$tgt_port" --iscsi portal="127.0.0.1:$tgt_port" >"$work/tgt.log" 2>&1 </dev/null &
    bench_pids+=($!)
    pid[tgt]=$!
    disown
    for _ in $(seq 100); do tgtadm -C "$tgt_port" --mode target --op show >/dev/null 2>&1 && break; sleep 0.1; done
    local adm=(tgtadm -C "$tgt_port" --lld iscsi)
    "${adm[@]}" --mode target --op new --tid 1 --targetname "$iqn" >/dev/null
    "${adm[@]}" --mode logicalunit --op new --tid 1 --lun 1 "$@" >/dev/null
    "${adm[@]}" --mode target --op update --tid 1 --name HeaderDigest --value CRC32C,None >/dev/null
    "${adm[@]}" --mode target --op update --tid 1 --name DataDigest --value CRC32C,None >/dev/null
    "${adm[@]}" --mode target --op bind --tid 1 --initiator-address ALL >/dev/null
    portals[tgt]=127.0.0.1:$tgt_port
}
