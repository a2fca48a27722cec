//! Sans-IO container readers and writers: push bytes in, get items out. Nothing here
//! touches tokio or the file system; the stages in [`crate::stages`] drive these types.
//!
//! The remux core, one type per step, each usable alone:
//! - [`demux`]: the [`Demuxer`](demux::Demuxer) trait of the container readers and
//!   [`Probe`](demux::Probe), the front that recognizes the container;
//! - [`params`]: the codec-parameter policy ([`CodecParams`](params::CodecParams));
//! - [`split`]: packets from the container's events ([`Splitter`](split::Splitter));
//! - [`output`]: the output format and its muxer ([`Output`](output::Output));
//! - [`remux`]: [`Remuxer`](remux::Remuxer), all of the above behind `push(bytes)`.

pub mod demux;
mod failure;
pub mod fragmenter;
pub mod hls;
pub mod matroska;
pub mod mp4;
pub mod output;
pub mod pace;
pub mod params;
pub mod plan;
pub mod remux;
pub mod split;
pub mod timeline;

pub use failure::Failure;
pub use plan::{FinalizePlan, WriteStep};

use bytes::Bytes;

use crate::model::{Chunk, TrackSet};

/// The container family of an input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ContainerKind {
    /// ISO BMFF and QuickTime: MP4, MOV, fragmented MP4, CMAF, ISMV.
    Mp4,
    /// Matroska and WebM.
    Matroska,
}

impl std::fmt::Display for ContainerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ContainerKind::Mp4 => "mp4",
            ContainerKind::Matroska => "matroska",
        })
    }
}

/// Guesses the container from the first bytes. With fewer than [`SNIFF_LEN`] bytes, `None`
/// may only mean "too few to tell".
pub fn sniff(head: &[u8]) -> Option<ContainerKind> {
    if head.len() >= 4 && head[..4] == [0x1A, 0x45, 0xDF, 0xA3] {
        return Some(ContainerKind::Matroska);
    }
    if head.len() >= 8 && mp4::boxes::is_plausible_top_level(&head[4..8]) {
        return Some(ContainerKind::Mp4);
    }
    None
}

/// Bytes [`sniff`] needs before a `None` means "not a known container".
pub const SNIFF_LEN: usize = 8;

/// How an element of the container structure is named.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ElementKind {
    /// An ISO BMFF box type.
    Mp4(mp4::FourCc),
    /// An EBML element ID.
    Ebml(u32),
}

impl std::fmt::Display for ElementKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ElementKind::Mp4(fourcc) => write!(f, "{fourcc}"),
            ElementKind::Ebml(id) => write!(f, "EBML element 0x{id:X}"),
        }
    }
}

/// A stretch of the input: a box or element whose body is not carried in the event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    pub kind: ElementKind,
    pub offset: u64,
    pub header_len: u32,
    /// Total size including the header; `None` when it runs to the end of the input.
    pub size: Option<u64>,
}

/// A metadata box or element, read whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetaUnit {
    pub kind: ElementKind,
    pub offset: u64,
    pub header_len: u32,
    /// The whole box, header included.
    pub data: Bytes,
}

/// How the input ended.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct EndState {
    /// Bytes of input seen (offset one past the last byte).
    pub input_len: u64,
    /// Set when the input stopped inside a box or element.
    pub cut: Option<Cut>,
}

/// Where an input was cut short.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cut {
    pub kind: Option<ElementKind>,
    /// Start of the incomplete box or element.
    pub offset: u64,
    /// Where it should have ended, when its size was known.
    pub declared_end: Option<u64>,
}

/// The structure of an input, as `probe` emits it and `codecpar-extract` extends it.
#[derive(Clone, Debug, PartialEq)]
pub enum ContainerEvent {
    /// Always first.
    Container(ContainerKind),
    /// A metadata box or element, read whole (moov, moof, Matroska Tracks...).
    Meta(MetaUnit),
    /// A box or element passed over (free, skip, Void, unknown), or a Matroska Segment
    /// header, whose children follow as their own events.
    Skipped(Region),
    /// A media box begins (mdat); its payload follows as [`ContainerEvent::Media`].
    MediaStart(Region),
    /// Media payload bytes, with absolute input offsets.
    Media(Chunk),
    /// The tracks, decided by `codecpar-extract` (never emitted by `probe`).
    Tracks(TrackSet),
    /// The `moov` that follows as a [`ContainerEvent::Meta`], already parsed (by
    /// `codecpar-extract`, just before [`ContainerEvent::Tracks`]): readers after it use
    /// this one instead of parsing the box again.
    Movie(std::sync::Arc<mp4::moov::Movie>),
    /// A `moof` already parsed (by `codecpar-extract`'s in-band check), in place of its
    /// [`ContainerEvent::Meta`].
    Fragment(std::sync::Arc<ParsedFragment>),
    /// The media has no index: split it with this layout (from a reference recording).
    /// Emitted by `codecpar-extract` just before [`ContainerEvent::Tracks`].
    Unindexed(std::sync::Arc<mp4::scan::layout::ScanLayout>),
    /// Always last.
    End(EndState),
}

/// A `moof` and its samples, as [`mp4::moof::parse_moof`] read them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedFragment {
    /// The `moof` box.
    pub unit: MetaUnit,
    /// Its samples.
    pub samples: Vec<mp4::moof::FragSample>,
    /// Per movie track, the decode time after this fragment (where a `traf` without a
    /// `tfdt` in the next fragment starts).
    pub next_dts: Vec<i64>,
}

/// How many times this thread parsed a `moov` and a `moof` box: the proof that the remux
/// parses every box once (`tests/core.rs`). Compiled for the tests only (`internals`).
#[doc(hidden)]
#[cfg(any(test, feature = "internals"))]
pub fn parse_counts() -> (u64, u64) {
    use crate::parse_count::{parses, Parsed};
    (parses(Parsed::Moov), parses(Parsed::Moof))
}

/// What `packet-split` emits and a muxer consumes.
#[derive(Clone, Debug, PartialEq)]
pub enum PacketEvent {
    /// Before any packet.
    Tracks(TrackSet),
    /// Packets in input order.
    Packets(Vec<crate::model::Packet>),
    /// The input's own fragment ended here: a muxer may cut without waiting for more.
    Boundary,
    /// Always last.
    End(SplitSummary),
}

/// What packet-split made of the input.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SplitSummary {
    /// Packets emitted, per track.
    pub packets: Vec<u64>,
    /// Everything that was left out, and why.
    pub notes: Vec<String>,
    pub end: EndState,
}

/// Appends a packet to `out`, extending the last batch when there is one.
pub fn push_packet(out: &mut Vec<PacketEvent>, packet: crate::model::Packet) {
    if let Some(PacketEvent::Packets(batch)) = out.last_mut() {
        batch.push(packet);
    } else {
        out.push(PacketEvent::Packets(vec![packet]));
    }
}

/// Why a muxer cannot write what it was given.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum MuxError {
    /// `track` is the index in the track set here and below; the messages count from 1, as
    /// outputs, `livemux probe` and the events number tracks.
    #[error("track {}: {} cannot be written to {}: {}", .track + 1, .codec, .format, .reason)]
    Unsupported { track: usize, codec: &'static str, format: &'static str, reason: String },
    #[error("track {}: packet timing cannot be written: {}", .track + 1, .reason)]
    Timing { track: usize, reason: String },
    #[error("packet for track {}, but the stream has {} tracks", .track + 1, .tracks)]
    NoSuchTrack { track: usize, tracks: usize },
    /// The muxer could not read back what it wrote to finish the file at a clean stop.
    #[error("finishing the output: {0}")]
    Finalize(String),
    /// A second track list came mid-stream that differs from the one the output was
    /// begun with: the output cannot switch a track's parameters, so it stops here rather
    /// than write the new packets with the old parameters.
    #[error(
        "track {}: {what} changed mid-stream; the output cannot carry a second set of codec \
         parameters (remux each part on its own)",
        .track + 1
    )]
    TracksChanged {
        /// 0-based index of the first track that differs.
        track: usize,
        /// What differs: "codec parameters", "timescale", "the track count"...
        what: String,
    },
}

impl MuxError {
    /// The track (0-based index in the track set) the error is about, when it is one.
    pub fn track(&self) -> Option<usize> {
        match self {
            MuxError::Unsupported { track, .. }
            | MuxError::Timing { track, .. }
            | MuxError::NoSuchTrack { track, .. }
            | MuxError::TracksChanged { track, .. } => Some(*track),
            MuxError::Finalize(_) => None,
        }
    }
}

/// A sans-IO muxer: packets in, output fragments out, each to be written whole.
pub trait Muxer: Send {
    /// Everything before the first media fragment.
    fn header(&mut self) -> Result<crate::model::Fragment, MuxError>;
    /// Adds a packet; returns the fragment it closed, if any.
    fn push(&mut self, packet: crate::model::Packet) -> Result<Option<crate::model::Fragment>, MuxError>;
    /// The input's fragment ended: closes the open fragment if it is long enough.
    fn boundary(&mut self) -> Result<Option<crate::model::Fragment>, MuxError>;
    /// End of stream: the last fragment and any trailer.
    fn finish(&mut self) -> Result<Vec<crate::model::Fragment>, MuxError>;
    /// One line each, for the user, about what the muxer did (after [`Muxer::finish`]).
    fn notes(&self) -> Vec<String> {
        Vec::new()
    }
}
