//! The AV1CodecConfigurationRecord (`av1C`, AV1-ISOBMFF §2.3), configOBUs included.

use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};

use super::{dimensions_from_sequence_header, obus, sequence_header_from_obus};
use crate::codecs::{CodecError, Dimensions};

const WHAT_AV1C: &str = "av1C";

/// The AV1CodecConfigurationRecord (AV1-ISOBMFF §2.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Av1Config {
    pub seq_profile: u8,
    pub seq_level_idx_0: u8,
    pub seq_tier_0: u8,
    pub high_bitdepth: bool,
    pub twelve_bit: bool,
    pub monochrome: bool,
    pub chroma_subsampling_x: bool,
    pub chroma_subsampling_y: bool,
    pub chroma_sample_position: u8,
    /// `initial_presentation_delay_minus_one` when `initial_presentation_delay_present`.
    pub initial_presentation_delay_minus_one: Option<u8>,
    /// configOBUs: the sequence header OBU and possibly metadata OBUs, each with a size
    /// field.
    pub config_obus: Bytes,
}

impl Av1Config {
    /// Parses an `av1C` payload, copying the configOBUs.
    pub fn parse(rec: &[u8]) -> Result<Self, CodecError> {
        parse_av1c(rec, Bytes::copy_from_slice(rec.get(4..).unwrap_or_default()))
    }

    /// Like [`Av1Config::parse`], but `config_obus` is a slice of `rec`.
    pub fn parse_bytes(rec: &Bytes) -> Result<Self, CodecError> {
        parse_av1c(rec, if rec.len() >= 4 { rec.slice(4..) } else { Bytes::new() })
    }

    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(4 + self.config_obus.len());
        out.put_u8(0x81);
        out.put_u8((self.seq_profile & 7) << 5 | (self.seq_level_idx_0 & 0x1f));
        out.put_u8(
            (self.seq_tier_0 & 1) << 7
                | u8::from(self.high_bitdepth) << 6
                | u8::from(self.twelve_bit) << 5
                | u8::from(self.monochrome) << 4
                | u8::from(self.chroma_subsampling_x) << 3
                | u8::from(self.chroma_subsampling_y) << 2
                | (self.chroma_sample_position & 3),
        );
        out.put_u8(match self.initial_presentation_delay_minus_one {
            Some(d) => 0x10 | (d & 0x0f),
            None => 0,
        });
        out.put_slice(&self.config_obus);
        out.freeze()
    }

    /// The range of the sequence header OBU within `config_obus`.
    pub fn sequence_header_obu(&self) -> Option<Range<usize>> {
        sequence_header_from_obus(&self.config_obus)
    }

    /// Maximum frame size from the sequence header in configOBUs.
    pub fn dimensions(&self) -> Result<Dimensions, CodecError> {
        let range = self.sequence_header_obu().ok_or_else(|| CodecError::Invalid {
            what: WHAT_AV1C,
            reason: "configOBUs hold no sequence header".into(),
        })?;
        dimensions_from_sequence_header(&self.config_obus[range])
    }
}

fn parse_av1c(rec: &[u8], config_obus: Bytes) -> Result<Av1Config, CodecError> {
    if rec.len() < 4 {
        return Err(CodecError::Truncated { what: WHAT_AV1C, len: rec.len(), need: 4 });
    }
    if rec.iter().all(|&b| b == 0) {
        return Err(CodecError::Invalid { what: WHAT_AV1C, reason: "record is all zeros".into() });
    }
    if rec[0] & 0x80 == 0 {
        return Err(CodecError::Invalid { what: WHAT_AV1C, reason: "marker bit is 0".into() });
    }
    let version = rec[0] & 0x7f;
    if version != 1 {
        return Err(CodecError::Unsupported { what: WHAT_AV1C, reason: format!("version {version}") });
    }
    let seq_profile = rec[1] >> 5;
    if seq_profile > 2 {
        return Err(CodecError::Invalid { what: WHAT_AV1C, reason: format!("seq_profile {seq_profile} is reserved") });
    }
    // configOBUs must be whole OBUs.
    for obu in obus(&config_obus) {
        obu.map_err(|e| CodecError::Invalid { what: WHAT_AV1C, reason: format!("configOBUs: {e}") })?;
    }
    let b = rec[2];
    Ok(Av1Config {
        seq_profile,
        seq_level_idx_0: rec[1] & 0x1f,
        seq_tier_0: b >> 7,
        high_bitdepth: b & 0x40 != 0,
        twelve_bit: b & 0x20 != 0,
        monochrome: b & 0x10 != 0,
        chroma_subsampling_x: b & 0x08 != 0,
        chroma_subsampling_y: b & 0x04 != 0,
        chroma_sample_position: b & 3,
        initial_presentation_delay_minus_one: (rec[3] & 0x10 != 0).then_some(rec[3] & 0x0f),
        config_obus,
    })
}
