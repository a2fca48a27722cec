// Launches the system's Chromium (headless, fake camera and microphone) through playwright-core.
import { chromium } from 'playwright-core';

/** The flags the livemux tests run Chromium with. */
export const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--autoplay-policy=no-user-gesture-required',
];

export async function launch() {
  const executablePath = process.env.CHROMIUM ?? '/usr/bin/chromium';
  return chromium.launch({ executablePath, headless: true, args: FLAGS, timeout: 60000 });
}

/** Command-line `--name value` pairs. */
export function args() {
  const out = {};
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) {
    if (!argv[i].startsWith('--') || i + 1 >= argv.length) throw new Error(`bad arguments: ${argv.join(' ')}`);
    out[argv[i].slice(2)] = argv[i + 1];
  }
  return out;
}

/** One JSON line on stdout: what the Rust test reads. */
export function report(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

/** Page console output and errors go to stderr, for the test's failure message. */
export function forward(page, name) {
  page.on('console', (m) => process.stderr.write(`[${name} console.${m.type()}] ${m.text()}\n`));
  page.on('pageerror', (e) => process.stderr.write(`[${name} pageerror] ${e}\n`));
  page.on('requestfailed', (r) => process.stderr.write(`[${name} requestfailed] ${r.method()} ${r.url()} ${r.failure()?.errorText}\n`));
}
