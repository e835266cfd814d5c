#!/bin/sh
# Install dependencies, build, and run every test suite: the dev build's
# full ctest run (cmocka, busted, integration), then the asan preset's unit
# tests.  Tests that need root or a missing kernel feature print why and
# skip; under CI (CI=true) skips of root-only tests are failures.
set -eu

cd "$(dirname "$0")/.."

./scripts/install-deps.sh

# The MCP SDK for the client test, at the versions package-lock.json pins.
if [ ! -d tests/integration/mcp_client/node_modules/@modelcontextprotocol/sdk ]; then
    (cd tests/integration/mcp_client && npm ci --no-audit --no-fund --silent)
fi

jobs=$(nproc 2>/dev/null || echo 2)

echo "== dev build"
cmake --preset dev >/dev/null
cmake --build --preset dev -j "$jobs"

echo "== dev tests"
ctest --preset dev -j "$jobs"

echo "== asan build (unit tests)"
cmake --preset asan >/dev/null
cmake --build --preset asan -j "$jobs"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --preset asan -j "$jobs"
