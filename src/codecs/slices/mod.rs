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
//!   §7.4.3 checked, then `cabac_alignment_one_bit` (§7.3.4). The SPS and PPS come
//!   parsed by [`crate::codecs::h264`] (one parse, the same limits as POC derivation).
//! - HEVC: `slice_segment_header()` of ITU-T H.265 §7.3.6.1 as far as
//!   `slice_pic_order_cnt_lsb`: PPS id, `first_slice_segment_in_pic_flag`,
//!   `slice_segment_address` against `PicSizeInCtbsY`, slice type (I for IRAP pictures).
//!   The QP lies behind the reference picture set syntax and is not checked.
//!
//! Written from the specifications. Never panics on input: every count read from the
//! stream is bounded before it drives a loop or an index.
//!
//! Split by codec: [`h264`] and [`hevc`].

mod h264;
mod hevc;
#[cfg(test)]
mod tests;

pub use self::h264::check_h264;
#[cfg(test)]
pub use self::h264::{check_h264_config, check_h264_with};
pub use self::hevc::check_hevc;

/// Bytes of a slice NAL unit unescaped for its header: the longest H.264 header (32
/// references per list with weights, and memory management operations) fits easily.
const MAX_HEADER_BYTES: usize = 1024;
/// Most slices checked per sample; the rest of a many-sliced picture adds nothing.
const MAX_SLICES_PER_SAMPLE: usize = 16;

/// What the check saw in the samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SliceCheck {
    /// Slice headers read.
    pub slices: usize,
    /// Samples that carried a parameter set in-band (then the record matters less).
    pub inband_parameter_sets: bool,
}
