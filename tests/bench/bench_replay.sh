#!/bin/sh
# nucleus replay dry run: steps per second on 100,000 real agent tool calls
# (the recorded transcripts repeated), beside the time to merely parse the
# same JSON Lines with python3 (a floor for reading the input).
set -eu

: "${NU_BIN:=build/release/nucleus}"
cases="${NU_SHARED_DIR:-../shared}/cases/trajectories"
if [ ! -d "$cases" ]; then
    echo "bench_replay: $cases is absent; nothing to measure"
    exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
steps=100000
cat "$cases"/*.jsonl | grep '"tool"' > "$tmp/one.jsonl"
per=$(wc -l < "$tmp/one.jsonl")
: > "$tmp/all.jsonl"
i=0
while [ $((i * per)) -lt $steps ]; do
    cat "$tmp/one.jsonl" >> "$tmp/all.jsonl"
    i=$((i + 1))
done
head -n $steps "$tmp/all.jsonl" > "$tmp/steps.jsonl"

for profile in codegen default; do
    start=$(date +%s.%N)
    "$NU_BIN" replay "$tmp/steps.jsonl" --profile $profile > "$tmp/out.jsonl"
    end=$(date +%s.%N)
    python3 -c "import sys; s=float(sys.argv[2])-float(sys.argv[1]); print('replay --profile %-8s %d steps in %.2f s: %.0f steps/s (target >= 100000)' % (sys.argv[3], $steps, s, $steps/s))" "$start" "$end" "$profile"
done

start=$(date +%s.%N)
python3 -c 'import json,sys
for line in open(sys.argv[1]): json.loads(line)' "$tmp/steps.jsonl"
end=$(date +%s.%N)
python3 -c "import sys; s=float(sys.argv[2])-float(sys.argv[1]); print('baseline: python3 json.loads of the same lines: %.0f lines/s' % ($steps/s))" "$start" "$end"
