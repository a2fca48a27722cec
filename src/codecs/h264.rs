//! H.264 / AVC: the `avcC` configuration record, sequence parameter sets and NAL framing.
//!
//! - [`AvcConfig`] is the AVCDecoderConfigurationRecord of ISO/IEC 14496-15 §5.3.3.1
//!   (including the high-profile extension: chroma_format, bit depths, SPS extensions).
//! - [`sps_dimensions`] parses `seq_parameter_set_data()` (ITU-T H.264 §7.3.2.1.1) as far
//!   as the frame cropping rectangle and applies it (§7.4.2.1.1, CropUnitX/CropUnitY).
//! - [`LengthPrefixed`] walks the length-prefixed NAL units of an ISO BMFF / Matroska
//!   sample (the AVC sample format of ISO/IEC 14496-15); [`annexb_nal_ranges`] splits an
//!   Annex B byte stream (ITU-T H.264 Annex B) on its start codes.
//!
//! [`BitReader`] and [`unescape_rbsp`] (emulation-prevention removal, §7.4.1) are shared
//! with the HEVC, AV1 and VP9 parsers.

use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};

use super::{CodecError, Dimensions};

pub const NAL_SLICE: u8 = 1;
pub const NAL_IDR: u8 = 5;
pub const NAL_SEI: u8 = 6;
pub const NAL_SPS: u8 = 7;
pub const NAL_PPS: u8 = 8;
pub const NAL_AUD: u8 = 9;

const WHAT_AVCC: &str = "avcC";
const WHAT_SPS: &str = "H.264 SPS";

/// `nal_unit_type` from the first byte of an H.264 NAL unit.
pub fn nal_type(first_byte: u8) -> u8 {
    first_byte & 0x1f
}

/// Profiles whose SPS carries chroma_format_idc, bit depths and scaling matrices
/// (ITU-T H.264 §7.3.2.1.1).
pub(crate) fn profile_has_chroma_info(profile_idc: u8) -> bool {
    matches!(profile_idc, 100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135)
}

/// Profiles for which ISO/IEC 14496-15 §5.3.3.1.2 appends the chroma/bit-depth extension
/// to the `avcC` record.
fn profile_has_avcc_ext(profile_idc: u8) -> bool {
    matches!(profile_idc, 100 | 110 | 122 | 144)
}

/// Removes emulation-prevention bytes (the `03` of every `00 00 03`) from NAL unit payload
/// bytes, giving the RBSP (ITU-T H.264 §7.4.1, H.265 §7.4.2).
pub fn unescape_rbsp(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut zeros = 0usize;
    for &b in data {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        if b == 0 {
            zeros += 1;
        } else {
            zeros = 0;
        }
        out.push(b);
    }
    out
}

/// MSB-first bit reader with Exp-Golomb support. Every read is bounds-checked and reports
/// [`CodecError::Truncated`] naming `what` when the data runs out.
#[derive(Clone, Debug)]
pub struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> BitReader<'a> {
    pub fn new(data: &'a [u8], what: &'static str) -> Self {
        BitReader { data, pos: 0, what }
    }

    /// Bits consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn bits_left(&self) -> usize {
        (self.data.len() * 8).saturating_sub(self.pos)
    }

    fn truncated(&self, extra_bits: usize) -> CodecError {
        CodecError::Truncated { what: self.what, len: self.data.len(), need: (self.pos + extra_bits).div_ceil(8) }
    }

    pub fn read_bit(&mut self) -> Result<bool, CodecError> {
        let byte = self.data.get(self.pos / 8).ok_or_else(|| self.truncated(1))?;
        let bit = (byte >> (7 - (self.pos % 8))) & 1;
        self.pos += 1;
        Ok(bit == 1)
    }

    /// Reads `n` bits (at most 32) as an unsigned big-endian value.
    pub fn read_bits(&mut self, n: u32) -> Result<u32, CodecError> {
        if n > 32 {
            return Err(CodecError::Invalid {
                what: self.what,
                reason: format!("read of {n} bits at once (at most 32)"),
            });
        }
        if self.bits_left() < n as usize {
            return Err(self.truncated(n as usize));
        }
        if n == 0 {
            return Ok(0);
        }
        // The (at most 5) bytes holding the bits, as one big-endian word.
        let first = self.pos / 8;
        let mut word = [0u8; 8];
        let take = (self.data.len() - first).min(8);
        word[..take].copy_from_slice(&self.data[first..first + take]);
        let v = (u64::from_be_bytes(word) << (self.pos % 8)) >> (64 - n);
        self.pos += n as usize;
        Ok(v as u32)
    }

    pub fn read_u8(&mut self, n: u32) -> Result<u8, CodecError> {
        Ok(self.read_bits(n.min(8))? as u8)
    }

    pub fn skip_bits(&mut self, n: usize) -> Result<(), CodecError> {
        if self.bits_left() < n {
            return Err(self.truncated(n));
        }
        self.pos += n;
        Ok(())
    }

    /// Skips to the next byte boundary.
    pub fn byte_align(&mut self) {
        self.pos = self.pos.div_ceil(8) * 8;
    }

    /// ue(v): unsigned Exp-Golomb code (H.264 §9.1). Codes longer than 32 bits are invalid.
    pub fn read_ue(&mut self) -> Result<u32, CodecError> {
        let mut zeros = 0u32;
        while !self.read_bit()? {
            zeros += 1;
            if zeros > 31 {
                return Err(CodecError::Invalid {
                    what: self.what,
                    reason: format!("Exp-Golomb code at bit {} is longer than 32 bits", self.pos),
                });
            }
        }
        let rest = self.read_bits(zeros)?;
        Ok(((1u64 << zeros) - 1 + u64::from(rest)) as u32)
    }

    /// se(v): signed Exp-Golomb code (H.264 §9.1.1).
    pub fn read_se(&mut self) -> Result<i32, CodecError> {
        let k = i64::from(self.read_ue()?);
        let v = if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) };
        Ok(v as i32)
    }

    /// ue(v) that must not exceed `max`; `field` names it in the error.
    pub fn read_ue_max(&mut self, field: &str, max: u32) -> Result<u32, CodecError> {
        let v = self.read_ue()?;
        if v > max {
            return Err(CodecError::Invalid {
                what: self.what,
                reason: format!("{field} is {v}, at most {max} allowed"),
            });
        }
        Ok(v)
    }
}

/// The AVCDecoderConfigurationRecord (ISO/IEC 14496-15 §5.3.3.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AvcConfig {
    pub profile_idc: u8,
    pub profile_compatibility: u8,
    pub level_idc: u8,
    /// 1, 2 or 4.
    pub nal_length_size: u8,
    pub sps: Vec<Bytes>,
    pub pps: Vec<Bytes>,
    /// The bytes after the PPS array, kept verbatim: for high profiles the chroma_format,
    /// bit depth and SPS-extension fields (§5.3.3.1.2). Empty when absent.
    pub ext: Bytes,
}

impl AvcConfig {
    /// Parses an `avcC` payload, copying the parameter sets.
    pub fn parse(rec: &[u8]) -> Result<Self, CodecError> {
        parse_avcc(rec, |r| Bytes::copy_from_slice(&rec[r]))
    }

    /// Like [`AvcConfig::parse`], but the parameter sets and `ext` are slices of `rec`.
    pub fn parse_bytes(rec: &Bytes) -> Result<Self, CodecError> {
        parse_avcc(rec, |r| rec.slice(r))
    }

    /// Builds a record from parameter sets taken from the bitstream: `nal_length_size` 4,
    /// profile and level from the first SPS, and for high profiles the chroma format and
    /// bit-depth extension parsed from that SPS.
    pub fn from_parameter_sets(sps: &[Bytes], pps: &[Bytes]) -> Result<Self, CodecError> {
        let first = sps
            .first()
            .ok_or_else(|| CodecError::Invalid { what: WHAT_AVCC, reason: "no sequence parameter set given".into() })?;
        if sps.len() > 31 {
            return Err(CodecError::Unsupported {
                what: WHAT_AVCC,
                reason: format!("{} SPS (a record holds at most 31)", sps.len()),
            });
        }
        if pps.len() > 255 {
            return Err(CodecError::Unsupported {
                what: WHAT_AVCC,
                reason: format!("{} PPS (a record holds at most 255)", pps.len()),
            });
        }
        for (i, s) in sps.iter().enumerate() {
            check_parameter_set(s, NAL_SPS, "SPS", i)?;
        }
        for (i, p) in pps.iter().enumerate() {
            check_parameter_set(p, NAL_PPS, "PPS", i)?;
        }
        if first.len() < 4 {
            return Err(CodecError::Truncated { what: WHAT_SPS, len: first.len(), need: 4 });
        }
        let (profile_idc, profile_compatibility, level_idc) = (first[1], first[2], first[3]);
        let ext = if profile_has_avcc_ext(profile_idc) {
            let info = parse_sps(first)?;
            Bytes::from(vec![
                0xfc | (info.chroma_format_idc & 3),
                0xf8 | (info.bit_depth_luma_minus8 & 7),
                0xf8 | (info.bit_depth_chroma_minus8 & 7),
                0, // numOfSequenceParameterSetExt
            ])
        } else {
            Bytes::new()
        };
        Ok(AvcConfig {
            profile_idc,
            profile_compatibility,
            level_idc,
            nal_length_size: 4,
            sps: sps.to_vec(),
            pps: pps.to_vec(),
            ext,
        })
    }

    /// Serializes the record. A `nal_length_size` outside 1..=4 is written as 4; at most
    /// 31 SPS and 255 PPS are written, and parameter sets over 65535 bytes are left out
    /// (neither can come from [`AvcConfig::parse`] or [`AvcConfig::from_parameter_sets`]).
    pub fn to_bytes(&self) -> Bytes {
        let fits = |b: &&Bytes| b.len() <= usize::from(u16::MAX);
        let sps: Vec<&Bytes> = self.sps.iter().filter(fits).take(31).collect();
        let pps: Vec<&Bytes> = self.pps.iter().filter(fits).take(255).collect();
        let size = match self.nal_length_size {
            1..=4 => self.nal_length_size,
            _ => 4,
        };
        let mut out =
            BytesMut::with_capacity(7 + sps.iter().chain(&pps).map(|b| b.len() + 2).sum::<usize>() + self.ext.len());
        out.put_slice(&[
            1,
            self.profile_idc,
            self.profile_compatibility,
            self.level_idc,
            0xfc | (size - 1),
            0xe0 | sps.len() as u8,
        ]);
        for s in &sps {
            out.put_u16(s.len() as u16);
            out.put_slice(s);
        }
        out.put_u8(pps.len() as u8);
        for p in &pps {
            out.put_u16(p.len() as u16);
            out.put_slice(p);
        }
        out.put_slice(&self.ext);
        out.freeze()
    }

    /// Display dimensions from the first SPS.
    pub fn dimensions(&self) -> Result<Dimensions, CodecError> {
        let sps = self
            .sps
            .first()
            .ok_or_else(|| CodecError::Invalid { what: WHAT_AVCC, reason: "no sequence parameter set".into() })?;
        sps_dimensions(sps)
    }
}

fn check_parameter_set(ps: &[u8], want: u8, kind: &str, i: usize) -> Result<(), CodecError> {
    let first =
        *ps.first().ok_or_else(|| CodecError::Invalid { what: WHAT_AVCC, reason: format!("{kind} #{i} is empty") })?;
    if nal_type(first) != want {
        return Err(CodecError::Invalid {
            what: WHAT_AVCC,
            reason: format!("{kind} #{i} has NAL type {}, expected {want}", nal_type(first)),
        });
    }
    if ps.len() > usize::from(u16::MAX) {
        return Err(CodecError::Unsupported {
            what: WHAT_AVCC,
            reason: format!("{kind} #{i} of {} bytes (at most 65535)", ps.len()),
        });
    }
    Ok(())
}

fn parse_avcc(rec: &[u8], mut take: impl FnMut(Range<usize>) -> Bytes) -> Result<AvcConfig, CodecError> {
    const HEADER: usize = 6;
    if rec.len() < HEADER + 1 {
        return Err(CodecError::Truncated { what: WHAT_AVCC, len: rec.len(), need: HEADER + 1 });
    }
    if rec.iter().all(|&b| b == 0) {
        return Err(CodecError::Invalid { what: WHAT_AVCC, reason: "record is all zeros".into() });
    }
    if rec[0] != 1 {
        return Err(CodecError::Invalid {
            what: WHAT_AVCC,
            reason: format!("configurationVersion is {}, expected 1", rec[0]),
        });
    }
    let length_size_minus_one = rec[4] & 3;
    if length_size_minus_one == 2 {
        return Err(CodecError::Invalid {
            what: WHAT_AVCC,
            reason: "lengthSizeMinusOne is 2 (3-byte NAL lengths are not allowed)".into(),
        });
    }
    let num_sps = usize::from(rec[5] & 0x1f);
    if num_sps == 0 {
        return Err(CodecError::Invalid { what: WHAT_AVCC, reason: "numOfSequenceParameterSets is 0".into() });
    }
    let mut pos = HEADER;
    let mut read_set = |pos: &mut usize, kind: &str, i: usize, want: u8| {
        let len_bytes =
            rec.get(*pos..*pos + 2).ok_or(CodecError::Truncated { what: WHAT_AVCC, len: rec.len(), need: *pos + 2 })?;
        let len = usize::from(u16::from_be_bytes([len_bytes[0], len_bytes[1]]));
        let start = *pos + 2;
        let end = start + len;
        if end > rec.len() {
            return Err(CodecError::Truncated { what: WHAT_AVCC, len: rec.len(), need: end });
        }
        check_parameter_set(&rec[start..end], want, kind, i)?;
        *pos = end;
        Ok::<Bytes, CodecError>(take(start..end))
    };
    let mut sps = Vec::with_capacity(num_sps);
    for i in 0..num_sps {
        sps.push(read_set(&mut pos, "SPS", i, NAL_SPS)?);
    }
    let num_pps =
        usize::from(*rec.get(pos).ok_or(CodecError::Truncated { what: WHAT_AVCC, len: rec.len(), need: pos + 1 })?);
    pos += 1;
    let mut pps = Vec::with_capacity(num_pps);
    for i in 0..num_pps {
        pps.push(read_set(&mut pos, "PPS", i, NAL_PPS)?);
    }
    let ext = if pos < rec.len() { take(pos..rec.len()) } else { Bytes::new() };
    Ok(AvcConfig {
        profile_idc: rec[1],
        profile_compatibility: rec[2],
        level_idc: rec[3],
        nal_length_size: length_size_minus_one + 1,
        sps,
        pps,
        ext,
    })
}

/// Fields of an H.264 SPS as far as the frame cropping rectangle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpsInfo {
    pub profile_idc: u8,
    pub constraint_flags: u8,
    pub level_idc: u8,
    pub seq_parameter_set_id: u32,
    pub chroma_format_idc: u8,
    pub separate_colour_plane: bool,
    pub bit_depth_luma_minus8: u8,
    pub bit_depth_chroma_minus8: u8,
    pub log2_max_frame_num_minus4: u8,
    pub pic_order_cnt_type: u8,
    pub max_num_ref_frames: u32,
    pub pic_width_in_mbs: u32,
    pub pic_height_in_map_units: u32,
    pub frame_mbs_only: bool,
    /// left, right, top, bottom `frame_crop_*_offset`, in crop units.
    pub crop: [u32; 4],
    /// Display size after cropping.
    pub dims: Dimensions,
}

/// Parses an SPS NAL unit (with its 1-byte header) as far as the cropping rectangle.
pub fn parse_sps(sps_nal: &[u8]) -> Result<SpsInfo, CodecError> {
    let header = *sps_nal.first().ok_or(CodecError::Truncated { what: WHAT_SPS, len: 0, need: 4 })?;
    if nal_type(header) != NAL_SPS {
        return Err(CodecError::Invalid {
            what: WHAT_SPS,
            reason: format!("NAL type is {}, expected {NAL_SPS}", nal_type(header)),
        });
    }
    let rbsp = unescape_rbsp(&sps_nal[1..]);
    let mut r = BitReader::new(&rbsp, WHAT_SPS);
    let profile_idc = r.read_u8(8)?;
    let constraint_flags = r.read_u8(8)?;
    let level_idc = r.read_u8(8)?;
    let seq_parameter_set_id = r.read_ue_max("seq_parameter_set_id", 31)?;
    let mut chroma_format_idc = 1u8;
    let mut separate_colour_plane = false;
    let mut bit_depth_luma_minus8 = 0u8;
    let mut bit_depth_chroma_minus8 = 0u8;
    if profile_has_chroma_info(profile_idc) {
        chroma_format_idc = r.read_ue_max("chroma_format_idc", 3)? as u8;
        if chroma_format_idc == 3 {
            separate_colour_plane = r.read_bit()?;
        }
        bit_depth_luma_minus8 = r.read_ue_max("bit_depth_luma_minus8", 6)? as u8;
        bit_depth_chroma_minus8 = r.read_ue_max("bit_depth_chroma_minus8", 6)? as u8;
        let _qpprime_y_zero_transform_bypass = r.read_bit()?;
        if r.read_bit()? {
            // seq_scaling_matrix_present_flag
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.read_bit()? {
                    skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    let log2_max_frame_num_minus4 = r.read_ue_max("log2_max_frame_num_minus4", 12)? as u8;
    let pic_order_cnt_type = r.read_ue_max("pic_order_cnt_type", 2)? as u8;
    match pic_order_cnt_type {
        0 => {
            r.read_ue_max("log2_max_pic_order_cnt_lsb_minus4", 12)?;
        }
        1 => {
            let _delta_pic_order_always_zero = r.read_bit()?;
            r.read_se()?; // offset_for_non_ref_pic
            r.read_se()?; // offset_for_top_to_bottom_field
            let n = r.read_ue_max("num_ref_frames_in_pic_order_cnt_cycle", 255)?;
            for _ in 0..n {
                r.read_se()?;
            }
        }
        _ => {}
    }
    let max_num_ref_frames = r.read_ue()?;
    let _gaps_in_frame_num_value_allowed = r.read_bit()?;
    let pic_width_in_mbs = u64::from(r.read_ue()?) + 1;
    let pic_height_in_map_units = u64::from(r.read_ue()?) + 1;
    let frame_mbs_only = r.read_bit()?;
    if !frame_mbs_only {
        let _mb_adaptive_frame_field = r.read_bit()?;
    }
    let _direct_8x8_inference = r.read_bit()?;
    let mut crop = [0u32; 4];
    if r.read_bit()? {
        for c in &mut crop {
            *c = r.read_ue()?;
        }
    }

    let field_factor: u64 = if frame_mbs_only { 1 } else { 2 };
    let width = pic_width_in_mbs * 16;
    let height = pic_height_in_map_units * 16 * field_factor;
    let chroma_array_type = if separate_colour_plane { 0 } else { chroma_format_idc };
    let (crop_unit_x, crop_unit_y): (u64, u64) = match chroma_array_type {
        1 => (2, 2 * field_factor),
        2 => (2, field_factor),
        3 => (1, field_factor),
        _ => (1, field_factor),
    };
    let crop_w = (u64::from(crop[0]) + u64::from(crop[1])) * crop_unit_x;
    let crop_h = (u64::from(crop[2]) + u64::from(crop[3])) * crop_unit_y;
    if crop_w >= width || crop_h >= height {
        return Err(CodecError::Invalid {
            what: WHAT_SPS,
            reason: format!("cropping {crop:?} leaves nothing of the {width}x{height} frame"),
        });
    }
    let (w, h) = (width - crop_w, height - crop_h);
    if w > u64::from(u32::MAX) || h > u64::from(u32::MAX) {
        return Err(CodecError::Invalid { what: WHAT_SPS, reason: format!("frame size {w}x{h} is out of range") });
    }
    Ok(SpsInfo {
        profile_idc,
        constraint_flags,
        level_idc,
        seq_parameter_set_id,
        chroma_format_idc,
        separate_colour_plane,
        bit_depth_luma_minus8,
        bit_depth_chroma_minus8,
        log2_max_frame_num_minus4,
        pic_order_cnt_type,
        max_num_ref_frames,
        pic_width_in_mbs: pic_width_in_mbs as u32,
        pic_height_in_map_units: pic_height_in_map_units as u32,
        frame_mbs_only,
        crop,
        dims: Dimensions { width: w as u32, height: h as u32 },
    })
}

/// scaling_list() of H.264 §7.3.2.1.1.1, values discarded.
pub(crate) fn skip_scaling_list(r: &mut BitReader<'_>, size: usize) -> Result<(), CodecError> {
    let mut last_scale: i32 = 8;
    let mut next_scale: i32 = 8;
    for _ in 0..size {
        if next_scale != 0 {
            let delta = r.read_se()?;
            if !(-128..=127).contains(&delta) {
                return Err(CodecError::Invalid {
                    what: WHAT_SPS,
                    reason: format!("delta_scale {delta} is outside -128..=127"),
                });
            }
            next_scale = (last_scale + delta + 256) % 256;
        }
        if next_scale != 0 {
            last_scale = next_scale;
        }
    }
    Ok(())
}

/// Display width and height from an SPS NAL unit (with its header byte), after cropping.
pub fn sps_dimensions(sps_nal: &[u8]) -> Result<Dimensions, CodecError> {
    parse_sps(sps_nal).map(|s| s.dims)
}

/// `first_mb_in_slice` of a slice NAL unit: the ue(v) right after the 1-byte header.
/// `None` when the NAL unit is too short or the code is malformed.
pub fn first_mb_in_slice(nal: &[u8]) -> Option<u32> {
    // A 32-bit ue(v) spans at most 63 bits; allow for emulation-prevention bytes.
    let payload = nal.get(1..)?;
    let rbsp = unescape_rbsp(&payload[..payload.len().min(16)]);
    BitReader::new(&rbsp, "H.264 slice header").read_ue().ok()
}

/// Iterator over the NAL units of length-prefixed data (ISO/IEC 14496-15 sample format).
///
/// Yields each NAL unit (a zero length yields an empty slice). A length prefix that runs
/// past the end of the data, or an unsupported `nal_length_size`, yields one error and
/// ends the iteration.
#[derive(Clone, Debug)]
pub struct LengthPrefixed<'a> {
    data: &'a [u8],
    pos: usize,
    nal_length_size: u8,
    done: bool,
}

/// Iterates over the NAL units of `data`, whose lengths are `nal_length_size` (1, 2 or 4)
/// bytes big-endian.
pub fn length_prefixed(data: &[u8], nal_length_size: u8) -> LengthPrefixed<'_> {
    LengthPrefixed { data, pos: 0, nal_length_size, done: false }
}

impl<'a> LengthPrefixed<'a> {
    /// The next NAL unit as a range of the data, for slicing a `Bytes` without copying.
    pub fn next_range(&mut self) -> Option<Result<Range<usize>, CodecError>> {
        if self.done || self.pos >= self.data.len() {
            return None;
        }
        let size = usize::from(self.nal_length_size);
        if !matches!(size, 1 | 2 | 4) {
            self.done = true;
            return Some(Err(CodecError::Unsupported {
                what: "NAL length prefix",
                reason: format!("size {size} (1, 2 or 4 bytes expected)"),
            }));
        }
        let Some(prefix) = self.data.get(self.pos..self.pos + size) else {
            self.done = true;
            return Some(Err(CodecError::Truncated {
                what: "NAL length prefix",
                len: self.data.len() - self.pos,
                need: size,
            }));
        };
        let len = prefix.iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        let start = self.pos + size;
        let available = self.data.len() - start;
        if len > available {
            self.done = true;
            return Some(Err(CodecError::Truncated { what: "NAL unit", len: available, need: len }));
        }
        self.pos = start + len;
        Some(Ok(start..start + len))
    }

    /// Turns this iterator into one over ranges of the data.
    pub fn ranges(self) -> impl Iterator<Item = Result<Range<usize>, CodecError>> + 'a {
        let mut it = self;
        std::iter::from_fn(move || it.next_range())
    }
}

impl<'a> Iterator for LengthPrefixed<'a> {
    type Item = Result<&'a [u8], CodecError>;

    fn next(&mut self) -> Option<Self::Item> {
        let data = self.data;
        self.next_range().map(|r| r.map(|r| &data[r]))
    }
}

/// Splits an Annex B byte stream on its `00 00 01` / `00 00 00 01` start codes. Bytes
/// before the first start code are ignored, trailing zero bytes of each NAL unit are
/// trimmed, and empty units are left out.
pub fn annexb_nal_ranges(data: &[u8]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    let mut i = 0usize;
    let push = |s: usize, e: usize, out: &mut Vec<Range<usize>>| {
        let mut e = e;
        while e > s && data[e - 1] == 0 {
            e -= 1;
        }
        if e > s {
            out.push(s..e);
        }
    };
    while i + 3 <= data.len() {
        if data[i + 2] > 1 {
            i += 3;
        } else if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            if let Some(s) = start {
                push(s, i, &mut out);
            }
            start = Some(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    if let Some(s) = start {
        push(s, data.len(), &mut out);
    }
    out
}

/// True when `data` starts with an Annex B start code.
pub fn is_annexb(data: &[u8]) -> bool {
    data.starts_with(&[0, 0, 1]) || data.starts_with(&[0, 0, 0, 1])
}

/// Appends the NAL units of an Annex B stream to `out`, each with a 4-byte length.
pub fn annexb_to_length_prefixed(data: &[u8], out: &mut BytesMut) {
    let ranges = annexb_nal_ranges(data);
    out.reserve(ranges.iter().map(|r| r.len() + 4).sum());
    for r in ranges {
        // A NAL unit of 4 GiB or more cannot be length-prefixed; none is that large.
        let Ok(len) = u32::try_from(r.len()) else { continue };
        out.put_u32(len);
        out.put_slice(&data[r]);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// MSB-first bit writer for building test bitstreams.
    #[derive(Default)]
    pub(crate) struct BitWriter {
        bytes: Vec<u8>,
        bits: usize,
    }

    impl BitWriter {
        pub(crate) fn bit(&mut self, b: bool) {
            if self.bits % 8 == 0 {
                self.bytes.push(0);
            }
            if b {
                let last = self.bytes.len() - 1;
                self.bytes[last] |= 0x80 >> (self.bits % 8);
            }
            self.bits += 1;
        }
        pub(crate) fn bits(&mut self, n: u32, v: u64) {
            for i in (0..n).rev() {
                self.bit((v >> i) & 1 == 1);
            }
        }
        pub(crate) fn ue(&mut self, v: u32) {
            let v = u64::from(v) + 1;
            let len = 64 - v.leading_zeros();
            self.bits(len - 1, 0);
            self.bits(len, v);
        }
        pub(crate) fn se(&mut self, v: i32) {
            let k = if v > 0 { 2 * v as i64 - 1 } else { -2 * v as i64 };
            self.ue(k as u32);
        }
        /// rbsp_trailing_bits and the bytes.
        pub(crate) fn finish_rbsp(mut self) -> Vec<u8> {
            self.bit(true);
            while self.bits % 8 != 0 {
                self.bit(false);
            }
            self.bytes
        }
        pub(crate) fn finish(self) -> Vec<u8> {
            self.bytes
        }
        pub(crate) fn bit_count(&self) -> usize {
            self.bits
        }
    }

    /// Inserts emulation-prevention bytes.
    pub(crate) fn escape(rbsp: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut zeros = 0;
        for &b in rbsp {
            if zeros >= 2 && b <= 3 {
                out.push(3);
                zeros = 0;
            }
            zeros = if b == 0 { zeros + 1 } else { 0 };
            out.push(b);
        }
        out
    }

    /// Pseudo-random bytes from a linear congruential generator.
    pub(crate) struct Lcg(pub(crate) u64);
    impl Lcg {
        pub(crate) fn next_u8(&mut self) -> u8 {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (self.0 >> 33) as u8
        }
        pub(crate) fn bytes(&mut self, max_len: usize) -> Vec<u8> {
            let len = usize::from(self.next_u8()) * max_len / 256;
            (0..len).map(|_| self.next_u8()).collect()
        }
    }

    /// True when `e` is [`CodecError::Invalid`] with a reason containing `needle`.
    pub(crate) fn invalid_with(e: &CodecError, needle: &str) -> bool {
        matches!(e, CodecError::Invalid { reason, .. } if reason.contains(needle))
    }

    /// True when `r` is an `Err` for which [`invalid_with`] holds.
    pub(crate) fn fails_invalid<T>(r: &Result<T, CodecError>, needle: &str) -> bool {
        r.as_ref().err().is_some_and(|e| invalid_with(e, needle))
    }

    /// Runs `f` on every prefix of `valid` shorter than `valid`, expecting an error.
    pub(crate) fn assert_truncations_fail<T: std::fmt::Debug, E>(valid: &[u8], f: impl Fn(&[u8]) -> Result<T, E>) {
        for n in 0..valid.len() {
            assert!(f(&valid[..n]).is_err(), "prefix of {n} bytes parsed: {:?}", f(&valid[..n]).ok());
        }
    }

    /// Feeds `f` random byte strings, and random corruptions of `seed`, checking only that
    /// it returns.
    pub(crate) fn fuzz<R>(seed: &[u8], f: impl Fn(&[u8]) -> R) {
        let mut lcg = Lcg(0x1234_5678);
        for _ in 0..3000 {
            let _ = f(&lcg.bytes(64));
        }
        for _ in 0..3000 {
            let mut v = seed.to_vec();
            for _ in 0..1 + lcg.next_u8() % 4 {
                if v.is_empty() {
                    break;
                }
                let i = usize::from(lcg.next_u8()) * v.len() / 256;
                v[i] = lcg.next_u8();
            }
            let cut = v.len() - usize::from(lcg.next_u8() % 4).min(v.len());
            let _ = f(&v[..cut]);
            let _ = f(&v);
        }
    }

    // Real parameter sets written by x264 (`ffmpeg -f lavfi -i testsrc2=s=WxH -c:v libx264`),
    // with the sizes ffprobe reports.
    /// 1280x720 High, 4:2:0 8-bit, level 3.1.
    const SPS_720P: &[u8] = &[
        0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00,
        0x00, 0x03, 0x03, 0x20, 0xf1, 0x83, 0x19, 0x60,
    ];
    /// 1000x562 High (cropped from 1008x576).
    const SPS_1000X562: &[u8] = &[
        0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0xfc, 0x12, 0x79, 0x62, 0x30, 0x11, 0x00, 0x00, 0x03, 0x00, 0x01,
        0x00, 0x00, 0x03, 0x00, 0x32, 0x0f, 0x18, 0x31, 0x96,
    ];
    const PPS_X264: &[u8] = &[0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0];
    /// The `avcC` FFmpeg wrote for SPS_1000X562 / PPS_X264.
    const AVCC_1000X562: &[u8] = &[
        0x01, 0x64, 0x00, 0x1f, 0xff, 0xe1, 0x00, 0x1b, 0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0xfc, 0x12, 0x79,
        0x62, 0x30, 0x11, 0x00, 0x00, 0x03, 0x00, 0x01, 0x00, 0x00, 0x03, 0x00, 0x32, 0x0f, 0x18, 0x31, 0x96, 0x01,
        0x00, 0x06, 0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0, 0xfd, 0xf8, 0xf8, 0x00,
    ];
    /// 998x562 High 4:2:2 10-bit.
    const SPS_HI422: &[u8] = &[
        0x67, 0x7a, 0x00, 0x1f, 0xb6, 0xcd, 0x94, 0x0f, 0xc1, 0x27, 0x9a, 0x3f, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00,
        0x10, 0x00, 0x00, 0x03, 0x03, 0x20, 0xf1, 0x83, 0x19, 0x60,
    ];
    /// 720x572 High, interlaced (frame_mbs_only_flag 0).
    const SPS_INTERLACED: &[u8] = &[
        0x67, 0x64, 0x00, 0x1e, 0xac, 0xd9, 0x40, 0xb4, 0x24, 0xfd, 0x60, 0x22, 0x00, 0x00, 0x03, 0x00, 0x02, 0x00,
        0x00, 0x03, 0x00, 0x64, 0x3e, 0x28, 0x53, 0x2c,
    ];
    /// 722x482 High 4:4:4 Predictive.
    const SPS_444: &[u8] = &[
        0x67, 0xf4, 0x00, 0x1e, 0x91, 0x9b, 0x28, 0x17, 0x07, 0xfc, 0x7c, 0x7e, 0x02, 0x20, 0x00, 0x00, 0x03, 0x00,
        0x20, 0x00, 0x00, 0x06, 0x41, 0xe2, 0xc5, 0xb2, 0xc0,
    ];
    /// 640x360 Constrained Baseline.
    const SPS_BASELINE: &[u8] = &[
        0x67, 0x42, 0xc0, 0x1e, 0xd9, 0x00, 0xa0, 0x2f, 0xf9, 0x70, 0x11, 0x00, 0x00, 0x03, 0x00, 0x01, 0x00, 0x00,
        0x03, 0x00, 0x32, 0x0f, 0x16, 0x2e, 0x48,
    ];

    fn build_sps(f: impl FnOnce(&mut BitWriter)) -> Vec<u8> {
        let mut w = BitWriter::default();
        f(&mut w);
        let mut nal = vec![0x67];
        nal.extend(escape(&w.finish_rbsp()));
        nal
    }

    /// Baseline SPS with the given size in macroblocks and cropping.
    fn baseline_sps(w_mbs: u32, h_units: u32, frame_mbs_only: bool, crop: Option<[u32; 4]>) -> Vec<u8> {
        build_sps(|w| {
            w.bits(8, 66);
            w.bits(8, 0xc0);
            w.bits(8, 30);
            w.ue(0); // sps id
            w.ue(0); // log2_max_frame_num_minus4
            w.ue(2); // poc type 2
            w.ue(1); // max_num_ref_frames
            w.bit(false);
            w.ue(w_mbs - 1);
            w.ue(h_units - 1);
            w.bit(frame_mbs_only);
            if !frame_mbs_only {
                w.bit(false);
            }
            w.bit(true);
            w.bit(crop.is_some());
            if let Some(c) = crop {
                for v in c {
                    w.ue(v);
                }
            }
            w.bit(false); // vui
        })
    }

    #[test]
    fn bit_reader_exp_golomb() {
        let mut w = BitWriter::default();
        for v in [0u32, 1, 2, 3, 7, 255, 65535, u32::MAX - 1] {
            w.ue(v);
        }
        for v in [0i32, 1, -1, 2, -2, 1000, -1000] {
            w.se(v);
        }
        let data = w.finish();
        let mut r = BitReader::new(&data, "test");
        for v in [0u32, 1, 2, 3, 7, 255, 65535, u32::MAX - 1] {
            assert_eq!(r.read_ue().unwrap(), v);
        }
        for v in [0i32, 1, -1, 2, -2, 1000, -1000] {
            assert_eq!(r.read_se().unwrap(), v);
        }
        // 33 leading zeros are rejected, an empty reader is truncated.
        let zeros = [0u8; 8];
        assert!(matches!(BitReader::new(&zeros, "t").read_ue(), Err(CodecError::Invalid { .. })));
        assert!(matches!(BitReader::new(&[], "t").read_bit(), Err(CodecError::Truncated { .. })));
        let mut r = BitReader::new(&[0xff], "t");
        assert!(r.read_bits(9).is_err());
        assert_eq!(r.read_bits(8).unwrap(), 0xff);
    }

    #[test]
    fn unescape_removes_emulation_prevention() {
        assert_eq!(unescape_rbsp(&[0, 0, 3, 1, 0, 0, 3, 0, 0, 3]), vec![0, 0, 1, 0, 0, 0, 0]);
        assert_eq!(unescape_rbsp(&[0, 3, 0, 0, 3]), vec![0, 3, 0, 0]);
        assert_eq!(escape(&[0, 0, 0, 0, 0, 1]), vec![0, 0, 3, 0, 0, 3, 0, 1]);
    }

    #[test]
    fn real_sps_dimensions() {
        let cases: [(&[u8], u32, u32); 6] = [
            (SPS_720P, 1280, 720),
            (SPS_1000X562, 1000, 562),
            (SPS_HI422, 998, 562),
            (SPS_INTERLACED, 720, 572),
            (SPS_444, 722, 482),
            (SPS_BASELINE, 640, 360),
        ];
        for (sps, width, height) in cases {
            assert_eq!(sps_dimensions(sps).unwrap(), Dimensions { width, height });
        }
        let info = parse_sps(SPS_HI422).unwrap();
        assert_eq!((info.profile_idc, info.chroma_format_idc, info.bit_depth_luma_minus8), (122, 2, 2));
        assert!(!parse_sps(SPS_INTERLACED).unwrap().frame_mbs_only);
        assert_eq!(parse_sps(SPS_444).unwrap().chroma_format_idc, 3);
    }

    #[test]
    fn sps_cropping_and_fields() {
        // 1920x1080: 120x68 MBs cropped by 4 chroma rows (8 luma rows) at the bottom.
        let sps = baseline_sps(120, 68, true, Some([0, 0, 0, 4]));
        assert_eq!(sps_dimensions(&sps).unwrap(), Dimensions { width: 1920, height: 1080 });
        // Interlaced: map units are field MB pairs, crop unit is 4 rows.
        let sps = baseline_sps(45, 18, false, Some([1, 1, 0, 2]));
        assert_eq!(sps_dimensions(&sps).unwrap(), Dimensions { width: 716, height: 568 });
        // Cropping everything is invalid.
        let sps = baseline_sps(2, 2, true, Some([8, 8, 0, 0]));
        assert!(matches!(sps_dimensions(&sps), Err(CodecError::Invalid { .. })));
        // Not an SPS.
        assert!(matches!(sps_dimensions(&[0x68, 0xeb]), Err(CodecError::Invalid { .. })));
    }

    #[test]
    fn sps_high_profile_444_scaling_lists_poc1() {
        let sps = build_sps(|w| {
            w.bits(8, 244);
            w.bits(8, 0);
            w.bits(8, 40);
            w.ue(3); // sps id
            w.ue(3); // chroma_format_idc 4:4:4
            w.bit(false); // separate_colour_plane
            w.ue(2); // bit depth luma 10
            w.ue(2);
            w.bit(false);
            w.bit(true); // scaling matrix present
            for i in 0..12 {
                let present = i % 3 == 0;
                w.bit(present);
                if present {
                    // First delta sets nextScale to 0: the list stops reading.
                    w.se(if i == 0 { -8 } else { 5 });
                    if i != 0 {
                        for _ in 1..(if i < 6 { 16 } else { 64 }) {
                            w.se(1);
                        }
                    }
                }
            }
            w.ue(0);
            w.ue(1); // poc type 1
            w.bit(false);
            w.se(-3);
            w.se(7);
            w.ue(3);
            for v in [1, -1, 2] {
                w.se(v);
            }
            w.ue(4);
            w.bit(false);
            w.ue(39); // 640
            w.ue(29); // 480
            w.bit(true);
            w.bit(true);
            w.bit(true);
            w.ue(3); // crop units of 1 pixel in 4:4:4
            w.ue(0);
            w.ue(1);
            w.ue(0);
        });
        let info = parse_sps(&sps).unwrap();
        assert_eq!(info.chroma_format_idc, 3);
        assert_eq!(info.bit_depth_luma_minus8, 2);
        assert_eq!(info.pic_order_cnt_type, 1);
        assert_eq!(info.seq_parameter_set_id, 3);
        assert_eq!(info.dims, Dimensions { width: 637, height: 479 });
    }

    #[test]
    fn sps_emulation_prevention_is_removed() {
        // pic_width_in_mbs_minus1 = 2^24 - 1 is coded with 24 zero bits: the NAL needs
        // emulation-prevention bytes, which the parser must drop.
        let sps = baseline_sps(1 << 24, 3, true, Some([0, 1, 0, 1]));
        assert!(sps.windows(3).any(|w| w == [0, 0, 3]));
        assert_eq!(sps_dimensions(&sps).unwrap(), Dimensions { width: (1 << 28) - 2, height: 46 });
    }

    #[test]
    fn sps_truncations_fail() {
        // The VUI after the cropping fields is not needed: every prefix either fails or
        // gives the full answer, and prefixes that end before the cropping fields fail.
        for sps in [SPS_720P, SPS_1000X562, SPS_HI422, SPS_INTERLACED, SPS_444, SPS_BASELINE] {
            let full = sps_dimensions(sps).unwrap();
            let shortest = (0..sps.len()).find(|&n| sps_dimensions(&sps[..n]).is_ok()).unwrap();
            assert!(shortest > 6, "{shortest}");
            assert_truncations_fail(&sps[..shortest], sps_dimensions);
            for n in shortest..sps.len() {
                assert_eq!(sps_dimensions(&sps[..n]).unwrap(), full);
            }
        }
    }

    #[test]
    fn sps_fuzz() {
        for sps in [SPS_720P, SPS_HI422, SPS_INTERLACED, SPS_444] {
            fuzz(sps, sps_dimensions);
        }
        fuzz(&baseline_sps(10, 10, false, Some([1, 2, 3, 0])), sps_dimensions);
        fuzz(&[], first_mb_in_slice);
    }

    #[test]
    fn avcc_parse_roundtrip() {
        let cfg = AvcConfig::parse(AVCC_1000X562).unwrap();
        assert_eq!((cfg.profile_idc, cfg.level_idc, cfg.nal_length_size), (100, 31, 4));
        assert_eq!(cfg.sps, vec![Bytes::from_static(SPS_1000X562)]);
        assert_eq!(cfg.pps, vec![Bytes::from_static(PPS_X264)]);
        assert_eq!(&cfg.ext[..], &[0xfd, 0xf8, 0xf8, 0x00]);
        assert_eq!(&cfg.to_bytes()[..], AVCC_1000X562);
        assert_eq!(cfg.dimensions().unwrap(), Dimensions { width: 1000, height: 562 });
        let shared = Bytes::from_static(AVCC_1000X562);
        let zero_copy = AvcConfig::parse_bytes(&shared).unwrap();
        assert_eq!(zero_copy, cfg);
        assert_eq!(zero_copy.sps[0].as_ptr(), shared[8..].as_ptr());
    }

    #[test]
    fn avcc_from_parameter_sets_matches_ffmpeg() {
        let cfg = AvcConfig::from_parameter_sets(&[Bytes::from_static(SPS_1000X562)], &[Bytes::from_static(PPS_X264)])
            .unwrap();
        assert_eq!(&cfg.to_bytes()[..], AVCC_1000X562);
        // High 4:2:2 10-bit: the extension carries chroma_format 2 and bit depth 10.
        let cfg = AvcConfig::from_parameter_sets(&[Bytes::from_static(SPS_HI422)], &[]).unwrap();
        assert_eq!(&cfg.ext[..], &[0xfe, 0xfa, 0xfa, 0x00]);
        // Baseline: no extension.
        let cfg = AvcConfig::from_parameter_sets(&[Bytes::from_static(SPS_BASELINE)], &[]).unwrap();
        assert!(cfg.ext.is_empty());
        assert_eq!(cfg.dimensions().unwrap(), Dimensions { width: 640, height: 360 });
        assert_eq!(AvcConfig::parse(&cfg.to_bytes()).unwrap(), cfg);
        let sps = Bytes::from(baseline_sps(20, 15, true, None));
        let cfg = AvcConfig::from_parameter_sets(&[sps], &[]).unwrap();
        assert_eq!(cfg.dimensions().unwrap(), Dimensions { width: 320, height: 240 });
        assert!(AvcConfig::from_parameter_sets(&[], &[]).is_err());
        assert!(AvcConfig::from_parameter_sets(&[Bytes::from_static(PPS_X264)], &[]).is_err());
        assert!(
            AvcConfig::from_parameter_sets(&[Bytes::from_static(SPS_720P)], &[Bytes::from_static(SPS_720P)]).is_err()
        );
    }

    #[test]
    fn avcc_rejections() {
        let good = AVCC_1000X562.to_vec();
        let reason = |r: Result<AvcConfig, CodecError>| match r {
            Err(CodecError::Invalid { reason, .. }) => reason,
            other => panic!("expected Invalid, got {other:?}"),
        };
        assert!(fails_invalid(&AvcConfig::parse(&[0; 9]), "all zeros"));
        assert!(reason(AvcConfig::parse(&vec![0u8; good.len()])).contains("all zeros"));
        let mut v = good.clone();
        v[0] = 2;
        assert!(reason(AvcConfig::parse(&v)).contains("configurationVersion"));
        let mut v = good.clone();
        v[4] = 0xfe;
        assert!(reason(AvcConfig::parse(&v)).contains("lengthSizeMinusOne"));
        for (b, size) in [(0xfc, 1), (0xfd, 2), (0xff, 4)] {
            let mut v = good.clone();
            v[4] = b;
            assert_eq!(AvcConfig::parse(&v).unwrap().nal_length_size, size);
        }
        let mut v = good.clone();
        v[5] = 0xe0;
        assert!(reason(AvcConfig::parse(&v)).contains("numOfSequenceParameterSets"));
        let mut v = good.clone();
        v[8] = 0x68;
        assert!(reason(AvcConfig::parse(&v)).contains("NAL type 8"));
        let mut v = good.clone();
        v[6] = 0;
        v[7] = 0;
        assert!(reason(AvcConfig::parse(&v)).contains("empty"));
    }

    #[test]
    fn avcc_truncations_fail() {
        // Cutting inside the parameter sets fails; cutting the extension still parses.
        let rec = AVCC_1000X562;
        assert_truncations_fail(&rec[..rec.len() - 4], AvcConfig::parse);
        assert!(AvcConfig::parse(&rec[..rec.len() - 2]).is_ok());
        let err = AvcConfig::parse(&rec[..10]).unwrap_err();
        assert_eq!(err, CodecError::Truncated { what: "avcC", len: 10, need: 35 });
    }

    #[test]
    fn avcc_fuzz() {
        fuzz(AVCC_1000X562, AvcConfig::parse);
        fuzz(AVCC_1000X562, |d| AvcConfig::parse(d).map(|c| c.dimensions()));
    }

    #[test]
    fn nal_helpers() {
        assert_eq!(nal_type(0x65), NAL_IDR);
        assert_eq!(nal_type(0x41), NAL_SLICE);
        assert_eq!(nal_type(0x06), NAL_SEI);
        assert_eq!(nal_type(0x09), NAL_AUD);
        // first_mb_in_slice 0 ("1"), and 300 with an emulation-prevention byte in front.
        assert_eq!(first_mb_in_slice(&[0x65, 0x88, 0x84]), Some(0));
        let mut w = BitWriter::default();
        w.ue(300);
        w.bits(16, 0);
        let payload = escape(&w.finish());
        let mut nal = vec![0x41];
        nal.extend(payload);
        assert_eq!(first_mb_in_slice(&nal), Some(300));
        assert_eq!(first_mb_in_slice(&[0x41]), None);
        assert_eq!(first_mb_in_slice(&[]), None);
        assert_eq!(first_mb_in_slice(&[0x41, 0, 0, 3, 0, 0, 3, 0]), None);
    }

    #[test]
    fn length_prefixed_iteration() {
        let data = [0, 0, 0, 2, 0x65, 0x88, 0, 0, 0, 0, 0, 0, 0, 1, 0x09];
        let nals: Vec<_> = length_prefixed(&data, 4).collect::<Result<_, _>>().unwrap();
        assert_eq!(nals, vec![&[0x65, 0x88][..], &[][..], &[0x09][..]]);
        let ranges: Vec<_> = length_prefixed(&data, 4).ranges().collect::<Result<_, _>>().unwrap();
        assert_eq!(ranges, vec![4..6, 10..10, 14..15]);
        let two = [0, 1, 0xaa, 0, 2, 0xbb, 0xcc];
        assert_eq!(length_prefixed(&two, 2).count(), 2);
        let one = [1, 0xaa, 0];
        assert_eq!(length_prefixed(&one, 1).collect::<Vec<_>>(), vec![Ok(&[0xaa][..]), Ok(&[][..])]);
        // Overrun: one error, then the end.
        let bad = [0, 0, 0, 1, 0x65, 0, 0, 0, 9, 1, 2];
        let items: Vec<_> = length_prefixed(&bad, 4).collect();
        assert_eq!(items.len(), 2);
        assert_eq!(items[1], Err(CodecError::Truncated { what: "NAL unit", len: 2, need: 9 }));
        // A partial prefix.
        let items: Vec<_> = length_prefixed(&[0, 0, 0, 1, 0x65, 0, 0], 4).collect();
        assert!(matches!(items[1], Err(CodecError::Truncated { what: "NAL length prefix", .. })));
        // Unsupported size.
        let items: Vec<_> = length_prefixed(&data, 3).collect();
        assert!(matches!(items[..], [Err(CodecError::Unsupported { .. })]));
        assert_eq!(length_prefixed(&[], 4).count(), 0);
    }

    #[test]
    fn length_prefixed_fuzz() {
        let mut lcg = Lcg(99);
        for _ in 0..5000 {
            let data = lcg.bytes(48);
            let size = [1, 2, 3, 4, 0][usize::from(lcg.next_u8() % 5)];
            let items: Vec<_> = length_prefixed(&data, size).collect();
            // Errors only come last.
            if let Some(pos) = items.iter().position(|i| i.is_err()) {
                assert_eq!(pos, items.len() - 1);
            }
        }
    }

    #[test]
    fn annexb_splitting() {
        let data = [0, 0, 0, 1, 0x67, 0xaa, 0, 0, 1, 0x68, 0xbb, 0, 0, 0, 0, 1, 0x65, 0x88, 0, 0, 3, 1, 0, 0];
        assert!(is_annexb(&data));
        assert!(is_annexb(&data[1..]));
        assert!(!is_annexb(&data[2..]));
        let ranges = annexb_nal_ranges(&data);
        assert_eq!(ranges, vec![4..6, 9..11, 16..22]);
        let mut out = BytesMut::new();
        annexb_to_length_prefixed(&data, &mut out);
        assert_eq!(&out[..], &[0, 0, 0, 2, 0x67, 0xaa, 0, 0, 0, 2, 0x68, 0xbb, 0, 0, 0, 6, 0x65, 0x88, 0, 0, 3, 1]);
        // Leading garbage is dropped; empty units are skipped; no start code, no units.
        assert_eq!(annexb_nal_ranges(&[7, 7, 0, 0, 1, 0, 0, 1, 9]), vec![8..9]);
        assert!(annexb_nal_ranges(&[1, 2, 3, 0, 0]).is_empty());
        assert!(annexb_nal_ranges(&[0, 0, 1]).is_empty());
        let mut lcg = Lcg(5);
        for _ in 0..3000 {
            let mut d = lcg.bytes(64);
            for b in &mut d {
                *b &= 3; // many start codes
            }
            for r in annexb_nal_ranges(&d) {
                assert!(r.start < r.end && r.end <= d.len() && d[r.end - 1] != 0);
            }
        }
    }
}
