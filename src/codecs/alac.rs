//! ALAC's magic cookie (ALACSpecificConfig, Apple's ALAC reference `ALACAudioTypes.h`):
//! the content of MP4's `alac` configuration box after its version and flags, and
//! Matroska's `A_ALAC` CodecPrivate.

use super::{AudioFormat, CodecError};

const WHAT: &str = "ALAC magic cookie";
/// Bytes of an ALACSpecificConfig.
pub const COOKIE_LEN: usize = 24;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AlacConfig {
    pub frame_length: u32,
    pub bit_depth: u8,
    pub channels: u8,
    pub sample_rate: u32,
}

impl AlacConfig {
    pub fn parse(cookie: &[u8]) -> Result<AlacConfig, CodecError> {
        let c: &[u8; COOKIE_LEN] = cookie
            .get(..COOKIE_LEN)
            .and_then(|c| c.try_into().ok())
            .ok_or(CodecError::Truncated { what: WHAT, len: cookie.len(), need: COOKIE_LEN })?;
        let be32 = |i: usize| u32::from_be_bytes([c[i], c[i + 1], c[i + 2], c[i + 3]]);
        let config = AlacConfig { frame_length: be32(0), bit_depth: c[5], channels: c[9], sample_rate: be32(20) };
        if config.frame_length == 0
            || config.channels == 0
            || config.sample_rate == 0
            || !matches!(config.bit_depth, 16 | 20 | 24 | 32)
        {
            return Err(CodecError::Invalid { what: WHAT, reason: format!("{config:?}") });
        }
        Ok(config)
    }

    pub fn audio_format(&self) -> AudioFormat {
        AudioFormat { sample_rate: self.sample_rate, channels: u16::from(self.channels) }
    }
}

#[cfg(test)]
mod tests {
    use super::super::h264::tests::{assert_truncations_fail, fuzz};
    use super::*;

    #[test]
    fn cookie_parses() {
        let cookie = [0, 0, 16, 0, 0, 16, 40, 10, 14, 2, 0, 255, 0, 0, 0x18, 0x0C, 0, 0, 0, 0, 0, 0, 0xAC, 0x44];
        let c = AlacConfig::parse(&cookie).unwrap();
        assert_eq!((c.frame_length, c.bit_depth, c.channels, c.sample_rate), (4096, 16, 2, 44_100));
        assert_truncations_fail(&cookie, AlacConfig::parse);
        fuzz(&cookie, AlacConfig::parse);
    }
}
