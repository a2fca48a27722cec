//! The ADTS fixed and variable header (ISO/IEC 14496-3 §1.A.2.2, ISO/IEC 13818-7 §6.2).

use bytes::Bytes;

use super::{channels_for_config, config_for_channels, SAMPLE_RATES};
use crate::codecs::CodecError;

const WHAT_ADTS: &str = "ADTS header";

/// An ADTS frame header (ISO/IEC 14496-3 §1.A.2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdtsHeader {
    /// profile_ObjectType + 1 (2 = AAC LC).
    pub object_type: u8,
    pub sample_rate: u32,
    /// From channel_configuration; 0 when the channels are described in-band.
    pub channels: u16,
    /// 7, or 9 with a CRC.
    pub header_len: usize,
    /// aac_frame_length: the whole frame, header included.
    pub frame_len: usize,
    /// Raw data blocks in the frame (number_of_raw_data_blocks_in_frame + 1).
    pub raw_blocks: u8,
}

impl AdtsHeader {
    /// Parses the ADTS header at the start of `data`. `Ok(None)` when more bytes are
    /// needed; an error when the bytes present cannot start an ADTS frame.
    pub fn parse(data: &[u8]) -> Result<Option<AdtsHeader>, CodecError> {
        let invalid = |reason: String| Err(CodecError::Invalid { what: WHAT_ADTS, reason });
        if let Some(&b) = data.first() {
            if b != 0xff {
                return invalid(format!("sync word missing (first byte 0x{b:02x})"));
            }
        }
        if let Some(&b) = data.get(1) {
            if b & 0xf0 != 0xf0 {
                return invalid(format!("sync word missing (second byte 0x{b:02x})"));
            }
            if b & 0x06 != 0 {
                return invalid(format!("layer is {}, expected 0", (b >> 1) & 3));
            }
        }
        let Some(h) = data.get(..7) else { return Ok(None) };
        let protection_absent = h[1] & 1 != 0;
        let profile = h[2] >> 6;
        let sf_index = (h[2] >> 2) & 0x0f;
        let Some(&sample_rate) = SAMPLE_RATES.get(usize::from(sf_index)) else {
            return invalid(format!("sampling_frequency_index {sf_index} is reserved"));
        };
        let channel_config = (h[2] & 1) << 2 | h[3] >> 6;
        let frame_len = usize::from(h[3] & 3) << 11 | usize::from(h[4]) << 3 | usize::from(h[5] >> 5);
        let header_len = if protection_absent { 7 } else { 9 };
        if frame_len < header_len {
            return invalid(format!("aac_frame_length {frame_len} is shorter than the {header_len}-byte header"));
        }
        if data.len() < header_len {
            return Ok(None);
        }
        Ok(Some(AdtsHeader {
            object_type: profile + 1,
            sample_rate,
            channels: channels_for_config(channel_config).unwrap_or(0),
            header_len,
            frame_len,
            raw_blocks: (h[6] & 3) + 1,
        }))
    }

    /// The 2-byte (or, for rates or object types without an index, longer)
    /// AudioSpecificConfig equivalent to this header, as muxers write it for ADTS input.
    pub fn to_audio_specific_config(self) -> Bytes {
        // (value, bit count); at most 5 + 6 + 4 + 24 + 4 + 3 + 7 bits.
        let mut w = (0u64, 0u32);
        let put = |w: &mut (u64, u32), n: u32, v: u64| {
            w.0 = w.0 << n | (v & ((1 << n) - 1));
            w.1 += n;
        };
        if self.object_type >= 31 {
            put(&mut w, 5, 31);
            put(&mut w, 6, u64::from(self.object_type.saturating_sub(32)));
        } else {
            put(&mut w, 5, u64::from(self.object_type));
        }
        match SAMPLE_RATES.iter().position(|&r| r == self.sample_rate) {
            Some(i) => put(&mut w, 4, i as u64),
            None => {
                put(&mut w, 4, 15);
                put(&mut w, 24, u64::from(self.sample_rate));
            }
        }
        put(&mut w, 4, u64::from(config_for_channels(self.channels)));
        put(&mut w, 3, 0); // frameLengthFlag, dependsOnCoreCoder, extensionFlag
        let pad = (8 - w.1 % 8) % 8;
        put(&mut w, pad, 0);
        let (acc, len) = (w.0, (w.1 / 8) as usize);
        Bytes::copy_from_slice(&acc.to_be_bytes()[8 - len..])
    }
}
