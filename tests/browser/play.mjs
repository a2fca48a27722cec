// Plays recordings in headless Chromium: a <video> on each URL plays to the end (at 4x), then
// seeks to the middle and plays on. Prints one JSON line per URL:
//   {"name":N,"ok":true,"duration":D,"endedAt":T,"middle":M,"seekedAt":S,"after":A,"width":W,"frames":F}
//   {"name":N,"ok":false,"error":E}
// Usage: node play.mjs --base http://127.0.0.1:PORT --videos '{"mp4":"http://.../files/ID/output",...}'
import { launch, args, report, forward } from './chromium.mjs';

const a = args();
const videos = JSON.parse(a.videos);
const browser = await launch();
let failed = false;
for (const [name, src] of Object.entries(videos)) {
  const page = await browser.newPage();
  forward(page, name);
  await page.goto(`${a.base}/healthz`);
  try {
    const r = await page.evaluate(async (src) => {
      const v = document.createElement('video');
      v.muted = true;
      v.preload = 'auto';
      document.body.appendChild(v);
      const when = (event, ms) =>
        new Promise((resolve, reject) => {
          const fail = (why) => {
            clearTimeout(timer);
            v.removeEventListener('error', onError);
            reject(new Error(`${why} (waiting for ${event} at ${v.currentTime} of ${v.duration})`));
          };
          const timer = setTimeout(() => fail('timeout'), ms);
          const onError = () => fail(`media error ${v.error?.code} ${v.error?.message}`);
          v.addEventListener('error', onError, { once: true });
          v.addEventListener(event, () => {
            clearTimeout(timer);
            v.removeEventListener('error', onError);
            resolve();
          }, { once: true });
        });
      const meta = when('loadedmetadata', 30000);
      v.src = src;
      await meta;
      const duration = v.duration;
      if (!Number.isFinite(duration)) throw new Error(`duration ${duration}`);
      v.playbackRate = 4;
      const ended = when('ended', 60000 + duration * 1000);
      await v.play();
      await ended;
      const endedAt = v.currentTime;
      const frames = v.getVideoPlaybackQuality().totalVideoFrames;
      const middle = duration / 2;
      const seeked = when('seeked', 30000);
      v.currentTime = middle;
      await seeked;
      const seekedAt = v.currentTime;
      v.playbackRate = 1;
      await v.play();
      await new Promise((r) => setTimeout(r, 1000));
      v.pause();
      return { duration, endedAt, middle, seekedAt, after: v.currentTime, width: v.videoWidth, frames };
    }, src);
    report({ name, ok: true, ...r });
  } catch (e) {
    failed = true;
    report({ name, ok: false, error: String(e) });
  }
  await page.close();
}
await browser.close();
process.exit(failed ? 1 : 0);
