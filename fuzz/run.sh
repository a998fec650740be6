#!/usr/bin/env bash
# Runs every cargo-fuzz target of alertmesh-protocol for N seconds each (default 30),
# one after another, starting from the committed seeds in fuzz/seeds/<target>/ (new
# inputs go to fuzz/corpus/<target>/, crashes to fuzz/artifacts/<target>/).
#
#   fuzz/run.sh          # 30 s per target
#   fuzz/run.sh 60       # 60 s per target
#   FUZZ_TARGETS="cert envelope" fuzz/run.sh 10
#
# Exit status: 0 when no target crashed (or when fuzzing is impossible on this machine:
# cargo-fuzz cannot be installed, dependencies cannot be fetched, no C++ compiler, or the
# sanitizer build is unsupported; a SKIP line says which), 1 when a target crashed or
# the fuzz crate does not compile, 2 on bad usage.
#
# Only the stable toolchain is assumed: cargo-fuzz needs nightly flags (-Zsanitizer), so
# RUSTC_BOOTSTRAP=1 is set for the cargo fuzz commands.
set -uo pipefail

secs="${1:-30}"
if ! [[ "$secs" =~ ^[0-9]+$ ]] || [ "$secs" -lt 1 ]; then
    echo "usage: $0 [SECONDS_PER_TARGET]" >&2
    exit 2
fi

cd "$(dirname "$0")" || exit 2
fuzz_dir="$(pwd)"
all_targets=(cert charter envelope key_package evidence control content wire)
read -r -a targets <<<"${FUZZ_TARGETS:-${all_targets[*]}}"
logs="$fuzz_dir/target/run-logs"
mkdir -p "$logs"

skip() {
    echo "fuzz/run.sh: SKIP: $* -- no fuzzing done on this machine." >&2
    exit 0
}

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz/run.sh: cargo-fuzz not found, installing it (cargo install cargo-fuzz --locked)"
    cargo install cargo-fuzz --locked >"$logs/install.log" 2>&1 ||
        skip "cargo-fuzz could not be installed (see $logs/install.log; no network?)"
fi
command -v c++ >/dev/null 2>&1 || skip "no C++ compiler (c++) to build libFuzzer"
cargo fetch >"$logs/fetch.log" 2>&1 ||
    skip "the fuzz crate's dependencies could not be fetched (see $logs/fetch.log; no network?)"

export RUSTC_BOOTSTRAP=1
# -a: debug assertions and overflow checks on, so arithmetic overflow is a crash too.
echo "fuzz/run.sh: building targets (cargo fuzz build -a)"
if ! cargo fuzz build -a >"$logs/build.log" 2>&1; then
    # Tell a broken target (a real error) from a machine that cannot do sanitizer builds.
    if cargo check --bins >"$logs/check.log" 2>&1; then
        skip "the sanitizer build failed although the crate compiles (see $logs/build.log)"
    fi
    echo "fuzz/run.sh: FAIL: the fuzz crate does not compile (see $logs/check.log)" >&2
    tail -n 30 "$logs/check.log" >&2
    exit 1
fi

host="$(rustc -vV | sed -n 's/^host: //p')"
bin_dir="${CARGO_TARGET_DIR:-$fuzz_dir/target}/$host/release"

for t in "${targets[@]}"; do
    if [ ! -x "$bin_dir/$t" ]; then
        echo "fuzz/run.sh: FAIL: no fuzz target named $t (built: ${all_targets[*]})" >&2
        exit 2
    fi
done

failed=()
summary=()
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "seeds/$t" "artifacts/$t"
    echo "fuzz/run.sh: fuzzing $t for ${secs}s"
    log="$logs/$t.log"
    # The binary built above, run directly (as `cargo fuzz run` does) so that a source
    # change during the run cannot trigger a rebuild.
    ASAN_OPTIONS="${ASAN_OPTIONS:-detect_odr_violation=0}" "$bin_dir/$t" "corpus/$t" "seeds/$t" \
        -max_total_time="$secs" -timeout=25 -print_final_stats=1 \
        -artifact_prefix="artifacts/$t/" >"$log" 2>&1
    rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | cut -d' ' -f2)
    if [ "$rc" -eq 0 ]; then
        result=ok
    else
        result="CRASH (exit $rc)"
        failed+=("$t")
        grep -E 'panicked|ERROR|SUMMARY|Test unit written|artifact' "$log" | head -n 20 >&2
    fi
    summary+=("$(printf '%-12s %6ss %12s runs %8s exec/s %6s cov  %s' "$t" "$secs" "${runs:-?}" "${rate:-?}" "${cov:-?}" "$result")")
done

echo
echo "fuzz/run.sh: summary (logs in $logs)"
printf '  %s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz/run.sh: FAIL: crashes in: ${failed[*]} (inputs in fuzz/artifacts/<target>/;" \
        "reproduce with RUSTC_BOOTSTRAP=1 cargo fuzz run -a <target> <file> in fuzz/)" >&2
    exit 1
fi
echo "fuzz/run.sh: OK: no crash in ${#targets[@]} targets"
