// bench/serve.sh's driver: disk fsync bandwidth, then livemux serve and the @tus/server
// peer under the same paced loads (steps of N), an idle-recordings run and a saturation run
// each; prints a table and the goals of issue 15. Settings come from the environment (see
// bench/serve.sh). Raw results are written as JSON to $OUT_JSON.

import { spawn, execFileSync } from 'node:child_process';
import { createWriteStream, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runLoad, now } from './loadgen.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const env = process.env;
const num = (k, d) => (env[k] === undefined || env[k] === '' ? d : Number(env[k]));
const list = (k, d) => (env[k] || d).split(/[\s,]+/).filter(Boolean).map(Number);
const cfg = {
  livemux: env.LIVEMUX,
  dataRoot: env.DATA_DIR,
  source: env.SOURCE,
  nList: list('N_LIST', '50 100 200 500 800 1000 1500 2000'),
  secs: num('D', 20),
  kbps: num('BITRATE', 1000),
  p99Goal: num('P99_MS', 250),
  idleN: num('IDLE_N', 1000),
  idleHold: num('IDLE_HOLD', 3),
  satN: num('SAT_N', 100),
  satKbps: num('SAT_BITRATE', 0), // 0: offer twice the fsync bandwidth
  satSecs: num('SAT_SECS', 10),
  workers: num('LOADGEN_WORKERS', 1),
  fsyncWriters: list('FSYNC_WRITERS', '1 4 8'),
  fsyncSecs: num('FSYNC_SECS', 3),
  peer: env.PEER !== '0',
  genCheck: env.GEN_CHECK !== '0',
  only: env.ONLY || '', // "livemux" or "tus": run one side only
  outJson: env.OUT_JSON,
  clk: num('CLK_TCK', 100),
};
for (const k of ['livemux', 'dataRoot', 'source']) if (!cfg[k]) throw new Error(`bench.mjs: ${k} not set (run bench/serve.sh)`);
const MiB = 1 << 20;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (...a) => console.log(...a);

// --- /proc sampling -----------------------------------------------------------------
function procStat(pid) {
  const s = readFileSync(`/proc/${pid}/stat`, 'latin1');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]); // utime + stime, clock ticks
}
function procStatus(pid) {
  const s = readFileSync(`/proc/${pid}/status`, 'latin1');
  const kb = (k) => Number((s.match(new RegExp(`^${k}:\\s+(\\d+)`, 'm')) ?? [])[1] ?? NaN);
  return { rssKiB: kb('VmRSS'), hwmKiB: kb('VmHWM'), threads: kb('Threads') };
}
function procWriteBytes(pid) {
  try {
    return Number(readFileSync(`/proc/${pid}/io`, 'latin1').match(/^write_bytes:\s+(\d+)/m)[1]);
  } catch {
    return NaN;
  }
}
function machineTicks() {
  const f = readFileSync('/proc/stat', 'latin1').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  return { busy: total - f[3] - f[4], total };
}
function sample(pid) {
  return { t: now(), cpu: procStat(pid), ...procStatus(pid), wbytes: procWriteBytes(pid), self: procStat(process.pid), machine: machineTicks() };
}
/** CPU use between two samples, in cores (1.0 = one core busy). */
function between(a, b) {
  const dt = (b.t - a.t) / 1000;
  const r = {
    server: (b.cpu - a.cpu) / cfg.clk / dt,
    loadgen: (b.self - a.self) / cfg.clk / dt,
    machineBusy: (b.machine.busy - a.machine.busy) / (b.machine.total - a.machine.total), // share of all CPUs
    others: 0,
    diskWrite: (b.wbytes - a.wbytes) / dt,
  };
  // Everything else the machine ran meanwhile (other sessions' builds...), in cores.
  r.others = Math.max(0, r.machineBusy * CPUS - r.server - r.loadgen);
  return r;
}
const CPUS = os.availableParallelism();

// --- servers --------------------------------------------------------------------------
const live = new Set(); // servers running: killed if the bench stops early
process.on('exit', () => {
  for (const p of live) p.kill('SIGKILL');
});
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => process.exit(130));
async function startServer(kind, dir, logPath) {
  mkdirSync(dir, { recursive: true });
  const args = kind === 'livemux'
    ? [cfg.livemux, ['serve', '--listen', '127.0.0.1:0', '--data-dir', dir, '--max-uploads', '1000000',
      '--idle-finalize-secs', '86400', ...(env.LIVEMUX_SERVE_ARGS ?? '').split(/\s+/).filter(Boolean)]]
    : [process.execPath, [path.join(here, kind === 'null' ? 'null.mjs' : 'server.mjs'), dir]];
  // Its own session (setsid), as a daemon runs: with the kernel's autogroup scheduling the
  // server then gets its own CPU share, apart from the load generator's.
  const proc = spawn(args[0], args[1], { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  live.add(proc);
  const out = createWriteStream(logPath);
  let seen = '';
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${kind}: no "listening on" line in 30 s (log: ${logPath})`)), 30000);
    proc.stderr.on('data', (d) => {
      out.write(d);
      if (seen !== null) {
        seen += d.toString('latin1');
        // The whole line: stderr is unbuffered, a chunk may end inside the port number.
        const m = seen.match(/listening on (http:\/\/\S+)\r?\n/);
        if (m) {
          seen = null;
          clearTimeout(timer);
          resolve(m[1].replace(/\/$/, ''));
        }
      }
    });
    proc.on('exit', (code, sig) => reject(new Error(`${kind} exited (${code ?? sig}) before listening (log: ${logPath})`)));
  });
  proc.removeAllListeners('exit');
  const exited = new Promise((r) => proc.on('exit', (code, sig) => {
    live.delete(proc);
    r(code ?? sig);
  }));
  return {
    kind, pid: proc.pid, url: `${url}/files/`, exited,
    async stop() {
      proc.kill('SIGTERM');
      const r = await Promise.race([exited, sleep(20000).then(() => 'timeout')]);
      if (r === 'timeout') {
        proc.kill('SIGKILL');
        await exited;
      }
      out.end();
      return r;
    },
  };
}

// --- one run ---------------------------------------------------------------------------
const pct = (sorted, p) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] : NaN);
let runNo = 0;

/** One server, one load. mode: paced | idle | sat. */
async function run(kind, mode, n, kbps, secs) {
  const dir = path.join(cfg.dataRoot, `${kind}-${mode}-${n}-${++runNo}`);
  const logPath = path.join(cfg.dataRoot, 'logs', `${kind}-${mode}-${n}-${runNo}.log`);
  rmSync(dir, { recursive: true, force: true });
  const srv = await startServer(kind, dir, logPath);
  await sleep(500);
  const base = sample(srv.pid);
  let created, pacedEnd, held;
  const samples = [];
  const timer = setInterval(() => samples.push(sample(srv.pid)), 1000);
  const { stats, t } = await runLoad({
    url: srv.url, n, secs, bytesPerSec: Math.round((kbps * 1000) / 8), source: cfg.source,
    workers: cfg.workers, finish: mode === 'paced', verify: kind === 'livemux' && mode === 'paced' ? 2 : 0,
  }, {
    onCreated: () => { created = sample(srv.pid); },
    onPaced: async () => {
      pacedEnd = sample(srv.pid);
      if (mode === 'idle') {
        await sleep(cfg.idleHold * 1000);
        held = sample(srv.pid);
      }
    },
  });
  clearInterval(timer);
  const end = sample(srv.pid);
  const stopped = await srv.stop();
  let dataBytes = NaN;
  try {
    dataBytes = Number(execFileSync('du', ['-sb', dir], { encoding: 'utf8' }).split('\t')[0]);
  } catch { /* reported as NaN */ }
  rmSync(dir, { recursive: true, force: true });

  const lat = Float64Array.from(stats.latMs).sort();
  const svc = Float64Array.from(stats.svcMs).sort();
  const fin = Float64Array.from(stats.finishMs).sort();
  const pacedSecs = (t.pacedEnd - t.pacedStart) / 1000;
  const load = between(created, pacedEnd);
  const rssMax = Math.max(...samples.map((s) => s.rssKiB), pacedEnd.rssKiB);
  const errors = Object.values(stats.errors).reduce((a, b) => a + b, 0);
  const pacedErrors = Object.entries(stats.errors).filter(([k]) => !k.startsWith('finish')).reduce((a, [, v]) => a + v, 0);
  const r = {
    kind, mode, n, kbps, secs, created: stats.created, errors, pacedErrors, errorKinds: stats.errors,
    patches: lat.length, p50: pct(lat, 0.5), p99: pct(lat, 0.99), max: lat.at(-1) ?? NaN,
    svcP50: pct(svc, 0.5), svcP99: pct(svc, 0.99), late: stats.late,
    createP99: pct(Float64Array.from(stats.createMs).sort(), 0.99),
    finishP50: pct(fin, 0.5), finishP99: pct(fin, 0.99), finishSecs: t.finishEnd ? (t.finishEnd - t.finishStart) / 1000 : null,
    ackedBytes: stats.acked, ingestBps: stats.acked / pacedSecs, pacedSecs,
    serverCores: load.server, loadgenCores: load.loadgen, machineBusy: load.machineBusy, othersCores: load.others, diskWriteBps: load.diskWrite,
    loopP99Ms: stats.loopP99Ms, loopMaxMs: stats.loopMaxMs,
    baseRssKiB: base.rssKiB, pacedRssKiB: pacedEnd.rssKiB, maxRssKiB: rssMax, hwmKiB: end.hwmKiB,
    heldRssKiB: held?.rssKiB ?? null, threads: pacedEnd.threads, dataBytes, stopped, checks: stats.checks,
  };
  r.cpuPerRecMs = (r.serverCores * 1000) / n; // CPU ms per second per recording
  r.rssPerRecKiB = ((held ?? pacedEnd).rssKiB - base.rssKiB) / n;
  r.pass = r.created === n && r.pacedErrors === 0 && r.p99 <= cfg.p99Goal;
  r.loadgenBound = r.loadgenCores > 0.9 * Math.min(cfg.workers, 2) || r.loopP99Ms > 50;
  return r;
}

// --- reporting -------------------------------------------------------------------------
const f1 = (x) => (Number.isFinite(x) ? x.toFixed(1) : '-');
const f0 = (x) => (Number.isFinite(x) ? x.toFixed(0) : '-');
const f2 = (x) => (Number.isFinite(x) ? x.toFixed(2) : '-');
const pad = (s, w) => String(s).padStart(w);
const HEAD = ['server', 'mode', 'N', 'kbit/s', 'p50 ms', 'p99 ms', 'max ms', 'errors', 'late', 'ingest MiB/s', 'disk wr MiB/s',
  'srv CPU', 'CPU ms/s/rec', 'RSS MiB', 'peak MiB', 'KiB/rec', 'gen CPU', 'gen lag99', 'others', 'ok'];
const W = [7, 5, 5, 7, 7, 7, 7, 6, 5, 12, 13, 7, 12, 8, 8, 8, 7, 9, 9, 4];
function row(r) {
  const cells = [r.kind, r.mode, r.n, r.kbps, f1(r.p50), f1(r.p99), f0(r.max), r.errors, r.late, f1(r.ingestBps / MiB),
    f1(r.diskWriteBps / MiB), `${f0(r.serverCores * 100)}%`, f2(r.cpuPerRecMs), f1((r.heldRssKiB ?? r.pacedRssKiB) / 1024),
    f1(r.hwmKiB / 1024), f0(r.rssPerRecKiB), `${f0(r.loadgenCores * 100)}%`, f1(r.loopP99Ms), `${f0(r.othersCores * 100)}%`,
    r.mode === 'paced' ? (r.pass ? 'yes' : 'NO') : ''];
  return cells.map((c, i) => pad(c, W[i])).join(' ');
}
function printRun(r) {
  log(`   ${row(r)}`);
  const extra = [];
  if (r.errors) extra.push(`errors ${JSON.stringify(r.errorKinds)}`);
  if (r.created !== r.n) extra.push(`created ${r.created}/${r.n}`);
  if (r.loadgenBound) extra.push('LOAD GENERATOR NEAR ITS LIMIT (its CPU or event-loop lag): latencies may be its own');
  if (r.finishSecs != null) extra.push(`finish (Upload-Length) p50 ${f1(r.finishP50)} ms p99 ${f1(r.finishP99)} ms, all in ${f1(r.finishSecs)} s`);
  if (r.checks?.length) extra.push(`status ${r.checks.map((c) => `${c.state}@${c.offset}/${c.sent}`).join(' ')}`);
  extra.push(`service p99 ${f1(r.svcP99)} ms, create p99 ${f1(r.createP99)} ms, data dir ${f1(r.dataBytes / MiB)} MiB, threads ${r.threads}, stop: ${r.stopped}`);
  for (const e of extra) log(`     ${e}`);
}

function fsyncBandwidth() {
  const dir = path.join(cfg.dataRoot, 'fsync');
  mkdirSync(dir, { recursive: true });
  const res = cfg.fsyncWriters.map((k) => JSON.parse(execFileSync('python3',
    [path.join(here, 'fsyncbw.py'), dir, '--writers', String(k), '--secs', String(cfg.fsyncSecs)], { encoding: 'utf8' })));
  rmSync(dir, { recursive: true, force: true });
  for (const r of res) log(`   ${r.writers} writer(s) x 1 MiB append + fdatasync: ${f1(r.mib_s)} MiB/s (sync p50 ${r.p50_ms} ms, p99 ${r.p99_ms} ms)`);
  return Math.max(...res.map((r) => r.mib_s)) * MiB;
}

// --- main ------------------------------------------------------------------------------
mkdirSync(path.join(cfg.dataRoot, 'logs'), { recursive: true });
const results = { cfg, runs: [], fsync: [] };
{
  const a = machineTicks();
  await sleep(2000);
  const b = machineTicks();
  const busy = ((b.busy - a.busy) / (b.total - a.total)) * CPUS;
  log(`== background: the machine ran ${f0(busy * 100)}% of one core (of ${CPUS * 100}%) before the bench started${busy > 0.5 ? ' -- numbers will be noisy and low' : ''}`);
  results.backgroundCores = busy;
}
log(`== disk: fsync'd write bandwidth in ${cfg.dataRoot} (${cfg.fsyncSecs} s per writer count)`);
results.fsync.push(fsyncBandwidth());
const kinds = cfg.only ? [cfg.only] : cfg.peer ? ['livemux', 'tus'] : ['livemux'];
log(`== table columns: latency from the scheduled send to the answer; ingest = bytes acknowledged per second; disk wr = the server's storage writes (/proc/PID/io);`);
log(`   srv CPU in % of one core; RSS at the end of the load (idle: after ${cfg.idleHold} s idle), peak = VmHWM; KiB/rec = (RSS - RSS before) / N;`);
log(`   gen = the load generator (CPU, event-loop lag p99 ms); others = CPU of every other process on the machine meanwhile (% of one core; ${CPUS} CPUs)`);
log(`   ${HEAD.map((h, i) => pad(h, W[i])).join(' ')}`);
if (cfg.genCheck) {
  // The generator against a server that does nothing, at the largest N: its own share of
  // the latencies and its CPU, so the real servers' numbers can be read against them.
  const n = Math.max(...cfg.nList);
  log(`== load generator alone: N=${n} against a null server (bench/serve/null.mjs), ${Math.min(cfg.secs, 10)} s`);
  results.genCheck = await run('null', 'paced', n, cfg.kbps, Math.min(cfg.secs, 10));
  results.runs.push(results.genCheck);
  printRun(results.genCheck);
}
const summary = Object.fromEntries(kinds.map((k) => [k, { held: null, steps: [], failed: false }]));
// The servers take turns at each step (livemux N, tus N, next N): on a shared machine they
// then see the same background load, which keeps the ratios fair when the absolute numbers
// move. A server's steps stop at its first failed one.
for (const n of cfg.nList) {
  const turn = kinds.filter((k) => !summary[k].failed);
  if (!turn.length) break;
  log(`== paced step N=${n}: ${cfg.kbps} kbit/s per uploader, ${cfg.secs} s`);
  for (const kind of turn) {
    const s = summary[kind];
    const r = await run(kind, 'paced', n, cfg.kbps, cfg.secs);
    results.runs.push(r);
    s.steps.push(r);
    printRun(r);
    if (r.pass) s.held = r;
    else s.failed = true;
  }
}
log(`== ${cfg.idleN} idle recordings (created, one PATCH, then ${cfg.idleHold} s idle)`);
for (const kind of kinds) {
  summary[kind].idle = await run(kind, 'idle', cfg.idleN, cfg.kbps, 1);
  results.runs.push(summary[kind].idle);
  printRun(summary[kind].idle);
}
const fsyncBps = () => Math.max(...results.fsync);
const satKbps = cfg.satKbps || Math.ceil((2 * fsyncBps() * 8) / cfg.satN / 1000);
log(`== saturation: ${cfg.satN} uploaders x ${satKbps} kbit/s (${f0((cfg.satN * satKbps) / 8 / 1000)} MB/s offered) for ${cfg.satSecs} s`);
for (const kind of kinds) {
  summary[kind].sat = await run(kind, 'sat', cfg.satN, satKbps, cfg.satSecs);
  results.runs.push(summary[kind].sat);
  printRun(summary[kind].sat);
}
log(`== disk again: fsync'd write bandwidth`);
results.fsync.push(fsyncBandwidth());

// --- summary ---------------------------------------------------------------------------
const fsb = fsyncBps();
log('');
log(`summary (D=${cfg.secs} s, BITRATE=${cfg.kbps} kbit/s, p99 goal ${cfg.p99Goal} ms; disk fsync'd bandwidth ${f1(fsb / MiB)} MiB/s, best of the runs before and after)`);
log(`${pad('', 34)} ${kinds.map((k) => pad(k, 12)).join(' ')}${kinds.length === 2 ? pad('livemux/tus', 13) : ''}`);
const lines = [
  ['largest N held (p99, no errors)', (s) => s.held?.n ?? 0, f0],
  ['  p99 PATCH latency there, ms', (s) => s.held?.p99, f1],
  ['  server CPU there, % of a core', (s) => s.held?.serverCores * 100, f0],
  ['  CPU per recording, ms/s', (s) => s.held?.cpuPerRecMs, f2],
  ['  RSS per recording, KiB', (s) => s.held?.rssPerRecKiB, f0],
  ['  peak RSS there, MiB', (s) => s.held?.hwmKiB / 1024, f1],
  ['idle RSS per open recording, KiB', (s) => s.idle?.rssPerRecKiB, f0],
  ['saturation ingest, MiB/s', (s) => s.sat?.ingestBps / MiB, f1],
  ['  share of fsync bandwidth', (s) => (s.sat?.ingestBps / fsb) * 100, (x) => `${f1(x)}%`],
  ['  server CPU, % of a core', (s) => s.sat?.serverCores * 100, f0],
  ['  saturation p99 PATCH, ms', (s) => s.sat?.p99, f0],
];
const ratio = {};
for (const [name, get, fmt] of lines) {
  const v = kinds.map((k) => get(summary[k]));
  let tail = '';
  if (kinds.length === 2) {
    const q = v[0] / v[1];
    ratio[name.trim()] = q;
    tail = pad(Number.isFinite(q) ? q.toFixed(2) : '-', 13);
  }
  log(`${name.padEnd(34)} ${v.map((x) => pad(fmt(x), 12)).join(' ')}${tail}`);
}
// RSS at the largest N both held, compared at the same N.
let same = null;
if (kinds.length === 2) {
  const both = summary.livemux.steps.filter((r) => r.pass && summary.tus.steps.some((q) => q.n === r.n && q.pass)).map((r) => r.n);
  if (both.length) {
    const n = Math.max(...both);
    const a = summary.livemux.steps.find((r) => r.n === n);
    const b = summary.tus.steps.find((r) => r.n === n);
    same = { n, peak: a.hwmKiB / b.hwmKiB, cpu: a.serverCores / b.serverCores };
    log(`at N=${n} (largest both held): peak RSS livemux/tus ${f2(same.peak)}, server CPU livemux/tus ${f2(same.cpu)}`);
  }
}
if (results.genCheck) {
  const g = results.genCheck;
  log(`load generator alone (null server, N=${g.n}): p99 ${f1(g.p99)} ms, its CPU ${f0(g.loadgenCores * 100)}% of a core, event-loop lag p99 ${f1(g.loopP99Ms)} ms`);
}
const L = summary.livemux;
const goals = [];
if (L) {
  goals.push([`>= 500 recordings held at p99 <= ${cfg.p99Goal} ms`, (L.held?.n ?? 0) >= 500]);
  goals.push(['durable ingest >= 80% of fsync bandwidth', L.sat.ingestBps / fsb >= 0.8]);
  goals.push(['<= 1 MiB RSS per idle recording', L.idle.rssPerRecKiB <= 1024]);
  if (summary.tus) {
    goals.push(['>= 2x tus throughput (saturation ingest)', L.sat.ingestBps / summary.tus.sat.ingestBps >= 2]);
    goals.push(['<= 0.5x tus RSS (peak, same N)', same != null && same.peak <= 0.5]);
  }
}
log('goals (issue 15):');
for (const [g, ok] of goals) log(`  ${ok ? 'PASS' : 'FAIL'}  ${g}`);
const gen = results.runs.filter((r) => r.loadgenBound);
if (gen.length) log(`note: the load generator was near its limit in ${gen.length} run(s) (marked above); those latencies are partly its own`);
results.summary = { ratio, same, goals, fsyncBps: fsb };
if (cfg.outJson) writeFileSync(cfg.outJson, JSON.stringify(results, null, 1));
const verdict = goals.every(([, ok]) => ok) ? 'PASS' : 'FAIL';
log(verdict);
process.exitCode = verdict === 'PASS' ? 0 : 1;
