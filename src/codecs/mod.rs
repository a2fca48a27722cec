//! Codec configuration records and bitstream helpers.
//!
//! [`CodecConfig`] is the typed form of a track's codec parameters. Each variant keeps the
//! configuration record exactly as a container stores it (`Bytes`, sliced from the input)
//! next to the fields livemux needs, so that a remux can write the record back byte for
//! byte while validation and `probe` work on parsed values.

pub mod aac;
pub mod ac3;
pub mod access_unit;
pub mod alac;
pub mod av1;
pub mod bits;
pub mod flac;
pub mod h264;
pub mod hevc;
pub mod inband;
// Only `livemux probe` names profiles and levels.
#[cfg_attr(not(feature = "cli"), allow(dead_code))]
pub mod names;
pub mod opus;
pub mod pcm;
pub mod poc;
pub mod rfc6381;
pub mod slices;
pub mod vorbis;
pub mod vp9;

use std::sync::{Arc, OnceLock};

use bytes::Bytes;

/// A record's parameter sets (H.264 and HEVC), each parsed on first use and then shared by
/// everything that reads them from the record: its dimensions, the slice check and picture
/// order count derivation. Clones share the parsed sets; two records are equal by their
/// fields, whatever has been parsed of them.
#[derive(Debug)]
pub(crate) struct ParsedSets<S, P> {
    /// The record's first SPS.
    pub(crate) first_sps: OnceLock<Result<Arc<S>, CodecError>>,
    /// Every SPS and PPS of the record.
    pub(crate) sets: OnceLock<Result<P, CodecError>>,
}

impl<S, P> Default for ParsedSets<S, P> {
    fn default() -> Self {
        ParsedSets { first_sps: OnceLock::new(), sets: OnceLock::new() }
    }
}

impl<S, P: Clone> Clone for ParsedSets<S, P> {
    fn clone(&self) -> Self {
        ParsedSets { first_sps: self.first_sps.clone(), sets: self.sets.clone() }
    }
}

impl<S, P> PartialEq for ParsedSets<S, P> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl<S, P> Eq for ParsedSets<S, P> {}

/// Why a configuration record or bitstream could not be used.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum CodecError {
    #[error("{what}: record is {len} bytes, needs at least {need}")]
    Truncated { what: &'static str, len: usize, need: usize },
    #[error("{what}: {reason}")]
    Invalid { what: &'static str, reason: String },
    #[error("{what}: unsupported {reason}")]
    Unsupported { what: &'static str, reason: String },
}

/// Width and height of a video track in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize)]
pub struct Dimensions {
    pub width: u32,
    pub height: u32,
}

/// Sample rate and channel count of an audio track.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize)]
pub struct AudioFormat {
    pub sample_rate: u32,
    pub channels: u16,
}

/// Audio codecs livemux passes through with their configuration as one blob
/// ([`CodecConfig::Audio`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum AudioCodec {
    /// Config: Matroska's Xiph-laced identification, comment and setup headers.
    Vorbis,
    /// Config: the FLAC metadata blocks (STREAMINFO first), without the `fLaC` marker.
    Flac,
    /// MPEG-1/2 Layer III. No config.
    Mp3,
    /// Config: the `dac3` payload (3 bytes).
    Ac3,
    /// Config: the `dec3` payload.
    Eac3,
    /// DTS Coherent Acoustics. No config (Matroska `A_DTS`; MP4 `dtsc` entries are copied).
    Dts,
    /// Config: the 24-byte ALAC magic cookie.
    Alac,
    /// MPEG-4 audio that is not AAC (ALS, USAC, CELP, ...), by audio object type.
    /// Config: the AudioSpecificConfig.
    Mpeg4Audio { object_type: u8 },
}

impl AudioCodec {
    /// Short name as FFmpeg prints it.
    pub fn name(&self) -> &'static str {
        match self {
            AudioCodec::Vorbis => "vorbis",
            AudioCodec::Flac => "flac",
            AudioCodec::Mp3 => "mp3",
            AudioCodec::Ac3 => "ac3",
            AudioCodec::Eac3 => "eac3",
            AudioCodec::Dts => "dts",
            AudioCodec::Alac => "alac",
            AudioCodec::Mpeg4Audio { object_type: 36 } => "mpeg-4 als",
            AudioCodec::Mpeg4Audio { object_type: 42 } => "mpeg-4 usac",
            AudioCodec::Mpeg4Audio { object_type: 32..=34 } => "mpeg-4 layer 1-3",
            AudioCodec::Mpeg4Audio { .. } => "mpeg-4 audio (not aac)",
        }
    }

    /// Checks `config` and reads the format it gives, when it gives one.
    pub fn parse_config(&self, config: &[u8]) -> Result<Option<AudioFormat>, CodecError> {
        Ok(match self {
            AudioCodec::Vorbis => Some(vorbis::parse_private(config)?.format),
            AudioCodec::Flac => Some(flac::parse_blocks(config)?.audio_format()),
            AudioCodec::Ac3 => Some(ac3::Dac3::parse(config)?.audio_format()),
            AudioCodec::Eac3 => Some(ac3::Dec3::parse(config)?.audio_format()),
            AudioCodec::Alac => Some(alac::AlacConfig::parse(config)?.audio_format()),
            AudioCodec::Mpeg4Audio { .. } => Some(aac::AudioSpecificConfig::parse(config)?.audio_format()),
            AudioCodec::Mp3 | AudioCodec::Dts => None,
        })
    }
}

/// A track's codec and its parameters.
#[derive(Clone, Debug, PartialEq)]
pub enum CodecConfig {
    /// `avcC` payload (AVCDecoderConfigurationRecord).
    H264 {
        avcc: Bytes,
        dims: Dimensions,
    },
    /// `hvcC` payload (HEVCDecoderConfigurationRecord).
    Hevc {
        hvcc: Bytes,
        dims: Dimensions,
    },
    /// `av1C` payload (AV1CodecConfigurationRecord, with config OBUs).
    Av1 {
        av1c: Bytes,
        dims: Dimensions,
    },
    /// `vpcC` payload after its version and flags (VPCodecConfigurationRecord).
    Vp9 {
        vpcc: Bytes,
        dims: Dimensions,
    },
    Vp8 {
        dims: Dimensions,
    },
    /// AudioSpecificConfig (the DecoderSpecificInfo of an `esds`).
    Aac {
        asc: Bytes,
        format: AudioFormat,
    },
    Opus {
        head: opus::OpusHead,
    },
    Pcm {
        pcm: pcm::PcmFormat,
    },
    /// Other audio codecs, passed through with their configuration (see [`AudioCodec`]
    /// for what `config` holds).
    Audio {
        codec: AudioCodec,
        config: Bytes,
        format: AudioFormat,
    },
    /// Anything else: carried through only when the container entry can be copied verbatim.
    Unknown {
        fourcc: [u8; 4],
        dims: Option<Dimensions>,
        audio: Option<AudioFormat>,
    },
}

impl CodecConfig {
    /// Short codec name as FFmpeg and players print it.
    pub fn name(&self) -> &'static str {
        match self {
            CodecConfig::H264 { .. } => "h264",
            CodecConfig::Hevc { .. } => "hevc",
            CodecConfig::Av1 { .. } => "av1",
            CodecConfig::Vp9 { .. } => "vp9",
            CodecConfig::Vp8 { .. } => "vp8",
            CodecConfig::Aac { .. } => "aac",
            CodecConfig::Opus { .. } => "opus",
            CodecConfig::Pcm { .. } => "pcm",
            CodecConfig::Audio { codec, .. } => codec.name(),
            CodecConfig::Unknown { .. } => "unknown",
        }
    }

    pub fn dimensions(&self) -> Option<Dimensions> {
        match self {
            CodecConfig::H264 { dims, .. }
            | CodecConfig::Hevc { dims, .. }
            | CodecConfig::Av1 { dims, .. }
            | CodecConfig::Vp9 { dims, .. }
            | CodecConfig::Vp8 { dims } => Some(*dims),
            CodecConfig::Unknown { dims, .. } => *dims,
            _ => None,
        }
    }

    pub fn audio_format(&self) -> Option<AudioFormat> {
        match self {
            CodecConfig::Aac { format, .. } => Some(*format),
            CodecConfig::Opus { head } => Some(AudioFormat { sample_rate: 48_000, channels: head.channels as u16 }),
            CodecConfig::Pcm { pcm } => Some(AudioFormat { sample_rate: pcm.sample_rate, channels: pcm.channels }),
            CodecConfig::Audio { format, .. } => Some(*format),
            CodecConfig::Unknown { audio, .. } => *audio,
            _ => None,
        }
    }

    /// Checks that the configuration record parses. A record that is all zeros, cut short
    /// or inconsistent is "unusable": recapture replaces it with a reference's.
    pub fn validate(&self) -> Result<(), CodecError> {
        match self {
            CodecConfig::H264 { avcc, .. } => h264::AvcConfig::parse(avcc).map(drop),
            CodecConfig::Hevc { hvcc, .. } => hevc::HvcConfig::parse(hvcc).map(drop),
            CodecConfig::Av1 { av1c, .. } => av1::Av1Config::parse(av1c).map(drop),
            CodecConfig::Vp9 { vpcc, .. } => vp9::VpcConfig::parse(vpcc).map(drop),
            CodecConfig::Aac { asc, .. } => aac::AudioSpecificConfig::parse(asc).map(drop),
            CodecConfig::Opus { head } => head.validate(),
            CodecConfig::Pcm { pcm } => pcm.validate(),
            CodecConfig::Audio { codec, config, .. } => codec.parse_config(config).map(drop),
            CodecConfig::Vp8 { .. } | CodecConfig::Unknown { .. } => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::access_unit::{access_unit, may_start_access_unit, starts_like_access_unit, AuRules, NalSyntax};
    use super::*;
    use proptest::collection::vec;
    use proptest::num::u8::ANY;

    // Every parser of codec configuration records and bitstream headers on arbitrary
    // bytes: an error is fine, a panic (index out of bounds, arithmetic overflow) is not.
    proptest::proptest! {
        #[test]
        fn config_parsers_never_panic(data in vec(ANY, 0..160)) {
            let b = Bytes::from(data.clone());
            let _ = h264::AvcConfig::parse(&data).map(|c| (c.to_bytes(), c.dimensions()));
            let _ = h264::parse_sps(&data);
            let _ = h264::first_mb_in_slice(&data);
            let _ = h264::annexb_nal_ranges(&data);
            let _ = hevc::HvcConfig::parse(&data).map(|c| (c.to_bytes(), c.dimensions(), c.missing_parameter_sets()));
            let _ = hevc::parse_sps(&data);
            let _ = av1::Av1Config::parse(&data).map(|c| (c.to_bytes(), c.dimensions()));
            let _ = av1::parse_sequence_header(&data);
            let _ = av1::config_from_sequence_header(&data);
            let _ = av1::obus(&data).take(64).count();
            let _ = av1::is_keyframe(&data);
            let _ = av1::sequence_header_from_obus(&data);
            let _ = vp9::VpcConfig::parse(&data).map(|c| c.to_bytes());
            let _ = vp9::superframe_index(&data);
            let _ = vp9::is_keyframe(&data);
            let _ = vp9::config_from_keyframe(&data);
            let _ = opus::OpusHead::from_dops(&data).map(|h| h.to_opus_head());
            let _ = opus::OpusHead::from_opus_head(&data).map(|h| h.to_dops());
            let _ = opus::packet_duration_48k(&data);
            let _ = pcm::PcmFormat::from_pcmc(&data, false, 2, 48_000);
            let _ = ac3::Dac3::from_frame(&data).map(|d| d.to_bytes());
            let _ = ac3::Dac3::parse(&data);
            let _ = ac3::Dec3::from_frame(&data).map(|d| d.to_bytes());
            let _ = ac3::Dec3::parse(&data).map(|d| (d.to_bytes(), d.audio_format()));
            let _ = ac3::Eac3Header::parse(&data).map(|h| h.bit_rate_kbps());
            let _ = aac::esds_any_decoder_specific_info(&data);
            let _ = flac::parse_blocks(&data);
            let _ = flac::blocks_of_private(&data);
            let _ = vorbis::parse_private(&data);
            let _ = alac::AlacConfig::parse(&data);
            let _ = aac::AudioSpecificConfig::parse(&data).map(|c| c.is_aac());
            for config in [
                CodecConfig::H264 { avcc: b.clone(), dims: Dimensions::default() },
                CodecConfig::Hevc { hvcc: b.clone(), dims: Dimensions::default() },
                CodecConfig::Av1 { av1c: b.clone(), dims: Dimensions::default() },
                CodecConfig::Vp9 { vpcc: b.clone(), dims: Dimensions::default() },
                CodecConfig::Aac { asc: b.clone(), format: AudioFormat::default() },
                CodecConfig::Audio { codec: AudioCodec::Vorbis, config: b.clone(), format: AudioFormat::default() },
                CodecConfig::Audio { codec: AudioCodec::Flac, config: b.clone(), format: AudioFormat::default() },
                CodecConfig::Audio { codec: AudioCodec::Ac3, config: b.clone(), format: AudioFormat::default() },
                CodecConfig::Audio { codec: AudioCodec::Eac3, config: b.clone(), format: AudioFormat::default() },
                CodecConfig::Audio { codec: AudioCodec::Alac, config: b.clone(), format: AudioFormat::default() },
                CodecConfig::Audio {
                    codec: AudioCodec::Mpeg4Audio { object_type: 36 },
                    config: b.clone(),
                    format: AudioFormat::default(),
                },
            ] {
                let _ = config.validate();
                let _ = inband::disagreement(&config, &data);
                let _ = inband::decide(&config, &config, &[&data, &data]);
            }
        }

        #[test]
        fn bitstream_walkers_never_panic(data in vec(ANY, 0..400), ls in 0u8..6, at_end in proptest::bool::ANY) {
            for syntax in [NalSyntax::H264, NalSyntax::Hevc] {
                let rules = AuRules { syntax, length_size: ls, max_nal_size: 1 << 20 };
                if matches!(ls, 1 | 2 | 4) {
                    let _ = access_unit(&data, &rules, at_end);
                    let _ = may_start_access_unit(&data, &rules);
                    let _ = starts_like_access_unit(&data, &rules);
                }
            }
            let _ = h264::length_prefixed(&data, ls).take(64).count();
            let nals: Vec<&[u8]> = data.chunks(37).collect();
            if let Ok(mut s) = poc::H264PocState::from_avcc(&data) {
                let _ = s.picture(&nals);
            }
            if let Ok(mut s) = poc::HevcPocState::from_hvcc(&data) {
                let _ = s.picture(&nals);
            }
        }
    }
}
