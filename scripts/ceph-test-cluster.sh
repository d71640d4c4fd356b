#!/usr/bin/env bash
# A throw-away one-node Ceph cluster for the rbd backing-store tests: one monitor and
# one OSD (bluestore on a sparse file) listening on 127.0.0.1, no manager, cephx off,
# a replicated pool "rbd" of size 1. Everything lives under DIR; nothing is installed
# system-wide and no systemd unit is involved (scripts/install-test-deps.sh installs
# the ceph-mon, ceph-osd and ceph-common packages).
#
#   ceph-test-cluster.sh start DIR PORT [WATCH_PID]
#       create and start the cluster in DIR with its monitor on 127.0.0.1:PORT; prints
#       CEPH_CONF=DIR/ceph.conf when the pool is usable. With WATCH_PID the daemons
#       are killed as soon as that process is gone (a test run that ends, however it
#       ends, takes its cluster with it).
#   ceph-test-cluster.sh stop DIR
#       kill the daemons started in DIR (by the PIDs recorded there) and the watcher.
#
# Memory is kept small (the machine running the tests is shared): the OSD aims at
# 1 GiB with a 128 MiB bluestore cache, the monitor at 256 MiB.
set -euo pipefail
[ -n "${CEPH_TEST_CLUSTER_TRACE:-}" ] && { exec 2>>"$CEPH_TEST_CLUSTER_TRACE"; set -x; }

usage() {
    sed -n '2,15p' "$0" >&2
    exit 2
}

# Kill the processes whose PIDs are recorded in DIR, the watcher first.
stop_in() {
    local dir=$1 name pid
    for name in watch osd mon; do
        if [ -f "$dir/$name.pid" ]; then
            pid=$(cat "$dir/$name.pid")
            [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
            rm -f "$dir/$name.pid"
        fi
    done
}

cmd=${1:-}
case $cmd in
start)
    [ $# -ge 3 ] || usage
    dir=$2 port=$3 watch=${4:-}
    for tool in ceph-mon ceph-osd ceph monmaptool rbd; do
        command -v "$tool" >/dev/null || {
            echo "ceph-test-cluster: $tool is missing; run scripts/install-test-deps.sh (packages ceph-mon, ceph-osd, ceph-common)" >&2
            exit 1
        }
    done
    stop_in "$dir"
    rm -rf "$dir"
    mkdir -p "$dir/mon" "$dir/osd" "$dir/run"
    conf=$dir/ceph.conf
    fsid=$(cat /proc/sys/kernel/random/uuid)
    cat >"$conf" <<EOF
[global]
fsid = $fsid
mon_host = v1:127.0.0.1:$port
public_addr = 127.0.0.1
ms_bind_ipv4 = true
ms_bind_ipv6 = false
auth_cluster_required = none
auth_service_required = none
auth_client_required = none
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_num = 8
mon_allow_pool_size_one = true
mon_warn_on_pool_no_redundancy = false
osd_crush_chooseleaf_type = 0
run_dir = $dir/run
admin_socket = $dir/run/\$name.asok
log_file = $dir/\$name.log
pid_file = $dir/\$name.daemon.pid
# The clients (tests, the daemons under test) must not wait minutes for a cluster
# that is gone.
client_mount_timeout = 20
rados_mon_op_timeout = 20
[mon]
mon_data = $dir/mon
# The monitor refuses to start on a file system under 5% free by default; a test
# machine's disk is often that full, and this monitor stores a few MiB.
mon_data_avail_crit = 1
mon_data_avail_warn = 2
mon_memory_target = 268435456
[osd]
osd_data = $dir/osd
osd_objectstore = bluestore
bluestore_block_path = $dir/osd.block
bluestore_block_create = true
bluestore_block_size = ${CEPH_TEST_OSD_BYTES:-4294967296}
bluestore_fsck_on_mkfs = false
osd_memory_target = 1073741824
bluestore_cache_autotune = false
bluestore_cache_size = 134217728
osd_op_num_shards = 2
osd_op_num_threads_per_shard = 1
EOF
    monmaptool --create --fsid "$fsid" --addv a "[v1:127.0.0.1:$port]" "$dir/monmap" >/dev/null
    ceph-mon -c "$conf" -i a --mkfs --monmap "$dir/monmap" >"$dir/mon-mkfs.log" 2>&1 || {
        cat "$dir/mon-mkfs.log" >&2
        exit 1
    }
    ceph-mon -c "$conf" -i a >"$dir/mon-start.log" 2>&1 || {
        cat "$dir/mon-start.log" >&2
        exit 1
    }
    # The daemon forks; its PID file appears once it runs.
    for _ in $(seq 50); do [ -s "$dir/mon.a.daemon.pid" ] && break; sleep 0.1; done
    cp "$dir/mon.a.daemon.pid" "$dir/mon.pid"
    if [ -n "$watch" ]; then
        # Detached from our own process group and standard streams, so that it
        # outlives this script and keeps no pipe of the caller open.
        setsid bash -c '
            while kill -0 "$1" 2>/dev/null; do sleep 1; done
            for f in "$2/osd.pid" "$2/mon.pid"; do
                [ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null
            done
        ' ceph-test-cluster-watch "$watch" "$dir" </dev/null >/dev/null 2>&1 &
        echo $! >"$dir/watch.pid"
    fi
    c() { timeout 60 ceph -c "$conf" "$@"; }
    # A command a young cluster may refuse for a moment (EPERM, EAGAIN while maps
    # settle): tried up to five times, and on the last failure its error is shown
    # (under `set -e` a silenced failure ended the script with no word of why).
    settle() {
        local err=$dir/settle.err
        for _ in 1 2 3 4 5; do
            if c "$@" >/dev/null 2>"$err"; then return 0; fi
            sleep 1
        done
        echo "ceph-test-cluster: 'ceph $*' failed:" >&2
        cat "$err" >&2
        exit 1
    }
    # A monitor that has just forked can answer its first commands with EPERM
    # ("problem getting command descriptions from mon.") until it has formed its
    # one-member quorum: wait until it answers before giving it work.
    ready=""
    for _ in $(seq 60); do
        if c mon stat >/dev/null 2>&1; then ready=1; break; fi
        sleep 0.5
    done
    [ -n "$ready" ] || {
        echo "ceph-test-cluster: the monitor did not answer within 30 s" >&2
        tail -5 "$dir/mon.a.log" >&2 2>/dev/null
        exit 1
    }
    osd_uuid=$(cat /proc/sys/kernel/random/uuid)
    created=""
    for _ in 1 2 3 4 5; do
        if c osd create "$osd_uuid" 0 >/dev/null 2>"$dir/osd-create.err"; then created=1; break; fi
        sleep 1
    done
    [ -n "$created" ] || {
        cat "$dir/osd-create.err" >&2
        exit 1
    }
    ceph-osd -c "$conf" -i 0 --mkfs --osd-uuid "$osd_uuid" >"$dir/osd-mkfs.log" 2>&1 || {
        tail -5 "$dir/osd-mkfs.log" >&2
        exit 1
    }
    settle osd crush add-bucket node0 host
    settle osd crush move node0 root=default
    settle osd crush add osd.0 1.0 host=node0
    # A fresh monitor sometimes answers the OSD's first registration with EPERM
    # ("wrong fsid") while the map that created osd.0 settles; starting again works.
    started=""
    for attempt in 1 2 3 4 5; do
        if ceph-osd -c "$conf" -i 0 >"$dir/osd-start.log" 2>&1; then
            started=1
            break
        fi
        echo "ceph-test-cluster: OSD start attempt $attempt failed, retrying" >>"$dir/osd-retries.log"
        sleep 2
    done
    [ -n "$started" ] || {
        cat "$dir/osd-start.log" >&2
        exit 1
    }
    for _ in $(seq 50); do [ -s "$dir/osd.0.daemon.pid" ] && break; sleep 0.1; done
    cp "$dir/osd.0.daemon.pid" "$dir/osd.pid"
    up=""
    for _ in $(seq 120); do
        if c osd stat 2>/dev/null | grep -q '1 up'; then up=1; break; fi
        sleep 0.5
    done
    [ -n "$up" ] || {
        echo "ceph-test-cluster: the OSD did not come up; see $dir/osd.0.log" >&2
        exit 1
    }
    settle osd pool create rbd 8 8
    c osd pool set rbd size 1 --yes-i-really-mean-it >/dev/null 2>&1 || true
    timeout 60 rbd -c "$conf" pool init rbd
    echo "CEPH_CONF=$conf"
    ;;
stop)
    [ $# -ge 2 ] || usage
    stop_in "$2"
    ;;
*)
    usage
    ;;
esac
