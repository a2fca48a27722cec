//! Resynchronising after damage: which bytes can start a top-level box, where the next
//! one is in the queued input, and a `moof` met inside an `mdat` of a fragmented stream.

use super::{is_meta, Mp4Walker, CANDIDATE_LEN};
use crate::formats::mp4::boxes::{FourCc, MAX_META_BOX, MAX_MOOF};

/// Box types found at the top level of MP4/MOV files.
pub(super) fn is_known_top_level(fourcc: &[u8; 4]) -> bool {
    is_meta(FourCc(*fourcc))
        || matches!(
            fourcc,
            b"mdat" | b"free" | b"skip" | b"wide" | b"uuid" | b"mfra" | b"meta" | b"udta" | b"pdin" | b"ssix" | b"pnot"
        )
}

/// Whether four bytes can name a box at all: letters, digits and spaces (a damaged
/// stretch rarely looks like that).
pub(super) fn is_box_name(fourcc: &[u8; 4]) -> bool {
    fourcc.iter().all(|&b| b.is_ascii_alphanumeric() || b == b' ')
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Judges the bytes at a possible box start during a resync scan: `Some(true)` for a
/// plausible top-level box, `None` when `b` is too short to tell (fewer than
/// [`CANDIDATE_LEN`] bytes and more may come).
pub(super) fn plausible_box(b: &[u8], more_may_come: bool) -> Option<bool> {
    if b.len() < 8 {
        return if more_may_come { None } else { Some(false) };
    }
    let fourcc: [u8; 4] = [b[4], b[5], b[6], b[7]];
    if !is_known_top_level(&fourcc) {
        return Some(false);
    }
    if b.len() < CANDIDATE_LEN && more_may_come {
        return None;
    }
    let size = be32(b) as u64;
    let child = b.get(12..16).map(|c| [c[0], c[1], c[2], c[3]]);
    let child_size = b.get(8..12).map(be32);
    Some(match &fourcc {
        b"moof" => (24..=MAX_MOOF).contains(&size) && child == Some(*b"mfhd") && child_size == Some(16),
        b"moov" => {
            (16..=MAX_META_BOX).contains(&size)
                && child.is_some_and(|c| matches!(&c, b"mvhd" | b"trak" | b"mvex" | b"udta" | b"meta" | b"iods"))
                && child_size.is_some_and(|s| s >= 8 && u64::from(s) <= size - 8)
        }
        // Size 0 runs to the end, 1 has a 64-bit size after the type.
        b"mdat" => match size {
            0 => true,
            1 => b.get(8..16).is_some_and(|l| u64::from_be_bytes(l.try_into().expect("8 bytes")) >= 16),
            s => s >= 8,
        },
        b"ftyp" | b"styp" => (16..=4096).contains(&size) && child.is_some_and(|c| is_box_name(&c)),
        b"free" | b"skip" | b"wide" => (8..=MAX_META_BOX).contains(&size),
        _ => (12..=MAX_META_BOX).contains(&size),
    })
}

impl Mp4Walker {
    /// Where the next plausible box starts in the queued bytes, if it can be told yet.
    pub(super) fn find_box(&self) -> Option<usize> {
        let mut base = 0;
        for chunk in &self.queue {
            // Starts whose candidate lies wholly in this slice.
            let whole = chunk.len().saturating_sub(CANDIDATE_LEN - 1);
            for i in 0..whole {
                // Every top-level box type begins with a lowercase letter.
                if chunk[i + 4].is_ascii_lowercase() && plausible_box(&chunk[i..i + CANDIDATE_LEN], true) == Some(true)
                {
                    return Some(base + i);
                }
            }
            for i in whole..chunk.len() {
                let (b, n) = self.bytes_at(base + i);
                match plausible_box(&b[..n], true) {
                    Some(true) => return Some(base + i),
                    None => return None,
                    Some(false) => {}
                }
            }
            base += chunk.len();
        }
        None
    }

    /// Looks for a `moof` header lying wholly within the first `limit` queued bytes of an
    /// `mdat` body of a fragmented stream. (Only wholly: the bytes a candidate needs are
    /// then the `mdat`'s own, so waiting for them never holds back the end of a file.)
    pub(super) fn moof_inside(&self, limit: usize) -> Inside {
        let Some(front) = self.queue.front() else { return Inside::None };
        let end = front.len().min(limit.saturating_sub(CANDIDATE_LEN - 1));
        let fast_end = front.len().saturating_sub(CANDIDATE_LEN).min(end);
        // Whole candidates inside the first slice: look for the type.
        let mut i = 0;
        while i < fast_end {
            match front[i + 4..fast_end + 7].windows(4).position(|w| w == b"moof") {
                None => break,
                Some(k) => {
                    let at = i + k;
                    if plausible_box(&front[at..at + CANDIDATE_LEN], false) == Some(true) {
                        return Inside::At(at);
                    }
                    i = at + 1;
                }
            }
        }
        // Candidates that reach past the first slice.
        for at in fast_end..end {
            let (b, n) = self.bytes_at(at);
            if n > 4 && b[4..n.min(8)] != b"moof"[..n.min(8) - 4] {
                continue;
            }
            match plausible_box(&b[..n], true) {
                Some(true) => return Inside::At(at),
                Some(false) => {}
                None => return Inside::Hold(at),
            }
        }
        Inside::None
    }
}

/// What [`Mp4Walker::moof_inside`] found.
pub(super) enum Inside {
    None,
    /// A `moof` starts this many bytes in.
    At(usize),
    /// Media up to here is safe; what follows needs more bytes to be judged.
    Hold(usize),
}
