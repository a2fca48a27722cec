// Records through the demo page of `livemux serve --demo` in headless Chromium with a fake
// camera: one page per format, all at once. Prints JSON lines on stdout:
//   {"event":"started","name":N,"url":UPLOAD_URL}   recording and the upload exists
//   {"event":"stopping","name":N}                   Stop clicked
//   {"event":"done","name":N,"url":..,"file":F,"blobs":K,"bytes":B}   the page's stop() resolved;
//                                                    F holds the page's own copy of its blobs
//   {"event":"failed","name":N,"error":E}
// Usage: node record.mjs --base http://127.0.0.1:PORT --out DIR --seconds 20
//                        --formats '{"mp4":"video/mp4;codecs=avc1,opus","webm":"video/webm;codecs=vp9,opus"}'
//                        [--token JWT]
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { launch, args, report, forward } from './chromium.mjs';

const a = args();
const seconds = Number(a.seconds ?? 20);
const formats = JSON.parse(a.formats);
const browser = await launch();
let failed = false;

async function one(name, mimeType) {
  const context = await browser.newContext();
  const page = await context.newPage();
  forward(page, name);
  const query = new URLSearchParams({ keepCopy: '1', mimeType });
  if (a.token) query.set('token', a.token);
  await page.goto(`${a.base}/?${query}`);
  await page.waitForFunction(() => window.livemuxDemo !== undefined);
  const selected = await page.$eval('#format', (s) => s.value);
  if (selected !== mimeType) throw new Error(`this Chromium cannot record ${mimeType} (page chose ${selected})`);
  await page.click('#start');
  await page.waitForFunction(() => window.livemuxDemo.state === 'failed' || (window.livemuxDemo.controller && window.livemuxDemo.controller.url), null, { timeout: 60000 });
  const { url, error } = await page.evaluate(() => ({ url: window.livemuxDemo.controller?.url, error: window.livemuxDemo.error }));
  if (!url) throw new Error(`no upload: ${error}`);
  report({ event: 'started', name, url });
  const started = await page.evaluate(() => window.livemuxDemo.started);
  // Wait until the page has recorded `seconds` by its own clock.
  await page.waitForFunction((until) => performance.now() >= until || window.livemuxDemo.state === 'failed', started + seconds * 1000, { timeout: (seconds + 60) * 1000, polling: 100 });
  report({ event: 'stopping', name });
  await page.click('#stop');
  await page.waitForFunction(() => ['finished', 'failed'].includes(window.livemuxDemo.state), null, { timeout: 180000, polling: 100 });
  const state = await page.evaluate(() => ({ state: window.livemuxDemo.state, error: window.livemuxDemo.error, result: window.livemuxDemo.result }));
  if (state.state !== 'finished') throw new Error(`upload failed: ${state.error}`);
  // The page's own copy of what MediaRecorder produced, in order.
  const blobs = await page.evaluate(async () => {
    const out = [];
    for (const blob of window.livemuxDemo.controller.blobs) {
      const bytes = new Uint8Array(await blob.arrayBuffer());
      let s = '';
      for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
      out.push(btoa(s));
    }
    return out;
  });
  const buffers = blobs.map((b) => Buffer.from(b, 'base64'));
  const whole = Buffer.concat(buffers);
  const ext = mimeType.includes('mp4') ? 'mp4' : 'webm';
  const file = join(a.out, `${name}.blobs.${ext}`);
  writeFileSync(file, whole);
  if (whole.length !== state.result.bytes) throw new Error(`the page kept ${whole.length} bytes but uploaded ${state.result.bytes}`);
  report({ event: 'done', name, url: state.result.url, file, blobs: buffers.length, bytes: whole.length, sizes: buffers.map((b) => b.length) });
  await context.close();
}

await Promise.all(
  Object.entries(formats).map(([name, mime]) =>
    one(name, mime).catch((e) => {
      failed = true;
      report({ event: 'failed', name, error: String(e && e.stack ? e.stack : e) });
    }),
  ),
);
await browser.close();
process.exit(failed ? 1 : 0);
