//! Finding H.264 and HEVC access units in length-prefixed NAL data that has no index (an
//! `mdat` whose `moov` is lost): where a picture's NAL units end, whether it is a
//! keyframe, and whether some bytes can start one at all.
//!
//! A NAL unit must have a plausible length and a valid header (forbidden bit clear, a type
//! allowed in an access unit, H.264 `nal_ref_idc` consistent with the type). An access
//! unit is optional parameter sets, SEI and delimiters, then the first slice of a
//! picture (`first_mb_in_slice` 0, HEVC `first_slice_segment_in_pic_flag`), then further
//! slices of the same picture and suffix units (ITU-T H.264 §7.4.1.2.3, H.265 §7.4.2.4.4).

use super::{h264, hevc};

/// Which NAL syntax.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NalSyntax {
    H264,
    Hevc,
}

/// What the stream's configuration says about its NAL units.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuRules {
    pub syntax: NalSyntax,
    /// Bytes of each NAL length prefix (1, 2 or 4), from avcC/hvcC.
    pub length_size: u8,
    /// Largest NAL unit accepted: a length above it is not a NAL unit.
    pub max_nal_size: usize,
}

/// The result of looking for an access unit at the start of some bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuParse {
    /// An access unit of `len` bytes (length prefixes included).
    Unit { len: usize, keyframe: bool },
    /// The bytes so far are consistent with an access unit; more are needed to see its end.
    NeedMore,
    /// These bytes do not start an access unit.
    NotAnAccessUnit,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// Parameter sets, SEI, delimiters: only before the first slice.
    Prefix,
    /// The first slice of a picture.
    FirstSlice {
        keyframe: bool,
    },
    /// Another slice of the same picture.
    NextSlice,
    /// Units that may follow the slices (suffix SEI, end of sequence, filler).
    Suffix,
    Invalid,
}

fn classify(nal: &[u8], syntax: NalSyntax) -> Role {
    let Some(&b0) = nal.first() else { return Role::Invalid };
    if b0 & 0x80 != 0 {
        return Role::Invalid;
    }
    match syntax {
        NalSyntax::H264 => {
            let ref_idc = (b0 >> 5) & 3;
            match h264::nal_type(b0) {
                t @ (h264::NAL_SLICE | h264::NAL_IDR) => {
                    if t == h264::NAL_IDR && ref_idc == 0 {
                        return Role::Invalid;
                    }
                    match h264::first_mb_in_slice(nal) {
                        Some(0) => Role::FirstSlice { keyframe: t == h264::NAL_IDR },
                        Some(_) => Role::NextSlice,
                        None => Role::Invalid,
                    }
                }
                h264::NAL_SEI | h264::NAL_AUD if ref_idc == 0 => Role::Prefix,
                h264::NAL_SPS | h264::NAL_PPS | 13 if ref_idc != 0 => Role::Prefix,
                10..=12 => Role::Suffix,
                _ => Role::Invalid,
            }
        }
        NalSyntax::Hevc => {
            let Some(&b1) = nal.get(1) else { return Role::Invalid };
            // Base layer only; TemporalId + 1 is never 0.
            if (b0 & 1) != 0 || (b1 >> 3) != 0 || (b1 & 7) == 0 {
                return Role::Invalid;
            }
            match hevc::nal_type(b0) {
                t @ (0..=9 | 16..=21) => match hevc::first_slice_segment_in_pic(nal) {
                    Some(true) => Role::FirstSlice { keyframe: hevc::is_irap(t) },
                    Some(false) => Role::NextSlice,
                    None => Role::Invalid,
                },
                32..=35 | hevc::NAL_PREFIX_SEI => Role::Prefix,
                36..=38 | hevc::NAL_SUFFIX_SEI => Role::Suffix,
                _ => Role::Invalid,
            }
        }
    }
}

/// Largest NAL unit that is not a slice (parameter sets, SEI, delimiters) accepted. Real
/// ones are a few hundred bytes; a looser bound lets bytes that are not NAL units at all
/// pass for one whose end lies megabytes ahead, and be waited for.
pub const MAX_NON_SLICE_NAL_SIZE: usize = 64 << 10;

/// Whether a NAL header byte announces coded slice data, the only big NAL units.
fn is_slice(b0: u8, syntax: NalSyntax) -> bool {
    match syntax {
        NalSyntax::H264 => (1..=5).contains(&h264::nal_type(b0)),
        NalSyntax::Hevc => hevc::nal_type(b0) < 32,
    }
}

/// The NAL unit at `data[pos..]`: `Ok(Some(body))`, `Ok(None)` when its bytes have not all
/// arrived, `Err(())` when the length is not plausible.
fn nal_at<'a>(data: &'a [u8], pos: usize, rules: &AuRules) -> Result<Option<&'a [u8]>, ()> {
    let ls = rules.length_size as usize;
    let Some(prefix) = data.get(pos..pos + ls) else { return Ok(None) };
    let len = prefix.iter().fold(0usize, |acc, &b| (acc << 8) | b as usize);
    let min = if rules.syntax == NalSyntax::Hevc { 3 } else { 2 };
    let max = match data.get(pos + ls) {
        Some(&b0) if !is_slice(b0, rules.syntax) => rules.max_nal_size.min(MAX_NON_SLICE_NAL_SIZE),
        _ => rules.max_nal_size,
    };
    if len < min || len > max {
        return Err(());
    }
    Ok(data.get(pos + ls..pos + ls + len))
}

/// Looks for an access unit at the start of `data`. With `at_end`, no more bytes will
/// come, so a unit that reaches the end of `data` is complete.
pub fn access_unit(data: &[u8], rules: &AuRules, at_end: bool) -> AuParse {
    let ls = rules.length_size as usize;
    let mut pos = 0;
    let mut keyframe = None;
    loop {
        let nal = match nal_at(data, pos, rules) {
            Ok(Some(nal)) => nal,
            // The input ends inside or right after this unit: the picture is complete if
            // whatever was cut cannot have been more of it.
            Ok(None) if at_end => {
                let cut = &data[(pos + ls).min(data.len())..];
                let more_of_it = matches!(classify(cut, rules.syntax), Role::NextSlice | Role::Suffix);
                return match keyframe {
                    Some(keyframe) if pos == data.len() || (cut.len() >= 2 && !more_of_it) => {
                        AuParse::Unit { len: pos, keyframe }
                    }
                    _ => AuParse::NotAnAccessUnit,
                };
            }
            Ok(None) => return AuParse::NeedMore,
            Err(()) => {
                return match keyframe {
                    Some(keyframe) => AuParse::Unit { len: pos, keyframe },
                    None => AuParse::NotAnAccessUnit,
                };
            }
        };
        let role = classify(nal, rules.syntax);
        match (keyframe, role) {
            (None, Role::Prefix) => {}
            (None, Role::FirstSlice { keyframe: k }) => keyframe = Some(k),
            (None, _) => return AuParse::NotAnAccessUnit,
            (Some(_), Role::NextSlice | Role::Suffix) => {}
            // A new picture, or bytes that are not a NAL unit: this one ended before them.
            (Some(keyframe), Role::Prefix | Role::FirstSlice { .. } | Role::Invalid) => {
                return AuParse::Unit { len: pos, keyframe };
            }
        }
        pos += ls + nal.len();
    }
}

/// Whether an access unit can start at `data[0]`: its first NAL unit is whole, has a
/// valid header, and may open an access unit.
#[cfg(any(test, feature = "internals"))]
pub fn may_start_access_unit(data: &[u8], rules: &AuRules) -> bool {
    match nal_at(data, 0, rules) {
        Ok(Some(nal)) => matches!(classify(nal, rules.syntax), Role::Prefix | Role::FirstSlice { .. }),
        _ => false,
    }
}

/// Whether `data` begins like an access unit, judging the first NAL unit by its length
/// and header only: for bytes the input was cut in, where the unit cannot be whole.
pub fn starts_like_access_unit(data: &[u8], rules: &AuRules) -> bool {
    let ls = rules.length_size as usize;
    match nal_at(data, 0, rules) {
        Ok(Some(nal)) => matches!(classify(nal, rules.syntax), Role::Prefix | Role::FirstSlice { .. }),
        Ok(None) => {
            data.len() > ls + 2 && matches!(classify(&data[ls..], rules.syntax), Role::Prefix | Role::FirstSlice { .. })
        }
        Err(()) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: AuRules = AuRules { syntax: NalSyntax::H264, length_size: 4, max_nal_size: 1 << 20 };

    fn nal(body: &[u8]) -> Vec<u8> {
        let mut v = (body.len() as u32).to_be_bytes().to_vec();
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn only_slices_may_be_big() {
        // An "SEI" claiming 100 KB: bytes that are not a NAL unit, not one to wait for.
        let mut sei = (100_000u32).to_be_bytes().to_vec();
        sei.extend_from_slice(&[0x06, 0x05, 0x10]);
        assert_eq!(access_unit(&sei, &RULES, false), AuParse::NotAnAccessUnit);
        assert!(!starts_like_access_unit(&sei, &RULES));
        // An IDR slice that long is waited for.
        let mut idr = (100_000u32).to_be_bytes().to_vec();
        idr.extend_from_slice(&[0x65, 0x88, 0x84]);
        assert_eq!(access_unit(&idr, &RULES, false), AuParse::NeedMore);
        assert!(starts_like_access_unit(&idr, &RULES));
    }

    #[test]
    fn splits_pictures_and_stops_at_foreign_bytes() {
        // SPS, PPS, IDR slice (first_mb 0: ue '1'), then a P slice of the next picture.
        let sps = nal(&[0x67, 0x42, 0x00, 0x1e]);
        let pps = nal(&[0x68, 0xce, 0x38, 0x80]);
        let idr = nal(&[0x65, 0x88, 0x84, 0x00]);
        let p = nal(&[0x41, 0x9a, 0x00]);
        let first: Vec<u8> = [sps, pps, idr].concat();
        let mut data = first.clone();
        data.extend(&p);
        assert_eq!(access_unit(&data, &RULES, false), AuParse::Unit { len: first.len(), keyframe: true });
        assert_eq!(access_unit(&data[first.len()..], &RULES, true), AuParse::Unit { len: p.len(), keyframe: false });
        assert_eq!(access_unit(&data[first.len()..], &RULES, false), AuParse::NeedMore);
        // Audio-like bytes after a picture end it; on their own they start nothing.
        let mut mixed = p.clone();
        mixed.extend_from_slice(&[0x21, 0x10, 0x05, 0x00, 0x07]);
        assert_eq!(access_unit(&mixed, &RULES, false), AuParse::Unit { len: p.len(), keyframe: false });
        assert_eq!(access_unit(&mixed[p.len()..], &RULES, false), AuParse::NotAnAccessUnit);
        assert!(may_start_access_unit(&data, &RULES));
        assert!(!may_start_access_unit(&mixed[p.len()..], &RULES));
    }

    #[test]
    fn rejects_forbidden_bits_and_inconsistent_ref_idc() {
        assert_eq!(access_unit(&nal(&[0xe5, 0x88]), &RULES, true), AuParse::NotAnAccessUnit);
        // IDR with nal_ref_idc 0.
        assert_eq!(access_unit(&nal(&[0x05, 0x88]), &RULES, true), AuParse::NotAnAccessUnit);
        // A second slice cannot open an access unit.
        assert_eq!(access_unit(&nal(&[0x41, 0x40]), &RULES, true), AuParse::NotAnAccessUnit);
    }

    #[test]
    fn never_panics_on_any_prefix() {
        let mut x: u32 = 12345;
        for len in 0..300 {
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (x >> 16) as u8
                })
                .collect();
            for syntax in [NalSyntax::H264, NalSyntax::Hevc] {
                for length_size in [1, 2, 4] {
                    let rules = AuRules { syntax, length_size, max_nal_size: 1000 };
                    let _ = access_unit(&data, &rules, len % 2 == 0);
                    let _ = may_start_access_unit(&data, &rules);
                }
            }
        }
    }
}
