#!/usr/bin/env bash
# A real S3 server on 127.0.0.1 for tests: a single-node Ceph cluster (one
# monitor, one OSD on the in-memory object store, one RADOS Gateway), all
# state under DIR, no systemd. It checks signatures and honours
# If-None-Match: * (412), which the fencing tests need.
#   scripts/local-s3.sh start DIR   start, create user + bucket, write DIR/env
#   scripts/local-s3.sh stop DIR    stop every daemon started from DIR
# Environment: HYPERFILE_S3_PORT (default 7480), HYPERFILE_MON_PORT (6789),
#              HYPERFILE_S3_MEMORY_BYTES (memstore size, default 6 GiB).
set -euo pipefail
cmd=${1:?usage: local-s3.sh start|stop DIR}
D=${2:?usage: local-s3.sh start|stop DIR}
D=$(realpath -m "$D")
PORT=${HYPERFILE_S3_PORT:-7480}
MON_PORT=${HYPERFILE_MON_PORT:-6789}
MEM=${HYPERFILE_S3_MEMORY_BYTES:-6442450944}
ACCESS=hyperfiletestaccess
SECRET=hyperfiletestsecretkey0123456789
BUCKET=hyperfile-test

stop() {
  for pidfile in "$D"/run/*.pid; do
    [ -f "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$pidfile"
  done
}

fail() {
  echo "local-s3: $*" >&2
  for log in "$D"/log/*.log; do [ -f "$log" ] && { echo "--- $log" >&2; tail -n 15 "$log" >&2; }; done
  stop
  exit 1
}

if [ "$cmd" = stop ]; then stop; exit 0; fi
[ "$cmd" = start ] || { echo "usage: local-s3.sh start|stop DIR" >&2; exit 2; }

if (exec 3<>/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null; then
  echo "local-s3: port $PORT is taken (set HYPERFILE_S3_PORT)" >&2; exit 1
fi
t0=$(date +%s)
mkdir -p "$D"/{run,log,mon.a,osd.0}
FSID=$(cat /proc/sys/kernel/random/uuid)
cat > "$D/ceph.conf" <<CONF
[global]
fsid = $FSID
mon host = v1:127.0.0.1:$MON_PORT
auth cluster required = none
auth service required = none
auth client required = none
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
osd objectstore = memstore
memstore device bytes = $MEM
run dir = $D/run
log file = $D/log/\$name.log
pid file = $D/run/\$name.pid
admin socket = $D/run/\$name.asok
keyring = $D/keyring
mon data avail warn = 1
mon data avail crit = 0
[osd]
osd crush update on start = false
osd class update on start = false
osd data = $D/osd.\$id
[mon.a]
mon data = $D/mon.a
public addr = 127.0.0.1:$MON_PORT
[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$PORT
rgw dns name = localhost
CONF
C="-c $D/ceph.conf"
ceph-authtool --create-keyring "$D/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
ceph-authtool "$D/keyring" --gen-key -n client.admin --cap mon 'allow *' --cap osd 'allow *' \
  --cap mds 'allow *' --cap mgr 'allow *' >/dev/null
monmaptool --create --add a 127.0.0.1:"$MON_PORT" --fsid "$FSID" "$D/monmap" >/dev/null
ceph-mon $C --mkfs -i a --monmap "$D/monmap" --keyring "$D/keyring" >/dev/null 2>&1 || fail "mon mkfs failed"
ceph-mon $C -i a || fail "mon did not start"
UUID=$(cat /proc/sys/kernel/random/uuid)
timeout 30 ceph $C osd create "$UUID" >/dev/null || fail "osd create failed"
ceph-osd $C -i 0 --mkfs --osd-uuid "$UUID" >/dev/null 2>&1 || fail "osd mkfs failed"
ceph-osd $C -i 0 || fail "osd did not start"
timeout 30 ceph $C osd crush add osd.0 1.0 root=default >/dev/null 2>&1 || fail "crush add failed"
radosgw $C -n client.rgw.a || fail "radosgw did not start"
for i in $(seq 120); do
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/" || true)
  [ "$code" = 200 ] && break
  sleep 0.5
  [ "$i" = 120 ] && fail "gateway did not answer on port $PORT"
done
timeout 60 radosgw-admin $C user create --uid=hyperfile --display-name=hyperfile \
  --access-key="$ACCESS" --secret-key="$SECRET" >/dev/null 2>&1 || fail "user create failed"
sig=(--aws-sigv4 "aws:amz:us-east-1:s3" --user "$ACCESS:$SECRET" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD")
for i in $(seq 20); do
  code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT "${sig[@]}" "http://127.0.0.1:$PORT/$BUCKET" || true)
  [ "$code" = 200 ] && break
  sleep 0.5
  [ "$i" = 20 ] && fail "bucket create answered $code"
done
# Fencing needs create-only puts: the second must answer 412.
first=$(curl -s -o /dev/null -w '%{http_code}' -X PUT "${sig[@]}" -H 'If-None-Match: *' --data-binary x "http://127.0.0.1:$PORT/$BUCKET/probe")
second=$(curl -s -o /dev/null -w '%{http_code}' -X PUT "${sig[@]}" -H 'If-None-Match: *' --data-binary x "http://127.0.0.1:$PORT/$BUCKET/probe")
[ "$first" = 200 ] && [ "$second" = 412 ] || fail "If-None-Match check failed ($first, $second)"
curl -s -o /dev/null -X DELETE "${sig[@]}" "http://127.0.0.1:$PORT/$BUCKET/probe" || true
cat > "$D/env" <<ENV
export AWS_ENDPOINT_URL=http://127.0.0.1:$PORT
export AWS_ACCESS_KEY_ID=$ACCESS
export AWS_SECRET_ACCESS_KEY=$SECRET
export AWS_REGION=us-east-1
export HYPERFILE_TEST_S3_URI=s3://$BUCKET
ENV
echo "local-s3: up in $(( $(date +%s) - t0 ))s at http://127.0.0.1:$PORT (bucket $BUCKET)"
cat "$D/env"
