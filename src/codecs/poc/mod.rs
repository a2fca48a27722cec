//! Picture order counts (POC), for rebuilding presentation timestamps when only the
//! decode-order access units of a video track are known (for example when an MP4's `moov`
//! with its `ctts` table is lost).
//!
//! - [`H264PocState`] ([`h264`]) parses H.264 slice headers (ITU-T H.264 §7.3.3, as far as
//!   `delta_pic_order_cnt[]` and `redundant_pic_cnt`) and derives the picture order count of
//!   §8.2.1 for `pic_order_cnt_type` 0 (§8.2.1.1), 1 (§8.2.1.2) and 2 (§8.2.1.3). It takes
//!   the SPS and PPS as [`crate::codecs::h264`] parsed them (one parse per parameter set,
//!   the same limits as everywhere else): see [`H264PocState::new`].
//! - [`HevcPocState`] ([`hevc`]) parses H.265 `slice_segment_header()` (ITU-T H.265 §7.3.6.1) as far as
//!   `slice_pic_order_cnt_lsb` and derives `PicOrderCntVal` (§8.3.1), tracking `prevTid0Pic`.
//! - [`PresentationOrder`] turns per-access-unit POCs (decode order) into presentation indices.
//!
//! Written from the specifications. Known simplification: H.264
//! `memory_management_control_operation` 5 (which resets POC state like an IDR, §8.2.1) is
//! not detected, because `dec_ref_pic_marking()` lies behind the reference-list and weighted
//! prediction syntax; encoders used for streaming (x264, hardware encoders) rarely emit it.

mod h264;
mod hevc;
#[cfg(test)]
mod tests;

pub use self::h264::H264PocState;
pub use self::hevc::HevcPocState;
use super::CodecError;

fn to_i32(what: &'static str, v: i64) -> Result<i32, CodecError> {
    i32::try_from(v)
        .map_err(|_| CodecError::Invalid { what, reason: format!("picture order count {v} is out of range") })
}

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
