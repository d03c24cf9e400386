#!/usr/bin/env node
// The Node.js peer of gort's DUMB servers: one event loop, a state machine per
// connection, implementing docs/PROTOCOL.md exactly (same limits, replies,
// in-order pipelining and STREAM backpressure). What a JavaScript programmer
// would write, and what dumb_fiber is measured against.
'use strict';
const net = require('net');

const MAX_LINE = 1024;
const LIMITS = { WAIT: 60000, BURN: 10000, STREAM: 1073741824 };
const CHUNK = Buffer.alloc(64 * 1024, 'A');

function usage(code) {
  (code ? process.stderr : process.stdout).write(
    'usage: node dumb.js [--host ADDR] [--port N]\n\n' +
    'DUMB protocol server (docs/PROTOCOL.md) on one Node.js event loop.\n' +
    '  --host ADDR   address to listen on (default 127.0.0.1)\n' +
    '  --port N      TCP port (default 8090)\n');
  process.exit(code);
}

function parseArgs(argv) {
  const opts = { host: '127.0.0.1', port: 8090 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--help' || a === '-h') usage(0);
    else if ((a === '--host' || a === '--port') && i + 1 < argv.length) opts[a.slice(2)] = argv[++i];
    else { process.stderr.write(`dumb.js: unknown argument ${a}\n`); usage(2); }
  }
  if (!net.isIPv4(opts.host)) {
    process.stderr.write('dumb.js: --host must be an IPv4 address\n');
    process.exit(2);
  }
  opts.port = opts.port === '' ? NaN : Number(opts.port);
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) {
    process.stderr.write('dumb.js: --port must be 0..65535\n');
    process.exit(2);
  }
  return opts;
}

// Recursion n levels deep with a 256-byte array per level, written before and
// read after the recursive call (JavaScript has no stack arrays; the typed
// array keeps the work per level comparable, and the recursion is real).
function burn(n) {
  const frame = new Uint8Array(256);
  frame[n & 255] = n & 255;
  if (n === 0) return 0;
  const r = burn(n - 1) + n;
  if (frame[n & 255] !== (n & 255)) throw new Error('corrupted frame');
  return r;
}

// Returns { reply } or { wait: ms } or { stream: n } for one request line.
function execute(line) {
  const sp = line.indexOf(' ');
  const cmd = sp < 0 ? line : line.slice(0, sp);
  if (cmd === 'PING') return { reply: sp < 0 ? 'PONG\n' : 'ERROR unexpected argument\n' };
  if (!(cmd in LIMITS)) return { reply: 'UNKNOWN_COMMAND\n' };
  const arg = sp < 0 ? '' : line.slice(sp + 1);
  if (arg === '') return { reply: 'ERROR missing argument\n' };
  if (/^-[0-9]+$/.test(arg)) return { reply: 'ERROR out of range\n' };
  if (!/^[0-9]+$/.test(arg)) return { reply: 'ERROR not a number\n' };
  const digits = arg.replace(/^0+(?=.)/, '');
  if (digits.length > 10 || Number(digits) > LIMITS[cmd]) return { reply: 'ERROR out of range\n' };
  const v = Number(digits);
  if (cmd === 'WAIT') return { wait: v };
  if (cmd === 'BURN') return { reply: `RESULT ${burn(v)}\n` };
  return { stream: v };
}

function serve(socket, conns) {
  conns.add(socket);
  let partial = Buffer.alloc(0);   // bytes of the current line (<= MAX_LINE + 1)
  let discarding = false;          // inside an overlong line
  const lines = [];                // complete lines not yet executed
  let busy = false;                // a WAIT or STREAM reply is in progress
  let ended = false;
  let stopping = false;            // the server is stopping: finish the reply in progress, then close

  // Stop (SIGINT/SIGTERM): an idle connection closes now; a busy one after
  // its reply is out.  Requests not yet started are dropped.
  socket.dumbStop = () => {
    stopping = true;
    lines.length = 0;
    if (!busy) closeNow();
  };
  function closeNow() {
    if (!socket.destroyed) socket.end(() => socket.destroy());
  }

  function feed(data) {
    let start = 0;
    for (let i = 0; i < data.length; i++) {
      if (data[i] !== 10) continue;
      let piece = data.subarray(start, i);
      start = i + 1;
      if (discarding) { discarding = false; partial = Buffer.alloc(0); continue; }
      let line = Buffer.concat([partial, piece]);
      partial = Buffer.alloc(0);
      if (line.length && line[line.length - 1] === 13) line = line.subarray(0, line.length - 1);
      lines.push(line.length > MAX_LINE ? null : line.toString('latin1'));
    }
    if (start < data.length && !discarding) {
      partial = Buffer.concat([partial, data.subarray(start)]);
      // 1024 bytes plus a possible '\r' may still be a valid line.
      if (partial.length > MAX_LINE + 1 ||
          (partial.length === MAX_LINE + 1 && partial[MAX_LINE] !== 13)) {
        lines.push(null);
        discarding = true;
        partial = Buffer.alloc(0);
      }
    }
  }

  function pump() {
    while (!busy && lines.length) {
      const line = lines.shift();
      if (line === null) { socket.write('ERROR line too long\n'); continue; }
      const act = execute(line);
      if (act.reply !== undefined) { socket.write(act.reply); continue; }
      busy = true;
      socket.pause();   // backpressure: read nothing more until this reply is out
      if (act.wait !== undefined) {
        const t = setTimeout(() => { socket.write('DONE\n'); done(); }, act.wait);
        socket.once('close', () => clearTimeout(t));
      } else {
        stream(act.stream);
      }
    }
    if (!busy && ended && !socket.destroyed) socket.end();
  }

  function done() {
    busy = false;
    if (stopping) { closeNow(); return; }
    if (!socket.destroyed) socket.resume();
    pump();
  }

  function stream(left) {
    while (left > 0) {
      const n = Math.min(left, CHUNK.length);
      left -= n;
      if (!socket.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n))) {
        socket.once('drain', () => stream(left));
        return;
      }
    }
    socket.write('DONE\n');
    done();
  }

  socket.setNoDelay(true);
  socket.on('data', (d) => { if (!stopping) { feed(d); pump(); } });
  socket.on('end', () => { ended = true; pump(); });
  socket.on('error', () => {});
  socket.on('close', () => conns.delete(socket));
}

// BURN 10000 recurses 10 000 levels: more than V8's default stack limit
// (~1 MB). Re-run under a larger limit that still fits the main thread's
// 8 MiB stack, forwarding signals and the exit status.
function reexecWithBigStack() {
  const { spawn } = require('child_process');
  const child = spawn(process.execPath, ['--stack-size=7000', __filename, ...process.argv.slice(2)],
                      { stdio: 'inherit' });
  for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => child.kill(sig));
  child.on('exit', (code, sig) => process.exit(code === null ? 1 : code));
}

function main() {
  if (!process.execArgv.some((a) => a.startsWith('--stack-size'))) {
    parseArgs(process.argv.slice(2));  // report bad flags before forking
    reexecWithBigStack();
    return;
  }
  const opts = parseArgs(process.argv.slice(2));
  const conns = new Set();
  // allowHalfOpen: a client that half-closes still gets every reply (docs/PROTOCOL.md).
  const server = net.createServer({ allowHalfOpen: true }, (s) => serve(s, conns));
  server.on('error', (e) => { process.stderr.write(`dumb.js: ${e.message}\n`); process.exit(1); });
  server.listen({ host: opts.host, port: opts.port, backlog: 4096 }, () => {
    const a = server.address();
    process.stdout.write(`dumb.js listening on ${a.address}:${a.port}\n`);
  });
  // Like the C++ servers (apps/dumb/server_main.h): stop accepting, let each
  // connection finish the reply in progress, close idle ones at once, exit 0
  // within 2 s whatever the clients do.
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    server.close();
    setTimeout(() => process.exit(0), 2000).unref();
    for (const c of conns) c.dumbStop();
    if (conns.size === 0) process.exit(0);
  };
  server.on('connection', (c) => {
    if (stopping) c.destroy();
    c.on('close', () => { if (stopping && conns.size === 0) process.exit(0); });
  });
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

main();
