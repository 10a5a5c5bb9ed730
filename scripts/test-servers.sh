#!/usr/bin/env bash
# Starts the servers the integration tests use, on loopback only, on a Debian (or Ubuntu) machine:
#   RabbitMQ 3.x (the distribution's package)   amqp://guest:guest@127.0.0.1:5672   AMQP 0-9-1 + the AMQP 1.0 plugin
#   RabbitMQ 4.x (Debian 13 in a chroot)        amqp://guest:guest@127.0.0.1:5673   AMQP 0-9-1 + native AMQP 1.0
#   NATS with JetStream (the distribution's)    nats://127.0.0.1:4222
# SQS needs nothing: its tests run an in-process emulator.
# Needs root. Idempotent: a server that already listens is left alone. Progress goes to stderr; the
# environment for the tests is printed last, so
#     eval "$(sudo scripts/test-servers.sh)"
# exports AMQP091_URLS, AMQP1_URLS and NATS_URLS. `scripts/test-servers.sh stop` stops what it started.
#   SERVERS=rabbitmq3,nats   start only these (default: rabbitmq3,rabbitmq4,nats)
#   JOBRUNNER_TEST_SERVERS_ROOT   where the chroot and data live (default /var/cache/jobrunner-test-servers)
# With Docker instead: docker compose -f test/servers.compose.yaml up -d (the same ports and URLs).
set -euo pipefail
log() { echo "test-servers: $*" >&2; }
want=${SERVERS:-rabbitmq3,rabbitmq4,nats}
root=${JOBRUNNER_TEST_SERVERS_ROOT:-/var/cache/jobrunner-test-servers}
chroot_dir=$root/trixie

if [[ $(id -u) -ne 0 ]]; then log "needs root (it installs packages and starts servers): run it with sudo"; exit 1; fi
mkdir -p "$root"

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() { for _ in $(seq 1 120); do port_open "$1" && return 0; sleep 1; done; log "port $1 did not open"; return 1; }
apt_install() {
  if [[ ! -f $root/.apt-updated ]]; then DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null && touch "$root/.apt-updated"; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
# RabbitMQ 4 in the chroot: its own node name, Erlang distribution port and epmd, all on loopback
r4() { chroot "$chroot_dir" /usr/bin/env HOME=/var/lib/rabbitmq RABBITMQ_NODENAME=rabbit4@localhost \
  RABBITMQ_DIST_PORT=25673 ERL_EPMD_PORT=4370 ERL_EPMD_ADDRESS=127.0.0.1 \
  RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS='-kernel inet_dist_use_interface {127,0,0,1}' "$@"; }

start_rabbitmq3() {
  if port_open 5672; then
    # already running (the package's service starts it, or a container): make sure AMQP 1.0 is on
    if command -v rabbitmq-plugins >/dev/null; then
      rabbitmq-plugins list -e 2>/dev/null | grep -q rabbitmq_amqp1_0 || rabbitmq-plugins enable rabbitmq_amqp1_0 >/dev/null
    fi
    return 0
  fi
  command -v rabbitmq-server >/dev/null || { log "installing rabbitmq-server"; apt_install rabbitmq-server; }
  rabbitmq-plugins enable --offline rabbitmq_amqp1_0 >/dev/null
  log "starting RabbitMQ 3 on 127.0.0.1:5672"
  rabbitmq-server -detached
  wait_port 5672
  rabbitmqctl await_startup --timeout 120 >/dev/null 2>&1 || true
}

start_rabbitmq4() {
  if port_open 5673 && [[ ! -x $chroot_dir/usr/sbin/rabbitmq-server ]]; then return 0; fi   # a container, or another root
  if [[ ! -x $chroot_dir/usr/sbin/rabbitmq-server ]]; then
    command -v debootstrap >/dev/null || { log "installing debootstrap"; apt_install debootstrap; }
    log "building a Debian 13 chroot with RabbitMQ 4 (a minute or two, once per machine)"
    rm -rf "$chroot_dir.tmp"
    debootstrap --variant=minbase --include=rabbitmq-server trixie "$chroot_dir.tmp" http://deb.debian.org/debian >"$root/debootstrap.log" 2>&1 \
      || { log "debootstrap failed, see $root/debootstrap.log"; exit 1; }
    mv "$chroot_dir.tmp" "$chroot_dir"
    printf 'listeners.tcp.default = 127.0.0.1:5673\nloopback_users = none\nmanagement.tcp.ip = 127.0.0.1\nmanagement.tcp.port = 15673\n' \
      >"$chroot_dir/etc/rabbitmq/rabbitmq.conf"
    r4 rabbitmq-plugins enable --offline rabbitmq_management >/dev/null
  fi
  mountpoint -q "$chroot_dir/proc" || mount -t proc proc "$chroot_dir/proc"
  mountpoint -q "$chroot_dir/dev" || mount --bind /dev "$chroot_dir/dev"
  if ! port_open 5673; then
    log "starting RabbitMQ 4 on 127.0.0.1:5673"
    r4 rabbitmq-server -detached
    wait_port 5673
  fi
  r4 rabbitmqctl await_startup --timeout 120 >/dev/null 2>&1 || true
}

start_nats() {
  port_open 4222 && return 0   # running already (here, or a container): leave it alone
  command -v nats-server >/dev/null || { log "installing nats-server"; apt_install nats-server; }
  if ! port_open 4222; then
    log "starting NATS with JetStream on 127.0.0.1:4222"
    mkdir -p "$root/nats"
    start-stop-daemon --start --oknodo --background --make-pidfile --pidfile "$root/nats.pid" --exec "$(command -v nats-server)" -- \
      -a 127.0.0.1 -p 4222 -js -sd "$root/nats" -l "$root/nats.log"
    wait_port 4222
  fi
}

if [[ ${1:-} == stop ]]; then
  [[ ,$want, == *,rabbitmq4,* && -x $chroot_dir/usr/sbin/rabbitmqctl ]] && { r4 rabbitmqctl stop >/dev/null 2>&1 || true; }
  [[ ,$want, == *,rabbitmq3,* ]] && { rabbitmqctl stop >/dev/null 2>&1 || true; }
  [[ ,$want, == *,nats,* && -f $root/nats.pid ]] && { start-stop-daemon --stop --oknodo --pidfile "$root/nats.pid" >/dev/null || true; }
  log "stopped"
  exit 0
fi

amqp=() nats=()
if [[ ,$want, == *,rabbitmq3,* ]]; then start_rabbitmq3; amqp+=(amqp://guest:guest@127.0.0.1:5672); fi
if [[ ,$want, == *,rabbitmq4,* ]]; then start_rabbitmq4; amqp+=(amqp://guest:guest@127.0.0.1:5673); fi
if [[ ,$want, == *,nats,* ]]; then start_nats; nats+=(nats://127.0.0.1:4222); fi
log "ready"
echo "export AMQP091_URLS='${amqp[*]}'"
echo "export AMQP1_URLS='${amqp[*]}'"
echo "export NATS_URLS='${nats[*]}'"
