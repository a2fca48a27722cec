//! Uncompressed PCM audio formats as QuickTime and ISO BMFF describe them.
//!
//! - QuickTime File Format, "Sound Sample Descriptions": the `sowt`, `twos`, `raw `,
//!   `in24`, `in32`, `fl32`, `fl64` formats, and `lpcm` with its LinearPCM format flags
//!   (kAudioFormatFlagIsFloat = 1, kAudioFormatFlagIsBigEndian = 2).
//! - ISO/IEC 23003-5 (PCMConfigurationBox `pcmC`): `ipcm` (integer) and `fpcm`
//!   (floating point) sample entries, whose `pcmC` gives the endianness
//!   (format_flags bit 0: little endian) and PCM_sample_size.
//!
//! Signedness is not modeled: 8-bit samples are read the same whether a `raw ` entry
//! (unsigned) or a `twos` entry (signed) described them, and are written as `twos`.

use super::CodecError;

const WHAT: &str = "PCM format";

/// kAudioFormatFlagIsFloat of the QuickTime `lpcm` format flags.
pub const LPCM_FLAG_FLOAT: u32 = 1;
/// kAudioFormatFlagIsBigEndian.
pub const LPCM_FLAG_BIG_ENDIAN: u32 = 2;
/// kAudioFormatFlagIsSignedInteger.
pub const LPCM_FLAG_SIGNED_INTEGER: u32 = 4;
/// kAudioFormatFlagIsPacked.
pub const LPCM_FLAG_PACKED: u32 = 8;

/// An interleaved PCM sample format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PcmFormat {
    pub sample_rate: u32,
    pub channels: u16,
    /// 8, 16, 24, 32 or 64.
    pub bits_per_sample: u16,
    /// IEEE 754 samples (32 or 64 bits); otherwise integers.
    pub float: bool,
    /// Byte order of multi-byte samples (meaningless for 8 bits).
    pub little_endian: bool,
}

impl PcmFormat {
    /// Checks: rate > 0, 1–64 channels, 8/16/24/32/64 bits, float only with 32 or 64.
    pub fn validate(&self) -> Result<(), CodecError> {
        let invalid = |reason: String| Err(CodecError::Invalid { what: WHAT, reason });
        if self.sample_rate == 0 {
            return invalid("sample rate is 0".into());
        }
        if !(1..=64).contains(&self.channels) {
            return invalid(format!("{} channels (1 to 64 supported)", self.channels));
        }
        if !matches!(self.bits_per_sample, 8 | 16 | 24 | 32 | 64) {
            return invalid(format!("{} bits per sample (8, 16, 24, 32 or 64 expected)", self.bits_per_sample));
        }
        if self.float && !matches!(self.bits_per_sample, 32 | 64) {
            return invalid(format!("{}-bit floating point samples", self.bits_per_sample));
        }
        Ok(())
    }

    /// Bytes of one sample frame (one sample of every channel).
    pub fn bytes_per_frame(&self) -> u32 {
        u32::from(self.channels) * u32::from(self.bits_per_sample / 8)
    }

    /// The format of a QuickTime sound sample entry by its fourcc. `bits_hint` is the
    /// entry's sample size; it only matters for `twos`/`sowt`, which are 8-bit when it is
    /// 8. `in24`, `in32`, `fl32` and `fl64` are read as big-endian: a little-endian `enda`
    /// atom in the entry's `wave` extension is the caller's to apply. `lpcm`, `ipcm` and
    /// `fpcm` need more than the fourcc (see [`PcmFormat::from_lpcm_flags`] and
    /// [`PcmFormat::from_pcmc`]) and give `None`, as do unknown fourccs and invalid
    /// results.
    pub fn from_qt_fourcc(fourcc: [u8; 4], channels: u16, sample_rate: u32, bits_hint: u16) -> Option<PcmFormat> {
        let (bits, float, little_endian) = match &fourcc {
            b"sowt" => (if bits_hint == 8 { 8 } else { 16 }, false, true),
            b"twos" => (if bits_hint == 8 { 8 } else { 16 }, false, false),
            b"raw " => (8, false, false),
            b"in24" => (24, false, false),
            b"in32" => (32, false, false),
            b"fl32" => (32, true, false),
            b"fl64" => (64, true, false),
            _ => return None,
        };
        let f = PcmFormat { sample_rate, channels, bits_per_sample: bits, float, little_endian };
        f.validate().ok().map(|_| f)
    }

    /// The format of a QuickTime `lpcm` entry (sound sample description version 2) from
    /// its LinearPCM format flags and bits per channel. `None` when invalid.
    pub fn from_lpcm_flags(flags: u32, bits: u16, channels: u16, sample_rate: u32) -> Option<PcmFormat> {
        let f = PcmFormat {
            sample_rate,
            channels,
            bits_per_sample: bits,
            float: flags & LPCM_FLAG_FLOAT != 0,
            little_endian: flags & LPCM_FLAG_BIG_ENDIAN == 0,
        };
        f.validate().ok().map(|_| f)
    }

    /// The format of an ISO/IEC 23003-5 `ipcm` (`float` false) or `fpcm` (`float` true)
    /// entry from its `pcmC` content after version and flags: format_flags (bit 0: little
    /// endian) and PCM_sample_size.
    pub fn from_pcmc(payload: &[u8], float: bool, channels: u16, sample_rate: u32) -> Result<PcmFormat, CodecError> {
        let &[format_flags, sample_size, ..] = payload else {
            return Err(CodecError::Truncated { what: "pcmC", len: payload.len(), need: 2 });
        };
        let f = PcmFormat {
            sample_rate,
            channels,
            bits_per_sample: u16::from(sample_size),
            float,
            little_endian: format_flags & 1 != 0,
        };
        f.validate()?;
        Ok(f)
    }

    /// The `pcmC` content after version and flags for this format.
    pub fn to_pcmc(self) -> [u8; 2] {
        [u8::from(self.little_endian), self.bits_per_sample.min(255) as u8]
    }

    /// The QuickTime fourcc for this format: `sowt`/`twos` for 16 bits (and `twos` for 8),
    /// `in24`, `in32`, `fl32`, `fl64`. 24-, 32- and 64-bit little-endian formats also need
    /// an `enda` atom (see [`PcmFormat::needs_enda`]); 64-bit integers have no fourcc of
    /// their own and give `lpcm` (use [`PcmFormat::lpcm_flags`]).
    pub fn qt_fourcc(&self) -> [u8; 4] {
        match (self.float, self.bits_per_sample) {
            (true, 64) => *b"fl64",
            (true, _) => *b"fl32",
            (false, 8) => *b"twos",
            (false, 16) if self.little_endian => *b"sowt",
            (false, 16) => *b"twos",
            (false, 24) => *b"in24",
            (false, 32) => *b"in32",
            _ => *b"lpcm",
        }
    }

    /// Whether the fourcc from [`PcmFormat::qt_fourcc`] needs an `enda` atom saying the
    /// samples are little-endian.
    pub fn needs_enda(&self) -> bool {
        self.little_endian && matches!(&self.qt_fourcc(), b"in24" | b"in32" | b"fl32" | b"fl64")
    }

    /// LinearPCM format flags for an `lpcm` entry: float or signed integer, endianness,
    /// packed.
    pub fn lpcm_flags(&self) -> u32 {
        let kind = if self.float { LPCM_FLAG_FLOAT } else { LPCM_FLAG_SIGNED_INTEGER };
        let order = if self.little_endian { 0 } else { LPCM_FLAG_BIG_ENDIAN };
        kind | order | LPCM_FLAG_PACKED
    }
}

/// `data` with the bytes of each `width`-byte sample reversed (big-endian samples made
/// little-endian or back). A trailing partial sample is kept as it is. This is the one
/// copy of media livemux makes: Matroska's `A_PCM/FLOAT/IEEE` is little-endian only.
pub fn swap_byte_order(data: &[u8], width: usize) -> Vec<u8> {
    let mut out = data.to_vec();
    if width > 1 {
        for sample in out.chunks_exact_mut(width) {
            sample.reverse();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::h264::tests::{assert_truncations_fail, fuzz, Lcg};
    use super::*;

    fn fmt(bits: u16, float: bool, little_endian: bool) -> PcmFormat {
        PcmFormat { sample_rate: 48000, channels: 2, bits_per_sample: bits, float, little_endian }
    }

    #[test]
    fn validation_and_sizes() {
        assert!(fmt(16, false, true).validate().is_ok());
        assert_eq!(fmt(24, false, false).bytes_per_frame(), 6);
        assert_eq!(PcmFormat { channels: 6, ..fmt(64, true, true) }.bytes_per_frame(), 48);
        assert!(PcmFormat { sample_rate: 0, ..fmt(16, false, true) }.validate().is_err());
        assert!(PcmFormat { channels: 0, ..fmt(16, false, true) }.validate().is_err());
        assert!(PcmFormat { channels: 65, ..fmt(16, false, true) }.validate().is_err());
        assert!(fmt(12, false, true).validate().is_err());
        assert!(fmt(16, true, true).validate().is_err());
        assert!(fmt(24, true, true).validate().is_err());
        // A zeroed format is invalid.
        assert!(fmt(0, false, false).validate().is_err());
    }

    #[test]
    fn quicktime_fourccs() {
        let qt = |cc: &[u8; 4], bits| PcmFormat::from_qt_fourcc(*cc, 2, 48000, bits);
        assert_eq!(qt(b"sowt", 16), Some(fmt(16, false, true)));
        assert_eq!(qt(b"twos", 16), Some(fmt(16, false, false)));
        assert_eq!(qt(b"twos", 8), Some(fmt(8, false, false)));
        assert_eq!(qt(b"raw ", 8), Some(fmt(8, false, false)));
        assert_eq!(qt(b"in24", 24), Some(fmt(24, false, false)));
        assert_eq!(qt(b"in32", 16), Some(fmt(32, false, false)));
        assert_eq!(qt(b"fl32", 32), Some(fmt(32, true, false)));
        assert_eq!(qt(b"fl64", 64), Some(fmt(64, true, false)));
        assert_eq!(qt(b"lpcm", 16), None);
        assert_eq!(qt(b"ipcm", 16), None);
        assert_eq!(qt(b"mp4a", 16), None);
        assert_eq!(PcmFormat::from_qt_fourcc(*b"sowt", 0, 48000, 16), None);
        assert_eq!(PcmFormat::from_qt_fourcc(*b"sowt", 2, 0, 16), None);
        // Round trips through the fourcc (8-bit unsigned is written as signed `twos`).
        for f in [
            fmt(16, false, true),
            fmt(16, false, false),
            fmt(8, false, false),
            fmt(24, false, false),
            fmt(32, true, false),
        ] {
            assert_eq!(qt(&f.qt_fourcc(), f.bits_per_sample), Some(f));
            assert!(!f.needs_enda());
        }
        assert_eq!(fmt(24, false, true).qt_fourcc(), *b"in24");
        assert!(fmt(24, false, true).needs_enda());
        assert!(fmt(64, true, true).needs_enda());
        assert_eq!(fmt(64, false, true).qt_fourcc(), *b"lpcm");
        assert!(!fmt(64, false, true).needs_enda());
    }

    #[test]
    fn byte_swap() {
        assert_eq!(swap_byte_order(&[1, 2, 3, 4, 5, 6, 7, 8, 9], 4), [4, 3, 2, 1, 8, 7, 6, 5, 9]);
        assert_eq!(swap_byte_order(&[1, 2, 3], 1), [1, 2, 3]);
        assert_eq!(swap_byte_order(&[], 8), Vec::<u8>::new());
    }

    #[test]
    fn lpcm_flags() {
        let f = PcmFormat::from_lpcm_flags(LPCM_FLAG_FLOAT | LPCM_FLAG_PACKED, 32, 2, 48000).unwrap();
        assert_eq!(f, fmt(32, true, true));
        let f = PcmFormat::from_lpcm_flags(LPCM_FLAG_BIG_ENDIAN | LPCM_FLAG_SIGNED_INTEGER, 24, 2, 48000).unwrap();
        assert_eq!(f, fmt(24, false, false));
        assert_eq!(PcmFormat::from_lpcm_flags(LPCM_FLAG_FLOAT, 16, 2, 48000), None);
        assert_eq!(PcmFormat::from_lpcm_flags(0, 20, 2, 48000), None);
        for f in [fmt(16, false, true), fmt(64, true, false), fmt(64, false, true)] {
            assert_eq!(PcmFormat::from_lpcm_flags(f.lpcm_flags(), f.bits_per_sample, 2, 48000), Some(f));
        }
    }

    #[test]
    fn pcmc() {
        assert_eq!(PcmFormat::from_pcmc(&[1, 24], false, 2, 48000).unwrap(), fmt(24, false, true));
        assert_eq!(PcmFormat::from_pcmc(&[0, 64], true, 2, 48000).unwrap(), fmt(64, true, false));
        assert_eq!(fmt(24, false, true).to_pcmc(), [1, 24]);
        assert!(matches!(PcmFormat::from_pcmc(&[0, 16], true, 2, 48000), Err(CodecError::Invalid { .. })));
        assert!(matches!(PcmFormat::from_pcmc(&[0, 0], false, 2, 48000), Err(CodecError::Invalid { .. })));
        assert_truncations_fail(&[1, 24], |d| PcmFormat::from_pcmc(d, false, 2, 48000));
        fuzz(&[1, 24], |d| PcmFormat::from_pcmc(d, d.first() == Some(&0), 2, 44100));
    }

    #[test]
    fn pcm_fuzz() {
        let mut lcg = Lcg(7);
        for _ in 0..5000 {
            let b: Vec<u8> = (0..8).map(|_| lcg.next_u8()).collect();
            let flags = u32::from(b[0]);
            let bits = u16::from(b[1]);
            let channels = u16::from(b[2]) % 70;
            let rate = u32::from(b[3]) * 1000;
            let cc = [b[4], b[5], b[6], b[7]];
            for f in [
                PcmFormat::from_lpcm_flags(flags, bits, channels, rate),
                PcmFormat::from_qt_fourcc(cc, channels, rate, bits),
            ]
            .into_iter()
            .flatten()
            {
                assert!(f.validate().is_ok());
                let _ = (f.qt_fourcc(), f.needs_enda(), f.bytes_per_frame());
            }
        }
    }
}
