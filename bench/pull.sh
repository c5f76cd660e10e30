#!/usr/bin/env bash
# What a reader moves over the wire in layout 2 (see bench/README.md):
#   (a) a vault of 3 models x 3 versions x 64 MiB pushed through the hook to a
#       local bare server, nlp/bert@1.1.0 promoted to production (approved by
#       a second user); `mvault pull --from file://SERVER nlp/bert#production`
#       into an empty cache: the bytes upload-pack sent and received, against
#       that version's ciphertext plus the record: ratio must be <= 1.05;
#   (b) a plain `git clone` of that vault: must be under 1 MB;
#   (c) a plain `git clone` of a record of 10,000 versions: size and time,
#       and the first mvault commands in it.
# Run after `cargo build --release`: bash bench/pull.sh
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MVAULT=${MVAULT:-$root/target/release/mvault}
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"

VERSION_MIB=${BENCH_PULL_MIB:-64}                   # size of each version of (a)
MAX_RATIO=${BENCH_PULL_MAX_RATIO:-1.05}             # target of (a)
MAX_CLONE_BYTES=${BENCH_PULL_MAX_CLONE:-1000000}    # target of (b), bytes
RECORD_VERSIONS=${BENCH_PULL_RECORD_VERSIONS:-10000} # versions of (c); 0 skips (c)
RECORD_MODELS=${BENCH_PULL_RECORD_MODELS:-100}      # models of (c)
MODELS=(nlp/bert nlp/gpt2 cv/resnet)
VERSIONS=(1.0.0 1.1.0 1.2.0)
SERVED=1.1.0 # the version of nlp/bert promoted to production

bench_setup pull
command -v sha256sum >/dev/null 2>&1 || die "install sha256sum (apt-get install coreutils)"
make_wire_counter
counter=$work/bin/upload-pack-counted

echo "mvault pull bench: $MVAULT, work dir $work"
cpu_line

# Run a command whose fetches go through the counting upload-pack: git
# reads remote.origin.uploadpack from the environment, so the `git fetch`
# mvault runs uses it too. Starts a new wire log.
counted() {
  export BENCH_WIRE_LOG=$1
  shift
  : >"$BENCH_WIRE_LOG"
  export GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=remote.origin.uploadpack GIT_CONFIG_VALUE_0="$counter"
  "$@"
  unset GIT_CONFIG_COUNT GIT_CONFIG_KEY_0 GIT_CONFIG_VALUE_0
}

# ------------------------------------------------------------------ (a)
echo
echo "(a) pull --from of one version of a ${#MODELS[@]} x ${#VERSIONS[@]} x ${VERSION_MIB} MiB vault (target: wire <= $MAX_RATIO x (ciphertext + record))"
keys admin alice bob
# bob as a command /usr/bin/time can exec (`as` is a shell function).
bob=(env MVAULT_USER=bob "$MVAULT" --key "$work/bob")
vault=$work/vault
server=$work/server.git
hooked_vault "$vault" "$server"
url=file://$server

declare -A digest
mkdir -p "$work/in"
t0=$(now_s)
for model in "${MODELS[@]}"; do
  parent=()
  for v in "${VERSIONS[@]}"; do
    # New pseudo-random weights for every version: nothing to share.
    head -c "${VERSION_MIB}M" /dev/urandom >"$work/in/model.safetensors"
    printf '{"model": "%s", "version": "%s"}\n' "$model" "$v" >"$work/in/config.json"
    digest[$model@$v]=$(cd "$work/in" && sha256sum model.safetensors config.json)
    as alice -C "$vault" add "$work/in" --model "$model" --version "$v" "${parent[@]}" >"$work/add.out" 2>&1 ||
      {
        cat "$work/add.out" >&2
        die "mvault add $model@$v failed"
      }
    grep -q "pushed to origin" "$work/add.out" || die "$model@$v was not pushed: $(cat "$work/add.out")"
    parent=(--parent "$v")
  done
done
rm -rf "$work/in"
echo "  registered and pushed ${#MODELS[@]} x ${#VERSIONS[@]} versions through the hook in $(awk -v a="$t0" -v b="$(now_s)" 'BEGIN { printf "%.1f", b - a }') s"

# Staging by alice (ml_engineer); production needs an approval from another
# user with the approver role: bob approves from his own clone.
as alice -C "$vault" promote "nlp/bert@$SERVED" --to staging >/dev/null
git clone -q --no-local "$server" "$work/bob-clone"
as bob -C "$work/bob-clone" approve "nlp/bert@$SERVED" --stage production >/dev/null
as alice -C "$vault" promote "nlp/bert@$SERVED" --to production >/dev/null
rm -rf "$work/bob-clone"
echo "  nlp/bert@$SERVED promoted to staging, approved by bob, promoted to production"
[ "$(git -C "$server" for-each-ref refs/mvault/data/ | wc -l)" -eq $((${#MODELS[@]} * ${#VERSIONS[@]})) ] ||
  die "the server does not hold one payload ref per version"

# The version's ciphertext: its manifest's distinct parts (blob_size), and the
# same read from the server's payload tree.
manifest=$(git -C "$server" show "main:models/nlp/bert/$SERVED/manifest.toml")
cipher=$(awk -F' = ' '
  /^sha256 = / { d = $2 }
  /^blob_size = / { if (!(d in seen)) { seen[d] = 1; s += $2 } }
  END { print s + 0 }' <<<"$manifest")
tree_bytes=$(git -C "$server" ls-tree -l "refs/mvault/data/nlp/bert/$SERVED" | awk '{ s += $4 } END { print s + 0 }')
parts=$(git -C "$server" ls-tree "refs/mvault/data/nlp/bert/$SERVED" | wc -l)
[ "$cipher" = "$tree_bytes" ] || fail "manifest says $cipher bytes of ciphertext, the payload tree holds $tree_bytes"
echo "  nlp/bert@$SERVED: $parts parts, ciphertext $(human "$cipher")"

# The record: what a plain clone moves (main and every tag), over the same
# counted transport.
counted "$work/wire-record.log" git clone -q --bare --upload-pack="$counter" "$url" "$work/record.git"
read -r rec_sent rec_recv rec_conns < <(wire_totals)
record=$((rec_sent + rec_recv))
rm -rf "$work/record.git"
echo "  the record (git clone --bare): $(human "$record") on the wire ($rec_sent sent, $rec_recv received, $rec_conns connection)"

cache=$work/cache
out=$work/serving
counted "$work/wire-pull.log" timed "pull --from" \
  "${bob[@]}" pull --from "$url" --cache "$cache" "nlp/bert#production" -o "$out"
read -r sent recv conns < <(wire_totals)
wire=$((sent + recv))
grep -q "nlp/bert@$SERVED" "$work/cmd.out" || fail "(a) pull --from did not pull nlp/bert@$SERVED: $(cat "$work/cmd.out")"
[ "$(cd "$out" && sha256sum model.safetensors config.json)" = "${digest[nlp/bert@$SERVED]}" ] ||
  fail "(a) the pulled files differ from what was registered"
printf '  mvault pull --from %s nlp/bert#production: %.2f s wall, %.2f s CPU, %s MiB peak RSS\n' \
  "$url" "$(awk -v m="$WALL_MS" 'BEGIN { print m / 1000 }')" "$(awk -v m="$CPU_MS" 'BEGIN { print m / 1000 }')" "$RSS_MIB"
echo "  on the wire: $(human "$wire") ($sent sent by upload-pack, $recv received, $conns connections)"
packs=$(find "$cache/objects" -type f -name '*.pack' -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
loose=$(find "$cache/objects" -type f -path '*/objects/??/*' -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
echo "  in the cache: packs $(human "$packs"), loose objects $(human "$loose")"
# Exactly that version's payload came.
refs=$(git -C "$cache" for-each-ref --format='%(refname)' refs/mvault/data/)
[ "$refs" = "refs/mvault/data/nlp/bert/$SERVED" ] || fail "(a) the cache holds payload refs: ${refs:-none}"
others=0
for model in "${MODELS[@]}"; do
  for v in "${VERSIONS[@]}"; do
    [ "$model@$v" = "nlp/bert@$SERVED" ] && continue
    for id in $(git -C "$server" ls-tree --format='%(objectname)' "refs/mvault/data/$model/$v"); do
      if git -C "$cache" cat-file -e "$id" 2>/dev/null; then others=$((others + 1)); fi
    done
  done
done
[ "$others" -eq 0 ] || fail "(a) $others parts of other versions came too"
a_ratio=$(ratio "$wire" $((cipher + record)))
payload_ratio=$(ratio $((wire - record)) "$cipher")
echo "  => wire / (ciphertext + record) = $wire / ($cipher + $record) = $a_ratio (target <= $MAX_RATIO)"
echo "     (wire - record) / ciphertext = $payload_ratio; parts of other versions fetched: $others"
gt "$a_ratio" "$MAX_RATIO" && fail "(a) pull --from moved $a_ratio x (ciphertext + record), target <= $MAX_RATIO"
rm -rf "$out" "$cache"

# ------------------------------------------------------------------ (b)
echo
echo "(b) a plain git clone of that vault (target: < $MAX_CLONE_BYTES bytes)"
counted "$work/wire-clone.log" timed "git clone" git clone -q --upload-pack="$counter" "$url" "$work/plain"
read -r sent recv conns < <(wire_totals)
clone_bytes=$(dir_bytes "$work/plain")
git_bytes=$(dir_bytes "$work/plain/.git")
held=0
for id in $(git -C "$server" for-each-ref --format='%(objectname)' refs/mvault/data/ | xargs -n1 git -C "$server" ls-tree --format='%(objectname)'); do
  if git -C "$work/plain" cat-file -e "$id" 2>/dev/null; then held=$((held + 1)); fi
done
echo "  git clone $url: $WALL_MS ms; $(human $((sent + recv))) on the wire"
echo "  => clone size: $(human "$clone_bytes") (work tree and .git; .git alone $(human "$git_bytes")), $(du -sk "$work/plain" | cut -f1) KiB on disk"
echo "     payload refs in the clone: $(git -C "$work/plain" for-each-ref refs/mvault/data/ | wc -l); part objects in the clone: $held"
((clone_bytes < MAX_CLONE_BYTES)) || fail "(b) a plain clone is $clone_bytes bytes, target < $MAX_CLONE_BYTES"
((held == 0)) || fail "(b) a plain clone holds $held part objects"
rm -rf "$work/plain"

# ------------------------------------------------------------------ (c)
if ((RECORD_VERSIONS > 0)); then
  echo
  echo "(c) a plain git clone of a record of $RECORD_VERSIONS versions over $RECORD_MODELS models"
  rserver=$work/rserver.git
  record_server "$rserver" "$RECORD_MODELS" "$RECORD_VERSIONS"
  ((RECORD_BUILD_S)) && echo "  built in $RECORD_BUILD_S s (mvault add --no-push into the server, one version after the other)"
  echo "  server: $(git -C "$rserver" rev-list --count main) commits, $(git -C "$rserver" tag -l 'bench/*' | wc -l) version tags, $(git -C "$rserver" for-each-ref | wc -l) refs, $(human "$(dir_bytes "$rserver")")"
  rurl=file://$rserver
  # Each clone into a directory of its own, all removed at the end: on ext4
  # a directory tree made right after another was deleted costs much more
  # system time (the allocator skips the inodes freed in the last seconds),
  # which would charge one clone for the removal of the one before.
  clone_ms=()
  for i in 1 2 3; do
    counted "$work/wire-rclone.log" timed "git clone" git clone -q --upload-pack="$counter" "$rurl" "$work/rclone-$i"
    clone_ms+=("$WALL_MS")
    echo "  git clone $rurl, run $i: $WALL_MS ms wall, $CPU_MS ms CPU (client and upload-pack), $RSS_MIB MiB peak RSS"
  done
  mv "$work/rclone-1" "$work/rclone"
  read -r sent recv conns < <(wire_totals)
  c_bytes=$(dir_bytes "$work/rclone")
  c_git=$(dir_bytes "$work/rclone/.git")
  c_med=$(printf '%s\n' "${clone_ms[@]}" | median)
  c_min=$(printf '%s\n' "${clone_ms[@]}" | sort -g | head -n 1)
  echo "  => clone of $RECORD_VERSIONS versions: $(human "$c_bytes") (.git $(human "$c_git")), $(human $((sent + recv))) on the wire, median $c_med ms, fastest $c_min ms"
  per_version=$(awk -v b="$c_bytes" -v n="$RECORD_VERSIONS" 'BEGIN { printf "%.0f", b / n }')
  echo "     $per_version bytes per version"
  if ((RECORD_VERSIONS != 10000)); then
    awk -v b="$c_bytes" -v n="$RECORD_VERSIONS" 'BEGIN {
      printf "     EXTRAPOLATED to 10,000 versions (size linear in versions; not measured): %.1f MiB; the time is not extrapolated\n", b / n * 10000 / 1048576 }'
  fi
  # The first mvault commands in the fresh clone replay main from the root
  # keys (every commit's signature, once per clone), then fetch one payload.
  timed "first pull" "${bob[@]}" -C "$work/rclone" pull bench/m000@1.0.1 -o "$work/rout"
  echo "  first mvault pull in the clone (replays main, fetches one payload): $WALL_MS ms wall, $CPU_MS ms CPU"
  rm -rf "$work/rout"
  timed "second pull" "${bob[@]}" -C "$work/rclone" pull bench/m001@1.0.1 -o "$work/rout"
  echo "  second mvault pull in the clone (main already replayed): $WALL_MS ms wall, $CPU_MS ms CPU"
  rm -rf "$work/rout"
  timed "pull --from" "${bob[@]}" pull --from "$rurl" --cache "$work/rcache" bench/m002@1.0.1 -o "$work/rout"
  echo "  mvault pull --from into an empty cache: $WALL_MS ms wall, $CPU_MS ms CPU; cache $(human "$(dir_bytes "$work/rcache")")"
  rm -rf "$work/rout"
  timed "pull --from" "${bob[@]}" pull --from "$rurl" --cache "$work/rcache" bench/m003@1.0.1 -o "$work/rout"
  echo "  mvault pull --from again, same cache: $WALL_MS ms wall, $CPU_MS ms CPU"
  rm -rf "$work/rout" "$work/rcache" "$rserver" "$work/rclone" "$work/rclone-2" "$work/rclone-3"
fi

echo
if ((failures)); then
  echo "bench: $failures target(s) missed"
  exit 1
fi
echo "bench: all targets met"
