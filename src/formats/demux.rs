//! The input side of the core: the [`Demuxer`] trait every container reader implements,
//! and [`Probe`], the front that holds the first bytes until [`sniff`] recognizes the
//! container and then drives the right reader.
//!
//! A demuxer is sans-IO: bytes go in with [`Demuxer::push`], the container's structure
//! comes out of [`Demuxer::poll`] as [`ContainerEvent`]s (`Container`, `Meta`, `Skipped`,
//! `MediaStart`, `Media`, `End`). `Ok(None)` from `poll` means "push more bytes"; an
//! `Err` is input that is invalid where its offset says.

use std::collections::VecDeque;

use super::failure::Failure;
use super::matroska::reader::{MkvItem, MkvReader};
use super::mp4::walker::Mp4Walker;
use super::{sniff, ContainerEvent, ContainerKind, EndState, SNIFF_LEN};
use crate::model::Chunk;

/// A container reader: bytes in, the container's structure out.
pub trait Demuxer: Send {
    /// Takes the next bytes of the input (`chunk.offset` is their place in it).
    fn push(&mut self, chunk: Chunk) -> Result<(), Failure>;
    /// The next event; `Ok(None)` when more input is needed.
    fn poll(&mut self) -> Result<Option<ContainerEvent>, Failure>;
    /// How the input ended (once no more bytes will come and `poll` has run dry).
    fn finish(&mut self) -> EndState;
    /// What the reader has to say about the input (damaged stretches it skipped); called
    /// once, at the end.
    fn take_notes(&mut self) -> Vec<String>;
}

impl Demuxer for Mp4Walker {
    fn push(&mut self, chunk: Chunk) -> Result<(), Failure> {
        Ok(Mp4Walker::push(self, chunk)?)
    }

    fn poll(&mut self) -> Result<Option<ContainerEvent>, Failure> {
        Ok(Mp4Walker::poll(self)?)
    }

    fn finish(&mut self) -> EndState {
        Mp4Walker::finish(self)
    }

    fn take_notes(&mut self) -> Vec<String> {
        Mp4Walker::take_notes(self)
    }
}

impl Demuxer for MkvReader {
    fn push(&mut self, chunk: Chunk) -> Result<(), Failure> {
        MkvReader::push(self, chunk.data);
        Ok(())
    }

    fn poll(&mut self) -> Result<Option<ContainerEvent>, Failure> {
        Ok(MkvReader::poll(self)?.map(MkvItem::into_event))
    }

    fn finish(&mut self) -> EndState {
        MkvReader::finish(self)
    }

    fn take_notes(&mut self) -> Vec<String> {
        self.notes()
    }
}

/// The first bytes, in hex, for a message about an input that is not media.
fn hex_head(data: &[u8]) -> String {
    data.iter().take(8).map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
}

/// The demuxer for `kind`, as the remux reads it (Matroska resynchronising after damage).
pub fn demuxer_for(kind: ContainerKind) -> Box<dyn Demuxer> {
    match kind {
        ContainerKind::Mp4 => Box::new(Mp4Walker::new()),
        ContainerKind::Matroska => Box::new(MkvReader::resynchronising()),
    }
}

/// The sniffing front: holds the input until its first [`SNIFF_LEN`] bytes say which
/// container it is, then emits `Container(kind)` and the reader's events, and `End` once
/// [`Probe::end_of_input`] was called and every event is out.
pub struct Probe {
    /// Chunks held while sniffing, or not yet pushed to the reader.
    head: Vec<Chunk>,
    head_len: usize,
    reader: Option<Box<dyn Demuxer>>,
    kind: Option<ContainerKind>,
    /// Events to give before polling the reader (`Container`).
    ready: VecDeque<ContainerEvent>,
    ended: bool,
    done: bool,
    notes: Vec<String>,
}

impl Default for Probe {
    fn default() -> Self {
        Probe::new()
    }
}

impl Probe {
    /// A front that has seen nothing yet.
    pub fn new() -> Self {
        Probe {
            head: Vec::new(),
            head_len: 0,
            reader: None,
            kind: None,
            ready: VecDeque::new(),
            ended: false,
            done: false,
            notes: Vec::new(),
        }
    }

    /// Takes the next bytes of the input. Fails when the first bytes are no known container.
    pub fn push(&mut self, chunk: Chunk) -> Result<(), Failure> {
        if let Some(r) = self.reader.as_mut() {
            return r.push(chunk);
        }
        self.head_len = self.head_len.saturating_add(chunk.data.len());
        self.head.push(chunk);
        if self.head_len >= SNIFF_LEN {
            self.decide()?;
        }
        Ok(())
    }

    /// No more bytes will come: what is held is decided on, and `End` follows the last event.
    pub fn end_of_input(&mut self) -> Result<(), Failure> {
        self.ended = true;
        if self.reader.is_none() {
            self.decide()?;
        }
        Ok(())
    }

    /// Recognizes the container from the held bytes and hands them to its reader.
    fn decide(&mut self) -> Result<(), Failure> {
        let first: Vec<u8> = self.head.iter().flat_map(|c| c.data.iter().copied()).take(64).collect();
        if first.is_empty() {
            return Err(Failure::Empty);
        }
        let Some(kind) = sniff(&first) else {
            return Err(Failure::NotMedia { head: hex_head(&first) });
        };
        let mut reader = demuxer_for(kind);
        for c in self.head.drain(..) {
            reader.push(c)?;
        }
        self.kind = Some(kind);
        self.ready.push_back(ContainerEvent::Container(kind));
        self.reader = Some(reader);
        Ok(())
    }

    /// The next event; `Ok(None)` when more input is needed (or, after `End`, ever).
    pub fn poll(&mut self) -> Result<Option<ContainerEvent>, Failure> {
        if let Some(ev) = self.ready.pop_front() {
            return Ok(Some(ev));
        }
        let Some(reader) = self.reader.as_mut() else { return Ok(None) };
        if self.done {
            return Ok(None);
        }
        if let Some(ev) = reader.poll()? {
            return Ok(Some(ev));
        }
        if !self.ended {
            return Ok(None);
        }
        self.done = true;
        self.notes = reader.take_notes();
        Ok(Some(ContainerEvent::End(reader.finish())))
    }

    /// What the reader had to say about the input, once `End` was polled.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }
}
