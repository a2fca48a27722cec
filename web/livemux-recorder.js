// livemux-recorder.js: records a camera/microphone (or any MediaStream) with MediaRecorder and
// streams it, while it is being made, to a tus 1.0 server such as `livemux serve`.
//
// Why: a recording uploaded only when it ends is lost when the tab, the network or the server
// goes away. Here every MediaRecorder blob (one per `timeslice`) is sent as it arrives, through
// tus-js-client with a deferred length (`Upload-Defer-Length: 1`): after a network drop or a
// server restart the client asks the server how much it holds (HEAD) and goes on from there,
// for as long as the retry delays allow; the last PATCH declares the length, and the server
// finalizes the file.
//
// Needs tus-js-client (the browser bundle, global `tus`): pass it as `tus`, load
// vendor/tus.min.js yourself, or let this module load it from next to itself.
//
//   import { record } from '/web/livemux-recorder.js';
//   const rec = await record({ endpoint: '/files/', token, mimeType: 'video/mp4;codecs=avc1,opus' });
//   ...
//   const { url } = await rec.stop();   // url + '/output' is the finished file
//
// MIT licence, like livemux.

/** Retry delays (ms) after a failed request: quick at first, then every 5 s for about 20 min.
 * tus-js-client starts again from the first delay whenever an attempt made progress. */
export const DEFAULT_RETRY_DELAYS = [0, 250, 500, 1000, 2000, 3000, ...Array(240).fill(5000)];

/** Container/codec choices, best first, for `pickMimeType`. */
export const PREFERRED_MIME_TYPES = [
  'video/mp4;codecs=avc1,opus',
  'video/webm;codecs=vp9,opus',
  'video/webm;codecs=vp8,opus',
  'video/mp4',
  'video/webm',
];

/** The first of `candidates` this browser's MediaRecorder can record, or null. */
export function pickMimeType(candidates = PREFERRED_MIME_TYPES) {
  if (typeof MediaRecorder === 'undefined') return null;
  return candidates.find((t) => MediaRecorder.isTypeSupported(t)) ?? null;
}

let tusLoading = null;

/** tus-js-client: the given one, the global `tus`, or vendor/tus.min.js loaded from beside this module. */
async function loadTus(given) {
  if (given) return given;
  if (globalThis.tus) return globalThis.tus;
  if (!tusLoading) {
    tusLoading = new Promise((resolve, reject) => {
      const script = document.createElement('script');
      script.src = new URL('./vendor/tus.min.js', import.meta.url).href;
      script.onload = () => (globalThis.tus ? resolve(globalThis.tus) : reject(new Error('tus.min.js did not define `tus`')));
      script.onerror = () => reject(new Error(`cannot load ${script.src}`));
      document.head.appendChild(script);
    });
  }
  return tusLoading;
}

/**
 * The bytes MediaRecorder produced, as a tus-js-client source that can be read while it grows.
 * tus-js-client asks for slice(start, end) with `start` the offset the server acknowledged; we
 * answer as soon as anything past `start` exists (so each blob goes out at once, not when a
 * chunk size is filled) and keep every byte from the oldest offset that may be asked again.
 */
class LiveSource {
  constructor() {
    this.parts = []; // Blobs from offset `base` on.
    this.base = 0; // Offset of parts[0].
    this.total = 0; // Bytes recorded so far.
    this.ended = false;
    this.waiters = [];
    this.size = null; // Unknown: the upload length is deferred.
  }

  push(blob) {
    if (blob.size === 0) return;
    this.parts.push(blob);
    this.total += blob.size;
    this.wake();
  }

  end() {
    this.ended = true;
    this.wake();
  }

  wake() {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  async slice(start, end) {
    if (start < this.base) {
      // The server holds fewer bytes than it acknowledged before: nothing to resume from.
      throw new Error(`livemux-recorder: the server asks for offset ${start}, but bytes before ${this.base} were acknowledged and released`);
    }
    while (start >= this.total && !this.ended) {
      await new Promise((resolve) => this.waiters.push(resolve));
    }
    // Release what lies before `start`: the server has it durably.
    while (this.parts.length > 0 && this.base + this.parts[0].size <= start) {
      this.base += this.parts[0].size;
      this.parts.shift();
    }
    const stop = Math.min(end, this.total);
    if (start >= stop) return { value: null, done: true };
    const value = new Blob(this.parts).slice(start - this.base, stop - this.base);
    return { value, done: this.ended && stop === this.total };
  }

  close() {}
}

/**
 * Starts recording and uploading.
 *
 * Options:
 *  - endpoint: the tus creation URL (default `/files/` of this page's origin).
 *  - token: a bearer token (`livemux token --scope upload`), or a function returning one (or a
 *    promise of one), called before every request so that a backend can hand out fresh tokens.
 *  - stream: a MediaStream to record; default getUserMedia(constraints), whose tracks are stopped
 *    at the end.
 *  - constraints: for getUserMedia (default { video: true, audio: true }).
 *  - mimeType: what MediaRecorder records (default: pickMimeType()).
 *  - timeslice: ms between blobs (default 1000). For MP4 in Chromium this also sets
 *    videoKeyFrameIntervalDuration, without which blobs only come at key frames.
 *  - recorderOptions: more MediaRecorder options (bitrates...).
 *  - metadata: tus Upload-Metadata (strings); `filetype` defaults to the mime type and
 *    `filename` to recording.mp4/.webm (the server only uses it for Content-Disposition).
 *  - headers: more request headers.
 *  - retryDelays: see DEFAULT_RETRY_DELAYS.
 *  - chunkSize: the most bytes in one PATCH (default 8 MiB).
 *  - onProgress({ recorded, uploaded, url }): after each blob and each acknowledged PATCH.
 *  - onError(error): the upload gave up (also rejects stop()).
 *  - keepCopy: keep every blob in `controller.blobs` (for checks; costs memory).
 *  - tus: the tus-js-client object (default: global `tus`, or vendor/tus.min.js loaded).
 *
 * Resolves, once MediaRecorder runs, to a controller:
 *  - url: the upload URL once the server created it (null before); `ready` resolves to it.
 *  - stop(): stops recording; resolves to { url, bytes } when the server has every byte
 *    (the last PATCH gives the length, so the server finalizes the recording).
 *  - abort(terminate = false): stops without finishing; `terminate` also DELETEs the upload.
 *  - recorder, stream, mimeType, blobs (with keepCopy), recorded, uploaded.
 */
export async function record(options = {}) {
  const {
    endpoint = new URL('/files/', location.href).href,
    token,
    constraints = { video: true, audio: true },
    timeslice = 1000,
    recorderOptions = {},
    metadata = {},
    headers = {},
    retryDelays = DEFAULT_RETRY_DELAYS,
    chunkSize = 8 * 1024 * 1024,
    onProgress,
    onError,
    keepCopy = false,
  } = options;
  const tus = await loadTus(options.tus);
  const ownStream = !options.stream;
  const stream = options.stream ?? (await navigator.mediaDevices.getUserMedia(constraints));
  const mimeType = options.mimeType ?? pickMimeType();
  if (mimeType && !MediaRecorder.isTypeSupported(mimeType)) {
    if (ownStream) stream.getTracks().forEach((t) => t.stop());
    throw new Error(`livemux-recorder: this browser cannot record ${mimeType}`);
  }
  const isMp4 = (mimeType ?? '').startsWith('video/mp4') || (mimeType ?? '').startsWith('audio/mp4');
  const recorder = new MediaRecorder(stream, {
    ...(mimeType ? { mimeType } : {}),
    // Chromium's MP4 muxer closes a fragment only at a key frame: ask for one per timeslice.
    ...(isMp4 ? { videoKeyFrameIntervalDuration: timeslice } : {}),
    ...recorderOptions,
  });

  const source = new LiveSource();
  const blobs = keepCopy ? [] : null;
  const type = recorder.mimeType || mimeType || '';
  const ext = type.includes('mp4') ? 'mp4' : type.includes('webm') ? 'webm' : 'bin';
  const meta = { filetype: type, filename: `recording.${ext}`, ...metadata };

  let resolveReady;
  const ready = new Promise((resolve) => (resolveReady = resolve));
  let finish;
  const finished = new Promise((resolve, reject) => (finish = { resolve, reject }));
  finished.catch(() => {}); // Reported through stop() and onError.
  const controller = {
    url: null,
    ready,
    recorder,
    stream,
    mimeType: type,
    blobs,
    recorded: 0,
    uploaded: 0,
    stop: null,
    abort: null,
  };
  const progress = () => {
    if (onProgress) {
      try {
        onProgress({ recorded: controller.recorded, uploaded: controller.uploaded, url: controller.url });
      } catch (e) {
        console.error(e);
      }
    }
  };

  const upload = new tus.Upload(source, {
    endpoint,
    uploadLengthDeferred: true,
    chunkSize,
    retryDelays,
    metadata: meta,
    headers,
    storeFingerprintForResuming: false,
    removeFingerprintOnSuccess: false,
    fileReader: { openFile: async () => source },
    async onBeforeRequest(req) {
      if (token) {
        const value = typeof token === 'function' ? await token() : token;
        req.setHeader('Authorization', `Bearer ${value}`);
      }
    },
    onUploadUrlAvailable() {
      if (!controller.url) {
        controller.url = upload.url;
        // From now on a failed HEAD must be retried, never answered by creating a second
        // upload (tus-js-client does that when it has an endpoint): the bytes before the
        // acknowledged offset are gone from memory.
        upload.options.endpoint = null;
        resolveReady(upload.url);
        progress();
      }
    },
    onShouldRetry(err) {
      const status = err.originalResponse ? err.originalResponse.getStatus() : 0;
      // Network errors, 5xx (507 and 503 included: the server says when to come back),
      // 409 (resume from the server's offset), 408/423/429. Not other 4xx: auth, 404, 410, 413.
      return status === 0 || status >= 500 || [408, 409, 423, 429].includes(status);
    },
    onChunkComplete(_size, acknowledged) {
      controller.uploaded = acknowledged;
      progress();
    },
    onSuccess() {
      controller.uploaded = source.total;
      progress();
      finish.resolve({ url: controller.url, bytes: source.total });
    },
    onError(err) {
      finish.reject(err);
      if (recorder.state !== 'inactive') recorder.stop();
      if (onError) onError(err);
    },
  });

  const recorderStopped = new Promise((resolve) => recorder.addEventListener('stop', resolve, { once: true }));
  recorder.addEventListener('dataavailable', (e) => {
    if (!e.data || e.data.size === 0) return;
    if (blobs) blobs.push(e.data);
    controller.recorded += e.data.size;
    source.push(e.data);
    progress();
  });
  recorderStopped.then(() => {
    // The last blob came before 'stop': the length is known now.
    source.end();
    if (ownStream) stream.getTracks().forEach((t) => t.stop());
  });
  recorder.addEventListener('error', (e) => {
    finish.reject(e.error ?? new Error('MediaRecorder error'));
    if (onError) onError(e.error ?? e);
  });

  controller.stop = async () => {
    if (recorder.state !== 'inactive') recorder.stop();
    await recorderStopped;
    return finished;
  };
  controller.abort = async (terminate = false) => {
    if (recorder.state !== 'inactive') recorder.stop();
    await recorderStopped;
    await upload.abort(terminate && controller.url !== null);
    finish.reject(new Error('livemux-recorder: aborted'));
  };

  recorder.start(timeslice);
  upload.start();
  return controller;
}
