#!/usr/bin/env bash
# The project's test command (see README.md): every package's tests with
# the race detector (fuzz targets run over their seed corpora as ordinary
# tests), then a brief run of each fuzz target (FUZZTIME per target,
# default 3s; FUZZTIME=0 skips it). Long campaigns are opt-in; see
# docs/testing.md (simulator seeds, PBFTNODE_LONG=1, longer fuzzing).
#
# Every stage runs even when an earlier one fails: the script collects
# the failures, prints a summary of every stage at the end and exits 1 if
# any failed (0 otherwise).
set -uo pipefail
cd "$(dirname "$0")/.."

results=()  # one "PASS|FAIL stage (seconds)" line per stage
failed=0

# stage NAME COMMAND... runs one stage, prints its output as it comes,
# and records whether it passed and how long it took.
stage() {
  local name=$1 start=$SECONDS rc=0
  shift
  echo "=== $name"
  "$@" || rc=$?
  local took=$((SECONDS - start))
  if ((rc == 0)); then
    results+=("PASS  $name (${took}s)")
  else
    results+=("FAIL  $name (${took}s, exit $rc)")
    failed=$((failed + 1))
  fi
}

# go test prints "--- FAIL: TestName" and "FAIL<tab>package" lines; the
# summary repeats them so that a failure is not lost in a long log.
go_test_log=$(mktemp)
trap 'rm -f "$go_test_log"' EXIT
run_go_tests() {
  go test -race -count=1 -timeout 12m ./... 2>&1 | tee "$go_test_log"
}
stage "go test -race ./..." run_go_tests

# fuzz_target PKG TARGET runs one fuzz target for FUZZTIME. Go's fuzzing
# coordinator sometimes fails with "context deadline exceeded" when its
# time is up while a worker is mid-input, with no failing input found.
# Only that failure gets one more run; a real finding ("Failing input
# written to ...") fails at once.
fuzz_once() { go test -run='^$' -fuzz="^$2\$" -fuzztime="$FUZZTIME" -fuzzminimizetime=0 "$1" 2>&1; }
fuzz_target() {
  local out
  if out=$(fuzz_once "$1" "$2"); then
    # A renamed target would otherwise pass silently, fuzzing nothing.
    if [[ $out == *"no fuzz tests to fuzz"* ]]; then
      echo "fuzz $2: no such fuzz target in $1"
      return 1
    fi
    return 0
  fi
  if [[ $out == *"context deadline exceeded"* && $out != *"Failing input written"* ]]; then
    echo "fuzz $2: the fuzzer's shutdown timed out with no finding; running it once more"
    if out=$(fuzz_once "$1" "$2"); then return 0; fi
  fi
  echo "$out"
  return 1
}

FUZZTIME=${FUZZTIME:-3s}
if [ "$FUZZTIME" != "0" ]; then
  targets=(
    "./protocol FuzzReplicaFrame"
    "./protocol FuzzStep"
    "./node/pbft FuzzVerifyClientFrame"
    "./client FuzzHandleReply"
    "./p2p FuzzReadFrame"
    "./execution FuzzKVExecute"
    "./execution FuzzDecodeClientWindow"
    "./ledger FuzzExecuteRequest"
    "./apphost FuzzCheckTransferEntry"
    "./crypto FuzzVerify"
  )
  for t in "${targets[@]}"; do
    read -r pkg target <<<"$t"
    stage "fuzz $target ($pkg, $FUZZTIME)" fuzz_target "$pkg" "$target"
  done
fi

echo
echo "=== summary"
printf '%s\n' "${results[@]}"
if grep -qE '^\s*--- FAIL|^FAIL\s' "$go_test_log"; then
  echo "failing tests and packages:"
  grep -E '^\s*--- FAIL|^FAIL\s' "$go_test_log" | sed 's/^/  /'
fi
if ((failed > 0)); then
  echo "$failed of ${#results[@]} stages failed"
  exit 1
fi
echo "all ${#results[@]} stages passed"
