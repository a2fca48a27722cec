//! H.265 / HEVC: the `hvcC` configuration record, parameter sets and NAL headers.
//!
//! - [`HvcConfig`] is the HEVCDecoderConfigurationRecord of ISO/IEC 14496-15 §8.3.3.1.
//! - [`parse_sps`] / [`parse_pps`] ([`sps`]) are the one parse of `seq_parameter_set_rbsp()`
//!   (ITU-T H.265 §7.3.2.2: `profile_tier_level()` with sub-layers, the picture size, the
//!   conformance window applied in chroma units (§7.4.3.2.1), the bit depths, and the fields
//!   slice headers need) and of the start of `pic_parameter_set_rbsp()` (§7.3.2.3). Picture
//!   order count derivation ([`super::poc`]) and the slice header check ([`super::slices`])
//!   take the parsed [`Sps`] / [`Pps`] through [`ParameterSets`]. The VPS is not parsed:
//!   nothing livemux derives depends on it.
//! - NAL unit header helpers follow §7.3.1.2 (two bytes; type in bits 1..=6 of the first).
//!
//! Bits are read with [`super::bits`]. There is no HEVC parser crate to compare with that
//! covers this (`h264-reader` is H.264 only; see [`super::h264`]).

pub mod sps;
#[cfg(test)]
mod tests;

use std::ops::Range;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};

pub use self::sps::{parse_sps, sps_dimensions, ParameterSets};
use self::sps::Sps;
use super::{CodecError, Dimensions, ParsedSets};

pub const NAL_IDR_W_RADL: u8 = 19;
pub const NAL_IDR_N_LP: u8 = 20;
#[cfg(test)]
pub const NAL_CRA: u8 = 21;
pub const NAL_VPS: u8 = 32;
pub const NAL_SPS: u8 = 33;
pub const NAL_PPS: u8 = 34;
#[cfg(test)]
pub const NAL_AUD: u8 = 35;
pub const NAL_PREFIX_SEI: u8 = 39;
pub const NAL_SUFFIX_SEI: u8 = 40;

const WHAT_HVCC: &str = "hvcC";

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
///
/// The parameter sets are parsed once, when first needed ([`HvcConfig::first_sps`],
/// [`HvcConfig::parameter_sets`]); change `arrays` only on a record not yet asked for them.
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
    parsed: ParsedSets<Sps, ParameterSets>,
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
        let info = Arc::new(parse_sps(first)?);
        let parsed = ParsedSets::default();
        // The record's first SPS is parsed here, once: dimensions and the slice and POC
        // parameter sets reuse it.
        let _ = parsed.first_sps.set(Ok(Arc::clone(&info)));
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
            parsed,
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
    #[cfg(any(test, feature = "internals"))]
    pub fn missing_parameter_sets(&self) -> Vec<u8> {
        [NAL_VPS, NAL_SPS, NAL_PPS].into_iter().filter(|&t| self.units(t).next().is_none()).collect()
    }

    /// Display dimensions from the first SPS ([`HvcConfig::first_sps`]).
    pub fn dimensions(&self) -> Result<Dimensions, CodecError> {
        self.first_sps().map(|s| s.dims)
    }

    /// The first SPS, parsed on first use and kept.
    pub fn first_sps(&self) -> Result<&Arc<Sps>, CodecError> {
        let parse = || {
            let nal = self
                .units(NAL_SPS)
                .next()
                .ok_or_else(|| CodecError::Invalid { what: WHAT_HVCC, reason: "no sequence parameter set".into() })?;
            parse_sps(nal).map(Arc::new)
        };
        self.parsed.first_sps.get_or_init(parse).as_ref().map_err(Clone::clone)
    }

    /// All the record's SPS and PPS, parsed on first use and kept (the first SPS is the
    /// one of [`HvcConfig::first_sps`]). A record without SPS gives empty sets.
    pub fn parameter_sets(&self) -> Result<&ParameterSets, CodecError> {
        let parse = || {
            let mut sets = ParameterSets::default();
            if self.units(NAL_SPS).next().is_some() {
                sets.add_sps(Arc::clone(self.first_sps()?));
            }
            for nal in self.units(NAL_SPS).skip(1).chain(self.units(NAL_PPS)) {
                sets.add(nal)?;
            }
            Ok(sets)
        };
        self.parsed.sets.get_or_init(parse).as_ref().map_err(Clone::clone)
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
        parsed: ParsedSets::default(),
    })
}
