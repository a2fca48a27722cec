//! Where the regular `moov` goes and the order of the writes (the module doc of
//! [`super`]).

use bytes::{BufMut, Bytes, BytesMut};

use super::super::init::SECTOR;
use crate::formats::{FinalizePlan, WriteStep};

/// Where things are in a fragmented file, as [`plan_steps`] needs them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// A `free` box reserved before the fragmented `moov`: (offset, total size).
    pub reserve: Option<(u64, u64)>,
    /// Offset of the fragmented `moov`.
    pub moov_offset: u64,
    /// End of the last complete fragment (T).
    pub end: u64,
    /// Length of the file; past `end`, it is cut first.
    pub len: u64,
}

/// Whether `len` bytes at `offset` lie inside one sector.
pub(super) fn in_one_sector(offset: u64, len: u64) -> bool {
    offset % SECTOR + len <= SECTOR
}

/// An `mdat` header for a box of `size` bytes (header included), 32-bit when `compact`
/// and the size fits.
fn mdat_header(size: u64, compact: bool) -> Vec<u8> {
    let mut h = Vec::with_capacity(16);
    if compact && size <= u32::MAX as u64 {
        h.extend_from_slice(&(size as u32).to_be_bytes());
        h.extend_from_slice(b"mdat");
    } else {
        h.extend_from_slice(&1u32.to_be_bytes());
        h.extend_from_slice(b"mdat");
        h.extend_from_slice(&size.to_be_bytes());
    }
    h
}

/// The writes that turn the fragmented file described by `layout` into a regular MP4 with
/// the given `moov` (from [`FragmentIndex::final_moov`]), in the order of the module doc.
pub fn plan_steps(layout: &Layout, moov: Bytes) -> FinalizePlan {
    let mut plan = FinalizePlan::default();
    let end = layout.end;
    if layout.len > end {
        plan.steps.push(WriteStep::Truncate { len: end });
    }
    let s = moov.len() as u64;
    if let Some((f, r)) = layout.reserve {
        // The mdat after the moov runs from F+S to T; its header is 16 bytes only when
        // 32 bits cannot hold its size.
        let mdat_size = end.saturating_sub(f + s);
        let header = mdat_header(mdat_size, true);
        if s + (header.len() as u64) <= r && in_one_sector(f, 8) {
            let mut data = BytesMut::with_capacity(moov.len() - 8 + header.len());
            data.put_slice(&moov[8..]);
            data.put_slice(&header);
            plan.steps.push(WriteStep::Write { offset: f + 8, data: data.freeze() });
            plan.steps.push(WriteStep::Write { offset: f, data: moov.slice(..8) });
            plan.notes.push(format!(
                "faststart: the {s}-byte moov fits the {r} bytes reserved at offset {f}: \
                 it goes before the media, which is not moved"
            ));
            return plan;
        }
    }
    // moov at the end: hidden in a trailing free box first, then revealed by the switch.
    let (switch_at, why) = match layout.reserve {
        Some((f, r)) if r >= 16 && in_one_sector(f, 16) => {
            (f, format!("it does not fit the {r} bytes reserved at offset {f}"))
        }
        _ => (layout.moov_offset, "no free space is reserved before the index for it".to_string()),
    };
    let mut tail = BytesMut::with_capacity(moov.len() + 8);
    tail.put_u32((s + 8) as u32);
    tail.put_slice(b"free");
    tail.put_slice(&moov);
    plan.steps.push(WriteStep::Write { offset: end, data: tail.freeze() });
    let header = mdat_header(end + 8 - switch_at, !in_one_sector(switch_at, 16));
    if !in_one_sector(switch_at, header.len() as u64) {
        plan.notes.push(format!(
            "the {}-byte switch at offset {switch_at} crosses a {SECTOR}-byte sector boundary: \
             it is atomic only on devices that write 4 KiB pages whole",
            header.len()
        ));
    }
    plan.steps.push(WriteStep::Write { offset: switch_at, data: header.into() });
    plan.notes.push(format!("moov at the end ({s} bytes; {why}): the media is not moved"));
    plan
}
