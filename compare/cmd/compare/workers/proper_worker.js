// A comparison worker for proper-lockfile (npm): the same line commands as
// the Go workers (see worker.go), in one long-lived Node process.
//
// Usage: node proper_worker.js LOCKPATH STALE_MS
// proper-lockfile is looked up through NODE_PATH.
'use strict';
const lockfile = require('proper-lockfile');
const readline = require('readline');

const path = process.argv[2];
const stale = Number(process.argv[3]);
// Retry for ever, 1 ms doubling to a cap of 200 ms with jitter: the same
// schedule as nfsflock's default, so that the waiting strategies compare.
const opts = {
  realpath: false,
  stale,
  retries: { forever: true, minTimeout: 1, maxTimeout: 200, factor: 2, randomize: true },
};

const mono = () => process.hrtime.bigint(); // CLOCK_MONOTONIC on Linux
const wall = () => BigInt(Date.now()) * 1000000n;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let release = null;

async function handle(f) {
  switch (f[0]) {
    case 'cycles': {
      const n = Number(f[1]);
      const start = mono();
      for (let i = 0; i < n; i++) {
        const rel = await lockfile.lock(path, opts);
        await rel();
      }
      return `ok ${mono() - start}`;
    }
    case 'acquire':
      release = await lockfile.lock(path, opts);
      return `ok ${mono()} ${wall()}`;
    case 'release':
      await release();
      release = null;
      return `ok ${mono()}`;
    case 'take': {
      const k = Number(f[1]);
      const hold = Number(f[2]);
      const times = [];
      for (let i = 0; i < k; i++) {
        const rel = await lockfile.lock(path, opts);
        const t1 = mono();
        if (hold) await sleep(hold / 1000);
        await rel();
        times.push(`${t1},${mono()}`);
      }
      return 'ok ' + times.join(' ');
    }
    case 'quit':
      process.exit(0);
  }
  return `err unknown command ${f[0]}`;
}

const rl = readline.createInterface({ input: process.stdin });
const queue = [];
let busy = false;
rl.on('line', (line) => {
  queue.push(line.trim().split(/\s+/));
  pump();
});
rl.on('close', () => { if (!busy && queue.length === 0) process.exit(0); });

async function pump() {
  if (busy) return;
  busy = true;
  while (queue.length) {
    const f = queue.shift();
    if (!f[0]) continue;
    let answer;
    try {
      answer = await handle(f);
    } catch (e) {
      answer = 'err ' + String(e.message || e).replace(/\n/g, ' ');
    }
    process.stdout.write(answer + '\n');
  }
  busy = false;
}
