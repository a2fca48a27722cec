//! VP9: the `vpcC` configuration record and key frame headers.
//!
//! - [`VpcConfig`] is the VPCodecConfigurationRecord of "VP Codec ISO Media File Format
//!   Binding" §2.2 (version 1 layout), without the box's version and flags.
//! - [`config_from_keyframe`] reads the uncompressed header of a key frame (VP9 Bitstream
//!   Specification §6.2: frame marker, profile, frame sync code, `color_config()` §6.2.2,
//!   `frame_size()` §6.2.3) and derives a record from it.
//! - [`superframe_index`] splits a superframe (VP9 Bitstream Specification Annex B).

use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};

use super::bits::BitReader;
use super::{CodecError, Dimensions};

const WHAT_VPCC: &str = "vpcC";
const WHAT_FRAME: &str = "VP9 frame header";

/// `chroma_subsampling` values of the `vpcC` record (0, 4:2:0 vertical, is not used).
pub const SUBSAMPLING_420_COLOCATED: u8 = 1;
pub const SUBSAMPLING_422: u8 = 2;
pub const SUBSAMPLING_444: u8 = 3;

/// The VPCodecConfigurationRecord, version 1 (after the full box's version and flags).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VpcConfig {
    pub profile: u8,
    /// 10 × the level number (e.g. 31 for level 3.1); 0 when unknown.
    pub level: u8,
    /// 8, 10 or 12.
    pub bit_depth: u8,
    /// See the `SUBSAMPLING_*` constants.
    pub chroma_subsampling: u8,
    pub video_full_range: bool,
    /// ISO/IEC 23091-2 (H.273) code points; 2 = unspecified.
    pub colour_primaries: u8,
    pub transfer_characteristics: u8,
    pub matrix_coefficients: u8,
    /// codecInitializationData (empty for VP9).
    pub codec_init: Bytes,
}

impl VpcConfig {
    /// Parses a `vpcC` payload (after version and flags), copying the initialization data.
    pub fn parse(rec: &[u8]) -> Result<Self, CodecError> {
        parse_vpcc(rec, |r| Bytes::copy_from_slice(&rec[r]))
    }

    /// Like [`VpcConfig::parse`], but `codec_init` is a slice of `rec`.
    #[cfg(any(test, feature = "internals"))]
    pub fn parse_bytes(rec: &Bytes) -> Result<Self, CodecError> {
        parse_vpcc(rec, |r| rec.slice(r))
    }

    /// Serializes the record in the version 1 layout, without version and flags.
    /// Initialization data over 65535 bytes is left out.
    pub fn to_bytes(&self) -> Bytes {
        let init: &[u8] = if self.codec_init.len() <= usize::from(u16::MAX) { &self.codec_init } else { &[] };
        let mut out = BytesMut::with_capacity(8 + init.len());
        out.put_u8(self.profile);
        out.put_u8(self.level);
        out.put_u8((self.bit_depth & 0x0f) << 4 | (self.chroma_subsampling & 7) << 1 | u8::from(self.video_full_range));
        out.put_u8(self.colour_primaries);
        out.put_u8(self.transfer_characteristics);
        out.put_u8(self.matrix_coefficients);
        out.put_u16(init.len() as u16);
        out.put_slice(init);
        out.freeze()
    }
}

fn parse_vpcc(rec: &[u8], take: impl FnOnce(Range<usize>) -> Bytes) -> Result<VpcConfig, CodecError> {
    const HEADER: usize = 8;
    if rec.len() < HEADER {
        return Err(CodecError::Truncated { what: WHAT_VPCC, len: rec.len(), need: HEADER });
    }
    if rec.iter().all(|&b| b == 0) {
        return Err(CodecError::Invalid { what: WHAT_VPCC, reason: "record is all zeros".into() });
    }
    let invalid = |reason: String| Err(CodecError::Invalid { what: WHAT_VPCC, reason });
    let profile = rec[0];
    if profile > 3 {
        return invalid(format!("profile {profile} (0..=3 expected)"));
    }
    let bit_depth = rec[2] >> 4;
    if !matches!(bit_depth, 8 | 10 | 12) {
        return invalid(format!("bitDepth {bit_depth} (8, 10 or 12 expected)"));
    }
    let chroma_subsampling = (rec[2] >> 1) & 7;
    if chroma_subsampling > 3 {
        return invalid(format!("chromaSubsampling {chroma_subsampling} is reserved"));
    }
    let init_len = usize::from(u16::from_be_bytes([rec[6], rec[7]]));
    let end = HEADER + init_len;
    if end > rec.len() {
        return Err(CodecError::Truncated { what: WHAT_VPCC, len: rec.len(), need: end });
    }
    Ok(VpcConfig {
        profile,
        level: rec[1],
        bit_depth,
        chroma_subsampling,
        video_full_range: rec[2] & 1 != 0,
        colour_primaries: rec[3],
        transfer_characteristics: rec[4],
        matrix_coefficients: rec[5],
        codec_init: take(HEADER..end),
    })
}

/// The frames of a superframe, from the index at its end (VP9 Annex B). `None` when
/// `data` has no valid superframe index.
pub fn superframe_index(data: &[u8]) -> Option<Vec<Range<usize>>> {
    let &marker = data.last()?;
    if marker & 0xe0 != 0xc0 {
        return None;
    }
    let frames = usize::from(marker & 7) + 1;
    let size_bytes = usize::from((marker >> 3) & 3) + 1;
    let index_len = 2 + size_bytes * frames;
    let index_start = data.len().checked_sub(index_len)?;
    if data[index_start] != marker {
        return None;
    }
    let mut ranges = Vec::with_capacity(frames);
    let mut pos = 0usize;
    for entry in data[index_start + 1..data.len() - 1].chunks_exact(size_bytes) {
        let size = entry.iter().rev().fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        let end = pos.checked_add(size)?;
        if end > index_start {
            return None;
        }
        ranges.push(pos..end);
        pos = end;
    }
    Some(ranges)
}

/// The first frame of `data`: the first entry of a superframe, or `data` itself.
fn first_frame(data: &[u8]) -> &[u8] {
    match superframe_index(data).and_then(|r| r.into_iter().find(|r| !r.is_empty())) {
        Some(r) => &data[r],
        None => data,
    }
}

/// The start of an uncompressed header, up to `error_resilient_mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct HeaderStart {
    profile: u8,
    show_existing_frame: bool,
    key_frame: bool,
}

fn read_header_start(r: &mut BitReader<'_>) -> Result<HeaderStart, CodecError> {
    let frame_marker = r.read_bits(2)?;
    if frame_marker != 2 {
        return Err(CodecError::Invalid {
            what: WHAT_FRAME,
            reason: format!("frame_marker is {frame_marker}, expected 2"),
        });
    }
    let low = r.read_u8(1)?;
    let high = r.read_u8(1)?;
    let profile = high << 1 | low;
    if profile == 3 && r.read_bit()? {
        return Err(CodecError::Unsupported { what: WHAT_FRAME, reason: "profile above 3".into() });
    }
    let show_existing_frame = r.read_bit()?;
    if show_existing_frame {
        return Ok(HeaderStart { profile, show_existing_frame, key_frame: false });
    }
    let key_frame = !r.read_bit()?;
    Ok(HeaderStart { profile, show_existing_frame, key_frame })
}

/// Whether a VP9 frame (or the first frame of a superframe) is a key frame. `None` when
/// the frame marker is wrong or the data is too short.
#[cfg(any(test, feature = "internals"))]
pub fn is_keyframe(frame: &[u8]) -> Option<bool> {
    let mut r = BitReader::new(first_frame(frame), WHAT_FRAME);
    read_header_start(&mut r).ok().map(|h| h.key_frame)
}

/// The H.273 matrix coefficients for a VP9 `color_space`.
fn matrix_for_color_space(color_space: u8) -> u8 {
    match color_space {
        1 => 5, // CS_BT_601: BT.470 System B, G (BT.601 625)
        2 => 1, // CS_BT_709
        3 => 6, // CS_SMPTE_170
        4 => 7, // CS_SMPTE_240
        5 => 9, // CS_BT_2020 (non-constant luminance)
        7 => 0, // CS_RGB: identity
        _ => 2, // CS_UNKNOWN, CS_RESERVED: unspecified
    }
}

/// Builds a `vpcC` and the frame size from a key frame (or a superframe whose first frame
/// is one). The level is 0 (unknown); colour primaries and transfer characteristics are 2
/// (unspecified), since VP9 does not code them; 4:2:0 is recorded as chroma sited with
/// luma (1), as FFmpeg does.
pub fn config_from_keyframe(frame: &[u8]) -> Result<(VpcConfig, Dimensions), CodecError> {
    let frame = first_frame(frame);
    let mut r = BitReader::new(frame, WHAT_FRAME);
    let start = read_header_start(&mut r)?;
    if start.show_existing_frame {
        return Err(CodecError::Invalid { what: WHAT_FRAME, reason: "frame shows an existing frame".into() });
    }
    if !start.key_frame {
        return Err(CodecError::Invalid { what: WHAT_FRAME, reason: "not a key frame".into() });
    }
    r.skip_bits(2)?; // show_frame, error_resilient_mode
    let sync = r.read_bits(24)?;
    if sync != 0x49_83_42 {
        return Err(CodecError::Invalid {
            what: WHAT_FRAME,
            reason: format!("frame sync code is {sync:06x}, expected 498342"),
        });
    }
    let profile = start.profile;
    let bit_depth = if profile >= 2 {
        if r.read_bit()? {
            12
        } else {
            10
        }
    } else {
        8
    };
    let color_space = r.read_u8(3)?;
    let (video_full_range, subsampling_x, subsampling_y);
    if color_space != 7 {
        video_full_range = r.read_bit()?;
        if profile == 1 || profile == 3 {
            subsampling_x = r.read_bit()?;
            subsampling_y = r.read_bit()?;
            r.skip_bits(1)?; // reserved_zero
        } else {
            (subsampling_x, subsampling_y) = (true, true);
        }
    } else {
        if profile == 0 || profile == 2 {
            return Err(CodecError::Invalid {
                what: WHAT_FRAME,
                reason: format!("RGB colour space in profile {profile}"),
            });
        }
        video_full_range = true;
        (subsampling_x, subsampling_y) = (false, false);
        r.skip_bits(1)?; // reserved_zero
    }
    let chroma_subsampling = match (subsampling_x, subsampling_y) {
        (true, true) => SUBSAMPLING_420_COLOCATED,
        (true, false) => SUBSAMPLING_422,
        (false, false) => SUBSAMPLING_444,
        (false, true) => {
            return Err(CodecError::Unsupported { what: WHAT_FRAME, reason: "4:4:0 chroma subsampling".into() })
        }
    };
    let width = r.read_bits(16)? + 1;
    let height = r.read_bits(16)? + 1;
    let config = VpcConfig {
        profile,
        level: 0,
        bit_depth,
        chroma_subsampling,
        video_full_range,
        colour_primaries: 2,
        transfer_characteristics: 2,
        matrix_coefficients: matrix_for_color_space(color_space),
        codec_init: Bytes::new(),
    };
    Ok((config, Dimensions { width, height }))
}

#[cfg(test)]
mod tests {
    use super::super::h264::tests::{assert_truncations_fail, fails_invalid, fuzz, invalid_with};
    use super::*;

    // libvpx-vp9 output through FFmpeg: the `vpcC` payload after version/flags, and the
    // first bytes of the first (key) and second frames.
    struct Case {
        vpcc: &'static [u8],
        key: &'static [u8],
        inter: &'static [u8],
        dims: (u32, u32),
    }
    const CASES: [Case; 5] = [
        // profile 0, 1000x562 4:2:0, limited range, colour space unknown
        Case {
            vpcc: &[0x00, 0x1f, 0x82, 0x02, 0x02, 0x02, 0x00, 0x00],
            key: &[0x82, 0x49, 0x83, 0x42, 0x00, 0x3e, 0x70, 0x23, 0x16, 0x06, 0x38, 0x24],
            inter: &[0x86, 0x00, 0x40, 0x92, 0xf1, 0x21, 0x40, 0x06],
            dims: (1000, 562),
        },
        // profile 1, 998x562 4:4:4, full range, BT.709
        Case {
            vpcc: &[0x01, 0x1f, 0x87, 0x02, 0x02, 0x01, 0x00, 0x00],
            key: &[0xa2, 0x49, 0x83, 0x42, 0x50, 0x07, 0xca, 0x04, 0x62, 0xc0, 0xc7, 0x04],
            inter: &[0xa6, 0x00, 0x40, 0x92, 0xf1, 0x21, 0x40, 0x06],
            dims: (998, 562),
        },
        // profile 2, 320x240 4:2:0 10-bit, BT.2020 primaries, PQ, BT.2020 matrix
        Case {
            vpcc: &[0x02, 0x14, 0xa2, 0x09, 0x10, 0x09, 0x00, 0x00],
            key: &[0x92, 0x49, 0x83, 0x42, 0x50, 0x09, 0xf8, 0x07, 0x7b, 0x03, 0x1c, 0x12],
            inter: &[0x96, 0x00, 0x40, 0x92, 0xf1, 0x21, 0x40, 0x00],
            dims: (320, 240),
        },
        // profile 3, 322x242 4:2:2 12-bit
        Case {
            vpcc: &[0x03, 0x14, 0xc4, 0x02, 0x02, 0x02, 0x00, 0x00],
            key: &[0xb1, 0x24, 0xc1, 0xa1, 0x42, 0x00, 0xa0, 0x80, 0x78, 0xb0, 0x31, 0xc1],
            inter: &[0xb3, 0x00, 0x20, 0x49, 0x78, 0x90, 0xa0, 0x00],
            dims: (322, 242),
        },
        // profile 1, 160x120 RGB
        Case {
            vpcc: &[0x01, 0x0a, 0x87, 0x02, 0x02, 0x00, 0x00, 0x00],
            key: &[0xa2, 0x49, 0x83, 0x42, 0xe0, 0x09, 0xf0, 0x07, 0x76, 0x06, 0x38, 0x24],
            inter: &[0xa6, 0x00, 0x40, 0x92, 0xf1, 0x21, 0x40, 0x00],
            dims: (160, 120),
        },
    ];

    #[test]
    fn keyframes_give_ffmpegs_record() {
        for case in &CASES {
            let (cfg, dims) = config_from_keyframe(case.key).unwrap();
            assert_eq!(dims, Dimensions { width: case.dims.0, height: case.dims.1 });
            // FFmpeg also computes a level, and takes primaries and transfer from the
            // container: a key frame alone gives neither.
            let mut want = VpcConfig::parse(case.vpcc).unwrap();
            want.level = 0;
            want.colour_primaries = 2;
            want.transfer_characteristics = 2;
            assert_eq!(cfg, want);
            assert_eq!(is_keyframe(case.key), Some(true));
            assert_eq!(is_keyframe(case.inter), Some(false));
            assert!(matches!(config_from_keyframe(case.inter), Err(CodecError::Invalid { .. })));
        }
    }

    #[test]
    fn vpcc_roundtrip_and_rejections() {
        for case in &CASES {
            let cfg = VpcConfig::parse(case.vpcc).unwrap();
            assert_eq!(&cfg.to_bytes()[..], case.vpcc);
        }
        let cfg = VpcConfig::parse(CASES[2].vpcc).unwrap();
        assert_eq!((cfg.profile, cfg.level, cfg.bit_depth, cfg.chroma_subsampling), (2, 20, 10, 1));
        assert_eq!(cfg.matrix_coefficients, 9);
        let with_init = [0, 10, 0x80, 2, 2, 2, 0, 2, 0xaa, 0xbb];
        let shared = Bytes::copy_from_slice(&with_init);
        let cfg = VpcConfig::parse_bytes(&shared).unwrap();
        assert_eq!(&cfg.codec_init[..], &[0xaa, 0xbb]);
        assert_eq!(&cfg.to_bytes()[..], &with_init);
        let err = |v: &[u8]| VpcConfig::parse(v).unwrap_err();
        assert!(invalid_with(&err(&[0; 8]), "all zeros"));
        assert!(invalid_with(&err(&[4, 10, 0x80, 2, 2, 2, 0, 0]), "profile"));
        assert!(invalid_with(&err(&[0, 10, 0x90, 2, 2, 2, 0, 0]), "bitDepth"));
        assert!(invalid_with(&err(&[0, 10, 0x88, 2, 2, 2, 0, 0]), "chromaSubsampling"));
        assert_eq!(err(&with_init[..9]), CodecError::Truncated { what: "vpcC", len: 9, need: 10 });
    }

    #[test]
    fn truncations_fail() {
        for case in &CASES {
            assert_truncations_fail(case.vpcc, VpcConfig::parse);
            // The frame size ends within the first 10 bytes of each key frame header.
            let shortest = (0..case.key.len()).find(|&n| config_from_keyframe(&case.key[..n]).is_ok()).unwrap();
            assert!(shortest >= 8);
            assert_truncations_fail(&case.key[..shortest], config_from_keyframe);
        }
        assert_eq!(is_keyframe(&[]), None);
        assert_eq!(is_keyframe(&[0x40]), None);
    }

    #[test]
    fn header_oddities() {
        // show_existing_frame
        assert_eq!(is_keyframe(&[0x88]), Some(false));
        assert!(config_from_keyframe(&[0x88, 0, 0, 0]).is_err());
        // wrong sync code
        let mut key = CASES[0].key.to_vec();
        key[2] = 0x84;
        assert!(fails_invalid(&config_from_keyframe(&key), "sync"));
        // RGB in profile 0: 0x82 header, then colour space 7.
        let rgb = [0x82, 0x49, 0x83, 0x42, 0xe0, 0, 0, 0, 0, 0];
        assert!(config_from_keyframe(&rgb).is_err());
        // Profile 3 with the reserved bit set.
        assert!(matches!(config_from_keyframe(&[0xb8, 0, 0]), Err(CodecError::Unsupported { .. })));
        // 4:4:0 in profile 1: colour space 0, range 0, ssx 0, ssy 1.
        let p1_440 = [0xa2, 0x49, 0x83, 0x42, 0x04, 0, 0, 0, 0, 0];
        assert!(matches!(config_from_keyframe(&p1_440), Err(CodecError::Unsupported { .. })));
    }

    #[test]
    fn superframes() {
        // A hidden inter frame (3 bytes) followed by the key frame, 2-byte sizes.
        let mut data = vec![0x84, 0x00, 0x00];
        data.extend_from_slice(CASES[0].key);
        let marker = 0xc0 | (1 << 3) | 1;
        data.extend([marker, 3, 0, CASES[0].key.len() as u8, 0, marker]);
        let frames = superframe_index(&data).unwrap();
        assert_eq!(frames, vec![0..3, 3..15]);
        // The first frame decides.
        assert_eq!(is_keyframe(&data), Some(false));
        // Key frame first.
        let mut data = CASES[1].key.to_vec();
        data.extend([0x84, 0, 0]);
        let marker = 0xc0 | 1;
        data.extend([marker, CASES[1].key.len() as u8, 3, marker]);
        assert_eq!(is_keyframe(&data), Some(true));
        assert_eq!(config_from_keyframe(&data).unwrap().1, Dimensions { width: 998, height: 562 });
        // Index sizes exceeding the data, or mismatched markers, are not superframes.
        assert_eq!(superframe_index(&[0xc1, 200, 3, 0xc1]), None);
        assert_eq!(superframe_index(&[0xc0, 0, 3, 0xc1]), None);
        assert_eq!(superframe_index(&[0xc1]), None);
        assert_eq!(superframe_index(&[]), None);
    }

    #[test]
    fn vp9_fuzz() {
        for case in &CASES {
            fuzz(case.vpcc, VpcConfig::parse);
            fuzz(case.key, config_from_keyframe);
            fuzz(case.key, is_keyframe);
        }
        fuzz(&[0xc9, 3, 0, 12, 0, 0xc9], superframe_index);
    }
}
