#!/usr/bin/env bash
# Fetches a nats-server of 2.12 or later (the first with message scheduling, ADR-51) from Debian's
# unstable (sid) or testing (forky) archive, for the nats tests that need native scheduling. The
# distribution's own nats-server (2.9 on Debian 12) stays the shared test server on :4222; this binary
# only runs private servers that the tests start and stop themselves.
#
# It reads the Packages index of each suite (its InRelease signature is checked with gpgv and the Debian
# archive keyring when both are installed, then the index's SHA256 against InRelease), takes the newest
# nats-server, downloads the .deb, checks its SHA256 against the index, and extracts the binary to
#     $JOBRUNNER_CACHE_DIR/nats-server-<version>/nats-server   (default ~/.cache/jobrunner, outside git)
# The path of the binary is printed last on stdout (progress goes to stderr), so
#     export NATS_SERVER_LATEST_BIN="$(scripts/fetch-nats-server.sh)"
# Idempotent: a cached binary of 2.12 or later is printed without touching the network;
# `--refresh` looks for a newer one in the archive all the same. No root needed.
#   DEBIAN_MIRROR   default https://deb.debian.org/debian
#   NATS_SUITES     default "sid forky"
set -euo pipefail
log() { echo "fetch-nats-server: $*" >&2; }
die() { log "$*"; exit 1; }

mirror=${DEBIAN_MIRROR:-https://deb.debian.org/debian}
suites=${NATS_SUITES:-sid forky}
cache=${JOBRUNNER_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/jobrunner}
min=2.12
refresh=false
case ${1:-} in
  --refresh) refresh=true ;;
  '') ;;
  *) die "unknown argument $1 (usage: $0 [--refresh])" ;;
esac

# x.y.z >= x.y.z, by `sort -V`
version_ge() { [[ $(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n1) == "$2" ]]; }

# the newest cached binary of $min or later, if any
cached() {
  local best='' v d
  for d in "$cache"/nats-server-*/; do
    [[ -x ${d}nats-server ]] || continue
    v=${d%/}; v=${v##*/nats-server-}
    version_ge "$v" "$min" || continue
    if [[ -z $best ]] || version_ge "$v" "${best##*/nats-server-}"; then best=${d%/}; fi
  done
  [[ -n $best ]] && echo "$best/nats-server"
}

if [[ $refresh == false ]] && have=$(cached); then
  log "cached: $have"
  echo "$have"
  exit 0
fi

for tool in curl xz sha256sum; do command -v "$tool" >/dev/null || die "needs $tool"; done
if command -v dpkg >/dev/null; then arch=$(dpkg --print-architecture); else
  case $(uname -m) in x86_64) arch=amd64 ;; aarch64) arch=arm64 ;; *) die "unknown architecture $(uname -m)" ;; esac
fi
mkdir -p "$cache"
work=$(mktemp -d "$cache/.fetch.XXXXXX")
trap 'rm -rf "$work"' EXIT
keyring=/usr/share/keyrings/debian-archive-keyring.gpg

# prints "<debian version> <pool path> <sha256>" of nats-server in one suite's verified index
from_suite() {
  local suite=$1 index=main/binary-$arch/Packages.xz want
  curl -fsSL --retry 3 -o "$work/$suite.Packages.xz" "$mirror/dists/$suite/$index" || { log "$suite: no index at $mirror/dists/$suite/$index"; return 1; }
  if command -v gpgv >/dev/null && [[ -r $keyring ]]; then
    curl -fsSL --retry 3 -o "$work/$suite.InRelease" "$mirror/dists/$suite/InRelease" || { log "$suite: no InRelease"; return 1; }
    gpgv --quiet --keyring "$keyring" --output "$work/$suite.Release" "$work/$suite.InRelease" 2>/dev/null \
      || die "$suite: InRelease does not carry a good signature of the Debian archive keyring"
    # the SHA256 section lists " <sha256> <size> <path>"
    want=$(awk -v p="$index" '/^SHA256:/{s=1; next} /^[^ ]/{s=0} s && $3 == p {print $1}' "$work/$suite.Release")
    [[ -n $want ]] || die "$suite: InRelease lists no SHA256 for $index"
    [[ $(sha256sum "$work/$suite.Packages.xz" | cut -d' ' -f1) == "$want" ]] || die "$suite: $index does not match the SHA256 in InRelease"
  else
    log "$suite: gpgv or $keyring missing: the index is trusted as HTTPS delivered it"
  fi
  xz -dc "$work/$suite.Packages.xz" | awk '
    /^Package: / { p = ($2 == "nats-server"); v = f = h = "" }
    p && /^Version: / { v = $2 } p && /^Filename: / { f = $2 } p && /^SHA256: / { h = $2 }
    /^$/ { if (p && v != "" && f != "" && h != "") print v, f, h; p = 0 }
    END { if (p && v != "" && f != "" && h != "") print v, f, h }'
}

best='' best_up=''
for suite in $suites; do
  while read -r version file sha; do
    [[ -n ${version:-} ]] || continue
    up=${version#*:}; up=${up%-*}   # no epoch, no Debian revision
    log "$suite: nats-server $version"
    if [[ -z $best_up ]] || ! version_ge "$best_up" "$up"; then best="$version $file $sha"; best_up=$up; fi
  done < <(from_suite "$suite" || true)
done
[[ -n $best ]] || die "no nats-server in $mirror (suites: $suites, $arch)"
version_ge "$best_up" "$min" || die "the newest nats-server in $suites is $best_up, older than $min"
read -r version file sha <<<"$best"

dest=$cache/nats-server-$best_up
if [[ -x $dest/nats-server ]]; then
  log "cached: $dest/nats-server"
  echo "$dest/nats-server"
  exit 0
fi
log "downloading $mirror/$file"
curl -fsSL --retry 3 -o "$work/nats-server.deb" "$mirror/$file"
[[ $(sha256sum "$work/nats-server.deb" | cut -d' ' -f1) == "$sha" ]] || die "$file does not match the SHA256 in the index ($sha)"
mkdir -p "$work/x"
if command -v dpkg-deb >/dev/null; then
  dpkg-deb -x "$work/nats-server.deb" "$work/x"
else
  command -v ar >/dev/null || die "needs dpkg-deb or ar to unpack the .deb"
  (cd "$work" && ar x nats-server.deb && tar -xf data.tar.* -C x)
fi
bin=$work/x/usr/sbin/nats-server
[[ -x $bin ]] || bin=$work/x/usr/bin/nats-server
[[ -x $bin ]] || die "$file holds no nats-server binary"
got=$("$bin" --version 2>&1 || true)
[[ $got == *"v$best_up"* ]] || die "the extracted binary says \"$got\", not v$best_up"
mkdir -p "$work/out"
cp "$bin" "$work/out/nats-server"
# a concurrent run may have finished first: theirs is as good as ours
mv -T "$work/out" "$dest" 2>/dev/null || [[ -x $dest/nats-server ]] || die "cannot write $dest"
log "$got in $dest"
echo "$dest/nats-server"
