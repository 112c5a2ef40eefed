// A pbftnode application in Node.js: an in-memory key-value store with the
// built-in store's operations, limits, result encoding and digest, served
// over pbftnode's gRPC application protocol (appgrpc/apppb/app.proto). It
// loads app.proto at run time and decodes operations by wire/wire.proto's
// field numbers (kvoperation.js); nothing else of pbftnode is used. The state lives only in memory on purpose: a restarted
// server is empty, and its replica restores it (see app.proto).
//
//   npm install && node server.js --listen 127.0.0.1:7000
//   node server.js --listen unix:///tmp/app.sock
'use strict';

const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const { decodeKVOperation } = require('./kvoperation');

const REPO = path.resolve(__dirname, '..', '..');
const APP_PROTO = 'appgrpc/apppb/app.proto';

// The built-in store's limits and the protocol's.
const MAX_KEY_SIZE = 1 << 10;
const MAX_VALUE_SIZE = 1 << 20;
const MAX_CHUNK_BYTES = 1 << 20;
const MAX_SNAPSHOT_BYTES = 1 << 30;
const MAX_MESSAGE_BYTES = 64 << 20;
const DIGEST_SIZE = 32;

// The built-in store's entry hash domain, so the digests are equal.
const ENTRY_DOMAIN = Buffer.from('pbftnode/v1/kv-entry');
// The snapshot format of examples/grpc-app: the two are interchangeable.
const SNAPSHOT_MAGIC = Buffer.from('pbftnode-example/grpc-app/v1\n');
const MOD = 1n << 256n;

// --- encoding helpers --------------------------------------------------

function uvarint(n) {
  const out = [];
  let v = BigInt(n);
  while (v >= 0x80n) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
  return Buffer.from(out);
}

// readUvarint returns [value, bytes read] or null for a bad prefix.
function readUvarint(buf, off) {
  let v = 0n;
  for (let i = 0; i < 10 && off + i < buf.length; i++) {
    const b = buf[off + i];
    v |= BigInt(b & 0x7f) << BigInt(7 * i);
    if (b < 0x80) {
      if (i === 9 && b > 1) return null;
      return [v, i + 1];
    }
  }
  return null;
}

// encodeResult is a wire.KVResult as Go's deterministic marshalling writes
// it: set fields in field order, false and empty values left out.
function encodeResult({ ok = false, value = null, error = '' }) {
  const parts = [];
  if (ok) parts.push(Buffer.from([0x08, 0x01]));
  if (value && value.length > 0) parts.push(Buffer.from([0x12]), uvarint(value.length), value);
  if (error) {
    const e = Buffer.from(error, 'utf8');
    parts.push(Buffer.from([0x1a]), uvarint(e.length), e);
  }
  return Buffer.concat(parts);
}

function entryHash(key, value) {
  const h = crypto.createHash('sha256');
  h.update(ENTRY_DOMAIN).update(uvarint(key.length)).update(key).update(value);
  return BigInt('0x' + h.digest('hex'));
}

function digestBytes(sum) {
  return Buffer.from(sum.toString(16).padStart(64, '0'), 'hex');
}

// --- the key-value state -------------------------------------------------

class KVState {
  constructor() {
    this.entries = new Map(); // key as hex -> value Buffer
    this.sequence = 0n;
    this.sum = 0n; // sum of entry hashes mod 2^256
  }

  digest() {
    return digestBytes(this.sum);
  }

  set(key, value) {
    const k = key.toString('hex');
    const old = this.entries.get(k);
    if (old !== undefined) this.sum = (this.sum - entryHash(key, old) + MOD) % MOD;
    const stored = Buffer.from(value);
    this.entries.set(k, stored);
    this.sum = (this.sum + entryHash(key, stored)) % MOD;
  }

  remove(key) {
    const k = key.toString('hex');
    const old = this.entries.get(k);
    if (old === undefined) return;
    this.sum = (this.sum - entryHash(key, old) + MOD) % MOD;
    this.entries.delete(k);
  }

  get(key) {
    return this.entries.get(key.toString('hex'));
  }

  // execute applies one encoded wire.KVOperation (hostile bytes) and
  // returns its encoded wire.KVResult.
  execute(payload) {
    let op;
    try {
      op = decodeKVOperation(payload);
    } catch {
      return encodeResult({ error: 'malformed operation' });
    }
    const k = op.key || Buffer.alloc(0);
    switch (op.op) {
      case 'put': {
        const v = op.value || Buffer.alloc(0);
        if (k.length > MAX_KEY_SIZE) return encodeResult({ error: 'put: key too large' });
        if (v.length > MAX_VALUE_SIZE) return encodeResult({ error: 'put: value too large' });
        this.set(k, v);
        return encodeResult({ ok: true });
      }
      case 'get':
        return this.read(k);
      case 'delete': {
        if (k.length > MAX_KEY_SIZE) return encodeResult({ error: 'delete: key too large' });
        this.remove(k);
        return encodeResult({ ok: true });
      }
      case 'cas':
        return this.compareAndSwap(op);
      default:
        return encodeResult({ error: 'malformed operation: no operation set' });
    }
  }

  read(k) {
    if (k.length > MAX_KEY_SIZE) return encodeResult({ error: 'get: key too large' });
    const value = this.get(k);
    return encodeResult({ ok: value !== undefined, value });
  }

  compareAndSwap(c) {
    const k = c.key || Buffer.alloc(0);
    const oldValue = c.old_value || Buffer.alloc(0);
    const newValue = c.new_value || Buffer.alloc(0);
    const oldAbsent = Boolean(c.old_absent);
    if (k.length > MAX_KEY_SIZE) return encodeResult({ error: 'cas: key too large' });
    if (oldAbsent && oldValue.length > 0) return encodeResult({ error: 'cas: old_value set together with old_absent' });
    if (oldValue.length > MAX_VALUE_SIZE || newValue.length > MAX_VALUE_SIZE) return encodeResult({ error: 'cas: value too large' });
    const current = this.get(k);
    const found = current !== undefined;
    const matches = (oldAbsent && !found) || (!oldAbsent && found && current.equals(oldValue));
    if (!matches) return encodeResult({ ok: false, value: current });
    this.set(k, newValue);
    return encodeResult({ ok: true });
  }

  // query answers a read-only query: an encoded KVOperation holding a get.
  query(payload) {
    let op;
    try {
      op = decodeKVOperation(payload);
    } catch {
      return encodeResult({ error: 'malformed query' });
    }
    if (op.op !== 'get') return encodeResult({ error: 'query: only get is read-only' });
    return this.read(op.key || Buffer.alloc(0));
  }

  // snapshot: the magic, then entries in strictly increasing key order,
  // each uvarint(len k) || k || uvarint(len v) || v.
  snapshot() {
    const keys = [...this.entries.keys()].map((h) => Buffer.from(h, 'hex')).sort(Buffer.compare);
    const parts = [SNAPSHOT_MAGIC];
    for (const k of keys) {
      const v = this.get(k);
      parts.push(uvarint(k.length), k, uvarint(v.length), v);
    }
    return Buffer.concat(parts);
  }
}

// readField reads uvarint(n) || n bytes with n <= limit.
function readField(buf, off, limit) {
  const r = readUvarint(buf, off);
  if (r === null) throw new Error('bad length prefix');
  const [n, size] = r;
  if (n > BigInt(limit)) throw new Error(`length ${n} over limit ${limit}`);
  const start = off + size;
  if (BigInt(buf.length - start) < n) throw new Error(`length ${n} but only ${buf.length - start} bytes left`);
  return [buf.subarray(start, start + Number(n)), start + Number(n)];
}

// parseSnapshot validates a snapshot (hostile bytes) into a fresh state.
function parseSnapshot(sequence, snap) {
  const s = new KVState();
  s.sequence = sequence;
  if (snap.length === 0 && sequence === 0n) return s;
  if (snap.length < SNAPSHOT_MAGIC.length || !snap.subarray(0, SNAPSHOT_MAGIC.length).equals(SNAPSHOT_MAGIC)) {
    throw new Error('not a grpc-app snapshot (bad magic)');
  }
  let off = SNAPSHOT_MAGIC.length;
  let prev = null;
  for (let n = 0; off < snap.length; n++) {
    let key, value;
    [key, off] = readField(snap, off, MAX_KEY_SIZE);
    [value, off] = readField(snap, off, MAX_VALUE_SIZE);
    if (prev !== null && Buffer.compare(prev, key) >= 0) throw new Error(`entry ${n}: keys not strictly increasing`);
    prev = key;
    s.set(key, value);
  }
  return s;
}

// --- the gRPC service ------------------------------------------------------

function statusError(code, message) {
  return Object.assign(new Error(message), { code });
}

function service(log) {
  let state = new KVState();
  const current = () => ({ sequence: state.sequence.toString(), digest: state.digest() });
  return {
    Info(call, callback) {
      callback(null, { state: current() });
    },
    Execute(call, callback) {
      const seq = BigInt(call.request.sequence || 0);
      if (seq !== state.sequence + 1n) {
        callback(statusError(grpc.status.FAILED_PRECONDITION, `batch at sequence ${seq}, but the next is ${state.sequence + 1n}`));
        return;
      }
      const results = call.request.operations.map((op) => state.execute(op.payload || Buffer.alloc(0)));
      state.sequence = seq;
      callback(null, { results, digest: state.digest() });
    },
    Query(call, callback) {
      callback(null, { answer: state.query(call.request.query || Buffer.alloc(0)) });
    },
    Snapshot(call) {
      const snap = state.snapshot();
      for (let off = 0; off < snap.length; off += MAX_CHUNK_BYTES) {
        call.write({ data: snap.subarray(off, off + MAX_CHUNK_BYTES) });
      }
      call.end();
    },
    Restore(call, callback) {
      let want = null;
      const chunks = [];
      let total = 0;
      let failed = false;
      const fail = (code, message) => {
        if (!failed) callback(statusError(code, message));
        failed = true;
      };
      call.on('data', (msg) => {
        if (failed) return;
        if (want === null) {
          if (msg.part !== 'state' || !msg.state.digest || msg.state.digest.length !== DIGEST_SIZE) {
            fail(grpc.status.INVALID_ARGUMENT, 'the first message must carry the state, with a 32-byte digest');
            return;
          }
          want = msg.state;
          return;
        }
        if (msg.part !== 'chunk') return fail(grpc.status.INVALID_ARGUMENT, 'only the first message may carry a state');
        const chunk = msg.chunk || Buffer.alloc(0);
        if (chunk.length > MAX_CHUNK_BYTES) return fail(grpc.status.INVALID_ARGUMENT, `chunk of ${chunk.length} bytes over the limit ${MAX_CHUNK_BYTES}`);
        total += chunk.length;
        if (total > MAX_SNAPSHOT_BYTES) return fail(grpc.status.RESOURCE_EXHAUSTED, `snapshot over ${MAX_SNAPSHOT_BYTES} bytes`);
        chunks.push(chunk);
      });
      call.on('error', () => { failed = true; });
      call.on('end', () => {
        if (failed) return;
        if (want === null) return fail(grpc.status.INVALID_ARGUMENT, 'no state');
        const seq = BigInt(want.sequence || 0);
        const snap = Buffer.concat(chunks);
        let restored;
        try {
          restored = parseSnapshot(seq, snap);
        } catch (e) {
          return fail(grpc.status.INVALID_ARGUMENT, `snapshot at sequence ${seq}: ${e.message}`);
        }
        const initial = seq === 0n && snap.length === 0;
        if (!initial && !restored.digest().equals(Buffer.from(want.digest))) {
          return fail(grpc.status.INVALID_ARGUMENT, `snapshot at sequence ${seq} has digest ${restored.digest().toString('hex')}, the state announced ${Buffer.from(want.digest).toString('hex')}`);
        }
        state = restored;
        log(`restored sequence=${seq} entries=${restored.entries.size} bytes=${snap.length}`);
        callback(null, {});
      });
    },
  };
}

// --- main -------------------------------------------------------------------

function listenAddress(listen) {
  if (listen.startsWith('unix://')) {
    const p = listen.slice('unix://'.length);
    if (!p.startsWith('/')) throw new Error(`--listen ${listen}: the socket path must be absolute (unix:///PATH)`);
    try {
      if (fs.lstatSync(p).isSocket()) fs.unlinkSync(p); // a stale socket
    } catch (e) {
      if (e.code !== 'ENOENT') throw e;
    }
    return 'unix://' + p;
  }
  const hostPort = listen.replace(/^grpc:\/\//, '');
  if (!/^(\[[0-9a-fA-F:.]+\]|[^:/\s]+):\d+$/.test(hostPort)) {
    throw new Error(`--listen ${listen}: want HOST:PORT, grpc://HOST:PORT or unix:///PATH`);
  }
  return hostPort;
}

function main(argv) {
  const i = argv.indexOf('--listen');
  if (i < 0 || !argv[i + 1]) {
    console.error('usage: node server.js --listen HOST:PORT | grpc://HOST:PORT | unix:///PATH');
    process.exit(2);
  }
  const log = (msg) => console.error(`${new Date().toISOString()} grpc-app-node: ${msg}`);
  const definition = protoLoader.loadSync(APP_PROTO, {
    includeDirs: [REPO], keepCase: true, longs: String, defaults: false, arrays: true, oneofs: true,
  });
  const apppb = grpc.loadPackageDefinition(definition).pbftnode.app.v1;
  const server = new grpc.Server({
    'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
    'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
  });
  server.addService(apppb.Application.service, service(log));
  let address;
  try {
    address = listenAddress(argv[i + 1]);
  } catch (e) {
    console.error(`grpc-app-node: ${e.message}`);
    process.exit(1);
  }
  server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err, port) => {
    if (err) {
      console.error(`grpc-app-node: listen: ${err.message}`);
      process.exit(1);
    }
    // The bound address, on stdout, for scripts and tests (port 0 picks one).
    const bound = address.startsWith('unix://') ? address : address.replace(/:\d+$/, `:${port}`);
    console.log(`listening ${bound}`);
    log(`serving the pbftnode application protocol (in-memory key-value store) on ${bound}`);
  });
  const stop = () => server.tryShutdown(() => process.exit(0));
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

main(process.argv.slice(2));
