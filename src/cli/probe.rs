//! `livemux probe`: reads the input with the `source` stage and the sans-IO core (the
//! sniffing reader, the codec-parameter policy and the splitter, without an output), and
//! describes what they saw, in text or as JSON (`--json`, `schema_version` 1, described by
//! `schemas/probe.schema.json`).
//!
//! Tracks are numbered from 1 (`number`), as every other message and the server's events
//! number them; `input_id` is the container's own ID (MP4 track_ID, Matroska TrackNumber).
//!
//! The figures, defined so that they agree with `ffprobe` on the files it reads:
//! - a track's **presentation window** is its packets' presentation times, from the
//!   earliest to the latest presentation time plus that packet's duration, seen through
//!   the edit list's first media edit (moved by its media time and by the empty edits
//!   before it, and cut to its length when it is the only media edit), as players and
//!   ffprobe show them. Its `start_time` and `duration` (seconds) are that window's;
//! - a video track's **frame rate** is its packet count over the sum of its packet
//!   durations (what ffprobe calls `avg_frame_rate` for MP4);
//! - a track's **bit rate** is its payload bytes × 8 over the span of its presentation
//!   times before the edit list (the media's own length, what ffprobe divides by for MP4);
//! - the overall **duration** is Matroska's Segment Duration when the file has one,
//!   otherwise from the earliest track start to the latest track end; the overall **bit
//!   rate** is the input's size × 8 over that duration (as ffprobe's format bit rate).
//!
//! All of them count the packets the core would remux: in a file cut short, the samples
//! the reader drops (an incomplete last fragment) are not counted, where ffprobe counts
//! every sample the fragment's index declares.
//!
//! The layout names Matroska elements as the specification does (`Segment`, `Cluster`);
//! a Matroska file's index says whether it has Cues (read, or listed by the SeekHead at a
//! position inside the file) and a Segment Duration. Tracks in a codec livemux does not
//! read are still named: MP4 sample entries and Matroska CodecIDs by FFmpeg's names.
//! A note that reaches the report from two stages is printed once.
//!
//! Profile and level names come from the codec records ([`crate::codecs::names`]);
//! `rotation` from the display matrix (MP4 `tkhd`, Matroska `Projection`), in degrees
//! counter-clockwise as ffprobe's "Display Matrix" side data gives it; `creation_time` from
//! MP4 `mvhd` or Matroska `DateUTC`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use crate::codecs::{names, CodecConfig};
use crate::formats::demux::Probe;
use crate::formats::matroska::ids as mkv;
use crate::formats::matroska::tracks::{codec_id_name, parse_tracks, SegmentInfo, TrackEntry};
use crate::formats::params::CodecParams;
use crate::formats::split::Splitter;
use crate::formats::{ContainerEvent, ContainerKind, ElementKind, Failure, PacketEvent};
use crate::model::{ParamOrigin, Track, TrackKind, TrackSet};
use crate::stages::{self, codecpar, source, Outputs, StageContext, StageError};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The version of the JSON report (`schema_version`): bumped when a field changes meaning
/// or goes away, not when one is added.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Serialize, Default)]
struct Report {
    schema_version: u32,
    input: String,
    container: Option<ContainerKind>,
    /// Top-level boxes or elements in file order, e.g. "ftyp@0 mdat@40 moov@1082051" or
    /// "EBML@0 Segment@40 Info@59 Tracks@107 Cluster@302".
    layout: Vec<String>,
    /// Where the index is. MP4: "moov before media", "moov after media", "fragmented",
    /// "no moov"; Matroska: "cues: yes|no, duration: yes|no".
    index: String,
    /// Matroska only: whether the file has Cues and a Segment Duration.
    #[serde(skip_serializing_if = "Option::is_none")]
    matroska: Option<MatroskaIndex>,
    complete: bool,
    cut_at: Option<u64>,
    /// Bytes of input read.
    size: u64,
    /// Seconds (see the module doc).
    duration: Option<f64>,
    /// Seconds: the earliest track start.
    start_time: Option<f64>,
    /// Bits per second: size × 8 / duration.
    bit_rate: Option<u64>,
    /// RFC 3339 UTC.
    creation_time: Option<String>,
    tracks: Vec<TrackReport>,
    notes: Vec<String>,
    error: Option<String>,
}

#[derive(Serialize, Clone, Copy, Default)]
struct MatroskaIndex {
    cues: bool,
    duration: bool,
}

#[derive(Serialize)]
struct TrackReport {
    /// 1-based, in the order of the track set.
    number: usize,
    input_id: u64,
    kind: crate::TrackKind,
    codec: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    profile: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    level: Option<String>,
    timescale: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    dimensions: Option<crate::codecs::Dimensions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    audio: Option<crate::codecs::AudioFormat>,
    language: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    rotation: Option<i32>,
    params_from: ParamOrigin,
    config: String,
    packets: u64,
    /// Payload bytes.
    bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    start_time: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    frame_rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bit_rate: Option<u64>,
}

/// What the packets of one track add up to.
#[derive(Clone, Debug, Default, PartialEq)]
struct TrackStats {
    packets: u64,
    bytes: u64,
    /// Earliest presentation time, in the track's ticks.
    first_pts: Option<i64>,
    /// Latest presentation time plus that packet's duration.
    end_pts: Option<i64>,
    /// Sum of the packet durations.
    duration_sum: u64,
    /// The first byte of the first packet (VP8's profile is in it).
    first_byte: Option<u8>,
}

impl TrackStats {
    fn add(&mut self, p: &crate::model::Packet) {
        if self.packets == 0 {
            self.first_byte = p.data.parts().first().and_then(|b| b.first()).copied();
        }
        self.packets = self.packets.saturating_add(1);
        self.bytes = self.bytes.saturating_add(p.data.len() as u64);
        self.duration_sum = self.duration_sum.saturating_add(u64::from(p.duration_ticks));
        let end = p.pts_ticks.saturating_add(i64::from(p.duration_ticks));
        self.first_pts = Some(self.first_pts.map_or(p.pts_ticks, |f| f.min(p.pts_ticks)));
        self.end_pts = Some(self.end_pts.map_or(end, |e| e.max(end)));
    }
}

/// The track's presentation window in its ticks (see the module doc): `None` without
/// packets.
fn presented(t: &Track, s: &TrackStats) -> Option<(i64, i64)> {
    let (first, end) = (s.first_pts?, s.end_pts?);
    Some(through_edits(t, first, end).unwrap_or((first, end)))
}

/// `first..end` seen through the first media edit; `None` when there is none or the
/// arithmetic overflows.
fn through_edits(t: &Track, first: i64, end: i64) -> Option<(i64, i64)> {
    let to_track = |movie_ticks: u64| -> Option<i64> {
        let v = u128::from(movie_ticks).checked_mul(u128::from(t.timescale))?;
        i64::try_from(v.checked_div(u128::from(t.movie_timescale))?).ok()
    };
    let mut empty = 0i64;
    let mut media = t.edits.iter().filter(|e| e.media_time_ticks >= 0);
    for e in &t.edits {
        if e.media_time_ticks >= 0 {
            break;
        }
        empty = empty.checked_add(to_track(e.segment_duration_movie_ticks)?)?;
    }
    let edit = media.next()?;
    let only = media.next().is_none();
    let from = edit.media_time_ticks;
    let mut to = end;
    if only && edit.segment_duration_movie_ticks > 0 {
        to = to.min(from.checked_add(to_track(edit.segment_duration_movie_ticks)?)?);
    }
    let start = first.max(from);
    let to = to.max(start);
    Some((start.checked_sub(from)?.checked_add(empty)?, to.checked_sub(from)?.checked_add(empty)?))
}

/// Seconds, to the microsecond.
fn seconds(ticks: i64, timescale: u32) -> Option<f64> {
    (timescale > 0).then(|| micro(ticks as f64 / f64::from(timescale)))
}

/// Longest duration believed (a century, in seconds): a header claiming more is ignored.
const MAX_DURATION_SECS: f64 = 100.0 * 365.25 * 86_400.0;

fn micro(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// Bits per second of `bytes` over `secs`.
fn bit_rate(bytes: u64, secs: f64) -> Option<u64> {
    (secs > 0.0).then(|| (bytes as f64 * 8.0 / secs).round() as u64)
}

/// The display matrix's rotation as FFmpeg's `av_display_rotation_get` gives it (degrees
/// counter-clockwise), rounded.
fn rotation(m: &[i32; 9]) -> Option<i32> {
    let f = |i: usize| f64::from(m[i]);
    let (scale0, scale1) = (f(0).hypot(f(3)), f(1).hypot(f(4)));
    if scale0 == 0.0 || scale1 == 0.0 {
        return None;
    }
    // As ffprobe prints av_display_rotation_get(): truncated toward zero, 180° as -180.
    let r = -(f(1) / scale1).atan2(f(0) / scale0).to_degrees();
    // Within [-180, 180]: the cast cannot saturate.
    Some(r as i32)
}

/// `secs` since 1970 as RFC 3339 UTC ("2026-11-21T15:02:47Z").
fn rfc3339(secs: i64) -> String {
    let secs = secs.clamp(-62_167_219_200, 253_402_300_799);
    let (y, m, d) = crate::server::events::civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", sod / 3600, sod % 3600 / 60, sod % 60)
}

/// A Matroska track the core did not take, as its TrackEntry describes it.
fn unread_matroska_track(number: usize, e: &TrackEntry, info: &SegmentInfo) -> TrackReport {
    let kind = e.kind();
    let language = crate::formats::matroska::meta::track_language(e.language.as_deref(), e.language_bcp47.as_deref());
    TrackReport {
        number,
        input_id: e.number,
        kind,
        codec: match codec_id_name(&e.codec_id) {
            Some(name) => name.to_string(),
            None if e.codec_id.is_empty() => "unknown".to_string(),
            None => e.codec_id.clone(),
        },
        profile: None,
        level: None,
        timescale: e.timescale(info),
        dimensions: (kind == TrackKind::Video)
            .then_some(crate::codecs::Dimensions { width: e.width, height: e.height }),
        audio: (kind == TrackKind::Audio)
            .then_some(crate::codecs::AudioFormat { sample_rate: e.sampling_frequency as u32, channels: e.channels }),
        language: String::from_utf8_lossy(&language).into_owned(),
        rotation: e.meta.matrix.as_ref().and_then(rotation),
        params_from: ParamOrigin::Stream,
        config: format!("CodecID {}, not read", e.codec_id),
        packets: 0,
        bytes: 0,
        start_time: None,
        duration: None,
        frame_rate: None,
        bit_rate: None,
    }
}

/// The codec's name; for an MP4 sample entry livemux does not parse, FFmpeg's name for it
/// or else the entry's four characters.
fn codec_name(c: &CodecConfig) -> String {
    match c {
        CodecConfig::Unknown { fourcc, .. } => {
            let name = names::sample_entry_codec(fourcc)
                .map_or_else(|| String::from_utf8_lossy(fourcc).trim().to_string(), str::to_string);
            if name.is_empty() {
                "unknown".into()
            } else {
                name
            }
        }
        c => c.name().to_string(),
    }
}

fn describe_config(c: &CodecConfig) -> String {
    let hex = |b: &[u8]| b.iter().take(16).map(|x| format!("{x:02x}")).collect::<String>();
    match c {
        CodecConfig::H264 { avcc, .. } => match crate::codecs::h264::AvcConfig::parse(avcc) {
            Ok(a) => format!(
                "avcC profile {} level {} ({} SPS, {} PPS, {}-byte lengths)",
                a.profile_idc,
                a.level_idc,
                a.sps.len(),
                a.pps.len(),
                a.nal_length_size
            ),
            Err(e) => format!("avcC unusable: {e}"),
        },
        CodecConfig::Hevc { hvcc, .. } => format!("hvcC {} bytes", hvcc.len()),
        CodecConfig::Av1 { av1c, .. } => format!("av1C {}", hex(av1c)),
        CodecConfig::Vp9 { vpcc, .. } => format!("vpcC {}", hex(vpcc)),
        CodecConfig::Vp8 { .. } => "none".into(),
        CodecConfig::Aac { asc, .. } => format!("AudioSpecificConfig {}", hex(asc)),
        CodecConfig::Opus { head } => {
            format!(
                "OpusHead {} channels, pre-skip {}, mapping family {}",
                head.channels, head.pre_skip, head.mapping_family
            )
        }
        CodecConfig::Pcm { pcm } => format!(
            "{}-bit {}{}",
            pcm.bits_per_sample,
            if pcm.float { "float" } else { "integer" },
            if pcm.little_endian { " little-endian" } else { " big-endian" }
        ),
        CodecConfig::Audio { config, .. } if config.is_empty() => "none (in the frames)".into(),
        CodecConfig::Audio { codec, config, .. } => {
            let what = match codec {
                crate::codecs::AudioCodec::Vorbis => "Vorbis headers",
                crate::codecs::AudioCodec::Flac => "FLAC metadata blocks",
                crate::codecs::AudioCodec::Ac3 => "dac3",
                crate::codecs::AudioCodec::Eac3 => "dec3",
                crate::codecs::AudioCodec::Alac => "ALAC magic cookie",
                _ => "AudioSpecificConfig",
            };
            if config.len() <= 32 {
                format!("{what} {}", hex(config))
            } else {
                format!("{what} {} bytes", config.len())
            }
        }
        CodecConfig::Unknown { fourcc, .. } => format!("sample entry '{}'", String::from_utf8_lossy(fourcc)),
    }
}

/// The top-level layout of the input, from the reader's events.
#[derive(Default)]
struct Layout {
    boxes: Vec<String>,
    container: Option<ContainerKind>,
    moov_at: Option<u64>,
    mdat_at: Option<u64>,
    fragmented: bool,
    /// Matroska: Cues seen.
    cues: bool,
    /// Matroska: where the SeekHead says the Cues are (from the Segment's data start), and
    /// where that starts.
    cues_listed_at: Option<u64>,
    segment_data_at: Option<u64>,
    /// The input file's size, when it is a file.
    file_len: u64,
    /// Matroska: the Segment Duration, in seconds.
    segment_duration: Option<f64>,
    /// Matroska: the Segment Info and the TrackEntries as read, to name the tracks when
    /// the core cannot take them (a codec livemux does not read).
    mkv_info: Option<SegmentInfo>,
    mkv_tracks: Vec<TrackEntry>,
    end: Option<crate::formats::EndState>,
}

/// The SeekPosition a SeekHead body gives for `id`, if it lists it.
fn seek_position(body: &[u8], body_offset: u64, id: u32) -> Option<u64> {
    use crate::formats::matroska::ebml::{children, read_uint};
    for seek in children(body, body_offset) {
        let seek = seek.ok()?;
        if seek.id != mkv::SEEK {
            continue;
        }
        let (mut listed, mut position) = (None, None);
        for c in children(seek.body, seek.offset.saturating_add(seek.header_len as u64)).flatten() {
            match c.id {
                mkv::SEEK_ID => listed = read_uint(c.body),
                mkv::SEEK_POSITION => position = read_uint(c.body),
                _ => {}
            }
        }
        if listed == Some(u64::from(id)) {
            return position;
        }
    }
    None
}

/// How the layout names an element: an MP4 box by its type, a Matroska element by its
/// name in the specification (its hex ID when it has none here).
fn element_name(kind: &ElementKind) -> String {
    match kind {
        ElementKind::Ebml(id) => mkv::name(*id).map_or_else(|| format!("0x{id:X}"), str::to_string),
        k => k.to_string(),
    }
}

impl Layout {
    fn look_at(&mut self, ev: &ContainerEvent) {
        match ev {
            ContainerEvent::Container(k) => self.container = Some(*k),
            ContainerEvent::Meta(m) => {
                // A Matroska element's body, and where it starts in the input.
                let body = m.data.get(m.header_len as usize..).unwrap_or_default();
                let body_offset = m.offset.saturating_add(u64::from(m.header_len));
                match m.kind {
                    ElementKind::Mp4(f) => match &f.0 {
                        b"moov" => self.moov_at = self.moov_at.or(Some(m.offset)),
                        b"moof" => self.fragmented = true,
                        _ => {}
                    },
                    ElementKind::Ebml(mkv::INFO) => {
                        if let Ok(info) = SegmentInfo::parse(body, body_offset) {
                            self.segment_duration = info
                                .duration
                                .map(|d| d * info.timestamp_scale as f64 / 1e9)
                                .filter(|d| d.is_finite() && *d > 0.0 && *d <= MAX_DURATION_SECS);
                            self.mkv_info = Some(info);
                        }
                    }
                    ElementKind::Ebml(mkv::TRACKS) if self.mkv_tracks.is_empty() => {
                        self.mkv_tracks = parse_tracks(body, body_offset).unwrap_or_default();
                    }
                    ElementKind::Ebml(mkv::CUES) => self.cues = true,
                    ElementKind::Ebml(mkv::SEEK_HEAD) => {
                        self.cues_listed_at = self.cues_listed_at.or(seek_position(body, body_offset, mkv::CUES));
                    }
                    // A Cluster's Timestamp: inside the Cluster, not top-level.
                    ElementKind::Ebml(mkv::TIMESTAMP) => return,
                    _ => {}
                }
                self.boxes.push(format!("{}@{}", element_name(&m.kind), m.offset));
            }
            ContainerEvent::Skipped(r) | ContainerEvent::MediaStart(r) => {
                if r.kind == ElementKind::Mp4(crate::formats::mp4::FourCc::new(b"mdat")) {
                    self.mdat_at = self.mdat_at.or(Some(r.offset));
                }
                match r.kind {
                    ElementKind::Ebml(mkv::CUES) => self.cues = true,
                    ElementKind::Ebml(mkv::SEGMENT) => {
                        self.segment_data_at = Some(r.offset.saturating_add(u64::from(r.header_len)))
                    }
                    _ => {}
                }
                self.boxes.push(format!("{}@{}", element_name(&r.kind), r.offset));
            }
            ContainerEvent::End(e) => self.end = Some(e.clone()),
            _ => {}
        }
    }

    /// Matroska: whether the file has Cues: read, or listed in the SeekHead at a position
    /// inside the input (the read may have stopped before them).
    fn has_cues(&self) -> bool {
        let input_len = self.end.as_ref().map_or(0, |e| e.input_len).max(self.file_len);
        let listed = match (self.segment_data_at, self.cues_listed_at) {
            (Some(start), Some(at)) => start.checked_add(at).is_some_and(|at| at < input_len),
            _ => false,
        };
        self.cues || listed
    }

    fn index(&self) -> String {
        if self.container == Some(ContainerKind::Matroska) {
            let yes = |b: bool| if b { "yes" } else { "no" };
            return format!("cues: {}, duration: {}", yes(self.has_cues()), yes(self.segment_duration.is_some()));
        }
        match (self.moov_at, self.mdat_at) {
            (None, _) => "no moov",
            (Some(_), _) if self.fragmented => "fragmented",
            (Some(m), Some(d)) if m > d => "moov after media",
            (Some(_), _) => "moov before media",
        }
        .to_string()
    }
}

/// What the core made of the input: the tracks and the split summary.
#[derive(Default)]
struct Seen {
    layout: Layout,
    tracks: Option<TrackSet>,
    summary: Option<crate::formats::SplitSummary>,
    /// Per track of `tracks`.
    stats: Vec<TrackStats>,
    notes: Vec<String>,
}

/// Runs the input through the core's reader, parameter policy and splitter (no output),
/// noting what each saw. The errors are worded as the pipeline's stages word them.
async fn read_input(
    mut input: mpsc::Receiver<crate::model::Chunk>,
    ctx: impl Fn(&str) -> StageContext,
    params: codecpar::CodecparConfig,
    seen: &mut Seen,
) -> Result<(), StageError> {
    let reference = match params.reference.clone() {
        Some(path) => {
            let loaded = tokio::task::spawn_blocking(move || codecpar::load_reference(&path)).await.map_err(|e| {
                ctx("codecpar-extract").error(Failure::Internal(format!("reading the reference failed: {e}")))
            })?;
            Some(Arc::new(loaded.map_err(|e| ctx("codecpar-extract").error(e))?))
        }
        None => None,
    };
    let mut policy = CodecParams::new(params.params, reference).map_err(|e| ctx("codecpar-extract").error(e))?;
    let mut probe = Probe::new();
    let mut splitter = Splitter::new(&Default::default());
    let (mut events, mut packets) = (Vec::new(), Vec::new());
    let result = loop {
        let step = match input.recv().await {
            Some(c) => probe.push(c),
            None => probe.end_of_input(),
        };
        if let Err(e) = step {
            break Err(ctx("probe").error(e));
        }
        let mut done = false;
        let polled = 'poll: loop {
            let ev = match probe.poll() {
                Ok(Some(ev)) => ev,
                Ok(None) => break Ok(()),
                Err(e) => break Err(ctx("probe").error(e)),
            };
            seen.layout.look_at(&ev);
            if let Err(e) = policy.push(ev, &mut events) {
                break Err(ctx("codecpar-extract").error(e));
            }
            for ev in events.drain(..) {
                let split = match ev {
                    ContainerEvent::End(end) => {
                        done = true;
                        splitter.finish(end, &mut packets).map(|s| seen.summary = Some(s))
                    }
                    ev => splitter.handle(ev, &mut packets),
                };
                if let Err(e) = split {
                    // As for the other stages: the notes gathered so far are kept.
                    break 'poll Err(ctx("packet-split").error(e));
                }
                for p in packets.drain(..) {
                    match p {
                        PacketEvent::Tracks(t) => {
                            seen.tracks.get_or_insert(t);
                        }
                        PacketEvent::Packets(batch) => {
                            let tracks = seen.tracks.as_ref().map_or(0, |t| t.len());
                            seen.stats.resize(tracks.max(seen.stats.len()), TrackStats::default());
                            for p in &batch {
                                if let Some(s) = seen.stats.get_mut(p.track) {
                                    s.add(p);
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
        };
        if polled.is_err() || done {
            break polled;
        }
    };
    seen.notes.extend(probe.notes().iter().cloned());
    seen.notes.extend(policy.take_notes());
    result
}

pub async fn run(input: PathBuf, json: bool, params: codecpar::CodecparConfig) -> ExitCode {
    let report = describe(input, params).await;
    if json {
        println!("{}", serde_json::to_string_pretty(&report).expect("report serializes"));
    } else {
        print_text(&report);
    }
    if let Some(e) = &report.error {
        eprintln!("error: {e}");
        return ExitCode::from(super::EXIT_RUNTIME);
    }
    ExitCode::SUCCESS
}

/// The duration of the recording in the file `input`, when a read of it finds one (what
/// `livemux remux --to mp4` sizes its reserve and running index for).
pub(crate) async fn duration_ms(input: PathBuf) -> Option<u64> {
    let report = describe(input, codecpar::CodecparConfig::default()).await;
    // `describe` bounds durations (MAX_DURATION_SECS): the cast below cannot saturate.
    let ms = report.duration? * 1000.0;
    (report.error.is_none() && ms.is_finite() && ms >= 1.0).then(|| ms.ceil() as u64)
}

/// Reads `input` through the core and describes it.
async fn describe(input: PathBuf, params: codecpar::CodecparConfig) -> Report {
    let mut report =
        Report { schema_version: SCHEMA_VERSION, input: input.display().to_string(), ..Default::default() };
    let src_cfg = source::SourceConfig { path: input.clone(), ..Default::default() };
    let mut src_ctx = StageContext::new("source", "source");
    src_ctx.file = (!src_cfg.is_stdin()).then(|| input.clone());

    let (chunk_tx, chunk_rx) = mpsc::channel(stages::CHUNK_CHANNEL);
    let source =
        tokio::spawn(source::run(src_ctx.clone(), src_cfg, Outputs::new(vec![chunk_tx]), CancellationToken::new()));
    let ctx = |name: &str| {
        let kind = match name {
            "probe" => "probe",
            "codecpar-extract" => "codecpar-extract",
            _ => "packet-split",
        };
        let mut c = StageContext::new(name, kind);
        c.file = src_ctx.file.clone();
        c
    };
    let mut seen = Seen::default();
    let read = read_input(chunk_rx, ctx, params, &mut seen).await;
    match source.await {
        Ok(Err(e)) => report.error = Some(e.to_string()),
        Ok(Ok(r)) => report.notes.extend(r.notes),
        Err(_) => {}
    }
    if let Err(e) = read {
        report.error.get_or_insert(e.to_string());
    }
    report.notes.extend(seen.notes);
    let mut counts = Vec::new();
    if let Some(summary) = seen.summary {
        counts = summary.packets;
        report.notes.extend(summary.notes);
    }
    // A note may reach the report from two stages (the reader and the splitter): once.
    let mut once = std::collections::HashSet::new();
    report.notes.retain(|n| once.insert(n.clone()));
    let mut layout = seen.layout;
    // A seekable source reads a trailing moov first, and a failed read stops early: the
    // input's end is the file's size.
    layout.file_len = src_ctx.file.as_ref().and_then(|f| std::fs::metadata(f).ok()).map_or(0, |m| m.len());
    report.index = layout.index();
    report.container = layout.container;
    if layout.container == Some(ContainerKind::Matroska) {
        report.matroska = Some(MatroskaIndex { cues: layout.has_cues(), duration: layout.segment_duration.is_some() });
    }
    report.layout = layout.boxes;
    report.layout.sort_by_key(|s| s.rsplit('@').next().and_then(|n| n.parse::<u64>().ok()));
    if let Some(end) = &layout.end {
        report.complete = end.cut.is_none();
        report.cut_at = end.cut.as_ref().map(|c| c.offset);
        report.size = end.input_len;
    }
    report.size = report.size.max(layout.file_len);
    let tracks = seen.tracks;
    let (mut first, mut last) = (None::<f64>, None::<f64>);
    for (i, t) in tracks.iter().flat_map(|t| t.iter()).enumerate() {
        let stats = seen.stats.get(i).cloned().unwrap_or_default();
        let window = presented(t, &stats);
        let start_time = window.and_then(|(s, _)| seconds(s, t.timescale));
        let duration = window.and_then(|(s, e)| seconds(e.saturating_sub(s), t.timescale)).filter(|d| *d > 0.0);
        if let (Some(s), Some(d)) = (start_time, duration) {
            first = Some(first.map_or(s, |f| f.min(s)));
            last = Some(last.map_or(s + d, |l| l.max(s + d)));
        }
        let frame_rate = (t.kind == TrackKind::Video && stats.duration_sum > 0 && t.timescale > 0)
            .then(|| micro(stats.packets as f64 * f64::from(t.timescale) / stats.duration_sum as f64))
            .filter(|f| *f > 0.0);
        let mut pl = names::profile_level(&t.codec);
        if let (CodecConfig::Vp8 { .. }, Some(b)) = (&t.codec, stats.first_byte) {
            pl = Some(names::ProfileLevel { profile: Some(names::vp8_profile(b).to_string()), level: None });
        }
        let media_secs = match (stats.first_pts, stats.end_pts) {
            (Some(f), Some(e)) => seconds(e.saturating_sub(f), t.timescale).filter(|d| *d > 0.0),
            _ => None,
        };
        report.tracks.push(TrackReport {
            number: i + 1,
            input_id: t.input_id,
            kind: t.kind,
            codec: codec_name(&t.codec),
            profile: pl.as_ref().and_then(|p| p.profile.clone()),
            level: pl.and_then(|p| p.level),
            timescale: t.timescale,
            dimensions: t.codec.dimensions(),
            audio: t.codec.audio_format(),
            language: t.language_str().to_string(),
            rotation: t.meta.matrix.as_ref().and_then(rotation),
            params_from: t.origin.clone(),
            config: describe_config(&t.codec),
            packets: counts.get(i).copied().unwrap_or(stats.packets),
            bytes: stats.bytes,
            start_time,
            duration,
            frame_rate,
            bit_rate: media_secs.and_then(|d| bit_rate(stats.bytes, d)),
        });
    }
    if tracks.is_none() {
        // The core took no tracks (a codec livemux does not read): name them as the file does.
        let info = layout.mkv_info.clone().unwrap_or_default();
        for (i, e) in layout.mkv_tracks.iter().enumerate() {
            report.tracks.push(unread_matroska_track(i + 1, e, &info));
        }
    }
    report.start_time = first.map(micro);
    report.duration = layout.segment_duration.or_else(|| Some(last? - first?)).map(micro).filter(|d| *d > 0.0);
    report.bit_rate = report.duration.and_then(|d| bit_rate(report.size, d));
    report.creation_time = tracks.as_ref().and_then(|t| t.movie.creation_time).map(rfc3339);
    report
}

fn print_text(r: &Report) {
    let secs = |s: f64| format!("{s:.3} s");
    println!("input:     {}", r.input);
    println!("container: {}", r.container.map_or("unknown".to_string(), |c| c.to_string()));
    println!("layout:    {}", r.layout.join(" "));
    println!("index:     {}", r.index);
    match r.cut_at {
        None => println!("complete:  yes"),
        Some(at) => println!("complete:  no (cut inside the box at offset {at})"),
    }
    if let Some(d) = r.duration {
        let start = r.start_time.map(|s| format!(", start {}", secs(s))).unwrap_or_default();
        println!("duration:  {}{start}", secs(d));
    }
    if let Some(b) = r.bit_rate {
        println!("bit rate:  {b} bit/s ({} bytes)", r.size);
    }
    if let Some(c) = &r.creation_time {
        println!("created:   {c}");
    }
    for t in &r.tracks {
        let shape = match (t.dimensions, t.audio) {
            (Some(d), _) => format!("{}x{}", d.width, d.height),
            (_, Some(a)) => format!("{} Hz, {} ch", a.sample_rate, a.channels),
            _ => String::new(),
        };
        let origin = match t.params_from {
            ParamOrigin::Stream => "stream",
            ParamOrigin::Reference => "reference",
        };
        println!(
            "track {}:   {} {} {} timescale {} lang {} packets {} (params from {origin})",
            t.number, t.kind, t.codec, shape, t.timescale, t.language, t.packets
        );
        let mut figures = Vec::new();
        if let Some(p) = &t.profile {
            figures.push(format!("profile {p}"));
        }
        if let Some(l) = &t.level {
            figures.push(format!("level {l}"));
        }
        if let Some(d) = t.duration {
            figures.push(format!("duration {}", secs(d)));
        }
        if let Some(s) = t.start_time {
            figures.push(format!("start {}", secs(s)));
        }
        if let Some(f) = t.frame_rate {
            figures.push(format!("{f:.3} fps"));
        }
        if let Some(b) = t.bit_rate {
            figures.push(format!("{b} bit/s"));
        }
        figures.push(format!("{} bytes", t.bytes));
        if let Some(r) = t.rotation {
            figures.push(format!("rotation {r}"));
        }
        println!("           {}", figures.join(", "));
        println!("           {}", t.config);
    }
    for n in &r.notes {
        println!("note:      {n}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codecs::Dimensions;
    use crate::model::Edit;

    fn track(timescale: u32, edits: Vec<Edit>) -> Track {
        let mut t = Track::for_test(TrackKind::Video, timescale, CodecConfig::Vp8 { dims: Dimensions::default() });
        t.edits = edits;
        t
    }

    fn edit(movie_ticks: u64, media_time: i64) -> Edit {
        Edit { segment_duration_movie_ticks: movie_ticks, media_time_ticks: media_time, media_rate_integer: 1 }
    }

    #[test]
    fn the_presentation_window_goes_through_the_first_media_edit() {
        let stats = TrackStats { first_pts: Some(1024), end_pts: Some(154_624), ..Default::default() };
        // No edits: the packets' own span.
        assert_eq!(presented(&track(15_360, vec![]), &stats), Some((1024, 154_624)));
        // A B-frame delay taken off by the edit, cut to its 10 s.
        assert_eq!(presented(&track(15_360, vec![edit(10_000, 1024)]), &stats), Some((0, 153_600)));
        // An empty edit first delays the track; a zero-length edit runs to the end.
        assert_eq!(presented(&track(15_360, vec![edit(500, -1), edit(0, 1024)]), &stats), Some((7680, 161_280)));
        // Overflowing edits fall back to the packets' span.
        assert_eq!(presented(&track(15_360, vec![edit(u64::MAX, i64::MAX)]), &stats), Some((1024, 154_624)));
        // An edit past the media leaves nothing to show.
        assert_eq!(presented(&track(15_360, vec![edit(0, i64::MAX)]), &stats), Some((0, 0)));
        let mut zero = track(15_360, vec![edit(10_000, 1024)]);
        zero.movie_timescale = 0;
        assert_eq!(presented(&zero, &stats), Some((1024, 154_624)));
        assert_eq!(presented(&zero, &TrackStats::default()), None);
    }

    #[test]
    fn rotation_as_ffmpeg_reads_the_matrix() {
        let one = 1 << 16;
        let w = 1 << 30;
        assert_eq!(rotation(&[one, 0, 0, 0, one, 0, 0, 0, w]), Some(0));
        assert_eq!(rotation(&[0, one, 0, -one, 0, 0, 0, 0, w]), Some(-90));
        assert_eq!(rotation(&[0, -one, 0, one, 0, 0, 0, 0, w]), Some(90));
        assert_eq!(rotation(&[-one, 0, 0, 0, -one, 0, 0, 0, w]), Some(-180));
        assert_eq!(rotation(&[0; 9]), None);
        assert!(rotation(&[i32::MIN; 9]).is_some());
    }

    #[test]
    fn the_seek_head_says_where_the_cues_are() {
        use crate::formats::matroska::ebml::{put_element, put_master, put_uint};
        let mut body = bytes::BytesMut::new();
        put_master(&mut body, mkv::SEEK, |b| {
            put_element(b, mkv::SEEK_ID, &mkv::INFO.to_be_bytes());
            put_uint(b, mkv::SEEK_POSITION, 100);
        });
        put_master(&mut body, mkv::SEEK, |b| {
            put_element(b, mkv::SEEK_ID, &mkv::CUES.to_be_bytes());
            put_uint(b, mkv::SEEK_POSITION, 5000);
        });
        assert_eq!(seek_position(&body, 52, mkv::CUES), Some(5000));
        assert_eq!(seek_position(&body, 52, mkv::TAGS), None);
        assert_eq!(seek_position(&body[..body.len() - 1], 52, mkv::CUES), None);
        assert_eq!(seek_position(&[0xFF; 7], u64::MAX, mkv::CUES), None);
        let mut layout = Layout { container: Some(ContainerKind::Matroska), ..Default::default() };
        layout.segment_data_at = Some(40);
        layout.cues_listed_at = Some(5000);
        layout.file_len = 5040;
        assert_eq!(layout.index(), "cues: no, duration: no");
        layout.file_len = 6000;
        assert_eq!(layout.index(), "cues: yes, duration: no");
    }

    #[test]
    fn times_and_rates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_273_367), "2026-11-21T15:02:47Z");
        assert_eq!(rfc3339(i64::MIN), "0000-01-01T00:00:00Z");
        assert_eq!(seconds(153_600, 15_360), Some(10.0));
        assert_eq!(seconds(1, 0), None);
        assert_eq!(bit_rate(1000, 0.0), None);
        assert_eq!(bit_rate(1000, 2.0), Some(4000));
        assert_eq!(element_name(&ElementKind::Ebml(mkv::CLUSTER)), "Cluster");
        assert_eq!(element_name(&ElementKind::Ebml(0x4242)), "0x4242");
    }
}
