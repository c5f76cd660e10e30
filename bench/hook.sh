#!/usr/bin/env bash
# Benchmark of the server's pre-receive hook (see bench/README.md):
#   (a) a server holding 10,000 versions across 100 models, all real signed
#       mvault commits and tags; the hook's own time for each of 15 pushes
#       of one new version: median must be <= 50 ms;
#   (b) the hook's time for a push of a 1 MiB version and of a 1 GiB
#       version: the 1 GiB median must be within 10 % (+ 5 ms of noise) of
#       the 1 MiB median, since the hook reads headers, never payloads.
# The hook alone is timed: the installed shim is wrapped by a script that
# records the time around it, so transfer and index-pack are not counted.
# Run after `cargo build --release`: bash bench/hook.sh
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MVAULT=${MVAULT:-$root/target/release/mvault}

MODELS=${BENCH_HOOK_MODELS:-100}     # models in the history
VERSIONS=${BENCH_HOOK_VERSIONS:-100} # versions of each model in the history
PUSHES=${BENCH_HOOK_PUSHES:-15}      # timed pushes of one new version
SIZE_RUNS=${BENCH_HOOK_SIZE_RUNS:-5} # pushes of each size in (b)
BIG_MIB=${BENCH_HOOK_BIG_MIB:-1024}  # the large version of (b)
SMALL_MIB=1
MAX_MS=${BENCH_HOOK_MAX_MS:-50}        # target for the median of (a)
SIZE_TOL_PCT=${BENCH_HOOK_SIZE_TOL:-10} # (b): allowed slowdown, percent
NOISE_MS=${BENCH_HOOK_NOISE_MS:-5}      # (b): plus this much noise
JUDGE=${BENCH_HOOK_JUDGE:-wall}         # the time the targets apply to: wall or cpu
SYNC=${BENCH_HOOK_SYNC:-1}              # 1: flush dirty pages before timing each hook run

die() {
  echo "bench: $*" >&2
  exit 2
}

case $JUDGE in wall | cpu) ;; *) die "BENCH_HOOK_JUDGE must be wall or cpu" ;; esac
[ -x "$MVAULT" ] || die "$MVAULT not found; run cargo build --release first (or set MVAULT)"
for tool in git:git ssh-keygen:openssh-client awk:gawk sort:coreutils; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || die "install ${tool%%:*} (apt-get install ${tool#*:})"
done
[ -n "${EPOCHREALTIME:-}" ] || die "bash >= 5 is needed (EPOCHREALTIME)"

work=$(mktemp -d "${TMPDIR:-/tmp}/mvault-bench-hook.XXXXXX")
trap 'rm -rf "$work"' EXIT

# Hermetic, like the tests: no user config, fixed clock.
export HOME=$work/home GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
export MVAULT_NOW=1795341600 LC_ALL=C TZ=UTC
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@mvault
export GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@mvault
unset MVAULT_USER GL_USER GL_USERNAME GITEA_PUSHER_NAME GITHUB_USER_LOGIN REMOTE_USER
mkdir -p "$HOME" "$work/bin"
# A private copy: the hook runs it by absolute path, and a rebuild of
# target/ during the run must not change what is measured.
cp "$MVAULT" "$work/bin/mvault"
MVAULT=$work/bin/mvault

failures=0
fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}

now_s() { # seconds since the epoch, microsecond resolution
  printf '%s' "${EPOCHREALTIME/,/.}"
}

median() { # numbers on stdin -> median
  sort -g | awk '{ v[NR] = $1 } END {
    if (NR == 0) { print "nan"; exit }
    if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

minmax() { # numbers on stdin -> "min max"
  sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { print lo, hi }'
}

echo "mvault hook bench: $MVAULT, $(nproc) cores, work dir $work"
# The CPU and whether it has SHA extensions (x86 sha_ni, arm sha2).
cpu_model=$(awk -F': *' '/^(model name|Model|Hardware)[[:space:]]*:/ { print $2; exit }' /proc/cpuinfo 2>/dev/null)
if grep -qw sha_ni /proc/cpuinfo 2>/dev/null; then cpu_sha="yes (sha_ni)"
elif grep -qiE '^Features.*\bsha2\b' /proc/cpuinfo 2>/dev/null; then cpu_sha="yes (sha2)"
else cpu_sha="no (no sha_ni flag)"; fi
echo "cpu: ${cpu_model:-unknown}, $(nproc) cores, SHA extensions: $cpu_sha; load average $(cut -d' ' -f1-3 /proc/loadavg)"

# ------------------------------------------------------------ the history
# A vault with alice, developer on bench/*; the server is a bare copy.
ssh-keygen -q -t ed25519 -N '' -C admin -f "$work/admin"
ssh-keygen -q -t ed25519 -N '' -C alice -f "$work/alice"
"$MVAULT" --key "$work/admin" init "$work/vault" --admin-key "$work/admin.pub" >/dev/null
"$MVAULT" --key "$work/admin" -C "$work/vault" policy add-user alice --key-file "$work/alice.pub" >/dev/null
"$MVAULT" --key "$work/admin" -C "$work/vault" policy grant alice --role developer --models 'bench/*' >/dev/null
server=$work/server.git
git clone -q --bare "$work/vault" "$server"

# The history: MODELS x VERSIONS real versions (signed manifest, commit and
# tag), registered with `mvault add --no-push` straight into the bare server
# repository before the hook exists (a bare repository has no work tree to
# check out, which keeps each add cheap). The hook judges only what a push
# adds, so how the history got there does not matter; that it is there does.
total=$((MODELS * VERSIONS))
echo
echo "history: $MODELS models x $VERSIONS versions = $total versions (mvault add --no-push of a tiny file each)"
mkdir -p "$work/tiny"
t0=$(now_s)
n=0
for v in $(seq 1 "$VERSIONS"); do
  for m in $(seq 0 $((MODELS - 1))); do
    printf 'model %d version %d\n' "$m" "$v" >"$work/tiny/weights.bin"
    "$MVAULT" --key "$work/alice" -C "$server" add "$work/tiny" \
      --model "$(printf 'bench/m%03d' "$m")" --version "1.0.$v" --no-push >/dev/null ||
      die "mvault add bench/m$m@1.0.$v failed"
    n=$((n + 1))
    if ((n % 1000 == 0 || n == total)); then
      awk -v n="$n" -v t="$total" -v a="$t0" -v b="$(now_s)" \
        'BEGIN { printf "  %6d / %d versions, %.0f s, %.1f ms per add\n", n, t, b - a, (b - a) * 1000 / n }'
    fi
  done
done
# A server keeps its history packed.
git -C "$server" gc -q
versions=$(git -C "$server" tag -l 'bench/*' | wc -l)
commits=$(git -C "$server" rev-list --count main)
[ "$versions" -eq "$total" ] || die "expected $total version tags on the server, found $versions"
echo "  server: $commits commits, $versions version tags, $(du -sh "$server" | cut -f1)"

# ------------------------------------------------------------ the hook
"$MVAULT" hook install "$server" --root-key "$work/admin.pub" >/dev/null
hooks=$server/hooks
mv "$hooks/pre-receive" "$hooks/pre-receive.mvault"
times=$work/hook-times.txt
: >"$times"
# The wrapper records, per hook run, the wall time and the CPU time (user +
# system of the shim and mvault, from bash's `times`) in ms, and the exit
# status. It forks nothing but the shim between reading the clocks.
# Before the clock starts it runs `sync` (BENCH_HOOK_SYNC=1): git has just
# written the pushed pack, and the kernel's writeback of it (the same with or
# without a hook) would otherwise stall the hook's own fdatasync of the
# decision log, charging the hook for the size of the upload.
cat >"$hooks/pre-receive" <<'WRAPPER'
#!/usr/bin/env bash
if [ "$MVAULT_BENCH_SYNC" = 1 ]; then sync; fi
start=$EPOCHREALTIME
"${0%/*}/pre-receive.mvault"
rc=$?
end=$EPOCHREALTIME
times >"$MVAULT_BENCH_TIMES.cpu"
awk -v a="${start/,/.}" -v b="${end/,/.}" -v rc="$rc" '
  function secs(t) { split(t, p, /[ms]/); return p[1] * 60 + p[2] }
  NR == 2 { cpu = secs($1) + secs($2) }
  END { printf "%.3f %.3f %d\n", (b - a) * 1000, cpu * 1000, rc }' "$MVAULT_BENCH_TIMES.cpu" >>"$MVAULT_BENCH_TIMES"
exit $rc
WRAPPER
export MVAULT_BENCH_TIMES=$times MVAULT_BENCH_SYNC=$SYNC
chmod +x "$hooks/pre-receive"

# alice's clone; the server learns who pushes from MVAULT_USER, as sshd's
# authorized_keys would set it (a local push hands git's environment on).
client=$work/client
git clone -q --no-checkout "$server" "$client"
export MVAULT_USER=alice

last_hook() { # sets WALL_MS and CPU_MS of the last hook run; dies if it refused
  local rc
  read -r WALL_MS CPU_MS rc < <(tail -n 1 "$times")
  [ "$rc" = 0 ] || die "the hook refused the push (exit $rc)"
}

push_version() { # DIR MODEL VERSION: mvault add, pushed to the server
  local before
  before=$(wc -l <"$times")
  "$MVAULT" --key "$work/alice" -C "$client" add "$1" --model "$2" --version "$3" >"$work/add.out" 2>&1 ||
    {
      cat "$work/add.out" >&2
      die "mvault add $2@$3 (pushed) failed"
    }
  [ "$(wc -l <"$times")" -eq $((before + 1)) ] || die "the hook did not run for $2@$3"
  [ "$(git -C "$server" rev-parse -q --verify "refs/tags/$2@v$3")" ] || die "$2@$3 did not land on the server"
}

# ------------------------------------------------------------------ (a)
echo
echo "(a) hook time for one new version on a $total-version server ($PUSHES pushes, target: median <= $MAX_MS ms)"
a_wall=()
a_cpu=()
for i in $(seq 1 "$PUSHES"); do
  m=$(printf 'bench/m%03d' $(((i * 37) % MODELS)))
  printf 'new version %d\n' "$i" >"$work/tiny/weights.bin"
  push_version "$work/tiny" "$m" "2.0.$i"
  last_hook
  a_wall+=("$WALL_MS")
  a_cpu+=("$CPU_MS")
done
printf '  hook wall ms: %s\n' "${a_wall[*]}"
printf '  hook CPU ms:  %s\n' "${a_cpu[*]}"
a_judged=a_$JUDGE[@]
a_median=$(printf '%s\n' "${!a_judged}" | median)
if awk -v m="$a_median" -v t="$MAX_MS" 'BEGIN { exit !(m > t) }'; then
  fail "(a) median hook $JUDGE time $a_median ms > $MAX_MS ms"
fi

# ------------------------------------------------------------------ (b)
echo
echo "(b) hook time for a ${SMALL_MIB} MiB vs a ${BIG_MIB} MiB version ($SIZE_RUNS pushes each, target: within $SIZE_TOL_PCT % + $NOISE_MS ms)"
mkdir -p "$work/small" "$work/big"
head -c "${SMALL_MIB}M" /dev/urandom >"$work/small/model.safetensors"
head -c "${BIG_MIB}M" /dev/urandom >"$work/big/model.safetensors"
small_wall=()
small_cpu=()
big_wall=()
big_cpu=()
for i in $(seq 1 "$SIZE_RUNS"); do
  # New bytes each run: an unchanged file would reuse the earlier blob.
  for size in small big; do
    printf 'run %08d' "$i" | dd of="$work/$size/model.safetensors" bs=1 seek=0 conv=notrunc status=none
    t_push=$(now_s)
    push_version "$work/$size" "bench/size-$size" "1.0.$i"
    wall=$(awk -v a="$t_push" -v b="$(now_s)" 'BEGIN { printf "%.1f", b - a }')
    last_hook
    printf '  %-5s run %d: hook %7.1f ms wall, %7.1f ms CPU   (whole mvault add + push: %s s)\n' \
      "$size" "$i" "$WALL_MS" "$CPU_MS" "$wall"
    if [ "$size" = small ]; then
      small_wall+=("$WALL_MS")
      small_cpu+=("$CPU_MS")
    else
      big_wall+=("$WALL_MS")
      big_cpu+=("$CPU_MS")
    fi
  done
done
rm -rf "$work/small" "$work/big"
small_judged=small_$JUDGE[@]
big_judged=big_$JUDGE[@]
small_median=$(printf '%s\n' "${!small_judged}" | median)
big_median=$(printf '%s\n' "${!big_judged}" | median)
limit=$(awk -v s="$small_median" -v p="$SIZE_TOL_PCT" -v n="$NOISE_MS" 'BEGIN { printf "%.3f", s * (1 + p / 100) + n }')
if awk -v b="$big_median" -v l="$limit" 'BEGIN { exit !(b > l) }'; then
  fail "(b) ${BIG_MIB} MiB median hook $JUDGE time $big_median ms > $limit ms (${SMALL_MIB} MiB median $small_median ms + $SIZE_TOL_PCT % + $NOISE_MS ms)"
fi

"$MVAULT" hook log verify "$server" >/dev/null || fail "the decision log's chain is broken"

# ------------------------------------------------------------------ summary
row() { # LABEL TARGET WALL-ARRAY-NAME CPU-ARRAY-NAME
  local -n w=$3 c=$4
  local med lo hi cmed
  med=$(printf '%s\n' "${w[@]}" | median)
  read -r lo hi < <(printf '%s\n' "${w[@]}" | minmax)
  cmed=$(printf '%s\n' "${c[@]}" | median)
  printf '  %-38s %4d %10.1f %8.1f %8.1f %10.1f %10s\n' "$1" "${#w[@]}" "$med" "$lo" "$hi" "$cmed" "$2"
}
echo
echo "summary: hook time (shell shim + mvault hook pre-receive), ms; targets apply to the $JUDGE time; sync before each hook: $SYNC"
printf '  %-38s %4s %10s %8s %8s %10s %10s\n' "case" "runs" "wall med" "min" "max" "CPU med" "target"
row "(a) 1 new version, $total-version server" "<= $MAX_MS" a_wall a_cpu
row "(b) ${SMALL_MIB} MiB version" "-" small_wall small_cpu
row "(b) ${BIG_MIB} MiB version" "<= $limit" big_wall big_cpu

echo
if ((failures)); then
  echo "bench: $failures target(s) missed"
  exit 1
fi
echo "bench: all targets met"
