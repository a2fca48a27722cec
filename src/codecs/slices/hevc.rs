//! The HEVC slice segment header check: `slice_segment_header()` of ITU-T H.265 §7.3.6.1 as
//! far as `slice_pic_order_cnt_lsb`, with the SPS and PPS parsed once by
//! [`crate::codecs::hevc::sps`].

use super::{SliceCheck, MAX_HEADER_BYTES, MAX_SLICES_PER_SAMPLE};
use crate::codecs::bits::{unescape_rbsp, BitReader};
use crate::codecs::hevc::{self, ParameterSets};
use crate::codecs::{h264, CodecError};

const WHAT_SLICE: &str = "HEVC slice header";

/// Like [`super::check_h264`], for an HEVC record `hvcc`.
pub fn check_hevc(hvcc: &[u8], samples: &[&[u8]]) -> Result<SliceCheck, String> {
    let rec = hevc::HvcConfig::parse(hvcc).map_err(|e| e.to_string())?;
    check_hevc_config(&rec, samples)
}

/// Like [`check_hevc`], for a record already parsed: its parameter sets are the ones it
/// has parsed ([`hevc::HvcConfig::parameter_sets`]), shared with everything else that reads
/// them from `rec`.
pub fn check_hevc_config(rec: &hevc::HvcConfig, samples: &[&[u8]]) -> Result<SliceCheck, String> {
    let sets = rec.parameter_sets().map_err(|e| format!("the record's {e}"))?;
    check_hevc_with(sets.clone(), rec.nal_length_size, samples)
}

/// Like [`check_hevc`], with the record's parameter sets already parsed.
pub fn check_hevc_with(mut sets: ParameterSets, nal_length_size: u8, samples: &[&[u8]]) -> Result<SliceCheck, String> {
    let mut out = SliceCheck { slices: 0, inband_parameter_sets: false };
    for (i, sample) in samples.iter().enumerate() {
        let at = |e: &dyn std::fmt::Display| format!("sample {}: {e}", i + 1);
        let mut in_sample = 0;
        for nal in h264::length_prefixed(sample, nal_length_size) {
            let nal = nal.map_err(|e| at(&e))?;
            let Some(&b0) = nal.first() else { continue };
            match hevc::nal_type(b0) {
                hevc::NAL_SPS | hevc::NAL_PPS => {
                    out.inband_parameter_sets = true;
                    sets.add(nal).map_err(|e| at(&format!("in-band {e}")))?;
                }
                t @ (0..=9 | 16..=21) if in_sample < MAX_SLICES_PER_SAMPLE => {
                    let first = slice_header(&sets, nal, t).map_err(|e| at(&e))?;
                    if in_sample == 0 && !first {
                        return Err(at(&"its first slice segment has first_slice_segment_in_pic_flag 0"));
                    }
                    in_sample += 1;
                    out.slices += 1;
                }
                _ => {}
            }
        }
    }
    Ok(out)
}

/// Parses a slice segment header as far as the POC; returns
/// `first_slice_segment_in_pic_flag`.
fn slice_header(sets: &ParameterSets, nal: &[u8], t: u8) -> Result<bool, CodecError> {
    if nal.len() < 3 {
        return Err(CodecError::Truncated { what: WHAT_SLICE, len: nal.len(), need: 3 });
    }
    let rbsp = unescape_rbsp(&nal[2..nal.len().min(MAX_HEADER_BYTES)]);
    let mut r = BitReader::new(&rbsp, WHAT_SLICE);
    let first = r.read_bit()?;
    let irap = hevc::is_irap(t);
    if irap {
        r.skip_bits(1)?; // no_output_of_prior_pics_flag
    }
    let pps_id = r.read_ue_max("slice_pic_parameter_set_id", hevc::sps::MAX_PPS_ID)?;
    let (sps, fields, pps) = sets.active(pps_id, WHAT_SLICE)?;
    let mut dependent = false;
    if !first {
        if pps.dependent_slice_segments_enabled {
            dependent = r.read_bit()?;
        }
        // Ceil(Log2(PicSizeInCtbsY)) bits.
        let bits = 64 - (fields.pic_size_in_ctbs.saturating_sub(1)).leading_zeros();
        let address = r.read_bits(bits)?;
        if address == 0 || u64::from(address) >= fields.pic_size_in_ctbs {
            return Err(r.invalid(format!("slice_segment_address {address} is outside 1..{}", fields.pic_size_in_ctbs)));
        }
    }
    if !dependent {
        r.skip_bits(pps.num_extra_slice_header_bits as usize)?;
        let slice_type = r.read_ue_max("slice_type", 2)?;
        if irap && slice_type != 2 {
            return Err(r.invalid(format!("IRAP picture with slice_type {slice_type} (not I)")));
        }
        if pps.output_flag_present {
            r.skip_bits(1)?;
        }
        if sps.separate_colour_plane {
            r.skip_bits(2)?;
        }
        if !matches!(t, hevc::NAL_IDR_W_RADL | hevc::NAL_IDR_N_LP) {
            r.skip_bits(fields.log2_max_poc_lsb as usize)?; // slice_pic_order_cnt_lsb
            r.skip_bits(1)?; // short_term_ref_pic_set_sps_flag: the header goes on
        }
    }
    Ok(first)
}
