//! The data livemux works on: input [`Chunk`]s, [`Tracks`] and their codec parameters,
//! [`Packet`]s, and output [`Fragment`]s.
//!
//! Payloads are [`Bytes`]: stages slice them and never copy them. Every timestamp is a
//! count of *ticks* of its track's timescale (`Track::timescale`, ticks per second); the
//! field names say so (`dts_ticks`), and [`Ticks`] converts when a duration in another
//! unit is needed.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

use crate::codecs::CodecConfig;

/// Bytes of input as they arrived, with their position in the input.
///
/// `offset` is the absolute byte offset of `data[0]` in the input. Sources emit chunks in
/// increasing offset order, except that a seekable MP4 source may send a trailing `moov`
/// first (see [`SourceConfig::moov_first`](crate::SourceConfig::moov_first)); consumers must
/// not assume chunk boundaries mean anything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    /// Offset of `data[0]` in the input.
    pub offset: u64,
    /// The bytes.
    pub data: Bytes,
}

impl Chunk {
    /// `data` found at `offset` in the input.
    pub fn new(offset: u64, data: impl Into<Bytes>) -> Self {
        Chunk { offset, data: data.into() }
    }

    /// Offset one past the last byte.
    pub fn end(&self) -> u64 {
        self.offset + self.data.len() as u64
    }
}

/// A timestamp or duration together with its timescale (ticks per second).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ticks {
    /// The count of ticks.
    pub ticks: i64,
    /// Ticks per second.
    pub timescale: u32,
}

impl Ticks {
    /// `ticks` at `timescale` ticks per second.
    pub fn new(ticks: i64, timescale: u32) -> Self {
        Ticks { ticks, timescale }
    }

    /// Milliseconds, rounded toward negative infinity (0 for a timescale of 0).
    pub fn as_millis(self) -> i64 {
        if self.timescale == 0 {
            return 0;
        }
        (self.ticks as i128 * 1000).div_euclid(self.timescale as i128) as i64
    }
}

/// What a track carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TrackKind {
    /// Pictures.
    Video,
    /// Sound.
    Audio,
    /// Anything else (subtitles, timed metadata...), kept where the output can hold it.
    Other,
}

impl fmt::Display for TrackKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TrackKind::Video => "video",
            TrackKind::Audio => "audio",
            TrackKind::Other => "other",
        })
    }
}

/// Where a track's codec parameters came from.
#[derive(Clone, Debug, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamOrigin {
    /// The input's own header (moov, init segment, Matroska Tracks).
    #[default]
    Stream,
    /// A reference recording (recapture).
    Reference,
}

/// One entry of an edit list, in the track's timescale for `media_time_ticks` and in the
/// movie timescale for `segment_duration` (as in MP4's `elst`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edit {
    /// How long the edit lasts on the presentation timeline, in movie ticks
    /// ([`Track::movie_timescale`]).
    pub segment_duration_movie_ticks: u64,
    /// Where in the track's media the edit starts, in track ticks; -1 means an empty edit
    /// (a gap).
    pub media_time_ticks: i64,
    /// Playback rate (1: normal speed; 0: a dwell on one frame).
    pub media_rate_integer: i16,
}

/// A track as the rest of the pipeline sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Track {
    /// The track's ID in the input (MP4 track_ID, Matroska TrackNumber).
    pub input_id: u64,
    /// What the track carries.
    pub kind: TrackKind,
    /// Ticks per second of every timestamp of this track.
    pub timescale: u32,
    /// The codec and its parameters (decoder configuration record, sample rate...).
    pub codec: CodecConfig,
    /// ISO 639-2/T language code, "und" when unknown.
    pub language: [u8; 3],
    /// The input's edit list, kept so that presentation timing survives a remux.
    pub edits: Vec<Edit>,
    /// The timescale `edits` segment durations are expressed in (MP4 movie timescale).
    pub movie_timescale: u32,
    /// Where [`codec`](Self::codec)'s parameters came from.
    pub origin: ParamOrigin,
    /// The MP4 sample entry the parameters came from, when they came from one: a muxer
    /// writes it back verbatim for codecs it cannot describe itself.
    pub mp4_sample_entry: Option<Bytes>,
    /// How the track is shown and named, beyond its codec parameters.
    pub meta: TrackMeta,
}

/// What a viewer sees of a track beyond its codec: kept across a remux wherever the output
/// container can hold it (MP4 `tkhd`, `pasp`, `colr`, `mdcv`, `clli`; Matroska `Video`,
/// `Colour`, `Projection`, `Name`). `None` means "not said", which writers leave unsaid.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct TrackMeta {
    /// The track's name (Matroska `Name`, MP4 `udta/name`).
    pub name: Option<String>,
    /// The MP4 `hdlr` name (FFmpeg's `handler_name`), when the track came from MP4.
    pub handler_name: Option<String>,
    /// Display matrix as in `tkhd` (a, b, u, c, d, v, x, y, w: 16.16 fixed point, u, v and w
    /// 2.30), when it is not the identity.
    pub matrix: Option<[i32; 9]>,
    /// Pixel aspect ratio (horizontal spacing, vertical spacing), when the container states
    /// one (1:1 included: a stated 1:1 overrides the codec's own aspect in players).
    pub pixel_aspect: Option<(u32, u32)>,
    /// Colour description (primaries, transfer, matrix, range).
    pub colour: Option<Colour>,
    /// HDR mastering display colour volume.
    pub mastering: Option<MasteringDisplay>,
    /// HDR content light levels.
    pub light_level: Option<ContentLightLevel>,
}

/// Colour description, as code points of ISO/IEC 23091-2 (H.273), which MP4 `colr`/`nclx`,
/// Matroska `Colour` and the codecs' VUI all use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Colour {
    /// `ColourPrimaries` (1: BT.709, 9: BT.2020...).
    pub primaries: u8,
    /// `TransferCharacteristics` (1: BT.709, 16: PQ, 18: HLG...).
    pub transfer: u8,
    /// `MatrixCoefficients` (1: BT.709, 9: BT.2020 non-constant...).
    pub matrix: u8,
    /// Full-range samples (0-255 for 8 bits) rather than limited (16-235).
    pub full_range: bool,
}

/// Mastering display colour volume (SMPTE ST 2086), in the units of MP4 `mdcv`:
/// chromaticity in 0.00002, luminance in 0.0001 cd/m².
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MasteringDisplay {
    /// Display primaries (x, y) in the order green, blue, red, as `mdcv` stores them.
    pub primaries: [(u16, u16); 3],
    /// White point (x, y).
    pub white_point: (u16, u16),
    /// Maximum display luminance, in 0.0001 cd/m².
    pub max_luminance: u32,
    /// Minimum display luminance, in 0.0001 cd/m².
    pub min_luminance: u32,
}

/// Content light level (CTA-861.3), in cd/m².
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContentLightLevel {
    /// Maximum content light level: the brightest pixel of the recording.
    pub max_cll: u16,
    /// Maximum frame-average light level: the brightest frame on average.
    pub max_fall: u16,
}

/// Metadata of the whole recording: kept wherever the output can hold it (MP4 `mvhd` and
/// `udta/meta/ilst`, Matroska `Info` and `Tags`).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct MovieMeta {
    /// The recording's title.
    pub title: Option<String>,
    /// Creation time, seconds since 1970-01-01 UTC.
    pub creation_time: Option<i64>,
    /// Other tags as (key, value), keys as FFmpeg names them ("artist", "comment", ...).
    pub tags: Vec<(String, String)>,
    /// A cover picture.
    pub cover: Option<CoverArt>,
}

impl MovieMeta {
    /// Longest text kept from a tag or a track name, in bytes (longer ones are left out).
    pub const MAX_TEXT: usize = 64 << 10;
    /// Most tags kept from one recording.
    pub const MAX_TAGS: usize = 64;
    /// Largest cover picture kept, in bytes.
    pub const MAX_COVER: usize = 16 << 20;
}

/// `a : b` in lowest terms (`b` 0 or `a` 0 left as it is).
pub(crate) fn reduced_ratio(a: u64, b: u64) -> (u64, u64) {
    let (mut x, mut y) = (a, b);
    while y != 0 {
        (x, y) = (y, x % y);
    }
    let g = x.max(1);
    (a / g, b / g)
}

/// An attached picture (MP4 `covr`, a Matroska attachment).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoverArt {
    /// "image/jpeg" or "image/png".
    pub mime: &'static str,
    /// The encoded picture.
    pub data: Bytes,
}

impl Track {
    /// A track of `kind` with `codec` and defaults for the rest (input ID 1, `und`, no
    /// edits, movie timescale 1000), for unit tests.
    #[cfg(test)]
    pub(crate) fn for_test(kind: TrackKind, timescale: u32, codec: CodecConfig) -> Track {
        Track {
            input_id: 1,
            kind,
            timescale,
            codec,
            language: *b"und",
            edits: Vec::new(),
            movie_timescale: 1000,
            origin: ParamOrigin::Stream,
            mp4_sample_entry: None,
            meta: TrackMeta::default(),
        }
    }

    /// [`language`](Self::language) as text ("und" if it is not UTF-8).
    pub fn language_str(&self) -> &str {
        std::str::from_utf8(&self.language).unwrap_or("und")
    }
}

/// The tracks of a stream, in output order, with the recording's own metadata. Index `i`
/// is what [`Packet::track`] refers to.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Tracks {
    list: Vec<Track>,
    /// Metadata of the whole recording.
    pub movie: MovieMeta,
}

impl Tracks {
    /// The tracks `list`, in output order, with the recording's metadata.
    pub fn new(list: Vec<Track>, movie: MovieMeta) -> Self {
        Tracks { list, movie }
    }

    /// The tracks, without the recording's metadata.
    pub fn into_vec(self) -> Vec<Track> {
        self.list
    }
}

impl From<Vec<Track>> for Tracks {
    fn from(list: Vec<Track>) -> Self {
        Tracks { list, movie: MovieMeta::default() }
    }
}

impl FromIterator<Track> for Tracks {
    fn from_iter<I: IntoIterator<Item = Track>>(iter: I) -> Self {
        Vec::from_iter(iter).into()
    }
}

impl std::ops::Deref for Tracks {
    type Target = [Track];
    fn deref(&self) -> &[Track] {
        &self.list
    }
}

impl std::ops::DerefMut for Tracks {
    fn deref_mut(&mut self) -> &mut [Track] {
        &mut self.list
    }
}

/// Shared, immutable [`Tracks`], as events carry them.
pub type TrackSet = Arc<Tracks>;

/// One coded frame (or audio access unit).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    /// Index into the [`TrackSet`].
    pub track: usize,
    /// Decode time, in the track's ticks.
    pub dts_ticks: i64,
    /// Presentation time, in the track's ticks.
    pub pts_ticks: i64,
    /// How long the packet lasts, in the track's ticks.
    pub duration_ticks: u32,
    /// A sync sample: decoding can start here.
    pub keyframe: bool,
    /// The coded bytes, as the output container stores them (length-prefixed NAL units
    /// for H.264/HEVC, raw AAC frames...).
    pub data: Payload,
}

/// A packet's bytes: one slice of the input, or several when the packet straddles two
/// input reads (kept in pieces rather than copied; writers emit the pieces as they are).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Payload {
    parts: Vec<Bytes>,
}

impl Payload {
    /// The bytes of `parts` in order (empty parts are dropped).
    pub fn from_parts(parts: Vec<Bytes>) -> Self {
        Payload { parts: parts.into_iter().filter(|p| !p.is_empty()).collect() }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.parts.iter().map(Bytes::len).sum()
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// The pieces, in order.
    pub fn parts(&self) -> &[Bytes] {
        &self.parts
    }

    /// The pieces, in order, taken out.
    pub fn into_parts(self) -> Vec<Bytes> {
        self.parts
    }

    /// The bytes in one piece: free for a single slice, a copy otherwise.
    pub fn contiguous(&self) -> Bytes {
        match self.parts.as_slice() {
            [] => Bytes::new(),
            [one] => one.clone(),
            many => many.concat().into(),
        }
    }
}

impl From<Bytes> for Payload {
    fn from(b: Bytes) -> Self {
        Payload::from_parts(vec![b])
    }
}

/// A piece of output, written by a sink with one (vectored) write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fragment {
    /// What the fragment is, and so how an output treats it.
    pub kind: FragmentKind,
    /// Position of the fragment in the output: where it is written. Fragments come in
    /// increasing offset order except [`FragmentKind::Finalize`] ones, which rewrite
    /// bytes already written.
    pub offset: u64,
    /// The bytes, in order: headers the muxer built, then media payloads sliced from the
    /// input (never copied).
    pub parts: Vec<Bytes>,
    /// What the fragment covers, for progress reports and tests.
    pub packets: u32,
    /// Start of the fragment on the presentation timeline, in ms, if it carries media.
    pub start_ms: Option<i64>,
    /// Duration of the media the fragment carries, in ms (0 for headers and trailers).
    pub duration_ms: u64,
    /// In-place writes that keep an index of the fragments current while recording (the
    /// running `sidx` of `--to mp4`), made with this fragment by outputs that can seek
    /// ([`IndexUpdate`] says in which order). An output that leaves them out still writes a
    /// valid file, whose index counts only the first fragment.
    pub index: IndexUpdate,
}

/// In-place writes that add a fragment to an index written before it (the running `sidx`
/// of `--to mp4`). Outputs that can seek make `prepare` before the fragment and `publish`
/// after it, once the fragment is as durable as configured, so that the index never
/// counts a fragment a crash may have lost; streams skip both.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IndexUpdate {
    /// (offset, bytes): room the index does not count yet (its next entry).
    pub prepare: Vec<(u64, Bytes)>,
    /// (offset, bytes): what makes the index count the fragment (its entry count).
    pub publish: Vec<(u64, Bytes)>,
}

impl IndexUpdate {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.prepare.is_empty() && self.publish.is_empty()
    }
}

impl Fragment {
    /// An in-place write of a clean stop ([`FragmentKind::Finalize`]).
    pub fn finalize(offset: u64, data: Bytes) -> Self {
        Fragment {
            kind: FragmentKind::Finalize,
            offset,
            parts: vec![data],
            packets: 0,
            start_ms: None,
            duration_ms: 0,
            index: IndexUpdate::default(),
        }
    }

    /// Length in bytes.
    pub fn len(&self) -> u64 {
        self.parts.iter().map(|p| p.len() as u64).sum()
    }

    /// Whether the fragment has no bytes.
    pub fn is_empty(&self) -> bool {
        self.parts.iter().all(Bytes::is_empty)
    }

    /// The fragment as one buffer (copies, unless it has a single part).
    pub fn to_bytes(&self) -> Bytes {
        match self.parts.as_slice() {
            [one] => one.clone(),
            parts => parts.concat().into(),
        }
    }
}

/// What a [`Fragment`] is: how an output writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FragmentKind {
    /// Everything a player needs before the first media fragment (ftyp+moov, EBML header...).
    Header,
    /// Self-contained media (moof+mdat, a Cluster).
    Media,
    /// Index written at a clean stop (mfra, Cues): optional for a player.
    Trailer,
    /// An in-place change at a clean stop (a patched header or index): written
    /// at `offset`, possibly over bytes already written, and made durable before the next
    /// fragment, by outputs that can seek. Outputs that cannot (stdout, a pipe) skip it:
    /// what they wrote before is complete and valid as it stands.
    Finalize,
}
