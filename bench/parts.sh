#!/usr/bin/env bash
# What a new version adds to the store, content-defined parts (the default)
# against fixed-size parts (MVAULT_CHUNKING=fixed), see bench/README.md:
#   (a) one synthetic safetensors file of about 256 MiB; v2 a "fine-tune"
#       with a few tensors in the middle rewritten (same shapes, new bytes);
#       v3 a grown header (one tensor more, so every tensor's position in
#       the file shifts by the header's growth). Target (content-defined):
#       every new part overlaps a changed byte, i.e. the store grows by at
#       most the changed region plus one part per change boundary;
#   (b) 8 shards of 32 MiB; v2 with one shard rewritten: growth about one
#       shard (target <= 1.10 x).
# Growth is the sum of the new part blobs (ciphertext) and the growth of the
# hooked server's object directory after the push.
# Run after `cargo build --release`: bash bench/parts.sh
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MVAULT=${MVAULT:-$root/target/release/mvault}
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"

LAYERS=${BENCH_PARTS_LAYERS:-32}         # transformer layers of the safetensors file (8 MiB each)
CHANGED=${BENCH_PARTS_CHANGED:-"14.attn.out 15.mlp.up 16.attn.qkv"} # tensors the fine-tune rewrites
SHARDS=${BENCH_PARTS_SHARDS:-8}          # shards of (b)
SHARD_MIB=${BENCH_PARTS_SHARD_MIB:-32}   # size of each shard
SHARD_TOL=${BENCH_PARTS_SHARD_TOL:-1.10} # (b): growth / one shard
PART_SIZE=${BENCH_PARTS_PART_SIZE:-}     # --part-size for every add (default: mvault's)

bench_setup parts
echo "mvault parts bench: $MVAULT, work dir $work"
cpu_line
keys admin alice bob

# ------------------------------------------------------------ the files
# A safetensors file: 8-byte little-endian header length, a JSON header
# naming each tensor's dtype, shape and data_offsets (relative to the data
# section), padded with spaces to 8 bytes, then the tensors' bytes.
# Per layer: qkv 3 MiB, out 1 MiB, mlp up and down 2 MiB each (F16), and a
# 4 KiB norm between them, so big and small tensors alternate.
tensor_list() { # LAYERS [EXTRA]: "name dtype shape bytes" lines, in file order
  local i
  for ((i = 0; i < $1; i++)); do
    echo "layers.$i.attn.qkv F16 [1536,1024] 3145728"
    echo "layers.$i.attn.norm F32 [1024] 4096"
    echo "layers.$i.attn.out F16 [512,1024] 1048576"
    echo "layers.$i.mlp.up F16 [1024,1024] 2097152"
    echo "layers.$i.mlp.norm F32 [1024] 4096"
    echo "layers.$i.mlp.down F16 [1024,1024] 2097152"
  done
  if [ -n "${2:-}" ]; then echo "$2"; fi
}

# header LIST: the padded JSON header of the tensors in LIST, on stdout
header() {
  awk 'BEGIN { printf "{\"__metadata__\":{\"format\":\"pt\"}"; off = 0 }
    { printf ",\"%s\":{\"dtype\":\"%s\",\"shape\":%s,\"data_offsets\":[%d,%d]}", $1, $2, $3, off, off + $4; off += $4 }
    END { printf "}" }' "$1" >"$1.json"
  local n pad
  n=$(stat -c %s "$1.json")
  pad=$(((8 - n % 8) % 8))
  cat "$1.json"
  printf '%*s' "$pad" ''
}

le64() { # N: 8 bytes, little-endian
  local n=$1 i out=
  for ((i = 0; i < 8; i++)); do
    out+=$(printf '\\x%02x' $(((n >> (8 * i)) & 255)))
  done
  printf '%b' "$out"
}

# safetensors OUT LIST DATA: writes OUT from the tensor list and the data file
safetensors() {
  header "$2" >"$1.hdr"
  { le64 "$(stat -c %s "$1.hdr")"; cat "$1.hdr" "$3"; } >"$1"
  rm -f "$1.hdr" "$2.json"
}

# offset_of LIST NAME: "start length" of tensor NAME in the data section
offset_of() {
  awk -v want="$2" '{ if ($1 == want) { print off, $4; found = 1; exit } off += $4 }
    END { if (!found) exit 1 }' "$1"
}

# The parts of a version, from its manifest on main: "offset size blob_size
# sha256" per part of every file, file order, offsets within the file.
parts_of() { # VAULT MODEL VERSION
  git -C "$1" show "main:models/$2/$3/manifest.toml" | awk -F' = ' '
    /^\[\[files\]\]/ { inpart = 0; off = 0; next }
    /^\[\[files\.parts\]\]/ { inpart = 1; next }
    inpart && /^sha256 = / { gsub(/"/, "", $2); d = $2 }
    inpart && /^size = / { s = $2 }
    inpart && /^blob_size = / { print off, s, $2, d; off += s }'
}

# new_parts VAULT MODEL OLD NEW: the parts of NEW whose digest OLD lacks
new_parts() {
  awk 'NR == FNR { old[$4] = 1; next } !($4 in old) && !($4 in seen) { seen[$4] = 1; print }' \
    <(parts_of "$1" "$2" "$3") <(parts_of "$1" "$2" "$4")
}

objects_bytes() { # SERVER: bytes under objects/
  dir_bytes "$1/objects"
}

echo
echo "files:"
list1=$work/v1.list
list3=$work/v3.list
tensor_list "$LAYERS" >"$list1"
tensor_list "$LAYERS" "lm_head.bias F16 [2048] 4096" >"$list3"
data_bytes=$(awk '{ s += $4 } END { print s }' "$list1")
head -c "$data_bytes" /dev/urandom >"$work/v1.data"
mkdir -p "$work/ft1" "$work/ft2" "$work/ft3"
safetensors "$work/ft1/model.safetensors" "$list1" "$work/v1.data"
h1=$(($(stat -c %s "$work/ft1/model.safetensors") - data_bytes))
# v2: the same file with the CHANGED tensors' bytes replaced.
cp "$work/v1.data" "$work/v2.data"
changed_bytes=0
regions=() # "start end" in file offsets, for the overlap check
for t in $CHANGED; do
  read -r start len < <(offset_of "$list1" "layers.$t") || die "no tensor layers.$t"
  head -c "$len" /dev/urandom | dd of="$work/v2.data" bs=1M seek="$start" oflag=seek_bytes conv=notrunc status=none
  changed_bytes=$((changed_bytes + len))
  regions+=("$((h1 + start)) $((h1 + start + len))")
done
safetensors "$work/ft2/model.safetensors" "$list1" "$work/v2.data"
# v3: v2's tensors and one more (4 KiB, at the end of the data): the header
# grows, and every tensor moves by that growth in the file.
{ cat "$work/v2.data"; head -c 4096 /dev/urandom; } >"$work/v3.data"
safetensors "$work/ft3/model.safetensors" "$list3" "$work/v3.data"
h3=$(($(stat -c %s "$work/ft3/model.safetensors") - data_bytes - 4096))
rm -f "$work/v1.data" "$work/v2.data" "$work/v3.data"
cmp -s -n "$h1" "$work/ft1/model.safetensors" "$work/ft2/model.safetensors" || die "v1 and v2 headers differ"
echo "  v1: $(human "$(stat -c %s "$work/ft1/model.safetensors")"), $(wc -l <"$list1") tensors, header $h1 bytes"
echo "  v2: tensors ${CHANGED// /, } rewritten: $(human "$changed_bytes") in ${#regions[@]} regions ($((2 * ${#regions[@]})) change boundaries)"
echo "  v3: tensor lm_head.bias (4096 bytes) added; header $h1 -> $h3 bytes, every tensor shifted by $((h3 - h1)) bytes"
v3_changed=$((h3 + 4096)) # the new header (with its length) and the new tensor
mkdir -p "$work/sh1" "$work/sh2"
for ((i = 1; i <= SHARDS; i++)); do
  f=$(printf 'model-%05d-of-%05d.safetensors' "$i" "$SHARDS")
  head -c "${SHARD_MIB}M" /dev/urandom >"$work/sh1/$f"
  cp "$work/sh1/$f" "$work/sh2/$f"
done
changed_shard=$(printf 'model-%05d-of-%05d.safetensors' $(((SHARDS + 1) / 2)) "$SHARDS")
head -c "${SHARD_MIB}M" /dev/urandom >"$work/sh2/$changed_shard"
shard_bytes=$((SHARD_MIB << 20))
echo "  shards: $SHARDS x $SHARD_MIB MiB; v2 rewrites $changed_shard"

# ------------------------------------------------------------ registering
part_args=()
[ -n "$PART_SIZE" ] && part_args=(--part-size "$PART_SIZE")

# add STRATEGY VAULT SERVER DIR MODEL VERSION [PARENT]: registers and pushes;
# sets GROWTH_OBJ (server objects/ growth) and ADD_S.
add_version() {
  local strategy=$1 vault=$2 server=$3 dir=$4 model=$5 version=$6 parent=${7:-} before t0
  local extra=("${part_args[@]}")
  [ -n "$parent" ] && extra+=(--parent "$parent")
  before=$(objects_bytes "$server")
  t0=$(now_s)
  if [ "$strategy" = fixed ]; then
    MVAULT_CHUNKING=fixed as alice -C "$vault" add "$dir" --model "$model" --version "$version" "${extra[@]}" >"$work/add.out" 2>&1 ||
      {
        cat "$work/add.out" >&2
        die "add $model@$version ($strategy) failed"
      }
  else
    as alice -C "$vault" add "$dir" --model "$model" --version "$version" "${extra[@]}" >"$work/add.out" 2>&1 ||
      {
        cat "$work/add.out" >&2
        die "add $model@$version ($strategy) failed"
      }
  fi
  grep -q "pushed to origin" "$work/add.out" || die "$model@$version was not pushed: $(cat "$work/add.out")"
  ADD_S=$(awk -v a="$t0" -v b="$(now_s)" 'BEGIN { printf "%.1f", b - a }')
  GROWTH_OBJ=$(($(objects_bytes "$server") - before))
}

# report LABEL STRATEGY VAULT MODEL OLD NEW CHANGED BOUNDARIES [REGIONS...]:
# prints the growth of NEW over OLD (CHANGED bytes changed, BOUNDARIES places
# where changed bytes meet unchanged ones); with REGIONS ("start end" file
# offsets of the changed bytes), counts the new parts that overlap none.
declare -A result
report() {
  local label=$1 strategy=$2 vault=$3 model=$4 old=$5 new=$6 changed=$7 boundaries=$8
  shift 8
  local np plain cipher total nparts stray ratio_c ratio_o
  new_parts "$vault" "$model" "$old" "$new" >"$work/new.parts"
  np=$(wc -l <"$work/new.parts")
  nparts=$(parts_of "$vault" "$model" "$new" | wc -l)
  plain=$(awk '{ s += $2 } END { print s + 0 }' "$work/new.parts")
  cipher=$(awk '{ s += $3 } END { print s + 0 }' "$work/new.parts")
  total=$(parts_of "$vault" "$model" "$new" | awk '{ s += $2 } END { print s + 0 }')
  ratio_c=$(ratio "$cipher" "$changed")
  ratio_o=$(ratio "$GROWTH_OBJ" "$changed")
  stray=
  if (($#)); then
    # A new part that overlaps no changed region stored unchanged bytes
    # beyond the one part per boundary the target allows.
    stray=$(awk -v regions="$*" 'BEGIN { n = split(regions, r, " ") }
      { a = $1; b = $1 + $2; hit = 0
        for (i = 1; i < n; i += 2) if (a < r[i + 1] && b > r[i]) hit = 1
        if (!hit) c++ }
      END { print c + 0 }' "$work/new.parts")
  fi
  printf '  %-8s %-34s %3d of %3d parts new, %9d B plaintext (%5.1f %% of the version), %9d B ciphertext = %7.3f x changed; server objects +%d B = %7.3f x; add+push %s s\n' \
    "$strategy" "$label" "$np" "$nparts" "$plain" "$(awk -v p="$plain" -v t="$total" 'BEGIN { print 100 * p / t }')" "$cipher" "$ratio_c" "$GROWTH_OBJ" "$ratio_o" "$ADD_S"
  if (($#)); then
    awk -v p="$plain" -v c="$changed" -v b="$boundaries" -v s="$stray" 'BEGIN {
      printf "           beyond the changed bytes: %d B plaintext, %.2f MiB per change boundary (%d boundaries); new parts overlapping no change: %d\n", p - c, (p - c) / b / 1048576, b, s }'
  fi
  result[$strategy.$label]="$np/$nparts $cipher $ratio_c $GROWTH_OBJ $ratio_o ${stray:--} $total"
}

for strategy in content fixed; do
  echo
  if [ "$strategy" = fixed ]; then
    echo "fixed-size parts (MVAULT_CHUNKING=fixed):"
  else
    echo "content-defined parts (the default):"
  fi
  vault=$work/vault-$strategy
  server=$work/server-$strategy.git
  hooked_vault "$vault" "$server"
  add_version "$strategy" "$vault" "$server" "$work/ft1" bench/ft 1.0.0
  echo "  v1 stored: $(parts_of "$vault" bench/ft 1.0.0 | wc -l) parts, server objects +$GROWTH_OBJ B, add+push $ADD_S s"
  add_version "$strategy" "$vault" "$server" "$work/ft2" bench/ft 1.1.0 1.0.0
  # shellcheck disable=SC2068 # the regions split into their numbers
  report "(a) v2: fine-tune, $changed_bytes B changed" "$strategy" "$vault" bench/ft 1.0.0 1.1.0 "$changed_bytes" $((2 * ${#regions[@]})) ${regions[@]}
  add_version "$strategy" "$vault" "$server" "$work/ft3" bench/ft 1.2.0 1.1.0
  report "(a) v3: header +$((h3 - h1)) B, tensor +4096 B" "$strategy" "$vault" bench/ft 1.1.0 1.2.0 "$v3_changed" 2 0 "$h3" "$((h3 + data_bytes))" "$((h3 + data_bytes + 4096))"
  add_version "$strategy" "$vault" "$server" "$work/sh1" bench/shards 1.0.0
  echo "  shards v1 stored: $(parts_of "$vault" bench/shards 1.0.0 | wc -l) parts, server objects +$GROWTH_OBJ B"
  add_version "$strategy" "$vault" "$server" "$work/sh2" bench/shards 1.1.0 1.0.0
  report "(b) shards v2: 1 of $SHARDS rewritten" "$strategy" "$vault" bench/shards 1.0.0 1.1.0 "$shard_bytes" 0
  rm -rf "$vault" "$server"
done

# ------------------------------------------------------------------ summary
echo
echo "summary: store growth / changed bytes (ciphertext of the new parts; server objects/ growth after the push)"
printf '  %-38s %-8s %10s %12s %9s %12s %9s %8s\n' case parts new-parts "ciphertext" "ratio" "server" "ratio" "stray"
for label in "(a) v2: fine-tune, $changed_bytes B changed" "(a) v3: header +$((h3 - h1)) B, tensor +4096 B" "(b) shards v2: 1 of $SHARDS rewritten"; do
  for strategy in content fixed; do
    read -r np cipher rc obj ro stray _ <<<"${result[$strategy.$label]}"
    printf '  %-38s %-8s %10s %12d %9s %12d %9s %8s\n' "$label" "$strategy" "$np" "$cipher" "$rc" "$obj" "$ro" "$stray"
  done
done
echo "  (stray: new parts that overlap no changed byte; 0 means the growth is the changed region plus at most one part per change boundary)"

# Targets: content-defined parts store only parts that overlap a change (v2
# and v3), and a rewritten shard costs about one shard, for both strategies.
for label in "(a) v2: fine-tune, $changed_bytes B changed" "(a) v3: header +$((h3 - h1)) B, tensor +4096 B"; do
  read -r _ _ _ _ _ stray _ <<<"${result[content.$label]}"
  [ "$stray" = 0 ] || fail "content-defined parts, $label: $stray new part(s) overlap no change"
done
for strategy in content fixed; do
  read -r _ _ rc _ _ _ _ <<<"${result[$strategy.(b) shards v2: 1 of $SHARDS rewritten]}"
  gt "$rc" "$SHARD_TOL" && fail "$strategy parts, one shard rewritten: growth $rc x the shard, target <= $SHARD_TOL"
done

echo
if ((failures)); then
  echo "bench: $failures target(s) missed"
  exit 1
fi
echo "bench: all targets met"
