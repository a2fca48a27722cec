//! Vorbis headers as Matroska's `A_VORBIS` CodecPrivate stores them: the identification,
//! comment and setup headers in one Xiph-laced block (Matroska codec specs; Vorbis I
//! specification §4.2.2 for the identification header).

use super::{AudioFormat, CodecError};

const WHAT: &str = "Vorbis CodecPrivate";
/// The three headers' byte ranges within the CodecPrivate, and the identification
/// header's format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VorbisPrivate {
    pub headers: [std::ops::Range<usize>; 3],
    pub format: AudioFormat,
}

/// Parses Xiph lacing of the 3 Vorbis headers and checks their packet types (1, 3, 5) and
/// the `vorbis` signature.
pub fn parse_private(data: &[u8]) -> Result<VorbisPrivate, CodecError> {
    let invalid = |reason: String| CodecError::Invalid { what: WHAT, reason };
    let truncated = |need: usize| CodecError::Truncated { what: WHAT, len: data.len(), need };
    let count = usize::from(*data.first().ok_or_else(|| truncated(1))?) + 1;
    if count != 3 {
        return Err(invalid(format!("{count} laced packets, 3 expected")));
    }
    let mut pos = 1usize;
    let mut sizes = [0usize; 2];
    for size in &mut sizes {
        loop {
            let b = *data.get(pos).ok_or_else(|| truncated(pos + 1))?;
            pos += 1;
            *size += usize::from(b);
            if *size > data.len() {
                return Err(truncated(*size));
            }
            if b != 255 {
                break;
            }
        }
    }
    let first = pos..pos + sizes[0];
    let second = first.end..first.end + sizes[1];
    if second.end > data.len() {
        return Err(truncated(second.end));
    }
    let third = second.end..data.len();
    for (n, range, kind) in [(1, &first, 1u8), (2, &second, 3), (3, &third, 5)] {
        let h = &data[range.clone()];
        if h.len() < 7 || h[0] != kind || &h[1..7] != b"vorbis" {
            return Err(invalid(format!("header {n} is not a Vorbis header of type {kind}")));
        }
    }
    let id = &data[first.clone()];
    if id.len() < 30 {
        return Err(CodecError::Truncated { what: "Vorbis identification header", len: id.len(), need: 30 });
    }
    let channels = u16::from(id[11]);
    let sample_rate = u32::from_le_bytes([id[12], id[13], id[14], id[15]]);
    if channels == 0 || sample_rate == 0 {
        return Err(invalid(format!("{channels} channels at {sample_rate} Hz")));
    }
    Ok(VorbisPrivate { headers: [first, second, third], format: AudioFormat { sample_rate, channels } })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::h264::tests::{assert_truncations_fail, fuzz};
    use super::*;

    pub(crate) fn private() -> Vec<u8> {
        let mut id = vec![1];
        id.extend_from_slice(b"vorbis");
        id.extend_from_slice(&[0, 0, 0, 0, 2, 0x44, 0xAC, 0, 0]);
        id.extend_from_slice(&[0; 12]);
        id.extend_from_slice(&[0xB8, 1]);
        let mut comment = vec![3];
        comment.extend_from_slice(b"vorbis");
        comment.extend_from_slice(&[0; 8]);
        let mut setup = vec![5];
        setup.extend_from_slice(b"vorbis");
        setup.extend_from_slice(&[0; 300]);
        let mut v = vec![2, id.len() as u8, comment.len() as u8];
        v.extend(id);
        v.extend(comment);
        v.extend(setup);
        v
    }

    #[test]
    fn headers_parse() {
        let p = private();
        let v = parse_private(&p).unwrap();
        assert_eq!(v.format, AudioFormat { sample_rate: 44_100, channels: 2 });
        assert_eq!(v.headers[0], 3..33);
        assert_eq!(v.headers[2].end, p.len());
        assert_truncations_fail(&p[..40], parse_private);
        assert!(parse_private(&p[..p.len() - 301]).is_err());
        fuzz(&p, parse_private);
    }
}
