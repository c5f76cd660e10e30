#!/usr/bin/env bash
# Benchmarks of the vault core (see bench/README.md):
#   (a) add + pull of a 2 GiB file: peak RSS must stay under 128 MiB;
#   (b) add of 1 GiB and of 8 x 128 MiB, and pull, against the best stock
#       pipeline on the same bytes (openssl dgst -sha256 + age -e, file after
#       file; age -d + openssl dgst -sha256), measured in the same run: time
#       ratios and CPU%;
#   (c) add of a 1 GiB version with its push to a bare server guarded by the
#       hook, end to end; the git push inside it; a plain clone of the server
#       and a pull in that clone (which fetches what the clone lacks): MB/s
#       and peak RSS.
# Only the CLI and stock git are used, never the repository's layout: what a
# version stores, and where, may change without changing this script.
# Run after `cargo build --release`: bash bench/core.sh
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MVAULT=${MVAULT:-$root/target/release/mvault}

# Sizes in MiB (smaller values make a quick smoke run) and targets.
BIG_MIB=${BENCH_BIG_MIB:-2048}
MID_MIB=${BENCH_MID_MIB:-1024}
PART_MIB=${BENCH_PART_MIB:-128}
PARTS=8
RUNS=${BENCH_RUNS:-3}                 # runs of each timing in (b); the best counts
MAX_RSS_MIB=${BENCH_MAX_RSS_MIB:-128}
MAX_RATIO=${BENCH_MAX_RATIO-0.8}      # empty: report ratios without judging them
MIN_CPU=${BENCH_MIN_CPU-150}          # CPU% of add/pull of one big file; empty: report only
MIN_GIT_MBPS=${BENCH_MIN_GIT_MBPS:-50}
MAX_GIT_RSS_MIB=${BENCH_MAX_GIT_RSS_MIB:-256}
# Work on the project's disk, not tmpfs: the page cache path of a real disk
# is part of what is measured, and the files would otherwise sit in RAM.
BASE=${BENCH_TMPDIR:-$root/target}

die() {
  echo "bench: $*" >&2
  exit 2
}

[ -x "$MVAULT" ] || die "$MVAULT not found; run cargo build --release first (or set MVAULT)"
for tool in age:age age-keygen:age openssl:openssl sha256sum:coreutils git:git ssh-keygen:openssh-client cmp:diffutils; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || die "install ${tool%%:*} (apt-get install ${tool#*:})"
done
[ -x /usr/bin/time ] || die "install /usr/bin/time (apt-get install time)"

mkdir -p "$BASE"
[ "$(stat -f -c %T "$BASE")" != tmpfs ] ||
  die "$BASE is tmpfs; set BENCH_TMPDIR to a directory on a disk"
need_mib=$((BIG_MIB * 3 + MID_MIB * 2))
free_mib=$(df -Pm "$BASE" | awk 'NR == 2 { print $4 }')
((free_mib > need_mib)) || die "$BASE has $free_mib MiB free, the bench needs about $need_mib MiB"

work=$(mktemp -d "$BASE/mvault-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT

# Hermetic, like the tests: no user config, fixed clock.
export HOME=$work/home GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
export MVAULT_NOW=1795341600 LC_ALL=C TZ=UTC
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@mvault
export GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@mvault
unset MVAULT_USER GL_USER REMOTE_USER
mkdir -p "$HOME"

failures=0
fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}

# measure LABEL CMD...: runs CMD under /usr/bin/time -v and sets SECS (wall),
# CPU_S (user + system seconds), CPU (CPU_S / SECS in percent of one core;
# 200 = both cores busy) and RSS_MIB.
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
  CPU_S=$(awk -F': ' '/(User|System) time \(seconds\)/ { s += $2 } END { printf "%.2f", s }' "$work/time.txt")
  # A zero elapsed time would make rates meaningless.
  SECS=$(awk -v s="$SECS" 'BEGIN { if (s < 0.01) s = 0.01; print s }')
  printf '  %-50s %6.2f s  %4s%% CPU (%6.2f s)  %6s MiB peak RSS\n' "$label" "$SECS" "$CPU" "$CPU_S" "$RSS_MIB"
}

check_rss() { # LABEL [LIMIT_MIB]
  local label=$1 max=${2:-$MAX_RSS_MIB}
  if awk -v r="$RSS_MIB" -v m="$max" 'BEGIN { exit !(r >= m) }'; then
    fail "$label: peak RSS $RSS_MIB MiB, target < $max MiB"
  fi
}

check_cpu() {
  local label=$1
  if [ -n "$MIN_CPU" ] && awk -v c="$CPU" -v m="$MIN_CPU" 'BEGIN { exit !(c < m) }'; then
    fail "$label: $CPU% CPU, target >= $MIN_CPU% (200% = both cores busy)"
  fi
}

ratio() {
  awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'
}

mbps() { # MIB SECS
  awk -v mib="$1" -v s="$2" 'BEGIN { printf "%.1f", mib * 1.048576 / s }'
}

min() {
  awk -v a="$1" -v b="$2" 'BEGIN { print (b == "" || a < b) ? a : b }'
}

# ------------------------------------------------------------ the machine
cpu_flags=$(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2)
has() { case " $cpu_flags " in *" $1 "*) echo "$1" ;; *) echo "-$1" ;; esac }
echo "mvault bench: $MVAULT ($("$MVAULT" --version))"
echo "  cpu:     $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) cores"
echo "  cpu has: $(for f in sha_ni avx2 avx512f avx512vl aes vaes pclmulqdq vpclmulqdq bmi2 adx; do has $f; done | tr '\n' ' ')(-x: absent)"
echo "  tools:   $(openssl version | cut -d' ' -f1-2), age $(age --version), $(git --version), $(sha256sum --version | head -1)"
echo "  disk:    $(df -Ph "$work" | awk 'NR == 2 { print $1 ", " $4 " free of " $2 }'), work dir $work"
echo "  load:    $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine inflates wall times)"
if awk -v l="$(cut -d' ' -f1 /proc/loadavg)" 'BEGIN { exit !(l > 1) }'; then
  busy="  note: the machine was busy before the bench started; mvault uses both cores, the stock tools
        one, so other work costs mvault more wall time than the stock tools (see the CPU columns)"
  echo "$busy"
fi

# The payload cipher alone, in memory on one core: the age crate's stream
# against mvault's (ring's ChaCha20-Poly1305 in the same age file).
CIPHER_BENCH=${CIPHER_BENCH:-$root/target/release/examples/payload_cipher}
if [ ! -x "$CIPHER_BENCH" ]; then
  command -v cargo >/dev/null 2>&1 || die "$CIPHER_BENCH not found and no cargo to build it"
  echo "bench: building examples/payload_cipher" >&2
  (cd "$root" && cargo build -q --release --example payload_cipher) || die "cannot build payload_cipher"
fi
echo
"$CIPHER_BENCH" 256 | sed 's/^/  /'
echo

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
echo "(b) throughput against the best stock pipeline, best of $RUNS runs each (ratio = mvault / stock)"
random_file "$work/b-one/weights.bin" "$MID_MIB"
for i in $(seq 1 "$PARTS"); do
  random_file "$work/b-parts/part-$i.bin" "$PART_MIB"
done

# The stock hasher: whichever of openssl and coreutils is faster here (with
# SHA extensions openssl is several times faster; without, they are close).
echo "  stock SHA-256 of ${MID_MIB} MiB, to pick the hasher:"
measure "openssl dgst -sha256" openssl dgst -sha256 "$work/b-one/weights.bin"
openssl_s=$SECS
measure "sha256sum" sha256sum "$work/b-one/weights.bin"
if awk -v a="$SECS" -v b="$openssl_s" 'BEGIN { exit !(a < b) }'; then
  hasher=sha256sum
else
  hasher="openssl dgst -sha256"
fi
echo "  => stock hasher: $hasher ($(mbps "$MID_MIB" "$(min "$openssl_s" "$SECS")") MB/s)"

stock_add() { # DIR OUT: file after file, hash it, then encrypt it
  local dir=$1 out=$2 f
  mkdir -p "$out"
  for f in "$dir"/*; do
    $hasher "$f" >/dev/null
    age -e -r "$recipient" -o "$out/$(basename "$f").age" "$f"
  done
}
stock_pull() { # DIR OUT: file after file, decrypt it, then hash it
  local dir=$1 out=$2 f o
  mkdir -p "$out"
  for f in "$dir"/*.age; do
    o=$out/$(basename "$f" .age)
    age -d -i "$work/stock.key" -o "$o" "$f"
    $hasher "$o" >/dev/null
  done
}
export -f stock_add stock_pull
export recipient work hasher

declare -A best
summary=()
for case in one parts; do
  dir=$work/b-$case
  if [ "$case" = one ]; then label="1 x ${MID_MIB} MiB"; else label="${PARTS} x ${PART_MIB} MiB"; fi
  echo "  -- $label"
  for run in $(seq 1 "$RUNS"); do
    measure "stock $hasher + age -e, run $run" bash -c 'stock_add "$1" "$2"' _ "$dir" "$work/b-stock"
    best[stock_add]=$(min "$SECS" "${best[stock_add]:-}")
    best[stock_add_cpu_s]=$(min "$CPU_S" "${best[stock_add_cpu_s]:-}")
    new_vault "$work/b"
    measure "mvault add, run $run" "${alice[@]}" -C "$work/b" add "$dir" --model "bench/$case" --version 1.0.0 --no-push
    check_rss "add $label"
    if [ -z "${best[add]:-}" ] || awk -v s="$SECS" -v b="${best[add]}" 'BEGIN { exit !(s < b) }'; then
      best[add]=$SECS best[add_cpu]=$CPU
    fi
    best[add_cpu_s]=$(min "$CPU_S" "${best[add_cpu_s]:-}")
    measure "stock age -d + $hasher, run $run" bash -c 'stock_pull "$1" "$2"' _ "$work/b-stock" "$work/b-stock-out"
    best[stock_pull]=$(min "$SECS" "${best[stock_pull]:-}")
    best[stock_pull_cpu_s]=$(min "$CPU_S" "${best[stock_pull_cpu_s]:-}")
    measure "mvault pull, run $run" "${alice[@]}" -C "$work/b" pull "bench/$case@1.0.0" -o "$work/b-out"
    check_rss "pull $label"
    if [ -z "${best[pull]:-}" ] || awk -v s="$SECS" -v b="${best[pull]}" 'BEGIN { exit !(s < b) }'; then
      best[pull]=$SECS best[pull_cpu]=$CPU
    fi
    best[pull_cpu_s]=$(min "$CPU_S" "${best[pull_cpu_s]:-}")
    if [ "$run" = 1 ]; then
      diff -rq "$dir" "$work/b-out" >/dev/null || fail "pull $label: output differs from input"
    fi
    rm -rf "$work/b" "$work/b-stock" "$work/b-stock-out" "$work/b-out"
  done
  for op in add pull; do
    r=$(ratio "${best[$op]}" "${best[stock_$op]}")
    summary+=("$(printf '  %-5s %-15s %7.2f s %5s%%  %7.2f s  %5s  %5s    %6.2f s  %6.2f s  %5s' \
      "$op" "$label" "${best[$op]}" "${best[${op}_cpu]}" "${best[stock_$op]}" "$r" "${MAX_RATIO:-—}" \
      "${best[${op}_cpu_s]}" "${best[stock_${op}_cpu_s]}" "$(ratio "${best[${op}_cpu_s]}" "${best[stock_${op}_cpu_s]}")")")
    if [ -n "$MAX_RATIO" ] && awk -v r="$r" -v m="$MAX_RATIO" 'BEGIN { exit !(r > m) }'; then
      fail "$op $label: mvault/stock = $r, target <= $MAX_RATIO"
    fi
    if [ "$case" = one ]; then
      CPU=${best[${op}_cpu]}
      check_cpu "$op $label"
    fi
  done
  best=()
done
rm -rf "$work/b-one" "$work/b-parts"
echo "  summary: wall time of the best run of each (mvault's CPU% in that run; target for one file >= ${MIN_CPU:-—}%),"
echo "  and the least CPU time (user + system) of any run, which other load on the machine inflates less:"
printf '  %-5s %-15s %9s %6s  %9s  %5s  %5s    %8s  %8s  %5s\n' "" "" mvault "CPU" stock ratio max "mvault" "stock" ratio
printf '  %-5s %-15s %9s %6s  %9s  %5s  %5s    %8s  %8s  %5s\n' "" "" "(wall)" "" "(wall)" "" "" "(CPU)" "(CPU)" ""
printf '%s\n' "${summary[@]}"
[ -z "${busy:-}" ] || echo "$busy"

# ------------------------------------------------------------------ (c)
echo
echo "(c) a ${MID_MIB} MiB version through a bare server guarded by the hook"
# The server holds the vault's record, pushed with stock git before the
# hook exists (as the tests' servers), then set up by `mvault hook install`
# (hook, pinned root key, its git settings): no hand-made settings.
new_vault "$work/c"
git init -q --bare -b main "$work/server.git"
git -C "$work/c" push -q "$work/server.git" main
git -C "$work/c" push -q --tags "$work/server.git"
"$MVAULT" hook install "$work/server.git" --root-key "$work/admin.pub" >/dev/null
git clone -q --no-checkout "$work/server.git" "$work/c-alice"
random_file "$work/c-in/weights.bin" "$MID_MIB"

# mvault runs stock git for its transfers. A `git` first on PATH times each
# push and fetch it makes (wall time, peak RSS of the git process tree),
# whatever refs and objects they carry.
real_git=$(command -v git)
mkdir -p "$work/bin"
cat >"$work/bin/git" <<EOF
#!/usr/bin/env bash
sub=
skip=0
for a in "\$@"; do
  if ((skip)); then skip=0; continue; fi
  case \$a in
    -C | -c | --git-dir | --work-tree | --namespace) skip=1 ;;
    -*) ;;
    *) sub=\$a; break ;;
  esac
done
case \$sub in
  push | fetch) exec /usr/bin/time -a -o "$work/transfers.txt" -f "\$sub %e %M" "$real_git" "\$@" ;;
  *) exec "$real_git" "\$@" ;;
esac
EOF
chmod +x "$work/bin/git"
transfers() { # KIND: total seconds, largest peak RSS (MiB) and number of the logged KIND runs; forgets them
  touch "$work/transfers.txt"
  awk -v k="$1" '$1 == k { s += $2; if ($3 > m) m = $3; n++ }
    END { if (s < 0.01) s = 0.01; printf "%s %.1f %d\n", s, m / 1024, n }' "$work/transfers.txt"
  rm -f "$work/transfers.txt"
}
check_transport() { # LABEL SECS RSS_MIB
  local label=$1 secs=$2 rss=$3 rate
  rate=$(mbps "$MID_MIB" "$secs")
  echo "  => $label: $rate MB/s, peak RSS $rss MiB (targets >= $MIN_GIT_MBPS MB/s, < $MAX_GIT_RSS_MIB MiB)"
  if awk -v r="$rate" -v m="$MIN_GIT_MBPS" 'BEGIN { exit !(r < m) }'; then
    fail "$label: $rate MB/s, target >= $MIN_GIT_MBPS MB/s"
  fi
  if awk -v r="$rss" -v m="$MAX_GIT_RSS_MIB" 'BEGIN { exit !(r >= m) }'; then
    fail "$label: peak RSS $rss MiB, target < $MAX_GIT_RSS_MIB MiB"
  fi
}

# alice adds in her clone; the server learns who pushes from MVAULT_USER,
# as sshd's authorized_keys would set it.
measure "mvault add + push (end to end)" env PATH="$work/bin:$PATH" MVAULT_USER=alice \
  "${alice[@]}" -C "$work/c-alice" add "$work/c-in" --model bench/push --version 1.0.0
add_push_s=$SECS add_push_rss=$RSS_MIB
read -r push_s push_rss pushes < <(transfers push)
((pushes >= 1)) || fail "add + push: mvault ran no git push"
echo "  => add + push: $(mbps "$MID_MIB" "$add_push_s") MB/s end to end, peak RSS $add_push_rss MiB (mvault with git under it)"
check_transport "git push inside add ($pushes run(s), ${push_s} s)" "$push_s" "$push_rss"

# A consumer's plain clone, then a pull there: the pull fetches whatever the
# clone lacks, so clone + fetch is what moved the version over the wire.
measure "git clone --no-checkout" git clone -q --no-checkout --no-local "$work/server.git" "$work/c-clone"
clone_s=$SECS clone_rss=$RSS_MIB
echo "  => the clone holds $(du -sm "$work/c-clone" | cut -f1) MiB"
measure "mvault pull in the clone (end to end)" env PATH="$work/bin:$PATH" \
  "${alice[@]}" -C "$work/c-clone" pull bench/push@1.0.0 -o "$work/c-out"
pull_e2e_s=$SECS
read -r fetch_s fetch_rss fetches < <(transfers fetch)
if ((fetches == 0)); then fetch_s=0 fetch_rss=0; fi
echo "  => pull in the clone: $(mbps "$MID_MIB" "$pull_e2e_s") MB/s end to end (fetched in $fetches git fetch run(s), ${fetch_s} s)"
check_transport "git clone + fetch of the version" \
  "$(awk -v a="$clone_s" -v b="$fetch_s" 'BEGIN { print a + b }')" \
  "$(awk -v a="$clone_rss" -v b="$fetch_rss" 'BEGIN { print (a > b) ? a : b }')"
cmp -s "$work/c-in/weights.bin" "$work/c-out/weights.bin" || fail "pull in the clone: output differs from input"
rm -rf "$work/c-out"
# Again, now that the clone holds the version: mvault alone, from where
# git put the objects.
measure "mvault pull in the clone, again" "${alice[@]}" -C "$work/c-clone" pull bench/push@1.0.0 -o "$work/c-out"
check_rss "pull ${MID_MIB} MiB in a clone"

echo
echo "  load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
if ((failures)); then
  echo "bench: $failures target(s) missed"
  exit 1
fi
echo "bench: all targets met"
