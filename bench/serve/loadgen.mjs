// The load generator of bench/serve.sh: N paced tus uploaders against one server.
//
// Each uploader is what a browser recording is to the server: its own keep-alive HTTP
// connection (an http.Agent with one socket), one POST /files/ with Upload-Defer-Length: 1,
// then one PATCH per second carrying the next second of the recording's bytes
// (`bytesPerSec` of a looped real recording, mp4loop.mjs), each PATCH answered before the
// next is sent (as tus clients do), and at the end an empty PATCH declaring Upload-Length
// (the recording stops). Uploader i sends at t0 + i/N s + k s, so the N uploaders spread
// evenly over each second.
//
// Latency of a PATCH is measured from its scheduled send time to the end of its answer:
// when an answer is late and the next PATCH has to wait, the wait counts against the
// server (no coordinated omission). The service time (actual send to answer) is kept too.
// An error (status other than 204, a socket error, a 30 s timeout) is counted by kind and
// the uploader resynchronizes with HEAD, as tus clients do.
//
// Why raw node:http and not tus-js-client: the generator must not be the bottleneck; raw
// requests cost a few tens of microseconds each. The uploaders are split over
// worker threads (`workers`); each reports its event-loop delay so a saturated generator
// shows in the results instead of passing for server latency.
//
// Used by bench.mjs: `runLoad(opts)` in the main thread; this file is also the worker.

import http from 'node:http';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { LoopedMp4 } from './mp4loop.mjs';

/** Milliseconds since the epoch, sub-millisecond, the same clock in every thread. */
export const now = () => performance.timeOrigin + performance.now();
const sleepUntil = (t) => new Promise((r) => setTimeout(r, Math.max(0, t - now())));
const TIMEOUT_MS = 30000;

function request(agent, url, method, headers, body) {
  return new Promise((resolve) => {
    const t = now();
    let done = false;
    const finish = (r) => {
      if (!done) {
        done = true;
        r.ms = now() - t;
        resolve(r);
      }
    };
    const req = http.request(url, { method, agent, headers }, (res) => {
      res.on('data', () => {});
      res.on('end', () => finish({ status: res.statusCode, headers: res.headers }));
      res.on('error', (e) => finish({ status: 0, error: e.code || e.message }));
    });
    req.setTimeout(TIMEOUT_MS, () => {
      req.destroy(new Error('timeout'));
    });
    req.on('error', (e) => finish({ status: 0, error: e.code || e.message }));
    if (!body) return req.end();
    // The body as views of the looped recording's buffers, written as the socket drains:
    // no copies, and the generator's memory stays small however large the PATCHes are.
    const pieces = body.stream.slices(body.offset, body.len);
    const more = () => {
      for (let p = pieces.next(); !p.done; p = pieces.next()) {
        if (!req.write(p.value)) return req.once('drain', more);
      }
      req.end();
    };
    more();
  });
}

const b64 = (s) => Buffer.from(s).toString('base64');

class Uploader {
  constructor(index, opts, stream, stats) {
    this.index = index;
    this.opts = opts;
    this.stream = stream;
    this.stats = stats;
    this.agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    this.offset = 0;
    this.url = null;
  }

  error(phase, kind) {
    const key = `${phase}:${kind}`;
    this.stats.errors[key] = (this.stats.errors[key] ?? 0) + 1;
  }

  async create() {
    const r = await request(this.agent, this.opts.url, 'POST', {
      'Tus-Resumable': '1.0.0',
      'Upload-Defer-Length': '1',
      'Upload-Metadata': `filename ${b64(`bench-${this.index}.mp4`)},filetype ${b64('video/mp4')}`,
      'Content-Length': '0',
    });
    this.stats.createMs.push(r.ms);
    if (r.status !== 201 || !r.headers.location) {
      this.error('create', r.error ?? r.status);
      return false;
    }
    this.url = new URL(r.headers.location, this.opts.url).toString();
    return true;
  }

  async resync() {
    const r = await request(this.agent, this.url, 'HEAD', { 'Tus-Resumable': '1.0.0' });
    const off = Number(r.headers?.['upload-offset']);
    if (r.status === 200 && Number.isSafeInteger(off)) this.offset = off;
  }

  async patch(len, extra = {}) {
    const r = await request(this.agent, this.url, 'PATCH', {
      'Tus-Resumable': '1.0.0',
      'Upload-Offset': String(this.offset),
      'Content-Type': 'application/offset+octet-stream',
      'Content-Length': String(len),
      ...extra,
    }, len > 0 ? { stream: this.stream, offset: this.offset, len } : undefined);
    const off = Number(r.headers?.['upload-offset']);
    if (r.status === 204 && Number.isSafeInteger(off) && off === this.offset + len) {
      this.stats.acked += len;
      this.offset = off;
      return r;
    }
    r.failed = true;
    return r;
  }

  async paced(t0, secs) {
    const start = t0 + (this.index / this.opts.n) * 1000;
    for (let k = 0; k < secs; k++) {
      const sched = start + k * 1000;
      await sleepUntil(sched);
      const sent = now();
      const r = await this.patch(this.opts.bytesPerSec);
      const end = now();
      this.stats.latMs.push(end - sched);
      this.stats.svcMs.push(end - sent);
      if (sent - sched > 50) this.stats.late++;
      if (r.failed) {
        this.error('patch', r.error ?? r.status);
        await this.resync();
      }
    }
  }

  async finish() {
    const r = await this.patch(0, { 'Upload-Length': String(this.offset) });
    this.stats.finishMs.push(r.ms);
    if (r.failed) this.error('finish', r.error ?? r.status);
  }

  async status() {
    const r = await new Promise((resolve) => {
      http.get(`${this.url}/status`, { agent: this.agent }, (res) => {
        let s = '';
        res.on('data', (d) => (s += d));
        res.on('end', () => resolve({ status: res.statusCode, body: s }));
      }).on('error', (e) => resolve({ status: 0, body: e.message }));
    });
    let json = null;
    try {
      json = JSON.parse(r.body);
    } catch {
      /* reported below */
    }
    return { index: this.index, http: r.status, state: json?.state, offset: json?.offset, sent: this.offset, duration_ms: json?.duration_ms };
  }
}

async function pool(items, concurrency, fn) {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]);
  }));
}

function workerMain() {
  const { opts, indices } = workerData;
  const stream = new LoopedMp4(opts.source);
  const stats = { createMs: [], latMs: [], svcMs: [], finishMs: [], errors: {}, acked: 0, late: 0 };
  const ups = indices.map((i) => new Uploader(i, opts, stream, stats));
  let live = [];
  const loop = monitorEventLoopDelay({ resolution: 5 });
  const send = (m) => parentPort.postMessage(m);
  parentPort.on('message', async (m) => {
    if (m.cmd === 'create') {
      const ok = [];
      await pool(ups, opts.createConcurrency, async (u) => {
        if (await u.create()) ok.push(u);
      });
      live = ok;
      send({ ev: 'created' });
    } else if (m.cmd === 'go') {
      loop.enable();
      await Promise.all(live.map((u) => u.paced(m.t0, m.secs)));
      loop.disable();
      send({ ev: 'paced' });
    } else if (m.cmd === 'finish') {
      await pool(live, opts.createConcurrency, (u) => u.finish());
      const checks = m.verify ? await Promise.all(live.slice(0, m.verify).map((u) => u.status())) : [];
      send({ ev: 'finished', checks });
    } else if (m.cmd === 'report') {
      send({
        ev: 'report',
        stats: { ...stats, loopP99Ms: loop.percentile(99) / 1e6, loopMaxMs: loop.max / 1e6, created: live.length },
      });
      for (const u of ups) u.agent.destroy();
    }
  });
  send({ ev: 'ready' });
}

/**
 * Runs one load: creates `n` uploads, then `secs` seconds of paced PATCHes, optionally
 * holds (`onPaced` runs between the paced phase and the finish: the caller samples the
 * server there), then finishes them (declares their length) when `finish` is set.
 * Returns merged stats and the phase timestamps.
 */
export async function runLoad(opts, { onCreated, onPaced } = {}) {
  const workers = Math.max(1, Math.min(opts.workers ?? 1, opts.n));
  const shares = Array.from({ length: workers }, () => []);
  for (let i = 0; i < opts.n; i++) shares[i % workers].push(i);
  const ws = shares.map((indices) => new Worker(fileURLToPath(import.meta.url), {
    workerData: { opts: { createConcurrency: 32, ...opts }, indices },
  }));
  const waiting = new Map();
  const inbox = ws.map(() => []);
  ws.forEach((w, i) => {
    w.on('message', (m) => {
      const key = `${i}:${m.ev}`;
      const r = waiting.get(key);
      if (r) {
        waiting.delete(key);
        r(m);
      } else inbox[i].push(m);
    });
    w.on('error', (e) => {
      throw e;
    });
  });
  const expect = (ev) => Promise.all(ws.map((_, i) => {
    const j = inbox[i].findIndex((m) => m.ev === ev);
    if (j >= 0) return inbox[i].splice(j, 1)[0];
    return new Promise((r) => waiting.set(`${i}:${ev}`, r));
  }));
  const all = (cmd) => ws.forEach((w) => w.postMessage(cmd));
  await expect('ready');
  const t = { createStart: now() };
  all({ cmd: 'create' });
  await expect('created');
  t.createEnd = now();
  if (onCreated) await onCreated();
  t.pacedStart = now() + 200;
  all({ cmd: 'go', t0: t.pacedStart, secs: opts.secs });
  await expect('paced');
  t.pacedEnd = now();
  if (onPaced) await onPaced();
  let checks = [];
  if (opts.finish) {
    t.finishStart = now();
    all({ cmd: 'finish', verify: opts.verify ?? 0 });
    checks = (await expect('finished')).flatMap((m) => m.checks);
    t.finishEnd = now();
  }
  all({ cmd: 'report' });
  const reports = (await expect('report')).map((m) => m.stats);
  await Promise.all(ws.map((w) => w.terminate()));
  const merged = { createMs: [], latMs: [], svcMs: [], finishMs: [], errors: {}, acked: 0, late: 0, created: 0, loopP99Ms: 0, loopMaxMs: 0 };
  for (const s of reports) {
    for (const k of ['createMs', 'latMs', 'svcMs', 'finishMs']) for (const v of s[k]) merged[k].push(v);
    for (const [k, v] of Object.entries(s.errors)) merged.errors[k] = (merged.errors[k] ?? 0) + v;
    merged.acked += s.acked;
    merged.late += s.late;
    merged.created += s.created;
    merged.loopP99Ms = Math.max(merged.loopP99Ms, s.loopP99Ms);
    merged.loopMaxMs = Math.max(merged.loopMaxMs, s.loopMaxMs);
  }
  merged.checks = checks;
  return { stats: merged, t };
}

if (!isMainThread && workerData?.indices) workerMain();
