#!/bin/sh
# Daemon and MCP benchmark (bench_daemon.py); NU_BIN names the binary.
exec python3 "$(dirname "$0")/bench_daemon.py" "$@"
