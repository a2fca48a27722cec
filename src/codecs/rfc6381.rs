//! RFC 6381 codec strings (`avc1.64001f`, `mp4a.40.2`, `Opus`...): what an HLS
//! multivariant playlist's `CODECS` attribute and an MSE `isTypeSupported` call name.
//!
//! Built from the typed configuration records, as the ISO/IEC 14496-15 (AVC, HEVC), AV1-ISOBMFF,
//! VP-codec-ISOBMFF and MP4RA registrations define them. Written by hand: the few
//! lines per codec do not warrant a dependency.

use super::av1::Av1Config;
use super::h264::AvcConfig;
use super::hevc::HvcConfig;
use super::vp9::VpcConfig;
use super::{AudioCodec, CodecConfig};

/// The codec string of a track whose MP4 sample entry is `fourcc` (`avc1`/`avc3`,
/// `hvc1`/`hev1`...) with `codec`'s parameters; `None` when HLS players have no name for
/// it (PCM, Vorbis, VP8...) or its record does not parse.
pub fn codec_string(fourcc: [u8; 4], codec: &CodecConfig) -> Option<String> {
    let entry = std::str::from_utf8(&fourcc).ok()?;
    Some(match codec {
        CodecConfig::H264 { avcc, .. } => {
            let c = AvcConfig::parse(avcc).ok()?;
            format!("{entry}.{:02x}{:02x}{:02x}", c.profile_idc, c.profile_compatibility, c.level_idc)
        }
        CodecConfig::Hevc { hvcc, .. } => hevc(entry, &HvcConfig::parse(hvcc).ok()?),
        CodecConfig::Av1 { av1c, .. } => {
            let c = Av1Config::parse(av1c).ok()?;
            let depth = if c.twelve_bit { 12 } else if c.high_bitdepth { 10 } else { 8 };
            let tier = if c.seq_tier_0 != 0 { 'H' } else { 'M' };
            format!("av01.{}.{:02}{tier}.{depth:02}", c.seq_profile, c.seq_level_idx_0)
        }
        CodecConfig::Vp9 { vpcc, dims } => {
            let c = VpcConfig::parse(vpcc).ok()?;
            let level = if c.level == 0 { vp9_level(dims) } else { c.level };
            format!("vp09.{:02}.{level:02}.{:02}", c.profile, c.bit_depth)
        }
        CodecConfig::Aac { asc, .. } => format!("mp4a.40.{}", audio_object_type(asc)?),
        CodecConfig::Opus { .. } => "Opus".into(),
        CodecConfig::Audio { codec, .. } => match codec {
            AudioCodec::Flac => "fLaC".into(),
            AudioCodec::Mp3 => "mp4a.40.34".into(),
            AudioCodec::Ac3 => "ac-3".into(),
            AudioCodec::Eac3 => "ec-3".into(),
            _ => return None,
        },
        CodecConfig::Vp8 { .. } | CodecConfig::Pcm { .. } | CodecConfig::Unknown { .. } => return None,
    })
}

/// The lowest VP9 level whose picture size holds `dims`, for a record that says 0
/// (unknown, as a `vpcC` made from WebM is): players refuse level 0 (Chromium's
/// `isTypeSupported("video/mp4; codecs=\"vp09.00.00.08\"")` is false).
fn vp9_level(dims: &super::Dimensions) -> u8 {
    // (level × 10, most luma samples per picture), VP9 bitstream spec annex A.
    const LEVELS: [(u8, u64); 14] = [
        (10, 36_864),
        (11, 73_728),
        (20, 122_880),
        (21, 245_760),
        (30, 552_960),
        (31, 983_040),
        (40, 2_228_224),
        (41, 2_228_224),
        (50, 8_912_896),
        (51, 8_912_896),
        (52, 8_912_896),
        (60, 35_651_584),
        (61, 35_651_584),
        (62, 35_651_584),
    ];
    let samples = u64::from(dims.width) * u64::from(dims.height);
    LEVELS.iter().find(|l| samples <= l.1).map_or(62, |l| l.0)
}

/// `hvc1.<space><profile>.<compatibility, bit-reversed>.<tier><level>.<constraint bytes>`
/// (ISO/IEC 14496-15 E.3): trailing zero constraint bytes are left out.
fn hevc(entry: &str, c: &HvcConfig) -> String {
    let space = ["", "A", "B", "C"][usize::from(c.general_profile_space & 3)];
    let tier = if c.general_tier_flag { 'H' } else { 'L' };
    let mut s = format!(
        "{entry}.{space}{}.{:x}.{tier}{}",
        c.general_profile_idc,
        c.general_profile_compatibility_flags.reverse_bits(),
        c.general_level_idc
    );
    let bytes = c.general_constraint_indicator_flags.to_be_bytes();
    let constraints = &bytes[2..];
    let used = constraints.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    for b in &constraints[..used] {
        s.push_str(&format!(".{b:02x}"));
    }
    s
}

/// The AudioSpecificConfig's first audio object type (5 bits, or 6 more after the escape
/// value 31): 2 for AAC-LC, 5 for HE-AAC with explicit SBR.
fn audio_object_type(asc: &[u8]) -> Option<u8> {
    let first = *asc.first()? >> 3;
    if first != 31 {
        return Some(first);
    }
    let second = *asc.get(1)?;
    Some(32 + (((asc[0] & 7) << 3) | (second >> 5)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codecs::{AudioFormat, Dimensions};
    use bytes::Bytes;

    #[test]
    fn aac_object_types() {
        assert_eq!(audio_object_type(&[0x12, 0x10]), Some(2));
        assert_eq!(audio_object_type(&[0x2b, 0x92]), Some(5));
        assert_eq!(audio_object_type(&[0xf8, 0x20]), Some(33));
        assert_eq!(audio_object_type(&[0xf8]), None);
        assert_eq!(audio_object_type(&[]), None);
    }

    #[test]
    fn strings_of_common_tracks() {
        let aac = CodecConfig::Aac {
            asc: Bytes::from_static(&[0x12, 0x10]),
            format: AudioFormat { sample_rate: 44_100, channels: 2 },
        };
        assert_eq!(codec_string(*b"mp4a", &aac).as_deref(), Some("mp4a.40.2"));
        let vp8 = CodecConfig::Vp8 { dims: Dimensions { width: 2, height: 2 } };
        assert_eq!(codec_string(*b"vp08", &vp8), None);
        let avcc = Bytes::from_static(crate::codecs::h264::tests::AVCC_1000X562);
        let h264 = CodecConfig::H264 { avcc, dims: Dimensions { width: 1000, height: 562 } };
        assert_eq!(codec_string(*b"avc1", &h264).as_deref(), Some("avc1.64001f"));
    }

    #[test]
    fn vp9_level_from_the_picture_size_when_the_record_has_none() {
        let record = |level| VpcConfig {
            profile: 0,
            level,
            bit_depth: 8,
            chroma_subsampling: crate::codecs::vp9::SUBSAMPLING_420_COLOCATED,
            video_full_range: false,
            colour_primaries: 2,
            transfer_characteristics: 2,
            matrix_coefficients: 2,
            codec_init: Bytes::new(),
        };
        let vp9 = |level, width, height| CodecConfig::Vp9 {
            vpcc: VpcConfig::to_bytes(&record(level)),
            dims: Dimensions { width, height },
        };
        assert_eq!(codec_string(*b"vp09", &vp9(0, 640, 360)).as_deref(), Some("vp09.00.21.08"));
        assert_eq!(codec_string(*b"vp09", &vp9(0, 1920, 1080)).as_deref(), Some("vp09.00.40.08"));
        assert_eq!(codec_string(*b"vp09", &vp9(0, 16384, 16384)).as_deref(), Some("vp09.00.62.08"));
        assert_eq!(codec_string(*b"vp09", &vp9(31, 640, 360)).as_deref(), Some("vp09.00.31.08"));
    }
}
