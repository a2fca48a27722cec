//! HEVC picture order count: `slice_segment_header()` of ITU-T H.265 §7.3.6.1 as far as
//! `slice_pic_order_cnt_lsb`, and `PicOrderCntVal` (§8.3.1) tracking `prevTid0Pic`, with
//! the SPS and PPS parsed once by [`crate::codecs::hevc::sps`].

use super::to_i32;
use crate::codecs::bits::{unescape_rbsp, BitReader};
use crate::codecs::hevc::{self, HvcConfig, ParameterSets, NAL_PPS, NAL_SPS};
use crate::codecs::CodecError;

const WHAT_SLICE: &str = "HEVC slice header";
/// HEVC end of sequence NAL unit type.
const NAL_EOS: u8 = 36;
/// Bytes of a slice segment NAL unit unescaped for the fields up to the POC LSB.
const MAX_POC_HEADER_BYTES: usize = 64;

/// Picture order count derivation for an HEVC stream (ITU-T H.265 §8.3.1).
///
/// Feed it every access unit in decode order with [`HevcPocState::picture`].
#[derive(Clone, Debug)]
pub struct HevcPocState {
    sets: ParameterSets,
    /// PicOrderCntVal of prevTid0Pic; `None` before the first picture.
    prev_tid0_poc: Option<i64>,
    /// An end of sequence NAL unit was seen: the next picture has NoRaslOutputFlag 1.
    after_eos: bool,
    /// The last picture was an IRAP picture with NoRaslOutputFlag 1 (or the first).
    last_reset: bool,
}

impl HevcPocState {
    /// Builds the state from an `hvcC` payload: all its SPS and PPS.
    pub fn from_hvcc(hvcc: &[u8]) -> Result<Self, CodecError> {
        Self::from_config(&HvcConfig::parse(hvcc)?)
    }

    /// Builds the state from a parsed record: all its SPS and PPS, as the record parsed
    /// them ([`HvcConfig::parameter_sets`]).
    pub fn from_config(config: &HvcConfig) -> Result<Self, CodecError> {
        Self::new(config.parameter_sets()?.clone())
    }

    /// Builds the state from parameter sets already parsed (at least one SPS).
    pub fn new(sets: ParameterSets) -> Result<Self, CodecError> {
        if sets.has_no_sps() {
            return Err(CodecError::Invalid { what: "hvcC", reason: "no sequence parameter set".into() });
        }
        Ok(HevcPocState { sets, prev_tid0_poc: None, after_eos: false, last_reset: false })
    }

    /// Takes one access unit's NAL units (without length prefixes) in decode order and
    /// returns the `PicOrderCntVal` of its picture, from the first slice segment with
    /// `first_slice_segment_in_pic_flag`. In-band SPS and PPS units update the state first.
    /// `Ok(None)` when the unit holds no such slice segment.
    pub fn picture(&mut self, nals: &[&[u8]]) -> Result<Option<i32>, CodecError> {
        let mut result = None;
        let mut eos = false;
        for nal in nals {
            if nal.len() < 2 {
                if nal.is_empty() {
                    continue;
                }
                return Err(CodecError::Truncated { what: "HEVC NAL unit", len: nal.len(), need: 2 });
            }
            let t = hevc::nal_type(nal[0]);
            match t {
                NAL_SPS | NAL_PPS => self.sets.add(nal)?,
                NAL_EOS => eos = true,
                0..=31 if result.is_none() && hevc::first_slice_segment_in_pic(nal) == Some(true) => {
                    result = Some(self.slice(nal)?);
                }
                _ => {}
            }
        }
        if eos {
            self.after_eos = true;
        }
        Ok(result)
    }

    /// True when the last picture returned by [`HevcPocState::picture`] started a new POC
    /// sequence (an IRAP picture with NoRaslOutputFlag 1, or the first picture), so its POC
    /// is not comparable with earlier ones (feed it to [`super::PresentationOrder::push`]).
    pub fn last_was_reset(&self) -> bool {
        self.last_reset
    }

    fn slice(&mut self, nal: &[u8]) -> Result<i32, CodecError> {
        let t = hevc::nal_type(nal[0]);
        if matches!(t, 10..=15 | 22..=31) {
            return Err(CodecError::Unsupported { what: WHAT_SLICE, reason: format!("reserved NAL type {t}") });
        }
        let temporal_id_plus1 = nal[1] & 7;
        if temporal_id_plus1 == 0 {
            return Err(CodecError::Invalid { what: WHAT_SLICE, reason: "nuh_temporal_id_plus1 is 0".into() });
        }
        let rbsp = unescape_rbsp(&nal[2..nal.len().min(MAX_POC_HEADER_BYTES)]);
        let mut r = BitReader::new(&rbsp, WHAT_SLICE);
        let _first_slice_segment_in_pic = r.read_bit()?;
        if hevc::is_irap(t) {
            r.skip_bits(1)?; // no_output_of_prior_pics_flag
        }
        let pps_id = r.read_ue_max("slice_pic_parameter_set_id", hevc::sps::MAX_PPS_ID)?;
        let (sps, fields, pps) = self.sets.active(pps_id, WHAT_SLICE)?;
        // first_slice_segment_in_pic_flag is 1, so there is no dependent_slice_segment_flag
        // (nor slice_segment_address): this is an independent slice segment.
        let _ = pps.dependent_slice_segments_enabled;
        r.skip_bits(pps.num_extra_slice_header_bits as usize)?; // slice_reserved_flag[]
        r.read_ue_max("slice_type", 2)?;
        if pps.output_flag_present {
            r.skip_bits(1)?; // pic_output_flag
        }
        if sps.separate_colour_plane {
            r.skip_bits(2)?; // colour_plane_id
        }
        let idr = matches!(t, hevc::NAL_IDR_W_RADL | hevc::NAL_IDR_N_LP);
        let lsb = if idr { 0 } else { i64::from(r.read_bits(fields.log2_max_poc_lsb)?) };

        // NoRaslOutputFlag (§8.1.3): IDR, BLA, the first picture, or the first after an
        // end of sequence NAL unit. (HandleCraAsBlaFlag is taken as 0.)
        let no_rasl_output =
            hevc::is_irap(t) && (idr || (16..=18).contains(&t) || self.prev_tid0_poc.is_none() || self.after_eos);
        let max_lsb = 1i64 << fields.log2_max_poc_lsb;
        let msb = match self.prev_tid0_poc {
            Some(prev) if !no_rasl_output => {
                let prev_lsb = prev & (max_lsb - 1);
                let prev_msb = prev - prev_lsb;
                if lsb < prev_lsb && prev_lsb - lsb >= max_lsb / 2 {
                    prev_msb + max_lsb
                } else if lsb > prev_lsb && lsb - prev_lsb > max_lsb / 2 {
                    prev_msb - max_lsb
                } else {
                    prev_msb
                }
            }
            _ => 0,
        };
        let poc = msb + lsb;
        let poc32 = to_i32(WHAT_SLICE, poc)?;
        self.last_reset = no_rasl_output || self.prev_tid0_poc.is_none();
        self.after_eos = false;
        // prevTid0Pic: TemporalId 0 and not RADL (6, 7), RASL (8, 9) or a sub-layer
        // non-reference picture (even types up to 14).
        let sub_layer_non_ref = t <= 14 && t.is_multiple_of(2);
        if temporal_id_plus1 == 1 && !matches!(t, 6..=9) && !sub_layer_non_ref {
            self.prev_tid0_poc = Some(poc);
        } else if self.prev_tid0_poc.is_none() {
            // A stream that does not start with a TemporalId 0 picture: anchor on it anyway.
            self.prev_tid0_poc = Some(poc);
        }
        Ok(poc32)
    }
}
