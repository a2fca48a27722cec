//! H.265 / HEVC: the `hvcC` configuration record, sequence parameter sets and NAL headers.
//!
//! - [`HvcConfig`] is the HEVCDecoderConfigurationRecord of ISO/IEC 14496-15 §8.3.3.1.
//! - [`parse_sps`] / [`sps_dimensions`] read `seq_parameter_set_rbsp()` (ITU-T H.265
//!   §7.3.2.2) through `profile_tier_level()` (§7.3.3, sub-layers included), the picture
//!   size, the conformance window (applied in chroma units, §7.4.3.2.1) and the bit depths.
//! - NAL unit header helpers follow §7.3.1.2 (two bytes; type in bits 1..=6 of the first).
//!
//! Bit reading and emulation-prevention removal are shared with [`super::h264`].

use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};

use super::h264::{unescape_rbsp, BitReader};
use super::{CodecError, Dimensions};

pub const NAL_IDR_W_RADL: u8 = 19;
pub const NAL_IDR_N_LP: u8 = 20;
pub const NAL_CRA: u8 = 21;
pub const NAL_VPS: u8 = 32;
pub const NAL_SPS: u8 = 33;
pub const NAL_PPS: u8 = 34;
pub const NAL_AUD: u8 = 35;
pub const NAL_PREFIX_SEI: u8 = 39;
pub const NAL_SUFFIX_SEI: u8 = 40;

const WHAT_HVCC: &str = "hvcC";
const WHAT_SPS: &str = "HEVC SPS";

/// `nal_unit_type` from the first byte of an HEVC NAL unit.
pub fn nal_type(first_byte: u8) -> u8 {
    (first_byte >> 1) & 0x3f
}

/// True for IRAP pictures (BLA, IDR, CRA and the reserved IRAP types, 16..=23).
pub fn is_irap(nal_type: u8) -> bool {
    (16..=23).contains(&nal_type)
}

/// `first_slice_segment_in_pic_flag` of a VCL NAL unit (types 0..=31): the first bit after
/// the 2-byte header. `None` for non-VCL types or when the unit is too short. (The header's
/// second byte is never zero, so no emulation-prevention byte can precede this bit.)
pub fn first_slice_segment_in_pic(nal: &[u8]) -> Option<bool> {
    let (&first, &payload) = (nal.first()?, nal.get(2)?);
    if nal_type(first) > 31 {
        return None;
    }
    Some(payload & 0x80 != 0)
}

/// The HEVCDecoderConfigurationRecord (ISO/IEC 14496-15 §8.3.3.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HvcConfig {
    pub general_profile_idc: u8,
    pub general_level_idc: u8,
    /// 1, 2 or 4.
    pub nal_length_size: u8,
    /// NAL unit arrays in record order: (NAL unit type, units).
    pub arrays: Vec<(u8, Vec<Bytes>)>,
    /// configurationVersion as read (1; some writers store 0).
    pub configuration_version: u8,
    pub general_profile_space: u8,
    pub general_tier_flag: bool,
    pub general_profile_compatibility_flags: u32,
    /// The 48 general constraint indicator flags, in the low bits.
    pub general_constraint_indicator_flags: u64,
    pub min_spatial_segmentation_idc: u16,
    pub parallelism_type: u8,
    pub chroma_format_idc: u8,
    pub bit_depth_luma_minus8: u8,
    pub bit_depth_chroma_minus8: u8,
    pub avg_frame_rate: u16,
    pub constant_frame_rate: u8,
    pub num_temporal_layers: u8,
    pub temporal_id_nested: bool,
    /// Bit `n` set: the array of NAL type `n` has array_completeness = 1.
    pub array_complete_mask: u64,
}

impl HvcConfig {
    /// Parses an `hvcC` payload, copying the NAL units.
    pub fn parse(rec: &[u8]) -> Result<Self, CodecError> {
        parse_hvcc(rec, |r| Bytes::copy_from_slice(&rec[r]))
    }

    /// Like [`HvcConfig::parse`], but the NAL units are slices of `rec`.
    pub fn parse_bytes(rec: &Bytes) -> Result<Self, CodecError> {
        parse_hvcc(rec, |r| rec.slice(r))
    }

    /// Builds a record from parameter sets taken from the bitstream (best effort):
    /// `nal_length_size` 4, profile, tier, level, chroma format, bit depths and temporal
    /// layering from the first SPS; arrays VPS, SPS, PPS (empty ones left out), with
    /// array_completeness 0 as FFmpeg writes it.
    pub fn from_parameter_sets(vps: &[Bytes], sps: &[Bytes], pps: &[Bytes]) -> Result<Self, CodecError> {
        let first = sps
            .first()
            .ok_or_else(|| CodecError::Invalid { what: WHAT_HVCC, reason: "no sequence parameter set given".into() })?;
        let mut arrays = Vec::new();
        for (want, units) in [(NAL_VPS, vps), (NAL_SPS, sps), (NAL_PPS, pps)] {
            if units.len() > usize::from(u16::MAX) {
                return Err(CodecError::Unsupported {
                    what: WHAT_HVCC,
                    reason: format!("{} NAL units of type {want} in one array", units.len()),
                });
            }
            for (i, nal) in units.iter().enumerate() {
                check_nal(nal, want, i)?;
            }
            if !units.is_empty() {
                arrays.push((want, units.to_vec()));
            }
        }
        let info = parse_sps(first)?;
        Ok(HvcConfig {
            general_profile_idc: info.ptl.general_profile_idc,
            general_level_idc: info.ptl.general_level_idc,
            nal_length_size: 4,
            arrays,
            configuration_version: 1,
            general_profile_space: info.ptl.general_profile_space,
            general_tier_flag: info.ptl.general_tier_flag,
            general_profile_compatibility_flags: info.ptl.general_profile_compatibility_flags,
            general_constraint_indicator_flags: info.ptl.general_constraint_indicator_flags,
            min_spatial_segmentation_idc: 0,
            parallelism_type: 0,
            chroma_format_idc: info.chroma_format_idc,
            bit_depth_luma_minus8: info.bit_depth_luma_minus8,
            bit_depth_chroma_minus8: info.bit_depth_chroma_minus8,
            avg_frame_rate: 0,
            constant_frame_rate: 0,
            num_temporal_layers: info.max_sub_layers,
            temporal_id_nested: info.temporal_id_nesting,
            array_complete_mask: 0,
        })
    }

    /// Serializes the record, reserved bits set to 1 and configurationVersion as stored.
    /// A `nal_length_size` outside 1..=4 is written as 4; arrays beyond 255, units beyond
    /// 65535 per array and units over 65535 bytes are left out (none of which can come
    /// from [`HvcConfig::parse`]).
    pub fn to_bytes(&self) -> Bytes {
        let size = match self.nal_length_size {
            1..=4 => self.nal_length_size,
            _ => 4,
        };
        let mut out = BytesMut::with_capacity(
            23 + self
                .arrays
                .iter()
                .map(|(_, units)| 3 + units.iter().map(|u| u.len() + 2).sum::<usize>())
                .sum::<usize>(),
        );
        out.put_u8(self.configuration_version);
        out.put_u8(
            (self.general_profile_space & 3) << 6
                | u8::from(self.general_tier_flag) << 5
                | (self.general_profile_idc & 0x1f),
        );
        out.put_u32(self.general_profile_compatibility_flags);
        out.put_slice(&self.general_constraint_indicator_flags.to_be_bytes()[2..]);
        out.put_u8(self.general_level_idc);
        out.put_u16(0xf000 | (self.min_spatial_segmentation_idc & 0x0fff));
        out.put_u8(0xfc | (self.parallelism_type & 3));
        out.put_u8(0xfc | (self.chroma_format_idc & 3));
        out.put_u8(0xf8 | (self.bit_depth_luma_minus8 & 7));
        out.put_u8(0xf8 | (self.bit_depth_chroma_minus8 & 7));
        out.put_u16(self.avg_frame_rate);
        out.put_u8(
            (self.constant_frame_rate & 3) << 6
                | (self.num_temporal_layers & 7) << 3
                | u8::from(self.temporal_id_nested) << 2
                | (size - 1),
        );
        let arrays = &self.arrays[..self.arrays.len().min(255)];
        out.put_u8(arrays.len() as u8);
        for (nal_type, units) in arrays {
            let t = nal_type & 0x3f;
            let complete = (self.array_complete_mask >> t) & 1 == 1;
            out.put_u8(u8::from(complete) << 7 | t);
            let units: Vec<&Bytes> =
                units.iter().filter(|u| u.len() <= usize::from(u16::MAX)).take(usize::from(u16::MAX)).collect();
            out.put_u16(units.len() as u16);
            for u in units {
                out.put_u16(u.len() as u16);
                out.put_slice(u);
            }
        }
        out.freeze()
    }

    /// The NAL units of the given type, across all arrays of that type.
    pub fn units(&self, nal_type: u8) -> impl Iterator<Item = &Bytes> {
        self.arrays.iter().filter(move |(t, _)| *t == nal_type).flat_map(|(_, units)| units)
    }

    /// Which of VPS, SPS and PPS (NAL types 32, 33, 34) the record has no unit of. Such a
    /// record is accepted: the parameter sets may come in-band (`hev1`).
    pub fn missing_parameter_sets(&self) -> Vec<u8> {
        [NAL_VPS, NAL_SPS, NAL_PPS].into_iter().filter(|&t| self.units(t).next().is_none()).collect()
    }

    /// Display dimensions from the first SPS.
    pub fn dimensions(&self) -> Result<Dimensions, CodecError> {
        let sps = self
            .units(NAL_SPS)
            .next()
            .ok_or_else(|| CodecError::Invalid { what: WHAT_HVCC, reason: "no sequence parameter set".into() })?;
        sps_dimensions(sps)
    }
}

fn check_nal(nal: &[u8], want: u8, i: usize) -> Result<(), CodecError> {
    if nal.len() < 2 {
        return Err(CodecError::Invalid {
            what: WHAT_HVCC,
            reason: format!("NAL unit #{i} of type {want} is {} bytes, shorter than its header", nal.len()),
        });
    }
    if nal_type(nal[0]) != want {
        return Err(CodecError::Invalid {
            what: WHAT_HVCC,
            reason: format!("NAL unit #{i} in the array of type {want} has type {}", nal_type(nal[0])),
        });
    }
    if nal.len() > usize::from(u16::MAX) {
        return Err(CodecError::Unsupported {
            what: WHAT_HVCC,
            reason: format!("NAL unit of {} bytes (at most 65535)", nal.len()),
        });
    }
    Ok(())
}

fn parse_hvcc(rec: &[u8], mut take: impl FnMut(Range<usize>) -> Bytes) -> Result<HvcConfig, CodecError> {
    const HEADER: usize = 23;
    if rec.len() < HEADER {
        return Err(CodecError::Truncated { what: WHAT_HVCC, len: rec.len(), need: HEADER });
    }
    if rec.iter().all(|&b| b == 0) {
        return Err(CodecError::Invalid { what: WHAT_HVCC, reason: "record is all zeros".into() });
    }
    let version = rec[0];
    if version > 1 {
        return Err(CodecError::Unsupported { what: WHAT_HVCC, reason: format!("configurationVersion {version}") });
    }
    let length_size_minus_one = rec[21] & 3;
    if length_size_minus_one == 2 {
        return Err(CodecError::Invalid {
            what: WHAT_HVCC,
            reason: "lengthSizeMinusOne is 2 (3-byte NAL lengths are not allowed)".into(),
        });
    }
    let truncated = |need: usize| CodecError::Truncated { what: WHAT_HVCC, len: rec.len(), need };
    let u16_at = |pos: usize| rec.get(pos..pos + 2).map(|b| u16::from_be_bytes([b[0], b[1]])).ok_or(truncated(pos + 2));
    let num_arrays = usize::from(rec[22]);
    let mut pos = HEADER;
    let mut arrays = Vec::with_capacity(num_arrays);
    let mut array_complete_mask = 0u64;
    for _ in 0..num_arrays {
        let head = *rec.get(pos).ok_or(truncated(pos + 1))?;
        let t = head & 0x3f;
        if head & 0x80 != 0 {
            array_complete_mask |= 1 << t;
        }
        let num_nalus = usize::from(u16_at(pos + 1)?);
        pos += 3;
        let mut units = Vec::with_capacity(num_nalus.min(64));
        for i in 0..num_nalus {
            let len = usize::from(u16_at(pos)?);
            let (start, end) = (pos + 2, pos + 2 + len);
            if end > rec.len() {
                return Err(truncated(end));
            }
            check_nal(&rec[start..end], t, i)?;
            units.push(take(start..end));
            pos = end;
        }
        arrays.push((t, units));
    }
    let mut constraint = [0u8; 8];
    constraint[2..].copy_from_slice(&rec[6..12]);
    Ok(HvcConfig {
        general_profile_idc: rec[1] & 0x1f,
        general_level_idc: rec[12],
        nal_length_size: length_size_minus_one + 1,
        arrays,
        configuration_version: version,
        general_profile_space: rec[1] >> 6,
        general_tier_flag: rec[1] & 0x20 != 0,
        general_profile_compatibility_flags: u32::from_be_bytes([rec[2], rec[3], rec[4], rec[5]]),
        general_constraint_indicator_flags: u64::from_be_bytes(constraint),
        min_spatial_segmentation_idc: u16::from_be_bytes([rec[13], rec[14]]) & 0x0fff,
        parallelism_type: rec[15] & 3,
        chroma_format_idc: rec[16] & 3,
        bit_depth_luma_minus8: rec[17] & 7,
        bit_depth_chroma_minus8: rec[18] & 7,
        avg_frame_rate: u16::from_be_bytes([rec[19], rec[20]]),
        constant_frame_rate: rec[21] >> 6,
        num_temporal_layers: (rec[21] >> 3) & 7,
        temporal_id_nested: rec[21] & 4 != 0,
        array_complete_mask,
    })
}

/// The general part of `profile_tier_level()` (H.265 §7.3.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ProfileTierLevel {
    pub general_profile_space: u8,
    pub general_tier_flag: bool,
    pub general_profile_idc: u8,
    pub general_profile_compatibility_flags: u32,
    /// 48 bits: progressive/interlaced/non-packed/frame-only flags and the rest.
    pub general_constraint_indicator_flags: u64,
    pub general_level_idc: u8,
}

/// Fields of an HEVC SPS as far as the bit depths.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpsInfo {
    pub max_sub_layers: u8,
    pub temporal_id_nesting: bool,
    pub ptl: ProfileTierLevel,
    pub seq_parameter_set_id: u32,
    pub chroma_format_idc: u8,
    pub separate_colour_plane: bool,
    pub pic_width_in_luma_samples: u32,
    pub pic_height_in_luma_samples: u32,
    /// left, right, top, bottom `conf_win_*_offset`, in chroma units.
    pub conformance_window: [u32; 4],
    pub bit_depth_luma_minus8: u8,
    pub bit_depth_chroma_minus8: u8,
    /// Display size after the conformance window.
    pub dims: Dimensions,
}

fn parse_profile_tier_level(r: &mut BitReader<'_>, max_sub_layers_minus1: u8) -> Result<ProfileTierLevel, CodecError> {
    let general_profile_space = r.read_u8(2)?;
    let general_tier_flag = r.read_bit()?;
    let general_profile_idc = r.read_u8(5)?;
    let general_profile_compatibility_flags = r.read_bits(32)?;
    let hi = u64::from(r.read_bits(16)?);
    let lo = u64::from(r.read_bits(32)?);
    let general_level_idc = r.read_u8(8)?;
    let mut profile_present = [false; 8];
    let mut level_present = [false; 8];
    let n = usize::from(max_sub_layers_minus1);
    for i in 0..n {
        profile_present[i] = r.read_bit()?;
        level_present[i] = r.read_bit()?;
    }
    if n > 0 {
        r.skip_bits(2 * (8 - n))?; // reserved_zero_2bits
    }
    for i in 0..n {
        if profile_present[i] {
            r.skip_bits(88)?;
        }
        if level_present[i] {
            r.skip_bits(8)?;
        }
    }
    Ok(ProfileTierLevel {
        general_profile_space,
        general_tier_flag,
        general_profile_idc,
        general_profile_compatibility_flags,
        general_constraint_indicator_flags: hi << 32 | lo,
        general_level_idc,
    })
}

/// Parses an SPS NAL unit (with its 2-byte header) as far as the bit depths.
pub fn parse_sps(sps_nal: &[u8]) -> Result<SpsInfo, CodecError> {
    if sps_nal.len() < 2 {
        return Err(CodecError::Truncated { what: WHAT_SPS, len: sps_nal.len(), need: 2 });
    }
    if nal_type(sps_nal[0]) != NAL_SPS {
        return Err(CodecError::Invalid {
            what: WHAT_SPS,
            reason: format!("NAL type is {}, expected {NAL_SPS}", nal_type(sps_nal[0])),
        });
    }
    let rbsp = unescape_rbsp(&sps_nal[2..]);
    let mut r = BitReader::new(&rbsp, WHAT_SPS);
    let _vps_id = r.read_u8(4)?;
    let max_sub_layers_minus1 = r.read_u8(3)?;
    if max_sub_layers_minus1 > 6 {
        return Err(CodecError::Invalid {
            what: WHAT_SPS,
            reason: "sps_max_sub_layers_minus1 is 7, at most 6 allowed".into(),
        });
    }
    let temporal_id_nesting = r.read_bit()?;
    let ptl = parse_profile_tier_level(&mut r, max_sub_layers_minus1)?;
    let seq_parameter_set_id = r.read_ue_max("sps_seq_parameter_set_id", 15)?;
    let chroma_format_idc = r.read_ue_max("chroma_format_idc", 3)? as u8;
    let separate_colour_plane = chroma_format_idc == 3 && r.read_bit()?;
    let width = r.read_ue()?;
    let height = r.read_ue()?;
    let mut conformance_window = [0u32; 4];
    if r.read_bit()? {
        for c in &mut conformance_window {
            *c = r.read_ue()?;
        }
    }
    let bit_depth_luma_minus8 = r.read_ue_max("bit_depth_luma_minus8", 8)? as u8;
    let bit_depth_chroma_minus8 = r.read_ue_max("bit_depth_chroma_minus8", 8)? as u8;

    let chroma_array_type = if separate_colour_plane { 0 } else { chroma_format_idc };
    let (sub_width, sub_height): (u64, u64) = match chroma_array_type {
        1 => (2, 2),
        2 => (2, 1),
        _ => (1, 1),
    };
    let [left, right, top, bottom] = conformance_window.map(u64::from);
    let crop_w = (left + right) * sub_width;
    let crop_h = (top + bottom) * sub_height;
    if width == 0 || height == 0 || crop_w >= u64::from(width) || crop_h >= u64::from(height) {
        return Err(CodecError::Invalid {
            what: WHAT_SPS,
            reason: format!(
                "conformance window {conformance_window:?} leaves nothing of the \
                 {width}x{height} picture"
            ),
        });
    }
    Ok(SpsInfo {
        max_sub_layers: max_sub_layers_minus1 + 1,
        temporal_id_nesting,
        ptl,
        seq_parameter_set_id,
        chroma_format_idc,
        separate_colour_plane,
        pic_width_in_luma_samples: width,
        pic_height_in_luma_samples: height,
        conformance_window,
        bit_depth_luma_minus8,
        bit_depth_chroma_minus8,
        dims: Dimensions { width: (u64::from(width) - crop_w) as u32, height: (u64::from(height) - crop_h) as u32 },
    })
}

/// Display width and height from an SPS NAL unit (with its header), after the
/// conformance window.
pub fn sps_dimensions(sps_nal: &[u8]) -> Result<Dimensions, CodecError> {
    parse_sps(sps_nal).map(|s| s.dims)
}

#[cfg(test)]
mod tests {
    use super::super::h264::tests::{assert_truncations_fail, escape, fuzz, invalid_with, BitWriter};
    use super::*;

    // Parameter sets written by x265 through FFmpeg, with the sizes ffprobe reports.
    /// 1000x562 Main (1000x568 coded, conformance window bottom 3 chroma rows).
    const VPS_MAIN: &[u8] = &[
        0x40, 0x01, 0x0c, 0x01, 0xff, 0xff, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00,
        0x03, 0x00, 0x5d, 0x95, 0x98, 0x09,
    ];
    const SPS_MAIN: &[u8] = &[
        0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00, 0x03, 0x00, 0x5d,
        0xa0, 0x07, 0xd2, 0x00, 0x8e, 0x7c, 0x99, 0x65, 0x66, 0x92, 0x4c, 0xaf, 0x01, 0x68, 0x08, 0x00, 0x00, 0x03,
        0x00, 0x08, 0x00, 0x00, 0x03, 0x00, 0xc8, 0x40,
    ];
    const PPS_MAIN: &[u8] = &[0x44, 0x01, 0xc1, 0x72, 0xb4, 0x62, 0x40];
    /// 998x562 Rext, 4:2:2 10-bit.
    const SPS_REXT: &[u8] = &[
        0x42, 0x01, 0x01, 0x04, 0x08, 0x00, 0x00, 0x03, 0x00, 0x9d, 0x08, 0x00, 0x00, 0x03, 0x00, 0x00, 0x5d, 0xb0,
        0x07, 0xd2, 0x00, 0x8e, 0x75, 0x3b, 0x65, 0x95, 0x9a, 0x49, 0x32, 0xbc, 0x05, 0xa0, 0x20, 0x00, 0x00, 0x03,
        0x00, 0x20, 0x00, 0x00, 0x03, 0x03, 0x21,
    ];
    /// The 23-byte header of the `hvcC` FFmpeg wrote for VPS_MAIN/SPS_MAIN/PPS_MAIN
    /// (numOfArrays 3; FFmpeg's fourth array, an x265 SEI, is left out).
    const HVCC_MAIN_HEADER: &[u8] = &[
        0x01, 0x01, 0x60, 0x00, 0x00, 0x00, 0x90, 0x00, 0x00, 0x00, 0x00, 0x00, 0x5d, 0xf0, 0x00, 0xfc, 0xfd, 0xf8,
        0xf8, 0x00, 0x00, 0x0f, 0x03,
    ];

    fn hvcc_main() -> Vec<u8> {
        let mut v = HVCC_MAIN_HEADER.to_vec();
        for (t, nal) in [(0x20, VPS_MAIN), (0x21, SPS_MAIN), (0x22, PPS_MAIN)] {
            v.extend([t, 0, 1]);
            v.extend((nal.len() as u16).to_be_bytes());
            v.extend(nal);
        }
        v
    }

    /// An SPS with sub-layers, 4:2:0, and a conformance window.
    fn sps_with_sub_layers(sub_layers_minus1: u8, window: [u32; 4]) -> Vec<u8> {
        let mut w = BitWriter::default();
        w.bits(4, 0);
        w.bits(3, u64::from(sub_layers_minus1));
        w.bit(true);
        // general PTL: space 0, tier 1, profile 2 (Main 10)
        w.bits(2, 0);
        w.bit(true);
        w.bits(5, 2);
        w.bits(32, 0x2000_0000);
        w.bits(48, 0xb000_0000_0000);
        w.bits(8, 150);
        for i in 0..sub_layers_minus1 {
            w.bit(i % 2 == 0); // profile present
            w.bit(true); // level present
        }
        if sub_layers_minus1 > 0 {
            w.bits(2 * (8 - u32::from(sub_layers_minus1)), 0);
        }
        for i in 0..sub_layers_minus1 {
            if i % 2 == 0 {
                w.bits(32, 0xffff_ffff);
                w.bits(32, 0);
                w.bits(24, 0xabcdef);
            }
            w.bits(8, 0x55);
        }
        w.ue(0);
        w.ue(1);
        w.ue(3840);
        w.ue(2176);
        w.bit(true);
        for v in window {
            w.ue(v);
        }
        w.ue(2);
        w.ue(2);
        w.ue(4); // log2_max_pic_order_cnt_lsb_minus4, not parsed
        let mut nal = vec![0x42, 0x01];
        nal.extend(escape(&w.finish_rbsp()));
        nal
    }

    #[test]
    fn nal_header_helpers() {
        assert_eq!(nal_type(0x40), NAL_VPS);
        assert_eq!(nal_type(0x42), NAL_SPS);
        assert_eq!(nal_type(0x44), NAL_PPS);
        assert_eq!(nal_type(0x46), NAL_AUD);
        assert_eq!(nal_type(0x4e), NAL_PREFIX_SEI);
        assert_eq!(nal_type(0x26), NAL_IDR_W_RADL);
        assert!(is_irap(NAL_IDR_W_RADL) && is_irap(NAL_CRA) && is_irap(16) && is_irap(23));
        assert!(!is_irap(1) && !is_irap(24) && !is_irap(NAL_VPS));
        assert_eq!(first_slice_segment_in_pic(&[0x26, 0x01, 0xaf]), Some(true));
        assert_eq!(first_slice_segment_in_pic(&[0x02, 0x01, 0x2f]), Some(false));
        assert_eq!(first_slice_segment_in_pic(&[0x40, 0x01, 0xff]), None);
        assert_eq!(first_slice_segment_in_pic(&[0x26, 0x01]), None);
        assert_eq!(first_slice_segment_in_pic(&[]), None);
    }

    #[test]
    fn real_sps() {
        let info = parse_sps(SPS_MAIN).unwrap();
        assert_eq!(info.dims, Dimensions { width: 1000, height: 562 });
        assert_eq!((info.pic_width_in_luma_samples, info.pic_height_in_luma_samples), (1000, 568));
        assert_eq!(info.conformance_window, [0, 0, 0, 3]);
        assert_eq!((info.ptl.general_profile_idc, info.ptl.general_level_idc), (1, 93));
        assert_eq!(info.ptl.general_constraint_indicator_flags, 0x9000_0000_0000);
        let info = parse_sps(SPS_REXT).unwrap();
        assert_eq!(info.dims, Dimensions { width: 998, height: 562 });
        assert_eq!((info.chroma_format_idc, info.bit_depth_luma_minus8), (2, 2));
        assert_eq!(info.ptl.general_profile_idc, 4);
        assert!(matches!(sps_dimensions(PPS_MAIN), Err(CodecError::Invalid { .. })));
    }

    #[test]
    fn sps_sub_layers_and_window() {
        for sub in 0..=6 {
            let sps = sps_with_sub_layers(sub, [4, 6, 0, 8]);
            let info = parse_sps(&sps).unwrap();
            assert_eq!(info.max_sub_layers, sub + 1);
            assert_eq!(info.ptl.general_level_idc, 150);
            assert_eq!(info.ptl.general_profile_compatibility_flags, 0x2000_0000);
            assert!(info.ptl.general_tier_flag);
            assert_eq!((info.bit_depth_luma_minus8, info.bit_depth_chroma_minus8), (2, 2));
            assert_eq!(info.dims, Dimensions { width: 3820, height: 2160 });
        }
        let sps = sps_with_sub_layers(1, [1920, 0, 0, 0]);
        assert!(matches!(sps_dimensions(&sps), Err(CodecError::Invalid { .. })));
    }

    #[test]
    fn sps_truncations_fail() {
        let synthetic = sps_with_sub_layers(3, [0, 0, 0, 8]);
        for sps in [SPS_MAIN, SPS_REXT, &synthetic[..]] {
            let full = sps_dimensions(sps).unwrap();
            let shortest = (0..sps.len()).find(|&n| sps_dimensions(&sps[..n]).is_ok()).unwrap();
            assert!(shortest > 15, "{shortest}");
            assert_truncations_fail(&sps[..shortest], sps_dimensions);
            for n in shortest..sps.len() {
                assert_eq!(sps_dimensions(&sps[..n]).unwrap(), full);
            }
        }
    }

    #[test]
    fn sps_fuzz() {
        fuzz(SPS_MAIN, sps_dimensions);
        fuzz(&sps_with_sub_layers(5, [1, 1, 1, 1]), sps_dimensions);
        fuzz(&[], first_slice_segment_in_pic);
    }

    #[test]
    fn hvcc_parse_and_roundtrip() {
        let rec = hvcc_main();
        let cfg = HvcConfig::parse(&rec).unwrap();
        assert_eq!((cfg.general_profile_idc, cfg.general_level_idc, cfg.nal_length_size), (1, 93, 4));
        assert_eq!(cfg.arrays.len(), 3);
        assert_eq!(cfg.units(NAL_SPS).next().unwrap(), SPS_MAIN);
        assert_eq!((cfg.num_temporal_layers, cfg.temporal_id_nested, cfg.chroma_format_idc), (1, true, 1));
        assert!(cfg.missing_parameter_sets().is_empty());
        assert_eq!(cfg.dimensions().unwrap(), Dimensions { width: 1000, height: 562 });
        assert_eq!(&cfg.to_bytes()[..], &rec[..]);
        let shared = Bytes::from(rec.clone());
        let zc = HvcConfig::parse_bytes(&shared).unwrap();
        assert_eq!(zc, cfg);
        assert_eq!(zc.arrays[0].1[0].as_ptr(), shared[28..].as_ptr());
        // Completeness bits and an extra SEI array survive a round trip.
        let mut v = rec.clone();
        v[22] = 4;
        v[23] |= 0x80;
        v.extend([0x27, 0, 1, 0, 3, 0x4e, 0x01, 0x80]);
        let cfg = HvcConfig::parse(&v).unwrap();
        assert_eq!(cfg.array_complete_mask, 1 << NAL_VPS);
        assert_eq!(cfg.arrays[3].0, NAL_PREFIX_SEI);
        assert_eq!(&cfg.to_bytes()[..], &v[..]);
    }

    #[test]
    fn hvcc_from_parameter_sets_matches_ffmpeg() {
        let b = Bytes::from_static;
        let cfg = HvcConfig::from_parameter_sets(&[b(VPS_MAIN)], &[b(SPS_MAIN)], &[b(PPS_MAIN)]).unwrap();
        assert_eq!(&cfg.to_bytes()[..], &hvcc_main()[..]);
        let cfg = HvcConfig::from_parameter_sets(&[], &[b(SPS_REXT)], &[]).unwrap();
        assert_eq!(
            &cfg.to_bytes()[..23],
            &[
                0x01, 0x04, 0x08, 0x00, 0x00, 0x00, 0x9d, 0x08, 0x00, 0x00, 0x00, 0x00, 0x5d, 0xf0, 0x00, 0xfc, 0xfe,
                0xfa, 0xfa, 0x00, 0x00, 0x0f, 0x01
            ]
        );
        assert_eq!(cfg.missing_parameter_sets(), vec![NAL_VPS, NAL_PPS]);
        assert!(HvcConfig::from_parameter_sets(&[], &[], &[]).is_err());
        assert!(HvcConfig::from_parameter_sets(&[b(SPS_MAIN)], &[b(SPS_MAIN)], &[]).is_err());
        let synthetic = Bytes::from(sps_with_sub_layers(2, [0; 4]));
        let cfg = HvcConfig::from_parameter_sets(&[], &[synthetic], &[]).unwrap();
        assert_eq!((cfg.num_temporal_layers, cfg.general_tier_flag, cfg.general_profile_idc), (3, true, 2));
        assert_eq!(HvcConfig::parse(&cfg.to_bytes()).unwrap(), cfg);
    }

    #[test]
    fn hvcc_rejections_and_leniency() {
        let good = hvcc_main();
        let err = |v: &[u8]| HvcConfig::parse(v).unwrap_err();
        assert!(invalid_with(&err(&vec![0; good.len()]), "all zeros"));
        let mut v = good.clone();
        v[21] = 0x0e;
        assert!(invalid_with(&err(&v), "lengthSizeMinusOne"));
        let mut v = good.clone();
        v[0] = 2;
        assert!(matches!(err(&v), CodecError::Unsupported { .. }));
        // Version 0 is accepted (some writers), as are records without parameter sets.
        let mut v = good.clone();
        v[0] = 0;
        assert_eq!(HvcConfig::parse(&v).unwrap().configuration_version, 0);
        let mut v = HVCC_MAIN_HEADER.to_vec();
        v[22] = 0;
        let cfg = HvcConfig::parse(&v).unwrap();
        assert_eq!(cfg.missing_parameter_sets(), vec![NAL_VPS, NAL_SPS, NAL_PPS]);
        assert!(cfg.dimensions().is_err());
        // A unit whose type does not match its array.
        let mut v = good.clone();
        v[23] = 0x21;
        assert!(invalid_with(&err(&v), "has type 32"));
        for size in [1u8, 2, 4] {
            let mut v = good.clone();
            v[21] = 0x0c | (size - 1);
            assert_eq!(HvcConfig::parse(&v).unwrap().nal_length_size, size);
        }
    }

    #[test]
    fn hvcc_truncations_fail() {
        let rec = hvcc_main();
        assert_truncations_fail(&rec, HvcConfig::parse);
        assert_eq!(
            HvcConfig::parse(&rec[..30]).unwrap_err(),
            CodecError::Truncated { what: "hvcC", len: 30, need: 52 }
        );
    }

    #[test]
    fn hvcc_fuzz() {
        fuzz(&hvcc_main(), HvcConfig::parse);
        fuzz(&hvcc_main(), |d| HvcConfig::parse(d).map(|c| c.dimensions()));
    }
}
