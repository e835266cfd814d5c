#!/bin/sh
# Build the release preset and run one benchmark (or all of them).
#   tests/bench/run.sh            every bench_* program, then every bench_*.sh
#   tests/bench/run.sh NAME       bench_NAME only
set -eu

cd "$(dirname "$0")/../.."
cmake --preset release >/dev/null
cmake --build --preset release >/dev/null

bindir=build/release/tests/bench
run_one() {
    name=$1
    shift
    echo "== bench_$name"
    if [ -x "$bindir/bench_$name" ]; then
        "$bindir/bench_$name" "$@"
    elif [ -x "tests/bench/bench_$name.sh" ]; then
        NU_BIN=build/release/nucleus "tests/bench/bench_$name.sh" "$@"
    else
        echo "run.sh: no benchmark named '$name'" >&2
        return 2
    fi
}

if [ $# -gt 0 ]; then
    run_one "$@"
    exit $?
fi

echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, $(uname -r)"
for b in "$bindir"/bench_* tests/bench/bench_*.sh; do
    [ -e "$b" ] || continue
    name=$(basename "$b" .sh)
    run_one "${name#bench_}"
done
