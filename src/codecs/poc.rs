//! Picture order counts (POC), for rebuilding presentation timestamps when only the
//! decode-order access units of a video track are known (for example when an MP4's `moov`
//! with its `ctts` table is lost).
//!
//! - [`H264PocState`] parses H.264 slice headers (ITU-T H.264 §7.3.3, as far as
//!   `delta_pic_order_cnt[]` and `redundant_pic_cnt`) and derives the picture order count of
//!   §8.2.1 for `pic_order_cnt_type` 0 (§8.2.1.1), 1 (§8.2.1.2) and 2 (§8.2.1.3). It reads
//!   the POC fields of the SPS (§7.3.2.1.1) and the PPS fields the slice header depends on
//!   (§7.3.2.2).
//! - [`HevcPocState`] parses H.265 `slice_segment_header()` (ITU-T H.265 §7.3.6.1) as far as
//!   `slice_pic_order_cnt_lsb` and derives `PicOrderCntVal` (§8.3.1), tracking `prevTid0Pic`.
//! - [`PresentationOrder`] turns per-access-unit POCs (decode order) into presentation indices.
//!
//! Written from the specifications. Known simplification: H.264
//! `memory_management_control_operation` 5 (which resets POC state like an IDR, §8.2.1) is
//! not detected, because `dec_ref_pic_marking()` lies behind the reference-list and weighted
//! prediction syntax; encoders used for streaming (x264, hardware encoders) rarely emit it.

use super::h264::{self, unescape_rbsp, BitReader, NAL_IDR, NAL_PPS, NAL_SLICE, NAL_SPS};
use super::hevc::{self, HvcConfig, NAL_PPS as HEVC_PPS, NAL_SPS as HEVC_SPS};
use super::CodecError;

const WHAT_H264_SPS: &str = "H.264 SPS";
const WHAT_H264_PPS: &str = "H.264 PPS";
const WHAT_H264_SLICE: &str = "H.264 slice header";
const WHAT_HEVC_SPS: &str = "HEVC SPS";
const WHAT_HEVC_PPS: &str = "HEVC PPS";
const WHAT_HEVC_SLICE: &str = "HEVC slice header";

/// H.264 NAL unit type of a slice data partition A (carries the slice header).
const NAL_SLICE_DPA: u8 = 2;
/// HEVC end of sequence NAL unit type.
const HEVC_EOS: u8 = 36;

fn invalid(what: &'static str, reason: impl Into<String>) -> CodecError {
    CodecError::Invalid { what, reason: reason.into() }
}

fn to_i32(what: &'static str, v: i64) -> Result<i32, CodecError> {
    i32::try_from(v).map_err(|_| invalid(what, format!("picture order count {v} is out of range")))
}

// ---------------------------------------------------------------------------------------
// H.264
// ---------------------------------------------------------------------------------------

/// The SPS fields POC derivation and slice header parsing need (H.264 §7.3.2.1.1).
#[derive(Clone, Debug, PartialEq, Eq)]
struct H264Sps {
    id: u32,
    separate_colour_plane: bool,
    log2_max_frame_num: u32,
    frame_mbs_only: bool,
    poc_type: u8,
    log2_max_poc_lsb: u32,
    delta_pic_order_always_zero: bool,
    offset_for_non_ref_pic: i64,
    offset_for_top_to_bottom_field: i64,
    offset_for_ref_frame: Vec<i64>,
}

fn parse_h264_sps(nal: &[u8]) -> Result<H264Sps, CodecError> {
    // Validates the whole SPS as far as the cropping window and gives the later fields.
    let info = h264::parse_sps(nal)?;
    let rbsp = unescape_rbsp(&nal[1..]);
    let mut r = BitReader::new(&rbsp, WHAT_H264_SPS);
    let profile_idc = r.read_u8(8)?;
    r.skip_bits(16)?; // constraint flags, level_idc
    r.read_ue()?; // seq_parameter_set_id
    if matches!(profile_idc, 100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135) {
        let chroma_format_idc = r.read_ue()?;
        if chroma_format_idc == 3 {
            r.read_bit()?; // separate_colour_plane_flag
        }
        r.read_ue()?; // bit_depth_luma_minus8
        r.read_ue()?; // bit_depth_chroma_minus8
        r.read_bit()?; // qpprime_y_zero_transform_bypass_flag
        if r.read_bit()? {
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.read_bit()? {
                    skip_h264_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    r.read_ue()?; // log2_max_frame_num_minus4 (range checked by parse_sps)
    let poc_type = r.read_ue()?;
    let mut sps = H264Sps {
        id: info.seq_parameter_set_id,
        separate_colour_plane: info.separate_colour_plane,
        log2_max_frame_num: u32::from(info.log2_max_frame_num_minus4) + 4,
        frame_mbs_only: info.frame_mbs_only,
        poc_type: info.pic_order_cnt_type,
        log2_max_poc_lsb: 0,
        delta_pic_order_always_zero: false,
        offset_for_non_ref_pic: 0,
        offset_for_top_to_bottom_field: 0,
        offset_for_ref_frame: Vec::new(),
    };
    debug_assert_eq!(poc_type, u32::from(sps.poc_type));
    match poc_type {
        0 => sps.log2_max_poc_lsb = r.read_ue_max("log2_max_pic_order_cnt_lsb_minus4", 12)? + 4,
        1 => {
            sps.delta_pic_order_always_zero = r.read_bit()?;
            sps.offset_for_non_ref_pic = i64::from(r.read_se()?);
            sps.offset_for_top_to_bottom_field = i64::from(r.read_se()?);
            let n = r.read_ue_max("num_ref_frames_in_pic_order_cnt_cycle", 255)?;
            for _ in 0..n {
                sps.offset_for_ref_frame.push(i64::from(r.read_se()?));
            }
        }
        _ => {}
    }
    Ok(sps)
}

/// scaling_list() of H.264 §7.3.2.1.1.1, values discarded.
fn skip_h264_scaling_list(r: &mut BitReader<'_>, size: usize) -> Result<(), CodecError> {
    let (mut last, mut next) = (8i32, 8i32);
    for _ in 0..size {
        if next != 0 {
            let delta = r.read_se()?.clamp(-128, 127);
            next = (last + delta + 256) % 256;
        }
        if next != 0 {
            last = next;
        }
    }
    Ok(())
}

/// The PPS fields the slice header up to `redundant_pic_cnt` depends on (H.264 §7.3.2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct H264Pps {
    id: u32,
    sps_id: u32,
    bottom_field_pic_order_in_frame_present: bool,
    redundant_pic_cnt_present: bool,
}

fn parse_h264_pps(nal: &[u8]) -> Result<H264Pps, CodecError> {
    let header = *nal.first().ok_or(CodecError::Truncated { what: WHAT_H264_PPS, len: 0, need: 2 })?;
    if h264::nal_type(header) != NAL_PPS {
        return Err(invalid(WHAT_H264_PPS, format!("NAL type is {}, expected {NAL_PPS}", h264::nal_type(header))));
    }
    let rbsp = unescape_rbsp(&nal[1..]);
    let mut r = BitReader::new(&rbsp, WHAT_H264_PPS);
    let id = r.read_ue_max("pic_parameter_set_id", 255)?;
    let sps_id = r.read_ue_max("seq_parameter_set_id", 31)?;
    let _entropy_coding_mode = r.read_bit()?;
    let bottom_field_pic_order_in_frame_present = r.read_bit()?;
    let num_slice_groups_minus1 = r.read_ue_max("num_slice_groups_minus1", 7)?;
    if num_slice_groups_minus1 > 0 {
        return Err(CodecError::Unsupported {
            what: WHAT_H264_PPS,
            reason: format!("{} slice groups (flexible macroblock ordering)", num_slice_groups_minus1 + 1),
        });
    }
    r.read_ue_max("num_ref_idx_l0_default_active_minus1", 31)?;
    r.read_ue_max("num_ref_idx_l1_default_active_minus1", 31)?;
    r.skip_bits(3)?; // weighted_pred_flag, weighted_bipred_idc
    r.read_se()?; // pic_init_qp_minus26
    r.read_se()?; // pic_init_qs_minus26
    r.read_se()?; // chroma_qp_index_offset
    r.skip_bits(2)?; // deblocking_filter_control_present_flag, constrained_intra_pred_flag
    let redundant_pic_cnt_present = r.read_bit()?;
    Ok(H264Pps { id, sps_id, bottom_field_pic_order_in_frame_present, redundant_pic_cnt_present })
}

/// The slice header fields that identify a picture and give its POC (H.264 §7.3.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct H264SliceHeader {
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

impl H264SliceHeader {
    /// True when `self` starts a new primary coded picture after `prev` (H.264 §7.4.1.2.4).
    fn is_new_picture_after(&self, prev: &H264SliceHeader) -> bool {
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
    sps: Vec<Option<H264Sps>>,
    pps: Vec<Option<H264Pps>>,
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
        let config = h264::AvcConfig::parse(avcc)?;
        let mut state = H264PocState {
            sps: vec![None; 32],
            pps: vec![None; 256],
            prev_poc_msb: 0,
            prev_poc_lsb: 0,
            prev_frame_num_offset: 0,
            prev_frame_num: 0,
            last_reset: false,
        };
        let first = config.sps.first().ok_or_else(|| invalid("avcC", "no sequence parameter set"))?;
        state.add_parameter_set(first)?;
        for pps in &config.pps {
            state.add_parameter_set(pps)?;
        }
        Ok(state)
    }

    fn add_parameter_set(&mut self, nal: &[u8]) -> Result<(), CodecError> {
        match nal.first().map(|&b| h264::nal_type(b)) {
            Some(NAL_SPS) => {
                let sps = parse_h264_sps(nal)?;
                let id = sps.id as usize;
                self.sps[id] = Some(sps);
            }
            Some(NAL_PPS) => {
                let pps = parse_h264_pps(nal)?;
                self.pps[pps.id as usize] = Some(pps);
            }
            _ => {}
        }
        Ok(())
    }

    fn parse_slice_header(&self, nal: &[u8]) -> Result<(H264SliceHeader, &H264Sps, &H264Pps), CodecError> {
        let header = *nal.first().ok_or(CodecError::Truncated { what: WHAT_H264_SLICE, len: 0, need: 2 })?;
        let nal_type = h264::nal_type(header);
        let nal_ref_idc = (header >> 5) & 3;
        let idr = nal_type == NAL_IDR;
        // The header is in the first few dozen bytes; don't unescape a whole slice.
        let rbsp = unescape_rbsp(&nal[1..nal.len().min(64)]);
        let mut r = BitReader::new(&rbsp, WHAT_H264_SLICE);
        r.read_ue()?; // first_mb_in_slice
        let slice_type = r.read_ue_max("slice_type", 9)?;
        if idr && !matches!(slice_type % 5, 2 | 4) {
            return Err(invalid(WHAT_H264_SLICE, format!("IDR slice has slice_type {slice_type}")));
        }
        let pps_id = r.read_ue_max("pic_parameter_set_id", 255)?;
        let pps = self.pps[pps_id as usize]
            .as_ref()
            .ok_or_else(|| invalid(WHAT_H264_SLICE, format!("refers to unknown PPS {pps_id}")))?;
        let sps = self.sps[pps.sps_id as usize]
            .as_ref()
            .ok_or_else(|| invalid(WHAT_H264_SLICE, format!("PPS {pps_id} refers to unknown SPS {}", pps.sps_id)))?;
        if sps.separate_colour_plane {
            r.skip_bits(2)?; // colour_plane_id
        }
        let frame_num = r.read_bits(sps.log2_max_frame_num)?;
        let (mut field_pic, mut bottom_field) = (false, false);
        if !sps.frame_mbs_only {
            field_pic = r.read_bit()?;
            if field_pic {
                bottom_field = r.read_bit()?;
            }
        }
        if idr && frame_num != 0 {
            return Err(invalid(WHAT_H264_SLICE, format!("IDR picture has frame_num {frame_num}")));
        }
        let idr_pic_id = if idr { r.read_ue_max("idr_pic_id", 65535)? } else { 0 };
        let (mut poc_lsb, mut delta_poc_bottom, mut delta_poc) = (0, 0, [0, 0]);
        if sps.poc_type == 0 {
            poc_lsb = r.read_bits(sps.log2_max_poc_lsb)?;
            if pps.bottom_field_pic_order_in_frame_present && !field_pic {
                delta_poc_bottom = r.read_se()?;
            }
        }
        if sps.poc_type == 1 && !sps.delta_pic_order_always_zero {
            delta_poc[0] = r.read_se()?;
            if pps.bottom_field_pic_order_in_frame_present && !field_pic {
                delta_poc[1] = r.read_se()?;
            }
        }
        let redundant_pic_cnt =
            if pps.redundant_pic_cnt_present { r.read_ue_max("redundant_pic_cnt", 127)? } else { 0 };
        let h = H264SliceHeader {
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
        Ok((h, sps, pps))
    }

    /// Takes one access unit's NAL units (without length prefixes) in decode order, and
    /// returns the picture order count of its picture: for a frame
    /// `Min(TopFieldOrderCnt, BottomFieldOrderCnt)`, for a field its own count, and when the
    /// sample holds two fields the smaller of the two. In-band SPS and PPS units update the
    /// state first. `Ok(None)` when the unit holds no slice.
    pub fn picture(&mut self, nals: &[&[u8]]) -> Result<Option<i32>, CodecError> {
        let mut result: Option<i32> = None;
        let mut prev: Option<H264SliceHeader> = None;
        for nal in nals {
            let Some(&first) = nal.first() else { continue };
            match h264::nal_type(first) {
                NAL_SPS | NAL_PPS => self.add_parameter_set(nal)?,
                NAL_SLICE | NAL_SLICE_DPA | NAL_IDR => {
                    let (h, sps, _) = self.parse_slice_header(nal)?;
                    if h.redundant_pic_cnt > 0 || prev.is_some_and(|p| !h.is_new_picture_after(&p)) {
                        continue;
                    }
                    let sps = sps.clone();
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

    /// §8.2.1: TopFieldOrderCnt / BottomFieldOrderCnt of one picture, then updates the
    /// "previous picture" state.
    fn derive(&mut self, h: &H264SliceHeader, sps: &H264Sps) -> Result<i32, CodecError> {
        let max_frame_num = 1i64 << sps.log2_max_frame_num;
        let frame_num = i64::from(h.frame_num);
        let (top, bottom): (i64, i64);
        match sps.poc_type {
            0 => {
                // §8.2.1.1
                let (prev_msb, prev_lsb) = if h.idr { (0, 0) } else { (self.prev_poc_msb, self.prev_poc_lsb) };
                let max_lsb = 1i64 << sps.log2_max_poc_lsb;
                let lsb = i64::from(h.poc_lsb);
                let msb = if lsb < prev_lsb && prev_lsb - lsb >= max_lsb / 2 {
                    prev_msb + max_lsb
                } else if lsb > prev_lsb && lsb - prev_lsb > max_lsb / 2 {
                    prev_msb - max_lsb
                } else {
                    prev_msb
                };
                top = msb + lsb;
                bottom = if h.field_pic { msb + lsb } else { top + i64::from(h.delta_poc_bottom) };
                if h.nal_ref_idc != 0 {
                    self.prev_poc_msb = msb;
                    self.prev_poc_lsb = lsb;
                }
            }
            1 => {
                // §8.2.1.2
                let offset = self.frame_num_offset(h, max_frame_num);
                let n = sps.offset_for_ref_frame.len() as i64;
                let mut abs_frame_num = if n != 0 { offset.saturating_add(frame_num) } else { 0 };
                if h.nal_ref_idc == 0 && abs_frame_num > 0 {
                    abs_frame_num -= 1;
                }
                let mut expected = 0i64;
                if abs_frame_num > 0 {
                    let cycle_cnt = (abs_frame_num - 1) / n;
                    let in_cycle = ((abs_frame_num - 1) % n) as usize;
                    let delta_per_cycle: i64 = sps.offset_for_ref_frame.iter().sum();
                    // Saturating: the counts grow with the stream and the offsets are input
                    // values; a result out of i32 range is refused below.
                    expected = cycle_cnt.saturating_mul(delta_per_cycle);
                    expected = expected.saturating_add(sps.offset_for_ref_frame[..=in_cycle].iter().sum::<i64>());
                }
                if h.nal_ref_idc == 0 {
                    expected = expected.saturating_add(sps.offset_for_non_ref_pic);
                }
                let [d0, d1] = h.delta_poc.map(i64::from);
                top = expected.saturating_add(d0);
                bottom = if !h.field_pic {
                    top.saturating_add(sps.offset_for_top_to_bottom_field).saturating_add(d1)
                } else {
                    expected.saturating_add(sps.offset_for_top_to_bottom_field).saturating_add(d0)
                };
                self.prev_frame_num_offset = offset;
                self.prev_frame_num = h.frame_num;
            }
            _ => {
                // §8.2.1.3
                let offset = self.frame_num_offset(h, max_frame_num);
                let temp = if h.idr {
                    0
                } else if h.nal_ref_idc == 0 {
                    offset.saturating_add(frame_num).saturating_mul(2).saturating_sub(1)
                } else {
                    offset.saturating_add(frame_num).saturating_mul(2)
                };
                (top, bottom) = (temp, temp);
                self.prev_frame_num_offset = offset;
                self.prev_frame_num = h.frame_num;
            }
        }
        let poc = if !h.field_pic {
            top.min(bottom)
        } else if h.bottom_field {
            bottom
        } else {
            top
        };
        to_i32(WHAT_H264_SLICE, poc)
    }

    /// True when the last picture returned by [`H264PocState::picture`] was an IDR picture,
    /// whose POC is not comparable with earlier ones (feed it to [`PresentationOrder::push`]).
    pub fn last_was_reset(&self) -> bool {
        self.last_reset
    }

    /// FrameNumOffset of §8.2.1.2 / §8.2.1.3.
    fn frame_num_offset(&self, h: &H264SliceHeader, max_frame_num: i64) -> i64 {
        if h.idr {
            0
        } else if self.prev_frame_num > h.frame_num {
            self.prev_frame_num_offset.saturating_add(max_frame_num)
        } else {
            self.prev_frame_num_offset
        }
    }
}

// ---------------------------------------------------------------------------------------
// HEVC
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct HevcSps {
    id: u32,
    separate_colour_plane: bool,
    log2_max_poc_lsb: u32,
}

/// Skips `profile_tier_level(1, max_sub_layers_minus1)` (H.265 §7.3.3).
fn skip_hevc_ptl(r: &mut BitReader<'_>, max_sub_layers_minus1: usize) -> Result<(), CodecError> {
    r.skip_bits(96)?; // general profile space .. general_level_idc
    let mut present = [(false, false); 8];
    for p in present.iter_mut().take(max_sub_layers_minus1) {
        *p = (r.read_bit()?, r.read_bit()?);
    }
    if max_sub_layers_minus1 > 0 {
        r.skip_bits(2 * (8 - max_sub_layers_minus1))?;
    }
    for &(profile, level) in present.iter().take(max_sub_layers_minus1) {
        if profile {
            r.skip_bits(88)?;
        }
        if level {
            r.skip_bits(8)?;
        }
    }
    Ok(())
}

fn parse_hevc_sps(nal: &[u8]) -> Result<HevcSps, CodecError> {
    let info = hevc::parse_sps(nal)?;
    let rbsp = unescape_rbsp(&nal[2..]);
    let mut r = BitReader::new(&rbsp, WHAT_HEVC_SPS);
    r.skip_bits(4)?; // sps_video_parameter_set_id
    let max_sub_layers_minus1 = usize::from(r.read_u8(3)?);
    r.skip_bits(1)?; // sps_temporal_id_nesting_flag
    skip_hevc_ptl(&mut r, max_sub_layers_minus1)?;
    r.read_ue()?; // sps_seq_parameter_set_id
    if r.read_ue()? == 3 {
        r.skip_bits(1)?; // separate_colour_plane_flag
    }
    r.read_ue()?; // pic_width_in_luma_samples
    r.read_ue()?; // pic_height_in_luma_samples
    if r.read_bit()? {
        for _ in 0..4 {
            r.read_ue()?; // conf_win_*_offset
        }
    }
    r.read_ue()?; // bit_depth_luma_minus8
    r.read_ue()?; // bit_depth_chroma_minus8
    let log2_max_poc_lsb = r.read_ue_max("log2_max_pic_order_cnt_lsb_minus4", 12)? + 4;
    Ok(HevcSps { id: info.seq_parameter_set_id, separate_colour_plane: info.separate_colour_plane, log2_max_poc_lsb })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct HevcPps {
    id: u32,
    sps_id: u32,
    dependent_slice_segments_enabled: bool,
    output_flag_present: bool,
    num_extra_slice_header_bits: u32,
}

fn parse_hevc_pps(nal: &[u8]) -> Result<HevcPps, CodecError> {
    if nal.len() < 2 {
        return Err(CodecError::Truncated { what: WHAT_HEVC_PPS, len: nal.len(), need: 3 });
    }
    let t = hevc::nal_type(nal[0]);
    if t != HEVC_PPS {
        return Err(invalid(WHAT_HEVC_PPS, format!("NAL type is {t}, expected {HEVC_PPS}")));
    }
    let rbsp = unescape_rbsp(&nal[2..]);
    let mut r = BitReader::new(&rbsp, WHAT_HEVC_PPS);
    Ok(HevcPps {
        id: r.read_ue_max("pps_pic_parameter_set_id", 63)?,
        sps_id: r.read_ue_max("pps_seq_parameter_set_id", 15)?,
        dependent_slice_segments_enabled: r.read_bit()?,
        output_flag_present: r.read_bit()?,
        num_extra_slice_header_bits: r.read_bits(3)?,
    })
}

/// Picture order count derivation for an HEVC stream (ITU-T H.265 §8.3.1).
///
/// Feed it every access unit in decode order with [`HevcPocState::picture`].
#[derive(Clone, Debug)]
pub struct HevcPocState {
    sps: Vec<Option<HevcSps>>,
    pps: Vec<Option<HevcPps>>,
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
        let config = HvcConfig::parse(hvcc)?;
        let mut state = HevcPocState {
            sps: vec![None; 16],
            pps: vec![None; 64],
            prev_tid0_poc: None,
            after_eos: false,
            last_reset: false,
        };
        for nal in config.units(HEVC_SPS).chain(config.units(HEVC_PPS)) {
            state.add_parameter_set(nal)?;
        }
        if state.sps.iter().all(Option::is_none) {
            return Err(invalid("hvcC", "no sequence parameter set"));
        }
        Ok(state)
    }

    fn add_parameter_set(&mut self, nal: &[u8]) -> Result<(), CodecError> {
        match nal.first().map(|&b| hevc::nal_type(b)) {
            Some(HEVC_SPS) => {
                let sps = parse_hevc_sps(nal)?;
                self.sps[sps.id as usize] = Some(sps);
            }
            Some(HEVC_PPS) => {
                let pps = parse_hevc_pps(nal)?;
                self.pps[pps.id as usize] = Some(pps);
            }
            _ => {}
        }
        Ok(())
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
                HEVC_SPS | HEVC_PPS => self.add_parameter_set(nal)?,
                HEVC_EOS => eos = true,
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
    /// is not comparable with earlier ones (feed it to [`PresentationOrder::push`]).
    pub fn last_was_reset(&self) -> bool {
        self.last_reset
    }

    fn slice(&mut self, nal: &[u8]) -> Result<i32, CodecError> {
        let t = hevc::nal_type(nal[0]);
        if matches!(t, 10..=15 | 22..=31) {
            return Err(CodecError::Unsupported { what: WHAT_HEVC_SLICE, reason: format!("reserved NAL type {t}") });
        }
        let temporal_id_plus1 = nal[1] & 7;
        if temporal_id_plus1 == 0 {
            return Err(invalid(WHAT_HEVC_SLICE, "nuh_temporal_id_plus1 is 0"));
        }
        let rbsp = unescape_rbsp(&nal[2..nal.len().min(64)]);
        let mut r = BitReader::new(&rbsp, WHAT_HEVC_SLICE);
        let _first_slice_segment_in_pic = r.read_bit()?;
        if hevc::is_irap(t) {
            r.skip_bits(1)?; // no_output_of_prior_pics_flag
        }
        let pps_id = r.read_ue_max("slice_pic_parameter_set_id", 63)?;
        let pps = self.pps[pps_id as usize]
            .ok_or_else(|| invalid(WHAT_HEVC_SLICE, format!("refers to unknown PPS {pps_id}")))?;
        let sps = self.sps[pps.sps_id as usize]
            .ok_or_else(|| invalid(WHAT_HEVC_SLICE, format!("PPS {pps_id} refers to unknown SPS {}", pps.sps_id)))?;
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
        let lsb = if idr { 0 } else { i64::from(r.read_bits(sps.log2_max_poc_lsb)?) };

        // NoRaslOutputFlag (§8.1.3): IDR, BLA, the first picture, or the first after an
        // end of sequence NAL unit. (HandleCraAsBlaFlag is taken as 0.)
        let no_rasl_output =
            hevc::is_irap(t) && (idr || (16..=18).contains(&t) || self.prev_tid0_poc.is_none() || self.after_eos);
        let max_lsb = 1i64 << sps.log2_max_poc_lsb;
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
        let poc32 = to_i32(WHAT_HEVC_SLICE, poc)?;
        self.last_reset = no_rasl_output || self.prev_tid0_poc.is_none();
        self.after_eos = false;
        // prevTid0Pic: TemporalId 0 and not RADL (6, 7), RASL (8, 9) or a sub-layer
        // non-reference picture (even types up to 14).
        let sub_layer_non_ref = t <= 14 && t % 2 == 0;
        if temporal_id_plus1 == 1 && !matches!(t, 6..=9) && !sub_layer_non_ref {
            self.prev_tid0_poc = Some(poc);
        } else if self.prev_tid0_poc.is_none() {
            // A stream that does not start with a TemporalId 0 picture: anchor on it anyway.
            self.prev_tid0_poc = Some(poc);
        }
        Ok(poc32)
    }
}

// ---------------------------------------------------------------------------------------
// Presentation order
// ---------------------------------------------------------------------------------------

/// Units a presentation index waits for: a unit's index is final once this many later units
/// of its coded video sequence are known (or the sequence ended). Streams reorder far less
/// (x264's B-pyramid: 2–4; the H.264/HEVC DPB holds at most 16 frames).
pub const REORDER_LOOKAHEAD: usize = 16;
/// Earlier units kept for counting those presented after a later unit.
const REORDER_LOOKBACK: usize = 64;

/// Gives each access unit, fed in decode order with its POC, its index in presentation
/// order, incrementally and in bounded memory. POCs are only comparable within a coded video
/// sequence, so a unit fed with `resets_poc` (an H.264 IDR, or an HEVC IRAP picture with
/// NoRaslOutputFlag) starts a new sequence, presented after all earlier ones.
///
/// Unit `i`'s index is `i` minus the earlier units of its sequence presented after it, plus
/// the later ones presented before it; both are near `i` in any real stream, so only a window
/// around it is kept ([`REORDER_LOOKAHEAD`] ahead, 64 behind).
#[derive(Clone, Debug, Default)]
pub struct PresentationOrder {
    /// (index of the first unit of its sequence, POC) from decode index `first` on.
    units: std::collections::VecDeque<(u64, i32)>,
    first: u64,
    /// Decode index of the next unit whose presentation index is not given out yet.
    next: u64,
    ended: bool,
}

impl PresentationOrder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records the next access unit in decode order.
    pub fn push(&mut self, poc: i32, resets_poc: bool) {
        let index = self.first + self.units.len() as u64;
        let start = match self.units.back() {
            Some(&(start, _)) if !resets_poc => start,
            _ => index,
        };
        self.units.push_back((start, poc));
    }

    /// No more units: every index can be given out.
    pub fn finish(&mut self) {
        self.ended = true;
    }

    /// The presentation index of the oldest unit not given out yet, once it is final.
    pub fn pop(&mut self) -> Option<u64> {
        let at = (self.next - self.first) as usize;
        let &(start, poc) = self.units.get(at)?;
        let later = self.units.range(at + 1..);
        let sequence_ended = later.clone().any(|&(s, _)| s != start);
        if !self.ended && !sequence_ended && later.len() < REORDER_LOOKAHEAD {
            return None;
        }
        let before = self.units.range(..at).filter(|&&(s, p)| s == start && p > poc).count() as u64;
        let after = self.units.range(at + 1..).filter(|&&(s, p)| s == start && p < poc).count() as u64;
        let index = self.next - before + after;
        self.next += 1;
        while self.units.len() > REORDER_LOOKBACK + REORDER_LOOKAHEAD && self.first < self.next {
            self.units.pop_front();
            self.first += 1;
        }
        Some(index)
    }
}

#[cfg(test)]
mod tests {
    use super::super::h264::tests::{escape, fuzz, BitWriter};
    use super::*;
    use std::path::{Path, PathBuf};
    use std::process::Command;

    fn generated() -> PathBuf {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let root = if root.join("scripts/make-fixtures.sh").exists() { root } else { PathBuf::from("/work/main") };
        let dir = root.join("tests/fixtures/generated");
        if !dir.join(".complete-5").exists() {
            let status = Command::new("flock")
                .arg(root.join("tests/fixtures/.lock"))
                .arg(root.join("scripts/make-fixtures.sh"))
                .arg(&dir)
                .status()
                .expect("run scripts/make-fixtures.sh");
            assert!(status.success(), "scripts/make-fixtures.sh failed");
        }
        dir
    }

    fn be32(b: &[u8], at: usize) -> u32 {
        u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
    }

    /// Child boxes of `data` as (type, payload).
    fn boxes(data: &[u8]) -> Vec<([u8; 4], &[u8])> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos + 8 <= data.len() {
            let mut size = be32(data, pos) as usize;
            let kind: [u8; 4] = data[pos + 4..pos + 8].try_into().unwrap();
            let mut header = 8;
            if size == 1 {
                size = u64::from_be_bytes(data[pos + 8..pos + 16].try_into().unwrap()) as usize;
                header = 16;
            } else if size == 0 {
                size = data.len() - pos;
            }
            out.push((kind, &data[pos + header..pos + size]));
            pos += size;
        }
        out
    }

    fn child<'a>(data: &'a [u8], kind: &[u8; 4]) -> &'a [u8] {
        boxes(data).into_iter().find(|(k, _)| k == kind).unwrap_or_else(|| panic!("no {kind:?} box")).1
    }

    /// (configuration record, samples in decode order, pts per sample) of the first video
    /// track of a non-fragmented file.
    fn video_track(path: &Path, config_box: &[u8; 4]) -> (Vec<u8>, Vec<Vec<u8>>, Vec<i64>) {
        let file = std::fs::read(path).unwrap();
        let moov = child(&file, b"moov");
        let trak = boxes(moov)
            .into_iter()
            .filter(|(k, _)| k == b"trak")
            .map(|(_, t)| t)
            .find(|t| &child(child(t, b"mdia"), b"hdlr")[8..12] == b"vide")
            .expect("video trak");
        let stbl = child(child(child(trak, b"mdia"), b"minf"), b"stbl");
        let stsd = child(stbl, b"stsd");
        let at = stsd.windows(4).position(|w| w == config_box).expect("config box") + 4;
        let config = stsd[at..at - 8 + be32(stsd, at - 8) as usize].to_vec();

        let stsz = child(stbl, b"stsz");
        let count = be32(stsz, 8) as usize;
        let sizes: Vec<usize> = (0..count)
            .map(|i| if be32(stsz, 4) != 0 { be32(stsz, 4) } else { be32(stsz, 12 + 4 * i) } as usize)
            .collect();
        let chunks: Vec<u64> = if let Some((_, co)) = boxes(stbl).into_iter().find(|(k, _)| k == b"stco") {
            (0..be32(co, 4) as usize).map(|i| u64::from(be32(co, 8 + 4 * i))).collect()
        } else {
            let co = child(stbl, b"co64");
            (0..be32(co, 4) as usize)
                .map(|i| u64::from_be_bytes(co[8 + 8 * i..16 + 8 * i].try_into().unwrap()))
                .collect()
        };
        let stsc = child(stbl, b"stsc");
        let entries: Vec<(usize, usize)> = (0..be32(stsc, 4) as usize)
            .map(|i| (be32(stsc, 8 + 12 * i) as usize, be32(stsc, 12 + 12 * i) as usize))
            .collect();
        let mut samples = Vec::with_capacity(count);
        for (c, &chunk_offset) in chunks.iter().enumerate() {
            let per_chunk = entries.iter().rev().find(|(first, _)| *first <= c + 1).unwrap().1;
            let mut off = chunk_offset as usize;
            for _ in 0..per_chunk {
                if samples.len() == count {
                    break;
                }
                let size = sizes[samples.len()];
                samples.push(file[off..off + size].to_vec());
                off += size;
            }
        }
        assert_eq!(samples.len(), count);

        let stts = child(stbl, b"stts");
        let mut dts = Vec::with_capacity(count);
        let mut t = 0i64;
        for i in 0..be32(stts, 4) as usize {
            for _ in 0..be32(stts, 8 + 8 * i) {
                dts.push(t);
                t += i64::from(be32(stts, 12 + 8 * i));
            }
        }
        // No ctts: presentation order is decode order.
        let mut pts = dts.clone();
        if let Some((_, ctts)) = boxes(stbl).into_iter().find(|(k, _)| k == b"ctts") {
            let mut i = 0;
            for e in 0..be32(ctts, 4) as usize {
                for _ in 0..be32(ctts, 8 + 8 * e) {
                    pts[i] += i64::from(be32(ctts, 12 + 8 * e) as i32);
                    i += 1;
                }
            }
            assert_eq!(i, count);
        }
        assert_eq!(pts.len(), count);
        (config, samples, pts)
    }

    fn split(sample: &[u8]) -> Vec<&[u8]> {
        h264::length_prefixed(sample, 4).map(|r| r.unwrap()).collect()
    }

    /// Compares the presentation order from POCs with the one from `ctts`.
    fn check_order(pocs: &[(i32, bool)], pts: &[i64]) {
        let mut p = PresentationOrder::new();
        let mut from_poc = Vec::new();
        for &(poc, reset) in pocs {
            p.push(poc, reset);
            from_poc.extend(std::iter::from_fn(|| p.pop()).map(|i| i as usize));
        }
        p.finish();
        from_poc.extend(std::iter::from_fn(|| p.pop()).map(|i| i as usize));
        let mut by_pts: Vec<usize> = (0..pts.len()).collect();
        by_pts.sort_by_key(|&i| pts[i]);
        let mut from_pts = vec![0; pts.len()];
        for (pos, &i) in by_pts.iter().enumerate() {
            from_pts[i] = pos;
        }
        assert_eq!(from_poc, from_pts, "POCs {pocs:?}");
    }

    #[test]
    fn h264_poc_matches_ctts_order() {
        let (pocs, pts, _) = h264_pocs(&generated().join("h264_aac_moov_end.mp4"));
        assert_eq!(pocs[0], (0, true));
        // B-frames: decode order differs from presentation order.
        assert!(pocs.windows(2).any(|w| w[1].0 < w[0].0 && !w[1].1));
        check_order(&pocs[..60], &pts[..60]);
        check_order(&pocs, &pts);
    }

    #[test]
    fn hevc_poc_matches_ctts_order() {
        let (hvcc, samples, pts) = video_track(&generated().join("hevc_aac_moov_end.mov"), b"hvcC");
        let mut state = HevcPocState::from_hvcc(&hvcc).unwrap();
        let mut pocs = Vec::new();
        for s in &samples {
            let nals = split(s);
            let t = nals.iter().map(|n| hevc::nal_type(n[0])).find(|&t| t <= 31).unwrap();
            let poc = state.picture(&nals).unwrap().expect("slice");
            assert_eq!(state.last_was_reset(), matches!(t, 16..=20) || pocs.is_empty());
            pocs.push((poc, state.last_was_reset()));
        }
        assert_eq!(pocs[0], (0, true));
        assert!(pocs.windows(2).any(|w| w[1].0 < w[0].0 && !w[1].1));
        check_order(&pocs[..60], &pts[..60]);
        check_order(&pocs, &pts);
    }

    /// Every slice header of real x264 (B-frames, CABAC, weighted prediction, several
    /// references) and x265 streams parses with the stream's own record in
    /// [`crate::codecs::slices`], and an x264 record of other settings does not fit.
    #[test]
    fn real_slice_headers_parse_with_their_own_records() {
        use crate::codecs::slices::{check_h264, check_hevc};
        let (avcc, samples, _) = video_track(&generated().join("h264_aac_moov_end.mp4"), b"avcC");
        let refs: Vec<&[u8]> = samples.iter().map(Vec::as_slice).collect();
        let c = check_h264(&avcc, &refs).unwrap();
        assert!(c.slices >= samples.len() && !c.inband_parameter_sets, "{c:?}");
        let (other, _, _) = video_track(&generated().join("recover_small_25fps_nob_44k_stereo.mp4"), b"avcC");
        assert_ne!(other, avcc);
        assert!(check_h264(&other, &refs[..8]).is_err());
        let (hvcc, samples, _) = video_track(&generated().join("hevc_aac_moov_end.mov"), b"hvcC");
        let refs: Vec<&[u8]> = samples.iter().map(Vec::as_slice).collect();
        let c = check_hevc(&hvcc, &refs).unwrap();
        assert!(c.slices >= samples.len(), "{c:?}");
    }

    /// Encodes a clip with FFmpeg (libx264) using `args`; `None` when FFmpeg is missing.
    fn encode(name: &str, args: &[&str]) -> Option<PathBuf> {
        let path = std::env::temp_dir().join(format!("livemux-poc-{}-{name}.mp4", std::process::id()));
        let status = Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=s=320x240:r=25", "-t", "4"])
            .args(["-an", "-c:v", "libx264", "-preset", "veryfast", "-g", "30"])
            .args(args)
            .arg(&path)
            .status();
        match status {
            Ok(s) if s.success() => Some(path),
            _ if std::env::var("LIVEMUX_REQUIRE_TOOLS").is_ok_and(|v| v == "1") => {
                panic!("LIVEMUX_REQUIRE_TOOLS=1 but ffmpeg with libx264 could not encode {name}")
            }
            _ => {
                eprintln!("SKIPPED: ffmpeg with libx264 not available (set LIVEMUX_REQUIRE_TOOLS=1 to fail)");
                None
            }
        }
    }

    fn h264_pocs(path: &Path) -> (Vec<(i32, bool)>, Vec<i64>, u8) {
        let (avcc, samples, pts) = video_track(path, b"avcC");
        let config = h264::AvcConfig::parse(&avcc).unwrap();
        let poc_type = h264::parse_sps(&config.sps[0]).unwrap().pic_order_cnt_type;
        let mut state = H264PocState::from_avcc(&avcc).unwrap();
        let mut pocs = Vec::new();
        for s in &samples {
            let nals = split(s);
            let idr = nals.iter().any(|n| h264::nal_type(n[0]) == NAL_IDR);
            let poc = state.picture(&nals).unwrap().expect("slice");
            assert_eq!(state.last_was_reset(), idr);
            pocs.push((poc, idr));
        }
        (pocs, pts, poc_type)
    }

    #[test]
    fn h264_poc_type2_and_mbaff() {
        // Without B-frames x264 signals pic_order_cnt_type 2.
        if let Some(path) = encode("t2", &["-bf", "0"]) {
            let (avcc, samples, _) = video_track(&path, b"avcC");
            let refs: Vec<&[u8]> = samples.iter().map(Vec::as_slice).collect();
            crate::codecs::slices::check_h264(&avcc, &refs).unwrap();
            let (pocs, pts, poc_type) = h264_pocs(&path);
            let _ = std::fs::remove_file(&path);
            assert_eq!(poc_type, 2);
            // 2 * frame_num within each GOP (every picture is a reference).
            assert!(pocs.iter().all(|&(poc, _)| poc % 2 == 0));
            check_order(&pocs, &pts);
        }
        // Interlaced (MBAFF: frame pictures with delta_pic_order_cnt_bottom) with B-frames.
        if let Some(path) = encode("mbaff", &["-flags", "+ildct", "-x264-params", "interlaced=1", "-bf", "2"]) {
            let (avcc, samples, _) = video_track(&path, b"avcC");
            let config = h264::AvcConfig::parse(&avcc).unwrap();
            assert!(!h264::parse_sps(&config.sps[0]).unwrap().frame_mbs_only);
            // Their slice headers (MBAFF, fields) read as the stream's.
            let refs: Vec<&[u8]> = samples.iter().map(Vec::as_slice).collect();
            crate::codecs::slices::check_h264(&avcc, &refs).unwrap();
            let (pocs, pts, poc_type) = h264_pocs(&path);
            let _ = std::fs::remove_file(&path);
            assert_eq!(poc_type, 0);
            check_order(&pocs, &pts);
        }
    }

    /// avcC with a 16x16 Baseline SPS (log2_max_frame_num 4) of `poc_type` and a PPS.
    fn synthetic_avcc(poc_type: u32) -> Vec<u8> {
        let mut w = BitWriter::default();
        w.bits(24, 0x42_00_1e); // profile 66, constraints, level 30
        w.ue(0); // seq_parameter_set_id
        w.ue(0); // log2_max_frame_num_minus4
        w.ue(poc_type);
        match poc_type {
            0 => w.ue(0), // log2_max_pic_order_cnt_lsb_minus4: MaxPicOrderCntLsb 16
            1 => {
                w.bit(false); // delta_pic_order_always_zero_flag
                w.se(-2); // offset_for_non_ref_pic
                w.se(0); // offset_for_top_to_bottom_field
                w.ue(1); // num_ref_frames_in_pic_order_cnt_cycle
                w.se(4); // offset_for_ref_frame[0]
            }
            _ => {}
        }
        w.ue(1); // max_num_ref_frames
        w.bit(false); // gaps_in_frame_num_value_allowed_flag
        w.ue(0); // pic_width_in_mbs_minus1
        w.ue(0); // pic_height_in_map_units_minus1
        w.bits(4, 0b1100); // frame_mbs_only, direct_8x8_inference, no cropping, no VUI
        let sps = [&[0x67][..], &escape(&w.finish_rbsp())].concat();
        let mut w = BitWriter::default();
        for _ in 0..2 {
            w.ue(0); // pic_parameter_set_id, seq_parameter_set_id
        }
        w.bits(2, 0); // entropy_coding_mode_flag, bottom_field_pic_order_in_frame_present_flag
        for _ in 0..3 {
            w.ue(0); // num_slice_groups_minus1, num_ref_idx_l0/l1_default_active_minus1
        }
        w.bits(3, 0); // weighted_pred_flag, weighted_bipred_idc
        for _ in 0..3 {
            w.se(0); // pic_init_qp_minus26, pic_init_qs_minus26, chroma_qp_index_offset
        }
        w.bits(3, 0); // deblocking filter control, constrained intra, redundant_pic_cnt_present
        let pps = [&[0x68][..], &escape(&w.finish_rbsp())].concat();
        let mut avcc = vec![1, 0x42, 0, 0x1e, 0xff, 0xe1];
        avcc.extend_from_slice(&(sps.len() as u16).to_be_bytes());
        avcc.extend_from_slice(&sps);
        avcc.push(1);
        avcc.extend_from_slice(&(pps.len() as u16).to_be_bytes());
        avcc.extend_from_slice(&pps);
        avcc
    }

    /// A slice NAL unit of a [`synthetic_avcc`] stream: `I` an IDR (frame_num 0), `P` a
    /// reference P slice, `b` a non-reference P slice. `poc` writes the POC fields.
    fn synthetic_slice(kind: char, frame_num: u32, poc: impl FnOnce(&mut BitWriter)) -> Vec<u8> {
        let mut w = BitWriter::default();
        w.ue(0); // first_mb_in_slice
        w.ue(if kind == 'I' { 7 } else { 5 }); // slice_type I or P
        w.ue(0); // pic_parameter_set_id
        w.bits(4, u64::from(frame_num));
        if kind == 'I' {
            w.ue(0); // idr_pic_id
        }
        poc(&mut w);
        w.bits(16, 0xffff); // rest of the slice
        let header = match kind {
            'I' => 0x65,
            'P' => 0x41,
            _ => 0x01,
        };
        [&[header][..], &escape(&w.finish_rbsp())].concat()
    }

    #[test]
    fn h264_synthetic_poc_types() {
        // Type 0 with MaxPicOrderCntLsb 16: the MSB steps up on wrap and back for a B-frame.
        let mut state = H264PocState::from_avcc(&synthetic_avcc(0)).unwrap();
        let mut poc = |kind: char, frame_num: u32, lsb: u64| {
            state.picture(&[&synthetic_slice(kind, frame_num, |w| w.bits(4, lsb))]).unwrap().unwrap()
        };
        let got: Vec<i32> =
            [('I', 0, 0), ('P', 1, 4), ('P', 2, 8), ('P', 3, 12), ('P', 4, 0), ('b', 5, 14), ('P', 5, 4)]
                .iter()
                .map(|&(k, f, l)| poc(k, f, l))
                .collect();
        assert_eq!(got, [0, 4, 8, 12, 16, 14, 20]);
        assert_eq!(poc('I', 0, 6), 6); // IDR resets the MSB

        // Type 1: one reference frame per cycle adding 4, non-reference pictures -2; the
        // frame_num wrap (MaxFrameNum 16) carries into FrameNumOffset.
        let mut state = H264PocState::from_avcc(&synthetic_avcc(1)).unwrap();
        let mut poc = |kind: char, frame_num: u32, delta: i32| {
            state.picture(&[&synthetic_slice(kind, frame_num, |w| w.se(delta))]).unwrap().unwrap()
        };
        assert_eq!(poc('I', 0, 0), 0);
        assert_eq!(poc('P', 1, 0), 4);
        assert_eq!(poc('b', 2, 0), 2);
        assert_eq!(poc('P', 2, 1), 9);
        for f in 3..16 {
            assert_eq!(poc('P', f, 0), 4 * f as i32);
        }
        assert_eq!(poc('P', 0, 0), 64);
        assert_eq!(poc('b', 1, 0), 62);
        assert_eq!(poc('P', 1, -3), 65);

        // Type 2: 2 * (FrameNumOffset + frame_num), minus 1 for non-reference pictures.
        let mut state = H264PocState::from_avcc(&synthetic_avcc(2)).unwrap();
        let mut poc = |kind: char, frame_num: u32| state.picture(&[&synthetic_slice(kind, frame_num, |_| {})]).unwrap();
        assert_eq!(poc('I', 0), Some(0));
        for f in 1..16 {
            assert_eq!(poc('P', f), Some(2 * f as i32));
        }
        assert_eq!(poc('b', 0), Some(31));
        assert_eq!(poc('P', 0), Some(32));
        assert_eq!(poc('I', 0), Some(0));
    }

    #[test]
    fn garbage_and_truncation_never_panic() {
        let (avcc, samples, _) = video_track(&generated().join("h264_aac_moov_end.mp4"), b"avcC");
        let state = H264PocState::from_avcc(&avcc).unwrap();
        for n in 0..avcc.len() {
            let _ = H264PocState::from_avcc(&avcc[..n]);
        }
        fuzz(&avcc, |b| H264PocState::from_avcc(b).map(drop));
        let slice = split(&samples[1]).into_iter().find(|n| h264::nal_type(n[0]) == NAL_SLICE).unwrap().to_vec();
        assert!(state.clone().picture(&[&slice[..1]]).is_err());
        assert!(state.clone().picture(&[&[0x65]]).is_err());
        fuzz(&slice[..slice.len().min(48)], |b| state.clone().picture(&[b]));
        assert_eq!(state.clone().picture(&[&[0x09, 0xf0]]).unwrap(), None);
        assert_eq!(state.clone().picture(&[]).unwrap(), None);

        let (hvcc, samples, _) = video_track(&generated().join("hevc_aac_moov_end.mov"), b"hvcC");
        let state = HevcPocState::from_hvcc(&hvcc).unwrap();
        for n in 0..hvcc.len() {
            let _ = HevcPocState::from_hvcc(&hvcc[..n]);
        }
        fuzz(&hvcc, |b| HevcPocState::from_hvcc(b).map(drop));
        let nals = split(&samples[1]);
        let slice = nals.iter().find(|n| hevc::nal_type(n[0]) <= 31).unwrap().to_vec();
        assert!(state.clone().picture(&[&slice[..3]]).is_err());
        assert!(state.clone().picture(&[&[0x26]]).is_err());
        fuzz(&slice[..slice.len().min(48)], |b| state.clone().picture(&[b]));
        assert_eq!(state.clone().picture(&[&[0x46, 0x01, 0x50]]).unwrap(), None);
    }

    #[test]
    fn h264_in_band_parameter_sets_and_errors() {
        let (avcc, samples, _) = video_track(&generated().join("h264_aac_moov_end.mp4"), b"avcC");
        let config = h264::AvcConfig::parse(&avcc).unwrap();
        let idr = split(&samples[0]).into_iter().find(|n| h264::nal_type(n[0]) == NAL_IDR).unwrap().to_vec();
        // A state whose PPS is unknown until the access unit carries it.
        let mut state = H264PocState::from_avcc(&avcc).unwrap();
        state.pps = vec![None; 256];
        assert!(state.clone().picture(&[&idr]).is_err());
        let (sps, pps) = (config.sps[0].to_vec(), config.pps[0].to_vec());
        assert_eq!(state.picture(&[&sps, &pps, &idr]).unwrap(), Some(0));
        // Slice groups are reported as unsupported.
        assert!(matches!(parse_h264_pps(&[0x68, 0xc5, 0x80]), Err(CodecError::Unsupported { .. })));
    }
}
