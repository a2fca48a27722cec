//! AAC: AudioSpecificConfig, the `esds` descriptors that carry it, and ADTS headers.
//!
//! - [`AudioSpecificConfig`] follows ISO/IEC 14496-3 §1.6.2.1 (with GASpecificConfig
//!   §4.4.1, explicit SBR/PS signaling through object types 5/29 and the backward
//!   compatible `syncExtensionType` 0x2b7/0x548 extension, §1.6.5–1.6.6).
//! - [`esds_decoder_specific_info`] walks ES_Descriptor → DecoderConfigDescriptor →
//!   DecoderSpecificInfo (ISO/IEC 14496-1 §7.2.6.5, §7.2.6.6, §7.2.6.7; sizes in the
//!   expandable encoding of §8.3.3); the `esds` box itself is ISO/IEC 14496-14 §5.6.
//! - [`AdtsHeader`] is the ADTS fixed and variable header (ISO/IEC 14496-3 §1.A.2.2,
//!   same as ISO/IEC 13818-7 §6.2).
//! - [`raw_frame_start`] / [`raw_frame_can_end`] read the first and last bits of a raw
//!   AAC frame, for finding frame boundaries when an index is lost.
//!
//! Split by concern: [`asc`], [`esds`], [`adts`], [`raw`]. Bits are read with
//! [`super::bits`].

#[cfg(any(test, feature = "internals"))]
pub mod adts;
pub mod asc;
pub mod esds;
pub mod raw;
#[cfg(test)]
mod tests;

#[cfg(any(test, feature = "internals"))]
pub use self::adts::AdtsHeader;
pub use self::asc::AudioSpecificConfig;
pub use self::esds::{
    build_esds_payload, build_esds_payload_for, esds_any_decoder_specific_info, esds_decoder_specific_info,
    esds_object_type_indication,
};
pub use self::raw::{raw_frame_can_end, raw_frame_start, RawFrameStart};

/// Sampling rates by samplingFrequencyIndex (14496-3 Table 1.18); 13 and 14 are reserved.
pub const SAMPLE_RATES: [u32; 13] =
    [96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350];

/// Channel count of a channelConfiguration (14496-3 Table 1.19, with the 22.2 and 7.1
/// configurations 11–14 of later amendments). `None` for reserved values; 0 means the
/// channels are described by a program_config_element.
pub fn channels_for_config(channel_configuration: u8) -> Option<u16> {
    match channel_configuration {
        0..=6 => Some(u16::from(channel_configuration)),
        7 => Some(8),
        11 => Some(7),
        12 | 14 => Some(8),
        13 => Some(24),
        _ => None,
    }
}

/// The channelConfiguration that gives `channels` (0 when none does).
#[cfg(any(test, feature = "internals"))]
fn config_for_channels(channels: u16) -> u8 {
    match channels {
        1..=6 => channels as u8,
        8 => 7,
        7 => 11,
        24 => 13,
        _ => 0,
    }
}
