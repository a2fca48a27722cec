//! Opus: the identification header in its two forms, and packet durations.
//!
//! - [`OpusHead::from_opus_head`] reads the Ogg/Matroska "OpusHead" packet (RFC 7845
//!   §5.1, little-endian) and [`OpusHead::from_dops`] the ISO BMFF `dOps` box content
//!   ("Encapsulation of Opus in ISO Base Media File Format" §4.3.2, big-endian, version 0).
//!   Channel mapping rules follow RFC 7845 §5.1.1.
//! - [`packet_duration_48k`] reads the TOC byte and frame count (RFC 6716 §3.1–3.2).

use super::CodecError;

const WHAT_DOPS: &str = "dOps";
const WHAT_HEAD: &str = "OpusHead";
const MAGIC: &[u8; 8] = b"OpusHead";

/// The Opus identification header.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct OpusHead {
    /// The version as read: 0 from `dOps`, 1 (or another 0x0_ value) from "OpusHead".
    /// Each writer emits its own format's version.
    pub version: u8,
    pub channels: u8,
    pub pre_skip: u16,
    pub input_sample_rate: u32,
    /// Q7.8 dB.
    pub output_gain: i16,
    pub mapping_family: u8,
    /// For family 0 the implied values: 1 stream, `channels - 1` coupled.
    pub stream_count: u8,
    pub coupled_count: u8,
    /// Empty for family 0.
    pub channel_mapping: Vec<u8>,
}

impl OpusHead {
    /// Parses `dOps` box content (after the box header; `dOps` is not a full box).
    pub fn from_dops(payload: &[u8]) -> Result<Self, CodecError> {
        if payload.len() < 11 {
            return Err(CodecError::Truncated { what: WHAT_DOPS, len: payload.len(), need: 11 });
        }
        if payload[0] != 0 {
            return Err(CodecError::Unsupported { what: WHAT_DOPS, reason: format!("version {}", payload[0]) });
        }
        let be16 = |i: usize| u16::from_be_bytes([payload[i], payload[i + 1]]);
        let head = Self::from_fields(
            WHAT_DOPS,
            payload[0],
            payload[1],
            be16(2),
            u32::from_be_bytes([payload[4], payload[5], payload[6], payload[7]]),
            be16(8) as i16,
            payload[10],
            &payload[11..],
        )?;
        head.validate().map_err(|e| retag(e, WHAT_DOPS))?;
        Ok(head)
    }

    /// Serializes as `dOps` box content (version 0).
    pub fn to_dops(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(11 + 2 + self.channel_mapping.len());
        out.push(0);
        out.push(self.channels);
        out.extend_from_slice(&self.pre_skip.to_be_bytes());
        out.extend_from_slice(&self.input_sample_rate.to_be_bytes());
        out.extend_from_slice(&self.output_gain.to_be_bytes());
        out.push(self.mapping_family);
        self.put_mapping(&mut out);
        out
    }

    /// Parses an "OpusHead" identification header (Ogg packet, Matroska CodecPrivate).
    /// Versions 1–15 are read (RFC 7845 §5.1: same major version).
    pub fn from_opus_head(codec_private: &[u8]) -> Result<Self, CodecError> {
        let d = codec_private;
        if d.len() < 19 {
            return Err(CodecError::Truncated { what: WHAT_HEAD, len: d.len(), need: 19 });
        }
        if &d[..8] != MAGIC {
            return Err(CodecError::Invalid { what: WHAT_HEAD, reason: "magic signature \"OpusHead\" missing".into() });
        }
        let version = d[8];
        if version == 0 || version > 15 {
            return Err(CodecError::Unsupported { what: WHAT_HEAD, reason: format!("version {version}") });
        }
        let le16 = |i: usize| u16::from_le_bytes([d[i], d[i + 1]]);
        let head = Self::from_fields(
            WHAT_HEAD,
            version,
            d[9],
            le16(10),
            u32::from_le_bytes([d[12], d[13], d[14], d[15]]),
            le16(16) as i16,
            d[18],
            &d[19..],
        )?;
        head.validate().map_err(|e| retag(e, WHAT_HEAD))?;
        Ok(head)
    }

    /// Serializes as an "OpusHead" identification header (version 1).
    pub fn to_opus_head(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(19 + 2 + self.channel_mapping.len());
        out.extend_from_slice(MAGIC);
        out.push(1);
        out.push(self.channels);
        out.extend_from_slice(&self.pre_skip.to_le_bytes());
        out.extend_from_slice(&self.input_sample_rate.to_le_bytes());
        out.extend_from_slice(&self.output_gain.to_le_bytes());
        out.push(self.mapping_family);
        self.put_mapping(&mut out);
        out
    }

    fn put_mapping(&self, out: &mut Vec<u8>) {
        if self.mapping_family != 0 {
            out.push(self.stream_count);
            out.push(self.coupled_count);
            // Exactly one entry per channel, whatever the vector holds.
            out.extend((0..usize::from(self.channels)).map(|i| self.channel_mapping.get(i).copied().unwrap_or(255)));
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn from_fields(
        what: &'static str,
        version: u8,
        channels: u8,
        pre_skip: u16,
        input_sample_rate: u32,
        output_gain: i16,
        mapping_family: u8,
        rest: &[u8],
    ) -> Result<Self, CodecError> {
        if channels == 0 {
            return Err(CodecError::Invalid { what, reason: "channel count is 0".into() });
        }
        let (stream_count, coupled_count, channel_mapping) = if mapping_family == 0 {
            (1, u8::from(channels >= 2), Vec::new())
        } else {
            let need = 2 + usize::from(channels);
            let fixed = if what == WHAT_DOPS { 11 } else { 19 };
            let table =
                rest.get(..need).ok_or(CodecError::Truncated { what, len: fixed + rest.len(), need: fixed + need })?;
            (table[0], table[1], table[2..].to_vec())
        };
        Ok(OpusHead {
            version,
            channels,
            pre_skip,
            input_sample_rate,
            output_gain,
            mapping_family,
            stream_count,
            coupled_count,
            channel_mapping,
        })
    }

    /// Checks the channel layout (RFC 7845 §5.1.1): at least one channel; family 0 has
    /// at most 2 channels and no mapping table (or the trivial one); otherwise at least
    /// one stream, coupled streams no more than streams, at most 255 decoded channels,
    /// one mapping entry per channel, each naming a decoded channel or 255 (silence), and
    /// family 1 has at most 8 channels.
    pub fn validate(&self) -> Result<(), CodecError> {
        let invalid = |reason: String| Err(CodecError::Invalid { what: WHAT_HEAD, reason });
        if self.channels == 0 {
            return invalid("channel count is 0".into());
        }
        if self.mapping_family == 0 {
            if self.channels > 2 {
                return invalid(format!("{} channels with mapping family 0 (at most 2)", self.channels));
            }
            let trivial = self.channel_mapping.iter().enumerate().all(|(i, &m)| usize::from(m) == i);
            if !(self.channel_mapping.is_empty() || self.channel_mapping.len() == usize::from(self.channels) && trivial)
            {
                return invalid("mapping family 0 with a channel mapping table".into());
            }
            return Ok(());
        }
        if self.mapping_family == 1 && self.channels > 8 {
            return invalid(format!("{} channels with mapping family 1 (at most 8)", self.channels));
        }
        if self.stream_count == 0 {
            return invalid("stream count is 0".into());
        }
        if self.coupled_count > self.stream_count {
            return invalid(format!("coupled count {} exceeds stream count {}", self.coupled_count, self.stream_count));
        }
        let decoded = u16::from(self.stream_count) + u16::from(self.coupled_count);
        if decoded > 255 {
            return invalid(format!("{decoded} decoded channels (at most 255)"));
        }
        if self.channel_mapping.len() != usize::from(self.channels) {
            return invalid(format!(
                "channel mapping has {} entries for {} channels",
                self.channel_mapping.len(),
                self.channels
            ));
        }
        if let Some(&bad) = self.channel_mapping.iter().find(|&&m| m != 255 && u16::from(m) >= decoded) {
            return invalid(format!("channel mapping entry {bad} is not below {decoded}"));
        }
        Ok(())
    }
}

fn retag(e: CodecError, what: &'static str) -> CodecError {
    match e {
        CodecError::Invalid { reason, .. } => CodecError::Invalid { what, reason },
        other => other,
    }
}

/// The duration of an Opus packet in 48 kHz samples, from its TOC byte and (code 3)
/// frame count byte (RFC 6716 §3.1–3.2). `None` when the packet is empty, malformed as
/// far as its framing can be checked, or longer than 120 ms.
pub fn packet_duration_48k(packet: &[u8]) -> Option<u32> {
    let &toc = packet.first()?;
    let config = toc >> 3;
    let frame: u32 = match config {
        0..=11 => [480, 960, 1920, 2880][usize::from(config % 4)],
        12..=15 => [480, 960][usize::from(config % 2)],
        _ => [120, 240, 480, 960][usize::from(config % 4)],
    };
    let frames: u32 = match toc & 3 {
        0 => 1,
        1 => {
            // Two frames of equal size: an even payload length (R3).
            if !(packet.len() - 1).is_multiple_of(2) {
                return None;
            }
            2
        }
        2 => {
            // The first frame's length must be readable and fit (R4).
            let (len, n) = frame_length(packet.get(1..)?)?;
            if 1 + n + len > packet.len() {
                return None;
            }
            2
        }
        _ => {
            let &count_byte = packet.get(1)?;
            let m = u32::from(count_byte & 0x3f);
            if m == 0 {
                return None;
            }
            if m * frame > 5760 {
                return None;
            }
            check_code3(packet, count_byte)?;
            m
        }
    };
    Some(frames * frame)
}

/// A frame length of RFC 6716 §3.2.1: one byte below 252, else two.
fn frame_length(data: &[u8]) -> Option<(usize, usize)> {
    let &b0 = data.first()?;
    if b0 < 252 {
        Some((usize::from(b0), 1))
    } else {
        let &b1 = data.get(1)?;
        Some((usize::from(b1) * 4 + usize::from(b0), 2))
    }
}

/// Checks the padding and frame lengths of a code 3 packet (RFC 6716 §3.2.5, R6/R7).
fn check_code3(packet: &[u8], count_byte: u8) -> Option<()> {
    let m = usize::from(count_byte & 0x3f);
    let vbr = count_byte & 0x80 != 0;
    let mut pos = 2;
    let mut padding = 0usize;
    if count_byte & 0x40 != 0 {
        loop {
            let &b = packet.get(pos)?;
            pos += 1;
            padding += if b == 255 { 254 } else { usize::from(b) };
            if b != 255 {
                break;
            }
        }
    }
    let mut lengths = 0usize;
    if vbr {
        for _ in 0..m - 1 {
            let (len, n) = frame_length(packet.get(pos..)?)?;
            pos += n;
            lengths += len;
        }
    }
    let data = packet.len().checked_sub(pos)?.checked_sub(padding)?;
    if vbr {
        (lengths <= data).then_some(())
    } else {
        (data % m == 0).then_some(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::h264::tests::{assert_truncations_fail, fuzz, invalid_with};
    use super::*;

    /// `dOps` FFmpeg wrote for libopus stereo (pre-skip 312, 48 kHz, family 0).
    const DOPS_STEREO: &[u8] = &[0x00, 0x02, 0x01, 0x38, 0x00, 0x00, 0xbb, 0x80, 0x00, 0x00, 0x00];
    /// `dOps` FFmpeg wrote for libopus 5.1 (family 1: 4 streams, 2 coupled).
    const DOPS_51: &[u8] = &[
        0x00, 0x06, 0x01, 0x38, 0x00, 0x00, 0xbb, 0x80, 0x00, 0x00, 0x01, 0x04, 0x02, 0x00, 0x04, 0x01, 0x02, 0x03,
        0x05,
    ];
    /// The Matroska CodecPrivate of the same 5.1 stream.
    const HEAD_51: &[u8] = &[
        0x4f, 0x70, 0x75, 0x73, 0x48, 0x65, 0x61, 0x64, 0x01, 0x06, 0x38, 0x01, 0x80, 0xbb, 0x00, 0x00, 0x00, 0x00,
        0x01, 0x04, 0x02, 0x00, 0x04, 0x01, 0x02, 0x03, 0x05,
    ];

    #[test]
    fn dops_and_opus_head() {
        let stereo = OpusHead::from_dops(DOPS_STEREO).unwrap();
        assert_eq!((stereo.channels, stereo.pre_skip, stereo.input_sample_rate), (2, 312, 48000));
        assert_eq!((stereo.stream_count, stereo.coupled_count, stereo.channel_mapping.len()), (1, 1, 0));
        assert_eq!(stereo.to_dops(), DOPS_STEREO);
        let from_dops = OpusHead::from_dops(DOPS_51).unwrap();
        let from_head = OpusHead::from_opus_head(HEAD_51).unwrap();
        assert_eq!(from_dops.channel_mapping, vec![0, 4, 1, 2, 3, 5]);
        assert_eq!((from_head.version, from_dops.version), (1, 0));
        assert_eq!(OpusHead { version: 1, ..from_dops.clone() }, from_head);
        assert_eq!(from_dops.to_dops(), DOPS_51);
        assert_eq!(from_dops.to_opus_head(), HEAD_51);
        assert_eq!(from_head.to_dops(), DOPS_51);
        // Negative gain survives both byte orders.
        let quiet = OpusHead { output_gain: -256, ..stereo };
        assert_eq!(OpusHead::from_dops(&quiet.to_dops()).unwrap().output_gain, -256);
        assert_eq!(OpusHead::from_opus_head(&quiet.to_opus_head()).unwrap().output_gain, -256);
        // Trailing bytes after the header are ignored (RFC 7845 §5.1).
        let mut longer = HEAD_51.to_vec();
        longer.extend([0x12, 0x54]);
        assert!(OpusHead::from_opus_head(&longer).is_ok());
    }

    #[test]
    fn rejections() {
        let err = |r: Result<OpusHead, CodecError>| r.unwrap_err();
        assert!(invalid_with(&err(OpusHead::from_dops(&[0; 11])), "channel count is 0"));
        let mut v = DOPS_STEREO.to_vec();
        v[0] = 1;
        assert!(matches!(err(OpusHead::from_dops(&v)), CodecError::Unsupported { .. }));
        let mut v = DOPS_STEREO.to_vec();
        v[1] = 3;
        let e = err(OpusHead::from_dops(&v));
        assert!(invalid_with(&e, "family 0") && matches!(e, CodecError::Invalid { what: "dOps", .. }));
        let mut v = DOPS_51.to_vec();
        v[12] = 5; // coupled > streams
        assert!(matches!(err(OpusHead::from_dops(&v)), CodecError::Invalid { .. }));
        let mut v = DOPS_51.to_vec();
        v[14] = 6; // mapping entry >= 6 decoded channels
        assert!(matches!(err(OpusHead::from_dops(&v)), CodecError::Invalid { .. }));
        let mut v = DOPS_51.to_vec();
        v[14] = 255; // silence is fine
        assert!(OpusHead::from_dops(&v).is_ok());
        let mut v = DOPS_51.to_vec();
        v[11] = 0; // no streams
        assert!(matches!(err(OpusHead::from_dops(&v)), CodecError::Invalid { .. }));
        let mut v = HEAD_51.to_vec();
        v[0] = b'o';
        assert!(invalid_with(&err(OpusHead::from_opus_head(&v)), "magic"));
        let mut v = HEAD_51.to_vec();
        v[8] = 16;
        assert!(matches!(err(OpusHead::from_opus_head(&v)), CodecError::Unsupported { .. }));
        let nine = OpusHead {
            channels: 9,
            channel_mapping: (0..9).collect(),
            stream_count: 9,
            ..OpusHead::from_dops(DOPS_51).unwrap()
        };
        assert!(nine.validate().is_err());
        assert!(OpusHead { mapping_family: 255, ..nine }.validate().is_ok());
        let family0 = OpusHead::from_dops(DOPS_STEREO).unwrap();
        assert!(OpusHead { channel_mapping: vec![0, 1], ..family0.clone() }.validate().is_ok());
        assert!(OpusHead { channel_mapping: vec![1, 0], ..family0 }.validate().is_err());
    }

    #[test]
    fn truncations_fail() {
        assert_truncations_fail(DOPS_STEREO, OpusHead::from_dops);
        assert_truncations_fail(DOPS_51, OpusHead::from_dops);
        assert_truncations_fail(HEAD_51, OpusHead::from_opus_head);
        assert_eq!(
            OpusHead::from_dops(&DOPS_51[..15]).unwrap_err(),
            CodecError::Truncated { what: "dOps", len: 15, need: 19 }
        );
    }

    #[test]
    fn head_fuzz() {
        fuzz(DOPS_51, OpusHead::from_dops);
        fuzz(HEAD_51, OpusHead::from_opus_head);
        fuzz(DOPS_51, |d| OpusHead::from_dops(d).map(|h| (h.to_dops(), h.to_opus_head())));
    }

    #[test]
    fn packet_durations() {
        // Config 1 (SILK NB 20 ms), code 0; config 3 (SILK 60 ms); hybrid 10 ms;
        // CELT 2.5 ms and 20 ms.
        assert_eq!(packet_duration_48k(&[1 << 3]), Some(960));
        assert_eq!(packet_duration_48k(&[3 << 3, 0xaa]), Some(2880));
        assert_eq!(packet_duration_48k(&[12 << 3]), Some(480));
        assert_eq!(packet_duration_48k(&[16 << 3]), Some(120));
        assert_eq!(packet_duration_48k(&[31 << 3, 1, 2]), Some(960));
        // Code 1: two equal frames need an even payload.
        assert_eq!(packet_duration_48k(&[(31 << 3) | 1, 1, 2]), Some(1920));
        assert_eq!(packet_duration_48k(&[(31 << 3) | 1, 1]), None);
        // Code 2: first frame length must fit (two-byte form included).
        assert_eq!(packet_duration_48k(&[(31 << 3) | 2, 1, 9, 9]), Some(1920));
        assert_eq!(packet_duration_48k(&[(31 << 3) | 2, 5, 9]), None);
        assert_eq!(packet_duration_48k(&[(31 << 3) | 2, 252]), None);
        // Code 3: count byte, CBR divisibility, VBR lengths, padding, the 120 ms cap.
        assert_eq!(packet_duration_48k(&[(31 << 3) | 3, 3, 1, 2, 3]), Some(2880));
        assert_eq!(packet_duration_48k(&[(31 << 3) | 3, 3, 1, 2]), None);
        assert_eq!(packet_duration_48k(&[(31 << 3) | 3, 0x82, 1, 7, 8]), Some(1920));
        assert_eq!(packet_duration_48k(&[(31 << 3) | 3, 0x82, 5, 7]), None);
        assert_eq!(packet_duration_48k(&[(31 << 3) | 3, 0x41, 2, 7, 0, 0]), Some(960));
        assert_eq!(packet_duration_48k(&[(31 << 3) | 3, 0x41, 5, 7]), None);
        assert_eq!(packet_duration_48k(&[(31 << 3) | 3, 6, 0, 0, 0, 0, 0, 0]), Some(5760));
        assert_eq!(packet_duration_48k(&[(31 << 3) | 3, 7, 0, 0, 0, 0, 0, 0, 0]), None);
        assert_eq!(packet_duration_48k(&[(3 << 3) | 3, 2, 0, 0]), Some(5760));
        assert_eq!(packet_duration_48k(&[(3 << 3) | 3, 3, 0, 0, 0]), None);
        assert_eq!(packet_duration_48k(&[(31 << 3) | 3, 0]), None);
        assert_eq!(packet_duration_48k(&[(31 << 3) | 3]), None);
        assert_eq!(packet_duration_48k(&[]), None);
        fuzz(&[(31 << 3) | 3, 0xc3, 255, 3, 4, 5, 6, 7, 8, 9, 10], packet_duration_48k);
    }
}
