#!/bin/sh
# Build the libFuzzer targets with the "fuzz" preset (clang, ASan, UBSan)
# and run each for a short time.
#   tests/fuzz/run.sh [SECONDS] [TARGET...]
# SECONDS defaults to 30 per target; TARGET defaults to every fuzz_*.c.
# Corpora grow in tests/fuzz/corpus-<target>/ (ignored by git); crashes
# are written to build/fuzz/crash-<target>-*.
# Warnings do not stop fuzzing (NU_WERROR=OFF): clang warns about things
# gcc does not, and the gcc builds already enforce -Werror.
set -eu

seconds=${1:-30}
[ $# -gt 0 ] && shift

cd "$(dirname "$0")/../.."
if ! command -v clang >/dev/null; then
    echo "fuzz/run.sh: clang is missing; install it (apt-get install clang)" >&2
    exit 2
fi

log=build/fuzz-build.log
mkdir -p build
if ! cmake --preset fuzz -DNU_WERROR=OFF >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    echo "fuzz/run.sh: cannot configure the fuzz preset (full log: $log)" >&2
    exit 1
fi
if [ $# -gt 0 ]; then
    targets="$*"
else
    targets=$(for f in tests/fuzz/fuzz_*.c; do basename "$f" .c; done)
fi
for t in $targets; do
    if ! cmake --build --preset fuzz --target "$t" >"$log" 2>&1; then
        grep -E "error|FAILED" "$log" | head -n 20 >&2
        echo "fuzz/run.sh: cannot build $t (full log: $log)" >&2
        exit 1
    fi
done

# Seeds: a few inputs in the shape each target expects.
seed() {
    dir=tests/fuzz/corpus-$1
    mkdir -p "$dir"
    printf '%b' "$3" >"$dir/seed-$2"
}
seed fuzz_glob 1 '\001**/*.pem\000certs/a.pem'
seed fuzz_glob 2 '\003[[:alpha:]]*[!a-z]\000Ab9'
seed fuzz_glob 3 '\000a\\*b?c\000a*bxc'
seed fuzz_perm_json 1 '{}'
seed fuzz_perm_json 2 '{"capabilities":{"read_files":"always","web_fetch":"low_risk","git_push":"always"},"obligations":[],"paths":{"allow":"*","block":["*.pem",".ssh/"],"write_block":[]},"commands":{"allow":["git status"],"block":["sudo"]},"network":{"allow":["10.0.0.0/8:443"],"domains":["*.example.org"],"trusted":[]},"budget":{"usd":1.5,"input_tokens":100,"output_tokens":"*","tool_calls":5},"time":{"not_before":"*","not_after":100,"ttl":60}}'

status=0
for t in $targets; do
    echo "== $t: ${seconds}s"
    mkdir -p "tests/fuzz/corpus-$t"
    build/fuzz/tests/"$t" -max_total_time="$seconds" -artifact_prefix="build/fuzz/crash-$t-" \
        -print_final_stats=1 "tests/fuzz/corpus-$t" || status=1
done
exit $status
