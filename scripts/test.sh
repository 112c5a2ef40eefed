#!/usr/bin/env bash
# The project's test command (see README.md): every package's tests, with
# the race detector, plus a short run of each fuzz target over its seed
# corpus. Long campaigns are opt-in; see docs/testing.md.
set -euo pipefail
cd "$(dirname "$0")/.."
go test -race -count=1 -timeout 12m ./...
