//! The first and last bits of a raw AAC frame (`raw_data_block()`, ISO/IEC 14496-3
//! §4.4.2.1, `ics_info()` §4.4.2.6, `section_data()` §4.4.2.7), for telling a frame start
//! from arbitrary bytes.

use crate::codecs::bits::BitReader;

/// Scalefactor bands of a long window, by sampling-frequency index (ISO/IEC 14496-3
/// §4.5.4, tables 4.129 ff.): the largest valid `max_sfb` of an ICS with long windows.
const NUM_SWB_LONG: [u8; 13] = [41, 41, 47, 49, 49, 51, 47, 47, 43, 43, 43, 40, 40];
/// The same for each short window of an EIGHT_SHORT_SEQUENCE.
const NUM_SWB_SHORT: [u8; 13] = [12, 12, 12, 14, 14, 14, 15, 15, 15, 15, 15, 15, 15];

/// What the first bits of a raw AAC frame say, for telling a real frame start from
/// arbitrary bytes when frames are stored back to back without lengths (an MP4 whose
/// index is lost).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawFrameStart {
    /// Global gain of the first channel, which changes slowly from frame to frame.
    pub global_gain: Option<u8>,
    /// 0 ONLY_LONG, 1 LONG_START, 2 EIGHT_SHORT, 3 LONG_STOP.
    pub window_sequence: u8,
}

impl RawFrameStart {
    /// Whether `next` may follow `self` (§4.6.11.3.1: the window sequence cannot jump
    /// from long to short, or back, without a transition window).
    pub fn may_precede(&self, next: &RawFrameStart) -> bool {
        matches!((self.window_sequence, next.window_sequence), (0 | 3, 0 | 1) | (1 | 2, 2 | 3))
    }
}

/// What `ics_info` (§4.4.2.1) says, checked against an AAC-LC stream: reserved bit 0,
/// `max_sfb` within the band count, no prediction.
struct IcsInfo {
    window_sequence: u8,
    max_sfb: u8,
    window_groups: u8,
}

fn ics_info(r: &mut BitReader<'_>, sf_index: usize) -> Option<IcsInfo> {
    if r.read_bit().ok()? {
        return None;
    }
    let window_sequence = r.read_bits(2).ok()? as u8;
    r.read_bit().ok()?;
    if window_sequence == 2 {
        let max_sfb = r.read_bits(4).ok()? as u8;
        // scale_factor_grouping: a 0 bit starts a new group of the eight windows.
        let grouping = r.read_bits(7).ok()?;
        let window_groups = 1 + (0..7).filter(|b| grouping & (1 << b) == 0).count() as u8;
        (max_sfb <= *NUM_SWB_SHORT.get(sf_index)?).then_some(IcsInfo { window_sequence, max_sfb, window_groups })
    } else {
        let max_sfb = r.read_bits(6).ok()? as u8;
        let predictor_data_present = r.read_bit().ok()?;
        (max_sfb <= *NUM_SWB_LONG.get(sf_index)? && !predictor_data_present).then_some(IcsInfo {
            window_sequence,
            max_sfb,
            window_groups: 1,
        })
    }
}

/// Reads `section_data` (§4.4.2.7): per window group, sections with a codebook and a
/// length, which must cover exactly `max_sfb` bands; codebook 12 is reserved.
fn section_data(r: &mut BitReader<'_>, ics: &IcsInfo) -> Option<()> {
    let (len_bits, escape) = if ics.window_sequence == 2 { (3, 7) } else { (5, 31) };
    for _ in 0..ics.window_groups {
        let mut k = 0u32;
        while k < u32::from(ics.max_sfb) {
            if r.read_bits(4).ok()? == 12 {
                return None;
            }
            let mut len = 0u32;
            loop {
                let incr = r.read_bits(len_bits).ok()?;
                len = len.checked_add(incr)?;
                if incr != escape {
                    break;
                }
                // No section is longer than the bands it must cover.
                if len > u32::from(ics.max_sfb) {
                    return None;
                }
            }
            if len == 0 {
                return None;
            }
            k = k.checked_add(len)?;
        }
        if k != u32::from(ics.max_sfb) {
            return None;
        }
    }
    Some(())
}

/// Checks whether an AAC-LC `raw_data_block` (§4.4.2.1) can start at `data[0]` for a
/// stream with channel configuration 1 (one SCE) or 2 (one CPE) at sampling-frequency
/// index `sf_index`: optional fill and data-stream elements first, then the channel
/// element with a plausible `ics_info`. `None` means "not a frame start".
pub fn raw_frame_start(data: &[u8], channel_config: u8, sf_index: usize) -> Option<RawFrameStart> {
    const ID_SCE: u32 = 0;
    const ID_CPE: u32 = 1;
    const ID_DSE: u32 = 4;
    const ID_FIL: u32 = 6;
    let mut r = BitReader::new(data, "raw_data_block");
    loop {
        let id = r.read_bits(3).ok()?;
        match id {
            ID_FIL => {
                // fill_element (§4.4.2.1): cnt 15 escapes to 15 + esc_count - 1, which is
                // 14 for esc_count 0 (subtracting first would wrap).
                let mut count = r.read_bits(4).ok()?;
                if count == 15 {
                    count = 14 + r.read_bits(8).ok()?;
                }
                for _ in 0..count {
                    r.read_bits(8).ok()?;
                }
            }
            ID_DSE => {
                r.read_bits(4).ok()?;
                let byte_align = r.read_bit().ok()?;
                let mut count = r.read_bits(8).ok()?;
                if count == 255 {
                    count += r.read_bits(8).ok()?;
                }
                if byte_align {
                    let pad = (8 - r.position() % 8) % 8;
                    r.read_bits(pad as u32).ok()?;
                }
                for _ in 0..count {
                    r.read_bits(8).ok()?;
                }
            }
            ID_SCE if channel_config == 1 => {
                if r.read_bits(4).ok()? != 0 {
                    return None;
                }
                let global_gain = Some(r.read_bits(8).ok()? as u8);
                let ics = ics_info(&mut r, sf_index)?;
                section_data(&mut r, &ics)?;
                return Some(RawFrameStart { global_gain, window_sequence: ics.window_sequence });
            }
            ID_CPE if channel_config == 2 => {
                if r.read_bits(4).ok()? != 0 {
                    return None;
                }
                if r.read_bit().ok()? {
                    // common_window: shared ics_info, M/S flags (mode 3 is reserved, mode 1
                    // has one flag per band and group), then the first channel's gain.
                    let ics = ics_info(&mut r, sf_index)?;
                    match r.read_bits(2).ok()? {
                        3 => return None,
                        1 => {
                            for _ in 0..u32::from(ics.window_groups) * u32::from(ics.max_sfb) {
                                r.read_bit().ok()?;
                            }
                        }
                        _ => {}
                    }
                    let global_gain = Some(r.read_bits(8).ok()? as u8);
                    section_data(&mut r, &ics)?;
                    return Some(RawFrameStart { global_gain, window_sequence: ics.window_sequence });
                }
                let global_gain = Some(r.read_bits(8).ok()? as u8);
                let ics = ics_info(&mut r, sf_index)?;
                section_data(&mut r, &ics)?;
                return Some(RawFrameStart { global_gain, window_sequence: ics.window_sequence });
            }
            _ => return None,
        }
    }
}

/// Whether a `raw_data_block` can end with the last byte of `data`: its final element is
/// ID_END (`111`) followed by fewer than 8 zero bits up to the byte boundary.
pub fn raw_frame_can_end(data: &[u8]) -> bool {
    let n = data.len();
    if n < 2 {
        return false;
    }
    let tail = u16::from_be_bytes([data[n - 2], data[n - 1]]);
    if tail == 0 {
        return false;
    }
    let zeros = tail.trailing_zeros();
    zeros < 8 && (tail >> zeros) & 0b111 == 0b111
}
