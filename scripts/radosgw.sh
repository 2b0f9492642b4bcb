#!/usr/bin/env bash
# A throw-away single-node Ceph cluster with radosgw on loopback, for the S3 tests.
#
#   scripts/radosgw.sh start DIR   # prints the lines of DIR/s3.env when ready
#   scripts/radosgw.sh stop DIR    # stops every daemon and removes DIR
#   scripts/radosgw.sh gateway-kill DIR    # kill -9 radosgw alone (the objects stay in the OSD)
#   scripts/radosgw.sh gateway-start DIR   # starts it again on its port, returns when it answers
#
# One monitor and one OSD on 127.0.0.1 with memstore (objects live in the OSD's memory:
# fast to start, gone on stop), cluster auth off (radosgw still checks every S3
# signature), pool size 1, and radosgw's beast frontend on a free loopback port.
# DIR/s3.env holds S3_ENDPOINT, S3_REGION, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.
set -euo pipefail

command_name=${1:-}
dir=${2:-}
if [[ -z "$command_name" || -z "$dir" ]]; then
    echo "usage: $0 start|stop DIR" >&2
    exit 64
fi

free_port() {
    /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
    local seconds=$1 what=$2
    shift 2
    local deadline=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            echo "radosgw.sh: timed out waiting for $what (logs in $dir/log)" >&2
            tail -n 20 "$dir"/log/*.log >&2 || true
            return 1
        fi
        sleep 0.1
    done
}

stop() {
    for pidfile in "$dir"/run/*.pid; do
        [[ -e "$pidfile" ]] || continue
        kill "$(cat "$pidfile")" 2>/dev/null || true
    done
    for pidfile in "$dir"/run/*.pid; do
        [[ -e "$pidfile" ]] || continue
        local pid
        pid=$(cat "$pidfile")
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    done
    rm -rf "$dir"
}

start() {
    if ! command -v radosgw >/dev/null || ! command -v ceph-mon >/dev/null || ! command -v ceph-osd >/dev/null; then
        echo "radosgw.sh: ceph-mon, ceph-osd and radosgw are missing (scripts/install-deps.sh --test installs them)" >&2
        exit 69
    fi
    mkdir -p "$dir"/{mon,osd,run,log}
    dir=$(cd "$dir" && pwd)
    local mon_port rgw_port fsid conf
    mon_port=$(free_port)
    rgw_port=$(free_port)
    fsid=$(cat /proc/sys/kernel/random/uuid)
    conf="$dir/ceph.conf"
    cat >"$conf" <<EOF
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$mon_port
mon initial members = a
public addr = 127.0.0.1
ms bind msgr1 = false
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc
paxos propose interval = 0.05
osd objectstore = memstore
memstore device bytes = 8589934592
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd crush chooseleaf type = 0
mon allow pool size one = true
mon warn on pool no redundancy = false
run dir = $dir/run
pid file = $dir/run/\$name.pid
admin socket = $dir/run/\$name.asok
log file = $dir/log/\$name.log
mon data = $dir/mon
osd data = $dir/osd
rgw data = $dir/rgw
rgw frontends = beast endpoint=127.0.0.1:$rgw_port
rgw dns name = 127.0.0.1
# Space of deleted and replaced objects is given back within seconds, not two hours
# (radosgw's defaults): the OSD keeps everything in its 8 GiB of memory, and a chunked
# 1 GiB upload replaces its object once per chunk.
rgw gc obj min wait = 0
rgw gc processor period = 5
rgw gc processor max time = 5
EOF
    monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$mon_port]" "$dir/monmap" >/dev/null
    ceph-mon -c "$conf" --mkfs -i a --monmap "$dir/monmap" >"$dir/log/mkfs-mon.log" 2>&1
    ceph-mon -c "$conf" -i a 2>>"$dir/log/daemons.log"
    wait_for 30 "the monitor" ceph -c "$conf" --connect-timeout 2 mon stat

    local osd_uuid
    osd_uuid=$(cat /proc/sys/kernel/random/uuid)
    ceph -c "$conf" osd new "$osd_uuid" >/dev/null
    ceph-osd -c "$conf" -i 0 --mkfs --osd-uuid "$osd_uuid" >"$dir/log/mkfs-osd.log" 2>&1
    ceph-osd -c "$conf" -i 0 2>>"$dir/log/daemons.log"
    wait_for 30 "the OSD" bash -c "ceph -c '$conf' osd stat | grep -q '1 up'"

    radosgw -c "$conf" -n client.rgw 2>>"$dir/log/daemons.log"
    local access_key secret_key
    access_key=$(od -An -tx1 -N10 /dev/urandom | tr -d ' \n' | tr 'a-f' 'A-F')
    secret_key=$(od -An -tx1 -N20 /dev/urandom | tr -d ' \n')
    wait_for 60 "radosgw" curl -sf "http://127.0.0.1:$rgw_port/"
    radosgw-admin -c "$conf" user create --uid registryd-test --display-name "registryd tests" \
        --access-key "$access_key" --secret-key "$secret_key" >/dev/null
    cat >"$dir/s3.env" <<EOF
S3_ENDPOINT=http://127.0.0.1:$rgw_port
S3_REGION=us-east-1
AWS_ACCESS_KEY_ID=$access_key
AWS_SECRET_ACCESS_KEY=$secret_key
EOF
    cat "$dir/s3.env"
}

# The gateway alone, for tests of an object store that goes away and comes back.
gateway_kill() {
    local pid
    pid=$(cat "$dir/run/client.rgw.pid")
    kill -9 "$pid" 2>/dev/null || true
    wait_for 10 "radosgw to exit" bash -c "! kill -0 $pid"
}

gateway_start() {
    local endpoint
    endpoint=$(sed -n 's/^S3_ENDPOINT=//p' "$dir/s3.env")
    # The gateway outlives this script: it must not keep the caller's descriptors open
    # (a caller that waits for their end, as Foundation's Process does, would wait for it).
    local fd
    for fd in /proc/$$/fd/*; do
        fd=${fd##*/}
        if ((fd > 2)); then eval "exec $fd>&-"; fi
    done
    radosgw -c "$dir/ceph.conf" -n client.rgw </dev/null >/dev/null 2>>"$dir/log/daemons.log"
    wait_for 60 "radosgw" curl -sf "$endpoint/"
}

case "$command_name" in
start) start ;;
stop) stop ;;
gateway-kill) gateway_kill ;;
gateway-start) gateway_start ;;
*)
    echo "usage: $0 start|stop|gateway-kill|gateway-start DIR" >&2
    exit 64
    ;;
esac
