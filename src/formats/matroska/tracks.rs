//! Segment Info and Tracks: reading them into typed tracks, and writing them from
//! [`Track`]s.

use bytes::{Bytes, BytesMut};

use super::ebml::{
    children, put_element, put_float, put_master, put_string, put_uint, read_float, read_string, read_uint, MkvError,
};
use super::ids;
use crate::codecs::{
    ac3, alac, av1, flac, h264, hevc, opus, pcm, vorbis, vp9, AudioCodec, AudioFormat, CodecConfig, Dimensions,
};
use crate::formats::MuxError;
use crate::model::{Edit, ParamOrigin, Track, TrackKind};

/// Matroska's default TimestampScale: timestamps in milliseconds.
pub const DEFAULT_TIMESTAMP_SCALE: u64 = 1_000_000;
/// Timescale of Opus tracks read from Matroska: 48 kHz, as Opus always decodes.
const OPUS_TIMESCALE: u32 = 48_000;

/// What livemux uses of the Segment Info.
#[derive(Clone, Debug, PartialEq)]
pub struct SegmentInfo {
    /// Nanoseconds per timestamp unit.
    pub timestamp_scale: u64,
    /// In timestamp units.
    pub duration: Option<f64>,
    pub title: Option<String>,
    /// DateUTC, in seconds since 1970.
    pub date_utc: Option<i64>,
}

impl Default for SegmentInfo {
    fn default() -> Self {
        SegmentInfo { timestamp_scale: DEFAULT_TIMESTAMP_SCALE, duration: None, title: None, date_utc: None }
    }
}

impl SegmentInfo {
    /// Parses an Info element's body.
    pub fn parse(body: &[u8], body_offset: u64) -> Result<Self, MkvError> {
        let mut info = SegmentInfo::default();
        for c in children(body, body_offset) {
            let c = c?;
            match c.id {
                ids::TIMESTAMP_SCALE => {
                    info.timestamp_scale = read_uint(c.body)
                        .filter(|&s| s > 0)
                        .ok_or_else(|| MkvError::invalid("TimestampScale", c.offset, "not a positive integer"))?;
                }
                ids::DURATION => info.duration = read_float(c.body),
                id => super::meta::read_info_child(&mut info, id, c.body),
            }
        }
        Ok(info)
    }
}

/// One TrackEntry, as read.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct TrackEntry {
    pub number: u64,
    pub track_type: u64,
    pub codec_id: String,
    pub private: Bytes,
    pub default_duration_ns: Option<u64>,
    pub codec_delay_ns: u64,
    pub seek_preroll_ns: u64,
    pub language: Option<String>,
    pub width: u32,
    pub height: u32,
    pub sampling_frequency: f64,
    pub channels: u16,
    pub bit_depth: Option<u16>,
    /// Bytes stripped from the start of every frame (ContentCompression algorithm 3).
    pub header_strip: Option<Bytes>,
    pub language_bcp47: Option<String>,
    /// Name, rotation, pixel aspect, colour, HDR.
    pub meta: crate::model::TrackMeta,
}

impl TrackEntry {
    pub fn kind(&self) -> TrackKind {
        match self.track_type {
            1 => TrackKind::Video,
            2 => TrackKind::Audio,
            _ => TrackKind::Other,
        }
    }

    /// Codecs whose parameters are in the bitstream rather than in CodecPrivate: the
    /// track's first frame is needed to describe it.
    pub fn needs_first_frame(&self) -> bool {
        match self.codec_id.as_str() {
            "V_VP9" => true,
            // AC-3 and E-AC-3 have no CodecPrivate: MP4's dac3/dec3 come from a frame.
            "A_AC3" | "A_EAC3" => true,
            "V_MPEG4/ISO/AVC" | "V_MPEGH/ISO/HEVC" => self.private.is_empty(),
            // Chromium writes an av1C without configOBUs: the sequence header is in-band.
            "V_AV1" => self.private.len() <= 4,
            _ => false,
        }
    }

    /// Whether frames are Annex B byte streams (H.264/HEVC without CodecPrivate, as
    /// Chromium writes them) that MP4 and Matroska readers need length-prefixed.
    pub fn annexb(&self) -> bool {
        matches!(self.codec_id.as_str(), "V_MPEG4/ISO/AVC" | "V_MPEGH/ISO/HEVC") && self.private.is_empty()
    }

    /// Ticks per second of this track's packets: 48 kHz for Opus, else the Segment's
    /// timestamp unit (1000 for the default scale), so that no timestamp is rounded.
    pub fn timescale(&self, info: &SegmentInfo) -> u32 {
        if self.codec_id == "A_OPUS" {
            return OPUS_TIMESCALE;
        }
        if 1_000_000_000 % info.timestamp_scale == 0 {
            (1_000_000_000 / info.timestamp_scale) as u32
        } else {
            1_000_000_000
        }
    }

    /// Codec parameters from CodecPrivate, or from `first_frame` for codecs that keep
    /// them in the bitstream.
    pub fn codec(&self, first_frame: Option<&[u8]>) -> Result<CodecConfig, String> {
        let e = |e: crate::codecs::CodecError| e.to_string();
        let dims = Dimensions { width: self.width, height: self.height };
        let entry_format = AudioFormat { sample_rate: self.sampling_frequency as u32, channels: self.channels };
        let frame = || first_frame.ok_or_else(|| "no frame to read the codec parameters from".to_string());
        Ok(match self.codec_id.as_str() {
            "V_MPEG4/ISO/AVC" if self.private.is_empty() => {
                let f = frame()?;
                let nals: Vec<Bytes> =
                    h264::annexb_nal_ranges(f).into_iter().map(|r| Bytes::copy_from_slice(&f[r])).collect();
                let of = |t: u8| nals.iter().filter(|n| h264::nal_type(n[0]) == t).cloned().collect::<Vec<_>>();
                let config = h264::AvcConfig::from_parameter_sets(&of(7), &of(8)).map_err(e)?;
                let dims = config.dimensions().map_err(e)?;
                CodecConfig::H264 { avcc: config.to_bytes(), dims }
            }
            "V_MPEG4/ISO/AVC" => {
                let dims = h264::AvcConfig::parse_bytes(&self.private).and_then(|c| c.dimensions()).map_err(e)?;
                CodecConfig::H264 { avcc: self.private.clone(), dims }
            }
            "V_MPEGH/ISO/HEVC" if self.private.is_empty() => {
                let f = frame()?;
                let nals: Vec<Bytes> =
                    h264::annexb_nal_ranges(f).into_iter().map(|r| Bytes::copy_from_slice(&f[r])).collect();
                let of = |t: u8| nals.iter().filter(|n| hevc::nal_type(n[0]) == t).cloned().collect::<Vec<_>>();
                let config = hevc::HvcConfig::from_parameter_sets(&of(32), &of(33), &of(34)).map_err(e)?;
                let dims = config.dimensions().map_err(e)?;
                CodecConfig::Hevc { hvcc: config.to_bytes(), dims }
            }
            "V_MPEGH/ISO/HEVC" => {
                let dims = hevc::HvcConfig::parse_bytes(&self.private).and_then(|c| c.dimensions()).map_err(e)?;
                CodecConfig::Hevc { hvcc: self.private.clone(), dims }
            }
            "V_AV1" if self.private.len() <= 4 => {
                let f = frame()?;
                let range = av1::sequence_header_from_obus(f).ok_or("no sequence header in the first frame")?;
                let config = av1::config_from_sequence_header(&f[range]).map_err(e)?;
                let dims = config.dimensions().map_err(e)?;
                CodecConfig::Av1 { av1c: config.to_bytes(), dims }
            }
            "V_AV1" => {
                let dims = av1::Av1Config::parse_bytes(&self.private).and_then(|c| c.dimensions()).map_err(e)?;
                CodecConfig::Av1 { av1c: self.private.clone(), dims }
            }
            "V_VP9" => {
                let (config, dims) = vp9::config_from_keyframe(frame()?).map_err(e)?;
                CodecConfig::Vp9 { vpcc: config.to_bytes(), dims }
            }
            "V_VP8" => CodecConfig::Vp8 { dims },
            "A_AAC" => {
                let asc = crate::codecs::aac::AudioSpecificConfig::parse(&self.private).map_err(e)?;
                if asc.is_aac() {
                    CodecConfig::Aac { asc: self.private.clone(), format: asc.audio_format() }
                } else {
                    let codec = AudioCodec::Mpeg4Audio { object_type: asc.object_type };
                    CodecConfig::Audio { codec, config: self.private.clone(), format: asc.audio_format() }
                }
            }
            "A_VORBIS" => {
                let v = vorbis::parse_private(&self.private).map_err(e)?;
                CodecConfig::Audio { codec: AudioCodec::Vorbis, config: self.private.clone(), format: v.format }
            }
            "A_FLAC" => {
                let (range, info) = flac::blocks_of_private(&self.private).map_err(e)?;
                CodecConfig::Audio {
                    codec: AudioCodec::Flac,
                    config: self.private.slice(range),
                    format: info.audio_format(),
                }
            }
            "A_MPEG/L3" => CodecConfig::Audio { codec: AudioCodec::Mp3, config: Bytes::new(), format: entry_format },
            "A_DTS" => CodecConfig::Audio { codec: AudioCodec::Dts, config: Bytes::new(), format: entry_format },
            "A_AC3" => {
                let dac3 = ac3::Dac3::from_frame(frame()?).map_err(e)?;
                let config = Bytes::copy_from_slice(&dac3.to_bytes());
                CodecConfig::Audio { codec: AudioCodec::Ac3, config, format: dac3.audio_format() }
            }
            "A_EAC3" => {
                let dec3 = ac3::Dec3::from_frame(frame()?).map_err(e)?;
                let parsed = dec3.audio_format();
                let format =
                    AudioFormat { sample_rate: parsed.sample_rate, channels: parsed.channels.max(self.channels) };
                CodecConfig::Audio { codec: AudioCodec::Eac3, config: Bytes::from(dec3.to_bytes()), format }
            }
            "A_ALAC" => {
                let format = alac::AlacConfig::parse(&self.private).map_err(e)?.audio_format();
                CodecConfig::Audio { codec: AudioCodec::Alac, config: self.private.clone(), format }
            }
            "A_OPUS" => CodecConfig::Opus { head: opus::OpusHead::from_opus_head(&self.private).map_err(e)? },
            "A_PCM/INT/LIT" | "A_PCM/INT/BIG" | "A_PCM/FLOAT/IEEE" => CodecConfig::Pcm {
                pcm: pcm::PcmFormat {
                    sample_rate: self.sampling_frequency as u32,
                    channels: self.channels,
                    bits_per_sample: self.bit_depth.unwrap_or(16),
                    float: self.codec_id == "A_PCM/FLOAT/IEEE",
                    little_endian: self.codec_id != "A_PCM/INT/BIG",
                },
            },
            other => return Err(format!("codec '{other}' is not supported")),
        })
    }

    /// The pipeline's track: codec parameters, timescale, Opus codec delay as an edit.
    pub fn to_track(&self, info: &SegmentInfo, codec: CodecConfig) -> Track {
        let timescale = self.timescale(info);
        let mut edits = Vec::new();
        if self.codec_delay_ns > 0 {
            let media_time = (u128::from(self.codec_delay_ns) * u128::from(timescale) / 1_000_000_000)
                .min(crate::formats::matroska::demux::MAX_TIMESTAMP_TICKS as u128) as i64;
            edits.push(Edit { segment_duration_movie_ticks: 0, media_time_ticks: media_time, media_rate_integer: 1 });
        }
        let language = super::meta::track_language(self.language.as_deref(), self.language_bcp47.as_deref());
        Track {
            input_id: self.number,
            kind: self.kind(),
            timescale,
            codec,
            language,
            edits,
            movie_timescale: 1000,
            origin: ParamOrigin::Stream,
            mp4_sample_entry: None,
            meta: self.meta.clone(),
        }
    }
}

/// Parses a Tracks element's body.
pub fn parse_tracks(body: &[u8], body_offset: u64) -> Result<Vec<TrackEntry>, MkvError> {
    let mut out = Vec::new();
    for entry in children(body, body_offset) {
        let entry = entry?;
        if entry.id != ids::TRACK_ENTRY {
            continue;
        }
        let mut t = TrackEntry { channels: 1, sampling_frequency: 8000.0, ..TrackEntry::default() };
        for c in children(entry.body, entry.offset + entry.header_len as u64) {
            let c = c?;
            let uint = || read_uint(c.body).ok_or_else(|| MkvError::invalid("track field", c.offset, "too long"));
            match c.id {
                ids::TRACK_NUMBER => t.number = uint()?,
                ids::TRACK_TYPE => t.track_type = uint()?,
                ids::CODEC_ID => t.codec_id = read_string(c.body),
                ids::CODEC_PRIVATE => t.private = Bytes::copy_from_slice(c.body),
                ids::DEFAULT_DURATION => t.default_duration_ns = Some(uint()?),
                ids::CODEC_DELAY => t.codec_delay_ns = uint()?,
                ids::SEEK_PRE_ROLL => t.seek_preroll_ns = uint()?,
                ids::LANGUAGE => t.language = Some(read_string(c.body)),
                ids::VIDEO => {
                    for v in children(c.body, c.offset + c.header_len as u64) {
                        let v = v?;
                        let value = read_uint(v.body).unwrap_or(0).min(u32::MAX as u64) as u32;
                        match v.id {
                            ids::PIXEL_WIDTH => t.width = value,
                            ids::PIXEL_HEIGHT => t.height = value,
                            _ => {}
                        }
                    }
                    super::meta::read_video(&mut t, c.body, c.offset + c.header_len as u64);
                }
                ids::AUDIO => {
                    for a in children(c.body, c.offset + c.header_len as u64) {
                        let a = a?;
                        match a.id {
                            ids::SAMPLING_FREQUENCY => t.sampling_frequency = read_float(a.body).unwrap_or(8000.0),
                            ids::CHANNELS => t.channels = read_uint(a.body).unwrap_or(1).min(255) as u16,
                            ids::BIT_DEPTH => t.bit_depth = read_uint(a.body).map(|b| b.min(64) as u16),
                            _ => {}
                        }
                    }
                }
                ids::CONTENT_ENCODINGS => t.header_strip = header_strip(c.body, c.offset + c.header_len as u64)?,
                id => super::meta::read_entry_child(&mut t, id, c.body),
            }
        }
        if t.number == 0 {
            return Err(MkvError::invalid("TrackEntry", entry.offset, "no TrackNumber"));
        }
        out.push(t);
    }
    Ok(out)
}

/// Longest header-stripping prefix accepted. Muxers strip a few bytes (a start code, a
/// sync word); each frame carries the prefix again on output, so a long one multiplies the
/// input: a laced block of 256 empty frames in about 7 bytes still becomes 256 × 64 bytes.
pub const MAX_HEADER_STRIP: usize = 64;

/// The header-stripping prefix of a ContentEncodings element; other encodings
/// (compression, encryption) cannot be passed through and are refused.
fn header_strip(body: &[u8], offset: u64) -> Result<Option<Bytes>, MkvError> {
    let mut prefix = None;
    for enc in children(body, offset) {
        let enc = enc?;
        if enc.id != ids::CONTENT_ENCODING {
            continue;
        }
        let mut kind = 0;
        let mut scope = 1;
        let mut algo = None;
        let mut settings = Bytes::new();
        for c in children(enc.body, enc.offset + enc.header_len as u64) {
            let c = c?;
            match c.id {
                ids::CONTENT_ENCODING_TYPE => kind = read_uint(c.body).unwrap_or(0),
                ids::CONTENT_ENCODING_SCOPE => scope = read_uint(c.body).unwrap_or(1),
                ids::CONTENT_COMPRESSION => {
                    algo = Some(0);
                    for cc in children(c.body, c.offset + c.header_len as u64) {
                        let cc = cc?;
                        match cc.id {
                            ids::CONTENT_COMP_ALGO => algo = read_uint(cc.body),
                            ids::CONTENT_COMP_SETTINGS => settings = Bytes::copy_from_slice(cc.body),
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        if kind == 0 && algo == Some(3) && scope & 1 == 1 {
            // Every frame grows by the prefix: a big one turns a small input into a huge
            // output (a 1 MB prefix made 2 GB from 1 MB).
            if settings.len() > MAX_HEADER_STRIP {
                return Err(MkvError::TooLarge {
                    what: "header-stripping prefix (ContentCompSettings)".into(),
                    offset: enc.offset,
                    size: settings.len() as u64,
                    limit: MAX_HEADER_STRIP as u64,
                });
            }
            prefix = Some(settings);
        } else if kind == 1 {
            // ContentEncryption (WebM encryption): the frames cannot be passed on without
            // their encryption settings and keys, which livemux does not carry.
            return Err(MkvError::invalid(
                "ContentEncoding",
                enc.offset,
                "the track is encrypted (ContentEncryption): livemux cannot carry its encryption data",
            ));
        } else if scope & 1 == 1 {
            return Err(MkvError::invalid(
                "ContentEncoding",
                enc.offset,
                "frames are compressed or encrypted (only header stripping is supported)",
            ));
        }
    }
    Ok(prefix)
}

/// FFmpeg's name for the codec of a Matroska CodecID, livemux's own codecs and others
/// (MPEG-2 video, TrueHD, subtitles...): how `probe` names a track it cannot read.
#[cfg_attr(not(feature = "cli"), allow(dead_code))] // for `livemux probe`
pub fn codec_id_name(codec_id: &str) -> Option<&'static str> {
    Some(match codec_id {
        "V_MPEG4/ISO/AVC" => "h264",
        "V_MPEGH/ISO/HEVC" => "hevc",
        "V_AV1" => "av1",
        "V_VP8" => "vp8",
        "V_VP9" => "vp9",
        "V_MPEG1" => "mpeg1video",
        "V_MPEG2" => "mpeg2video",
        "V_MPEG4/ISO/SP" | "V_MPEG4/ISO/ASP" | "V_MPEG4/ISO/AP" => "mpeg4",
        "V_MPEG4/MS/V3" => "msmpeg4v3",
        "V_THEORA" => "theora",
        "V_PRORES" => "prores",
        "V_MJPEG" => "mjpeg",
        "V_FFV1" => "ffv1",
        "V_DIRAC" => "dirac",
        "V_UNCOMPRESSED" => "rawvideo",
        "A_AAC" => "aac",
        "A_OPUS" => "opus",
        "A_VORBIS" => "vorbis",
        "A_FLAC" => "flac",
        "A_MPEG/L3" => "mp3",
        "A_MPEG/L2" => "mp2",
        "A_MPEG/L1" => "mp1",
        "A_AC3" => "ac3",
        "A_EAC3" => "eac3",
        "A_DTS" => "dts",
        "A_TRUEHD" => "truehd",
        "A_ALAC" => "alac",
        "A_TTA1" => "tta",
        "A_WAVPACK4" => "wavpack",
        "A_PCM/INT/LIT" | "A_PCM/INT/BIG" | "A_PCM/FLOAT/IEEE" => "pcm",
        "S_TEXT/UTF8" => "subrip",
        "S_TEXT/SSA" | "S_TEXT/ASS" | "S_SSA" | "S_ASS" => "ass",
        "S_TEXT/WEBVTT" => "webvtt",
        "S_VOBSUB" => "dvd_subtitle",
        "S_HDMV/PGS" => "hdmv_pgs_subtitle",
        "S_DVBSUB" => "dvb_subtitle",
        id if id.starts_with("V_REAL/") || id.starts_with("A_REAL/") => "real",
        _ => return None,
    })
}

/// Matroska CodecID and CodecPrivate for a track; `webm` restricts to WebM's codecs.
pub fn codec_id_and_private(index: usize, track: &Track, webm: bool) -> Result<(&'static str, Bytes), MuxError> {
    let unsupported = |reason: &str| MuxError::Unsupported {
        track: index,
        codec: track.codec.name(),
        format: if webm { "webm" } else { "matroska" },
        reason: reason.to_string(),
    };
    let (id, private) = match &track.codec {
        CodecConfig::Vp8 { .. } => ("V_VP8", Bytes::new()),
        CodecConfig::Vp9 { .. } => ("V_VP9", Bytes::new()),
        CodecConfig::Av1 { av1c, .. } => ("V_AV1", av1c.clone()),
        CodecConfig::Opus { head } => ("A_OPUS", Bytes::from(head.to_opus_head())),
        CodecConfig::H264 { avcc, .. } if !webm => ("V_MPEG4/ISO/AVC", avcc.clone()),
        CodecConfig::Hevc { hvcc, .. } if !webm => ("V_MPEGH/ISO/HEVC", hvcc.clone()),
        CodecConfig::Aac { asc, .. } if !webm => ("A_AAC", asc.clone()),
        CodecConfig::Pcm { pcm } if !webm => {
            let id = match (pcm.float, pcm.little_endian) {
                (true, _) => "A_PCM/FLOAT/IEEE",
                (false, true) => "A_PCM/INT/LIT",
                (false, false) => "A_PCM/INT/BIG",
            };
            (id, Bytes::new())
        }
        CodecConfig::Audio { codec: AudioCodec::Vorbis, config, .. } => ("A_VORBIS", config.clone()),
        CodecConfig::Audio { codec: AudioCodec::Mpeg4Audio { .. }, .. } => {
            return Err(unsupported("Matroska has no codec ID for MPEG-4 audio other than AAC that players read"))
        }
        CodecConfig::Audio { codec, config, .. } if !webm => match codec {
            AudioCodec::Flac => ("A_FLAC", Bytes::from([&flac::MARKER[..], config].concat())),
            AudioCodec::Mp3 => ("A_MPEG/L3", Bytes::new()),
            AudioCodec::Ac3 => ("A_AC3", Bytes::new()),
            AudioCodec::Eac3 => ("A_EAC3", Bytes::new()),
            AudioCodec::Dts => ("A_DTS", Bytes::new()),
            AudioCodec::Alac => ("A_ALAC", config.clone()),
            AudioCodec::Vorbis | AudioCodec::Mpeg4Audio { .. } => {
                return Err(unsupported("no Matroska codec ID for it"))
            }
        },
        CodecConfig::H264 { .. }
        | CodecConfig::Hevc { .. }
        | CodecConfig::Aac { .. }
        | CodecConfig::Pcm { .. }
        | CodecConfig::Audio { .. } => {
            return Err(unsupported("WebM carries only VP8, VP9, AV1, Opus and Vorbis; write Matroska (mkv) instead"))
        }
        CodecConfig::Unknown { fourcc, .. } => {
            let entry = String::from_utf8_lossy(fourcc).into_owned();
            return Err(unsupported(&format!("no Matroska codec ID for its MP4 sample entry '{entry}'")));
        }
    };
    Ok((id, private))
}

/// Whether every track can go in WebM.
pub fn webm_compatible(tracks: &[Track]) -> bool {
    tracks.iter().enumerate().all(|(i, t)| codec_id_and_private(i, t, true).is_ok())
}

/// The codec delay of a track in nanoseconds, from the track's edit (audio the edit trims
/// at the start, such as AAC priming or Opus pre-skip), or an Opus track's pre-skip.
///
/// An edit within one tick of an Opus track's pre-skip is the pre-skip, written exactly:
/// a Matroska input's 6.5 ms CodecDelay read in 1 ms ticks must not come back as 6 ms.
pub fn codec_delay_ns(track: &Track) -> u64 {
    let timescale = u128::from(track.timescale.max(1));
    let edit_ns = match track.edits.first() {
        Some(e) if track.kind == TrackKind::Audio && e.media_time_ticks > 0 => {
            Some((e.media_time_ticks as u128 * 1_000_000_000 / timescale).min(u64::MAX as u128) as u64)
        }
        _ => None,
    };
    match (&track.codec, edit_ns) {
        (CodecConfig::Opus { head }, edit) => {
            let pre_skip = u64::from(head.pre_skip) * 1_000_000_000 / 48_000;
            match edit {
                Some(ns) if u128::from(ns.abs_diff(pre_skip)) * timescale >= 1_000_000_000 => ns,
                _ => pre_skip,
            }
        }
        (_, Some(ns)) => ns,
        _ => 0,
    }
}

/// Writes a Tracks element for `tracks` (TrackNumber = index + 1).
pub fn write_tracks(buf: &mut BytesMut, tracks: &[Track], webm: bool) -> Result<(), MuxError> {
    let mut entries = Vec::new();
    for (i, t) in tracks.iter().enumerate() {
        let (codec_id, private) = codec_id_and_private(i, t, webm)?;
        entries.push((codec_id, private));
    }
    put_master(buf, ids::TRACKS, |b| {
        for (i, (t, (codec_id, private))) in tracks.iter().zip(entries).enumerate() {
            put_master(b, ids::TRACK_ENTRY, |e| {
                put_uint(e, ids::TRACK_NUMBER, i as u64 + 1);
                put_uint(e, ids::TRACK_UID, i as u64 + 1);
                let kind = match t.kind {
                    TrackKind::Video => 1,
                    TrackKind::Audio => 2,
                    TrackKind::Other => 0x11,
                };
                put_uint(e, ids::TRACK_TYPE, kind);
                put_uint(e, ids::FLAG_LACING, 0);
                super::meta::put_entry(e, &t.meta, t.language_str());
                put_string(e, ids::CODEC_ID, codec_id);
                if !private.is_empty() {
                    put_element(e, ids::CODEC_PRIVATE, &private);
                }
                let delay = codec_delay_ns(t);
                if delay > 0 || matches!(t.codec, CodecConfig::Opus { .. }) {
                    put_uint(e, ids::CODEC_DELAY, delay);
                }
                if let CodecConfig::Opus { .. } = t.codec {
                    put_uint(e, ids::SEEK_PRE_ROLL, 80_000_000);
                }
                if let Some(d) = t.codec.dimensions() {
                    put_master(e, ids::VIDEO, |v| {
                        put_uint(v, ids::PIXEL_WIDTH, d.width as u64);
                        put_uint(v, ids::PIXEL_HEIGHT, d.height as u64);
                        super::meta::put_video(v, &t.meta, d);
                    });
                }
                if let Some(AudioFormat { sample_rate, channels }) = t.codec.audio_format() {
                    put_master(e, ids::AUDIO, |a| {
                        put_float(a, ids::SAMPLING_FREQUENCY, sample_rate as f64);
                        put_uint(a, ids::CHANNELS, channels as u64);
                        if let CodecConfig::Pcm { pcm } = &t.codec {
                            put_uint(a, ids::BIT_DEPTH, pcm.bits_per_sample as u64);
                        }
                    });
                }
            });
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracks_read_back() {
        let head = opus::OpusHead::from_opus_head(&[
            b'O', b'p', b'u', b's', b'H', b'e', b'a', b'd', 1, 2, 0x38, 0x01, 0x80, 0xBB, 0, 0, 0, 0, 0,
        ])
        .unwrap();
        let opus_track = Track {
            input_id: 1,
            kind: TrackKind::Audio,
            timescale: 48_000,
            codec: CodecConfig::Opus { head },
            language: *b"eng",
            edits: vec![],
            movie_timescale: 1000,
            origin: ParamOrigin::Stream,
            mp4_sample_entry: None,
            meta: Default::default(),
        };
        let vp8 = Track {
            kind: TrackKind::Video,
            timescale: 1000,
            codec: CodecConfig::Vp8 { dims: Dimensions { width: 640, height: 360 } },
            ..opus_track.clone()
        };
        let mut buf = BytesMut::new();
        write_tracks(&mut buf, &[vp8, opus_track], true).unwrap();
        let entries = parse_tracks(&buf[5..], 5).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!((entries[0].codec_id.as_str(), entries[0].width, entries[0].height), ("V_VP8", 640, 360));
        assert_eq!(entries[1].codec_id, "A_OPUS");
        assert_eq!(entries[1].codec_delay_ns, 312 * 1_000_000_000 / 48_000);
        assert_eq!(entries[1].language.as_deref(), Some("eng"));
        let info = SegmentInfo::default();
        let t = entries[1].to_track(&info, entries[1].codec(None).unwrap());
        assert_eq!((t.timescale, t.edits[0].media_time_ticks), (48_000, 312));
    }

    #[test]
    fn h264_is_refused_in_webm() {
        let t = Track {
            input_id: 1,
            kind: TrackKind::Video,
            timescale: 1000,
            codec: CodecConfig::H264 { avcc: Bytes::new(), dims: Dimensions::default() },
            language: *b"und",
            edits: vec![],
            movie_timescale: 1000,
            origin: ParamOrigin::Stream,
            mp4_sample_entry: None,
            meta: Default::default(),
        };
        assert!(matches!(codec_id_and_private(0, &t, true), Err(MuxError::Unsupported { .. })));
        assert!(codec_id_and_private(0, &t, false).is_ok());
    }
}
