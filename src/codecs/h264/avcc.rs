//! The AVCDecoderConfigurationRecord (`avcC`) of ISO/IEC 14496-15 §5.3.3.1, including the
//! high-profile extension (chroma_format, bit depths, SPS extensions).

use std::ops::Range;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};

use super::sps::parse_pps;
use super::{nal_type, parse_sps, ParameterSets, Sps, NAL_PPS, NAL_SPS};
use crate::codecs::{CodecError, Dimensions, ParsedSets};

const WHAT_AVCC: &str = "avcC";
const WHAT_SPS: &str = "H.264 SPS";

/// Profiles for which ISO/IEC 14496-15 §5.3.3.1.2 appends the chroma/bit-depth extension
/// to the `avcC` record.
fn profile_has_avcc_ext(profile_idc: u8) -> bool {
    matches!(profile_idc, 100 | 110 | 122 | 144)
}


/// The AVCDecoderConfigurationRecord (ISO/IEC 14496-15 §5.3.3.1).
///
/// The parameter sets are parsed once, when first needed ([`AvcConfig::first_sps`],
/// [`AvcConfig::parameter_sets`]); change `sps` / `pps` only on a record not yet asked for
/// them.
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
    parsed: ParsedSets<Sps, ParameterSets>,
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
        let parsed = ParsedSets::default();
        let ext = if profile_has_avcc_ext(profile_idc) {
            let info = Arc::new(parse_sps(first)?);
            let ext = Bytes::from(vec![
                0xfc | (info.chroma_format_idc & 3),
                0xf8 | (info.bit_depth_luma_minus8 & 7),
                0xf8 | (info.bit_depth_chroma_minus8 & 7),
                0, // numOfSequenceParameterSetExt
            ]);
            // The record's first SPS is parsed here, once: dimensions and the slice and
            // POC parameter sets reuse it.
            let _ = parsed.first_sps.set(Ok(info));
            ext
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
            parsed,
        })
    }

    /// The first SPS, parsed on first use and kept.
    pub fn first_sps(&self) -> Result<&Arc<Sps>, CodecError> {
        let parse = || {
            let nal = self
                .sps
                .first()
                .ok_or_else(|| CodecError::Invalid { what: WHAT_AVCC, reason: "no sequence parameter set".into() })?;
            parse_sps(nal).map(Arc::new)
        };
        self.parsed.first_sps.get_or_init(parse).as_ref().map_err(Clone::clone)
    }

    /// All the record's SPS and PPS, parsed on first use and kept (the first SPS is the
    /// one of [`AvcConfig::first_sps`]). Values only the slice check bounds are kept as
    /// coded (see [`ParameterSets::check_slice_limits`]).
    pub fn parameter_sets(&self) -> Result<&ParameterSets, CodecError> {
        let parse = || {
            let mut sets = ParameterSets::default();
            sets.add_sps(Arc::clone(self.first_sps()?));
            for nal in self.sps.iter().skip(1) {
                sets.add_sps(Arc::new(parse_sps(nal)?));
            }
            for nal in &self.pps {
                sets.add_pps(Arc::new(parse_pps(nal)?));
            }
            Ok(sets)
        };
        self.parsed.sets.get_or_init(parse).as_ref().map_err(Clone::clone)
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

    /// Display dimensions from the first SPS ([`AvcConfig::first_sps`]).
    pub fn dimensions(&self) -> Result<Dimensions, CodecError> {
        self.first_sps().map(|s| s.dims)
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
        parsed: ParsedSets::default(),
    })
}
