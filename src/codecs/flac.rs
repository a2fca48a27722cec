//! FLAC metadata blocks (RFC 9639 §8): what MP4's `dfLa` box and Matroska's `A_FLAC`
//! CodecPrivate carry.
//!
//! `dfLa` (FLAC in ISOBMFF, §3.3.2) holds the metadata blocks after its version and flags;
//! Matroska's CodecPrivate holds the `fLaC` marker followed by the same blocks. livemux
//! keeps the blocks (without the marker) as the track's configuration.

use super::{AudioFormat, CodecError};

const WHAT: &str = "FLAC metadata";
/// The stream marker that starts a FLAC file and Matroska's CodecPrivate.
pub const MARKER: &[u8; 4] = b"fLaC";
/// Most metadata blocks read (a stream has a handful: STREAMINFO, VORBIS_COMMENT, ...).
pub const MAX_BLOCKS: usize = 256;
/// Length of the STREAMINFO block body.
pub const STREAMINFO_LEN: usize = 34;

/// What livemux uses of STREAMINFO.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamInfo {
    pub sample_rate: u32,
    pub channels: u16,
    pub bits_per_sample: u16,
}

impl StreamInfo {
    pub fn audio_format(&self) -> AudioFormat {
        AudioFormat { sample_rate: self.sample_rate, channels: self.channels }
    }
}

/// Parses metadata blocks (without the `fLaC` marker): the first must be STREAMINFO,
/// each length must fit, and the last must carry the last-block flag.
pub fn parse_blocks(data: &[u8]) -> Result<StreamInfo, CodecError> {
    let mut pos = 0usize;
    let mut info = None;
    for n in 0..MAX_BLOCKS {
        let header =
            data.get(pos..pos + 4).ok_or(CodecError::Truncated { what: WHAT, len: data.len(), need: pos + 4 })?;
        let last = header[0] & 0x80 != 0;
        let kind = header[0] & 0x7F;
        let len = (usize::from(header[1]) << 16) | (usize::from(header[2]) << 8) | usize::from(header[3]);
        let body_start = pos + 4;
        let end = body_start + len;
        let body = data.get(body_start..end).ok_or(CodecError::Truncated { what: WHAT, len: data.len(), need: end })?;
        if n == 0 {
            if kind != 0 || len != STREAMINFO_LEN {
                return Err(CodecError::Invalid {
                    what: WHAT,
                    reason: format!("first block is type {kind} of {len} bytes, not a 34-byte STREAMINFO"),
                });
            }
            let rate = (u32::from(body[10]) << 12) | (u32::from(body[11]) << 4) | (u32::from(body[12]) >> 4);
            let channels = u16::from((body[12] >> 1) & 7) + 1;
            let bits = ((u16::from(body[12] & 1) << 4) | u16::from(body[13] >> 4)) + 1;
            if rate == 0 {
                return Err(CodecError::Invalid { what: WHAT, reason: "STREAMINFO sample rate is 0".into() });
            }
            info = Some(StreamInfo { sample_rate: rate, channels, bits_per_sample: bits });
        } else if kind == 127 {
            return Err(CodecError::Invalid { what: WHAT, reason: "block type 127 is forbidden".into() });
        }
        pos = end;
        if last {
            return info.ok_or(CodecError::Invalid { what: WHAT, reason: "no STREAMINFO".into() });
        }
        if pos == data.len() {
            // Some muxers leave the last-block flag unset: the blocks end with the data.
            return info.ok_or(CodecError::Invalid { what: WHAT, reason: "no STREAMINFO".into() });
        }
    }
    Err(CodecError::Invalid { what: WHAT, reason: format!("more than {MAX_BLOCKS} metadata blocks") })
}

/// The metadata blocks of a Matroska `A_FLAC` CodecPrivate (after the `fLaC` marker), and
/// their STREAMINFO.
pub fn blocks_of_private(private: &[u8]) -> Result<(std::ops::Range<usize>, StreamInfo), CodecError> {
    if private.len() < 4 || &private[..4] != MARKER {
        return Err(CodecError::Invalid { what: WHAT, reason: "CodecPrivate does not start with 'fLaC'".into() });
    }
    let info = parse_blocks(&private[4..])?;
    Ok((4..private.len(), info))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::h264::tests::{assert_truncations_fail, fuzz};
    use super::*;

    /// A STREAMINFO (last block) for 44.1 kHz, 2 channels, 16 bits.
    pub(crate) fn streaminfo() -> Vec<u8> {
        let mut v = vec![0x80, 0, 0, 34, 0x10, 0, 0x10, 0, 0, 0, 0, 0, 0, 0];
        // sample rate 44100 (20 bits), channels-1 = 1 (3 bits), bps-1 = 15 (5 bits)
        v.extend_from_slice(&[0x0A, 0xC4, 0x42, 0xF0]);
        v.extend_from_slice(&[0; 20]);
        v
    }

    #[test]
    fn streaminfo_parses() {
        let si = streaminfo();
        assert_eq!(si.len(), 38);
        let info = parse_blocks(&si).unwrap();
        assert_eq!(info, StreamInfo { sample_rate: 44_100, channels: 2, bits_per_sample: 16 });
        assert_truncations_fail(&si, parse_blocks);
        let mut private = MARKER.to_vec();
        private.extend_from_slice(&si);
        assert_eq!(blocks_of_private(&private).unwrap().0, 4..42);
        assert!(blocks_of_private(&si).is_err());
        // A second block after a STREAMINFO without the last flag.
        let mut two = si.clone();
        two[0] = 0;
        two.extend_from_slice(&[0x84, 0, 0, 2, 0, 0]);
        assert!(parse_blocks(&two).is_ok());
        fuzz(&two, parse_blocks);
    }
}
