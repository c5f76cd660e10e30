#!/usr/bin/env bash
# Benchmarks of the vault core (see bench/README.md):
#   (a) add + pull of a 2 GiB file: peak RSS must stay under 128 MiB;
#   (b) add of 1 GiB and of 8 x 128 MiB, and pull, against stock
#       sha256sum + age on the same bytes: time ratio and CPU%;
#   (c) stock git push of a 1 GiB version to a bare server and git clone of
#       it: MB/s and peak RSS.
# Run after `cargo build --release`: bash bench/core.sh
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MVAULT=${MVAULT:-$root/target/release/mvault}

# Sizes in MiB (smaller values make a quick smoke run) and targets.
BIG_MIB=${BENCH_BIG_MIB:-2048}
MID_MIB=${BENCH_MID_MIB:-1024}
PART_MIB=${BENCH_PART_MIB:-128}
PARTS=8
MAX_RSS_MIB=${BENCH_MAX_RSS_MIB:-128}
MAX_RATIO=${BENCH_MAX_RATIO:-} # optional: fail if mvault/stock exceeds it

die() {
  echo "bench: $*" >&2
  exit 2
}

[ -x "$MVAULT" ] || die "$MVAULT not found; run cargo build --release first (or set MVAULT)"
for tool in age:age age-keygen:age sha256sum:coreutils git:git ssh-keygen:openssh-client cmp:diffutils; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || die "install ${tool%%:*} (apt-get install ${tool#*:})"
done
[ -x /usr/bin/time ] || die "install /usr/bin/time (apt-get install time)"

work=$(mktemp -d "${TMPDIR:-/tmp}/mvault-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT

# Hermetic, like the tests: no user config, fixed clock.
export HOME=$work/home GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
export MVAULT_NOW=1795341600 LC_ALL=C TZ=UTC
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@mvault
export GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@mvault
mkdir -p "$HOME"

failures=0
fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}

# measure LABEL CMD...: runs CMD under /usr/bin/time -v and sets SECS, RSS_MIB
# and CPU (percent of one core; 200 = both cores busy).
measure() {
  local label=$1
  shift
  if ! /usr/bin/time -v -o "$work/time.txt" "$@" >"$work/cmd.out" 2>&1; then
    cat "$work/cmd.out" >&2
    die "$label: command failed: $*"
  fi
  SECS=$(awk -F': ' '/Elapsed \(wall clock\) time/ {
           n = split($2, a, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + a[i]; print s }' "$work/time.txt")
  RSS_MIB=$(awk -F': ' '/Maximum resident set size/ { printf "%.1f", $2 / 1024 }' "$work/time.txt")
  CPU=$(awk -F': ' '/Percent of CPU this job got/ { sub("%", "", $2); print $2 }' "$work/time.txt")
  # A zero elapsed time would make rates meaningless.
  SECS=$(awk -v s="$SECS" 'BEGIN { if (s < 0.01) s = 0.01; print s }')
  printf '  %-44s %8.2f s  %6s%% CPU  %8s MiB peak RSS\n' "$label" "$SECS" "$CPU" "$RSS_MIB"
}

check_rss() {
  local label=$1
  if awk -v r="$RSS_MIB" -v m="$MAX_RSS_MIB" 'BEGIN { exit !(r >= m) }'; then
    fail "$label: peak RSS $RSS_MIB MiB, target < $MAX_RSS_MIB MiB"
  fi
}

ratio() {
  awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'
}

check_ratio() {
  local label=$1 value=$2
  echo "  => $label: mvault/stock = $value"
  if [ -n "$MAX_RATIO" ] && awk -v r="$value" -v m="$MAX_RATIO" 'BEGIN { exit !(r > m) }'; then
    fail "$label: ratio $value, target <= $MAX_RATIO"
  fi
}

mbps() {
  awk -v mib="$1" -v s="$2" 'BEGIN { printf "%.1f", mib * 1.048576 / s }'
}

# A vault with alice, ml_engineer on bench/*, like the tests'.
ssh-keygen -q -t ed25519 -N '' -C admin -f "$work/admin"
ssh-keygen -q -t ed25519 -N '' -C alice -f "$work/alice"
new_vault() {
  local dir=$1
  "$MVAULT" --key "$work/admin" init "$dir" --admin-key "$work/admin.pub" >/dev/null
  "$MVAULT" --key "$work/admin" -C "$dir" policy add-user alice --key-file "$work/alice.pub" >/dev/null
  "$MVAULT" --key "$work/admin" -C "$dir" policy grant alice --role ml_engineer --models 'bench/*' >/dev/null
}
# mvault as alice (an array, not a function: /usr/bin/time execs its command)
alice=("$MVAULT" --key "$work/alice")

random_file() { # PATH MIB
  mkdir -p "$(dirname "$1")"
  head -c "$2M" /dev/urandom >"$1"
}

age-keygen -o "$work/stock.key" 2>/dev/null
recipient=$(age-keygen -y "$work/stock.key")

echo "mvault bench: $MVAULT, $(nproc) cores, work dir $work"

# ------------------------------------------------------------------ (a)
echo
echo "(a) memory: add + pull of a ${BIG_MIB} MiB file (target: peak RSS < ${MAX_RSS_MIB} MiB)"
new_vault "$work/a"
random_file "$work/a-in/weights.bin" "$BIG_MIB"
measure "mvault add ${BIG_MIB} MiB" "${alice[@]}" -C "$work/a" add "$work/a-in" --model bench/big --version 1.0.0 --no-push
check_rss "add ${BIG_MIB} MiB"
measure "mvault pull ${BIG_MIB} MiB" "${alice[@]}" -C "$work/a" pull bench/big@1.0.0 -o "$work/a-out"
check_rss "pull ${BIG_MIB} MiB"
cmp -s "$work/a-in/weights.bin" "$work/a-out/weights.bin" || fail "pull ${BIG_MIB} MiB: output differs from input"
rm -rf "$work/a" "$work/a-in" "$work/a-out"

# ------------------------------------------------------------------ (b)
echo
echo "(b) throughput against stock sha256sum + age (ratio = mvault time / stock time)"
new_vault "$work/b"
random_file "$work/b-one/weights.bin" "$MID_MIB"
for i in $(seq 1 "$PARTS"); do
  random_file "$work/b-parts/part-$i.bin" "$PART_MIB"
done

stock_add() { # DIR OUT: hash every file, then encrypt it
  local dir=$1 out=$2 f
  mkdir -p "$out"
  sha256sum "$dir"/* >/dev/null
  for f in "$dir"/*; do
    age -e -r "$recipient" -o "$out/$(basename "$f").age" "$f"
  done
}
stock_pull() { # DIR OUT: decrypt every file, then hash it
  local dir=$1 out=$2 f
  mkdir -p "$out"
  for f in "$dir"/*.age; do
    age -d -i "$work/stock.key" -o "$out/$(basename "$f" .age)" "$f"
  done
  sha256sum "$out"/* >/dev/null
}
export -f stock_add stock_pull
export recipient work

for case in one parts; do
  dir=$work/b-$case
  if [ "$case" = one ]; then label="1 x ${MID_MIB} MiB"; else label="${PARTS} x ${PART_MIB} MiB"; fi

  measure "stock sha256sum + age -e, $label" bash -c 'stock_add "$1" "$2"' _ "$dir" "$work/b-stock-$case"
  stock_add_s=$SECS
  measure "mvault add, $label" "${alice[@]}" -C "$work/b" add "$dir" --model "bench/$case" --version 1.0.0 --no-push
  check_ratio "add $label" "$(ratio "$SECS" "$stock_add_s")"
  check_rss "add $label"

  measure "stock age -d + sha256sum, $label" bash -c 'stock_pull "$1" "$2"' _ "$work/b-stock-$case" "$work/b-stock-out-$case"
  stock_pull_s=$SECS
  measure "mvault pull, $label" "${alice[@]}" -C "$work/b" pull "bench/$case@1.0.0" -o "$work/b-out-$case"
  check_ratio "pull $label" "$(ratio "$SECS" "$stock_pull_s")"
  check_rss "pull $label"
  diff -rq "$dir" "$work/b-out-$case" >/dev/null || fail "pull $label: output differs from input"
  rm -rf "$work/b-stock-$case" "$work/b-stock-out-$case" "$work/b-out-$case"
done
rm -rf "$work/b" "$work/b-one" "$work/b-parts"

# ------------------------------------------------------------------ (c)
echo
echo "(c) stock git transport of a ${MID_MIB} MiB version"
new_vault "$work/c"
random_file "$work/c-in/weights.bin" "$MID_MIB"
"${alice[@]}" -C "$work/c" add "$work/c-in" --model bench/push --version 1.0.0 --no-push >/dev/null
# The server as `mvault hook install` sets it up (hook, pinned root key,
# receive.unpackLimit, pack windows, no delta search): no hand-made settings.
git init -q --bare -b main "$work/server.git"
"$MVAULT" hook install "$work/server.git" --root-key "$work/admin.pub" >/dev/null
git -C "$work/c" remote add origin "$work/server.git"

# Transport targets: at least 50 MB/s, peak RSS under 256 MiB.
check_transport() {
  local label=$1 rate
  rate=$(mbps "$MID_MIB" "$SECS")
  echo "  => $label: $rate MB/s, peak RSS $RSS_MIB MiB"
  if awk -v r="$rate" 'BEGIN { exit !(r < 50) }'; then
    fail "$label: $rate MB/s, target >= 50 MB/s"
  fi
  if awk -v r="$RSS_MIB" 'BEGIN { exit !(r >= 256) }'; then
    fail "$label: peak RSS $RSS_MIB MiB, target < 256 MiB"
  fi
}
# The history holds the admin's policy commits too: the admin pushes it.
measure "git push ${MID_MIB} MiB" env MVAULT_USER=admin git -C "$work/c" push -q origin main 'refs/tags/*:refs/tags/*'
check_transport "git push"
# A vault clone has no work tree of blobs (the README's `git clone
# --no-checkout`): checking ciphertext out would put the model on disk twice,
# and git maps a blob it checks out whole, which counts in its RSS.
measure "git clone ${MID_MIB} MiB" git clone -q --no-checkout --no-local "$work/server.git" "$work/c-clone"
check_transport "git clone"
# A consumer pulls from a clone, where the blobs sit in a pack: memory must
# stay flat there too.
measure "mvault pull from the clone" "${alice[@]}" -C "$work/c-clone" pull bench/push@1.0.0 -o "$work/c-out"
check_rss "pull ${MID_MIB} MiB from a clone"
cmp -s "$work/c-in/weights.bin" "$work/c-out/weights.bin" || fail "pull after clone: output differs from input"

echo
if ((failures)); then
  echo "bench: $failures target(s) missed"
  exit 1
fi
echo "bench: all targets met"
