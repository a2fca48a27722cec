//! The splitter front: packets from the container's events, by the MP4 splitter (sample
//! tables, fragments, or a scan with a reference's layout) or the Matroska one (blocks).

use super::failure::Failure;
use super::matroska::demux::MkvSplitter;
use super::mp4::demux::{Mp4Splitter, DEFAULT_BUFFER_LIMIT};
use super::{ContainerEvent, ContainerKind, EndState, PacketEvent, SplitSummary};

/// Settings of the splitter (and of the `packet-split` stage).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitConfig {
    /// Most media bytes held while waiting for an index that comes after the media.
    pub buffer_limit: u64,
    /// The input may bring its index after the media (a stream): packets found by scanning
    /// media without an index are held, up to `buffer_limit`, in case it comes.
    pub late_index: bool,
}

impl Default for SplitConfig {
    fn default() -> Self {
        SplitConfig { buffer_limit: DEFAULT_BUFFER_LIMIT, late_index: true }
    }
}

/// Cuts the media into packets: takes the events of [`CodecParams`](super::params::CodecParams)
/// in order and gives [`PacketEvent`]s. MP4 until a `Container(Matroska)` event says otherwise.
pub enum Splitter {
    /// MP4 input.
    Mp4(Box<Mp4Splitter>),
    /// Matroska input.
    Matroska(Box<MkvSplitter>),
}

impl Splitter {
    /// A splitter with `config`.
    pub fn new(config: &SplitConfig) -> Self {
        Splitter::Mp4(Box::new(Mp4Splitter::new(config.buffer_limit).hold_for_late_index(config.late_index)))
    }

    /// Takes one event (not `End`: see [`Splitter::finish`]); appends what it cuts to `out`.
    pub fn handle(&mut self, ev: ContainerEvent, out: &mut Vec<PacketEvent>) -> Result<(), Failure> {
        if ev == ContainerEvent::Container(ContainerKind::Matroska) {
            *self = Splitter::Matroska(Box::default());
        }
        match self {
            Splitter::Mp4(s) => s.handle(ev, out)?,
            Splitter::Matroska(s) => s.handle(ev, out)?,
        }
        Ok(())
    }

    /// The input ended: appends the last packets to `out` and says what was cut.
    pub fn finish(&mut self, end: EndState, out: &mut Vec<PacketEvent>) -> Result<SplitSummary, Failure> {
        Ok(match self {
            Splitter::Mp4(s) => s.finish(end, out)?,
            Splitter::Matroska(s) => s.finish(end, out),
        })
    }

    /// Seconds of media held back waiting for an index that may come after the media,
    /// while that is the case (MP4 scanned with a reference's layout).
    pub fn held_media_secs(&self) -> Option<f64> {
        match self {
            Splitter::Mp4(s) => s.held_media_secs(),
            Splitter::Matroska(_) => None,
        }
    }

    /// Stops waiting for a late index: the held packets go to `out` (with `note` in the
    /// summary, if given), and the rest is split as it comes.
    pub fn release_hold(&mut self, note: Option<String>, out: &mut Vec<PacketEvent>) {
        if let Splitter::Mp4(s) = self {
            s.release_hold(note, out);
        }
    }
}
