#!/bin/sh
# Install dependencies, build a release binary and run the demo session.
set -eu

cd "$(dirname "$0")/.."

./scripts/install-deps.sh

cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc 2>/dev/null || echo 2)"

exec ./build/release/nucleus run examples/demo.lua
