//! The `esds` descriptors around an AudioSpecificConfig: ES_Descriptor →
//! DecoderConfigDescriptor → DecoderSpecificInfo (ISO/IEC 14496-1 §7.2.6.5–7.2.6.7, sizes
//! in the expandable encoding of §8.3.3); the box itself is ISO/IEC 14496-14 §5.6.

use std::ops::Range;

use crate::codecs::CodecError;

const WHAT_ESDS: &str = "esds";

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
