// Plays HLS directories with hls.js (pinned in package.json) in headless Chromium, for
// tests/hls.rs. A static server in this process serves the directories (no caching: the
// playlists change while they are read), hls.js and an empty page.
//
//   node hls.mjs --mode end --dirs '["/tmp/a", ...]'
//       plays each playlist from 0 (at 8x) to the end of its last segment; one JSON line each:
//       {"dir":D,"ok":true,"total":T,"reached":C,"ended":E,"live":L,"frames":F,"decodeErrors":N}
//   node hls.mjs --mode live --dirs '["/tmp/live"]'
//       waits for the playlist, plays while it grows (a sample every 250 ms), seeks back to 0
//       while it is still live, waits for EXT-X-ENDLIST, then plays the last 2 s to the end:
//       {"dir":D,"ok":true,"samples":[{"at":ms,"t":T,"seekable":S,"live":L}],"zero":{"live":L,
//        "from":T0,"after":T1},"total":T,"ended":E,"reached":C}
//   Failures: {"dir":D,"ok":false,"error":E}; exit status 1 when any failed.
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { launch, args, report, forward } from './chromium.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const a = args();
const dirs = JSON.parse(a.dirs);
const mode = a.mode ?? 'end';

const TYPES = { '.m3u8': 'application/vnd.apple.mpegurl', '.mp4': 'video/mp4', '.m4s': 'video/iso.segment', '.js': 'text/javascript' };
const server = http.createServer((req, res) => {
  const send = (status, body, type = 'text/plain') => {
    res.writeHead(status, { 'Content-Type': type, 'Cache-Control': 'no-store' });
    res.end(body);
  };
  const url = new URL(req.url, 'http://x');
  if (url.pathname === '/') return send(200, '<!doctype html><video muted playsinline></video>', 'text/html');
  if (url.pathname === '/favicon.ico') return send(204, '');
  if (url.pathname === '/hls.js') {
    return send(200, fs.readFileSync(path.join(here, 'node_modules/hls.js/dist/hls.js')), TYPES['.js']);
  }
  const m = /^\/d\/(\d+)\/([\w.-]+)$/.exec(url.pathname);
  if (!m || !dirs[Number(m[1])]) return send(404, 'not found');
  fs.readFile(path.join(dirs[Number(m[1])], m[2]), (err, data) => {
    if (err) return send(404, 'not found');
    send(200, data, TYPES[path.extname(m[2])] ?? 'application/octet-stream');
  });
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const base = `http://127.0.0.1:${server.address().port}`;

// Runs in the page: plays `src` with hls.js as `mode` says.
async function inPage({ src, mode }) {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const v = document.querySelector('video');
  let details = null;
  let fatal = null;
  let decodeErrors = 0;
  const hls = new Hls({ startPosition: 0, enableWorker: true });
  hls.on(Hls.Events.LEVEL_LOADED, (_, d) => { details = d.details; });
  hls.on(Hls.Events.ERROR, (_, d) => {
    if (d.fatal) fatal = `${d.type} ${d.details} ${d.reason ?? d.error ?? ''}`;
    else if (d.type === Hls.ErrorTypes.MEDIA_ERROR) {
      decodeErrors += 1;
      console.warn(`hls.js media error: ${d.details} ${d.reason ?? d.error ?? ''}`);
    }
  });
  const until = async (what, cond, ms) => {
    const end = performance.now() + ms;
    while (!cond()) {
      if (fatal) throw new Error(`hls.js: ${fatal} (waiting for ${what} at ${v.currentTime})`);
      if (v.error) throw new Error(`media error ${v.error.code} ${v.error.message}`);
      if (performance.now() > end) throw new Error(`timeout waiting for ${what} at ${v.currentTime}, total ${details?.totalduration}`);
      await sleep(50);
    }
  };
  // At the end: `ended`, or (the audio and video of a stream seldom end together, and a
  // playlist without EXT-X-ENDLIST never ends) within 0.5 s of the playlist's end with
  // the position still for a second.
  let still = { t: -1, since: 0 };
  const atEnd = (total) => () => {
    if (v.ended) return true;
    if (v.currentTime !== still.t) still = { t: v.currentTime, since: performance.now() };
    return v.currentTime >= total - 0.5 && performance.now() - still.since > 1000;
  };
  const seek = async (t) => {
    const seeked = new Promise((r) => v.addEventListener('seeked', r, { once: true }));
    v.currentTime = t;
    await Promise.race([seeked, until('seeked', () => false, 15000)]);
  };
  hls.loadSource(src);
  hls.attachMedia(v);
  await until('the playlist', () => details, 30000);
  if (mode === 'end') {
    const live = details.live;
    const total = details.totalduration;
    v.playbackRate = 8;
    await v.play();
    await until('the end', atEnd(total), 30000 + total * 1000);
    const reached = v.currentTime;
    const ended = v.ended;
    const frames = v.getVideoPlaybackQuality().totalVideoFrames;
    hls.destroy();
    return { total, reached, ended, live, frames, decodeErrors };
  }
  // live
  await v.play();
  const t0 = performance.now();
  const samples = [];
  let zero = null;
  while (details.live) {
    if (performance.now() - t0 > 90000) throw new Error('no EXT-X-ENDLIST after 90 s');
    await sleep(250);
    const seekable = v.seekable.length ? v.seekable.end(v.seekable.length - 1) : 0;
    samples.push({ at: Math.round(performance.now() - t0), t: v.currentTime, seekable, live: details.live });
    if (!zero && details.live && v.currentTime > 2.5) {
      const live = details.live;
      await seek(0);
      const from = v.currentTime;
      await sleep(1000);
      zero = { live, from, after: v.currentTime };
    }
  }
  const total = details.totalduration;
  await seek(Math.max(0, total - 2));
  await v.play();
  await until('the end', atEnd(total), 20000);
  const out = { samples, zero, total, ended: v.ended, reached: v.currentTime, decodeErrors };
  hls.destroy();
  return out;
}

const browser = await launch();
let failed = false;
for (const [i, dir] of dirs.entries()) {
  const page = await browser.newPage();
  forward(page, path.basename(dir));
  try {
    await page.goto(`${base}/`);
    await page.addScriptTag({ url: `${base}/hls.js` });
    if (mode === 'live') {
      const deadline = Date.now() + 60000;
      while (!fs.existsSync(path.join(dir, 'index.m3u8'))) {
        if (Date.now() > deadline) throw new Error('no index.m3u8 after 60 s');
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    const r = await page.evaluate(inPage, { src: `${base}/d/${i}/index.m3u8`, mode });
    report({ dir, ok: true, ...r });
  } catch (e) {
    failed = true;
    report({ dir, ok: false, error: String(e) });
  }
  await page.close();
}
await browser.close();
server.close();
process.exit(failed ? 1 : 0);
