//! Names of codec profiles and levels, and of MP4 sample entries livemux does not parse,
//! as FFmpeg prints them (`ffprobe -show_streams`): what `livemux probe` shows.
//!
//! Everything here reads the typed configuration records of this module's siblings and
//! never fails: a record that does not parse, or a value with no name, gives `None`.

use super::{aac, av1, h264, hevc, vp9, CodecConfig};

/// A track's profile and level, by name ("High", "3.1").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProfileLevel {
    /// The profile ("High", "Main 10", "Profile 0", "LC"...), as FFmpeg names it.
    pub profile: Option<String>,
    /// The level as written in the codec's specification ("3.1", "1b", "5.1 High tier").
    pub level: Option<String>,
}

/// The profile and level of `config`, where its record says them.
pub fn profile_level(config: &CodecConfig) -> Option<ProfileLevel> {
    let pl = match config {
        CodecConfig::H264 { avcc, .. } => {
            let a = h264::AvcConfig::parse(avcc).ok()?;
            ProfileLevel {
                profile: h264_profile(a.profile_idc, a.profile_compatibility).map(str::to_string),
                level: h264_level(a.profile_idc, a.profile_compatibility, a.level_idc),
            }
        }
        CodecConfig::Hevc { hvcc, .. } => {
            let h = hevc::HvcConfig::parse(hvcc).ok()?;
            ProfileLevel {
                profile: hevc_profile(h.general_profile_idc, h.general_profile_compatibility_flags).map(str::to_string),
                level: hevc_level(h.general_level_idc, h.general_tier_flag),
            }
        }
        CodecConfig::Av1 { av1c, .. } => {
            let a = av1::Av1Config::parse(av1c).ok()?;
            ProfileLevel {
                profile: av1_profile(a.seq_profile).map(str::to_string),
                level: av1_level(a.seq_level_idx_0, a.seq_tier_0),
            }
        }
        CodecConfig::Vp9 { vpcc, .. } => {
            let v = vp9::VpcConfig::parse(vpcc).ok()?;
            ProfileLevel { profile: Some(format!("Profile {}", v.profile)), level: vp9_level(v.level) }
        }
        CodecConfig::Aac { asc, .. } => {
            let a = aac::AudioSpecificConfig::parse(asc).ok()?;
            ProfileLevel { profile: aac_profile(a.object_type, a.sbr, a.ps).map(str::to_string), level: None }
        }
        _ => return None,
    };
    (pl.profile.is_some() || pl.level.is_some()).then_some(pl)
}

/// H.264 `profile_idc` (with the constraint flags of `profile_compatibility`), as FFmpeg
/// names it.
pub fn h264_profile(profile_idc: u8, compatibility: u8) -> Option<&'static str> {
    let set1 = compatibility & 0x40 != 0;
    let set3 = compatibility & 0x10 != 0;
    Some(match profile_idc {
        66 if set1 => "Constrained Baseline",
        66 => "Baseline",
        77 => "Main",
        88 => "Extended",
        100 => "High",
        110 if set3 => "High 10 Intra",
        110 => "High 10",
        122 if set3 => "High 4:2:2 Intra",
        122 => "High 4:2:2",
        244 if set3 => "High 4:4:4 Intra",
        244 => "High 4:4:4 Predictive",
        44 => "CAVLC 4:4:4",
        118 => "Multiview High",
        128 => "Stereo High",
        _ => return None,
    })
}

/// H.264 `level_idc` as the specification writes it ("3.1"; "1b" for level_idc 9, or 11
/// with constraint_set3 in the Baseline, Main and Extended profiles).
pub fn h264_level(profile_idc: u8, compatibility: u8, level_idc: u8) -> Option<String> {
    let set3 = compatibility & 0x10 != 0;
    match level_idc {
        0 => None,
        9 => Some("1b".into()),
        11 if set3 && matches!(profile_idc, 66 | 77 | 88) => Some("1b".into()),
        l => Some(format!("{}.{}", l / 10, l % 10)),
    }
}

/// HEVC `general_profile_idc` (or, when it is 0, the first compatibility flag set), as
/// FFmpeg names it.
pub fn hevc_profile(profile_idc: u8, compatibility_flags: u32) -> Option<&'static str> {
    // general_profile_compatibility_flag[j] is bit 31 - j of the 32-bit field.
    let idc =
        if profile_idc == 0 { (1..32u8).find(|j| compatibility_flags & (1u32 << (31 - j)) != 0)? } else { profile_idc };
    Some(match idc {
        1 => "Main",
        2 => "Main 10",
        3 => "Main Still Picture",
        4 => "Rext",
        9 => "SCC",
        _ => return None,
    })
}

/// HEVC `general_level_idc` (30 times the level): "4.1", "5.1 High tier".
pub fn hevc_level(level_idc: u8, high_tier: bool) -> Option<String> {
    if level_idc == 0 {
        return None;
    }
    let tier = if high_tier { " High tier" } else { "" };
    Some(format!("{}.{}{tier}", level_idc / 30, level_idc % 30 / 3))
}

/// AV1 `seq_profile`.
pub fn av1_profile(seq_profile: u8) -> Option<&'static str> {
    Some(match seq_profile {
        0 => "Main",
        1 => "High",
        2 => "Professional",
        _ => return None,
    })
}

/// AV1 `seq_level_idx` (level X.Y is `(X - 2) * 4 + Y`; 31 means no level constraint).
pub fn av1_level(seq_level_idx: u8, tier: u8) -> Option<String> {
    if seq_level_idx >= 24 {
        return None;
    }
    let tier = if tier != 0 { " High tier" } else { "" };
    Some(format!("{}.{}{tier}", 2 + seq_level_idx / 4, seq_level_idx % 4))
}

/// VP9 level from `vpcC` (10 times the level; 0 when not given).
pub fn vp9_level(level: u8) -> Option<String> {
    (level != 0).then(|| format!("{}.{}", level / 10, level % 10))
}

/// MPEG-4 audio object type (with SBR and PS signaled), as FFmpeg names the AAC profiles.
pub fn aac_profile(object_type: u8, sbr: bool, ps: bool) -> Option<&'static str> {
    Some(match object_type {
        2 | 5 | 29 if ps => "HE-AACv2",
        2 | 5 if sbr => "HE-AAC",
        29 => "HE-AACv2",
        5 => "HE-AAC",
        1 => "Main",
        2 => "LC",
        3 => "SSR",
        4 => "LTP",
        23 => "LD",
        39 => "ELD",
        _ => return None,
    })
}

/// VP8's profile, from the first byte of a frame (its `version` field), as FFmpeg numbers
/// it ("0" to "3").
pub fn vp8_profile(first_byte: u8) -> &'static str {
    ["0", "1", "2", "3", "4", "5", "6", "7"][usize::from((first_byte >> 1) & 7)]
}

/// The codec of an MP4 sample entry livemux does not parse, by FFmpeg's name for it.
pub fn sample_entry_codec(fourcc: &[u8; 4]) -> Option<&'static str> {
    Some(match fourcc {
        b"mp4v" => "mpeg4",
        b"s263" | b"h263" => "h263",
        b"jpeg" | b"mjpa" | b"mjpb" => "mjpeg",
        b"apch" | b"apcn" | b"apcs" | b"apco" | b"ap4h" | b"ap4x" => "prores",
        b"dvh1" | b"dvhe" => "hevc",
        b"dva1" | b"dvav" => "h264",
        b"vvc1" | b"vvi1" => "vvc",
        b"mp4s" => "mpeg4 systems",
        b"tx3g" | b"text" => "mov_text",
        b"wvtt" => "webvtt",
        b"stpp" => "ttml",
        b"c608" => "eia_608",
        b"tmcd" => "timecode",
        b"ac-4" => "ac4",
        b"mha1" | b"mhm1" => "mpegh_3d_audio",
        b"samr" => "amr_nb",
        b"sawb" => "amr_wb",
        b"sowt" | b"twos" | b"lpcm" | b"in24" | b"in32" | b"fl32" | b"fl64" => "pcm",
        b"ulaw" => "pcm_mulaw",
        b"alaw" => "pcm_alaw",
        b"dtsc" | b"dtsh" | b"dtsl" | b"dtse" => "dts",
        b"mlpa" => "truehd",
        b"Opus" => "opus",
        b"fLaC" => "flac",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_as_ffmpeg_prints_them() {
        assert_eq!(h264_profile(66, 0xC0), Some("Constrained Baseline"));
        assert_eq!(h264_profile(100, 0), Some("High"));
        assert_eq!(h264_profile(244, 0), Some("High 4:4:4 Predictive"));
        assert_eq!(h264_level(100, 0, 31).as_deref(), Some("3.1"));
        assert_eq!(h264_level(66, 0x10, 11).as_deref(), Some("1b"));
        assert_eq!(h264_level(100, 0, 40).as_deref(), Some("4.0"));
        assert_eq!(hevc_profile(1, 0), Some("Main"));
        assert_eq!(hevc_profile(0, 1 << 29), Some("Main 10"));
        assert_eq!(hevc_profile(0, 0), None);
        assert_eq!(hevc_level(93, false).as_deref(), Some("3.1"));
        assert_eq!(hevc_level(63, false).as_deref(), Some("2.1"));
        assert_eq!(hevc_level(153, true).as_deref(), Some("5.1 High tier"));
        assert_eq!(av1_level(8, 0).as_deref(), Some("4.0"));
        assert_eq!(av1_level(31, 0), None);
        assert_eq!(vp9_level(31).as_deref(), Some("3.1"));
        assert_eq!(vp9_level(0), None);
        assert_eq!(aac_profile(2, false, false), Some("LC"));
        assert_eq!(aac_profile(2, true, false), Some("HE-AAC"));
        assert_eq!(aac_profile(2, true, true), Some("HE-AACv2"));
        assert_eq!(vp8_profile(0x50), "0");
        assert_eq!(vp8_profile(0x52), "1");
        assert_eq!(sample_entry_codec(b"mp4v"), Some("mpeg4"));
        assert_eq!(sample_entry_codec(b"zzzz"), None);
    }

    proptest::proptest! {
        #[test]
        fn never_panics(p in 0u8..=255, c in 0u8..=255, l in 0u8..=255, f in 0u32..=u32::MAX, b in proptest::bool::ANY) {
            let _ = (h264_profile(p, c), h264_level(p, c, l), hevc_profile(p, f), hevc_level(l, b));
            let _ = (av1_profile(p), av1_level(l, c), vp9_level(l), aac_profile(p, b, !b));
        }
    }
}
