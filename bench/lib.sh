# Shared by bench/pull.sh, bench/parts.sh and bench/history.sh (sourced, not
# run): a hermetic environment in a fresh work directory, the CPU line, small
# statistics helpers, a vault with a hooked server, and a many-version record.
# The caller sets `root` and `MVAULT` before sourcing.

die() {
  echo "bench: $*" >&2
  exit 2
}

failures=0
fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}

# bench_setup NAME: checks the tools, makes $work (removed on exit), a private
# copy of the binary in $work/bin, and a hermetic environment.
bench_setup() {
  local name=$1 tool
  [ -x "$MVAULT" ] || die "$MVAULT not found; run cargo build --release first (or set MVAULT)"
  for tool in git:git ssh-keygen:openssh-client awk:gawk sort:coreutils; do
    command -v "${tool%%:*}" >/dev/null 2>&1 || die "install ${tool%%:*} (apt-get install ${tool#*:})"
  done
  command -v python3 >/dev/null 2>&1 || [ -x /usr/bin/time ] ||
    die "install python3 or /usr/bin/time (apt-get install python3 time)"
  [ -n "${EPOCHREALTIME:-}" ] || die "bash >= 5 is needed (EPOCHREALTIME)"
  work=$(mktemp -d "${TMPDIR:-/tmp}/mvault-bench-$name.XXXXXX")
  if [ "${BENCH_KEEP:-0}" = 1 ]; then
    # shellcheck disable=SC2064 # expand now: $work must be the one made here
    trap "echo 'bench: work dir kept: $work'" EXIT
  else
    # shellcheck disable=SC2064
    trap "rm -rf '$work'" EXIT
  fi
  # Hermetic, like the tests: no user config, fixed clock.
  export HOME=$work/home GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
  export MVAULT_NOW=1795341600 LC_ALL=C TZ=UTC
  export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@mvault
  export GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@mvault
  unset MVAULT_USER GL_USER GL_USERNAME GITEA_PUSHER_NAME GITHUB_USER_LOGIN REMOTE_USER
  unset MVAULT_CHUNKING MVAULT_KEY GIT_DIR GIT_WORK_TREE
  mkdir -p "$HOME" "$work/bin"
  # A private copy: the hook runs it by absolute path, and a rebuild of
  # target/ during the run must not change what is measured.
  cp "$MVAULT" "$work/bin/mvault"
  MVAULT=$work/bin/mvault
}

# cpu_line: the CPU model and whether it has SHA extensions (x86 `sha_ni`,
# arm `sha2`), from /proc/cpuinfo.
cpu_line() {
  local model sha
  model=$(awk -F': *' '/^(model name|Model|Hardware)[[:space:]]*:/ { print $2; exit }' /proc/cpuinfo 2>/dev/null)
  if grep -qw sha_ni /proc/cpuinfo 2>/dev/null; then
    sha="yes (sha_ni)"
  elif grep -qiE '^Features.*\bsha2\b' /proc/cpuinfo 2>/dev/null; then
    sha="yes (sha2)"
  else
    sha="no (no sha_ni flag)"
  fi
  echo "cpu: ${model:-unknown}, $(nproc) cores, SHA extensions: $sha; load average $(cut -d' ' -f1-3 /proc/loadavg)"
}

now_s() { # seconds since the epoch, microsecond resolution
  printf '%s' "${EPOCHREALTIME/,/.}"
}

elapsed_ms() { # START [END]: milliseconds between two now_s values
  awk -v a="$1" -v b="${2:-$(now_s)}" 'BEGIN { printf "%.1f", (b - a) * 1000 }'
}

median() { # numbers on stdin -> median
  sort -g | awk '{ v[NR] = $1 } END {
    if (NR == 0) { print "nan"; exit }
    if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

ratio() { # A B -> A / B, 3 decimals
  awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "inf"; else printf "%.3f", a / b }'
}

gt() { # A B: true when A > B (floating point)
  awk -v a="$1" -v b="$2" 'BEGIN { exit !(a > b) }'
}

human() { # BYTES -> "N bytes (X MiB)"
  awk -v b="$1" 'BEGIN {
    if (b >= 1048576) printf "%d bytes (%.2f MiB)", b, b / 1048576
    else printf "%d bytes (%.1f KiB)", b, b / 1024 }'
}

dir_bytes() { # DIR: apparent size of every file under DIR, in bytes
  du -sb --apparent-size "$1" | cut -f1
}

# timed LABEL CMD...: runs CMD; sets WALL_MS, CPU_MS (user + system of CMD
# and of every child it waited for, git and a local upload-pack or
# receive-pack included) and RSS_MIB (the largest single process). CMD's
# output goes to $work/cmd.out; a failure is fatal. With python3 the times
# have microsecond resolution (getrusage), else /usr/bin/time's 10 ms.
timed() {
  local label=$1
  shift
  if command -v python3 >/dev/null 2>&1; then
    if ! python3 -c '
import resource, subprocess, sys, time
# Children this process already has (a pyenv shim runs some before it
# execs python) are not the command'"'"'s.
r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
t = time.perf_counter()
rc = subprocess.call(sys.argv[2:], stdout=open(sys.argv[1], "wb"), stderr=subprocess.STDOUT)
wall = time.perf_counter() - t
r = resource.getrusage(resource.RUSAGE_CHILDREN)
cpu = r.ru_utime + r.ru_stime - r0.ru_utime - r0.ru_stime
print("%.3f %.3f %.1f" % (wall * 1000, cpu * 1000, r.ru_maxrss / 1024), file=sys.stderr)
sys.exit(rc)' "$work/cmd.out" "$@" 2>"$work/time.txt"; then
      cat "$work/cmd.out" >&2
      die "$label: command failed: $*"
    fi
    read -r WALL_MS CPU_MS RSS_MIB <"$work/time.txt"
    return
  fi
  if ! /usr/bin/time -f '%e %U %S %M' -o "$work/time.txt" "$@" >"$work/cmd.out" 2>&1; then
    cat "$work/cmd.out" >&2
    die "$label: command failed: $*"
  fi
  read -r WALL_MS CPU_MS RSS_MIB < <(awk 'END { printf "%.1f %.1f %.1f\n", $1 * 1000, ($2 + $3) * 1000, $4 / 1024 }' "$work/time.txt")
}

# keys NAME...: an ed25519 key pair $work/NAME(.pub) per name; with
# BENCH_RECORD_CACHE, the cache's (made there on first use), so that the
# records it keeps verify under them.
keys() {
  local k
  for k in "$@"; do
    if [ -n "${BENCH_RECORD_CACHE:-}" ]; then
      mkdir -p "$BENCH_RECORD_CACHE/keys"
      [ -f "$BENCH_RECORD_CACHE/keys/$k" ] ||
        ssh-keygen -q -t ed25519 -N '' -C "$k" -f "$BENCH_RECORD_CACHE/keys/$k"
      cp "$BENCH_RECORD_CACHE/keys/$k" "$BENCH_RECORD_CACHE/keys/$k.pub" "$work/"
    else
      ssh-keygen -q -t ed25519 -N '' -C "$k" -f "$work/$k"
    fi
  done
}

# as USER ARGS...: mvault with USER's key, pushing as USER (what sshd's
# forced command would put in MVAULT_USER).
as() {
  local user=$1
  shift
  MVAULT_USER=$user "$MVAULT" --key "$work/$user" "$@"
}

# hooked_vault WORK SERVER: the admin's vault WORK (alice ml_engineer on **,
# bob viewer and approver on **), its bare copy SERVER guarded by the hook
# (`mvault hook install`), and WORK tracking SERVER as origin, as the tests'
# `Server::new` sets them up. Needs keys admin, alice, bob.
hooked_vault() {
  local vault=$1 server=$2
  as admin init "$vault" --admin-key "$work/admin.pub" >/dev/null
  as admin -C "$vault" policy add-user alice --key-file "$work/alice.pub" >/dev/null
  as admin -C "$vault" policy add-user bob --key-file "$work/bob.pub" >/dev/null
  as admin -C "$vault" policy grant alice --role ml_engineer --models '**' >/dev/null
  as admin -C "$vault" policy grant bob --role viewer --models '**' >/dev/null
  as admin -C "$vault" policy grant bob --role approver --models '**' >/dev/null
  git clone -q --bare "$vault" "$server"
  "$MVAULT" hook install "$server" --root-key "$work/admin.pub" >/dev/null
  git -C "$vault" remote add origin "$server"
  git -C "$vault" fetch -q origin
  git -C "$vault" branch -q --set-upstream-to=origin/main
}

# The models build_record promotes early: bench/m000 ... of RECORD_PROMOTED.
RECORD_PROMOTED=5
RECORD_PROMOTE_AT=100

# build_record SERVER MODELS FROM TO: registers versions FROM..TO (counted
# over the whole record, model = n % MODELS, bench/m000...) as alice with
# `mvault add --no-push` of a tiny file straight into the bare SERVER, as
# bench/hook.sh does: real signed manifests, commits and tags. The hook judges
# pushes only; a version written into the server directly does not pass it.
# When the record holds RECORD_PROMOTE_AT versions (or at its end, if
# smaller), @1.0.1 of the first RECORD_PROMOTED models is promoted to
# staging (`mvault promote --no-push`, signed tags): stages set long ago.
# Refs and objects are packed every 1,000 versions (a long-lived server is
# packed; 10,000 loose tags would slow every command). `--part-size 64K`:
# the part reader zero-fills a buffer of twice the part size for every file
# (32 MiB at the default 16 MiB parts, about 20 ms of page faults and memset
# per add, whatever the file's size); with 64 KiB parts a tiny add costs a
# third of the CPU, and the record is the same but for each manifest's
# `part_size`. Prints progress.
build_record() {
  local server=$1 models=$2 from=$3 to=$4 n t0 m v p
  mkdir -p "$work/tiny"
  t0=$(now_s)
  for ((n = from; n <= to; n++)); do
    m=$(((n - 1) % models))
    v=$(((n - 1) / models + 1))
    printf 'model %d version %d\n' "$m" "$v" >"$work/tiny/weights.bin"
    "$MVAULT" --key "$work/alice" -C "$server" add "$work/tiny" \
      --model "$(printf 'bench/m%03d' "$m")" --version "1.0.$v" --part-size 64K --no-push >/dev/null ||
      die "mvault add bench/m$m@1.0.$v into the record failed"
    if ((n % 1000 == 0)); then
      git -C "$server" gc -q
    fi
    if ((n == RECORD_PROMOTE_AT || (n == to && to < RECORD_PROMOTE_AT))); then
      for ((p = 0; p < RECORD_PROMOTED && p < models; p++)); do
        "$MVAULT" --key "$work/alice" -C "$server" promote "$(printf 'bench/m%03d' "$p")@1.0.1" \
          --to staging --no-push >/dev/null || die "mvault promote bench/m$p@1.0.1 in the record failed"
      done
    fi
    if ((n % 1000 == 0 || n == to)); then
      awk -v n="$n" -v f="$from" -v t="$to" -v a="$t0" -v b="$(now_s)" -v l="$(cut -d' ' -f1 /proc/loadavg)" \
        'BEGIN { printf "  %6d / %d versions, %.0f s, %.1f ms per add (load %s)\n", n, t, b - a, (b - a) * 1000 / (n - f + 1), l }'
    fi
  done
  git -C "$server" gc -q
}

# record_server SERVER MODELS VERSIONS: a hooked server (see hooked_vault)
# holding a record of VERSIONS tiny versions over MODELS models, made by
# build_record; sets RECORD_BUILD_S (0 when it came from the cache). With
# BENCH_RECORD_CACHE=DIR a record built once is kept in DIR and copied on
# later runs (the hook installed again for this run's binary): building
# 10,000 versions takes 12-14 minutes here. Needs keys admin, alice, bob.
record_server() {
  local server=$1 models=$2 versions=$3 cached= t0
  if [ -n "${BENCH_RECORD_CACHE:-}" ]; then
    cached=$BENCH_RECORD_CACHE/record-$models-$versions-p$RECORD_PROMOTED.git
    if [ -f "$cached/mvault-bench-complete" ]; then
      cp -a "$cached" "$server"
      rm -f "$server/mvault-bench-complete"
      "$MVAULT" hook install "$server" --root-key "$work/admin.pub" >/dev/null
      RECORD_BUILD_S=0
      echo "  record of $versions versions copied from $cached (built by an earlier run in $(cat "$cached/mvault-bench-complete") s)"
      return
    fi
  fi
  hooked_vault "$work/record-vault" "$server"
  rm -rf "$work/record-vault"
  t0=$(now_s)
  build_record "$server" "$models" 1 "$versions"
  RECORD_BUILD_S=$(awk -v a="$t0" -v b="$(now_s)" 'BEGIN { printf "%.0f", b - a }')
  if [ -n "$cached" ]; then
    rm -rf "$cached"
    cp -a "$server" "$cached"
    echo "$RECORD_BUILD_S" >"$cached/mvault-bench-complete"
  fi
}

# The upload-pack wrapper: counts the bytes git's upload-pack sends and
# receives, one line per connection ("SENT RECEIVED") in $BENCH_WIRE_LOG.
# A fetch uses it through remote.<name>.uploadpack (set in the environment
# with GIT_CONFIG_COUNT, so mvault's own `git fetch` picks it up) or
# `git clone --upload-pack`.
make_wire_counter() {
  cat >"$work/bin/upload-pack-counted" <<'COUNTER'
#!/usr/bin/env bash
# git upload-pack, with the bytes of the protocol stream in each direction
# counted (the request on stdin, the advertisement and pack on stdout).
tmp=$(mktemp "${BENCH_WIRE_LOG}.XXXXXX")
tee >(wc -c >"$tmp.in") | git upload-pack "$@" | tee >(wc -c >"$tmp.out")
rc=${PIPESTATUS[1]}
# The counters are process substitutions: wait until both have written.
for _ in $(seq 1 200); do
  [ -s "$tmp.in" ] && [ -s "$tmp.out" ] && break
  sleep 0.01
done
printf '%s %s\n' "$(cat "$tmp.out")" "$(cat "$tmp.in")" >>"$BENCH_WIRE_LOG"
rm -f "$tmp" "$tmp.in" "$tmp.out"
exit $rc
COUNTER
  chmod +x "$work/bin/upload-pack-counted"
}

# wire_totals: "SENT RECEIVED CONNECTIONS" summed over $BENCH_WIRE_LOG.
wire_totals() {
  awk '{ s += $1; r += $2; n++ } END { printf "%d %d %d\n", s, r, n }' "$BENCH_WIRE_LOG"
}
