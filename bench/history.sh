#!/usr/bin/env bash
# The client side of add, pull and promote as the record grows (see
# bench/README.md): a hooked server holding 100 versions, and one holding
# 10,000 (100 models; real signed versions made with `mvault add`), and on
# each a fresh plain `git clone` in which the commands are timed:
#   add --no-push of a tiny version; add with its push; pull of one version
#   (its payload fetched from the server); pull of MODEL#staging; promote
#   --to staging with its push.
# Target: the median at 10,000 versions within 1.5 x the median at 100.
# The server's hook is timed by a wrapper and subtracted from add and
# promote, so the numbers are the client's (bench/hook.sh covers the hook).
# Run after `cargo build --release`: bash bench/history.sh
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MVAULT=${MVAULT:-$root/target/release/mvault}
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"

MODELS=${BENCH_HISTORY_MODELS:-100}      # models in the record
AT=${BENCH_HISTORY_AT:-"100 10000"}      # record sizes to measure at, the first is the baseline
RUNS=${BENCH_HISTORY_RUNS:-5}            # timed runs of each command at each size
MAX_RATIO=${BENCH_HISTORY_MAX_RATIO:-1.5} # last size / first size, per command
JUDGE=${BENCH_HISTORY_JUDGE:-cpu}        # the time the target applies to: cpu or wall
TRACE=${BENCH_HISTORY_TRACE:-1}          # 1: count the processes each command runs (strace)

case $JUDGE in wall | cpu) ;; *) die "BENCH_HISTORY_JUDGE must be wall or cpu" ;; esac
read -r -a sizes <<<"$AT"
((${#sizes[@]} >= 2)) || die "BENCH_HISTORY_AT needs two sizes or more"
((sizes[0] >= MODELS)) || die "the smallest size must give every model a version (BENCH_HISTORY_AT >= BENCH_HISTORY_MODELS)"
# Every run and size uses models of its own (see model_at below).
span=$((RUNS * ${#sizes[@]}))
((3 * span + 2 * ${#sizes[@]} + RECORD_PROMOTED <= MODELS)) ||
  die "BENCH_HISTORY_MODELS must be at least (3 x BENCH_HISTORY_RUNS + 2) x the number of sizes + $RECORD_PROMOTED"

bench_setup history
echo "mvault history bench: $MVAULT, work dir $work"
cpu_line
if ((TRACE)) && ! command -v strace >/dev/null 2>&1; then
  echo "  (strace not found: no process counts)"
  TRACE=0
fi

keys admin alice bob
hook_times=$work/hook-times.txt
: >"$hook_times"
export MVAULT_BENCH_TIMES=$hook_times

# time_hook SERVER: the installed shim moves aside and a wrapper records the
# wall and CPU time (user + system of the shim and mvault) of each run.
time_hook() {
  local hooks=$1/hooks
  mv "$hooks/pre-receive" "$hooks/pre-receive.mvault"
  cp "$work/hook-wrapper" "$hooks/pre-receive"
  chmod +x "$hooks/pre-receive"
}
cat >"$work/hook-wrapper" <<'WRAPPER'
#!/usr/bin/env bash
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

# hooked LABEL CMD...: `timed`, for a command that pushes once: sets HOOK_WALL
# and HOOK_CPU of that push (0 when it did not push).
hooked() {
  local before rc
  before=$(wc -l <"$hook_times")
  timed "$@"
  HOOK_WALL=0
  HOOK_CPU=0
  if (($(wc -l <"$hook_times") > before)); then
    read -r HOOK_WALL HOOK_CPU rc < <(tail -n 1 "$hook_times")
    [ "$rc" = 0 ] || die "$1: the hook refused the push"
  fi
}

samples=$work/samples
mkdir -p "$samples" "$work/tiny"
sample() { # ROW SIZE WALL CPU
  echo "$3 $4" >>"$samples/$1.$2"
}
minus() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a - b }'; }

# trace_execs LABEL CMD...: runs CMD once under strace and prints the
# programs it started, by git subcommand ("git merge-base x 102").
trace_execs() {
  local label=$1
  shift
  strace -f -qq -s 256 -e trace=execve -e signal=none -o "$work/trace.txt" "$@" >/dev/null 2>&1 || true
  printf '    %-34s %s\n' "$label:" "$(awk '
    / execve\(/ && !/ENOENT/ {
      if (match($0, /\["[^"]*"(, "[^"]*")?/)) {
        s = substr($0, RSTART + 1, RLENGTH - 1); gsub(/"/, "", s); sub(/^[^,]*\//, "", s)
        n = split(s, w, ", "); name = w[1]
        if (name == "git" && n > 1) name = name " " w[2]
        if (name == "sh" && n > 1) name = "sh -c"
        c[name]++
      }
    }
    END { for (k in c) printf "%s x %d, ", k, c[k] }' "$work/trace.txt" | sed 's/, $//')"
}

bob=(env MVAULT_USER=bob "$MVAULT" --key "$work/bob")
alice=(env MVAULT_USER=alice "$MVAULT" --key "$work/alice")
# Model number N, spread over the models the record did not promote (37 is
# prime to 95). Runs add to and promote models 1..span and pull from
# span+1..2 span; the first pull of size k uses 2 span + k, the traced runs
# 2 span + sizes + k, the fetch then local pull 2 span + 2 sizes + 1..3 span
# + 2 sizes: no command finds a payload an earlier one fetched, or a stage an
# earlier one set.
model_at() { printf 'bench/m%03d' $((RECORD_PROMOTED + ($1 * 37) % (MODELS - RECORD_PROMOTED))); }
# A model the record promoted when it had RECORD_PROMOTE_AT versions.
promoted_at() { printf 'bench/m%03d' $((($1 - 1) % RECORD_PROMOTED)); }

k=0
for size in "${sizes[@]}"; do
  k=$((k + 1))
  echo
  echo "record of $size versions ($MODELS models):"
  # Each size is a server of its own, made the same way.
  server=$work/server-$size.git
  record_server "$server" "$MODELS" "$size"
  ((RECORD_BUILD_S)) && echo "  built in $RECORD_BUILD_S s (mvault add --no-push into the server, one version after the other)"
  time_hook "$server"
  echo "  server: $(git -C "$server" rev-list --count main) commits, $(git -C "$server" for-each-ref | wc -l) refs, $(human "$(dir_bytes "$server")")"

  client=$work/client-$size
  timed "git clone" git clone -q --no-local "$server" "$client"
  echo "  git clone (plain, checked out): $WALL_MS ms wall, $CPU_MS ms CPU; $(human "$(dir_bytes "$client")")"
  # The first mvault command in a new clone replays main from the root keys
  # (once per clone), and this one fetches a payload too.
  timed "first pull" "${bob[@]}" -C "$client" pull "$(model_at $((2 * span + k)))@1.0.1" -o "$work/out"
  rm -rf "$work/out"
  echo "  first mvault command in the clone (pull; replays all of main once): $WALL_MS ms wall, $CPU_MS ms CPU"
  sample first "$k" "$WALL_MS" "$CPU_MS"

  for i in $(seq 1 "$RUNS"); do
    q=$(((k - 1) * RUNS + i)) # a different model each run and size
    m=$(model_at "$q")
    printf 'size %d run %d\n' "$size" "$i" >"$work/tiny/weights.bin"
    # add --no-push: mvault alone; then the same version pushed by stock git
    v="$((k + 1)).0.$i"
    timed "add --no-push" "${alice[@]}" -C "$client" add "$work/tiny" --model "$m" --version "$v" --no-push
    sample add-local "$k" "$WALL_MS" "$CPU_MS"
    a_wall=$WALL_MS
    hooked "git push" env MVAULT_USER=alice git -C "$client" push -q --atomic origin main \
      "refs/tags/$m@v$v" "refs/mvault/data/$m/$v"
    sample git-push "$k" "$WALL_MS" "$CPU_MS"
    p_wall=$WALL_MS
    # add with its push, the hook's own time taken out
    printf 'size %d run %d pushed\n' "$size" "$i" >"$work/tiny/weights.bin"
    v="$((k + 1)).1.$i"
    hooked "add" "${alice[@]}" -C "$client" add "$work/tiny" --model "$m" --version "$v"
    grep -q "pushed to origin" "$work/cmd.out" || die "add $m@$v was not pushed: $(cat "$work/cmd.out")"
    sample add "$k" "$(minus "$WALL_MS" "$HOOK_WALL")" "$(minus "$CPU_MS" "$HOOK_CPU")"
    sample hook-add "$k" "$HOOK_WALL" "$HOOK_CPU"
    d_wall=$WALL_MS dh_wall=$HOOK_WALL
    # pull of one version of the record: its payload comes from the server
    pm=$(model_at $((q + span)))
    timed "pull" "${bob[@]}" -C "$client" pull "$pm@1.0.1" -o "$work/out"
    rm -rf "$work/out"
    sample pull "$k" "$WALL_MS" "$CPU_MS"
    u_wall=$WALL_MS
    # the two halves of that: stock git fetching one payload ref, and mvault
    # pulling a version whose payload the clone already has
    fm=$(model_at $((q + 2 * span + 2 * ${#sizes[@]})))
    timed "git fetch" git -C "$client" fetch -q --no-tags --no-write-fetch-head origin \
      "+refs/mvault/data/$fm/1.0.1:refs/mvault/data/$fm/1.0.1"
    sample git-fetch "$k" "$WALL_MS" "$CPU_MS"
    timed "pull (local)" "${bob[@]}" -C "$client" pull "$fm@1.0.1" -o "$work/out"
    rm -rf "$work/out"
    sample pull-local "$k" "$WALL_MS" "$CPU_MS"
    # promote to staging, with its push, the hook's time taken out
    hooked "promote" "${alice[@]}" -C "$client" promote "$m@1.0.1" --to staging
    sample promote "$k" "$(minus "$WALL_MS" "$HOOK_WALL")" "$(minus "$CPU_MS" "$HOOK_CPU")"
    sample hook-promote "$k" "$HOOK_WALL" "$HOOK_CPU"
    r_wall=$WALL_MS rh_wall=$HOOK_WALL
    # pull of what staging serves: refreshes the record, replays the chain
    timed "pull #staging" "${bob[@]}" -C "$client" pull "$m#staging" -o "$work/out"
    grep -q "$m@1.0.1" "$work/cmd.out" || die "pull $m#staging did not pull $m@1.0.1: $(cat "$work/cmd.out")"
    rm -rf "$work/out"
    sample pull-stage "$k" "$WALL_MS" "$CPU_MS"
    s_wall=$WALL_MS
    # the same, of a model the record promoted when it held 100 versions:
    # at 10,000 versions, a stage set long ago
    om=$(promoted_at "$i")
    timed "pull #staging" "${bob[@]}" -C "$client" pull "$om#staging" -o "$work/out"
    grep -q "$om@1.0.1" "$work/cmd.out" || die "pull $om#staging did not pull $om@1.0.1: $(cat "$work/cmd.out")"
    rm -rf "$work/out"
    sample pull-stage-old "$k" "$WALL_MS" "$CPU_MS"
    printf '  run %d (%s): add --no-push %6.1f ms, git push %6.1f, add %6.1f (hook %5.1f), pull %6.1f, promote %6.1f (hook %5.1f), pull #staging %6.1f, of %s %6.1f ms wall\n' \
      "$i" "$m" "$a_wall" "$p_wall" "$d_wall" "$dh_wall" "$u_wall" "$r_wall" "$rh_wall" "$s_wall" "$om" "$WALL_MS"
  done

  if ((TRACE)); then
    echo "  processes each command starts (one more run of each under strace):"
    m=$(model_at $((2 * span + ${#sizes[@]} + k)))
    printf 'size %d traced\n' "$size" >"$work/tiny/weights.bin"
    trace_execs "add --no-push" "${alice[@]}" -C "$client" add "$work/tiny" --model "$m" --version "$((k + 1)).9.0" --no-push
    MVAULT_USER=alice git -C "$client" push -q --atomic origin main "refs/tags/$m@v$((k + 1)).9.0" "refs/mvault/data/$m/$((k + 1)).9.0" >/dev/null 2>&1 ||
      die "push of the traced version failed"
    printf 'size %d traced, pushed\n' "$size" >"$work/tiny/weights.bin"
    trace_execs "add (with push)" "${alice[@]}" -C "$client" add "$work/tiny" --model "$m" --version "$((k + 1)).9.1"
    trace_execs "pull" "${bob[@]}" -C "$client" pull "$m@1.0.1" -o "$work/out"
    rm -rf "$work/out"
    trace_execs "promote (with push)" "${alice[@]}" -C "$client" promote "$m@1.0.1" --to staging
    trace_execs "pull #staging" "${bob[@]}" -C "$client" pull "$m#staging" -o "$work/out"
    rm -rf "$work/out"
  fi
  rm -rf "$client"
  "$MVAULT" hook log verify "$server" >/dev/null || fail "the decision log's chain is broken ($size versions)"
  rm -rf "$server"
done

# ------------------------------------------------------------------ summary
first=1
last=${#sizes[@]}
med_of() { # ROW K COLUMN(1 wall, 2 cpu) -> median
  awk -v c="$3" '{ print $c }' "$samples/$1.$2" | median
}
echo
echo "summary: medians of $RUNS runs, ms (the hook's own time taken out of add and promote); target: ${sizes[$((last - 1))]} / ${sizes[0]} <= $MAX_RATIO on the $JUDGE time"
printf '  %-44s %10s %10s %10s %10s %8s %8s %8s\n' "command" "wall@${sizes[0]}" "cpu@${sizes[0]}" "wall@${sizes[$((last - 1))]}" "cpu@${sizes[$((last - 1))]}" "wall x" "cpu x" "target"
row() { # ROW LABEL JUDGED(1/0)
  local w1 c1 w2 c2 rw rc judged
  w1=$(med_of "$1" "$first" 1)
  c1=$(med_of "$1" "$first" 2)
  w2=$(med_of "$1" "$last" 1)
  c2=$(med_of "$1" "$last" 2)
  rw=$(ratio "$w2" "$w1")
  rc=$(ratio "$c2" "$c1")
  printf '  %-44s %10.1f %10.1f %10.1f %10.1f %8s %8s %8s\n' "$2" "$w1" "$c1" "$w2" "$c2" "$rw" "$rc" "$([ "$3" = 1 ] && echo "<= $MAX_RATIO" || echo -)"
  if [ "$3" = 1 ]; then
    judged=$rc
    [ "$JUDGE" = wall ] && judged=$rw
    gt "$judged" "$MAX_RATIO" && fail "$2: $JUDGE time at ${sizes[$((last - 1))]} versions is $judged x the time at ${sizes[0]}, target <= $MAX_RATIO"
  fi
  return 0
}
row add-local "add --no-push (tiny version)" 1
row add "add, pushed (hook subtracted)" 1
row pull "pull NAME@VERSION (fetches its payload)" 1
row pull-local "pull NAME@VERSION, payload already fetched" 1
row pull-stage "pull NAME#staging (refreshes the record)" 1
row pull-stage-old "pull NAME#staging, promoted at $RECORD_PROMOTE_AT versions" 1
row promote "promote --to staging, pushed (hook subtracted)" 1
row git-push "stock git push of a version (hook included)" 0
row git-fetch "stock git fetch of one payload ref" 0
row hook-add "the hook, for an add's push" 0
row hook-promote "the hook, for a promotion's push" 0
row first "first command in a fresh clone (1 run)" 0


echo
if ((failures)); then
  echo "bench: $failures target(s) missed"
  exit 1
fi
echo "bench: all targets met"
