//! The one bit reader and the one RBSP unescaper every codec module uses.
//!
//! - [`BitReader`]: MSB-first reads of up to [`MAX_READ_BITS`] bits, ue(v)/se(v) Exp-Golomb
//!   codes (ITU-T H.264 §9.1, H.265 §9.2), skips and byte alignment. Every read is
//!   bounds-checked: running out of data is a [`CodecError::Truncated`] naming the structure
//!   being read, never a panic. The H.264/HEVC parameter set and slice header parsers, the
//!   AAC AudioSpecificConfig and raw_data_block readers, the AC-3/E-AC-3 header readers and
//!   the AV1/VP9 header readers all read through it.
//! - [`unescape_rbsp`]: removes emulation-prevention bytes (H.264 §7.4.1, H.265 §7.4.2),
//!   borrowing the input unchanged when it holds none (the common case for slice headers).
//!
//! Written by hand: the bit-reading crates on crates.io (`bitreader`, `bitstream-io`) lack
//! Exp-Golomb codes or report running out as I/O errors without the structure's name, and
//! `h264-reader`'s `rbsp` module is tied to its own error type (see [`super::h264`]).

use std::borrow::Cow;

use super::CodecError;

/// Most bits one [`BitReader::read_bits`] returns.
pub const MAX_READ_BITS: u32 = 32;
/// Most leading zero bits of an Exp-Golomb code: with 31, a ue(v) spans at most 63 bits and
/// its value fits in a `u32` (at most 2^32 − 2). Longer codes are invalid.
pub const MAX_EXP_GOLOMB_LEADING_ZEROS: u32 = 31;

/// Removes emulation-prevention bytes (the `03` of every `00 00 03`) from NAL unit payload
/// bytes, giving the RBSP (ITU-T H.264 §7.4.1, H.265 §7.4.2). Borrows `data` when it holds
/// no `00 00 03`; copies only when there is something to remove.
pub fn unescape_rbsp(data: &[u8]) -> Cow<'_, [u8]> {
    let Some(first) = first_emulation_prevention(data) else {
        return Cow::Borrowed(data);
    };
    let mut out = Vec::with_capacity(data.len());
    out.extend_from_slice(&data[..first]);
    let mut zeros = 0usize;
    for &b in &data[first + 1..] {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    Cow::Owned(out)
}

/// Index of the first emulation-prevention byte (a `03` after two zero bytes) in `data`.
fn first_emulation_prevention(data: &[u8]) -> Option<usize> {
    let mut zeros = 0usize;
    for (i, &b) in data.iter().enumerate() {
        if zeros >= 2 && b == 3 {
            return Some(i);
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
    }
    None
}

/// MSB-first bit reader with Exp-Golomb support. Every read is bounds-checked and reports
/// [`CodecError::Truncated`] naming `what` when the data runs out.
#[derive(Clone, Debug)]
pub struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> BitReader<'a> {
    /// A reader at the first bit of `data`; `what` names the structure in errors.
    pub fn new(data: &'a [u8], what: &'static str) -> Self {
        BitReader { data, pos: 0, what }
    }

    /// Bits consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bits not read yet.
    pub fn bits_left(&self) -> usize {
        (self.data.len() * 8).saturating_sub(self.pos)
    }

    /// The error for a read of `extra_bits` more bits than are left.
    fn truncated(&self, extra_bits: usize) -> CodecError {
        CodecError::Truncated {
            what: self.what,
            len: self.data.len(),
            need: self.pos.saturating_add(extra_bits).div_ceil(8),
        }
    }

    /// An [`CodecError::Invalid`] naming this reader's structure.
    pub fn invalid(&self, reason: impl Into<String>) -> CodecError {
        CodecError::Invalid { what: self.what, reason: reason.into() }
    }

    /// Reads one bit.
    pub fn read_bit(&mut self) -> Result<bool, CodecError> {
        let byte = self.data.get(self.pos / 8).ok_or_else(|| self.truncated(1))?;
        let bit = (byte >> (7 - (self.pos % 8))) & 1;
        self.pos += 1;
        Ok(bit == 1)
    }

    /// Reads `n` bits (at most [`MAX_READ_BITS`]) as an unsigned big-endian value.
    pub fn read_bits(&mut self, n: u32) -> Result<u32, CodecError> {
        if n > MAX_READ_BITS {
            return Err(self.invalid(format!("read of {n} bits at once (at most {MAX_READ_BITS})")));
        }
        if self.bits_left() < n as usize {
            return Err(self.truncated(n as usize));
        }
        if n == 0 {
            return Ok(0);
        }
        // The (at most 5) bytes holding the bits, as one big-endian word.
        let first = self.pos / 8;
        let mut word = [0u8; 8];
        let take = (self.data.len() - first).min(8);
        word[..take].copy_from_slice(&self.data[first..first + take]);
        let v = (u64::from_be_bytes(word) << (self.pos % 8)) >> (64 - n);
        self.pos += n as usize;
        Ok(v as u32)
    }

    /// Reads `n` bits (at most 8) as a `u8`.
    pub fn read_u8(&mut self, n: u32) -> Result<u8, CodecError> {
        Ok(self.read_bits(n.min(8))? as u8)
    }

    /// Skips `n` bits.
    pub fn skip_bits(&mut self, n: usize) -> Result<(), CodecError> {
        if self.bits_left() < n {
            return Err(self.truncated(n));
        }
        self.pos += n;
        Ok(())
    }

    /// ue(v): unsigned Exp-Golomb code (H.264 §9.1). Codes with more than
    /// [`MAX_EXP_GOLOMB_LEADING_ZEROS`] leading zeros are invalid.
    pub fn read_ue(&mut self) -> Result<u32, CodecError> {
        let mut zeros = 0u32;
        while !self.read_bit()? {
            zeros += 1;
            if zeros > MAX_EXP_GOLOMB_LEADING_ZEROS {
                return Err(self.invalid(format!("Exp-Golomb code at bit {} is longer than 32 bits", self.pos)));
            }
        }
        let rest = self.read_bits(zeros)?;
        Ok(((1u64 << zeros) - 1 + u64::from(rest)) as u32)
    }

    /// se(v): signed Exp-Golomb code (H.264 §9.1.1).
    pub fn read_se(&mut self) -> Result<i32, CodecError> {
        let k = i64::from(self.read_ue()?);
        let v = if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) };
        Ok(v as i32)
    }

    /// ue(v) that must not exceed `max`; `field` names it in the error.
    pub fn read_ue_max(&mut self, field: &str, max: u32) -> Result<u32, CodecError> {
        let v = self.read_ue()?;
        if v > max {
            return Err(self.invalid(format!("{field} is {v}, at most {max} allowed")));
        }
        Ok(v)
    }

    /// se(v) that must lie in `min..=max`; `field` names it in the error.
    pub fn read_se_in(&mut self, field: &str, min: i32, max: i32) -> Result<i32, CodecError> {
        let v = self.read_se()?;
        if v < min || v > max {
            return Err(self.invalid(format!("{field} is {v}, outside {min}..={max}")));
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::super::h264::tests::{escape, BitWriter};
    use super::*;

    #[test]
    fn bit_reader_exp_golomb() {
        let mut w = BitWriter::default();
        for v in [0u32, 1, 2, 3, 7, 255, 65535, u32::MAX - 1] {
            w.ue(v);
        }
        for v in [0i32, 1, -1, 2, -2, 1000, -1000] {
            w.se(v);
        }
        let data = w.finish();
        let mut r = BitReader::new(&data, "test");
        for v in [0u32, 1, 2, 3, 7, 255, 65535, u32::MAX - 1] {
            assert_eq!(r.read_ue().unwrap(), v);
        }
        for v in [0i32, 1, -1, 2, -2, 1000, -1000] {
            assert_eq!(r.read_se().unwrap(), v);
        }
        // 33 leading zeros are rejected, an empty reader is truncated.
        let zeros = [0u8; 8];
        assert!(matches!(BitReader::new(&zeros, "t").read_ue(), Err(CodecError::Invalid { .. })));
        assert!(matches!(BitReader::new(&[], "t").read_bit(), Err(CodecError::Truncated { .. })));
        let mut r = BitReader::new(&[0xff], "t");
        assert!(r.read_bits(9).is_err());
        assert_eq!(r.read_bits(8).unwrap(), 0xff);
    }

    #[test]
    fn exp_golomb_edge_values() {
        // The largest ue(v): 31 zeros, a one, 31 ones = 2^32 - 2.
        let mut w = BitWriter::default();
        w.ue(u32::MAX - 1);
        assert_eq!(w.bit_count(), 63);
        w.se(i32::MAX);
        w.se(-i32::MAX);
        let data = w.finish();
        let mut r = BitReader::new(&data, "t");
        assert_eq!(r.read_ue().unwrap(), u32::MAX - 1);
        assert_eq!(r.read_se().unwrap(), i32::MAX);
        assert_eq!(r.read_se().unwrap(), -i32::MAX);
        // Exactly 32 leading zeros: invalid, not truncated, and not a panic.
        let mut r = BitReader::new(&[0, 0, 0, 0, 0x80, 0, 0, 0, 0], "t");
        assert!(matches!(r.read_ue(), Err(CodecError::Invalid { what: "t", .. })));
        // A code cut short in its suffix is truncated.
        let mut r = BitReader::new(&[0x00, 0x01], "t"); // 15 zeros, a one, no suffix
        assert!(matches!(r.read_ue(), Err(CodecError::Truncated { what: "t", len: 2, need: 4 })));
        // ue_max / se_in bounds.
        let mut w = BitWriter::default();
        w.ue(17);
        w.se(-7);
        let data = w.finish();
        let mut r = BitReader::new(&data, "t");
        assert!(r.clone().read_ue_max("x", 16).is_err());
        assert_eq!(r.read_ue_max("x", 17).unwrap(), 17);
        assert!(r.clone().read_se_in("y", -6, 6).is_err());
        assert_eq!(r.read_se_in("y", -7, 0).unwrap(), -7);
    }

    #[test]
    fn running_out_is_an_error() {
        let mut r = BitReader::new(&[0xa5, 0x0f], "t");
        assert_eq!(r.read_bits(0).unwrap(), 0);
        assert_eq!(r.read_bits(3).unwrap(), 0b101);
        assert_eq!(r.bits_left(), 13);
        assert!(matches!(r.read_bits(33), Err(CodecError::Invalid { .. })));
        assert!(matches!(r.skip_bits(14), Err(CodecError::Truncated { need: 3, .. })));
        assert_eq!(r.position(), 3, "a failed read consumes nothing");
        r.skip_bits(5).unwrap();
        assert_eq!(r.position(), 8);
        assert_eq!(r.read_u8(8).unwrap(), 0x0f);
        assert_eq!(r.bits_left(), 0);
        assert!(r.read_bit().is_err());
        assert!(r.read_ue().is_err());
        assert!(r.skip_bits(usize::MAX).is_err());
        assert_eq!(r.read_bits(0).unwrap(), 0);
    }

    #[test]
    fn unescape_removes_emulation_prevention() {
        assert_eq!(unescape_rbsp(&[0, 0, 3, 1, 0, 0, 3, 0, 0, 3]), vec![0, 0, 1, 0, 0, 0, 0]);
        assert_eq!(unescape_rbsp(&[0, 3, 0, 0, 3]), vec![0, 3, 0, 0]);
        assert_eq!(escape(&[0, 0, 0, 0, 0, 1]), vec![0, 0, 3, 0, 0, 3, 0, 1]);
    }

    #[test]
    fn unescape_borrows_unless_it_must_copy() {
        for clean in [&[][..], &[0, 0], &[0, 0, 1, 0, 0, 2], &[3, 0, 3, 0, 0, 4, 0, 0]] {
            assert!(matches!(unescape_rbsp(clean), Cow::Borrowed(b) if b == clean));
        }
        // 00 00 03 at the very end: the 03 goes, and the copy is made.
        let end = [0x65, 0x88, 0, 0, 3];
        assert!(matches!(unescape_rbsp(&end), Cow::Owned(v) if v == [0x65, 0x88, 0, 0]));
        // The count of zeros restarts after a removed byte: 00 00 03 00 03 keeps the last 03.
        assert_eq!(unescape_rbsp(&[0, 0, 3, 0, 3]), vec![0, 0, 0, 3]);
        // Round trip through the test escaper.
        let raw: Vec<u8> = (0..300u32).map(|i| if i % 7 < 4 { 0 } else { (i % 5) as u8 }).collect();
        assert_eq!(unescape_rbsp(&escape(&raw)), raw);
    }
}
