//! The H.264 slice header check: `slice_header()` of ITU-T H.264 §7.3.3 in full, with the
//! semantics of §7.4.3 checked, then `cabac_alignment_one_bit` (§7.3.4). The SPS and PPS
//! come parsed from [`crate::codecs::h264::sps`].

use std::sync::Arc;

use super::{SliceCheck, MAX_HEADER_BYTES, MAX_SLICES_PER_SAMPLE};
use crate::codecs::bits::{unescape_rbsp, BitReader};
use crate::codecs::h264::{self, ParameterSets, Pps, Sps};
use crate::codecs::CodecError;

const WHAT_SLICE: &str = "H.264 slice header";
/// Most `memory_management_control_operation`s read in one slice header (a DPB holds at
/// most 16 frames, 32 fields; each operation names one, plus the terminating 0).
const MAX_MMCO: usize = 66;

/// Reads the slice headers of `samples` (access units as MP4 stores them, in decode order,
/// from the start of the stream) with the parameter sets of the H.264 record `avcc`.
/// In-band parameter sets replace the record's, as they do for a decoder. `Err` says,
/// for the first slice that does not fit, which sample and why.
pub fn check_h264(avcc: &[u8], samples: &[&[u8]]) -> Result<SliceCheck, String> {
    let rec = h264::AvcConfig::parse(avcc).map_err(|e| e.to_string())?;
    check_h264_config(&rec, samples)
}

/// Like [`check_h264`], for a record already parsed: its parameter sets are the ones it
/// has parsed ([`h264::AvcConfig::parameter_sets`]), shared with everything else that reads
/// them from `rec`.
pub fn check_h264_config(rec: &h264::AvcConfig, samples: &[&[u8]]) -> Result<SliceCheck, String> {
    let sets = rec.parameter_sets().map_err(|e| format!("the record's {e}"))?;
    check_h264_with(sets.clone(), rec.nal_length_size, samples)
}

/// Like [`check_h264`], with the record's parameter sets already parsed.
///
/// The sets may hold values only this check bounds ([`ParameterSets::check_slice_limits`]);
/// they are refused here, as are such in-band sets.
pub fn check_h264_with(mut sets: ParameterSets, nal_length_size: u8, samples: &[&[u8]]) -> Result<SliceCheck, String> {
    sets.check_slice_limits().map_err(|e| format!("the record's {e}"))?;
    let mut out = SliceCheck { slices: 0, inband_parameter_sets: false };
    let mut frames = FrameNums::default();
    for (i, sample) in samples.iter().enumerate() {
        let at = |e: &dyn std::fmt::Display| format!("sample {}: {e}", i + 1);
        let mut in_sample = 0;
        for nal in h264::length_prefixed(sample, nal_length_size) {
            let nal = nal.map_err(|e| at(&e))?;
            let Some(&b0) = nal.first() else { continue };
            match h264::nal_type(b0) {
                h264::NAL_SPS | h264::NAL_PPS => {
                    out.inband_parameter_sets = true;
                    sets.add_checked(nal).map_err(|e| at(&format!("in-band {e}")))?;
                }
                h264::NAL_SLICE | h264::NAL_IDR if in_sample < MAX_SLICES_PER_SAMPLE => {
                    let h = slice_header(&sets, nal).map_err(|e| at(&e))?;
                    if in_sample == 0 {
                        if h.first_mb != 0 {
                            return Err(at(&format!("its first slice starts at macroblock {}, not 0", h.first_mb)));
                        }
                        frames.picture(&h).map_err(|e| at(&e))?;
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

/// What the start of the header (up to `redundant_pic_cnt`) gives the later phases.
struct Start {
    header: Header,
    nal_ref_idc: u8,
    /// slice_type % 5: 0 P, 1 B, 2 I, 3 SP, 4 SI.
    kind: u32,
    field_pic: bool,
    sps: Arc<Sps>,
    pps: Arc<Pps>,
}

/// Parses and checks one slice header (§7.3.3, semantics of §7.4.3).
fn slice_header(sets: &ParameterSets, nal: &[u8]) -> Result<Header, CodecError> {
    let b0 = *nal.first().ok_or(CodecError::Truncated { what: WHAT_SLICE, len: 0, need: 2 })?;
    let rbsp = unescape_rbsp(&nal[1..nal.len().min(MAX_HEADER_BYTES)]);
    let mut r = BitReader::new(&rbsp, WHAT_SLICE);
    let s = read_start(&mut r, sets, b0)?;
    let num_ref_idx = read_ref_lists(&mut r, &s)?;
    read_pred_weight_table(&mut r, &s, num_ref_idx)?;
    read_dec_ref_pic_marking(&mut r, &s)?;
    read_tail(&mut r, &s)?;
    Ok(s.header)
}

/// first_mb_in_slice .. redundant_pic_cnt.
fn read_start(r: &mut BitReader<'_>, sets: &ParameterSets, b0: u8) -> Result<Start, CodecError> {
    let nal_ref_idc = (b0 >> 5) & 3;
    let idr = h264::nal_type(b0) == h264::NAL_IDR;
    if idr && nal_ref_idc == 0 {
        return Err(r.invalid("IDR slice with nal_ref_idc 0"));
    }
    let first_mb = r.read_ue()?;
    let slice_type = r.read_ue_max("slice_type", 9)?;
    let kind = slice_type % 5;
    if idr && !matches!(kind, 2 | 4) {
        return Err(r.invalid(format!("IDR slice has slice_type {slice_type} (not I or SI)")));
    }
    let pps_id = r.read_ue_max("pic_parameter_set_id", h264::sps::MAX_PPS_ID)?;
    let (sps, pps) = sets.active(pps_id, WHAT_SLICE)?;
    let (sps, pps) = (Arc::clone(sps), Arc::clone(pps));
    let pic_size_in_mbs = sps.frame_size_in_mbs();
    if u64::from(first_mb) >= pic_size_in_mbs {
        return Err(
            r.invalid(format!("first_mb_in_slice {first_mb} is past the picture's {pic_size_in_mbs} macroblocks"))
        );
    }
    if sps.separate_colour_plane {
        r.skip_bits(2)?; // colour_plane_id
    }
    let frame_num = r.read_bits(sps.log2_max_frame_num())?;
    if idr && frame_num != 0 {
        return Err(r.invalid(format!("IDR slice has frame_num {frame_num}")));
    }
    let mut field_pic = false;
    if !sps.frame_mbs_only {
        field_pic = r.read_bit()?;
        if field_pic {
            r.skip_bits(1)?; // bottom_field_flag
        }
    }
    let mbaff = sps.mb_adaptive_frame_field && !field_pic;
    if mbaff && u64::from(first_mb) * 2 >= pic_size_in_mbs {
        return Err(r.invalid(format!("first_mb_in_slice {first_mb} is past the MBAFF picture")));
    }
    if idr {
        r.read_ue_max("idr_pic_id", 65535)?;
    }
    let bottom_present = pps.bottom_field_pic_order_in_frame_present && !field_pic;
    if sps.pic_order_cnt_type == 0 {
        r.skip_bits(sps.log2_max_poc_lsb() as usize)?; // pic_order_cnt_lsb
        if bottom_present {
            r.read_se()?; // delta_pic_order_cnt_bottom
        }
    }
    if sps.pic_order_cnt_type == 1 && !sps.delta_pic_order_always_zero {
        r.read_se()?;
        if bottom_present {
            r.read_se()?;
        }
    }
    if pps.redundant_pic_cnt_present {
        r.read_ue_max("redundant_pic_cnt", 127)?;
    }
    let header = Header {
        first_mb,
        idr,
        reference: nal_ref_idc != 0,
        frame_num,
        log2_max_frame_num: sps.log2_max_frame_num(),
        gaps_allowed: sps.gaps_in_frame_num_allowed,
    };
    Ok(Start { header, nal_ref_idc, kind, field_pic, sps, pps })
}

/// Reference lists in use for a slice kind: none for I/SI, one for P/SP, two for B.
fn list_count(kind: u32) -> usize {
    match kind {
        0 | 3 => 1,
        1 => 2,
        _ => 0,
    }
}

/// direct_spatial_mv_pred_flag, the active reference counts and ref_pic_list_modification()
/// (§7.3.3.1). Returns the active reference counts.
fn read_ref_lists(r: &mut BitReader<'_>, s: &Start) -> Result<[u32; 2], CodecError> {
    if s.kind == 1 {
        r.skip_bits(1)?; // direct_spatial_mv_pred_flag
    }
    let max_refs = if s.field_pic { 32 } else { 16 };
    let mut num_ref_idx = s.pps.num_ref_idx_default;
    let lists = list_count(s.kind);
    if lists > 0 {
        if r.read_bit()? {
            // num_ref_idx_active_override_flag
            num_ref_idx[0] = r.read_ue_max("num_ref_idx_l0_active_minus1", max_refs - 1)? + 1;
            if s.kind == 1 {
                num_ref_idx[1] = r.read_ue_max("num_ref_idx_l1_active_minus1", max_refs - 1)? + 1;
            }
        }
        for (list, &n) in num_ref_idx.iter().enumerate().take(lists) {
            if n > max_refs {
                return Err(r.invalid(format!("{n} active references in list {list}, at most {max_refs}")));
            }
        }
    }
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
                    _ => return Err(r.invalid("view modification (MVC) in a base view slice")),
                }
            }
            if !done {
                return Err(r.invalid("reference list modification does not end"));
            }
        }
    }
    Ok(num_ref_idx)
}

/// pred_weight_table() (§7.3.3.2), when the PPS asks for explicit weights.
fn read_pred_weight_table(r: &mut BitReader<'_>, s: &Start, num_ref_idx: [u32; 2]) -> Result<(), CodecError> {
    let explicit = (s.pps.weighted_pred && matches!(s.kind, 0 | 3)) || (s.pps.weighted_bipred_idc == 1 && s.kind == 1);
    if !explicit {
        return Ok(());
    }
    let chroma = s.sps.chroma_array_type() != 0;
    r.read_ue_max("luma_log2_weight_denom", 7)?;
    if chroma {
        r.read_ue_max("chroma_log2_weight_denom", 7)?;
    }
    for &n in num_ref_idx.iter().take(list_count(s.kind)) {
        for _ in 0..n {
            if r.read_bit()? {
                r.read_se_in("luma_weight", -128, 127)?;
                r.read_se_in("luma_offset", -128, 127)?;
            }
            if chroma && r.read_bit()? {
                for _ in 0..2 {
                    r.read_se_in("chroma_weight", -128, 127)?;
                    r.read_se_in("chroma_offset", -128, 127)?;
                }
            }
        }
    }
    Ok(())
}

/// dec_ref_pic_marking() (§7.3.3.3), for reference pictures.
fn read_dec_ref_pic_marking(r: &mut BitReader<'_>, s: &Start) -> Result<(), CodecError> {
    if s.nal_ref_idc == 0 {
        return Ok(());
    }
    if s.header.idr {
        return r.skip_bits(2); // no_output_of_prior_pics_flag, long_term_reference_flag
    }
    if !r.read_bit()? {
        return Ok(()); // adaptive_ref_pic_marking_mode_flag 0
    }
    for _ in 0..MAX_MMCO {
        match r.read_ue_max("memory_management_control_operation", 6)? {
            0 => return Ok(()),
            1 | 2 | 6 => {
                r.read_ue()?;
            }
            3 => {
                r.read_ue()?;
                r.read_ue()?;
            }
            4 => {
                r.read_ue_max("max_long_term_frame_idx_plus1", s.sps.max_num_ref_frames)?;
            }
            _ => {}
        }
    }
    Err(r.invalid("reference picture marking does not end"))
}

/// cabac_init_idc .. the deblocking offsets, then the CABAC alignment bits.
fn read_tail(r: &mut BitReader<'_>, s: &Start) -> Result<(), CodecError> {
    if s.pps.entropy_coding_mode && !matches!(s.kind, 2 | 4) {
        r.read_ue_max("cabac_init_idc", 2)?;
    }
    let slice_qp_delta = r.read_se()?;
    let qp = s.pps.pic_init_qp() + i64::from(slice_qp_delta);
    let qp_bd_offset = s.sps.qp_bd_offset_y();
    if qp < -i64::from(qp_bd_offset) || qp > 51 {
        return Err(r.invalid(format!("slice QP {qp} is outside -{qp_bd_offset}..=51")));
    }
    if matches!(s.kind, 3 | 4) {
        if s.kind == 3 {
            r.skip_bits(1)?; // sp_for_switch_flag
        }
        r.read_se()?; // slice_qs_delta
    }
    if s.pps.deblocking_filter_control_present && r.read_ue_max("disable_deblocking_filter_idc", 2)? != 1 {
        r.read_se_in("slice_alpha_c0_offset_div2", -6, 6)?;
        r.read_se_in("slice_beta_offset_div2", -6, 6)?;
    }
    // slice_data() opens with cabac_alignment_one_bit up to the byte boundary.
    if s.pps.entropy_coding_mode {
        while !r.position().is_multiple_of(8) {
            if !r.read_bit()? {
                return Err(r.invalid("a CABAC alignment bit after the header is 0"));
            }
        }
    }
    Ok(())
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
