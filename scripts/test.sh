#!/usr/bin/env bash
# The project's test command (see README.md): every package's tests with
# the race detector (fuzz targets run over their seed corpora as ordinary
# tests), then a brief run of each fuzz target (FUZZTIME per target,
# default 3s; FUZZTIME=0 skips it). Long campaigns are opt-in; see
# docs/testing.md (simulator seeds, PBFTNODE_LONG=1, longer fuzzing).
set -euo pipefail
cd "$(dirname "$0")/.."
go test -race -count=1 -timeout 12m ./...

FUZZTIME=${FUZZTIME:-3s}
if [ "$FUZZTIME" != "0" ]; then
  targets=(
    "./protocol FuzzReplicaFrame"
    "./protocol FuzzStep"
    "./node FuzzVerifyClientFrame"
    "./client FuzzHandleReply"
    "./p2p FuzzReadFrame"
    "./execution FuzzKVExecute"
    "./crypto FuzzVerify"
  )
  for t in "${targets[@]}"; do
    set -- $t
    echo "fuzz $2 ($1, $FUZZTIME)"
    if ! out=$(go test -run='^$' -fuzz="^$2\$" -fuzztime="$FUZZTIME" -fuzzminimizetime=0 "$1" 2>&1); then
      echo "$out"
      exit 1
    fi
  done
fi
