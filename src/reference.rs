//! Reading a reference recording (the "recapture"): a short complete recording made with the
//! same recorder and settings as a stream, whose codec parameters and packet layout stand
//! in for the stream's when these are missing or garbage.
//!
//! MP4/MOV references are read with livemux's own MP4 reader (the index only, plus a byte
//! of each track's first packet). Matroska/WebM references are read with livemux's live
//! Matroska reader, so a browser's probe recording (unknown sizes, no Cues) serves as it
//! is; a reference is small and read once, so a blocking reader is fine here.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::codecs::{aac, opus, CodecConfig};
use crate::formats::mp4::file::read_moov;
use crate::formats::mp4::moov::{parse_movie, Mp4Track};
use crate::formats::mp4::scan::layout::PacketStats;
use crate::formats::{sniff, ContainerKind};
use crate::model::{ParamOrigin, Track, TrackKind};

/// Most packets read from a Matroska reference to learn its layout.
const MAX_REFERENCE_PACKETS: usize = 20_000;

/// A track of a reference recording.
#[derive(Clone, Debug)]
pub struct RefTrack {
    pub kind: TrackKind,
    pub codec: CodecConfig,
    /// The MP4 media timescale; `None` for Matroska, whose timestamps say nothing of the
    /// timescale a stream's MP4 muxer chose.
    pub mp4_timescale: Option<u32>,
    /// The track as a stream without an index of its own would carry it.
    pub track: Track,
    pub stats: PacketStats,
}

impl RefTrack {
    /// "video h264 640x360", for messages.
    pub fn describe(&self) -> String {
        let mut s = format!("{} {}", self.kind, self.codec.name());
        if let Some(d) = self.codec.dimensions() {
            s += &format!(" {}x{}", d.width, d.height);
        }
        if let Some(a) = self.codec.audio_format() {
            s += &format!(" {} Hz {} ch", a.sample_rate, a.channels);
        }
        if let Some(ts) = self.mp4_timescale {
            s += &format!(", timescale {ts}");
        }
        s
    }
}

/// A reference recording, read.
#[derive(Clone, Debug)]
pub struct Reference {
    /// The file it was read from.
    pub path: PathBuf,
    /// Its audio and video tracks, in file order (internal types).
    #[doc(hidden)]
    pub tracks: Vec<RefTrack>,
}

impl Reference {
    /// Reads a complete MP4/MOV or Matroska/WebM recording. The error (of kind
    /// [`ErrorKind::Reference`](crate::ErrorKind::Reference), with the path) says why it
    /// cannot serve as a reference.
    pub fn load(path: &Path) -> crate::Result<Self> {
        Reference::read(path)
            .map_err(|reason| crate::formats::Failure::Reference { path: path.to_path_buf(), reason }.into())
    }

    /// [`Reference::load`], with the reason it cannot serve as a plain message.
    pub(crate) fn read(path: &Path) -> Result<Self, String> {
        let mut file = File::open(path).map_err(|e| e.to_string())?;
        let mut head = [0u8; crate::formats::SNIFF_LEN];
        let n = file.read(&mut head).map_err(|e| e.to_string())?;
        file.seek(SeekFrom::Start(0)).map_err(|e| e.to_string())?;
        let tracks = match sniff(&head[..n]) {
            Some(ContainerKind::Mp4) => load_mp4(&mut file)?,
            Some(ContainerKind::Matroska) => load_matroska(file)?,
            None => return Err("not an MP4/MOV or Matroska/WebM file".into()),
        };
        if tracks.is_empty() {
            return Err("no audio or video track".into());
        }
        for (i, t) in tracks.iter().enumerate() {
            t.codec
                .validate()
                .map_err(|e| format!("track {} ({}): codec parameters unusable: {e}", i + 1, t.describe()))?;
        }
        Ok(Reference { path: path.to_path_buf(), tracks })
    }
}

fn load_mp4(file: &mut File) -> Result<Vec<RefTrack>, String> {
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    let (offset, header_len, moov) = read_moov(file, len)
        .map_err(|e| e.to_string())?
        .ok_or("no 'moov' box: a reference must be a complete recording")?;
    let movie = parse_movie(&moov, offset, header_len).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for (i, t) in movie.tracks.iter().enumerate().filter(|(_, t)| t.kind != TrackKind::Other) {
        if let Some(why) = t.encryption_refusal(i + 1) {
            return Err(why);
        }
        let codec = t
            .codec
            .clone()
            .map_err(|e| format!("track {} ({}): codec parameters unusable: {e}", i + 1, t.describe()))?;
        let first_byte = first_packet_byte(file, t);
        let samples = reference_samples(t, len).map_err(|e| format!("track {} ({}): {e}", i + 1, t.describe()))?;
        let stats = PacketStats::from_packets(samples.into_iter(), first_byte);
        let mut track = t.to_track(movie.timescale, codec.clone(), ParamOrigin::Reference);
        // The stream's length is not the reference's.
        for e in &mut track.edits {
            e.segment_duration_movie_ticks = 0;
        }
        out.push(RefTrack { kind: t.kind, codec, mp4_timescale: Some(t.timescale), track, stats });
    }
    Ok(out)
}

/// Most packets of an MP4 reference track learnt from (a one-minute recording has a few
/// thousand); the layout statistics of the first ones stand for the rest.
pub const MAX_REFERENCE_MP4_PACKETS: usize = 1 << 18;

/// `(size, duration, cts_offset)` of the first samples of a reference track, each checked
/// to lie within the file of `file_len` bytes: a sample table claims any count it likes
/// (a constant-size `stsz` holds no per-sample bytes), the file's bytes do not.
fn reference_samples(t: &Mp4Track, file_len: u64) -> Result<Vec<(u32, u32, i64)>, String> {
    let mut out = Vec::new();
    for s in t.table.samples().take(MAX_REFERENCE_MP4_PACKETS) {
        let s = s.map_err(|e| e.to_string())?;
        if s.offset.checked_add(u64::from(s.size)).is_none_or(|end| end > file_len) {
            return Err(format!(
                "its sample table describes {} samples, but sample {} ({} bytes at byte offset {}) lies past the \
                 end of the file ({file_len} bytes): the index is damaged or not this file's",
                t.table.sample_count, s.index, s.size, s.offset
            ));
        }
        out.push((s.size, s.duration, s.cts_offset));
    }
    Ok(out)
}

fn first_packet_byte(file: &mut File, t: &Mp4Track) -> Option<u8> {
    let s = t.table.samples().next()?.ok()?;
    let mut b = [0u8];
    file.seek(SeekFrom::Start(s.offset)).ok()?;
    file.read_exact(&mut b).ok()?;
    Some(b[0])
}

/// Most bytes of a Matroska reference read to learn its layout.
const MAX_REFERENCE_BYTES: u64 = 256 << 20;

fn load_matroska(file: File) -> Result<Vec<RefTrack>, String> {
    use crate::formats::matroska::block::parse_block;
    use crate::formats::matroska::ids;
    use crate::formats::matroska::reader::{elements, MkvItem, MkvReader};
    use crate::formats::matroska::tracks::{parse_tracks, SegmentInfo, TrackEntry};

    let mut reader = MkvReader::new();
    let mut info = SegmentInfo::default();
    let mut entries: Vec<TrackEntry> = Vec::new();
    // Frames per track, in file (decode) order: (size, timestamp in ns); first keyframe.
    let mut frames: Vec<Vec<(u32, u64)>> = Vec::new();
    let mut first: Vec<Option<Bytes>> = Vec::new();
    let mut cluster_timestamp = 0u64;
    let mut read = 0usize;
    let mut input = file.take(MAX_REFERENCE_BYTES);
    let mut buf = vec![0u8; 1 << 20];
    'reading: loop {
        let n = input.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        reader.push(Bytes::copy_from_slice(&buf[..n]));
        while let Some(item) = reader.poll().map_err(|e| e.to_string())? {
            match item {
                MkvItem::Meta(e) if e.id == ids::INFO => {
                    info = SegmentInfo::parse(e.body(), e.body_offset()).map_err(|e| e.to_string())?
                }
                MkvItem::Meta(e) if e.id == ids::TRACKS => {
                    entries = parse_tracks(e.body(), e.body_offset()).map_err(|e| e.to_string())?;
                    entries.retain(|t| t.kind() != TrackKind::Other);
                    frames = vec![Vec::new(); entries.len()];
                    first = vec![None; entries.len()];
                }
                MkvItem::ClusterTimestamp { timestamp, .. } => cluster_timestamp = timestamp,
                MkvItem::Blocks { offset, data } => {
                    for e in elements(offset, &data) {
                        let Ok(b) = parse_block(&e.map_err(|e| e.to_string())?) else { continue };
                        let Some(i) = entries.iter().position(|t| t.number == b.track) else { continue };
                        // Saturating: a crafted ClusterTimestamp near the top of the range
                        // must not overflow (a reference is input too).
                        let ts = i64::try_from(cluster_timestamp)
                            .unwrap_or(i64::MAX)
                            .saturating_add(b.relative_timestamp as i64)
                            .max(0) as u64;
                        for f in &b.frames {
                            frames[i].push((f.len() as u32, ts.saturating_mul(info.timestamp_scale)));
                        }
                        if b.keyframe && first[i].is_none() {
                            first[i] = b.frames.first().cloned();
                        }
                        read += b.frames.len();
                        if read >= MAX_REFERENCE_PACKETS {
                            break 'reading;
                        }
                    }
                }
                _ => {}
            }
        }
    }
    if entries.is_empty() {
        return Err("no Tracks element: not a usable Matroska recording".into());
    }
    let mut out = Vec::new();
    for (i, t) in entries.iter().enumerate() {
        let what = |e: String| format!("track {} ({}): {e}", i + 1, t.codec_id);
        let first_frame = first[i].as_deref();
        let codec = t.codec(first_frame).map_err(what)?;
        let kind = t.kind();
        // Timescales an MP4 muxer would choose: 90 kHz for video, the sample rate for audio.
        let timescale = codec.audio_format().map_or(90_000, |a| a.sample_rate.max(1));
        let stats = matroska_stats(&frames[i], timescale, t.default_duration_ns, &codec, first_frame.unwrap_or(&[]));
        let mut track = t.to_track(&info, codec.clone());
        track.timescale = timescale;
        track.origin = ParamOrigin::Reference;
        for e in &mut track.edits {
            e.media_time_ticks = (u128::from(t.codec_delay_ns) * u128::from(timescale) / 1_000_000_000) as i64;
        }
        out.push(RefTrack { kind, codec, mp4_timescale: None, track, stats });
    }
    Ok(out)
}

/// Packet statistics of a Matroska track. Matroska stores presentation times only: decode
/// order is file order, and the initial composition delay is how far presentation order
/// runs behind it.
fn matroska_stats(
    frames: &[(u32, u64)],
    timescale: u32,
    frame_ns: Option<u64>,
    codec: &CodecConfig,
    first_frame: &[u8],
) -> PacketStats {
    let to_ticks = |ns: u64| (u128::from(ns) * u128::from(timescale) / 1_000_000_000) as u32;
    let ticks = match codec {
        CodecConfig::Aac { asc, .. } => aac::AudioSpecificConfig::parse(asc).map_or(1024, |c| c.frame_length),
        CodecConfig::Opus { .. } => opus::packet_duration_48k(first_frame).map_or(960, |d| d * timescale / 48_000),
        CodecConfig::Pcm { pcm } => frames.first().map_or(1, |f| f.0 / pcm.bytes_per_frame().max(1)),
        _ => match frame_ns {
            Some(ns) => to_ticks(ns),
            None => {
                let mut pts: Vec<u64> = frames.iter().map(|f| f.1).collect();
                pts.sort_unstable();
                let mut deltas: Vec<u64> = pts.windows(2).map(|w| w[1] - w[0]).filter(|&d| d > 0).collect();
                deltas.sort_unstable();
                deltas.get(deltas.len() / 2).map_or(1, |&d| to_ticks(d))
            }
        },
    };
    // Reorder depth: how many places a frame's presentation rank falls behind its decode index.
    let mut by_pts: Vec<usize> = (0..frames.len()).collect();
    by_pts.sort_by_key(|&i| frames[i].1);
    let depth = by_pts.iter().enumerate().map(|(rank, &i)| i.saturating_sub(rank)).max().unwrap_or(0);
    let packets = frames.iter().map(|f| (f.0, ticks.max(1), 0i64));
    let mut stats = PacketStats::from_packets(packets, first_frame.first().copied());
    stats.first_cts_ticks = depth as i64 * i64::from(ticks);
    stats
}
