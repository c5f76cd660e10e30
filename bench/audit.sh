#!/usr/bin/env bash
# Benchmark of the audit trail (see bench/README.md):
#   (a) `mvault log --json` over a history of 100,000 events (register
#       commits and promotion tags carrying mvault's trailers, written with
#       `git fast-import` on top of a real `mvault init`): must take < 1 s;
#   (b) `mvault audit verify` over a real signed history (made with the
#       library by examples/gen_history.rs: signed commits, manifests,
#       registration and promotion tags): must check >= 5000 signed objects
#       per second (commits, tags and manifests: what mvault reports as
#       "signatures checked"; commits + tags alone are printed too).
# Run after `cargo build --release`: bash bench/audit.sh
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MVAULT=${MVAULT:-$root/target/release/mvault}
GEN_HISTORY=${GEN_HISTORY:-$root/target/release/examples/gen_history}

EVENTS=${BENCH_AUDIT_EVENTS:-100000}         # (a): events in the history
LOG_MODELS=${BENCH_AUDIT_LOG_MODELS:-100}    # (a): models they are spread over
LOG_MAX_MS=${BENCH_AUDIT_LOG_MAX_MS:-1000}   # (a): target
VERSIONS=${BENCH_AUDIT_VERSIONS:-2000}       # (b): signed versions
MODELS=${BENCH_AUDIT_MODELS:-20}             # (b): models they are spread over
MIN_RATE=${BENCH_AUDIT_MIN_RATE:-5000}       # (b): signed objects per second
RUNS=${BENCH_AUDIT_RUNS:-3}                  # timed runs of each; the median counts

die() {
  echo "bench: $*" >&2
  exit 2
}

[ -x "$MVAULT" ] || die "$MVAULT not found; run cargo build --release first (or set MVAULT)"
if [ ! -x "$GEN_HISTORY" ]; then
  command -v cargo >/dev/null 2>&1 || die "$GEN_HISTORY not found and no cargo to build it"
  echo "bench: building examples/gen_history" >&2
  (cd "$root" && cargo build -q --release --example gen_history) || die "cannot build gen_history"
fi
for tool in git:git ssh-keygen:openssh-client awk:gawk sort:coreutils; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || die "install ${tool%%:*} (apt-get install ${tool#*:})"
done
[ -n "${EPOCHREALTIME:-}" ] || die "bash >= 5 is needed (EPOCHREALTIME)"

work=$(mktemp -d "${TMPDIR:-/tmp}/mvault-bench-audit.XXXXXX")
trap 'rm -rf "$work"' EXIT

# Hermetic, like the tests: no user config, fixed clock.
export HOME=$work/home GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
export MVAULT_NOW=1795341600 LC_ALL=C TZ=UTC
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@mvault
export GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@mvault
unset MVAULT_USER GL_USER GL_USERNAME GITEA_PUSHER_NAME GITHUB_USER_LOGIN REMOTE_USER
mkdir -p "$HOME"

failures=0
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

# Microseconds since the epoch.
now_us() {
  local t=${EPOCHREALTIME/./}
  echo "$t"
}

# median of the numbers on stdin
median() {
  sort -n | awk '{ a[NR] = $1 } END { if (NR == 0) print 0; else print a[int((NR + 1) / 2)] }'
}

ssh-keygen -q -t ed25519 -N "" -C admin -f "$work/admin"

# The CPU and whether it has SHA extensions (x86 sha_ni, arm sha2).
cpu_model=$(awk -F': *' '/^(model name|Model|Hardware)[[:space:]]*:/ { print $2; exit }' /proc/cpuinfo 2>/dev/null)
if grep -qw sha_ni /proc/cpuinfo 2>/dev/null; then cpu_sha="yes (sha_ni)"
elif grep -qiE '^Features.*\bsha2\b' /proc/cpuinfo 2>/dev/null; then cpu_sha="yes (sha2)"
else cpu_sha="no (no sha_ni flag)"; fi
echo "cpu: ${cpu_model:-unknown}, $(nproc) cores, SHA extensions: $cpu_sha; load average $(cut -d' ' -f1-3 /proc/loadavg)"

# ---------------------------------------------------------------- (a) log

echo "== (a) mvault log --json over $EVENTS events"
log_repo=$work/log
"$MVAULT" --key "$work/admin" init "$log_repo" --admin-key "$work/admin.pub" >/dev/null
init_commit=$(git -C "$log_repo" rev-parse main)

# Four register commits for every promotion tag; 1 event is the init.
tags=$(((EVENTS - 1) / 5))
commits=$((EVENTS - 1 - tags))
t0=$(now_us)
awk -v commits="$commits" -v tags="$tags" -v models="$LOG_MODELS" \
  -v from="$init_commit" -v start="$MVAULT_NOW" '
  function data(s) { printf "data %d\n%s", length(s), s }
  function hex64(n,   s) { s = sprintf("%016x", n); return s s s s }
  BEGIN {
    people[0] = "alice"; people[1] = "bob"; people[2] = "carol"
    every = int(commits / (tags > 0 ? tags : 1)); if (every < 1) every = 1
    t = start; made = 0
    for (i = 1; i <= commits; i++) {
      t++
      m = (i - 1) % models; v = int((i - 1) / models)
      who = people[i % 3]
      msg = sprintf("register bench/m%d@1.0.%d\n\nMvault-Action: register\nMvault-Model: bench/m%d\nMvault-Version: 1.0.%d\nMvault-Manifest-Sha256: %s\n", m, v, m, v, hex64(i))
      print "commit refs/heads/main"
      printf "mark :%d\n", i
      printf "author %s <%s@mvault> %d +0000\n", who, who, t
      printf "committer %s <%s@mvault> %d +0000\n", who, who, t
      data(msg)
      if (i == 1) printf "from %s\n", from
      print ""
      if (made < tags && i % every == 0) {
        made++; t++
        counter[m]++
        msg = sprintf("promote bench/m%d@1.0.%d to staging\n\nMvault-Action: promote\nMvault-Model: bench/m%d\nMvault-Version: 1.0.%d\nMvault-Manifest-Sha256: %s\nMvault-From-Stage: development\nMvault-To-Stage: staging\nMvault-Previous-Promotion: none\n", m, v, m, v, hex64(i))
        printf "tag bench/m%d#staging#%d\n", m, counter[m]
        printf "from :%d\n", i
        printf "tagger carol <carol@mvault> %d +0000\n", t
        data(msg)
        print ""
      }
    }
  }' | git -C "$log_repo" fast-import --quiet --force
git -C "$log_repo" pack-refs --all
t1=$(now_us)
echo "history written in $(((t1 - t0) / 1000)) ms: $commits register commits and $tags promotion tags on a real init"

lines=$("$MVAULT" -C "$log_repo" log --json | wc -l)
[ "$lines" -eq "$EVENTS" ] || fail "(a): mvault log --json printed $lines events, expected $EVENTS"
samples=()
for _ in $(seq "$RUNS"); do
  a=$(now_us)
  "$MVAULT" -C "$log_repo" log --json >/dev/null
  b=$(now_us)
  samples+=($(((b - a) / 1000)))
  echo "  mvault log --json: $(((b - a) / 1000)) ms"
done
log_ms=$(printf '%s\n' "${samples[@]}" | median)
a=$(now_us)
"$MVAULT" -C "$log_repo" log --model 'bench/m7' --action promote --limit 10 --json >/dev/null
b=$(now_us)
filtered_ms=$(((b - a) / 1000))
echo "  mvault log --model bench/m7 --action promote --limit 10 --json: $filtered_ms ms"
[ "$log_ms" -lt "$LOG_MAX_MS" ] || fail "(a): mvault log --json took $log_ms ms (median), target < $LOG_MAX_MS ms"

# ---------------------------------------------------------------- (b) audit verify

echo "== (b) mvault audit verify over $VERSIONS signed versions"
audit_repo=$work/audit
t0=$(now_us)
"$GEN_HISTORY" "$audit_repo" "$work/admin" "$VERSIONS" "$MODELS" 1
t1=$(now_us)
echo "history generated in $(((t1 - t0) / 1000)) ms"

verify_once() {
  local out a b
  a=$(now_us)
  out=$("$MVAULT" -C "$audit_repo" audit verify --json) || {
    echo "$out" >&2
    return 1
  }
  b=$(now_us)
  echo "$(((b - a) / 1000)) $out"
}

# As written (gen_history packs every 100 versions), then after `git gc`,
# as any long-lived repository or server is: the target is for the latter.
report=""
for layout in as-written gc; do
  if [ "$layout" = gc ]; then
    git -C "$audit_repo" gc -q
  fi
  samples=()
  json=""
  for _ in $(seq "$RUNS"); do
    if ! r=$(verify_once); then
      fail "(b): mvault audit verify did not pass on a genuine history ($layout)"
      break
    fi
    samples+=("${r%% *}")
    json=${r#* }
  done
  [ -n "$json" ] || continue
  ms=$(printf '%s\n' "${samples[@]}" | median)
  [ "$ms" -gt 0 ] || ms=1
  commits_n=$(echo "$json" | sed -n 's/.*"commits":\([0-9]*\).*/\1/p')
  tags_n=$(echo "$json" | sed -n 's/.*"tags":\([0-9]*\).*/\1/p')
  sigs_n=$(echo "$json" | sed -n 's/.*"signatures":\([0-9]*\).*/\1/p')
  objects=$((commits_n + tags_n))
  rate=$((sigs_n * 1000 / ms))
  object_rate=$((objects * 1000 / ms))
  cpu=""
  if [ -x /usr/bin/time ]; then
    /usr/bin/time -f "%U %S" -o "$work/cpu" "$MVAULT" -C "$audit_repo" audit verify >/dev/null
    cpu=$(awk '{ printf "%d", ($1 + $2) * 1000 }' "$work/cpu")
  fi
  echo "  $layout: ${samples[*]} ms (median $ms ms${cpu:+, CPU $cpu ms}): $sigs_n signed objects ($commits_n commits, $tags_n tags, the rest manifests): $rate signed objects/s ($object_rate commits+tags/s)"
  report+="| audit verify ($layout) | $sigs_n signed objects ($commits_n commits, $tags_n tags) | $ms ms${cpu:+ (CPU $cpu ms)} | $rate signed objects/s |"$'\n'
  if [ "$layout" = gc ] && [ "$rate" -lt "$MIN_RATE" ]; then
    fail "(b): mvault audit verify checked $rate signed objects/s, target >= $MIN_RATE"
  fi
done

echo
echo "| part | size | median | result |"
echo "| --- | --- | --- | --- |"
echo "| log --json | $EVENTS events | $log_ms ms | target < $LOG_MAX_MS ms |"
printf '%s' "$report"
echo "(audit verify target: >= $MIN_RATE signed objects/s after git gc; load average: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown))"

if [ "$failures" -gt 0 ]; then
  echo "bench: $failures target(s) missed" >&2
  exit 1
fi
echo "bench: all targets met"
