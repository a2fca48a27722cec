//! Top-level structure of an MP4 stream, read incrementally.
//!
//! [`Mp4Walker`] takes input chunks of any size and yields [`ContainerEvent`]s: metadata
//! boxes (`ftyp`, `moov`, `moof`...) whole, `mdat` payload as zero-copy slices of the
//! input, and other boxes as skipped regions. It never holds more than one metadata box
//! plus the header bytes it is waiting for, so memory does not grow with the input.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use super::boxes::{parse_header, BoxHeader, FourCc, HeaderParse, Mp4Error, MAX_META_BOX, MAX_MOOF};
use crate::formats::{ContainerEvent, Cut, ElementKind, EndState, MetaUnit, Region};
use crate::model::Chunk;

/// Largest header the walker waits for: 64-bit size plus a `uuid` user type.
const MAX_HEADER: usize = 32;

#[derive(Debug)]
enum State {
    /// At a box boundary.
    Header,
    /// Reading a metadata box whole.
    Meta { header: BoxHeader, start: u64, buf: BytesMut },
    /// Passing over a box body; `media` bodies are emitted, others dropped.
    Body { header: BoxHeader, start: u64, media: bool, remaining: Option<u64> },
}

/// Incremental reader of top-level MP4 boxes.
#[derive(Debug)]
pub struct Mp4Walker {
    queue: VecDeque<Bytes>,
    queued: usize,
    /// Absolute offset of the first queued byte.
    pos: u64,
    state: State,
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
        Mp4Walker { queue: VecDeque::new(), queued: 0, pos: 0, state: State::Header }
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
                    let header = match parse_header(&head[..len], self.pos)? {
                        HeaderParse::NeedMore => return Ok(None),
                        HeaderParse::Header(h) => h,
                    };
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
                    let media = header.fourcc.0 == *b"mdat";
                    let hl = header.header_len as usize;
                    // Consume the header bytes.
                    let mut left = hl;
                    while left > 0 {
                        left -= self.take_front(left).len();
                    }
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
                    let want = remaining.map_or(usize::MAX, |r| r.min(usize::MAX as u64) as usize);
                    let media = *media;
                    if let Some(r) = remaining {
                        let front_len = self.queue.front().map_or(0, |b| b.len()) as u64;
                        *r -= front_len.min(*r);
                    }
                    let offset = self.pos;
                    let data = self.take_front(want);
                    if media {
                        return Ok(Some(ContainerEvent::Media(Chunk { offset, data })));
                    }
                }
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
                declared_end: header.size.map(|s| start + s),
            }),
            State::Body { remaining: None, .. } | State::Body { remaining: Some(0), .. } => None,
            State::Body { header, start, .. } => Some(Cut {
                kind: Some(ElementKind::Mp4(header.fourcc)),
                offset: *start,
                declared_end: header.size.map(|s| start + s),
            }),
        };
        EndState { input_len, cut }
    }
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
