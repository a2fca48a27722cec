//! Do a stream's first slices parse under a configuration record?
//!
//! A stream that carries no parameter sets in-band (Chromium's MP4, FFmpeg's and most
//! muxers' output with global headers) is decoded with the record's SPS/PPS alone. A record
//! that parses but belongs to another encoder setting (another `log2_max_frame_num`,
//! `pic_order_cnt_type`, entropy coder, reference count or picture size) makes every slice
//! header read wrong. Reading the first slice headers of the first samples with the
//! record's parameter sets tells: a wrong record gives slice types, PPS ids, QPs or
//! reference counts out of range, a first macroblock past the picture, inconsistent
//! `frame_num`s, or CABAC alignment bits that are not all ones.
//!
//! - H.264: `slice_header()` of ITU-T H.264 §7.3.3 in full (reference list modification,
//!   prediction weight table, decoded reference picture marking), with the semantics of
//!   §7.4.3 checked, then `cabac_alignment_one_bit` (§7.3.4). The SPS (§7.3.2.1.1) and PPS
//!   (§7.3.2.2) fields the header depends on are read here.
//! - HEVC: `slice_segment_header()` of ITU-T H.265 §7.3.6.1 as far as
//!   `slice_pic_order_cnt_lsb`: PPS id, `first_slice_segment_in_pic_flag`,
//!   `slice_segment_address` against `PicSizeInCtbsY`, slice type (I for IRAP pictures).
//!   The QP lies behind the reference picture set syntax and is not checked.
//!
//! Written from the specifications. Never panics on input: every count read from the
//! stream is bounded before it drives a loop or an index.

use super::h264::{self, unescape_rbsp, BitReader};
use super::hevc;
use super::CodecError;

const WHAT_SPS: &str = "H.264 SPS";
const WHAT_PPS: &str = "H.264 PPS";
const WHAT_SLICE: &str = "H.264 slice header";
const WHAT_HEVC_SPS: &str = "HEVC SPS";
const WHAT_HEVC_PPS: &str = "HEVC PPS";
const WHAT_HEVC_SLICE: &str = "HEVC slice header";

/// Bytes of a slice NAL unit unescaped for its header: the longest H.264 header (32
/// references per list with weights, and memory management operations) fits easily.
const MAX_HEADER_BYTES: usize = 1024;
/// Most slices checked per sample; the rest of a many-sliced picture adds nothing.
const MAX_SLICES_PER_SAMPLE: usize = 16;
/// Most `memory_management_control_operation`s read in one slice header (a DPB holds at
/// most 16 frames, 32 fields; each operation names one, plus the terminating 0).
const MAX_MMCO: usize = 66;

fn invalid(what: &'static str, reason: impl Into<String>) -> CodecError {
    CodecError::Invalid { what, reason: reason.into() }
}

/// What the check saw in the samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SliceCheck {
    /// Slice headers read.
    pub slices: usize,
    /// Samples that carried a parameter set in-band (then the record matters less).
    pub inband_parameter_sets: bool,
}

/// Reads the slice headers of `samples` (access units as MP4 stores them, in decode order,
/// from the start of the stream) with the parameter sets of the H.264 record `avcc`.
/// In-band parameter sets replace the record's, as they do for a decoder. `Err` says,
/// for the first slice that does not fit, which sample and why.
pub fn check_h264(avcc: &[u8], samples: &[&[u8]]) -> Result<SliceCheck, String> {
    let rec = h264::AvcConfig::parse(avcc).map_err(|e| e.to_string())?;
    let mut sets = H264Sets::default();
    for nal in rec.sps.iter().chain(&rec.pps) {
        sets.add(nal).map_err(|e| format!("the record's {e}"))?;
    }
    let mut out = SliceCheck { slices: 0, inband_parameter_sets: false };
    let mut frames = FrameNums::default();
    for (i, sample) in samples.iter().enumerate() {
        let mut in_sample = 0;
        for nal in h264::length_prefixed(sample, rec.nal_length_size) {
            let nal = nal.map_err(|e| format!("sample {}: {e}", i + 1))?;
            let Some(&b0) = nal.first() else { continue };
            match h264::nal_type(b0) {
                h264::NAL_SPS | h264::NAL_PPS => {
                    out.inband_parameter_sets = true;
                    sets.add(nal).map_err(|e| format!("sample {}: in-band {e}", i + 1))?;
                }
                h264::NAL_SLICE | h264::NAL_IDR if in_sample < MAX_SLICES_PER_SAMPLE => {
                    let h = sets.slice_header(nal).map_err(|e| format!("sample {}: {e}", i + 1))?;
                    if in_sample == 0 {
                        if h.first_mb != 0 {
                            return Err(format!(
                                "sample {}: its first slice starts at macroblock {}, not 0",
                                i + 1,
                                h.first_mb
                            ));
                        }
                        frames.picture(&h).map_err(|e| format!("sample {}: {e}", i + 1))?;
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

/// The SPS fields an H.264 slice header depends on.
#[derive(Clone, Debug)]
struct Sps {
    chroma_array_type: u8,
    separate_colour_plane: bool,
    qp_bd_offset_y: i32,
    log2_max_frame_num: u32,
    poc_type: u8,
    log2_max_poc_lsb: u32,
    delta_pic_order_always_zero: bool,
    max_num_ref_frames: u32,
    gaps_allowed: bool,
    pic_size_in_mbs: u64,
    frame_mbs_only: bool,
    mbaff: bool,
}

/// The PPS fields an H.264 slice header depends on.
#[derive(Clone, Debug)]
struct Pps {
    sps_id: usize,
    entropy_coding_mode: bool,
    bottom_field_pic_order_in_frame_present: bool,
    num_ref_idx_default: [u32; 2],
    weighted_pred: bool,
    weighted_bipred_idc: u32,
    pic_init_qp: i32,
    deblocking_filter_control_present: bool,
    redundant_pic_cnt_present: bool,
}

#[derive(Default)]
struct H264Sets {
    sps: Vec<(usize, Sps)>,
    pps: Vec<(usize, Pps)>,
}

/// The slice header fields checked across slices and pictures.
#[derive(Clone, Copy, Debug)]
struct Header {
    first_mb: u32,
    idr: bool,
    reference: bool,
    frame_num: u32,
    log2_max_frame_num: u32,
    gaps_allowed: bool,
}

impl H264Sets {
    fn add(&mut self, nal: &[u8]) -> Result<(), CodecError> {
        match nal.first().map(|&b| h264::nal_type(b)) {
            Some(h264::NAL_SPS) => {
                let (id, sps) = parse_sps(nal)?;
                self.sps.retain(|(i, _)| *i != id);
                self.sps.push((id, sps));
            }
            Some(h264::NAL_PPS) => {
                let (id, pps) = parse_pps(nal)?;
                self.pps.retain(|(i, _)| *i != id);
                self.pps.push((id, pps));
            }
            _ => {}
        }
        Ok(())
    }

    /// Parses and checks one slice header (§7.3.3, semantics of §7.4.3).
    fn slice_header(&self, nal: &[u8]) -> Result<Header, CodecError> {
        let b0 = *nal.first().ok_or(CodecError::Truncated { what: WHAT_SLICE, len: 0, need: 2 })?;
        let nal_ref_idc = (b0 >> 5) & 3;
        let idr = h264::nal_type(b0) == h264::NAL_IDR;
        if idr && nal_ref_idc == 0 {
            return Err(invalid(WHAT_SLICE, "IDR slice with nal_ref_idc 0"));
        }
        let rbsp = unescape_rbsp(&nal[1..nal.len().min(MAX_HEADER_BYTES)]);
        let mut r = BitReader::new(&rbsp, WHAT_SLICE);
        let first_mb = r.read_ue()?;
        let slice_type = r.read_ue_max("slice_type", 9)?;
        let kind = slice_type % 5; // 0 P, 1 B, 2 I, 3 SP, 4 SI
        if idr && !matches!(kind, 2 | 4) {
            return Err(invalid(WHAT_SLICE, format!("IDR slice has slice_type {slice_type} (not I or SI)")));
        }
        let pps_id = r.read_ue_max("pic_parameter_set_id", 255)? as usize;
        let pps = self
            .pps
            .iter()
            .find(|(i, _)| *i == pps_id)
            .map(|(_, p)| p)
            .ok_or_else(|| invalid(WHAT_SLICE, format!("pic_parameter_set_id {pps_id} is not among the PPSs")))?;
        let sps = self.sps.iter().find(|(i, _)| *i == pps.sps_id).map(|(_, s)| s).ok_or_else(|| {
            invalid(WHAT_SLICE, format!("PPS {pps_id} refers to SPS {}, which is not there", pps.sps_id))
        })?;
        if u64::from(first_mb) >= sps.pic_size_in_mbs {
            return Err(invalid(
                WHAT_SLICE,
                format!("first_mb_in_slice {first_mb} is past the picture's {} macroblocks", sps.pic_size_in_mbs),
            ));
        }
        if sps.separate_colour_plane {
            r.skip_bits(2)?; // colour_plane_id
        }
        let frame_num = r.read_bits(sps.log2_max_frame_num)?;
        if idr && frame_num != 0 {
            return Err(invalid(WHAT_SLICE, format!("IDR slice has frame_num {frame_num}")));
        }
        let mut field_pic = false;
        if !sps.frame_mbs_only {
            field_pic = r.read_bit()?;
            if field_pic {
                r.skip_bits(1)?; // bottom_field_flag
            }
        }
        let mbaff = sps.mbaff && !field_pic;
        if mbaff && u64::from(first_mb) * 2 >= sps.pic_size_in_mbs {
            return Err(invalid(WHAT_SLICE, format!("first_mb_in_slice {first_mb} is past the MBAFF picture")));
        }
        if idr {
            r.read_ue_max("idr_pic_id", 65535)?;
        }
        if sps.poc_type == 0 {
            r.skip_bits(sps.log2_max_poc_lsb as usize)?; // pic_order_cnt_lsb
            if pps.bottom_field_pic_order_in_frame_present && !field_pic {
                r.read_se()?; // delta_pic_order_cnt_bottom
            }
        }
        if sps.poc_type == 1 && !sps.delta_pic_order_always_zero {
            r.read_se()?;
            if pps.bottom_field_pic_order_in_frame_present && !field_pic {
                r.read_se()?;
            }
        }
        if pps.redundant_pic_cnt_present {
            r.read_ue_max("redundant_pic_cnt", 127)?;
        }
        if kind == 1 {
            r.skip_bits(1)?; // direct_spatial_mv_pred_flag
        }
        let max_refs = if field_pic { 32 } else { 16 };
        let mut num_ref_idx = pps.num_ref_idx_default;
        if matches!(kind, 0 | 1 | 3) {
            if r.read_bit()? {
                // num_ref_idx_active_override_flag
                num_ref_idx[0] = r.read_ue_max("num_ref_idx_l0_active_minus1", max_refs - 1)? + 1;
                if kind == 1 {
                    num_ref_idx[1] = r.read_ue_max("num_ref_idx_l1_active_minus1", max_refs - 1)? + 1;
                }
            }
            for (list, &n) in num_ref_idx.iter().enumerate().take(if kind == 1 { 2 } else { 1 }) {
                if n > max_refs {
                    return Err(invalid(
                        WHAT_SLICE,
                        format!("{n} active references in list {list}, at most {max_refs}"),
                    ));
                }
            }
        }
        let lists = match kind {
            0 | 3 => 1,
            1 => 2,
            _ => 0,
        };
        // ref_pic_list_modification() (§7.3.3.1).
        for _ in 0..lists {
            if r.read_bit()? {
                let mut done = false;
                for _ in 0..=max_refs {
                    match r.read_ue_max("modification_of_pic_nums_idc", 5)? {
                        0..=2 => {
                            r.read_ue()?;
                        }
                        3 => {
                            done = true;
                            break;
                        }
                        4 | 5 => return Err(invalid(WHAT_SLICE, "view modification (MVC) in a base view slice")),
                        _ => unreachable!("read_ue_max bounds it"),
                    }
                }
                if !done {
                    return Err(invalid(WHAT_SLICE, "reference list modification does not end"));
                }
            }
        }
        // pred_weight_table() (§7.3.3.2).
        if (pps.weighted_pred && matches!(kind, 0 | 3)) || (pps.weighted_bipred_idc == 1 && kind == 1) {
            r.read_ue_max("luma_log2_weight_denom", 7)?;
            if sps.chroma_array_type != 0 {
                r.read_ue_max("chroma_log2_weight_denom", 7)?;
            }
            for &n in num_ref_idx.iter().take(lists) {
                for _ in 0..n {
                    if r.read_bit()? {
                        se_in(&mut r, "luma_weight", -128, 127)?;
                        se_in(&mut r, "luma_offset", -128, 127)?;
                    }
                    if sps.chroma_array_type != 0 && r.read_bit()? {
                        for _ in 0..2 {
                            se_in(&mut r, "chroma_weight", -128, 127)?;
                            se_in(&mut r, "chroma_offset", -128, 127)?;
                        }
                    }
                }
            }
        }
        // dec_ref_pic_marking() (§7.3.3.3).
        if nal_ref_idc != 0 {
            if idr {
                r.skip_bits(2)?; // no_output_of_prior_pics_flag, long_term_reference_flag
            } else if r.read_bit()? {
                let mut done = false;
                for _ in 0..MAX_MMCO {
                    match r.read_ue_max("memory_management_control_operation", 6)? {
                        0 => {
                            done = true;
                            break;
                        }
                        1 | 2 | 6 => {
                            r.read_ue()?;
                        }
                        3 => {
                            r.read_ue()?;
                            r.read_ue()?;
                        }
                        4 => {
                            r.read_ue_max("max_long_term_frame_idx_plus1", sps.max_num_ref_frames)?;
                        }
                        _ => {}
                    }
                }
                if !done {
                    return Err(invalid(WHAT_SLICE, "reference picture marking does not end"));
                }
            }
        }
        if pps.entropy_coding_mode && !matches!(kind, 2 | 4) {
            r.read_ue_max("cabac_init_idc", 2)?;
        }
        let slice_qp_delta = r.read_se()?;
        let qp = i64::from(pps.pic_init_qp) + i64::from(slice_qp_delta);
        if qp < -i64::from(sps.qp_bd_offset_y) || qp > 51 {
            return Err(invalid(WHAT_SLICE, format!("slice QP {qp} is outside -{}..=51", sps.qp_bd_offset_y)));
        }
        if matches!(kind, 3 | 4) {
            if kind == 3 {
                r.skip_bits(1)?; // sp_for_switch_flag
            }
            r.read_se()?; // slice_qs_delta
        }
        if pps.deblocking_filter_control_present && r.read_ue_max("disable_deblocking_filter_idc", 2)? != 1 {
            se_in(&mut r, "slice_alpha_c0_offset_div2", -6, 6)?;
            se_in(&mut r, "slice_beta_offset_div2", -6, 6)?;
        }
        // slice_data() opens with cabac_alignment_one_bit up to the byte boundary.
        if pps.entropy_coding_mode {
            while r.position() % 8 != 0 {
                if !r.read_bit()? {
                    return Err(invalid(WHAT_SLICE, "a CABAC alignment bit after the header is 0"));
                }
            }
        }
        Ok(Header {
            first_mb,
            idr,
            reference: nal_ref_idc != 0,
            frame_num,
            log2_max_frame_num: sps.log2_max_frame_num,
            gaps_allowed: sps.gaps_allowed,
        })
    }
}

fn se_in(r: &mut BitReader<'_>, field: &str, min: i32, max: i32) -> Result<i32, CodecError> {
    let v = r.read_se()?;
    if v < min || v > max {
        return Err(invalid(WHAT_SLICE, format!("{field} is {v}, outside {min}..={max}")));
    }
    Ok(v)
}

/// `frame_num` from picture to picture (§7.4.3): from an IDR on, each picture's is the
/// previous reference picture's (PrevRefFrameNum) or one more, modulo MaxFrameNum, unless
/// gaps are allowed.
#[derive(Default)]
struct FrameNums {
    prev_ref: Option<u32>,
}

impl FrameNums {
    fn picture(&mut self, h: &Header) -> Result<(), String> {
        if h.idr {
            self.prev_ref = Some(0);
            return Ok(());
        }
        if let Some(prev) = self.prev_ref.filter(|_| !h.gaps_allowed) {
            let max = 1u64 << h.log2_max_frame_num;
            let next = ((u64::from(prev) + 1) % max) as u32;
            if h.frame_num != prev && h.frame_num != next {
                return Err(format!("frame_num {} follows a reference picture with frame_num {prev}", h.frame_num));
            }
        }
        if h.reference {
            self.prev_ref = Some(h.frame_num);
        }
        Ok(())
    }
}

/// The SPS fields slice headers need, with its id.
fn parse_sps(nal: &[u8]) -> Result<(usize, Sps), CodecError> {
    // Validates the SPS as far as the cropping window (ranges, sizes) first.
    let info = h264::parse_sps(nal)?;
    let rbsp = unescape_rbsp(&nal[1..]);
    let mut r = BitReader::new(&rbsp, WHAT_SPS);
    let profile_idc = r.read_u8(8)?;
    r.skip_bits(16)?;
    r.read_ue()?; // seq_parameter_set_id
    if h264::profile_has_chroma_info(profile_idc) {
        if r.read_ue()? == 3 {
            r.skip_bits(1)?;
        }
        r.read_ue()?;
        r.read_ue()?;
        r.skip_bits(1)?;
        if r.read_bit()? {
            let lists = if info.chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.read_bit()? {
                    h264::skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    r.read_ue()?; // log2_max_frame_num_minus4
    r.read_ue()?; // pic_order_cnt_type
    let mut log2_max_poc_lsb = 0;
    let mut delta_pic_order_always_zero = false;
    match info.pic_order_cnt_type {
        0 => log2_max_poc_lsb = r.read_ue_max("log2_max_pic_order_cnt_lsb_minus4", 12)? + 4,
        1 => {
            delta_pic_order_always_zero = r.read_bit()?;
            r.read_se()?;
            r.read_se()?;
            let n = r.read_ue_max("num_ref_frames_in_pic_order_cnt_cycle", 255)?;
            for _ in 0..n {
                r.read_se()?;
            }
        }
        _ => {}
    }
    let max_num_ref_frames = r.read_ue_max("max_num_ref_frames", 16)?;
    let gaps_allowed = r.read_bit()?;
    r.read_ue()?;
    r.read_ue()?;
    let frame_mbs_only = r.read_bit()?;
    let mbaff = !frame_mbs_only && r.read_bit()?;
    let field_factor = if info.frame_mbs_only { 1 } else { 2 };
    let pic_size_in_mbs = u64::from(info.pic_width_in_mbs) * u64::from(info.pic_height_in_map_units) * field_factor;
    Ok((
        info.seq_parameter_set_id as usize,
        Sps {
            chroma_array_type: if info.separate_colour_plane { 0 } else { info.chroma_format_idc },
            separate_colour_plane: info.separate_colour_plane,
            qp_bd_offset_y: 6 * i32::from(info.bit_depth_luma_minus8),
            log2_max_frame_num: u32::from(info.log2_max_frame_num_minus4) + 4,
            poc_type: info.pic_order_cnt_type,
            log2_max_poc_lsb,
            delta_pic_order_always_zero,
            max_num_ref_frames,
            gaps_allowed,
            pic_size_in_mbs,
            frame_mbs_only,
            mbaff,
        },
    ))
}

fn parse_pps(nal: &[u8]) -> Result<(usize, Pps), CodecError> {
    let rbsp = unescape_rbsp(nal.get(1..).unwrap_or_default());
    let mut r = BitReader::new(&rbsp, WHAT_PPS);
    let id = r.read_ue_max("pic_parameter_set_id", 255)? as usize;
    let sps_id = r.read_ue_max("seq_parameter_set_id", 31)? as usize;
    let entropy_coding_mode = r.read_bit()?;
    let bottom_field_pic_order_in_frame_present = r.read_bit()?;
    let groups = r.read_ue_max("num_slice_groups_minus1", 7)?;
    if groups > 0 {
        return Err(CodecError::Unsupported {
            what: WHAT_PPS,
            reason: "slice groups (flexible macroblock ordering)".into(),
        });
    }
    let l0 = r.read_ue_max("num_ref_idx_l0_default_active_minus1", 31)? + 1;
    let l1 = r.read_ue_max("num_ref_idx_l1_default_active_minus1", 31)? + 1;
    let weighted_pred = r.read_bit()?;
    let weighted_bipred_idc = r.read_bits(2)?;
    if weighted_bipred_idc == 3 {
        return Err(invalid(WHAT_PPS, "weighted_bipred_idc is 3"));
    }
    let pic_init_qp_minus26 = r.read_se()?;
    if !(-(26 + 36)..=25).contains(&pic_init_qp_minus26) {
        return Err(invalid(WHAT_PPS, format!("pic_init_qp_minus26 is {pic_init_qp_minus26}")));
    }
    let pic_init_qs_minus26 = r.read_se()?;
    if !(-26..=25).contains(&pic_init_qs_minus26) {
        return Err(invalid(WHAT_PPS, format!("pic_init_qs_minus26 is {pic_init_qs_minus26}")));
    }
    let chroma_qp_index_offset = r.read_se()?;
    if !(-12..=12).contains(&chroma_qp_index_offset) {
        return Err(invalid(WHAT_PPS, format!("chroma_qp_index_offset is {chroma_qp_index_offset}")));
    }
    let deblocking_filter_control_present = r.read_bit()?;
    r.skip_bits(1)?; // constrained_intra_pred_flag
    let redundant_pic_cnt_present = r.read_bit()?;
    Ok((
        id,
        Pps {
            sps_id,
            entropy_coding_mode,
            bottom_field_pic_order_in_frame_present,
            num_ref_idx_default: [l0, l1],
            weighted_pred,
            weighted_bipred_idc,
            pic_init_qp: 26 + pic_init_qp_minus26,
            deblocking_filter_control_present,
            redundant_pic_cnt_present,
        },
    ))
}

// ---------------------------------------------------------------------------------------
// HEVC
// ---------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct HevcSps {
    separate_colour_plane: bool,
    log2_max_poc_lsb: u32,
    pic_size_in_ctbs: u64,
}

#[derive(Clone, Debug)]
struct HevcPps {
    sps_id: usize,
    dependent_slice_segments_enabled: bool,
    output_flag_present: bool,
    num_extra_slice_header_bits: u32,
}

#[derive(Default)]
struct HevcSets {
    sps: Vec<(usize, HevcSps)>,
    pps: Vec<(usize, HevcPps)>,
}

/// Like [`check_h264`], for an HEVC record `hvcc`.
pub fn check_hevc(hvcc: &[u8], samples: &[&[u8]]) -> Result<SliceCheck, String> {
    let rec = hevc::HvcConfig::parse(hvcc).map_err(|e| e.to_string())?;
    let mut sets = HevcSets::default();
    for nal in rec.units(hevc::NAL_SPS).chain(rec.units(hevc::NAL_PPS)) {
        sets.add(nal).map_err(|e| format!("the record's {e}"))?;
    }
    let mut out = SliceCheck { slices: 0, inband_parameter_sets: false };
    for (i, sample) in samples.iter().enumerate() {
        let mut in_sample = 0;
        for nal in h264::length_prefixed(sample, rec.nal_length_size) {
            let nal = nal.map_err(|e| format!("sample {}: {e}", i + 1))?;
            let Some(&b0) = nal.first() else { continue };
            match hevc::nal_type(b0) {
                hevc::NAL_SPS | hevc::NAL_PPS => {
                    out.inband_parameter_sets = true;
                    sets.add(nal).map_err(|e| format!("sample {}: in-band {e}", i + 1))?;
                }
                t @ (0..=9 | 16..=21) if in_sample < MAX_SLICES_PER_SAMPLE => {
                    let first = sets.slice_header(nal, t).map_err(|e| format!("sample {}: {e}", i + 1))?;
                    if in_sample == 0 && !first {
                        return Err(format!(
                            "sample {}: its first slice segment has first_slice_segment_in_pic_flag 0",
                            i + 1
                        ));
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

impl HevcSets {
    fn add(&mut self, nal: &[u8]) -> Result<(), CodecError> {
        match nal.first().map(|&b| hevc::nal_type(b)) {
            Some(hevc::NAL_SPS) => {
                let (id, sps) = parse_hevc_sps(nal)?;
                self.sps.retain(|(i, _)| *i != id);
                self.sps.push((id, sps));
            }
            Some(hevc::NAL_PPS) => {
                let (id, pps) = parse_hevc_pps(nal)?;
                self.pps.retain(|(i, _)| *i != id);
                self.pps.push((id, pps));
            }
            _ => {}
        }
        Ok(())
    }

    /// Parses a slice segment header as far as the POC; returns
    /// `first_slice_segment_in_pic_flag`.
    fn slice_header(&self, nal: &[u8], t: u8) -> Result<bool, CodecError> {
        if nal.len() < 3 {
            return Err(CodecError::Truncated { what: WHAT_HEVC_SLICE, len: nal.len(), need: 3 });
        }
        let rbsp = unescape_rbsp(&nal[2..nal.len().min(MAX_HEADER_BYTES)]);
        let mut r = BitReader::new(&rbsp, WHAT_HEVC_SLICE);
        let first = r.read_bit()?;
        let irap = hevc::is_irap(t);
        if irap {
            r.skip_bits(1)?; // no_output_of_prior_pics_flag
        }
        let pps_id = r.read_ue_max("slice_pic_parameter_set_id", 63)? as usize;
        let pps = self.pps.iter().find(|(i, _)| *i == pps_id).map(|(_, p)| p).ok_or_else(|| {
            invalid(WHAT_HEVC_SLICE, format!("slice_pic_parameter_set_id {pps_id} is not among the PPSs"))
        })?;
        let sps = self.sps.iter().find(|(i, _)| *i == pps.sps_id).map(|(_, s)| s).ok_or_else(|| {
            invalid(WHAT_HEVC_SLICE, format!("PPS {pps_id} refers to SPS {}, which is not there", pps.sps_id))
        })?;
        let mut dependent = false;
        if !first {
            if pps.dependent_slice_segments_enabled {
                dependent = r.read_bit()?;
            }
            // Ceil(Log2(PicSizeInCtbsY)) bits.
            let bits = 64 - (sps.pic_size_in_ctbs.saturating_sub(1)).leading_zeros();
            let address = r.read_bits(bits)?;
            if address == 0 || u64::from(address) >= sps.pic_size_in_ctbs {
                return Err(invalid(
                    WHAT_HEVC_SLICE,
                    format!("slice_segment_address {address} is outside 1..{}", sps.pic_size_in_ctbs),
                ));
            }
        }
        if !dependent {
            r.skip_bits(pps.num_extra_slice_header_bits as usize)?;
            let slice_type = r.read_ue_max("slice_type", 2)?;
            if irap && slice_type != 2 {
                return Err(invalid(WHAT_HEVC_SLICE, format!("IRAP picture with slice_type {slice_type} (not I)")));
            }
            if pps.output_flag_present {
                r.skip_bits(1)?;
            }
            if sps.separate_colour_plane {
                r.skip_bits(2)?;
            }
            if !matches!(t, hevc::NAL_IDR_W_RADL | hevc::NAL_IDR_N_LP) {
                r.skip_bits(sps.log2_max_poc_lsb as usize)?; // slice_pic_order_cnt_lsb
                r.skip_bits(1)?; // short_term_ref_pic_set_sps_flag: the header goes on
            }
        }
        Ok(first)
    }
}

fn parse_hevc_sps(nal: &[u8]) -> Result<(usize, HevcSps), CodecError> {
    let info = hevc::parse_sps(nal)?;
    let rbsp = unescape_rbsp(&nal[2..]);
    let mut r = BitReader::new(&rbsp, WHAT_HEVC_SPS);
    r.skip_bits(4)?;
    let max_sub_layers_minus1 = usize::from(r.read_u8(3)?);
    r.skip_bits(1)?;
    // profile_tier_level(1, max_sub_layers_minus1) (§7.3.3).
    r.skip_bits(96)?;
    let mut present = [(false, false); 8];
    for p in present.iter_mut().take(max_sub_layers_minus1) {
        *p = (r.read_bit()?, r.read_bit()?);
    }
    if max_sub_layers_minus1 > 0 {
        r.skip_bits(2 * (8 - max_sub_layers_minus1.min(8)))?;
    }
    for &(profile, level) in present.iter().take(max_sub_layers_minus1) {
        r.skip_bits((if profile { 88 } else { 0 }) + (if level { 8 } else { 0 }))?;
    }
    r.read_ue()?; // sps_seq_parameter_set_id
    if r.read_ue()? == 3 {
        r.skip_bits(1)?;
    }
    r.read_ue()?;
    r.read_ue()?;
    if r.read_bit()? {
        for _ in 0..4 {
            r.read_ue()?;
        }
    }
    r.read_ue()?;
    r.read_ue()?;
    let log2_max_poc_lsb = r.read_ue_max("log2_max_pic_order_cnt_lsb_minus4", 12)? + 4;
    let ordering_info_present = r.read_bit()?;
    let layers = if ordering_info_present { max_sub_layers_minus1 + 1 } else { 1 };
    for _ in 0..layers {
        r.read_ue()?;
        r.read_ue()?;
        r.read_ue()?;
    }
    let log2_min_cb = r.read_ue_max("log2_min_luma_coding_block_size_minus3", 3)? + 3;
    let log2_ctb = log2_min_cb + r.read_ue_max("log2_diff_max_min_luma_coding_block_size", 3)?;
    if !(4..=6).contains(&log2_ctb) {
        return Err(invalid(WHAT_HEVC_SPS, format!("CTB size 2^{log2_ctb} is outside 16..=64")));
    }
    let ctb = 1u64 << log2_ctb;
    let w = u64::from(info.pic_width_in_luma_samples).div_ceil(ctb);
    let h = u64::from(info.pic_height_in_luma_samples).div_ceil(ctb);
    Ok((
        info.seq_parameter_set_id as usize,
        HevcSps { separate_colour_plane: info.separate_colour_plane, log2_max_poc_lsb, pic_size_in_ctbs: w * h },
    ))
}

fn parse_hevc_pps(nal: &[u8]) -> Result<(usize, HevcPps), CodecError> {
    if nal.len() < 3 {
        return Err(CodecError::Truncated { what: WHAT_HEVC_PPS, len: nal.len(), need: 3 });
    }
    let rbsp = unescape_rbsp(&nal[2..]);
    let mut r = BitReader::new(&rbsp, WHAT_HEVC_PPS);
    let id = r.read_ue_max("pps_pic_parameter_set_id", 63)? as usize;
    let sps_id = r.read_ue_max("pps_seq_parameter_set_id", 15)? as usize;
    Ok((
        id,
        HevcPps {
            sps_id,
            dependent_slice_segments_enabled: r.read_bit()?,
            output_flag_present: r.read_bit()?,
            num_extra_slice_header_bits: r.read_bits(3)?,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::super::h264::tests::{escape, BitWriter};
    use super::*;

    /// Fields of a synthetic Main-like stream that a wrong record changes.
    #[derive(Clone, Copy)]
    struct Params {
        log2_max_frame_num_minus4: u32,
        poc_type: u32,
        log2_max_poc_lsb_minus4: u32,
        width_mbs: u32,
        cabac: bool,
        pic_init_qp_minus26: i32,
        num_ref_idx_default: u32,
    }

    const GOOD: Params = Params {
        log2_max_frame_num_minus4: 0,
        poc_type: 0,
        log2_max_poc_lsb_minus4: 2,
        width_mbs: 20,
        cabac: true,
        pic_init_qp_minus26: 0,
        num_ref_idx_default: 1,
    };

    fn avcc(p: Params) -> Vec<u8> {
        let mut w = BitWriter::default();
        w.bits(24, 0x4d_00_1e); // Main, level 3.0
        w.ue(0);
        w.ue(p.log2_max_frame_num_minus4);
        w.ue(p.poc_type);
        if p.poc_type == 0 {
            w.ue(p.log2_max_poc_lsb_minus4);
        }
        w.ue(2); // max_num_ref_frames
        w.bit(false);
        w.ue(p.width_mbs - 1);
        w.ue(14);
        w.bits(4, 0b1100);
        let sps = [&[0x67][..], &escape(&w.finish_rbsp())].concat();
        let mut w = BitWriter::default();
        w.ue(0);
        w.ue(0);
        w.bit(p.cabac);
        w.bit(false);
        w.ue(0);
        w.ue(p.num_ref_idx_default - 1);
        w.ue(0);
        w.bits(3, 0);
        w.se(p.pic_init_qp_minus26);
        w.se(0);
        w.se(0);
        w.bits(3, 0b100); // deblocking_filter_control_present
        let pps = [&[0x68][..], &escape(&w.finish_rbsp())].concat();
        h264::AvcConfig::from_parameter_sets(&[sps.into()], &[pps.into()]).unwrap().to_bytes().to_vec()
    }

    /// One slice written with `p`: `I` an IDR, `P` a reference P picture, `b` a
    /// non-reference P picture; `first_mb` where it starts.
    fn slice(p: Params, kind: char, frame_num: u32, poc_lsb: u32, first_mb: u32, qp_delta: i32) -> Vec<u8> {
        let mut w = BitWriter::default();
        w.ue(first_mb);
        w.ue(if kind == 'I' { 7 } else { 5 });
        w.ue(0);
        w.bits(p.log2_max_frame_num_minus4 + 4, u64::from(frame_num));
        if kind == 'I' {
            w.ue(0); // idr_pic_id
        }
        if p.poc_type == 0 {
            w.bits(p.log2_max_poc_lsb_minus4 + 4, u64::from(poc_lsb));
        }
        if kind != 'I' {
            w.bit(false); // num_ref_idx_active_override_flag
            w.bit(false); // ref_pic_list_modification_flag_l0
        }
        if kind != 'b' {
            w.bits(if kind == 'I' { 2 } else { 1 }, 0); // dec_ref_pic_marking
        }
        if p.cabac && kind != 'I' {
            w.ue(0); // cabac_init_idc
        }
        w.se(qp_delta);
        w.ue(0); // disable_deblocking_filter_idc
        w.se(0);
        w.se(0);
        if p.cabac {
            while w.bit_count() % 8 != 0 {
                w.bit(true);
            }
        }
        w.bits(24, 0x5a_a5_5a);
        let header = match kind {
            'I' => 0x65,
            'P' => 0x41,
            _ => 0x01,
        };
        [&[header][..], &escape(&w.finish())].concat()
    }

    fn sample(units: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        for u in units {
            out.extend_from_slice(&(u.len() as u32).to_be_bytes());
            out.extend_from_slice(u);
        }
        out
    }

    fn stream(p: Params) -> Vec<Vec<u8>> {
        vec![
            sample(&[slice(p, 'I', 0, 0, 0, 2), slice(p, 'I', 0, 0, 150, 2)]),
            sample(&[slice(p, 'P', 1, 4, 0, -3)]),
            sample(&[slice(p, 'b', 2, 2, 0, 5)]),
            sample(&[slice(p, 'P', 2, 8, 0, 0)]),
        ]
    }

    fn check(p: Params, samples: &[Vec<u8>]) -> Result<SliceCheck, String> {
        let refs: Vec<&[u8]> = samples.iter().map(Vec::as_slice).collect();
        check_h264(&avcc(p), &refs)
    }

    #[test]
    fn h264_slices_parse_with_their_own_record() {
        let s = stream(GOOD);
        assert_eq!(check(GOOD, &s), Ok(SliceCheck { slices: 5, inband_parameter_sets: false }));
        let cavlc = Params { cabac: false, ..GOOD };
        assert!(check(cavlc, &stream(cavlc)).is_ok());
        let poc2 = Params { poc_type: 2, ..GOOD };
        assert!(check(poc2, &stream(poc2)).is_ok());
    }

    #[test]
    fn h264_wrong_records_that_parse_are_caught() {
        let s = stream(GOOD);
        for (what, wrong) in [
            ("log2_max_frame_num", Params { log2_max_frame_num_minus4: 2, ..GOOD }),
            ("poc type", Params { poc_type: 2, ..GOOD }),
            ("poc lsb bits", Params { log2_max_poc_lsb_minus4: 6, ..GOOD }),
            ("entropy coder", Params { cabac: false, ..GOOD }),
            ("picture size", Params { width_mbs: 5, ..GOOD }),
            ("QP", Params { pic_init_qp_minus26: 24, ..GOOD }),
        ] {
            assert!(check(wrong, &s).is_err(), "{what}: {:?}", check(wrong, &s));
        }
    }

    #[test]
    fn h264_semantic_checks() {
        let fail = |samples: Vec<Vec<u8>>, needle: &str| {
            let e = check(GOOD, &samples).unwrap_err();
            assert!(e.contains(needle), "{needle}: {e}");
        };
        fail(vec![sample(&[slice(GOOD, 'I', 0, 0, 7, 0)])], "macroblock 7, not 0");
        fail(vec![sample(&[slice(GOOD, 'I', 0, 0, 0, 40)])], "slice QP 66");
        fail(vec![sample(&[slice(GOOD, 'I', 0, 0, 0, 0), slice(GOOD, 'I', 0, 0, 300, 0)])], "past the picture");
        fail(
            vec![sample(&[slice(GOOD, 'I', 0, 0, 0, 0)]), sample(&[slice(GOOD, 'P', 5, 2, 0, 0)])],
            "frame_num 5 follows",
        );
        let mut bad_pps = slice(GOOD, 'I', 0, 0, 0, 0);
        bad_pps[1] = 0b1010_0000; // first_mb 0, slice_type ue "010" = 1 (B in an IDR)
        fail(vec![sample(&[bad_pps])], "IDR slice has slice_type");
        // In-band parameter sets replace the record's.
        let rec = h264::AvcConfig::parse(&avcc(GOOD)).unwrap();
        let with_sets = [sample(&[rec.sps[0].to_vec(), rec.pps[0].to_vec(), slice(GOOD, 'I', 0, 0, 0, 0)])];
        let refs: Vec<&[u8]> = with_sets.iter().map(Vec::as_slice).collect();
        let wrong = avcc(Params { poc_type: 2, ..GOOD });
        assert_eq!(check_h264(&wrong, &refs), Ok(SliceCheck { slices: 1, inband_parameter_sets: true }));
    }

    proptest::proptest! {
        #[test]
        fn random_samples_never_panic(data in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = check_h264(&avcc(GOOD), &[&data]);
            let rec = avcc(GOOD);
            let mut mixed = rec.clone();
            let n = mixed.len();
            for (i, b) in data.iter().enumerate().take(n) {
                mixed[(i * 7) % n] ^= b;
            }
            let _ = check_h264(&mixed, &[&stream(GOOD)[1]]);
            let _ = check_hevc(&data, &[&data]);
        }
    }
}
