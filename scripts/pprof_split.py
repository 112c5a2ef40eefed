#!/usr/bin/env python3
"""Split CPU profiles by where each sample's stack goes, in µs per operation.

Usage: scripts/pprof_split.py BINARY OPS PROFILE...

BINARY is the pbftnode binary that wrote the profiles (bench
--cpuprofile-dir DIR writes DIR/nodeI.pprof and DIR/harness.pprof), OPS the
operations completed over the profiled time (throughput x (warmup +
duration) of the run). Each sample goes to the first category, in the order
below, whose pattern matches any frame of its stack: signing before
verification, so a client's Sign is not counted as verification, and so on.
Prints one line per profile and the sum. Needs `go tool pprof`.
"""
import collections
import re
import subprocess
import sys

RULES = [
    ('sign', r'ed25519\.Sign|\(\*Signer\)\.Sign'),
    ('verify', r'curve25519-voi|crypto\.\(\*Verifier\)|crypto\.\(\*Pool\)|crypto\.\(\*verifyBatch'),
    ('gc', r'runtime\.gcBgMarkWorker|runtime\.gcAssist|runtime\.bgsweep|runtime\.bgscavenge'),
    ('leveldb', r'goleveldb'),
    ('transport', r'yamux|security/noise|p2p\.|libp2p|net\.\(\*conn\)|internal/poll'),
    ('execution', r'pbftnode/execution|node\.\(\*Node\)\.execute'),
    ('protocol', r'pbftnode/protocol|pbftnode/checkpoint|pbftnode/viewchange'),
    ('client', r'pbftnode/client|pbftnode/benchmarks'),
    ('node', r'pbftnode/node'),
    ('metrics', r'prometheus'),
]
SEPARATOR = '-----------+-------------------------------------------------------'


def split(binary, profile):
    out = subprocess.run(['go', 'tool', 'pprof', '-traces', binary, profile],
                         capture_output=True, text=True, check=True).stdout
    seconds = collections.Counter()
    for block in out.split(SEPARATOR)[1:]:
        lines = [l for l in block.strip().split('\n') if l.strip()]
        if not lines:
            continue
        m = re.match(r'\s*([\d.]+)(ms|s)\s+(.*)', lines[0])
        if not m:
            continue
        value = float(m.group(1)) * (0.001 if m.group(2) == 'ms' else 1)
        stack = ' '.join([m.group(3)] + lines[1:])
        category = next((name for name, rx in RULES if re.search(rx, stack)), 'other')
        seconds[category] += value
    return seconds


def show(name, seconds, ops):
    total = sum(seconds.values())
    parts = ' '.join('%s=%.1f' % (k, v / ops * 1e6) for k, v in seconds.most_common())
    print('%s: %.1f us/op: %s' % (name, total / ops * 1e6, parts))


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    binary, ops = sys.argv[1], float(sys.argv[2])
    everything = collections.Counter()
    for profile in sys.argv[3:]:
        seconds = split(binary, profile)
        show(profile, seconds, ops)
        everything += seconds
    show('all', everything, ops)


if __name__ == '__main__':
    main()
