//! AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1, GASpecificConfig §4.4.1, SBR/PS
//! signaling §1.6.5–1.6.6).

use super::{channels_for_config, SAMPLE_RATES};
use crate::codecs::bits::BitReader;
use crate::codecs::{AudioFormat, CodecError};

pub(super) const WHAT_ASC: &str = "AudioSpecificConfig";

/// An AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AudioSpecificConfig {
    /// The core audio object type (2 = AAC LC). With explicit SBR/PS signaling (object
    /// types 5 and 29) this is the underlying type that follows.
    pub object_type: u8,
    /// The output sampling rate: the SBR extension rate when SBR is signaled, otherwise
    /// the core rate.
    pub sample_rate: u32,
    /// From channelConfiguration (0 when a program_config_element describes them); 2 for
    /// a mono configuration with parametric stereo.
    pub channels: u16,
    /// Core samples per frame: 1024 or 960 (480 or 512 for the low-delay types). SBR does
    /// not change it.
    pub frame_length: u32,
    /// SBR is signaled (explicitly or through the backward compatible extension).
    pub sbr: bool,
    /// Parametric stereo is signaled.
    pub ps: bool,
    /// The sampling rate of the core codec.
    pub core_sample_rate: u32,
    pub channel_configuration: u8,
}

/// GetAudioObjectType() of 14496-3 §1.6.2.1.
fn read_object_type(r: &mut BitReader<'_>) -> Result<u8, CodecError> {
    let aot = r.read_u8(5)?;
    if aot == 31 {
        Ok(32 + r.read_u8(6)?)
    } else {
        Ok(aot)
    }
}

fn read_sample_rate(r: &mut BitReader<'_>) -> Result<u32, CodecError> {
    let index = r.read_u8(4)?;
    let rate = match index {
        15 => r.read_bits(24)?,
        13 | 14 => {
            return Err(CodecError::Invalid {
                what: WHAT_ASC,
                reason: format!("samplingFrequencyIndex {index} is reserved"),
            })
        }
        _ => SAMPLE_RATES[usize::from(index)],
    };
    if rate == 0 {
        return Err(CodecError::Invalid { what: WHAT_ASC, reason: "explicit samplingFrequency is 0".into() });
    }
    Ok(rate)
}

impl AudioSpecificConfig {
    pub fn parse(asc: &[u8]) -> Result<Self, CodecError> {
        let mut r = BitReader::new(asc, WHAT_ASC);
        let mut object_type = read_object_type(&mut r)?;
        if object_type == 0 {
            return Err(CodecError::Invalid { what: WHAT_ASC, reason: "audio object type 0 (null)".into() });
        }
        let core_sample_rate = read_sample_rate(&mut r)?;
        let channel_configuration = r.read_u8(4)?;
        let mut channels = channels_for_config(channel_configuration).ok_or_else(|| CodecError::Invalid {
            what: WHAT_ASC,
            reason: format!("channelConfiguration {channel_configuration} is reserved"),
        })?;
        let mut sbr = false;
        let mut ps = false;
        let mut sample_rate = core_sample_rate;
        let explicit_sbr = matches!(object_type, 5 | 29);
        if explicit_sbr {
            sbr = true;
            ps = object_type == 29;
            sample_rate = read_sample_rate(&mut r)?;
            object_type = read_object_type(&mut r)?;
            if object_type == 22 {
                r.skip_bits(4)?; // extensionChannelConfiguration
            }
        }
        let specific = read_specific_config(&mut r, object_type, channel_configuration)?;
        let (frame_length, complete) = (specific.frame_length, specific.complete);
        if let Some((rate, ch)) = specific.als {
            if rate > 0 {
                sample_rate = rate;
            }
            channels = ch;
        }
        if complete && !explicit_sbr && r.bits_left() >= 16 {
            // Backward compatible signaling (best effort: malformed tails are ignored).
            if let Ok(Some(ext)) = read_sync_extension(&mut r) {
                sbr = ext.sbr;
                ps = ext.ps;
                if let Some(rate) = ext.sample_rate {
                    sample_rate = rate;
                }
            }
        }
        if ps && channel_configuration == 1 {
            channels = 2;
        }
        Ok(AudioSpecificConfig {
            object_type,
            sample_rate,
            channels,
            frame_length,
            sbr,
            ps,
            core_sample_rate,
            channel_configuration,
        })
    }

    /// Whether the (core) object type is one of AAC's, which players decode as AAC: Main,
    /// LC, SSR, LTP, scalable, and their error-resilient, low-delay and BSAC forms (SBR
    /// and PS, signalled explicitly, are resolved to their core type). ALS (36), USAC
    /// (42), TwinVQ, CELP, HVXC, the MPEG-1/2 layers (32–34) and the rest are not.
    pub fn is_aac(&self) -> bool {
        matches!(self.object_type, 1 | 2 | 3 | 4 | 6 | 17 | 19 | 20 | 22 | 23 | 39)
    }

    /// The sample rate and channel count a player reports.
    pub fn audio_format(&self) -> AudioFormat {
        AudioFormat { sample_rate: self.sample_rate, channels: self.channels }
    }
}

/// What the object-type specific config (GASpecificConfig, ELDSpecificConfig, ALS) says.
struct SpecificConfig {
    frame_length: u32,
    /// Read to its end, so that a backward compatible extension may follow.
    complete: bool,
    /// ALSSpecificConfig's sampling rate and channel count, whose rate is the real one.
    als: Option<(u32, u16)>,
}

/// The object-type specific part of an AudioSpecificConfig (best effort past the fields
/// livemux needs).
fn read_specific_config(
    r: &mut BitReader<'_>,
    object_type: u8,
    channel_configuration: u8,
) -> Result<SpecificConfig, CodecError> {
    let mut out = SpecificConfig { frame_length: 1024, complete: false, als: None };
    match object_type {
        1 | 2 | 3 | 4 | 6 | 7 | 17 | 19 | 20 | 21 | 22 | 23 => {
            let frame_length_flag = r.read_bit()?;
            out.frame_length = match (object_type, frame_length_flag) {
                (23, false) => 512,
                (23, true) => 480,
                (_, false) => 1024,
                (_, true) => 960,
            };
            if r.read_bit()? {
                r.skip_bits(14)?; // coreCoderDelay
            }
            let extension_flag = r.read_bit()?;
            // A program_config_element follows for channelConfiguration 0; it is not
            // parsed, so nothing after it is either (best effort).
            if channel_configuration != 0 {
                out.complete = read_ga_tail(r, object_type, extension_flag).is_ok();
            }
        }
        39 => {
            // ELDSpecificConfig starts with frameLengthFlag.
            out.frame_length = if r.read_bit()? { 480 } else { 512 };
        }
        36 => out.als = read_als(r)?,
        _ => {}
    }
    Ok(out)
}

/// ALS: 5 fill bits, then ALSSpecificConfig ("ALS\0", samp_freq, samples, channels - 1),
/// whose rate is the real one (the ASC's may be off).
fn read_als(r: &mut BitReader<'_>) -> Result<Option<(u32, u16)>, CodecError> {
    const ALS: u32 = u32::from_be_bytes(*b"ALS\0");
    r.skip_bits(5)?;
    let mut found = r.bits_left() >= 32 && r.read_bits(32)? == ALS;
    if !found && r.bits_left() >= 24 + 32 {
        // FFmpeg also accepts the id 24 bits further on.
        r.skip_bits(24)?;
        found = r.read_bits(32)? == ALS;
    }
    if found && r.bits_left() >= 32 + 32 + 16 {
        let rate = r.read_bits(32)?;
        r.skip_bits(32)?;
        let ch = r.read_bits(16)?;
        return Ok(Some((rate, u16::try_from(ch + 1).unwrap_or(u16::MAX))));
    }
    Ok(None)
}

/// The rest of GASpecificConfig after extensionFlag, and epConfig for ER object types.
fn read_ga_tail(r: &mut BitReader<'_>, object_type: u8, extension_flag: bool) -> Result<(), CodecError> {
    if matches!(object_type, 6 | 20) {
        r.skip_bits(3)?; // layerNr
    }
    if extension_flag {
        if object_type == 22 {
            r.skip_bits(5 + 11)?; // numOfSubFrame, layer_length
        }
        if matches!(object_type, 17 | 19 | 20 | 23) {
            r.skip_bits(3)?; // aacSection/Scalefactor/SpectralDataResilienceFlag
        }
        r.skip_bits(1)?; // extensionFlag3
    }
    if matches!(object_type, 17 | 19..=27) {
        r.skip_bits(2)?; // epConfig
    }
    Ok(())
}

struct SyncExtension {
    sbr: bool,
    ps: bool,
    sample_rate: Option<u32>,
}

fn read_sync_extension(r: &mut BitReader<'_>) -> Result<Option<SyncExtension>, CodecError> {
    if r.read_bits(11)? != 0x2b7 {
        return Ok(None);
    }
    let ext_object_type = read_object_type(r)?;
    let mut ext = SyncExtension { sbr: false, ps: false, sample_rate: None };
    match ext_object_type {
        5 => {
            ext.sbr = r.read_bit()?;
            if ext.sbr {
                ext.sample_rate = Some(read_sample_rate(r)?);
                if r.bits_left() >= 12 && r.read_bits(11)? == 0x548 {
                    ext.ps = r.read_bit()?;
                }
            }
        }
        22 => {
            ext.sbr = r.read_bit()?;
            if ext.sbr {
                ext.sample_rate = Some(read_sample_rate(r)?);
            }
        }
        _ => return Ok(None),
    }
    Ok(Some(ext))
}
