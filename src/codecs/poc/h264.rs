//! H.264 picture order count (ITU-T H.264 §8.2.1) from slice headers (§7.3.3, as far as
//! `delta_pic_order_cnt[]` and `redundant_pic_cnt`), with the SPS and PPS parsed once by
//! [`crate::codecs::h264::sps`].

use std::sync::Arc;

use super::to_i32;
use crate::codecs::bits::{unescape_rbsp, BitReader};
use crate::codecs::h264::{self, ParameterSets, Sps, NAL_IDR, NAL_PPS, NAL_SLICE, NAL_SPS};
use crate::codecs::CodecError;

const WHAT_SLICE: &str = "H.264 slice header";
/// H.264 NAL unit type of a slice data partition A (carries the slice header).
const NAL_SLICE_DPA: u8 = 2;
/// Bytes of a slice NAL unit unescaped for the header fields POC derivation reads (they
/// end before the reference list syntax, within the first few dozen bytes).
const MAX_POC_HEADER_BYTES: usize = 64;

/// The slice header fields that identify a picture and give its POC (H.264 §7.3.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct SliceHeader {
    nal_ref_idc: u8,
    idr: bool,
    pps_id: u32,
    frame_num: u32,
    field_pic: bool,
    bottom_field: bool,
    idr_pic_id: u32,
    poc_lsb: u32,
    delta_poc_bottom: i32,
    delta_poc: [i32; 2],
    redundant_pic_cnt: u32,
}

impl SliceHeader {
    /// True when `self` starts a new primary coded picture after `prev` (H.264 §7.4.1.2.4).
    fn is_new_picture_after(&self, prev: &SliceHeader) -> bool {
        self.frame_num != prev.frame_num
            || self.pps_id != prev.pps_id
            || self.field_pic != prev.field_pic
            || self.bottom_field != prev.bottom_field
            || (self.nal_ref_idc == 0) != (prev.nal_ref_idc == 0)
            || self.poc_lsb != prev.poc_lsb
            || self.delta_poc_bottom != prev.delta_poc_bottom
            || self.delta_poc != prev.delta_poc
            || self.idr != prev.idr
            || (self.idr && self.idr_pic_id != prev.idr_pic_id)
    }
}

/// Picture order count derivation for an H.264 stream (ITU-T H.264 §8.2.1).
///
/// Feed it every access unit in decode order with [`H264PocState::picture`].
#[derive(Clone, Debug)]
pub struct H264PocState {
    pub(super) sets: ParameterSets,
    /// prevPicOrderCntMsb / prevPicOrderCntLsb of the previous reference picture (type 0).
    prev_poc_msb: i64,
    prev_poc_lsb: i64,
    /// prevFrameNumOffset and prevFrameNum of the previous picture (types 1 and 2).
    prev_frame_num_offset: i64,
    prev_frame_num: u32,
    /// The last picture was an IDR picture.
    last_reset: bool,
}

impl H264PocState {
    /// Builds the state from an `avcC` payload: its first SPS and all its PPS.
    pub fn from_avcc(avcc: &[u8]) -> Result<Self, CodecError> {
        Self::from_config(&h264::AvcConfig::parse(avcc)?)
    }

    /// Builds the state from a parsed record: its first SPS (as the record parsed it,
    /// [`h264::AvcConfig::first_sps`]) and all its PPS.
    pub fn from_config(config: &h264::AvcConfig) -> Result<Self, CodecError> {
        Self::new(ParameterSets::from_config(config, true)?)
    }

    /// Builds the state from parameter sets already parsed (at least one SPS).
    pub fn new(sets: ParameterSets) -> Result<Self, CodecError> {
        if sets.has_no_sps() {
            return Err(CodecError::Invalid { what: "avcC", reason: "no sequence parameter set".into() });
        }
        Ok(H264PocState {
            sets,
            prev_poc_msb: 0,
            prev_poc_lsb: 0,
            prev_frame_num_offset: 0,
            prev_frame_num: 0,
            last_reset: false,
        })
    }

    /// Reads a slice header with the parameter sets it refers to.
    fn parse_slice_header(&self, nal: &[u8]) -> Result<(SliceHeader, Arc<Sps>), CodecError> {
        let header = *nal.first().ok_or(CodecError::Truncated { what: WHAT_SLICE, len: 0, need: 2 })?;
        let nal_type = h264::nal_type(header);
        let nal_ref_idc = (header >> 5) & 3;
        let idr = nal_type == NAL_IDR;
        let rbsp = unescape_rbsp(&nal[1..nal.len().min(MAX_POC_HEADER_BYTES)]);
        let mut r = BitReader::new(&rbsp, WHAT_SLICE);
        r.read_ue()?; // first_mb_in_slice
        let slice_type = r.read_ue_max("slice_type", 9)?;
        if idr && !matches!(slice_type % 5, 2 | 4) {
            return Err(r.invalid(format!("IDR slice has slice_type {slice_type}")));
        }
        let pps_id = r.read_ue_max("pic_parameter_set_id", h264::sps::MAX_PPS_ID)?;
        let (sps, pps) = self.sets.active(pps_id, WHAT_SLICE)?;
        if sps.separate_colour_plane {
            r.skip_bits(2)?; // colour_plane_id
        }
        let frame_num = r.read_bits(sps.log2_max_frame_num())?;
        let (mut field_pic, mut bottom_field) = (false, false);
        if !sps.frame_mbs_only {
            field_pic = r.read_bit()?;
            if field_pic {
                bottom_field = r.read_bit()?;
            }
        }
        if idr && frame_num != 0 {
            return Err(r.invalid(format!("IDR picture has frame_num {frame_num}")));
        }
        let idr_pic_id = if idr { r.read_ue_max("idr_pic_id", 65535)? } else { 0 };
        let (mut poc_lsb, mut delta_poc_bottom, mut delta_poc) = (0, 0, [0, 0]);
        let bottom_present = pps.bottom_field_pic_order_in_frame_present && !field_pic;
        if sps.pic_order_cnt_type == 0 {
            poc_lsb = r.read_bits(sps.log2_max_poc_lsb())?;
            if bottom_present {
                delta_poc_bottom = r.read_se()?;
            }
        }
        if sps.pic_order_cnt_type == 1 && !sps.delta_pic_order_always_zero {
            delta_poc[0] = r.read_se()?;
            if bottom_present {
                delta_poc[1] = r.read_se()?;
            }
        }
        let redundant_pic_cnt =
            if pps.redundant_pic_cnt_present { r.read_ue_max("redundant_pic_cnt", 127)? } else { 0 };
        let h = SliceHeader {
            nal_ref_idc,
            idr,
            pps_id,
            frame_num,
            field_pic,
            bottom_field,
            idr_pic_id,
            poc_lsb,
            delta_poc_bottom,
            delta_poc,
            redundant_pic_cnt,
        };
        Ok((h, Arc::clone(sps)))
    }

    /// Takes one access unit's NAL units (without length prefixes) in decode order, and
    /// returns the picture order count of its picture: for a frame
    /// `Min(TopFieldOrderCnt, BottomFieldOrderCnt)`, for a field its own count, and when the
    /// sample holds two fields the smaller of the two. In-band SPS and PPS units update the
    /// state first. `Ok(None)` when the unit holds no slice.
    pub fn picture(&mut self, nals: &[&[u8]]) -> Result<Option<i32>, CodecError> {
        let mut result: Option<i32> = None;
        let mut prev: Option<SliceHeader> = None;
        for nal in nals {
            let Some(&first) = nal.first() else { continue };
            match h264::nal_type(first) {
                NAL_SPS | NAL_PPS => self.sets.add(nal)?,
                NAL_SLICE | NAL_SLICE_DPA | NAL_IDR => {
                    let (h, sps) = self.parse_slice_header(nal)?;
                    if h.redundant_pic_cnt > 0 || prev.is_some_and(|p| !h.is_new_picture_after(&p)) {
                        continue;
                    }
                    let poc = self.derive(&h, &sps)?;
                    self.last_reset = h.idr;
                    prev = Some(h);
                    result = Some(result.map_or(poc, |r| r.min(poc)));
                }
                _ => {}
            }
        }
        Ok(result)
    }

    /// §8.2.1: TopFieldOrderCnt / BottomFieldOrderCnt of one picture with the SPS it refers
    /// to, then updates the "previous picture" state.
    fn derive(&mut self, h: &SliceHeader, sps: &Sps) -> Result<i32, CodecError> {
        let (top, bottom) = match sps.pic_order_cnt_type {
            0 => self.type0(h, sps),
            1 => self.type1(h, sps),
            _ => self.type2(h, sps),
        };
        let poc = if !h.field_pic {
            top.min(bottom)
        } else if h.bottom_field {
            bottom
        } else {
            top
        };
        to_i32(WHAT_SLICE, poc)
    }

    /// §8.2.1.1: from `pic_order_cnt_lsb` and the previous reference picture's MSB/LSB.
    fn type0(&mut self, h: &SliceHeader, sps: &Sps) -> (i64, i64) {
        let (prev_msb, prev_lsb) = if h.idr { (0, 0) } else { (self.prev_poc_msb, self.prev_poc_lsb) };
        let max_lsb = 1i64 << sps.log2_max_poc_lsb();
        let lsb = i64::from(h.poc_lsb);
        let msb = if lsb < prev_lsb && prev_lsb - lsb >= max_lsb / 2 {
            prev_msb + max_lsb
        } else if lsb > prev_lsb && lsb - prev_lsb > max_lsb / 2 {
            prev_msb - max_lsb
        } else {
            prev_msb
        };
        let top = msb + lsb;
        let bottom = if h.field_pic { msb + lsb } else { top + i64::from(h.delta_poc_bottom) };
        if h.nal_ref_idc != 0 {
            self.prev_poc_msb = msb;
            self.prev_poc_lsb = lsb;
        }
        (top, bottom)
    }

    /// §8.2.1.2: from `frame_num` and the SPS's expected deltas per reference frame.
    fn type1(&mut self, h: &SliceHeader, sps: &Sps) -> (i64, i64) {
        let max_frame_num = 1i64 << sps.log2_max_frame_num();
        let offset = self.frame_num_offset(h, max_frame_num);
        let n = sps.offset_for_ref_frame.len() as i64;
        let mut abs_frame_num = if n != 0 { offset.saturating_add(i64::from(h.frame_num)) } else { 0 };
        if h.nal_ref_idc == 0 && abs_frame_num > 0 {
            abs_frame_num -= 1;
        }
        let mut expected = 0i64;
        if abs_frame_num > 0 {
            let cycle_cnt = (abs_frame_num - 1) / n;
            let in_cycle = ((abs_frame_num - 1) % n) as usize;
            let delta_per_cycle: i64 = sps.offset_for_ref_frame.iter().map(|&o| i64::from(o)).sum();
            // Saturating: the counts grow with the stream and the offsets are input
            // values; a result out of i32 range is refused by `derive`.
            expected = cycle_cnt.saturating_mul(delta_per_cycle);
            let in_cycle_sum: i64 = sps.offset_for_ref_frame[..=in_cycle].iter().map(|&o| i64::from(o)).sum();
            expected = expected.saturating_add(in_cycle_sum);
        }
        if h.nal_ref_idc == 0 {
            expected = expected.saturating_add(i64::from(sps.offset_for_non_ref_pic));
        }
        let [d0, d1] = h.delta_poc.map(i64::from);
        let top_to_bottom = i64::from(sps.offset_for_top_to_bottom_field);
        let top = expected.saturating_add(d0);
        let bottom = if !h.field_pic {
            top.saturating_add(top_to_bottom).saturating_add(d1)
        } else {
            expected.saturating_add(top_to_bottom).saturating_add(d0)
        };
        self.prev_frame_num_offset = offset;
        self.prev_frame_num = h.frame_num;
        (top, bottom)
    }

    /// §8.2.1.3: output order is decode order, from `frame_num`.
    fn type2(&mut self, h: &SliceHeader, sps: &Sps) -> (i64, i64) {
        let max_frame_num = 1i64 << sps.log2_max_frame_num();
        let offset = self.frame_num_offset(h, max_frame_num);
        let frame_num = i64::from(h.frame_num);
        let temp = if h.idr {
            0
        } else if h.nal_ref_idc == 0 {
            offset.saturating_add(frame_num).saturating_mul(2).saturating_sub(1)
        } else {
            offset.saturating_add(frame_num).saturating_mul(2)
        };
        self.prev_frame_num_offset = offset;
        self.prev_frame_num = h.frame_num;
        (temp, temp)
    }

    /// True when the last picture returned by [`H264PocState::picture`] was an IDR picture,
    /// whose POC is not comparable with earlier ones (feed it to
    /// [`super::PresentationOrder::push`]).
    pub fn last_was_reset(&self) -> bool {
        self.last_reset
    }

    /// FrameNumOffset of §8.2.1.2 / §8.2.1.3.
    fn frame_num_offset(&self, h: &SliceHeader, max_frame_num: i64) -> i64 {
        if h.idr {
            0
        } else if self.prev_frame_num > h.frame_num {
            self.prev_frame_num_offset.saturating_add(max_frame_num)
        } else {
            self.prev_frame_num_offset
        }
    }
}
