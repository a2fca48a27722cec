//! Top-level structure of an MP4 stream, read incrementally.
//!
//! [`Mp4Walker`] takes input chunks of any size and yields [`ContainerEvent`]s: metadata
//! boxes (`ftyp`, `moov`, `moof`...) whole, `mdat` payload as zero-copy slices of the
//! input, and other boxes as skipped regions. It never holds more than one metadata box
//! plus the header bytes it is waiting for, so memory does not grow with the input.
//!
//! Damaged input (a missing upload chunk, overwritten bytes) is resynchronised: a box
//! header that cannot be one, met after the first box, starts a forward scan for the next
//! plausible top-level box (a `moof` followed by its `mfhd`, a `moov`, an `mdat`...); the
//! bytes in between are dropped, reported as a [`DAMAGED`] region and a note, and reading
//! goes on. In a fragmented stream a `moof` met inside an `mdat` body also ends that
//! `mdat` early: the bytes missing before it made the `mdat` look longer than it is.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use super::boxes::{parse_header, BoxHeader, FourCc, HeaderParse, Mp4Error, DAMAGED, MAX_META_BOX, MAX_MOOF};
use crate::formats::{ContainerEvent, Cut, ElementKind, EndState, MetaUnit, Region};
use crate::model::Chunk;

/// Largest header the walker waits for: 64-bit size plus a `uuid` user type.
const MAX_HEADER: usize = 32;

/// Notes about damage kept word for word; past this they are counted.
const MAX_DAMAGE_NOTES: usize = 8;

/// Bytes a candidate box start needs to be judged: size, type, and a child header.
const CANDIDATE_LEN: usize = 16;

#[derive(Debug)]
enum State {
    /// At a box boundary.
    Header,
    /// Reading a metadata box whole.
    Meta { header: BoxHeader, start: u64, buf: BytesMut },
    /// Passing over a box body; `media` bodies are emitted, others dropped.
    Body { header: BoxHeader, start: u64, media: bool, remaining: Option<u64> },
    /// Looking for the next plausible box after damage that began at `from`.
    Resync { from: u64, reason: String },
}

/// Incremental reader of top-level MP4 boxes.
#[derive(Debug)]
pub struct Mp4Walker {
    queue: VecDeque<Bytes>,
    queued: usize,
    /// Absolute offset of the first queued byte.
    pos: u64,
    state: State,
    /// A `moov`, `moof` or `mdat` was read: from then on, damage is skipped rather than
    /// an error (before, there is nothing to save and the input is likely not MP4).
    content: bool,
    /// A `moof` was seen: the stream is fragmented, and its `mdat`s hold no boxes.
    fragmented: bool,
    /// A damaged stretch was met: unknown box types are no longer trusted.
    strict: bool,
    notes: Vec<String>,
    /// Damaged stretches past [`MAX_DAMAGE_NOTES`], and their bytes.
    more_damage: (u64, u64),
}

impl Default for Mp4Walker {
    fn default() -> Self {
        Self::new()
    }
}

fn is_meta(fourcc: FourCc) -> bool {
    matches!(&fourcc.0, b"ftyp" | b"styp" | b"moov" | b"moof" | b"sidx" | b"emsg" | b"prft")
}

/// Box types found at the top level of MP4/MOV files.
fn is_known_top_level(fourcc: &[u8; 4]) -> bool {
    is_meta(FourCc(*fourcc))
        || matches!(
            fourcc,
            b"mdat" | b"free" | b"skip" | b"wide" | b"uuid" | b"mfra" | b"meta" | b"udta" | b"pdin" | b"ssix" | b"pnot"
        )
}

/// Whether four bytes can name a box at all: letters, digits and spaces (a damaged
/// stretch rarely looks like that).
fn is_box_name(fourcc: &[u8; 4]) -> bool {
    fourcc.iter().all(|&b| b.is_ascii_alphanumeric() || b == b' ')
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Judges the bytes at a possible box start during a resync scan: `Some(true)` for a
/// plausible top-level box, `None` when `b` is too short to tell (fewer than
/// [`CANDIDATE_LEN`] bytes and more may come).
fn plausible_box(b: &[u8], more_may_come: bool) -> Option<bool> {
    if b.len() < 8 {
        return if more_may_come { None } else { Some(false) };
    }
    let fourcc: [u8; 4] = [b[4], b[5], b[6], b[7]];
    if !is_known_top_level(&fourcc) {
        return Some(false);
    }
    if b.len() < CANDIDATE_LEN && more_may_come {
        return None;
    }
    let size = be32(b) as u64;
    let child = b.get(12..16).map(|c| [c[0], c[1], c[2], c[3]]);
    let child_size = b.get(8..12).map(be32);
    Some(match &fourcc {
        b"moof" => (24..=MAX_MOOF).contains(&size) && child == Some(*b"mfhd") && child_size == Some(16),
        b"moov" => {
            (16..=MAX_META_BOX).contains(&size)
                && child.is_some_and(|c| matches!(&c, b"mvhd" | b"trak" | b"mvex" | b"udta" | b"meta" | b"iods"))
                && child_size.is_some_and(|s| s >= 8 && u64::from(s) <= size - 8)
        }
        // Size 0 runs to the end, 1 has a 64-bit size after the type.
        b"mdat" => match size {
            0 => true,
            1 => b.get(8..16).is_some_and(|l| u64::from_be_bytes(l.try_into().expect("8 bytes")) >= 16),
            s => s >= 8,
        },
        b"ftyp" | b"styp" => (16..=4096).contains(&size) && child.is_some_and(|c| is_box_name(&c)),
        b"free" | b"skip" | b"wide" => (8..=MAX_META_BOX).contains(&size),
        _ => (12..=MAX_META_BOX).contains(&size),
    })
}

impl Mp4Walker {
    pub fn new() -> Self {
        Mp4Walker {
            queue: VecDeque::new(),
            queued: 0,
            pos: 0,
            state: State::Header,
            content: false,
            fragmented: false,
            strict: false,
            notes: Vec::new(),
            more_damage: (0, 0),
        }
    }

    /// Notes about damaged input met so far (skipped stretches), to show the user.
    pub fn take_notes(&mut self) -> Vec<String> {
        let mut notes = std::mem::take(&mut self.notes);
        if let State::Resync { from, reason } = &self.state {
            notes.push(format!(
                "damaged input: bytes {from}..{} ({} bytes, {reason}) hold no box up to the end of the input; skipped",
                self.input_end(),
                self.input_end() - from
            ));
        }
        let (n, bytes) = std::mem::take(&mut self.more_damage);
        if n > 0 {
            notes.push(format!("damaged input: {n} more damaged stretches ({bytes} bytes) skipped"));
        }
        notes
    }

    fn note_damage(&mut self, bytes: u64, note: String) {
        if self.notes.len() < MAX_DAMAGE_NOTES {
            self.notes.push(note);
        } else {
            self.more_damage.0 += 1;
            self.more_damage.1 += bytes;
        }
    }

    /// The byte at `i` past the first queued one, if queued.
    fn byte_at(&self, mut i: usize) -> Option<u8> {
        for b in &self.queue {
            if i < b.len() {
                return Some(b[i]);
            }
            i -= b.len();
        }
        None
    }

    /// Up to [`CANDIDATE_LEN`] bytes from `i` past the first queued one.
    fn bytes_at(&self, i: usize) -> ([u8; CANDIDATE_LEN], usize) {
        let mut out = [0u8; CANDIDATE_LEN];
        let mut n = 0;
        while n < CANDIDATE_LEN {
            match self.byte_at(i + n) {
                Some(b) => out[n] = b,
                None => break,
            }
            n += 1;
        }
        (out, n)
    }

    /// Drops `n` queued bytes.
    fn drop_front(&mut self, mut n: usize) {
        while n > 0 {
            n -= self.take_front(n).len();
        }
    }

    /// Whether a header read at a box boundary is damage rather than a box.
    fn damaged_header(&self, header: &BoxHeader, start: u64) -> Option<String> {
        let fourcc = header.fourcc;
        if !is_box_name(&fourcc.0) {
            return Some(format!("'{fourcc}' is not a box type"));
        }
        if self.strict && !is_known_top_level(&fourcc.0) {
            return Some(format!("'{fourcc}' is not a top-level box type"));
        }
        if is_meta(fourcc) && header.size.is_none() {
            return Some(format!("'{fourcc}' box of size 0"));
        }
        match &fourcc.0 {
            b"moof" if header.size.is_some_and(|s| s < 24) => Some("'moof' box too small".into()),
            _ if header.size.is_some_and(|s| start.checked_add(s).is_none()) => {
                Some(format!("'{fourcc}' box size {} runs past 2^64", header.size.unwrap_or(0)))
            }
            _ => None,
        }
    }

    /// Offset one past the last byte pushed.
    pub fn input_end(&self) -> u64 {
        self.pos + self.queued as u64
    }

    /// Queues input. A chunk may start somewhere other than where the previous one ended
    /// only at a box boundary (a source that sends a trailing `moov` first does that).
    pub fn push(&mut self, chunk: Chunk) -> Result<(), Mp4Error> {
        if chunk.offset != self.input_end() {
            let at_boundary = matches!(self.state, State::Header) && self.queued == 0;
            if !at_boundary {
                return Err(Mp4Error::invalid(
                    "input",
                    self.input_end(),
                    format!("input jumps to offset {} in the middle of a box", chunk.offset),
                ));
            }
            self.pos = chunk.offset;
        }
        if !chunk.data.is_empty() {
            self.queued += chunk.data.len();
            self.queue.push_back(chunk.data);
        }
        Ok(())
    }

    /// Takes up to `n` bytes off the front of the queue as one slice (no copy).
    fn take_front(&mut self, n: usize) -> Bytes {
        let front = self.queue.front_mut().expect("caller checked queued > 0");
        let out = if front.len() <= n { self.queue.pop_front().unwrap() } else { front.split_to(n) };
        self.queued -= out.len();
        self.pos += out.len() as u64;
        out
    }

    /// Copies the first `n` queued bytes (or fewer) without consuming them.
    fn peek(&self, n: usize) -> ([u8; MAX_HEADER], usize) {
        let mut out = [0u8; MAX_HEADER];
        let mut len = 0;
        for b in &self.queue {
            let take = (n - len).min(b.len());
            out[len..len + take].copy_from_slice(&b[..take]);
            len += take;
            if len == n {
                break;
            }
        }
        (out, len)
    }

    /// The next event, `Ok(None)` when more input is needed.
    pub fn poll(&mut self) -> Result<Option<ContainerEvent>, Mp4Error> {
        loop {
            match &mut self.state {
                State::Header => {
                    if self.queued == 0 {
                        return Ok(None);
                    }
                    let (head, len) = self.peek(MAX_HEADER);
                    // Damage is skipped once the input has shown media or an index worth
                    // keeping; before that, it is an error.
                    let resync = self.content;
                    let damage = match parse_header(&head[..len], self.pos) {
                        Ok(HeaderParse::NeedMore) => return Ok(None),
                        Ok(HeaderParse::Header(h)) if resync => self.damaged_header(&h, self.pos).ok_or(h),
                        Ok(HeaderParse::Header(h)) => Err(h),
                        Err(e) if resync => Ok(e.to_string()),
                        Err(e) => return Err(e),
                    };
                    let header = match damage {
                        Err(header) => header,
                        Ok(reason) => {
                            self.strict = true;
                            self.state = State::Resync { from: self.pos, reason };
                            // The bytes here are not a box: look from the next one on.
                            self.drop_front(1);
                            continue;
                        }
                    };
                    if matches!(&header.fourcc.0, b"moov" | b"moof" | b"mdat") {
                        self.content = true;
                    }
                    if header.fourcc.0 == *b"moof" {
                        self.fragmented = true;
                    }
                    let start = self.pos;
                    let kind = ElementKind::Mp4(header.fourcc);
                    let region = Region { kind, offset: start, header_len: header.header_len, size: header.size };
                    if is_meta(header.fourcc) {
                        let limit = if header.fourcc.0 == *b"moof" { MAX_MOOF } else { MAX_META_BOX };
                        let Some(size) = header.size else {
                            return Err(Mp4Error::invalid(
                                format!("'{}' box", header.fourcc),
                                start,
                                "size 0 (to end of file) is only valid for media data",
                            ));
                        };
                        if size > limit {
                            return Err(Mp4Error::TooLarge {
                                what: format!("'{}' box", header.fourcc),
                                offset: start,
                                size,
                                limit,
                            });
                        }
                        self.state = State::Meta { header, start, buf: BytesMut::new() };
                        continue;
                    }
                    if header.size.is_some_and(|s| start.checked_add(s).is_none()) {
                        return Err(Mp4Error::invalid(
                            format!("'{}' box", header.fourcc),
                            start,
                            format!("size {} runs past 2^64", header.size.unwrap_or(0)),
                        ));
                    }
                    let media = header.fourcc.0 == *b"mdat";
                    let hl = header.header_len as usize;
                    self.drop_front(hl);
                    let remaining = header.size.map(|s| s - hl as u64);
                    self.state = State::Body { header, start, media, remaining };
                    return Ok(Some(if media {
                        ContainerEvent::MediaStart(region)
                    } else {
                        ContainerEvent::Skipped(region)
                    }));
                }
                State::Meta { header, start, buf } => {
                    let size = header.size.expect("meta boxes have a size") as usize;
                    // Whole box in the first queued slice: hand out a slice, no copy.
                    if buf.is_empty() && self.queue.front().is_some_and(|b| b.len() >= size) {
                        let (header, start) = (*header, *start);
                        let data = self.take_front(size);
                        self.state = State::Header;
                        return Ok(Some(meta_event(header, start, data)));
                    }
                    while buf.len() < size && self.queued > 0 {
                        let need = size - buf.len();
                        let front = self.queue.front_mut().unwrap();
                        let take = need.min(front.len());
                        buf.extend_from_slice(&front[..take]);
                        if take == front.len() {
                            self.queue.pop_front();
                        } else {
                            let _ = front.split_to(take);
                        }
                        self.queued -= take;
                        self.pos += take as u64;
                    }
                    if buf.len() < size {
                        return Ok(None);
                    }
                    let (header, start) = (*header, *start);
                    let data = std::mem::take(buf).freeze();
                    self.state = State::Header;
                    return Ok(Some(meta_event(header, start, data)));
                }
                State::Body { media, remaining, .. } => {
                    if *remaining == Some(0) {
                        self.state = State::Header;
                        continue;
                    }
                    if self.queued == 0 {
                        return Ok(None);
                    }
                    let mut want = remaining.map_or(usize::MAX, |r| r.min(usize::MAX as u64) as usize);
                    let media = *media;
                    // An 'mdat' of size 0 runs to the end by definition: nothing inside it
                    // can be a box, and its last bytes must never wait for one.
                    if media && self.fragmented && remaining.is_some() {
                        match self.moof_inside(want) {
                            Inside::None => {}
                            Inside::At(0) => {
                                let State::Body { start, header, .. } = &self.state else { unreachable!() };
                                let (start, size) = (*start, header.size);
                                let declared = size.map_or("to the end of the input".into(), |s| format!("{s} bytes"));
                                self.note_damage(
                                    0,
                                    format!(
                                        "damaged input: the 'mdat' at byte {start} declares {declared}, but a 'moof' \
                                         starts inside it at byte {}: bytes are missing before it; the 'mdat' ends there",
                                        self.pos
                                    ),
                                );
                                self.strict = true;
                                self.state = State::Header;
                                return Ok(Some(damaged(self.pos, 0)));
                            }
                            Inside::At(n) | Inside::Hold(n) if n > 0 => want = n,
                            Inside::At(_) | Inside::Hold(_) => return Ok(None),
                        }
                    }
                    let State::Body { remaining, .. } = &mut self.state else { unreachable!() };
                    let front_len = self.queue.front().map_or(0, |b| b.len());
                    if let Some(r) = remaining {
                        *r -= (front_len.min(want) as u64).min(*r);
                    }
                    let offset = self.pos;
                    let data = self.take_front(want);
                    if media {
                        return Ok(Some(ContainerEvent::Media(Chunk { offset, data })));
                    }
                }
                State::Resync { from, .. } => {
                    let from = *from;
                    match self.find_box() {
                        Some(n) => {
                            self.drop_front(n);
                            let State::Resync { reason, .. } = std::mem::replace(&mut self.state, State::Header) else {
                                unreachable!()
                            };
                            let len = self.pos - from;
                            let (h, _) = self.peek(8);
                            let found = FourCc([h[4], h[5], h[6], h[7]]);
                            self.note_damage(
                                len,
                                format!(
                                    "damaged input: bytes {from}..{} ({len} bytes) are not boxes ({reason}); \
                                     skipped to the '{found}' box at byte {}",
                                    self.pos, self.pos
                                ),
                            );
                            return Ok(Some(damaged(from, len)));
                        }
                        None => {
                            // Keep only what a candidate at the end may still need.
                            let keep = (CANDIDATE_LEN - 1).min(self.queued);
                            self.drop_front(self.queued - keep);
                            return Ok(None);
                        }
                    }
                }
            }
        }
    }

    /// Where the next plausible box starts in the queued bytes, if it can be told yet.
    fn find_box(&self) -> Option<usize> {
        let mut base = 0;
        for chunk in &self.queue {
            // Starts whose candidate lies wholly in this slice.
            let whole = chunk.len().saturating_sub(CANDIDATE_LEN - 1);
            for i in 0..whole {
                // Every top-level box type begins with a lowercase letter.
                if chunk[i + 4].is_ascii_lowercase() && plausible_box(&chunk[i..i + CANDIDATE_LEN], true) == Some(true)
                {
                    return Some(base + i);
                }
            }
            for i in whole..chunk.len() {
                let (b, n) = self.bytes_at(base + i);
                match plausible_box(&b[..n], true) {
                    Some(true) => return Some(base + i),
                    None => return None,
                    Some(false) => {}
                }
            }
            base += chunk.len();
        }
        None
    }

    /// Looks for a `moof` header lying wholly within the first `limit` queued bytes of an
    /// `mdat` body of a fragmented stream. (Only wholly: the bytes a candidate needs are
    /// then the `mdat`'s own, so waiting for them never holds back the end of a file.)
    fn moof_inside(&self, limit: usize) -> Inside {
        let Some(front) = self.queue.front() else { return Inside::None };
        let end = front.len().min(limit.saturating_sub(CANDIDATE_LEN - 1));
        let fast_end = front.len().saturating_sub(CANDIDATE_LEN).min(end);
        // Whole candidates inside the first slice: look for the type.
        let mut i = 0;
        while i < fast_end {
            match front[i + 4..fast_end + 7].windows(4).position(|w| w == b"moof") {
                None => break,
                Some(k) => {
                    let at = i + k;
                    if plausible_box(&front[at..at + CANDIDATE_LEN], false) == Some(true) {
                        return Inside::At(at);
                    }
                    i = at + 1;
                }
            }
        }
        // Candidates that reach past the first slice.
        for at in fast_end..end {
            let (b, n) = self.bytes_at(at);
            if n > 4 && b[4..n.min(8)] != b"moof"[..n.min(8) - 4] {
                continue;
            }
            match plausible_box(&b[..n], true) {
                Some(true) => return Inside::At(at),
                Some(false) => {}
                None => return Inside::Hold(at),
            }
        }
        Inside::None
    }

    /// Ends the input: reports whether it stopped inside a box.
    pub fn finish(&self) -> EndState {
        let input_len = self.input_end();
        let cut = match &self.state {
            State::Header if self.queued == 0 => None,
            State::Header => Some(Cut { kind: None, offset: self.pos, declared_end: None }),
            State::Meta { header, start, .. } => Some(Cut {
                kind: Some(ElementKind::Mp4(header.fourcc)),
                offset: *start,
                declared_end: header.size.and_then(|s| start.checked_add(s)),
            }),
            State::Body { remaining: None, .. } | State::Body { remaining: Some(0), .. } => None,
            State::Resync { from, .. } => Some(Cut { kind: None, offset: *from, declared_end: None }),
            State::Body { header, start, .. } => Some(Cut {
                kind: Some(ElementKind::Mp4(header.fourcc)),
                offset: *start,
                declared_end: header.size.and_then(|s| start.checked_add(s)),
            }),
        };
        EndState { input_len, cut }
    }
}

/// What [`Mp4Walker::moof_inside`] found.
enum Inside {
    None,
    /// A `moof` starts this many bytes in.
    At(usize),
    /// Media up to here is safe; what follows needs more bytes to be judged.
    Hold(usize),
}

/// The event for a stretch of damaged input that was skipped (`len` may be 0 when bytes
/// were found missing rather than extra).
fn damaged(offset: u64, len: u64) -> ContainerEvent {
    ContainerEvent::Skipped(Region { kind: ElementKind::Mp4(DAMAGED), offset, header_len: 0, size: Some(len) })
}

fn meta_event(header: BoxHeader, start: u64, data: Bytes) -> ContainerEvent {
    ContainerEvent::Meta(MetaUnit {
        kind: ElementKind::Mp4(header.fourcc),
        offset: start,
        header_len: header.header_len,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bx(fourcc: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut v = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(fourcc);
        v.extend_from_slice(body);
        v
    }

    /// Events with adjacent media merged, so chunkings can be compared.
    fn run(input: &[u8], chunk: usize) -> (Vec<ContainerEvent>, EndState) {
        let mut w = Mp4Walker::new();
        let mut out: Vec<ContainerEvent> = Vec::new();
        let mut off = 0;
        while off < input.len() {
            let end = (off + chunk).min(input.len());
            w.push(Chunk::new(off as u64, input[off..end].to_vec())).unwrap();
            off = end;
            while let Some(ev) = w.poll().unwrap() {
                if let (ContainerEvent::Media(c), Some(ContainerEvent::Media(prev))) = (&ev, out.last_mut()) {
                    if prev.end() == c.offset {
                        let mut d = prev.data.to_vec();
                        d.extend_from_slice(&c.data);
                        prev.data = d.into();
                        continue;
                    }
                }
                out.push(ev);
            }
        }
        (out, w.finish())
    }

    fn sample_file() -> Vec<u8> {
        let mut f = bx(b"ftyp", b"isomiso2");
        f.extend(bx(b"moov", &[7u8; 40]));
        f.extend(bx(b"mdat", &(0..=255u8).collect::<Vec<_>>()));
        f.extend(bx(b"free", &[0; 5]));
        f
    }

    #[test]
    fn chunking_never_changes_the_events() {
        let f = sample_file();
        let (whole, end) = run(&f, f.len());
        assert_eq!(end.cut, None);
        assert_eq!(whole.len(), 5, "{whole:?}");
        for size in 1..40 {
            assert_eq!(run(&f, size).0, whole, "chunk size {size}");
        }
    }

    #[test]
    fn cut_inside_a_box_is_reported_not_an_error() {
        let f = sample_file();
        for cut in 1..f.len() {
            let (_, end) = run(&f[..cut], 7);
            assert_eq!(end.input_len, cut as u64);
        }
        let (_, end) = run(&f[..100], 100);
        let c = end.cut.unwrap();
        assert_eq!(c.offset, 64);
        assert_eq!(c.declared_end, Some(64 + 264));
    }

    #[test]
    fn oversized_meta_box_is_refused_before_allocating() {
        let mut f = (u32::MAX).to_be_bytes().to_vec();
        f.extend_from_slice(b"moof");
        let mut w = Mp4Walker::new();
        w.push(Chunk::new(0, f)).unwrap();
        assert!(matches!(w.poll(), Err(Mp4Error::TooLarge { .. })));
    }

    /// Events of a whole input, with its notes; errors end the run.
    fn run_all(input: &[u8], chunk: usize) -> (Vec<ContainerEvent>, Result<(), Mp4Error>, Vec<String>) {
        let mut w = Mp4Walker::new();
        let mut out = Vec::new();
        let mut off = 0;
        while off < input.len() {
            let end = (off + chunk).min(input.len());
            w.push(Chunk::new(off as u64, input[off..end].to_vec())).unwrap();
            off = end;
            loop {
                match w.poll() {
                    Ok(Some(ev)) => out.push(ev),
                    Ok(None) => break,
                    Err(e) => return (out, Err(e), w.take_notes()),
                }
            }
        }
        (out, Ok(()), w.take_notes())
    }

    fn moof(seq: u32) -> Vec<u8> {
        let mut mfhd = vec![0, 0, 0, 0];
        mfhd.extend_from_slice(&seq.to_be_bytes());
        bx(b"moof", &bx(b"mfhd", &mfhd))
    }

    fn media_of(events: &[ContainerEvent]) -> Vec<u8> {
        events
            .iter()
            .filter_map(|e| if let ContainerEvent::Media(c) = e { Some(c.data.to_vec()) } else { None })
            .collect::<Vec<_>>()
            .concat()
    }

    fn damage(events: &[ContainerEvent]) -> Vec<(u64, u64)> {
        events
            .iter()
            .filter_map(|e| match e {
                ContainerEvent::Skipped(r) if r.kind == ElementKind::Mp4(DAMAGED) => Some((r.offset, r.size.unwrap())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn garbage_between_boxes_is_skipped_to_the_next_moof_and_named() {
        let mut f = bx(b"ftyp", b"isomiso2");
        f.extend(moof(1));
        f.extend(bx(b"mdat", &[1u8; 50]));
        let garbage_at = f.len();
        f.extend((0..300u32).map(|i| (i * 7 + 0x80) as u8));
        let resume = f.len();
        f.extend(moof(2));
        f.extend(bx(b"mdat", &[2u8; 20]));
        for chunk in [1, 5, 16, 17, 64, f.len()] {
            let (events, result, notes) = run_all(&f, chunk);
            result.unwrap();
            assert_eq!(damage(&events), [(garbage_at as u64, (resume - garbage_at) as u64)], "chunk {chunk}");
            let metas = events.iter().filter(|e| matches!(e, ContainerEvent::Meta(m) if m.offset == resume as u64));
            assert_eq!(metas.count(), 1, "chunk {chunk}: the second moof is read");
            assert_eq!(media_of(&events), [vec![1u8; 50], vec![2u8; 20]].concat(), "chunk {chunk}");
            assert_eq!(notes.len(), 1);
            assert!(notes[0].contains(&format!("bytes {garbage_at}..{resume}")), "{notes:?}");
        }
    }

    #[test]
    fn a_moof_inside_an_mdat_of_a_fragmented_stream_ends_that_mdat() {
        let mut f = bx(b"ftyp", b"isomiso2");
        f.extend(moof(1));
        // An mdat that declares 1000 bytes, of which 300 are missing: the next moof
        // starts inside it.
        let mut mdat = bx(b"mdat", &[1u8; 1000]);
        mdat.truncate(8 + 700);
        f.extend(mdat);
        let moof2_at = f.len();
        f.extend(moof(2));
        f.extend(bx(b"mdat", &[2u8; 400]));
        for chunk in [1, 3, 15, 16, 100, f.len()] {
            let (events, result, notes) = run_all(&f, chunk);
            result.unwrap();
            assert_eq!(damage(&events), [(moof2_at as u64, 0)], "chunk {chunk}");
            assert_eq!(media_of(&events), [vec![1u8; 700], vec![2u8; 400]].concat(), "chunk {chunk}");
            assert!(notes[0].contains(&format!("starts inside it at byte {moof2_at}")), "{notes:?}");
        }
        // A stream that has shown no moof keeps its mdat whole: a moof-like pattern in
        // the media of a progressive file is media.
        let mut p = bx(b"ftyp", b"isomiso2");
        p.extend(bx(b"mdat", &moof(9)));
        let (events, result, _) = run_all(&p, 7);
        result.unwrap();
        assert!(damage(&events).is_empty());
        assert_eq!(media_of(&events), moof(9));
    }

    #[test]
    fn damage_with_no_box_after_it_is_bounded_and_reported() {
        let mut f = bx(b"ftyp", b"isomiso2");
        f.extend(moof(1));
        f.extend(vec![0u8; 100_000]);
        let (events, result, notes) = run_all(&f, 4096);
        result.unwrap();
        assert!(damage(&events).is_empty());
        assert!(notes[0].contains("hold no box up to the end"), "{notes:?}");
        let mut w = Mp4Walker::new();
        w.push(Chunk::new(0, f.clone())).unwrap();
        while w.poll().unwrap().is_some() {}
        assert!(w.finish().cut.is_some());
        assert!(w.queued < CANDIDATE_LEN, "scanned bytes are not held");
    }

    #[test]
    fn damage_before_any_media_or_index_is_an_error() {
        let f = [0, 0, 0, 4, b'm', b'o', b'o', b'v'];
        assert!(run_all(&f, 8).1.is_err());
        let mut g = bx(b"ftyp", b"isomiso2");
        g.extend_from_slice(&f);
        assert_eq!(run_all(&g, 8).1.unwrap_err().offset(), 16);
    }

    #[test]
    fn declared_end_past_2_64_is_invalid_not_a_panic() {
        // A first box whose 64-bit size runs past 2^64 from a late start offset.
        let mut f = vec![0, 0, 0, 1, b'f', b'r', b'e', b'e'];
        f.extend_from_slice(&u64::MAX.to_be_bytes());
        let mut w = Mp4Walker::new();
        w.push(Chunk::new(100, f.clone())).unwrap();
        let err = w.poll().unwrap_err();
        assert_eq!(err.offset(), 100, "{err}");
        assert_eq!(w.finish().cut, Some(Cut { kind: None, offset: 100, declared_end: None }));
        // After a first box, the same header is damage and is skipped.
        let mut g = bx(b"ftyp", b"isomiso2");
        g.extend(moof(1));
        g.extend(&f);
        g.extend(moof(2));
        let (events, result, _) = run_all(&g, 9);
        result.unwrap();
        assert_eq!(damage(&events).len(), 1);
        // The cut of a box that runs past the end of the input never overflows.
        let mut w = Mp4Walker::new();
        let mut h = vec![0, 0, 0, 1, b'm', b'd', b'a', b't'];
        h.extend_from_slice(&(u64::MAX - 10).to_be_bytes());
        w.push(Chunk::new(0, h)).unwrap();
        let _ = w.poll();
        let _ = w.finish();
    }

    #[test]
    fn many_damaged_stretches_are_counted_after_the_first_few() {
        let mut f = bx(b"ftyp", b"isomiso2");
        f.extend(moof(99));
        for i in 0..20 {
            f.extend([0xEEu8; 40]);
            f.extend(moof(i));
        }
        let (events, result, notes) = run_all(&f, 1000);
        result.unwrap();
        assert_eq!(damage(&events).len(), 20);
        assert_eq!(notes.len(), MAX_DAMAGE_NOTES + 1, "{notes:?}");
        assert!(notes.last().unwrap().contains("12 more damaged stretches (480 bytes)"), "{notes:?}");
    }

    #[test]
    fn jump_only_at_box_boundary() {
        let f = sample_file();
        let mut w = Mp4Walker::new();
        w.push(Chunk::new(16, f[16..64].to_vec())).unwrap();
        assert!(matches!(w.poll().unwrap(), Some(ContainerEvent::Meta(m)) if m.offset == 16));
        w.push(Chunk::new(0, f[0..10].to_vec())).unwrap();
        assert!(w.push(Chunk::new(40, f[40..50].to_vec())).is_err());
    }
}
