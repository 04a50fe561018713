#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A real S3 server on 127.0.0.1 for tests and benchmarks: a single-node Ceph
# cluster (one monitor, one OSD on the in-memory object store, one RADOS
# Gateway) from Debian's packages, all state under DIR, no systemd. Unlike a
# mock it checks SigV4 signatures and answers a create-only PUT
# (If-None-Match: *) of an existing key with 412, which the fencing tests need.
# See docs/design/0001-local-s3-server.md.
#
#   scripts/local-s3.sh start DIR   start from nothing, create a user and the
#                                   bucket, check a conditional PUT, write and
#                                   print DIR/env (source it)
#   scripts/local-s3.sh stop DIR    stop every daemon started from DIR (by the
#                                   pids in DIR/run/*.pid); safe to repeat
#   scripts/local-s3.sh env DIR     print DIR/env if the server is running
#
# Environment (all optional):
#   HYPERFILE_S3_PORT          gateway port (default: first free of 7480-7499, 17480-17499)
#   HYPERFILE_MON_PORT         monitor port (default: first free of 6789-6799, 16789-16799)
#   HYPERFILE_S3_MEMORY_BYTES  memstore size, i.e. the most data the server holds
#                              (in RAM) (default 6 GiB)
#   HYPERFILE_S3_BUCKET        bucket to create (default hyperfile-test)
#   HYPERFILE_S3_TIMEOUT       seconds to wait for each step (default 90)
# Two instances (different DIRs) can run side by side: ports are picked
# under a lock, the OSD binds free ports in 6800-7300 by itself.
set -euo pipefail

usage() { echo "usage: local-s3.sh start|stop|env DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
cmd=$1
D=$(realpath -m "$2")
[ "$D" != / ] || { echo "local-s3: refusing DIR=/" >&2; exit 2; }
MEM=${HYPERFILE_S3_MEMORY_BYTES:-$((6 << 30))}
BUCKET=${HYPERFILE_S3_BUCKET:-hyperfile-test}
TIMEOUT=${HYPERFILE_S3_TIMEOUT:-90}
ACCESS=hyperfiletestaccess
SECRET=hyperfiletestsecretkey0123456789
# Stop order: gateway, OSD, monitor.
DAEMONS=(client.rgw.a osd.0 mon.a)

log() { echo "local-s3: $*" >&2; }

# Pid of a live daemon started from DIR, or nothing. The pid is trusted only
# if that process still runs with DIR's ceph.conf, so a recycled pid is never
# touched. Zombies count as exited.
daemon_pid() {
  local f="$D/run/$1.pid" pid state
  [ -f "$f" ] || return 0
  pid=$(cat "$f" 2>/dev/null) || return 0
  [[ "$pid" =~ ^[0-9]+$ ]] || return 0
  state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 0
  [ "$state" != Z ] || return 0
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$D/ceph.conf" || return 0
  echo "$pid"
}

stop_daemons() {
  local name pid sig i
  for name in "${DAEMONS[@]}"; do
    pid=$(daemon_pid "$name")
    if [ -n "$pid" ]; then
      # The OSD's memstore would dump all its data to disk on a clean
      # shutdown; the data is thrown away anyway, so it gets SIGKILL.
      sig=TERM
      [ "$name" = osd.0 ] && sig=KILL
      kill -s "$sig" "$pid" 2>/dev/null || true
      for ((i = 0; i < 100; i++)); do
        [ -n "$(daemon_pid "$name")" ] || break
        sleep 0.1
      done
      if [ -n "$(daemon_pid "$name")" ]; then
        log "$name (pid $pid) ignored SIGTERM for 10s; sending SIGKILL"
        kill -s KILL "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
          [ -n "$(daemon_pid "$name")" ] || break
          sleep 0.1
        done
        [ -z "$(daemon_pid "$name")" ] || log "$name (pid $pid) is still running"
      fi
    fi
    rm -f "$D/run/$name.pid"
  done
  rm -f "$D/env"
  # memstore state of a clean shutdown, if any: can be large.
  rm -rf "$D/osd.0"
}

# On failure: the tail of this script's own log, then of each daemon's.
fail() {
  local log_file
  log "FAILED: $*"
  for log_file in "$D/log/start.log" "$D"/log/*.*.log; do
    [ -s "$log_file" ] || continue
    echo "----- tail of $log_file" >&2
    tail -n 20 "$log_file" >&2
  done
  echo "----- (full logs in $D/log)" >&2
  stop_daemons
  exit 1
}

port_busy() { timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

# First free port of the candidates, or the one the user asked for.
pick_port() {
  local wanted=$1 what=$2 p
  shift 2
  if [ -n "$wanted" ]; then
    port_busy "$wanted" && fail "$what port $wanted (set by the environment) is taken"
    echo "$wanted"
    return
  fi
  for p in "$@"; do
    port_busy "$p" || { echo "$p"; return; }
  done
  fail "no free $what port among $*"
}

since() { echo "$(($(date +%s%N) / 1000000 - t0_ms))ms"; }
phase() { echo "[$(since)] $*" >>"$D/log/start.log"; }

# Run a command with a timeout, its output to start.log.
run() {
  local what=$1
  shift
  phase "$what: $*"
  timeout "$TIMEOUT" "$@" >>"$D/log/start.log" 2>&1 9>&- || fail "$what (exit $?; command: $*)"
}

running() { [ -n "$(daemon_pid client.rgw.a)" ]; }

case "$cmd" in
stop)
  [ -d "$D" ] || exit 0
  stop_daemons
  exit 0
  ;;
env)
  running && [ -f "$D/env" ] || { log "no server running from $D"; exit 1; }
  cat "$D/env"
  exit 0
  ;;
start) ;;
*) usage ;;
esac

for tool in ceph-mon ceph-osd radosgw radosgw-admin ceph ceph-authtool monmaptool curl flock; do
  command -v "$tool" >/dev/null || { log "$tool is missing (run scripts/setup.sh)"; exit 1; }
done
mkdir -p "$D"
for name in "${DAEMONS[@]}"; do
  [ -z "$(daemon_pid "$name")" ] || { log "$name from $D is already running; run: $0 stop $D"; exit 1; }
done
t0_ms=$(($(date +%s%N) / 1000000))
rm -rf "$D"/{mon.a,osd.0,run,log,env,ceph.conf,keyring,monmap}
mkdir -p "$D"/{run,log,mon.a,osd.0}
: >"$D/log/start.log"

# Choosing ports and binding them is one critical section across instances.
exec 9>/tmp/hyperfile-local-s3.lock
flock -w "$TIMEOUT" 9 || fail "could not take /tmp/hyperfile-local-s3.lock"
PORT=$(pick_port "${HYPERFILE_S3_PORT:-}" gateway $(seq 7480 7499) $(seq 17480 17499))
MON_PORT=$(pick_port "${HYPERFILE_MON_PORT:-}" monitor $(seq 6789 6799) $(seq 16789 16799))
phase "ports: gateway $PORT, monitor $MON_PORT"

FSID=$(cat /proc/sys/kernel/random/uuid)
cat >"$D/ceph.conf" <<CONF
[global]
fsid = $FSID
mon host = v1:127.0.0.1:$MON_PORT
auth cluster required = none
auth service required = none
auth client required = none
ms bind msgr2 = false
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon data avail warn = 1
mon data avail crit = 0
paxos propose interval = 0.1
osd objectstore = memstore
memstore device bytes = $MEM
run dir = $D/run
log file = $D/log/\$name.log
pid file = $D/run/\$name.pid
admin socket = $D/run/\$name.asok
keyring = $D/keyring
[osd]
osd crush update on start = false
osd class update on start = false
osd data = $D/osd.\$id
public addr = 127.0.0.1
cluster addr = 127.0.0.1
[mon.a]
mon data = $D/mon.a
public addr = v1:127.0.0.1:$MON_PORT
[client.rgw.a]
# tcp_nodelay: without it every small response waits ~40 ms (Nagle on the
# gateway's separate header and body writes meets the client's delayed ACK);
# a real S3 endpoint does not behave like that.
rgw frontends = beast endpoint=127.0.0.1:$PORT tcp_nodelay=1
rgw dns name = localhost
# Deleted objects' data is freed by the gateway's garbage collector, by
# default after 2 hours: far too late for a memstore that benchmarks fill.
rgw gc obj min wait = 30
rgw gc processor period = 30
CONF
C=(-c "$D/ceph.conf")

run "mon keyring" ceph-authtool --create-keyring "$D/keyring" --gen-key -n mon. --cap mon 'allow *'
run "admin key" ceph-authtool "$D/keyring" --gen-key -n client.admin --cap mon 'allow *' \
  --cap osd 'allow *' --cap mds 'allow *' --cap mgr 'allow *'
# --addv: plain --add makes any port but 6789 a msgr2 address.
run "monmap" monmaptool --create --addv a "[v1:127.0.0.1:$MON_PORT]" --fsid "$FSID" "$D/monmap"
run "mon mkfs" ceph-mon "${C[@]}" --mkfs -i a --monmap "$D/monmap" --keyring "$D/keyring"
run "mon start" ceph-mon "${C[@]}" -i a
UUID=$(cat /proc/sys/kernel/random/uuid)
run "osd create" ceph "${C[@]}" osd create "$UUID"
run "osd mkfs" ceph-osd "${C[@]}" -i 0 --mkfs --osd-uuid "$UUID"
run "osd start" ceph-osd "${C[@]}" -i 0
run "crush add" ceph "${C[@]}" osd crush add osd.0 1.0 root=default
run "gateway start" radosgw "${C[@]}" -n client.rgw.a

base="http://127.0.0.1:$PORT"
deadline=$((SECONDS + TIMEOUT))
until [ "$(curl -s -o /dev/null -w '%{http_code}' "$base/" 2>/dev/null)" = 200 ]; do
  [ -n "$(daemon_pid client.rgw.a)" ] || fail "the gateway exited (see client.rgw.a.log)"
  [ "$SECONDS" -lt "$deadline" ] || fail "the gateway did not answer on $base within ${TIMEOUT}s"
  sleep 0.2
done
# The port must be ours: another server there would answer as well.
if command -v ss >/dev/null; then
  ss -Htlnp "( sport = :$PORT )" | grep -q "pid=$(daemon_pid client.rgw.a)," ||
    fail "port $PORT answers, but not from our gateway: $(ss -Htlnp "( sport = :$PORT )")"
fi
flock -u 9
phase "gateway answers on $base"

run "user create" radosgw-admin "${C[@]}" user create --uid=hyperfile --display-name=hyperfile \
  --access-key="$ACCESS" --secret-key="$SECRET"

# Signed requests, as hyperfile sends them (curl signs SigV4 itself).
s3() {
  curl -s -o "$D/log/last-response" -w '%{http_code}' --aws-sigv4 "aws:amz:us-east-1:s3" \
    --user "$ACCESS:$SECRET" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$@" 2>>"$D/log/start.log" || true
}
code=$(s3 -X PUT "$base/$BUCKET")
[ "$code" = 200 ] || fail "bucket create answered $code: $(cat "$D/log/last-response")"
phase "bucket $BUCKET created"
# Fencing needs create-only puts: the first must answer 200, the second 412.
probe="$base/$BUCKET/local-s3-probe-$$"
first=$(s3 -X PUT -H 'If-None-Match: *' --data-binary first "$probe")
second=$(s3 -X PUT -H 'If-None-Match: *' --data-binary second "$probe")
[ "$first" = 200 ] && [ "$second" = 412 ] ||
  fail "conditional PUT answered $first then $second (want 200 then 412)"
# ... and signatures must be checked.
wrong=$(curl -s -o /dev/null -w '%{http_code}' --aws-sigv4 "aws:amz:us-east-1:s3" \
  --user "$ACCESS:wrong-secret" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$probe" || true)
[ "$wrong" = 403 ] || fail "a GET signed with a wrong secret answered $wrong (want 403)"
code=$(s3 -X DELETE "$probe")
[ "$code" = 204 ] || fail "probe delete answered $code"
phase "conditional PUT 200/412, wrong secret 403"

cat >"$D/env.tmp" <<ENV
export AWS_ENDPOINT_URL=$base
export AWS_ACCESS_KEY_ID=$ACCESS
export AWS_SECRET_ACCESS_KEY=$SECRET
export AWS_REGION=us-east-1
export HYPERFILE_TEST_S3_URI=s3://$BUCKET
ENV
mv "$D/env.tmp" "$D/env"
log "up in $(since) at $base (bucket $BUCKET, ${MEM} bytes of memstore, monitor port $MON_PORT, logs in $D/log); source $D/env"
cat "$D/env"
