//! Reading a reference recording (the "recapture"): a short complete recording made with the
//! same recorder and settings as a stream, whose codec parameters and packet layout stand
//! in for the stream's when these are missing or garbage.
//!
//! MP4/MOV references are read with livemux's own MP4 reader (the index only, plus a byte
//! of each track's first packet). Matroska/WebM references are read with the
//! `matroska-demuxer` crate, which handles finished files well; a reference is small and
//! read once, so a blocking reader is fine here.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::codecs::{aac, av1, h264, hevc, opus, pcm, vp9, AudioFormat, CodecConfig, Dimensions};
use crate::formats::mp4::file::read_moov;
use crate::formats::mp4::moov::{parse_movie, Mp4Track};
use crate::formats::mp4::scan::layout::PacketStats;
use crate::formats::{sniff, ContainerKind};
use crate::model::{Edit, ParamOrigin, Track, TrackKind};

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
    pub path: PathBuf,
    /// Its audio and video tracks, in file order.
    pub tracks: Vec<RefTrack>,
}

impl Reference {
    /// Reads a complete MP4/MOV or Matroska/WebM recording. The error says why it cannot
    /// serve as a reference.
    pub fn load(path: &Path) -> Result<Self, String> {
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
        let codec = t
            .codec
            .clone()
            .map_err(|e| format!("track {} ({}): codec parameters unusable: {e}", i + 1, t.describe()))?;
        let first_byte = first_packet_byte(file, t);
        let samples = t.table.samples().map_while(Result::ok).map(|s| (s.size, s.duration, s.cts_offset));
        let stats = PacketStats::from_packets(samples, first_byte);
        let mut track = t.to_track(movie.timescale, codec.clone(), ParamOrigin::Reference);
        // The stream's length is not the reference's.
        for e in &mut track.edits {
            e.segment_duration_movie_ticks = 0;
        }
        out.push(RefTrack { kind: t.kind, codec, mp4_timescale: Some(t.timescale), track, stats });
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

fn load_matroska(file: File) -> Result<Vec<RefTrack>, String> {
    use matroska_demuxer::{Frame, MatroskaFile, TrackType};
    let mut mkv = MatroskaFile::open(file).map_err(|e| {
        format!(
            "cannot be read as a finished Matroska file ({e}); a live recording (unknown sizes, no Cues) \
             must be finished first, e.g. with ffmpeg -i REF -c copy finished.mkv"
        )
    })?;
    let ns_per_tick = mkv.info().timestamp_scale().get();
    let entries: Vec<_> = mkv
        .tracks()
        .iter()
        .filter(|t| matches!(t.track_type(), TrackType::Video | TrackType::Audio))
        .cloned()
        .collect();
    // Frames per track, in file (decode) order: (size, timestamp in ns, first byte).
    let mut frames: Vec<Vec<(u32, u64)>> = vec![Vec::new(); entries.len()];
    let mut first: Vec<Option<Vec<u8>>> = vec![None; entries.len()];
    let mut frame = Frame::default();
    let mut read = 0;
    while read < MAX_REFERENCE_PACKETS && mkv.next_frame(&mut frame).map_err(|e| e.to_string())? {
        read += 1;
        if let Some(i) = entries.iter().position(|t| t.track_number().get() == frame.track) {
            frames[i].push((frame.data.len() as u32, frame.timestamp.saturating_mul(ns_per_tick)));
            first[i].get_or_insert_with(|| frame.data.clone());
        }
    }
    let mut out = Vec::new();
    for (i, t) in entries.iter().enumerate() {
        let what = |e: String| format!("track {} ({}): {e}", i + 1, t.codec_id());
        let private = t.codec_private().map(Bytes::copy_from_slice).unwrap_or_default();
        let first_frame = first[i].as_deref().unwrap_or(&[]);
        let codec = matroska_codec(t.codec_id(), private, first_frame, t).map_err(what)?;
        let kind = if t.track_type() == TrackType::Video { TrackKind::Video } else { TrackKind::Audio };
        // Timescales an MP4 muxer would choose: 90 kHz for video, the sample rate for audio.
        let timescale = codec.audio_format().map_or(90_000, |a| a.sample_rate.max(1));
        let frame_ns = t.default_duration().map(|d| d.get());
        let stats = matroska_stats(&frames[i], timescale, frame_ns, &codec, first_frame);
        let mut edits = Vec::new();
        if let (Some(delay), CodecConfig::Opus { .. }) = (t.codec_delay(), &codec) {
            let media_time = (u128::from(delay) * u128::from(timescale) / 1_000_000_000) as i64;
            edits.push(Edit { segment_duration_movie_ticks: 0, media_time_ticks: media_time, media_rate_integer: 1 });
        }
        let mut language = *b"und";
        if let Some(l) = t.language().filter(|l| l.len() == 3 && l.is_ascii()) {
            language.copy_from_slice(l.as_bytes());
        }
        let track = Track {
            input_id: t.track_number().get(),
            kind,
            timescale,
            codec: codec.clone(),
            language,
            edits,
            movie_timescale: 1000,
            origin: ParamOrigin::Reference,
            mp4_sample_entry: None,
        };
        out.push(RefTrack { kind, codec, mp4_timescale: None, track, stats });
    }
    Ok(out)
}

/// Codec parameters from a Matroska CodecID and CodecPrivate (and the first frame, for
/// codecs whose parameters live in the bitstream).
fn matroska_codec(
    id: &str,
    private: Bytes,
    first_frame: &[u8],
    t: &matroska_demuxer::TrackEntry,
) -> Result<CodecConfig, String> {
    let audio = || {
        t.audio()
            .map(|a| AudioFormat { sample_rate: a.sampling_frequency() as u32, channels: a.channels().get() as u16 })
    };
    let e = |e: crate::codecs::CodecError| e.to_string();
    Ok(match id {
        "V_MPEG4/ISO/AVC" => {
            let dims = h264::AvcConfig::parse_bytes(&private).and_then(|c| c.dimensions()).map_err(e)?;
            CodecConfig::H264 { avcc: private, dims }
        }
        "V_MPEGH/ISO/HEVC" => {
            let dims = hevc::HvcConfig::parse_bytes(&private).and_then(|c| c.dimensions()).map_err(e)?;
            CodecConfig::Hevc { hvcc: private, dims }
        }
        "V_AV1" => {
            let dims = av1::Av1Config::parse_bytes(&private).and_then(|c| c.dimensions()).map_err(e)?;
            CodecConfig::Av1 { av1c: private, dims }
        }
        "V_VP9" => {
            let (config, dims) = vp9::config_from_keyframe(first_frame).map_err(e)?;
            CodecConfig::Vp9 { vpcc: config.to_bytes(), dims }
        }
        "V_VP8" => {
            let v = t.video().ok_or("no video settings")?;
            let dims = Dimensions { width: v.pixel_width().get() as u32, height: v.pixel_height().get() as u32 };
            CodecConfig::Vp8 { dims }
        }
        "A_AAC" => {
            let asc = aac::AudioSpecificConfig::parse(&private).map_err(e)?;
            CodecConfig::Aac { asc: private, format: asc.audio_format() }
        }
        "A_OPUS" => CodecConfig::Opus { head: opus::OpusHead::from_opus_head(&private).map_err(e)? },
        "A_PCM/INT/LIT" | "A_PCM/INT/BIG" | "A_PCM/FLOAT/IEEE" => {
            let a = audio().ok_or("no audio settings")?;
            let bits = t.audio().and_then(|a| a.bit_depth()).map_or(16, |b| b.get() as u16);
            let pcm = pcm::PcmFormat {
                sample_rate: a.sample_rate,
                channels: a.channels,
                bits_per_sample: bits,
                float: id == "A_PCM/FLOAT/IEEE",
                little_endian: id != "A_PCM/INT/BIG",
            };
            CodecConfig::Pcm { pcm }
        }
        other => return Err(format!("codec '{other}' is not supported in a reference")),
    })
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
