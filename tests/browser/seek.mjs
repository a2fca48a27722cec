// Opens each URL in a <video> of headless Chromium and seeks: how long until the metadata
// is there, then until a seek to 5/6 of the duration is done and a frame is shown. For
// bench/sidx.sh. Prints one JSON line per URL:
//   {"name":N,"ok":true,"duration":D,"openMs":O,"seekMs":S,"seekedAt":T}
//   {"name":N,"ok":false,"error":E}
// Usage: node seek.mjs --videos '{"name":"http://...",...}'
import { launch, args, report, forward } from './chromium.mjs';

const a = args();
const videos = JSON.parse(a.videos);
const browser = await launch();
for (const [name, src] of Object.entries(videos)) {
  const page = await browser.newPage();
  forward(page, name);
  try {
    const r = await page.evaluate(async (src) => {
      const v = document.createElement('video');
      v.muted = true;
      v.preload = 'metadata';
      document.body.appendChild(v);
      const when = (event) =>
        new Promise((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`timeout waiting for ${event}`)), 120000);
          v.addEventListener('error', () => reject(new Error(`media error ${v.error?.code} ${v.error?.message}`)), { once: true });
          v.addEventListener(event, () => { clearTimeout(timer); resolve(); }, { once: true });
        });
      let t0 = performance.now();
      const meta = when('loadedmetadata');
      v.src = src;
      await meta;
      const openMs = performance.now() - t0;
      t0 = performance.now();
      const seeked = when('seeked');
      v.currentTime = (v.duration * 5) / 6;
      await seeked;
      return { duration: v.duration, openMs, seekMs: performance.now() - t0, seekedAt: v.currentTime };
    }, src);
    report({ name, ok: true, ...r });
  } catch (e) {
    report({ name, ok: false, error: String(e) });
  }
  await page.close();
}
await browser.close();
