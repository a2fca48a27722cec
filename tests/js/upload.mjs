#!/usr/bin/env node
// Uploads a file to a tus 1.0 endpoint with tus-js-client (Node), as an app or a
// backend would: used by tests/serve_tus.rs against `livemux serve`.
//
//   node upload.mjs --endpoint http://127.0.0.1:8080/files/ --file rec.mp4 [--mode whole]
//   node upload.mjs --endpoint URL --chunks tests/fixtures/browser/X.chunks --mode pieces
//   node upload.mjs --endpoint URL --file rec.webm --mode pieces --piece-bytes 65536
//
// Modes:
//   whole   the length is known at creation (Upload-Length); the file goes up in PATCHes of
//           --chunk-size bytes (default: all of it in one).
//   pieces  Upload-Defer-Length: 1, then one PATCH per piece, as a live recording uploads
//           (a MediaRecorder blob per timeslice); the last PATCH carries Upload-Length. The
//           pieces are the files of a `.chunks` directory (in name order, as
//           `common::browser_chunks` reads them) or --piece-bytes slices of --file.
//
// Options: --token T (Authorization: Bearer T), --piece-delay-ms N (wait before each piece
// after the first, to pace a live upload), --metadata key=value (repeatable),
// --retry-delays 0,200,500 (ms, tus-js-client's retryDelays), --with-create (the first
// bytes go in the POST: creation-with-upload; whole mode only).
//
// On success prints one JSON line on stdout: {"url": ..., "bytes": N, "pieces": N,
// "patches": N}; on failure a message on stderr and exit status 1.

import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import * as tus from 'tus-js-client'

function usage(message) {
  process.stderr.write(`upload.mjs: ${message}\n`)
  process.exit(2)
}

function parseArgs(argv) {
  const opts = {
    mode: 'whole',
    metadata: {},
    retryDelays: [0, 200, 500, 1000, 2000],
    pieceDelayMs: 0,
    chunkSize: Number.POSITIVE_INFINITY,
    pieceBytes: 65536,
    withCreate: false,
  }
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]
    const value = () => {
      if (i + 1 >= argv.length) usage(`${flag} needs a value`)
      return argv[++i]
    }
    const number = () => {
      const v = Number(value())
      if (!Number.isSafeInteger(v) || v < 0) usage(`${flag} needs a whole number`)
      return v
    }
    switch (flag) {
      case '--endpoint': opts.endpoint = value(); break
      case '--file': opts.file = value(); break
      case '--chunks': opts.chunks = value(); break
      case '--mode': opts.mode = value(); break
      case '--token': opts.token = value(); break
      case '--chunk-size': opts.chunkSize = number(); break
      case '--piece-bytes': opts.pieceBytes = number(); break
      case '--piece-delay-ms': opts.pieceDelayMs = number(); break
      case '--with-create': opts.withCreate = true; break
      case '--retry-delays':
        opts.retryDelays = value().split(',').filter((s) => s !== '').map(Number)
        break
      case '--metadata': {
        const kv = value()
        const eq = kv.indexOf('=')
        if (eq <= 0) usage('--metadata wants key=value')
        opts.metadata[kv.slice(0, eq)] = kv.slice(eq + 1)
        break
      }
      default: usage(`unknown argument ${flag}`)
    }
  }
  if (!opts.endpoint) usage('--endpoint is required')
  if (!opts.file === !opts.chunks) usage('give one of --file or --chunks')
  if (opts.mode !== 'whole' && opts.mode !== 'pieces') usage('--mode is whole or pieces')
  if (opts.mode === 'pieces' && opts.pieceBytes === 0) usage('--piece-bytes must be above 0')
  if (opts.chunkSize === 0) usage('--chunk-size must be above 0')
  return opts
}

/** The input as an ordered list of pieces (Buffers). */
function readPieces(opts) {
  if (opts.chunks) {
    const names = readdirSync(opts.chunks).sort()
    return names.map((n) => readFileSync(join(opts.chunks, n)))
  }
  const data = readFileSync(opts.file)
  if (opts.mode === 'whole') return [data]
  const pieces = []
  for (let at = 0; at < data.length; at += opts.pieceBytes) {
    pieces.push(data.subarray(at, Math.min(at + opts.pieceBytes, data.length)))
  }
  return pieces
}

/**
 * A tus-js-client source over pieces that become available one by one, like the blobs of a
 * MediaRecorder: `slice(start, end)` answers with the bytes from `start` to the end of the
 * piece that holds it (never more than end - start), so each PATCH carries at most one
 * piece; `done` is true on the slice that reaches the end of the last piece, which makes
 * tus-js-client send Upload-Length with it. Any start may be asked again after a failed
 * PATCH (tus-js-client resumes at the offset the server's HEAD reports).
 */
class PiecesSource {
  constructor(pieces, delayMs) {
    this._pieces = pieces
    this._starts = []
    let at = 0
    for (const p of pieces) {
      this._starts.push(at)
      at += p.length
    }
    this._total = at
    this._delayMs = delayMs
    this._released = 0 // pieces handed out so far (the live edge)
    this.size = null // unknown until the end, as for a live recording
  }

  async slice(start, end) {
    let i = this._starts.findLastIndex((s) => s <= start)
    if (i < 0) i = 0
    // A piece past the live edge becomes available only after the pacing delay.
    if (i >= this._released) {
      if (this._released > 0 && this._delayMs > 0) await sleep(this._delayMs)
      this._released = i + 1
    }
    const piece = this._pieces[i] ?? Buffer.alloc(0)
    const from = start - (this._starts[i] ?? 0)
    const upto = Math.min(piece.length, from + (end - start))
    const value = Buffer.from(piece.subarray(from, upto))
    value.size = value.length
    const last = i >= this._pieces.length - 1
    return { value, done: last && start + value.length >= this._total }
  }

  close() {}
}

async function main() {
  const opts = parseArgs(process.argv.slice(2))
  const pieces = readPieces(opts)
  const total = pieces.reduce((n, p) => n + p.length, 0)
  let patches = 0
  const headers = {}
  if (opts.token) headers.Authorization = `Bearer ${opts.token}`

  const common = {
    endpoint: opts.endpoint,
    headers,
    metadata: opts.metadata,
    retryDelays: opts.retryDelays,
    storeFingerprintForResuming: false,
    removeFingerprintOnSuccess: false,
    onAfterResponse(req) {
      if (req.getMethod() === 'PATCH') patches++
    },
  }

  let upload
  const finished = new Promise((resolve, reject) => {
    const callbacks = { onSuccess: resolve, onError: reject }
    if (opts.mode === 'whole') {
      const data = pieces.length === 1 ? pieces[0] : Buffer.concat(pieces)
      upload = new tus.Upload(data, {
        ...common,
        ...callbacks,
        chunkSize: opts.chunkSize,
        uploadSize: data.length,
        uploadDataDuringCreation: opts.withCreate,
      })
    } else {
      const source = new PiecesSource(pieces, opts.pieceDelayMs)
      upload = new tus.Upload(pieces, {
        ...common,
        ...callbacks,
        // Larger than any piece: the source ends each slice at its piece's end.
        chunkSize: Math.max(1, ...pieces.map((p) => p.length)),
        uploadLengthDeferred: true,
        fileReader: { openFile: () => Promise.resolve(source) },
      })
    }
  })
  upload.start()
  await finished
  process.stdout.write(`${JSON.stringify({ url: upload.url, bytes: total, pieces: pieces.length, patches })}\n`)
}

main().catch((err) => {
  process.stderr.write(`upload.mjs: ${err?.stack ?? err}\n`)
  process.exit(1)
})
