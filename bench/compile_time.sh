#!/usr/bin/env bash
# What a table type costs to compile: generates a crate declaring N tables (an auto-increment
# key, a unique and a plain index, a string) whose `main` creates each table, inserts, reads,
# selects, runs an ordered query with a limit and an update inside a transaction; builds it
# from clean (its dependencies already built, CARGO_INCREMENTAL=0: what a first build, CI and
# every release build pay) for 1, 10 and 30 tables, and prints one JSON object with the
# seconds and binary bytes per table (the slope between 10 and 30 tables). The floor is the
# same crate with plain serde structs round-tripped through serde_json, built the same way.
#
# Run: `bash bench/compile_time.sh` (about 5 minutes on 2 cores; `--release` also times a
# release build of 30 tables, a few minutes more). Needs only cargo.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
release=0
[[ "${1:-}" == "--release" ]] && release=1
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export CARGO_TARGET_DIR="$work/target" CARGO_INCREMENTAL=0

# gen_crate KIND N: writes the crate (KIND is `tables` or `serde`) with N record types.
gen_crate() {
    local kind="$1" n="$2" dir="$work/$1"
    mkdir -p "$dir/src"
    cp "$root/Cargo.lock" "$dir/Cargo.lock"
    {
        printf '[package]\nname = "gen_%s"\nversion = "0.0.0"\nedition = "2024"\npublish = false\n\n' "$kind"
        printf '[dependencies]\nserde = { version = "1", features = ["derive"] }\n'
        if [[ "$kind" == tables ]]; then
            printf 'mnesia = { path = "%s/mnesia" }\n' "$root"
        else
            printf 'serde_json = "1"\n'
        fi
        printf '\n[workspace]\n'
    } >"$dir/Cargo.toml"
    {
        if [[ "$kind" == tables ]]; then
            echo 'use mnesia::prelude::*;'
        else
            echo 'use serde::{Deserialize, Serialize};'
        fi
        for i in $(seq "$n"); do
            if [[ "$kind" == tables ]]; then
                echo '#[derive(Table, Clone, Debug, Serialize, Deserialize)]'
                echo "struct T$i { #[key] #[auto_increment] id: u64, #[index(unique)] email: String, #[index] age: u32, name: String }"
            else
                echo '#[derive(Clone, Debug, Serialize, Deserialize)]'
                echo "struct T$i { id: u64, email: String, age: u32, name: String }"
            fi
        done
        echo 'fn main() {'
        for i in $(seq "$n"); do
            if [[ "$kind" == tables ]]; then
                cat <<EOF
    T$i::create_table(TableOptions::new()).unwrap();
    let r = T$i::insert(T$i { id: 0, email: "a$i@x".into(), age: $i, name: "n".into() }).unwrap();
    assert!(T$i::read(&r.id).unwrap().is_some());
    assert_eq!(T$i::select(T$i::AGE.eq($i)).unwrap().len(), 1);
    assert_eq!(T$i::query().filter(T$i::AGE.ge(0)).order_by(T$i::AGE).limit(5).all().unwrap().len(), 1);
    mnesia::transaction(|| T$i::update(&r.id, |t| t.age += 1)).unwrap();
EOF
            else
                cat <<EOF
    let r = T$i { id: 0, email: "a$i@x".into(), age: $i, name: "n".into() };
    let s = serde_json::to_string(&r).unwrap();
    let back: T$i = serde_json::from_str(&s).unwrap();
    assert_eq!(back.age, r.age);
EOF
            fi
        done
        echo '}'
    } >"$dir/src/main.rs"
}

# build KIND N [--release]: prints "seconds bytes" of a clean build of the crate alone.
build() {
    local kind="$1" n="$2" profile_flag="${3:-}" profile=debug
    [[ -n "$profile_flag" ]] && profile=release
    gen_crate "$kind" "$n"
    (cd "$work/$kind" && cargo build -q $profile_flag 2>/dev/null) # dependencies
    (cd "$work/$kind" && cargo clean -q -p "gen_$kind" $profile_flag 2>/dev/null)
    local start end
    start=$(date +%s.%N)
    (cd "$work/$kind" && cargo build -q $profile_flag)
    end=$(date +%s.%N)
    echo "$(printf '%.3f' "$(echo "$end - $start" | bc -l)") $(stat -c %s "$CARGO_TARGET_DIR/$profile/gen_$kind")"
}

declare -A secs bytes
for kind in tables serde; do
    for n in 1 10 30; do
        read -r s b < <(build "$kind" "$n")
        secs[$kind$n]=$s
        bytes[$kind$n]=$b
        echo "$kind x$n: ${s}s, $b bytes" >&2
    done
done
slope() { printf '%.4f' "$(echo "($2 - $1) / 20" | bc -l)"; }
release_json=""
if ((release)); then
    read -r rs rb < <(build tables 30 --release)
    echo "tables x30 release: ${rs}s, $rb bytes" >&2
    release_json=$(printf ', "release_build_30_tables_s": %s' "$rs")
fi
cat <<EOF
{"compile_time": {
  "build_s_per_table": $(slope "${secs[tables10]}" "${secs[tables30]}"),
  "floor_build_s_per_serde_struct": $(slope "${secs[serde10]}" "${secs[serde30]}"),
  "binary_bytes_per_table": $(slope "${bytes[tables10]}" "${bytes[tables30]}" | cut -d. -f1),
  "floor_binary_bytes_per_serde_struct": $(slope "${bytes[serde10]}" "${bytes[serde30]}" | cut -d. -f1),
  "build_s": {"1": ${secs[tables1]}, "10": ${secs[tables10]}, "30": ${secs[tables30]}},
  "binary_bytes": {"1": ${bytes[tables1]}, "10": ${bytes[tables10]}, "30": ${bytes[tables30]}}$release_json
}}
EOF
