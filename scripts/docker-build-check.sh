#!/usr/bin/env bash
# Checks the Dockerfile without a Docker engine:
#   1. lint: hadolint-style rules (pinned base images, no `latest`, non-root USER, HEALTHCHECK, exec-form
#      ENTRYPOINT/CMD, apt-get with --no-install-recommends, pinned packages and cleaned lists, COPY not ADD,
#      absolute WORKDIR, npm ci rather than npm install);
#   2. build: replays the Dockerfile's COPY, ENV and `npm` RUN steps stage by stage in a clean temp folder
#      (each stage's filesystem is a folder; the context is the tree minus .dockerignore), so the steps
#      cannot drift from what the script checks; RUN steps that need the image's own root (apt-get, files
#      under /usr) are listed as skipped;
#   3. run: starts `node dist/cli/main.js serve -c config/memory.yaml` from the runtime stage's /app on a free
#      port, waits for /health 200, pushes a job through the HTTP API and waits for the worker's log line,
#      then sends SIGTERM and expects exit 0.
# Usage: scripts/docker-build-check.sh [--lint-only]      KEEP=1 keeps the temp folder.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dockerfile=${DOCKERFILE:-$root/Dockerfile}   # DOCKERFILE=other lints another file (the tests do)
say() { echo "docker-build-check: $*" >&2; }
die() { say "FAIL: $*"; exit 1; }

# The Dockerfile as one instruction per line: continuations joined, comments and blank lines dropped.
instructions() {
  sed -e 's/\r$//' "$dockerfile" | awk '
    /^[[:space:]]*#/ && cont == "" { next }
    { line = cont $0; if (line ~ /\\[[:space:]]*$/) { sub(/\\[[:space:]]*$/, " ", line); cont = line; next } cont = "" }
    line ~ /^[[:space:]]*$/ { next }
    { sub(/^[[:space:]]+/, "", line); gsub(/[[:space:]]+/, " ", line); print line }'
}

lint() {
  local problems=() stages=() last_user="" saw_health=0 n=0 ins args img
  while IFS= read -r line; do
    n=$((n + 1)); ins=${line%% *}; ins=${ins^^}; args=${line#* }
    case $ins in
      FROM)
        img=$(awk '{ for (i = 1; i <= NF; i++) if ($i !~ /^--/) { print $i; exit } }' <<<"$args")
        if [[ " ${stages[*]} " == *" $img "* ]]; then :        # an earlier stage
        elif [[ $img == *:latest* || $img != *:* && $img != *@sha256:* ]]; then problems+=("FROM $img: not pinned (no tag, or latest)")
        elif [[ $img != *@sha256:* && ! ${img#*:} =~ ^[0-9]+\.[0-9]+\.[0-9]+ ]]; then problems+=("FROM $img: tag is not a full version (x.y.z)")
        fi
        [[ $args =~ [[:space:]][Aa][Ss][[:space:]]+([^[:space:]]+) ]] && stages+=("${BASH_REMATCH[1]}")
        last_user="" ;;
      USER) last_user=${args%%:*} ;;
      HEALTHCHECK) [[ ${args^^} == NONE* ]] || saw_health=1 ;;
      ENTRYPOINT | CMD) [[ $args == \[* ]] || problems+=("$ins is not in exec (JSON) form: $args") ;;
      ADD) [[ $args =~ https?:// ]] || problems+=("ADD used for local files; use COPY: $args") ;;
      WORKDIR) [[ $args == /* ]] || problems+=("WORKDIR is not absolute: $args") ;;
      RUN)
        [[ $args == *sudo\ * ]] && problems+=("RUN uses sudo: $args")
        [[ $args =~ npm\ (install|i)([[:space:]]|$) ]] && problems+=("RUN uses npm install; use npm ci: $args")
        if [[ $args == *"apt-get install"* ]]; then
          [[ $args == *--no-install-recommends* ]] || problems+=("apt-get install without --no-install-recommends")
          [[ $args == *"rm -rf /var/lib/apt/lists"* ]] || problems+=("apt-get install without rm -rf /var/lib/apt/lists/* in the same RUN")
          local pkgs
          pkgs=$(sed -e 's/.*apt-get install//' -e 's/[;&|].*//' <<<"$args")
          for p in $pkgs; do [[ $p == -* || $p == *=* ]] || problems+=("apt package not pinned (pkg=version): $p"); done
        fi ;;
    esac
  done < <(instructions)
  grep -qi ':latest' "$dockerfile" && problems+=("the word :latest appears in the Dockerfile")
  [[ -n $last_user ]] || problems+=("the final stage has no USER: it would run as root")
  [[ $last_user == root || $last_user == 0 ]] && problems+=("the final stage runs as root (USER $last_user)")
  [[ $saw_health == 1 ]] || problems+=("no HEALTHCHECK")
  grep -qx 'node_modules' "$root/.dockerignore" 2>/dev/null || problems+=(".dockerignore does not exclude node_modules")
  if ((${#problems[@]})); then printf 'docker-build-check: lint: %s\n' "${problems[@]}" >&2; return 1; fi
  say "lint: ok ($n instructions)"
}

lint || die "Dockerfile lint"
[[ ${1:-} == --lint-only ]] && exit 0

tmp=$(mktemp -d "${TMPDIR:-/tmp}/jobrunner-docker-check.XXXXXX")
daemon_pid=""
cleanup() {
  [[ -n $daemon_pid ]] && kill -KILL "$daemon_pid" 2>/dev/null || true
  if [[ ${KEEP:-0} == 1 ]]; then say "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

# the build context: the tree minus .dockerignore (its patterns here are plain names and globs)
rsync -a --exclude-from="$root/.dockerignore" "$root/" "$tmp/context/"
# npm runs on a private cache (the Dockerfile may clean it), seeded with hard links to the user's for speed
npm_cache=$tmp/npm-cache
mkdir -p "$npm_cache"
user_cache=$(npm config get cache 2>/dev/null || true)
[[ -d $user_cache/_cacache ]] && cp -al "$user_cache/_cacache" "$npm_cache/_cacache" 2>/dev/null || true

# ---- replay the stages ----
stage="" stage_root="" workdir="/"
declare -A stage_roots=()
stage_env=()
at() { [[ $1 == /* ]] && echo "$stage_root$1" || echo "$stage_root$workdir/$1"; }
while IFS= read -r line; do
  ins=${line%% *}; ins=${ins^^}; args=${line#* }
  case $ins in
    FROM)
      stage=$(sed -nE 's/.*[[:space:]][Aa][Ss][[:space:]]+([^[:space:]]+).*/\1/p' <<<"$args"); stage=${stage:-stage${#stage_roots[@]}}
      stage_root=$tmp/stages/$stage; stage_roots[$stage]=$stage_root; workdir=/; stage_env=()
      mkdir -p "$stage_root"; say "stage $stage" ;;
    WORKDIR) workdir=$args; mkdir -p "$stage_root$workdir" ;;
    ENV) read -r -a pairs <<<"$args"; stage_env+=("${pairs[@]}") ;;
    COPY)
      [[ $args == *\[* ]] && die "COPY in JSON form is not replayed: $args"
      read -r -a words <<<"$args"; from="$tmp/context"
      [[ ${words[0]} == --from=* ]] && { from=${stage_roots[${words[0]#--from=}]:?unknown stage in $args}; words=("${words[@]:1}"); }
      dest=$(at "${words[-1]}"); srcs=("${words[@]:0:${#words[@]}-1}")
      for s in "${srcs[@]}"; do
        src=$from/${s#/}
        [[ -e $src ]] || die "COPY $s: not in the build context (or excluded by .dockerignore)"
        if [[ -d $src ]]; then mkdir -p "$dest" && cp -R "$src/." "$dest/"
        elif ((${#srcs[@]} > 1)) || [[ ${words[-1]} == */ ]]; then mkdir -p "$dest" && cp "$src" "$dest/"
        else mkdir -p "$(dirname "$dest")" && cp "$src" "$dest"
        fi
      done ;;
    RUN)
      if [[ $args == npm\ * ]]; then
        say "RUN $args (in $workdir)"
        (cd "$stage_root$workdir" && env "${stage_env[@]}" npm_config_cache="$npm_cache" npm_config_prefer_offline=true bash -c "$args") >"$tmp/$stage-run.log" 2>&1 ||
          { tail -30 "$tmp/$stage-run.log" >&2; die "RUN $args"; }
      else
        say "skipped (needs the image's own root): RUN ${args:0:70}..."
      fi ;;
  esac
done < <(instructions)

app=${stage_roots[runtime]:?the Dockerfile has no stage named runtime}/app
[[ -f $app/dist/cli/main.js ]] || die "the runtime stage has no dist/cli/main.js"
[[ ! -e $app/node_modules/typescript ]] || die "dev dependencies (typescript) reached the runtime stage"
[[ -f $app/config/memory.yaml ]] || die "the runtime stage has no config/memory.yaml"

# ---- run the daemon from the runtime stage on a free port ----
port=$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")
cfg=$app/config/.docker-build-check.yaml    # beside memory.yaml, so relative paths resolve the same way
if grep -q '^http:' "$app/config/memory.yaml"; then
  sed -E "s/(^[[:space:]]+address:[[:space:]]*).*/\1\"127.0.0.1:$port\"/" "$app/config/memory.yaml" >"$cfg"
else
  { cat "$app/config/memory.yaml"; printf '\nhttp:\n  address: "127.0.0.1:%s"\n' "$port"; } >"$cfg"
fi
log=$tmp/daemon.log
(cd "$app" && exec env "${stage_env[@]}" node dist/cli/main.js serve -c "$cfg") >"$log" 2>&1 &
daemon_pid=$!
base=http://127.0.0.1:$port
http() { node -e "fetch(process.argv[1], process.argv[2] ? {method:'POST',headers:{'content-type':'application/json'},body:process.argv[2]} : {}).then(async r => { console.log(r.status, await r.text()) }, e => { console.log(0, e.message) })" "$@"; }
status=0
for _ in $(seq 1 60); do
  kill -0 "$daemon_pid" 2>/dev/null || { cat "$log" >&2; die "the daemon exited before /health answered"; }
  status=$(http "$base/health" | cut -d' ' -f1)
  [[ $status == 200 ]] && break
  sleep 0.5
done
[[ $status == 200 ]] || { cat "$log" >&2; die "/health did not answer 200 (last: $status)"; }
say "/health 200 on port $port"

pipeline=$(http "$base/pipelines" | cut -d' ' -f2- | node -e "let s='';process.stdin.on('data',d=>s+=d).on('end',()=>{const p=JSON.parse(s);console.log((Array.isArray(p)?p:p.pipelines)[0].pipeline)})")
reply=$(http "$base/pipelines/$pipeline/jobs" '{"job":"BuildCheck","payload":{"to":"a@b.c"}}')
[[ ${reply%% *} == 202 ]] || { cat "$log" >&2; die "push to $pipeline answered $reply"; }
for _ in $(seq 1 40); do grep -q 'processed BuildCheck' "$log" && break; sleep 0.25; done
grep -q 'processed BuildCheck' "$log" || { cat "$log" >&2; die "the pushed job was not processed"; }
say "a job pushed to $pipeline was processed"

kill -TERM "$daemon_pid"
code=0
for _ in $(seq 1 120); do kill -0 "$daemon_pid" 2>/dev/null || break; sleep 0.25; done
kill -0 "$daemon_pid" 2>/dev/null && die "the daemon did not exit within 30 s of SIGTERM"
wait "$daemon_pid" || code=$?
daemon_pid=""
[[ $code == 0 ]] || { cat "$log" >&2; die "the daemon exited $code after SIGTERM"; }
say "ok: built, served /health, processed a job, exited 0 on SIGTERM"
