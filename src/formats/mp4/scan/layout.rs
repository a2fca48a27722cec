//! What a reference recording says about the packets of a stream made with the same
//! settings: per track, how its packets are framed, how long each lasts, how big they run.

use crate::codecs::access_unit::{AuRules, NalSyntax};
use crate::codecs::{aac, h264, hevc, CodecConfig};
use crate::formats::mp4::boxes::MAX_SAMPLE_SIZE;
use crate::model::Track;

/// Largest video NAL unit accepted, as a multiple of the reference's largest sample (a
/// scene change or a keyframe at a higher bitrate can be much larger than what a one-second
/// reference holds).
const NAL_SIZE_HEADROOM: u32 = 16;
/// Floor of the largest accepted NAL unit.
const MIN_MAX_NAL_SIZE: u32 = 4 << 20;
/// Largest AAC frame: 6144 bits per channel (ISO/IEC 14496-3 §4.5.3.2).
const AAC_MAX_FRAME_BYTES_PER_CHANNEL: u32 = 768;
/// Smallest Opus packet: the TOC byte alone (RFC 6716 §3.2).
const OPUS_MIN_PACKET: u32 = 1;
/// Largest Opus packet per RFC 6716 §3.2.1 (48 frames of 1275 bytes), capped far lower in
/// practice; recorders stay under a few kilobytes.
const OPUS_MAX_PACKET: u32 = 1275 * 3;

/// How a track's packets can be found in media bytes without an index.
#[derive(Clone, Debug, PartialEq)]
pub enum Framing {
    /// Length-prefixed H.264/HEVC NAL units: a packet is an access unit.
    Nal { rules: AuRules, config: CodecConfig },
    /// Raw AAC-LC frames, back to back, no lengths: boundaries from the frame syntax.
    Aac { channel_config: u8, sf_index: usize },
    /// Opus packets, back to back, no lengths: boundaries where the TOC byte matches the
    /// reference's (configuration and stereo flag).
    Opus { toc_mask: u8, toc: u8 },
    /// Uncompressed audio: packets of a fixed size, `packet_bytes`, made of sample frames
    /// of `frame_bytes` (one sample of every channel).
    Pcm { packet_bytes: u32, frame_bytes: u32 },
}

impl Framing {
    /// Whether packets of this track carry their own length (video, PCM) or must be split
    /// out of a run by their syntax (AAC, Opus).
    pub fn self_delimiting(&self) -> bool {
        matches!(self, Framing::Nal { .. } | Framing::Pcm { .. })
    }
}

/// A track of the stream, as the reference describes it.
#[derive(Clone, Debug, PartialEq)]
pub struct TrackLayout {
    pub framing: Framing,
    pub timescale: u32,
    /// The usual packet duration (the most common one in the reference).
    pub packet_ticks: u32,
    /// Where presentation starts in the media timeline (the edit list's media time): the
    /// interleaving of tracks in the file follows decode time minus this.
    pub media_time_ticks: i64,
    /// The first packet's composition offset (a B-frame stream's initial delay).
    pub first_cts_ticks: i64,
    /// Smallest and largest packet to accept.
    pub min_size: u32,
    pub max_size: u32,
    /// Mean and standard deviation of the reference's packet sizes.
    pub mean_size: f64,
    pub sd_size: f64,
}

/// What a reference's packets of one track look like.
#[derive(Clone, Debug, PartialEq)]
pub struct PacketStats {
    pub count: usize,
    /// The most common duration.
    pub packet_ticks: u32,
    /// The first packet's composition offset.
    pub first_cts_ticks: i64,
    pub max_size: u32,
    pub mean_size: f64,
    pub sd_size: f64,
    /// The first byte of the first packet (an Opus TOC).
    pub first_byte: Option<u8>,
}

impl PacketStats {
    /// From (size, duration, composition offset) per packet in decode order.
    pub fn from_packets(packets: impl Iterator<Item = (u32, u32, i64)>, first_byte: Option<u8>) -> Self {
        let mut sizes = Vec::new();
        let mut durations = std::collections::HashMap::<u32, usize>::new();
        let mut first_cts = None;
        for (size, duration, cts) in packets {
            sizes.push(size);
            *durations.entry(duration).or_default() += 1;
            first_cts.get_or_insert(cts);
        }
        let n = sizes.len().max(1) as f64;
        let mean_size = sizes.iter().map(|&s| f64::from(s)).sum::<f64>() / n;
        let sd_size = (sizes.iter().map(|&s| (f64::from(s) - mean_size).powi(2)).sum::<f64>() / n).sqrt();
        PacketStats {
            count: sizes.len(),
            packet_ticks: durations.iter().max_by_key(|&(d, n)| (*n, *d)).map_or(1, |(d, _)| *d).max(1),
            first_cts_ticks: first_cts.unwrap_or(0),
            max_size: sizes.iter().copied().max().unwrap_or(0),
            mean_size,
            sd_size,
            first_byte,
        }
    }
}

/// Why a stream cannot be split with this reference.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum LayoutError {
    #[error("track {track}: {codec} packets cannot be found without an index: {reason}")]
    Unsupported { track: usize, codec: &'static str, reason: String },
    #[error("track {track}: the reference holds no packets to learn the layout from")]
    Empty { track: usize },
}

/// The layout of every track of the stream, in output track order.
#[derive(Clone, Debug, PartialEq)]
pub struct ScanLayout {
    pub tracks: Vec<TrackLayout>,
}

impl ScanLayout {
    /// `stats[i]` describes the reference's packets of `tracks[i]`.
    pub fn new(tracks: &[Track], stats: &[&PacketStats]) -> Result<Self, LayoutError> {
        let layouts = tracks
            .iter()
            .zip(stats)
            .enumerate()
            .map(|(i, (t, s))| track_layout(i + 1, t, s))
            .collect::<Result<_, _>>()?;
        Ok(ScanLayout { tracks: layouts })
    }
}

impl ScanLayout {
    /// "h264, aac", for messages.
    pub fn describe(&self) -> String {
        self.tracks
            .iter()
            .map(|t| match &t.framing {
                Framing::Nal { rules, .. } => match rules.syntax {
                    NalSyntax::H264 => "h264",
                    NalSyntax::Hevc => "hevc",
                },
                Framing::Aac { .. } => "aac",
                Framing::Opus { .. } => "opus",
                Framing::Pcm { .. } => "pcm",
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn track_layout(number: usize, track: &Track, stats: &PacketStats) -> Result<TrackLayout, LayoutError> {
    let unsupported = |reason: &str| LayoutError::Unsupported {
        track: number,
        codec: track.codec.name(),
        reason: reason.to_string(),
    };
    if stats.count == 0 {
        return Err(LayoutError::Empty { track: number });
    }
    let (packet_ticks, ref_max) = (stats.packet_ticks, stats.max_size);
    let (framing, min_size, max_size) = match &track.codec {
        CodecConfig::H264 { avcc, .. } => {
            let config = h264::AvcConfig::parse_bytes(avcc).map_err(|e| unsupported(&e.to_string()))?;
            let rules = nal_rules(NalSyntax::H264, config.nal_length_size, ref_max);
            (Framing::Nal { rules, config: track.codec.clone() }, 1, MAX_SAMPLE_SIZE)
        }
        CodecConfig::Hevc { hvcc, .. } => {
            let config = hevc::HvcConfig::parse_bytes(hvcc).map_err(|e| unsupported(&e.to_string()))?;
            let rules = nal_rules(NalSyntax::Hevc, config.nal_length_size, ref_max);
            (Framing::Nal { rules, config: track.codec.clone() }, 1, MAX_SAMPLE_SIZE)
        }
        CodecConfig::Aac { asc, .. } => {
            let asc = aac::AudioSpecificConfig::parse(asc).map_err(|e| unsupported(&e.to_string()))?;
            if asc.object_type != 2 || asc.sbr || asc.ps || !matches!(asc.channel_configuration, 1 | 2) {
                return Err(unsupported("only mono or stereo AAC-LC frames can be told apart by their syntax"));
            }
            let sf_index = aac::SAMPLE_RATES
                .iter()
                .position(|&r| r == asc.sample_rate)
                .ok_or_else(|| unsupported("sample rate without a standard index"))?;
            let hard_max = AAC_MAX_FRAME_BYTES_PER_CHANNEL * u32::from(asc.channel_configuration);
            // An encoder at a steady bitrate keeps frames within a few times its average;
            // the bit reservoir allows up to twice the largest the reference shows.
            let max = (ref_max.saturating_mul(2)).max((stats.mean_size * 3.0) as u32).clamp(64, hard_max);
            (Framing::Aac { channel_config: asc.channel_configuration, sf_index }, 2, max)
        }
        CodecConfig::Opus { .. } => {
            // Packets of one stream share the TOC's configuration and stereo flag; the
            // frame count code may differ.
            let mask = 0xFC;
            let toc = stats.first_byte.ok_or_else(|| unsupported("the reference's first packet could not be read"))?;
            let max = (ref_max.saturating_mul(3)).clamp(OPUS_MIN_PACKET, OPUS_MAX_PACKET);
            (Framing::Opus { toc_mask: mask, toc: toc & mask }, OPUS_MIN_PACKET, max)
        }
        CodecConfig::Pcm { pcm } => {
            let packet_bytes = packet_ticks.saturating_mul(pcm.bytes_per_frame());
            if packet_bytes == 0 || packet_bytes > MAX_SAMPLE_SIZE {
                return Err(unsupported("no usable packet size"));
            }
            (Framing::Pcm { packet_bytes, frame_bytes: pcm.bytes_per_frame().max(1) }, packet_bytes, packet_bytes)
        }
        _ => return Err(unsupported("only H.264, HEVC, AAC, Opus and PCM can be split without an index")),
    };
    Ok(TrackLayout {
        framing,
        timescale: track.timescale,
        packet_ticks,
        media_time_ticks: track.edits.iter().find(|e| e.media_time_ticks >= 0).map_or(0, |e| e.media_time_ticks),
        first_cts_ticks: stats.first_cts_ticks,
        min_size,
        max_size,
        mean_size: stats.mean_size,
        sd_size: stats.sd_size,
    })
}

fn nal_rules(syntax: NalSyntax, length_size: u8, reference_max: u32) -> AuRules {
    let max = reference_max.saturating_mul(NAL_SIZE_HEADROOM).clamp(MIN_MAX_NAL_SIZE, MAX_SAMPLE_SIZE);
    AuRules { syntax, length_size, max_nal_size: max as usize }
}
