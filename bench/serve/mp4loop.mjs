// A recording of any length from a short fragmented MP4 (a Chromium MediaRecorder file):
// the init segment (ftyp + moov) once, then the file's fragments (moof + mdat) over and
// over, each repetition with its tfdt times moved on by the track's duration so far and
// its mfhd sequence numbers moved on by the fragment count so far. The bytes are a valid,
// continuous fragmented MP4 that a remuxer accepts as one long recording (no time going
// backwards, no repeated sequence numbers), so the server does its real per-byte work.
//
// Uploaders read it as a byte stream (`read(offset, length)`), cut at any byte like
// MediaRecorder blobs are; the bench's bitrate knob sets how many bytes one second of
// upload carries, so media time runs at BITRATE / the file's own bitrate.

import { readFileSync } from 'node:fs';

function* boxes(buf, start, end) {
  let off = start;
  while (off + 8 <= end) {
    let size = buf.readUInt32BE(off);
    const type = buf.toString('latin1', off + 4, off + 8);
    let header = 8;
    if (size === 1) {
      size = Number(buf.readBigUInt64BE(off + 8));
      header = 16;
    } else if (size === 0) {
      size = end - off;
    }
    if (size < header || off + size > end) throw new Error(`bad box ${type} at ${off}`);
    yield { type, off, size, header };
    off += size;
  }
}

/** Sum of sample durations of one trun box (tfhd default duration when the trun has none). */
function trunDuration(buf, trun, defaultDuration) {
  const p = trun.off + trun.header;
  const flags = buf.readUInt32BE(p) & 0xffffff;
  const count = buf.readUInt32BE(p + 4);
  let q = p + 8;
  if (flags & 0x1) q += 4; // data offset
  if (flags & 0x4) q += 4; // first sample flags
  const per = ((flags & 0x100) ? 4 : 0) + ((flags & 0x200) ? 4 : 0) + ((flags & 0x400) ? 4 : 0) + ((flags & 0x800) ? 4 : 0);
  if (!(flags & 0x100)) {
    if (defaultDuration == null) throw new Error('trun without durations and no default');
    return count * defaultDuration;
  }
  let sum = 0;
  for (let i = 0; i < count; i++, q += per) sum += buf.readUInt32BE(q);
  return sum;
}

export class LoopedMp4 {
  constructor(path) {
    const buf = readFileSync(path);
    let bodyStart = null;
    for (const b of boxes(buf, 0, buf.length)) {
      if (b.type === 'moof') {
        bodyStart = b.off;
        break;
      }
    }
    if (bodyStart == null) throw new Error(`${path}: no moof (not a fragmented MP4)`);
    this.init = buf.subarray(0, bodyStart);
    this.body = Buffer.from(buf.subarray(bodyStart));
    // Where to patch, and by how much per loop.
    this.tfdts = []; // {pos, version, track}
    this.mfhds = []; // positions of sequence numbers
    const durations = new Map(); // track -> ticks per loop
    for (const b of boxes(this.body, 0, this.body.length)) {
      if (b.type !== 'moof') continue;
      for (const c of boxes(this.body, b.off + b.header, b.off + b.size)) {
        if (c.type === 'mfhd') this.mfhds.push(c.off + c.header + 4);
        if (c.type !== 'traf') continue;
        let track = null;
        let defaultDuration = null;
        for (const d of boxes(this.body, c.off + c.header, c.off + c.size)) {
          const p = d.off + d.header;
          if (d.type === 'tfhd') {
            const flags = this.body.readUInt32BE(p) & 0xffffff;
            track = this.body.readUInt32BE(p + 4);
            let q = p + 8;
            if (flags & 0x1) q += 8;
            if (flags & 0x2) q += 4;
            if (flags & 0x8) defaultDuration = this.body.readUInt32BE(q);
          } else if (d.type === 'tfdt') {
            this.tfdts.push({ pos: p, version: this.body[p], track });
          } else if (d.type === 'trun') {
            durations.set(track, (durations.get(track) ?? 0) + trunDuration(this.body, d, defaultDuration));
          }
        }
      }
    }
    this.durations = durations;
    this.cache = new Map();
  }

  /** The body of repetition `k` (k = 0: the file's own fragments). */
  loop(k) {
    let b = this.cache.get(k);
    if (b) return b;
    b = Buffer.from(this.body);
    const seqShift = k * this.mfhds.length;
    for (const pos of this.mfhds) b.writeUInt32BE((b.readUInt32BE(pos + 0) + seqShift) >>> 0, pos);
    for (const t of this.tfdts) {
      const shift = BigInt(k) * BigInt(this.durations.get(t.track) ?? 0);
      if (t.version === 1) b.writeBigUInt64BE(b.readBigUInt64BE(t.pos + 4) + shift, t.pos + 4);
      else b.writeUInt32BE(Number((BigInt(b.readUInt32BE(t.pos + 4)) + shift) & 0xffffffffn), t.pos + 4);
    }
    if (this.cache.size >= 8) this.cache.delete(this.cache.keys().next().value);
    this.cache.set(k, b);
    return b;
  }

  /**
   * `length` bytes of the endless stream from `offset`, as views of the cached buffers
   * (no copy: what the load generator writes to its sockets).
   */
  *slices(offset, length) {
    let done = 0;
    while (done < length) {
      const at = offset + done;
      let piece;
      if (at < this.init.length) {
        piece = this.init.subarray(at, Math.min(this.init.length, at + length - done));
      } else {
        const rel = at - this.init.length;
        const k = Math.floor(rel / this.body.length);
        const inLoop = rel - k * this.body.length;
        piece = this.loop(k).subarray(inLoop, Math.min(this.body.length, inLoop + length - done));
      }
      done += piece.length;
      yield piece;
    }
  }

  /** `length` bytes of the endless stream from `offset` (a fresh Buffer). */
  read(offset, length) {
    const out = Buffer.allocUnsafe(length);
    let done = 0;
    while (done < length) {
      const at = offset + done;
      if (at < this.init.length) {
        done += this.init.copy(out, done, at, Math.min(this.init.length, at + length - done));
        continue;
      }
      const rel = at - this.init.length;
      const k = Math.floor(rel / this.body.length);
      const inLoop = rel - k * this.body.length;
      const src = this.loop(k);
      done += src.copy(out, done, inLoop, Math.min(src.length, inLoop + length - done));
    }
    return out;
  }
}
