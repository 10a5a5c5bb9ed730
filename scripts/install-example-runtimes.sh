#!/usr/bin/env bash
# Installs the runtimes the example workers' tests need beyond node and python3: php-cli, jq, golang-go
# (Debian packages), protoc and PHP's protobuf runtime for the RPC producer test, plus docker-compose for
# the compose-file check. Idempotent and quick when all are there.
# CI calls it before the tests; on a machine without apt it says what is missing and leaves the tests to skip.
set -euo pipefail
want=()
command -v php >/dev/null || want+=(php-cli)
command -v jq >/dev/null || want+=(jq)
command -v go >/dev/null || want+=(golang-go)
command -v protoc >/dev/null || want+=(protobuf-compiler)
[[ -f /usr/share/php/Google/Protobuf/Internal/Message.php ]] || want+=(php-google-protobuf)
command -v docker-compose >/dev/null || want+=(docker-compose)
if [[ ${#want[@]} -eq 0 ]]; then
  echo "install-example-runtimes: php, jq, go, protoc, php-google-protobuf and docker-compose are present"
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "install-example-runtimes: no apt-get here; install ${want[*]} by hand (their tests skip meanwhile)" >&2
  exit 0
fi
sudo=()
[[ $(id -u) -eq 0 ]] || sudo=(sudo)
export DEBIAN_FRONTEND=noninteractive
# apt-get update only when the package lists are missing or a first install attempt fails on them
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null 2>&1 || {
  "${sudo[@]}" apt-get update -qq >/dev/null
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null
}
echo "install-example-runtimes: installed ${want[*]}"
