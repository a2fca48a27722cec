//! AC-3 and E-AC-3 (ATSC A/52): the first frame's headers, and the MP4 configuration
//! boxes built from them.
//!
//! - AC-3 `syncinfo()` and `bsi()` (A/52 §5.3.1–5.3.2); E-AC-3 `bsi()` (A/52 Annex E §2.3.2).
//! - `dac3` (AC3SpecificBox) and `dec3` (EC3SpecificBox): ETSI TS 102 366 Annex F.
//!
//! Matroska stores no configuration for `A_AC3`/`A_EAC3`: the MP4 boxes are derived from
//! the track's first frame. MP4 to Matroska needs nothing: the frames describe themselves.

use super::bits::BitReader;
use super::{AudioFormat, CodecError};

const WHAT_FRAME: &str = "AC-3 frame";
const WHAT_EAC3: &str = "E-AC-3 frame";
const WHAT_DAC3: &str = "dac3";
const WHAT_DEC3: &str = "dec3";

/// AC-3 sync word.
pub const SYNC_WORD: u16 = 0x0B77;
/// Most independent substreams a `dec3` can describe (num_ind_sub is 3 bits).
pub const MAX_SUBSTREAMS: usize = 8;

const RATES: [u32; 3] = [48_000, 44_100, 32_000];

/// Channels of an audio coding mode (`acmod`), without the LFE channel.
fn acmod_channels(acmod: u8) -> u16 {
    [2, 1, 2, 3, 3, 4, 4, 5][usize::from(acmod & 7)]
}

/// The fields of an AC3SpecificBox (`dac3`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dac3 {
    pub fscod: u8,
    pub bsid: u8,
    pub bsmod: u8,
    pub acmod: u8,
    pub lfeon: bool,
    /// `frmsizecod >> 1`.
    pub bit_rate_code: u8,
}

impl Dac3 {
    /// Parses a `dac3` payload (3 bytes).
    pub fn parse(data: &[u8]) -> Result<Dac3, CodecError> {
        let mut r = BitReader::new(data, WHAT_DAC3);
        let d = Dac3 {
            fscod: r.read_u8(2)?,
            bsid: r.read_u8(5)?,
            bsmod: r.read_u8(3)?,
            acmod: r.read_u8(3)?,
            lfeon: r.read_bit()?,
            bit_rate_code: r.read_u8(5)?,
        };
        if d.fscod == 3 {
            return Err(CodecError::Invalid { what: WHAT_DAC3, reason: "fscod 3 is reserved".into() });
        }
        Ok(d)
    }

    /// The 3-byte `dac3` payload.
    pub fn to_bytes(self) -> [u8; 3] {
        let v: u32 = (u32::from(self.fscod & 3) << 22)
            | (u32::from(self.bsid & 31) << 17)
            | (u32::from(self.bsmod & 7) << 14)
            | (u32::from(self.acmod & 7) << 11)
            | (u32::from(self.lfeon) << 10)
            | (u32::from(self.bit_rate_code & 31) << 5);
        let b = v.to_be_bytes();
        [b[1], b[2], b[3]]
    }

    pub fn audio_format(&self) -> AudioFormat {
        AudioFormat {
            sample_rate: RATES.get(usize::from(self.fscod)).copied().unwrap_or(0),
            channels: acmod_channels(self.acmod) + u16::from(self.lfeon),
        }
    }

    /// The `dac3` of an AC-3 frame (from its syncinfo and bsi).
    pub fn from_frame(frame: &[u8]) -> Result<Dac3, CodecError> {
        let mut r = BitReader::new(frame, WHAT_FRAME);
        if r.read_bits(16)? != u32::from(SYNC_WORD) {
            return Err(CodecError::Invalid { what: WHAT_FRAME, reason: "no sync word 0x0B77".into() });
        }
        r.skip_bits(16)?; // crc1
        let fscod = r.read_u8(2)?;
        let frmsizecod = r.read_u8(6)?;
        let bsid = r.read_u8(5)?;
        if bsid > 10 {
            return Err(CodecError::Invalid {
                what: WHAT_FRAME,
                reason: format!("bsid {bsid} (an E-AC-3 frame, or not AC-3)"),
            });
        }
        let bsmod = r.read_u8(3)?;
        let acmod = r.read_u8(3)?;
        if acmod & 1 == 1 && acmod != 1 {
            r.skip_bits(2)?; // cmixlev
        }
        if acmod & 4 != 0 {
            r.skip_bits(2)?; // surmixlev
        }
        if acmod == 2 {
            r.skip_bits(2)?; // dsurmod
        }
        let lfeon = r.read_bit()?;
        if fscod == 3 || frmsizecod > 37 {
            return Err(CodecError::Invalid {
                what: WHAT_FRAME,
                reason: format!("fscod {fscod}, frmsizecod {frmsizecod} (reserved)"),
            });
        }
        Ok(Dac3 { fscod, bsid, bsmod, acmod, lfeon, bit_rate_code: frmsizecod >> 1 })
    }
}

/// One independent substream of a `dec3`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Ec3Substream {
    pub fscod: u8,
    pub bsid: u8,
    pub asvc: bool,
    pub bsmod: u8,
    pub acmod: u8,
    pub lfeon: bool,
    pub num_dep_sub: u8,
    pub chan_loc: u16,
}

/// The fields of an EC3SpecificBox (`dec3`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dec3 {
    /// kbit/s.
    pub data_rate: u16,
    pub substreams: Vec<Ec3Substream>,
}

impl Dec3 {
    /// Parses a `dec3` payload.
    pub fn parse(data: &[u8]) -> Result<Dec3, CodecError> {
        let mut r = BitReader::new(data, WHAT_DEC3);
        let data_rate = r.read_bits(13)? as u16;
        let count = usize::from(r.read_u8(3)?) + 1;
        let mut substreams = Vec::with_capacity(count);
        for _ in 0..count {
            let mut s = Ec3Substream { fscod: r.read_u8(2)?, bsid: r.read_u8(5)?, ..Default::default() };
            r.skip_bits(1)?;
            s.asvc = r.read_bit()?;
            s.bsmod = r.read_u8(3)?;
            s.acmod = r.read_u8(3)?;
            s.lfeon = r.read_bit()?;
            r.skip_bits(3)?;
            s.num_dep_sub = r.read_u8(4)?;
            if s.num_dep_sub > 0 {
                s.chan_loc = r.read_bits(9)? as u16;
            } else {
                r.skip_bits(1)?;
            }
            substreams.push(s);
        }
        Ok(Dec3 { data_rate, substreams })
    }

    /// The `dec3` payload.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bits: Vec<(u32, u32)> = vec![(13, u32::from(self.data_rate & 0x1FFF))];
        let count = self.substreams.len().clamp(1, MAX_SUBSTREAMS);
        bits.push((3, count as u32 - 1));
        for s in self.substreams.iter().take(count) {
            bits.extend([
                (2, u32::from(s.fscod & 3)),
                (5, u32::from(s.bsid & 31)),
                (1, 0),
                (1, u32::from(s.asvc)),
                (3, u32::from(s.bsmod & 7)),
                (3, u32::from(s.acmod & 7)),
                (1, u32::from(s.lfeon)),
                (3, 0),
                (4, u32::from(s.num_dep_sub & 15)),
            ]);
            bits.push(if s.num_dep_sub > 0 { (9, u32::from(s.chan_loc & 0x1FF)) } else { (1, 0) });
        }
        let mut out = Vec::new();
        let (mut acc, mut n) = (0u64, 0u32);
        for (len, v) in bits {
            acc = (acc << len) | u64::from(v);
            n += len;
            while n >= 8 {
                out.push((acc >> (n - 8)) as u8);
                n -= 8;
            }
        }
        if n > 0 {
            out.push((acc << (8 - n)) as u8);
        }
        out
    }

    /// Rate and channels of the first independent substream (dependent substreams'
    /// extra channels not counted).
    pub fn audio_format(&self) -> AudioFormat {
        let Some(s) = self.substreams.first() else { return AudioFormat::default() };
        AudioFormat {
            sample_rate: RATES.get(usize::from(s.fscod)).copied().unwrap_or(0),
            channels: acmod_channels(s.acmod) + u16::from(s.lfeon),
        }
    }

    /// The `dec3` of an E-AC-3 access unit: one or more syncframes (independent
    /// substreams, each followed by its dependent ones).
    pub fn from_frame(data: &[u8]) -> Result<Dec3, CodecError> {
        let mut substreams: Vec<Ec3Substream> = Vec::new();
        let mut pos = 0usize;
        let mut data_rate = 0u32;
        while pos < data.len() {
            let h = Eac3Header::parse(&data[pos..])?;
            if h.strmtyp == 1 {
                // A dependent substream: counted against the last independent one.
                let Some(parent) = substreams.last_mut() else {
                    return Err(CodecError::Invalid { what: WHAT_EAC3, reason: "dependent substream first".into() });
                };
                parent.num_dep_sub = parent.num_dep_sub.saturating_add(1).min(15);
                parent.chan_loc |= h.chanmap.map(|m| (m >> 5) & 0x1FF).unwrap_or(0);
            } else {
                if h.substreamid != 0 && substreams.is_empty() {
                    return Err(CodecError::Invalid { what: WHAT_EAC3, reason: "first substream id is not 0".into() });
                }
                if substreams.len() >= MAX_SUBSTREAMS {
                    break;
                }
                substreams.push(Ec3Substream {
                    fscod: h.fscod,
                    bsid: h.bsid,
                    asvc: false,
                    bsmod: h.bsmod,
                    acmod: h.acmod,
                    lfeon: h.lfeon,
                    num_dep_sub: 0,
                    chan_loc: 0,
                });
                if substreams.len() == 1 {
                    data_rate = h.bit_rate_kbps();
                }
            }
            pos = pos.checked_add(h.frame_bytes).filter(|&p| p <= data.len()).unwrap_or(data.len());
        }
        if substreams.is_empty() {
            return Err(CodecError::Truncated { what: WHAT_EAC3, len: data.len(), need: 6 });
        }
        Ok(Dec3 { data_rate: data_rate.min(0x1FFF) as u16, substreams })
    }
}

/// What livemux reads of an E-AC-3 syncframe header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Eac3Header {
    pub strmtyp: u8,
    pub substreamid: u8,
    /// Bytes of this syncframe.
    pub frame_bytes: usize,
    /// fscod, or 3 with the half rates below (fscod2): see `sample_rate`.
    pub fscod: u8,
    pub sample_rate: u32,
    /// Audio blocks per frame: 1, 2, 3 or 6.
    pub blocks: u32,
    pub acmod: u8,
    pub lfeon: bool,
    pub bsid: u8,
    pub bsmod: u8,
    pub chanmap: Option<u16>,
}

impl Eac3Header {
    pub fn parse(frame: &[u8]) -> Result<Eac3Header, CodecError> {
        let mut r = BitReader::new(frame, WHAT_EAC3);
        if r.read_bits(16)? != u32::from(SYNC_WORD) {
            return Err(CodecError::Invalid { what: WHAT_EAC3, reason: "no sync word 0x0B77".into() });
        }
        let strmtyp = r.read_u8(2)?;
        let substreamid = r.read_u8(3)?;
        let frmsiz = r.read_bits(11)? as usize;
        let fscod = r.read_u8(2)?;
        let (sample_rate, blocks) = if fscod == 3 {
            let fscod2 = r.read_u8(2)?;
            let rate = [24_000, 22_050, 16_000]
                .get(usize::from(fscod2))
                .copied()
                .ok_or_else(|| CodecError::Invalid { what: WHAT_EAC3, reason: "fscod2 3 is reserved".into() })?;
            (rate, 6)
        } else {
            (RATES[usize::from(fscod)], [1, 2, 3, 6][usize::from(r.read_u8(2)?)])
        };
        let acmod = r.read_u8(3)?;
        let lfeon = r.read_bit()?;
        let bsid = r.read_u8(5)?;
        if !(11..=16).contains(&bsid) {
            return Err(CodecError::Invalid { what: WHAT_EAC3, reason: format!("bsid {bsid} (not E-AC-3)") });
        }
        if strmtyp == 3 {
            return Err(CodecError::Invalid { what: WHAT_EAC3, reason: "strmtyp 3 is reserved".into() });
        }
        r.skip_bits(5)?; // dialnorm
        if r.read_bit()? {
            r.skip_bits(8)?; // compr
        }
        if acmod == 0 {
            r.skip_bits(5)?;
            if r.read_bit()? {
                r.skip_bits(8)?;
            }
        }
        let mut chanmap = None;
        if strmtyp == 1 && r.read_bit()? {
            chanmap = Some(r.read_bits(16)? as u16);
        }
        // bsmod sits behind the mixing metadata; livemux does not parse that far and
        // writes 0 (main audio service: complete main), as most streams are.
        Ok(Eac3Header {
            strmtyp,
            substreamid,
            frame_bytes: (frmsiz + 1) * 2,
            fscod,
            sample_rate,
            blocks,
            acmod,
            lfeon,
            bsid,
            bsmod: 0,
            chanmap,
        })
    }

    /// The syncframe's bit rate in kbit/s.
    pub fn bit_rate_kbps(&self) -> u32 {
        let samples = 256 * u64::from(self.blocks);
        (self.frame_bytes as u64 * 8 * u64::from(self.sample_rate) / samples / 1000).min(u64::from(u32::MAX)) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::super::h264::tests::{assert_truncations_fail, fuzz};
    use super::*;

    // The first bytes of an FFmpeg AC-3 frame: 48 kHz, 192 kbit/s, stereo (acmod 2).
    const AC3: &[u8] = &[0x0B, 0x77, 0x5C, 0x1E, 0x14, 0x40, 0x43];

    #[test]
    fn dac3_from_frame_round_trips() {
        let d = Dac3::from_frame(AC3).unwrap();
        assert_eq!((d.fscod, d.bsid, d.acmod, d.lfeon, d.bit_rate_code), (0, 8, 2, false, 10));
        assert_eq!(d.audio_format(), AudioFormat { sample_rate: 48_000, channels: 2 });
        assert_eq!(Dac3::parse(&d.to_bytes()).unwrap(), d);
        assert_truncations_fail(AC3, Dac3::from_frame);
        fuzz(AC3, Dac3::from_frame);
        assert!(Dac3::parse(&[0xC0, 0, 0]).is_err());
    }

    #[test]
    fn dec3_round_trips() {
        // 48 kHz, 6 blocks, acmod 7, LFE, bsid 16, frame of 768 bytes (frmsiz 383).
        let frame = [0x0B, 0x77, 0x01, 0x7F, 0x3F, 0x86, 0x00, 0x00];
        let h = Eac3Header::parse(&frame).unwrap();
        assert_eq!(
            (h.strmtyp, h.frame_bytes, h.sample_rate, h.blocks, h.acmod, h.lfeon, h.bsid),
            (0, 768, 48_000, 6, 7, true, 16)
        );
        assert_eq!(h.bit_rate_kbps(), 192);
        let d = Dec3::from_frame(&frame).unwrap();
        assert_eq!(d.data_rate, 192);
        assert_eq!(d.audio_format(), AudioFormat { sample_rate: 48_000, channels: 6 });
        assert_eq!(Dec3::parse(&d.to_bytes()).unwrap(), d);
        fuzz(&frame, Dec3::from_frame);
        fuzz(&d.to_bytes(), Dec3::parse);
        assert!(Dac3::from_frame(&frame).is_err());
        assert!(Dec3::from_frame(AC3).is_err());
    }
}
