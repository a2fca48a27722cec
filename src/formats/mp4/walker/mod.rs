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

mod resync;

use resync::{is_box_name, is_known_top_level, Inside};

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
            let step = match self.state {
                State::Header => self.step_header()?,
                State::Meta { .. } => self.step_meta(),
                State::Body { .. } => self.step_body(),
                State::Resync { .. } => self.step_resync(),
            };
            if let Step::Done(event) = step {
                return Ok(event);
            }
        }
    }

    /// At a box boundary: reads the next header and enters the state for its box.
    fn step_header(&mut self) -> Result<Step, Mp4Error> {
        match self.read_header()? {
            Some(header) => self.enter_box(header),
            None if matches!(self.state, State::Resync { .. }) => Ok(Step::Again),
            None => Ok(Step::Done(None)),
        }
    }

    /// The header at the front of the queue; `None` when more input is needed or when
    /// the bytes there are damage (then the state is [`State::Resync`]).
    fn read_header(&mut self) -> Result<Option<BoxHeader>, Mp4Error> {
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
        match damage {
            Err(header) => Ok(Some(header)),
            Ok(reason) => {
                self.strict = true;
                self.state = State::Resync { from: self.pos, reason };
                // The bytes here are not a box: look from the next one on.
                self.drop_front(1);
                Ok(None)
            }
        }
    }

    /// Starts the box `header` at the front of the queue: a metadata box is read whole,
    /// any other box's body is passed over (and announced).
    fn enter_box(&mut self, header: BoxHeader) -> Result<Step, Mp4Error> {
        if matches!(&header.fourcc.0, b"moov" | b"moof" | b"mdat") {
            self.content = true;
        }
        if header.fourcc.0 == *b"moof" {
            self.fragmented = true;
        }
        let start = self.pos;
        if is_meta(header.fourcc) {
            check_meta_size(&header, start)?;
            self.state = State::Meta { header, start, buf: BytesMut::new() };
            return Ok(Step::Again);
        }
        if header.size.is_some_and(|s| start.checked_add(s).is_none()) {
            return Err(Mp4Error::invalid(
                format!("'{}' box", header.fourcc),
                start,
                format!("size {} runs past 2^64", header.size.unwrap_or(0)),
            ));
        }
        let kind = ElementKind::Mp4(header.fourcc);
        let region = Region { kind, offset: start, header_len: header.header_len, size: header.size };
        let media = header.fourcc.0 == *b"mdat";
        let hl = header.header_len as usize;
        self.drop_front(hl);
        let remaining = header.size.map(|s| s - hl as u64);
        self.state = State::Body { header, start, media, remaining };
        Ok(Step::Done(Some(if media { ContainerEvent::MediaStart(region) } else { ContainerEvent::Skipped(region) })))
    }

    /// Reading a metadata box: hands it out once whole.
    fn step_meta(&mut self) -> Step {
        let State::Meta { header, start, buf } = &mut self.state else { unreachable!() };
        let size = header.size.expect("meta boxes have a size") as usize;
        // Whole box in the first queued slice: hand out a slice, no copy.
        if buf.is_empty() && self.queue.front().is_some_and(|b| b.len() >= size) {
            let (header, start) = (*header, *start);
            let data = self.take_front(size);
            self.state = State::Header;
            return Step::Done(Some(meta_event(header, start, data)));
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
            return Step::Done(None);
        }
        let (header, start) = (*header, *start);
        let data = std::mem::take(buf).freeze();
        self.state = State::Header;
        Step::Done(Some(meta_event(header, start, data)))
    }

    /// Passing over a box body: emits the queued part of an `mdat`'s, drops others'.
    fn step_body(&mut self) -> Step {
        let State::Body { media, remaining, .. } = &self.state else { unreachable!() };
        if *remaining == Some(0) {
            self.state = State::Header;
            return Step::Again;
        }
        if self.queued == 0 {
            return Step::Done(None);
        }
        let mut want = remaining.map_or(usize::MAX, |r| r.min(usize::MAX as u64) as usize);
        let media = *media;
        // An 'mdat' of size 0 runs to the end by definition: nothing inside it
        // can be a box, and its last bytes must never wait for one.
        if media && self.fragmented && remaining.is_some() {
            match self.moof_inside(want) {
                Inside::None => {}
                Inside::At(0) => return Step::Done(Some(self.end_mdat_at_moof())),
                Inside::At(n) | Inside::Hold(n) if n > 0 => want = n,
                Inside::At(_) | Inside::Hold(_) => return Step::Done(None),
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
            return Step::Done(Some(ContainerEvent::Media(Chunk { offset, data })));
        }
        Step::Again
    }

    /// A `moof` starts at the front of the queue, inside the current `mdat`'s declared
    /// body: bytes went missing before it, so the `mdat` ends here.
    fn end_mdat_at_moof(&mut self) -> ContainerEvent {
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
        damaged(self.pos, 0)
    }

    /// After damage: skips to the next plausible box, or drops what cannot start one.
    fn step_resync(&mut self) -> Step {
        let State::Resync { from, .. } = &self.state else { unreachable!() };
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
                Step::Done(Some(damaged(from, len)))
            }
            None => {
                // Keep only what a candidate at the end may still need.
                let keep = (CANDIDATE_LEN - 1).min(self.queued);
                self.drop_front(self.queued - keep);
                Step::Done(None)
            }
        }
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

/// What one step of [`Mp4Walker::poll`] did.
enum Step {
    /// The state changed without an event: step again.
    Again,
    /// `poll` returns this (`None`: more input is needed).
    Done(Option<ContainerEvent>),
}

/// A metadata box must have a size, within its limit.
fn check_meta_size(header: &BoxHeader, start: u64) -> Result<(), Mp4Error> {
    let limit = if header.fourcc.0 == *b"moof" { MAX_MOOF } else { MAX_META_BOX };
    let Some(size) = header.size else {
        return Err(Mp4Error::invalid(
            format!("'{}' box", header.fourcc),
            start,
            "size 0 (to end of file) is only valid for media data",
        ));
    };
    if size > limit {
        return Err(Mp4Error::TooLarge { what: format!("'{}' box", header.fourcc), offset: start, size, limit });
    }
    Ok(())
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
mod tests;
