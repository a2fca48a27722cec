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

use std::ops::Range;

use bytes::Bytes;

use super::bits::BitReader;
use super::CodecError;

const WHAT_ASC: &str = "AudioSpecificConfig";
const WHAT_ESDS: &str = "esds";
const WHAT_ADTS: &str = "ADTS header";

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
fn config_for_channels(channels: u16) -> u8 {
    match channels {
        1..=6 => channels as u8,
        8 => 7,
        7 => 11,
        24 => 13,
        _ => 0,
    }
}

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
        let mut frame_length = 1024;
        // Whether the specific config was read to its end, so that a backward compatible
        // extension may follow.
        let mut complete = false;
        match object_type {
            1 | 2 | 3 | 4 | 6 | 7 | 17 | 19 | 20 | 21 | 22 | 23 => {
                let frame_length_flag = r.read_bit()?;
                frame_length = match (object_type, frame_length_flag) {
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
                    complete = read_ga_tail(&mut r, object_type, extension_flag).is_ok();
                }
            }
            39 => {
                // ELDSpecificConfig starts with frameLengthFlag.
                frame_length = if r.read_bit()? { 480 } else { 512 };
            }
            36 => {
                // ALS: 5 fill bits, then ALSSpecificConfig ("ALS\0", samp_freq, samples,
                // channels - 1), whose rate is the real one (the ASC's may be off).
                r.skip_bits(5)?;
                const ALS: u32 = u32::from_be_bytes(*b"ALS\0");
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
                    if rate > 0 {
                        sample_rate = rate;
                    }
                    channels = u16::try_from(ch + 1).unwrap_or(u16::MAX);
                }
            }
            _ => {}
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
    pub fn audio_format(&self) -> super::AudioFormat {
        super::AudioFormat { sample_rate: self.sample_rate, channels: self.channels }
    }
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

/// Reads a descriptor header at `pos`: tag and the range of its body, which must end by
/// `end`.
fn read_descriptor(data: &[u8], pos: usize, end: usize) -> Result<(u8, Range<usize>), CodecError> {
    let truncated = |need: usize| CodecError::Truncated { what: WHAT_ESDS, len: end, need };
    let tag = *data.get(pos).filter(|_| pos < end).ok_or(truncated(pos + 1))?;
    let mut size = 0usize;
    let mut p = pos + 1;
    for i in 0..4 {
        let b = *data.get(p).filter(|_| p < end).ok_or(truncated(p + 1))?;
        p += 1;
        size = size << 7 | usize::from(b & 0x7f);
        if b & 0x80 == 0 {
            break;
        }
        if i == 3 {
            return Err(CodecError::Invalid {
                what: WHAT_ESDS,
                reason: format!("size of descriptor tag {tag} at offset {pos} is longer than 4 bytes"),
            });
        }
    }
    let body_end = p.checked_add(size).filter(|&e| e <= end).ok_or(truncated(p.saturating_add(size)))?;
    Ok((tag, p..body_end))
}

/// Finds the first sub-descriptor with `want` among those in `range`.
fn find_descriptor(data: &[u8], range: Range<usize>, want: u8) -> Result<Option<Range<usize>>, CodecError> {
    let mut pos = range.start;
    while pos < range.end {
        let (tag, body) = read_descriptor(data, pos, range.end)?;
        if tag == want {
            return Ok(Some(body));
        }
        pos = body.end;
    }
    Ok(None)
}

/// The objectTypeIndication and the body range of the DecoderConfigDescriptor.
fn decoder_config(esds: &[u8]) -> Result<(u8, Range<usize>), CodecError> {
    let (tag, es) = read_descriptor(esds, 0, esds.len())?;
    if tag != 3 {
        return Err(CodecError::Invalid {
            what: WHAT_ESDS,
            reason: format!("first descriptor has tag {tag}, expected ES_Descriptor (3)"),
        });
    }
    let truncated = |need: usize| CodecError::Truncated { what: WHAT_ESDS, len: es.end, need };
    let flags = *esds.get(es.start + 2).filter(|_| es.start + 3 <= es.end).ok_or(truncated(es.start + 3))?;
    let mut pos = es.start + 3;
    if flags & 0x80 != 0 {
        pos += 2; // dependsOn_ES_ID
    }
    if flags & 0x40 != 0 {
        let url_len = *esds.get(pos).filter(|_| pos < es.end).ok_or(truncated(pos.saturating_add(1)))?;
        pos = pos.saturating_add(1 + usize::from(url_len));
    }
    if flags & 0x20 != 0 {
        pos += 2; // OCR_ES_Id
    }
    if pos > es.end {
        return Err(truncated(pos));
    }
    let dcd = find_descriptor(esds, pos..es.end, 4)?.ok_or_else(|| CodecError::Invalid {
        what: WHAT_ESDS,
        reason: "ES_Descriptor has no DecoderConfigDescriptor (tag 4)".into(),
    })?;
    if dcd.len() < 13 {
        return Err(CodecError::Truncated { what: "esds DecoderConfigDescriptor", len: dcd.len(), need: 13 });
    }
    Ok((esds[dcd.start], dcd))
}

/// The objectTypeIndication of an `esds` (0x40 = MPEG-4 audio, 0x6b = MP3, ...).
/// `esds_payload` is the box content after its version and flags.
pub fn esds_object_type_indication(esds_payload: &[u8]) -> Result<u8, CodecError> {
    decoder_config(esds_payload).map(|(oti, _)| oti)
}

/// The range of the DecoderSpecificInfo (the AudioSpecificConfig) within `esds_payload`,
/// the box content after its version and flags. The objectTypeIndication must be AAC:
/// 0x40 (MPEG-4 audio) or 0x66–0x68 (MPEG-2 AAC).
pub fn esds_decoder_specific_info(esds_payload: &[u8]) -> Result<Range<usize>, CodecError> {
    let (oti, dcd) = decoder_config(esds_payload)?;
    if !matches!(oti, 0x40 | 0x66 | 0x67 | 0x68) {
        return Err(CodecError::Unsupported {
            what: WHAT_ESDS,
            reason: format!("objectTypeIndication 0x{oti:02x} (not AAC)"),
        });
    }
    find_descriptor(esds_payload, dcd.start + 13..dcd.end, 5)?.ok_or_else(|| CodecError::Invalid {
        what: WHAT_ESDS,
        reason: "DecoderConfigDescriptor has no DecoderSpecificInfo (tag 5)".into(),
    })
}

/// The range of the DecoderSpecificInfo within `esds_payload` whatever the
/// objectTypeIndication (FFmpeg stores Vorbis headers there under 0xDD); `None` when
/// there is none.
pub fn esds_any_decoder_specific_info(esds_payload: &[u8]) -> Result<Option<Range<usize>>, CodecError> {
    let (_, dcd) = decoder_config(esds_payload)?;
    find_descriptor(esds_payload, dcd.start + 13..dcd.end, 5)
}

fn put_descriptor_header(out: &mut Vec<u8>, tag: u8, size: usize) {
    // The 4-byte expandable size FFmpeg writes; sizes of 2^28 or more cannot be coded.
    let size = size.min(0x0fff_ffff) as u32;
    out.extend_from_slice(&[
        tag,
        0x80 | (size >> 21) as u8 & 0x7f,
        0x80 | (size >> 14) as u8 & 0x7f,
        0x80 | (size >> 7) as u8 & 0x7f,
        size as u8 & 0x7f,
    ]);
}

/// Builds the content of an `esds` box after its version and flags, for MPEG-4 audio
/// (objectTypeIndication 0x40, streamType audio), as FFmpeg lays it out: ES_Descriptor,
/// DecoderConfigDescriptor, DecoderSpecificInfo with `asc`, and SLConfigDescriptor
/// (predefined 2). `buffer_size` is clamped to 24 bits.
pub fn build_esds_payload(asc: &[u8], es_id: u16, max_bitrate: u32, avg_bitrate: u32, buffer_size: u32) -> Vec<u8> {
    build_esds_payload_for(0x40, Some(asc), es_id, max_bitrate, avg_bitrate, buffer_size)
}

/// [`build_esds_payload`] for any objectTypeIndication (0x6B: MPEG-1 audio, as MP3 is
/// stored), with a DecoderSpecificInfo only when `dsi` is given.
pub fn build_esds_payload_for(
    oti: u8,
    dsi: Option<&[u8]>,
    es_id: u16,
    max_bitrate: u32,
    avg_bitrate: u32,
    buffer_size: u32,
) -> Vec<u8> {
    let dsi_len = dsi.map_or(0, |d| 5 + d.len());
    let dcd_body = 13 + dsi_len;
    let sl_len = 5 + 1;
    let es_body = 3 + 5 + dcd_body + sl_len;
    let mut out = Vec::with_capacity(5 + es_body);
    put_descriptor_header(&mut out, 3, es_body);
    out.extend_from_slice(&es_id.to_be_bytes());
    out.push(0); // no dependsOn, URL or OCR; priority 0
    put_descriptor_header(&mut out, 4, dcd_body);
    out.push(oti);
    out.push(0x15); // streamType 5 (audio), upStream 0, reserved 1
    out.extend_from_slice(&buffer_size.min(0xff_ffff).to_be_bytes()[1..]);
    out.extend_from_slice(&max_bitrate.to_be_bytes());
    out.extend_from_slice(&avg_bitrate.to_be_bytes());
    if let Some(dsi) = dsi {
        put_descriptor_header(&mut out, 5, dsi.len());
        out.extend_from_slice(dsi);
    }
    put_descriptor_header(&mut out, 6, 1);
    out.push(2);
    out
}

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
    pub fn to_audio_specific_config(&self) -> Bytes {
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

/// Scalefactor bands of a long window, by sampling-frequency index (ISO/IEC 14496-3
/// §4.5.4, tables 4.129 ff.): the largest valid `max_sfb` of an ICS with long windows.
const NUM_SWB_LONG: [u8; 13] = [41, 41, 47, 49, 49, 51, 47, 47, 43, 43, 43, 40, 40];
/// The same for each short window of an EIGHT_SHORT_SEQUENCE.
const NUM_SWB_SHORT: [u8; 13] = [12, 12, 12, 14, 14, 14, 15, 15, 15, 15, 15, 15, 15];

/// What the first bits of a raw AAC frame say, for telling a real frame start from
/// arbitrary bytes when frames are stored back to back without lengths (an MP4 whose
/// index is lost).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawFrameStart {
    /// Global gain of the first channel, which changes slowly from frame to frame.
    pub global_gain: Option<u8>,
    /// 0 ONLY_LONG, 1 LONG_START, 2 EIGHT_SHORT, 3 LONG_STOP.
    pub window_sequence: u8,
}

impl RawFrameStart {
    /// Whether `next` may follow `self` (§4.6.11.3.1: the window sequence cannot jump
    /// from long to short, or back, without a transition window).
    pub fn may_precede(&self, next: &RawFrameStart) -> bool {
        matches!((self.window_sequence, next.window_sequence), (0 | 3, 0 | 1) | (1 | 2, 2 | 3))
    }
}

/// What `ics_info` (§4.4.2.1) says, checked against an AAC-LC stream: reserved bit 0,
/// `max_sfb` within the band count, no prediction.
struct IcsInfo {
    window_sequence: u8,
    max_sfb: u8,
    window_groups: u8,
}

fn ics_info(r: &mut BitReader<'_>, sf_index: usize) -> Option<IcsInfo> {
    if r.read_bit().ok()? {
        return None;
    }
    let window_sequence = r.read_bits(2).ok()? as u8;
    r.read_bit().ok()?;
    if window_sequence == 2 {
        let max_sfb = r.read_bits(4).ok()? as u8;
        // scale_factor_grouping: a 0 bit starts a new group of the eight windows.
        let grouping = r.read_bits(7).ok()?;
        let window_groups = 1 + (0..7).filter(|b| grouping & (1 << b) == 0).count() as u8;
        (max_sfb <= *NUM_SWB_SHORT.get(sf_index)?).then_some(IcsInfo { window_sequence, max_sfb, window_groups })
    } else {
        let max_sfb = r.read_bits(6).ok()? as u8;
        let predictor_data_present = r.read_bit().ok()?;
        (max_sfb <= *NUM_SWB_LONG.get(sf_index)? && !predictor_data_present).then_some(IcsInfo {
            window_sequence,
            max_sfb,
            window_groups: 1,
        })
    }
}

/// Reads `section_data` (§4.4.2.7): per window group, sections with a codebook and a
/// length, which must cover exactly `max_sfb` bands; codebook 12 is reserved.
fn section_data(r: &mut BitReader<'_>, ics: &IcsInfo) -> Option<()> {
    let (len_bits, escape) = if ics.window_sequence == 2 { (3, 7) } else { (5, 31) };
    for _ in 0..ics.window_groups {
        let mut k = 0u32;
        while k < u32::from(ics.max_sfb) {
            if r.read_bits(4).ok()? == 12 {
                return None;
            }
            let mut len = 0u32;
            loop {
                let incr = r.read_bits(len_bits).ok()?;
                len = len.checked_add(incr)?;
                if incr != escape {
                    break;
                }
                // No section is longer than the bands it must cover.
                if len > u32::from(ics.max_sfb) {
                    return None;
                }
            }
            if len == 0 {
                return None;
            }
            k = k.checked_add(len)?;
        }
        if k != u32::from(ics.max_sfb) {
            return None;
        }
    }
    Some(())
}

/// Checks whether an AAC-LC `raw_data_block` (§4.4.2.1) can start at `data[0]` for a
/// stream with channel configuration 1 (one SCE) or 2 (one CPE) at sampling-frequency
/// index `sf_index`: optional fill and data-stream elements first, then the channel
/// element with a plausible `ics_info`. `None` means "not a frame start".
pub fn raw_frame_start(data: &[u8], channel_config: u8, sf_index: usize) -> Option<RawFrameStart> {
    const ID_SCE: u32 = 0;
    const ID_CPE: u32 = 1;
    const ID_DSE: u32 = 4;
    const ID_FIL: u32 = 6;
    let mut r = BitReader::new(data, "raw_data_block");
    loop {
        let id = r.read_bits(3).ok()?;
        match id {
            ID_FIL => {
                // fill_element (§4.4.2.1): cnt 15 escapes to 15 + esc_count - 1, which is
                // 14 for esc_count 0 (subtracting first would wrap).
                let mut count = r.read_bits(4).ok()?;
                if count == 15 {
                    count = 14 + r.read_bits(8).ok()?;
                }
                for _ in 0..count {
                    r.read_bits(8).ok()?;
                }
            }
            ID_DSE => {
                r.read_bits(4).ok()?;
                let byte_align = r.read_bit().ok()?;
                let mut count = r.read_bits(8).ok()?;
                if count == 255 {
                    count += r.read_bits(8).ok()?;
                }
                if byte_align {
                    let pad = (8 - r.position() % 8) % 8;
                    r.read_bits(pad as u32).ok()?;
                }
                for _ in 0..count {
                    r.read_bits(8).ok()?;
                }
            }
            ID_SCE if channel_config == 1 => {
                if r.read_bits(4).ok()? != 0 {
                    return None;
                }
                let global_gain = Some(r.read_bits(8).ok()? as u8);
                let ics = ics_info(&mut r, sf_index)?;
                section_data(&mut r, &ics)?;
                return Some(RawFrameStart { global_gain, window_sequence: ics.window_sequence });
            }
            ID_CPE if channel_config == 2 => {
                if r.read_bits(4).ok()? != 0 {
                    return None;
                }
                if r.read_bit().ok()? {
                    // common_window: shared ics_info, M/S flags (mode 3 is reserved, mode 1
                    // has one flag per band and group), then the first channel's gain.
                    let ics = ics_info(&mut r, sf_index)?;
                    match r.read_bits(2).ok()? {
                        3 => return None,
                        1 => {
                            for _ in 0..u32::from(ics.window_groups) * u32::from(ics.max_sfb) {
                                r.read_bit().ok()?;
                            }
                        }
                        _ => {}
                    }
                    let global_gain = Some(r.read_bits(8).ok()? as u8);
                    section_data(&mut r, &ics)?;
                    return Some(RawFrameStart { global_gain, window_sequence: ics.window_sequence });
                }
                let global_gain = Some(r.read_bits(8).ok()? as u8);
                let ics = ics_info(&mut r, sf_index)?;
                section_data(&mut r, &ics)?;
                return Some(RawFrameStart { global_gain, window_sequence: ics.window_sequence });
            }
            _ => return None,
        }
    }
}

/// Whether a `raw_data_block` can end with the last byte of `data`: its final element is
/// ID_END (`111`) followed by fewer than 8 zero bits up to the byte boundary.
pub fn raw_frame_can_end(data: &[u8]) -> bool {
    let n = data.len();
    if n < 2 {
        return false;
    }
    let tail = u16::from_be_bytes([data[n - 2], data[n - 1]]);
    if tail == 0 {
        return false;
    }
    let zeros = tail.trailing_zeros();
    zeros < 8 && (tail >> zeros) & 0b111 == 0b111
}

#[cfg(test)]
mod tests {
    use super::super::h264::tests::{assert_truncations_fail, fails_invalid, fuzz, invalid_with, BitWriter};
    use super::*;

    /// FFmpeg's AAC encoder, 48 kHz stereo LC, with the backward compatible SBR extension
    /// present but sbrPresentFlag 0.
    const ASC_FFMPEG: &[u8] = &[0x11, 0x90, 0x56, 0xe5, 0x00];
    /// The `esds` content (after version/flags) FFmpeg wrote around ASC_FFMPEG.
    const ESDS_FFMPEG: &[u8] = &[
        0x03, 0x80, 0x80, 0x80, 0x25, 0x00, 0x01, 0x00, 0x04, 0x80, 0x80, 0x80, 0x17, 0x40, 0x15, 0x00, 0x00, 0x00,
        0x00, 0x01, 0xf4, 0x00, 0x00, 0x01, 0xd7, 0xdb, 0x05, 0x80, 0x80, 0x80, 0x05, 0x11, 0x90, 0x56, 0xe5, 0x00,
        0x06, 0x80, 0x80, 0x80, 0x01, 0x02,
    ];
    /// The first ADTS header FFmpeg wrote for 44.1 kHz mono LC.
    const ADTS_FFMPEG: &[u8] = &[0xff, 0xf1, 0x50, 0x40, 0x21, 0x3f, 0xfc];

    fn asc(f: impl FnOnce(&mut BitWriter)) -> Vec<u8> {
        let mut w = BitWriter::default();
        f(&mut w);
        w.finish()
    }

    #[test]
    fn als_is_identified_with_its_own_rate() {
        // AOT 36 (escape 31 + 4), explicit rate 44116 (off, as some muxers write it),
        // channelConfiguration 0, 5 fill bits, ALSSpecificConfig: 44100 Hz, 2 channels.
        let v = asc(|w| {
            w.bits(5, 31);
            w.bits(6, 4);
            w.bits(4, 15);
            w.bits(24, 44116);
            w.bits(4, 0);
            w.bits(5, 0);
            for b in b"ALS\0" {
                w.bits(8, u64::from(*b));
            }
            w.bits(32, 44100);
            w.bits(32, 4096);
            w.bits(16, 1);
        });
        let c = AudioSpecificConfig::parse(&v).unwrap();
        assert_eq!((c.object_type, c.sample_rate, c.channels, c.is_aac()), (36, 44100, 2, false));
        // Explicit SBR over LC is AAC; over nothing known it is not.
        assert!(AudioSpecificConfig::parse(ASC_FFMPEG).unwrap().is_aac());
    }

    #[test]
    fn common_configs() {
        let c = AudioSpecificConfig::parse(ASC_FFMPEG).unwrap();
        assert_eq!((c.object_type, c.sample_rate, c.channels, c.frame_length, c.sbr), (2, 48000, 2, 1024, false));
        let c = AudioSpecificConfig::parse(&[0x12, 0x08]).unwrap();
        assert_eq!((c.object_type, c.sample_rate, c.channels), (2, 44100, 1));
        // 960-sample frames, 7.1 (channelConfiguration 7).
        let c = AudioSpecificConfig::parse(&[0x11, 0xbc]).unwrap();
        assert_eq!((c.frame_length, c.channels), (960, 8));
        // channelConfiguration 0 (PCE follows) is accepted with 0 channels.
        let c = AudioSpecificConfig::parse(&[0x11, 0x80, 0x00]).unwrap();
        assert_eq!(c.channels, 0);
        // Explicit 24-bit rate.
        let v = asc(|w| {
            w.bits(5, 2);
            w.bits(4, 15);
            w.bits(24, 37800);
            w.bits(4, 2);
            w.bits(3, 0);
        });
        assert_eq!(AudioSpecificConfig::parse(&v).unwrap().sample_rate, 37800);
        // Escaped object type 42 (USAC) keeps the default frame length.
        let v = asc(|w| {
            w.bits(5, 31);
            w.bits(6, 10);
            w.bits(4, 3);
            w.bits(4, 2);
        });
        assert_eq!(AudioSpecificConfig::parse(&v).unwrap().object_type, 42);
        // AAC-LD with frameLengthFlag 1, AAC-ELD with 0.
        let v = asc(|w| {
            w.bits(5, 23);
            w.bits(4, 3);
            w.bits(4, 1);
            w.bits(3, 0b100);
            w.bits(2, 0); // epConfig
        });
        assert_eq!(AudioSpecificConfig::parse(&v).unwrap().frame_length, 480);
        let v = asc(|w| {
            w.bits(5, 31);
            w.bits(6, 7);
            w.bits(4, 3);
            w.bits(4, 1);
            w.bit(false);
        });
        let c = AudioSpecificConfig::parse(&v).unwrap();
        assert_eq!((c.object_type, c.frame_length), (39, 512));
    }

    #[test]
    fn sbr_and_ps_signaling() {
        // Explicit HE-AAC: AOT 5, core 24 kHz stereo, extension 48 kHz, then AOT 2.
        let v = asc(|w| {
            w.bits(5, 5);
            w.bits(4, 6);
            w.bits(4, 2);
            w.bits(4, 3);
            w.bits(5, 2);
            w.bits(3, 0);
        });
        let c = AudioSpecificConfig::parse(&v).unwrap();
        assert_eq!((c.object_type, c.sbr, c.ps, c.sample_rate, c.core_sample_rate), (2, true, false, 48000, 24000));
        assert_eq!((c.channels, c.frame_length), (2, 1024));
        // Explicit HE-AACv2: AOT 29, mono core, parametric stereo.
        let v = asc(|w| {
            w.bits(5, 29);
            w.bits(4, 6);
            w.bits(4, 1);
            w.bits(4, 3);
            w.bits(5, 2);
            w.bits(3, 0);
        });
        let c = AudioSpecificConfig::parse(&v).unwrap();
        assert_eq!((c.sbr, c.ps, c.channels, c.sample_rate), (true, true, 2, 48000));
        // Backward compatible: LC 22.05 kHz mono + 0x2b7 SBR 44.1 kHz + 0x548 PS.
        let v = asc(|w| {
            w.bits(5, 2);
            w.bits(4, 7);
            w.bits(4, 1);
            w.bits(3, 0);
            w.bits(11, 0x2b7);
            w.bits(5, 5);
            w.bit(true);
            w.bits(4, 4);
            w.bits(11, 0x548);
            w.bit(true);
        });
        let c = AudioSpecificConfig::parse(&v).unwrap();
        assert_eq!((c.object_type, c.sbr, c.ps, c.sample_rate, c.channels), (2, true, true, 44100, 2));
        // A malformed tail is ignored.
        let c = AudioSpecificConfig::parse(&[0x12, 0x08, 0xff, 0xff]).unwrap();
        assert!(!c.sbr);
    }

    #[test]
    fn asc_rejections() {
        let err = |v: &[u8]| AudioSpecificConfig::parse(v).unwrap_err();
        assert!(invalid_with(&err(&[0, 0]), "object type 0"));
        assert!(invalid_with(&err(&[0x16, 0x88]), "samplingFrequencyIndex 13"));
        assert!(invalid_with(&err(&[0x11, 0xc0]), "channelConfiguration 8"));
        assert!(invalid_with(&err(&[0x17, 0x80, 0, 0, 0x10]), "is 0"));
        assert_eq!(err(&[0x11]), CodecError::Truncated { what: WHAT_ASC, len: 1, need: 2 });
    }

    #[test]
    fn asc_truncations_fail() {
        // Everything up to the GASpecificConfig flags is required; the extension is not.
        assert_truncations_fail(&ASC_FFMPEG[..2], AudioSpecificConfig::parse);
        for n in 2..ASC_FFMPEG.len() {
            assert!(AudioSpecificConfig::parse(&ASC_FFMPEG[..n]).is_ok());
        }
    }

    #[test]
    fn asc_fuzz() {
        fuzz(ASC_FFMPEG, AudioSpecificConfig::parse);
        fuzz(&[0x2b, 0x92, 0x08, 0x00], AudioSpecificConfig::parse);
    }

    #[test]
    fn esds_parsing() {
        assert_eq!(esds_object_type_indication(ESDS_FFMPEG).unwrap(), 0x40);
        let r = esds_decoder_specific_info(ESDS_FFMPEG).unwrap();
        assert_eq!(&ESDS_FFMPEG[r], ASC_FFMPEG);
        // Short sizes and the optional ES_Descriptor fields (dependsOn, URL, OCR), with an
        // unrelated descriptor before the DecoderConfigDescriptor.
        let esds = [
            0x03, 0x1f, 0x00, 0x02, 0xe0, 0x00, 0x01, 0x03, b'a', b'b', b'c', 0x00, 0x07, 0x0a, 0x01, 0x00, 0x04, 0x0f,
            0x67, 0x15, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x05, 0x00,
        ];
        assert_eq!(esds_object_type_indication(&esds).unwrap(), 0x67);
        assert_eq!(esds_decoder_specific_info(&esds).unwrap(), 33..33);
        // MP3 is reported as unsupported, with its value.
        let mut mp3 = ESDS_FFMPEG.to_vec();
        mp3[13] = 0x6b;
        assert_eq!(esds_object_type_indication(&mp3).unwrap(), 0x6b);
        let unsupported = esds_decoder_specific_info(&mp3).unwrap_err();
        assert!(unsupported.to_string().contains("unsupported objectTypeIndication 0x6b"));
        // Wrong first tag, missing DecoderSpecificInfo, a 5-byte size.
        assert!(matches!(esds_decoder_specific_info(&[0x04, 0x00]), Err(CodecError::Invalid { .. })));
        let mut no_dsi = ESDS_FFMPEG.to_vec();
        no_dsi[26] = 0x07;
        assert!(fails_invalid(&esds_decoder_specific_info(&no_dsi), "tag 5"));
        assert!(matches!(
            esds_decoder_specific_info(&[0x03, 0x80, 0x80, 0x80, 0x80, 0x01]),
            Err(CodecError::Invalid { .. })
        ));
        // A child running past its parent.
        let mut long_child = ESDS_FFMPEG.to_vec();
        long_child[12] = 0x30;
        assert!(matches!(esds_decoder_specific_info(&long_child), Err(CodecError::Truncated { .. })));
        // A zeroed payload.
        assert!(esds_decoder_specific_info(&[0; 42]).is_err());
    }

    #[test]
    fn esds_build_matches_ffmpeg() {
        assert_eq!(build_esds_payload(ASC_FFMPEG, 1, 128000, 120795, 0), ESDS_FFMPEG);
        let built = build_esds_payload(&[0x12, 0x08], 7, 1, 2, 0x1234_5678);
        let r = esds_decoder_specific_info(&built).unwrap();
        assert_eq!(&built[r], &[0x12, 0x08]);
        assert_eq!(&built[15..18], &[0xff, 0xff, 0xff]);
    }

    #[test]
    fn esds_truncations_fail() {
        assert_truncations_fail(ESDS_FFMPEG, esds_decoder_specific_info);
        assert_truncations_fail(ESDS_FFMPEG, esds_object_type_indication);
    }

    #[test]
    fn esds_fuzz() {
        fuzz(ESDS_FFMPEG, esds_decoder_specific_info);
        fuzz(ESDS_FFMPEG, |d| {
            if let Ok(r) = esds_decoder_specific_info(d) {
                assert!(r.end <= d.len());
            }
        });
    }

    #[test]
    fn adts_headers() {
        let h = AdtsHeader::parse(ADTS_FFMPEG).unwrap().unwrap();
        assert_eq!((h.object_type, h.sample_rate, h.channels, h.header_len), (2, 44100, 1, 7));
        assert_eq!((h.frame_len, h.raw_blocks), (0x21 << 3 | 1, 1));
        assert_eq!(&h.to_audio_specific_config()[..], &[0x12, 0x08]);
        // With CRC: needs 9 bytes.
        let mut crc = ADTS_FFMPEG.to_vec();
        crc[1] = 0xf0;
        assert_eq!(AdtsHeader::parse(&crc).unwrap(), None);
        crc.extend([0xab, 0xcd]);
        assert_eq!(AdtsHeader::parse(&crc).unwrap().unwrap().header_len, 9);
        // Partial headers are "need more" until something is visibly wrong.
        for n in 0..7 {
            assert_eq!(AdtsHeader::parse(&ADTS_FFMPEG[..n]).unwrap(), None);
        }
        assert!(AdtsHeader::parse(&[0xfe]).is_err());
        assert!(AdtsHeader::parse(&[0xff, 0xe1]).is_err());
        assert!(AdtsHeader::parse(&[0xff, 0xf3]).is_err()); // layer 1
        let mut bad_rate = ADTS_FFMPEG.to_vec();
        bad_rate[2] = 0x74; // index 13
        assert!(AdtsHeader::parse(&bad_rate).is_err());
        let mut short = ADTS_FFMPEG.to_vec();
        short[3] = 0x40;
        short[4] = 0;
        short[5] = 0xc0; // frame length 6
        assert!(AdtsHeader::parse(&short).is_err());
        // 48 kHz 5.1, and a rate without an index.
        let h =
            AdtsHeader { object_type: 2, sample_rate: 48000, channels: 6, header_len: 7, frame_len: 7, raw_blocks: 1 };
        assert_eq!(&h.to_audio_specific_config()[..], &[0x11, 0xb0]);
        let h = AdtsHeader { sample_rate: 37800, ..h };
        let asc = h.to_audio_specific_config();
        let c = AudioSpecificConfig::parse(&asc).unwrap();
        assert_eq!((c.sample_rate, c.channels), (37800, 6));
    }

    #[test]
    fn adts_fuzz() {
        fuzz(ADTS_FFMPEG, AdtsHeader::parse);
        fuzz(ADTS_FFMPEG, |d| AdtsHeader::parse(d).map(|h| h.map(|h| h.to_audio_specific_config())));
    }

    /// Bytes from a string of '0'/'1', zero-padded to a byte boundary.
    fn from_bits(bits: &str) -> Vec<u8> {
        let padded = bits.to_string() + &"0".repeat((8 - bits.len() % 8) % 8);
        padded.as_bytes().chunks(8).map(|c| u8::from_str_radix(std::str::from_utf8(c).unwrap(), 2).unwrap()).collect()
    }

    #[test]
    fn raw_frame_start_reads_sce_and_skips_fill() {
        // SCE tag 0, gain 150, ics: reserved 0, ONLY_LONG, shape 0, max_sfb 40, no prediction.
        // Then one section of codebook 1 over all 40 bands (length 31 + 9, escaped).
        let sce =
            "000".to_string() + "0000" + "10010110" + "0" + "00" + "0" + "101000" + "0" + "0001" + "11111" + "01001";
        let bytes = from_bits(&sce);
        let start = raw_frame_start(&bytes, 1, 3).unwrap();
        assert_eq!(start, RawFrameStart { global_gain: Some(150), window_sequence: 0 });
        // max_sfb over the 49 bands of 48 kHz is not a frame start.
        let mut bad = bytes.clone();
        bad[2] |= 0b0000_1111;
        assert_eq!(raw_frame_start(&bad, 1, 3), None);
        // A fill element with 1 byte first: id 110, count 0001, one byte, then the SCE.
        let bytes = from_bits(&("110".to_string() + "0001" + "11111111" + &sce));
        assert_eq!(raw_frame_start(&bytes, 1, 3).map(|s| s.global_gain), Some(Some(150)));
        // Mono data is not a stereo frame start.
        assert_eq!(raw_frame_start(&bytes, 2, 3), None);
    }

    /// Values that overflowed: a fill element whose escaped count is 0 (cnt = 15 + 0 - 1,
    /// computed as `0 - 1` first), long runs of escaped section lengths, and descriptor
    /// sizes near the top of the expandable encoding.
    #[test]
    fn crafted_values_that_overflowed_are_handled() {
        let sce =
            "000".to_string() + "0000" + "10010110" + "0" + "00" + "0" + "101000" + "0" + "0001" + "11111" + "01001";
        // FIL with cnt 15 and esc_count 0: 14 bytes of fill, then the SCE.
        let fill = "110".to_string() + "1111" + "00000000" + &"10101010".repeat(14);
        let bytes = from_bits(&(fill + &sce));
        assert_eq!(raw_frame_start(&bytes, 1, 3).map(|s| s.global_gain), Some(Some(150)));
        // The same with esc_count 0 and too few bytes after it: not a frame start.
        assert_eq!(raw_frame_start(&from_bits("11011110000000010101010"), 1, 3), None);
        // A section length escaped forever (all ones) ends without overflow.
        let escaped = "000".to_string() + "0000" + "10010110" + "0" + "00" + "0" + "101000" + "0" + "0001";
        let mut v = from_bits(&escaped);
        v.extend(std::iter::repeat_n(0xff, 4096));
        assert_eq!(raw_frame_start(&v, 1, 3), None);
        // Every byte pattern after a FIL escape, and random bytes at every channel config.
        for esc in 0..=255u8 {
            let mut v = vec![0b1101_1110 | (esc >> 7), esc << 1];
            v.extend([0u8; 8]);
            for cc in 0..=3 {
                let _ = raw_frame_start(&v, cc, 3);
            }
        }
        // Descriptor sizes of 2^28 - 1 that run past the record.
        let esds = [0x03, 0xff, 0xff, 0xff, 0x7f, 0x00];
        assert!(esds_decoder_specific_info(&esds).is_err());
        let esds = [0x03, 0x80, 0x80, 0x80, 0x05, 0x00, 0x01, 0x40, 0xff, 0x00];
        assert!(esds_decoder_specific_info(&esds).is_err());
    }

    proptest::proptest! {
        #[test]
        fn aac_parsers_never_panic(data in proptest::collection::vec(proptest::num::u8::ANY, 0..96), cc in 0u8..4, sf in 0usize..16) {
            let _ = AudioSpecificConfig::parse(&data);
            let _ = esds_decoder_specific_info(&data);
            let _ = esds_object_type_indication(&data);
            let _ = AdtsHeader::parse(&data).map(|h| h.map(|h| h.to_audio_specific_config()));
            let _ = raw_frame_start(&data, cc, sf);
            let _ = raw_frame_can_end(&data);
        }
    }

    #[test]
    fn raw_frame_end_is_id_end_then_padding() {
        assert!(raw_frame_can_end(&[0x12, 0b1110_0000]));
        assert!(raw_frame_can_end(&[0b0000_0011, 0b1000_0000]));
        assert!(!raw_frame_can_end(&[0b0000_0001, 0b1000_0000]));
        assert!(raw_frame_can_end(&[0x00, 0b0000_0111]));
        assert!(!raw_frame_can_end(&[0x00, 0b0000_0110]));
        assert!(!raw_frame_can_end(&[0x00, 0x00]));
        assert!(!raw_frame_can_end(&[0x07]));
    }

    #[test]
    fn window_sequences_follow_the_transition_rules() {
        let w = |window_sequence| RawFrameStart { global_gain: None, window_sequence };
        assert!(
            w(0).may_precede(&w(1)) && w(1).may_precede(&w(2)) && w(2).may_precede(&w(3)) && w(3).may_precede(&w(0))
        );
        assert!(!w(0).may_precede(&w(2)) && !w(2).may_precede(&w(0)));
    }
}
