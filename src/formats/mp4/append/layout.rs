//! The reserved-space layout: two index slots hidden in `free` boxes, switched by one
//! aligned 4-byte write (see the protocol in [`super`]).
//!
//! ```text
//! switch                 area 0 (L bytes)               area 1 (L bytes)        mdat
//! free(8)              | moov₀ | free ───────────────────────────────────────▶| size 0 ...
//!                                                                                 (area 0 live)
//! free(8+L) ──────────────────────────────────────────▶| moov₁ | free ────────▶| size 0 ...
//!                                                                                 (area 1 live)
//! ```
//!
//! With area 0 live the switch box is empty, area 0 holds the `moov` and a `free` box that
//! runs to the `mdat`, hiding area 1. With area 1 live the switch box covers area 0, and area
//! 1 holds the `moov` and a `free` box to its end. Either way the file shows one `moov`, and
//! the inactive area lies inside a `free` box, where any bytes may be written.

use bytes::{BufMut, Bytes, BytesMut};

use super::super::boxes::BoxHeader;

/// Bytes of a `free` or `mdat` header written here.
pub const HEADER: u64 = 8;
/// Areas are rounded up to this.
pub const AREA_ALIGN: u64 = 4096;
/// Largest area: the `free` box hiding the other area must fit a 32-bit size.
pub const MAX_AREA: u64 = (u32::MAX as u64 - HEADER) / 2 / AREA_ALIGN * AREA_ALIGN;

/// Where the slots of a file in the reserved-space layout are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slots {
    /// Offset of the switch: the leading `free` box, whose 4-byte size selects the live area.
    pub switch: u64,
    /// Capacity of each area.
    pub area: u64,
    /// The area holding the live `moov`: 0 or 1.
    pub live: usize,
}

impl Slots {
    /// A fresh layout with area 0 live.
    pub fn new(switch: u64, area: u64) -> Self {
        Slots { switch, area, live: 0 }
    }

    pub fn area_offset(&self, k: usize) -> u64 {
        self.switch + HEADER + k as u64 * self.area
    }

    /// Offset of the `mdat` header (size 0: to the end of the file).
    pub fn mdat(&self) -> u64 {
        self.switch + HEADER + 2 * self.area
    }

    /// Where media starts.
    pub fn media_start(&self) -> u64 {
        self.mdat() + HEADER
    }

    pub fn inactive(&self) -> usize {
        1 - self.live
    }

    /// The switch box's size when area `k` is live.
    pub fn switch_value(&self, k: usize) -> u32 {
        (HEADER + k as u64 * self.area) as u32
    }

    /// The switch write that makes area `k` live.
    pub fn switch_bytes(&self, k: usize) -> Bytes {
        Bytes::copy_from_slice(&self.switch_value(k).to_be_bytes())
    }

    /// Whether a `moov` of `len` bytes fits an area with the `free` header after it.
    pub fn fits(&self, moov_len: u64) -> bool {
        moov_len + HEADER <= self.area
    }

    /// What to write at [`Slots::area_offset`]`(k)`: the `moov`, then the header of a `free`
    /// box that runs to the end of the areas (only its header is written; the bytes it
    /// covers are never read).
    pub fn area_contents(&self, k: usize, moov: &[u8]) -> Bytes {
        debug_assert!(self.fits(moov.len() as u64));
        let pad = self.mdat() - self.area_offset(k) - moov.len() as u64;
        let mut b = BytesMut::with_capacity(moov.len() + HEADER as usize);
        b.put_slice(moov);
        b.put_u32(pad as u32);
        b.put_slice(b"free");
        b.freeze()
    }

    /// The switch box and the `mdat` header of a fresh file, for area 0 live.
    pub fn switch_box() -> [u8; 8] {
        let mut b = [0u8; 8];
        b[..4].copy_from_slice(&(HEADER as u32).to_be_bytes());
        b[4..].copy_from_slice(b"free");
        b
    }

    pub fn mdat_header() -> [u8; 8] {
        let mut b = [0u8; 8];
        b[4..].copy_from_slice(b"mdat");
        b
    }

    /// Recognizes the layout from a file's top-level boxes: a `free` switch box at a 4-byte
    /// aligned offset, the `moov` right after it, a `free` box that ends where both areas
    /// end, and an `mdat` of size 0 there. Anything else (including a `moov` that does not
    /// leave room for the padding header) is not the layout.
    pub fn detect(top: &[(u64, BoxHeader)], len: u64) -> Option<Slots> {
        let j = top.windows(2).position(|w| w[0].1.fourcc.0 == *b"free" && w[1].1.fourcc.0 == *b"moov")?;
        if top[..j].iter().any(|(_, h)| matches!(&h.fourcc.0, b"moov" | b"mdat" | b"moof")) || top.len() != j + 4 {
            return None;
        }
        let (switch, sw) = top[j];
        let (moov_at, moov) = top[j + 1];
        let (pad_at, pad) = top[j + 2];
        let (mdat_at, mdat) = top[j + 3];
        let plain = |h: &BoxHeader| h.header_len as u64 == HEADER;
        if switch % 4 != 0 || !plain(&sw) || !plain(&pad) || pad.fourcc.0 != *b"free" {
            return None;
        }
        if mdat.fourcc.0 != *b"mdat" || mdat.size.is_some() || !plain(&mdat) || mdat_at + HEADER > len {
            return None;
        }
        let (sw_size, moov_size, pad_size) = (sw.size?, moov.size?, pad.size?);
        if pad_at.checked_add(pad_size) != Some(mdat_at) || moov_at.checked_add(moov_size) != Some(pad_at) {
            return None;
        }
        let (area, live) = if sw_size == HEADER {
            let span = mdat_at.checked_sub(switch + HEADER)?;
            (span / 2, 0)
        } else {
            (sw_size - HEADER, 1)
        };
        let slots = Slots { switch, area, live };
        let ok = area > 0
            && area <= MAX_AREA
            && slots.mdat() == mdat_at
            && slots.area_offset(live) == moov_at
            && slots.fits(moov_size);
        ok.then_some(slots)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::mp4::file::top_level;

    fn file(slots: &Slots, moov_len: usize, media: usize) -> Vec<u8> {
        let mut f = vec![0u8; slots.media_start() as usize + media];
        f[..4].copy_from_slice(&(slots.switch as u32).to_be_bytes());
        f[4..8].copy_from_slice(b"ftyp");
        let s = slots.switch as usize;
        f[s..s + 4].copy_from_slice(&slots.switch_value(slots.live).to_be_bytes());
        f[s + 4..s + 8].copy_from_slice(b"free");
        let mut moov = vec![0u8; moov_len];
        moov[..4].copy_from_slice(&(moov_len as u32).to_be_bytes());
        moov[4..8].copy_from_slice(b"moov");
        let at = slots.area_offset(slots.live) as usize;
        let c = slots.area_contents(slots.live, &moov);
        f[at..at + c.len()].copy_from_slice(&c);
        let m = slots.mdat() as usize;
        f[m..m + 8].copy_from_slice(&Slots::mdat_header());
        f
    }

    fn detect(f: &[u8]) -> Option<Slots> {
        let top = top_level(&mut std::io::Cursor::new(f), f.len() as u64).unwrap();
        Slots::detect(&top, f.len() as u64)
    }

    #[test]
    fn both_states_are_recognized() {
        for live in [0, 1] {
            let slots = Slots { switch: 32, area: 4096, live };
            let f = file(&slots, 1000, 100);
            assert_eq!(detect(&f), Some(slots));
            let top = top_level(&mut std::io::Cursor::new(&f), f.len() as u64).unwrap();
            let kinds: Vec<_> = top.iter().map(|(_, h)| h.fourcc.to_string()).collect();
            assert_eq!(kinds, ["ftyp", "free", "moov", "free", "mdat"]);
        }
    }

    #[test]
    fn switching_shows_the_other_area() {
        let slots = Slots { switch: 32, area: 4096, live: 0 };
        let mut f = file(&slots, 1000, 10);
        // Write a moov into area 1: still area 0 live.
        let mut moov = vec![0u8; 2000];
        moov[..4].copy_from_slice(&2000u32.to_be_bytes());
        moov[4..8].copy_from_slice(b"moov");
        let at = slots.area_offset(1) as usize;
        let c = slots.area_contents(1, &moov);
        f[at..at + c.len()].copy_from_slice(&c);
        assert_eq!(detect(&f), Some(slots));
        f[32..36].copy_from_slice(&slots.switch_bytes(1));
        let now = detect(&f).unwrap();
        assert_eq!(now.live, 1);
        assert_eq!(now.area, 4096);
        let top = top_level(&mut std::io::Cursor::new(&f), f.len() as u64).unwrap();
        assert_eq!(top[2].0, at as u64);
        assert_eq!(top[2].1.size, Some(2000));
    }

    #[test]
    fn other_layouts_are_not_taken_for_it() {
        let slots = Slots { switch: 32, area: 4096, live: 0 };
        let f = file(&slots, 1000, 10);
        // mdat with a real size.
        let mut g = f.clone();
        let m = slots.mdat() as usize;
        g[m..m + 4].copy_from_slice(&18u32.to_be_bytes());
        assert_eq!(detect(&g), None);
        // A moov that runs into the second half: not two equal areas.
        let mut big = file(&Slots { switch: 32, area: 4096, live: 0 }, 1000, 10);
        let at = 40;
        big[at..at + 4].copy_from_slice(&5000u32.to_be_bytes());
        big[at + 5000..at + 5004].copy_from_slice(&(8192 - 5000u32).to_be_bytes());
        big[at + 5004..at + 5008].copy_from_slice(b"free");
        assert_eq!(detect(&big), None);
        // Switch box at an unaligned offset.
        let mut h = vec![0, 0, 0, 10, b'f', b't', b'y', b'p', 0, 0];
        h.extend_from_slice(&file(&Slots { switch: 32, area: 4096, live: 0 }, 1000, 0)[32..]);
        assert_eq!(detect(&h), None);
    }
}
