//! Reading a complete MP4 file by seeking: top-level box headers only, then the one box
//! that is needed. Works on any `Read + Seek` (a file, a cursor over bytes).

use std::io::{Read, Seek, SeekFrom};

use bytes::Bytes;

use super::boxes::{parse_header, BoxHeader, HeaderParse, Mp4Error, MAX_META_BOX};

/// Why a complete file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Mp4(#[from] Mp4Error),
}

/// The top-level boxes of a file of `len` bytes, by offset, read from their headers.
/// Stops at the first header that does not parse or a box that runs past the end (the
/// last entry then has `size` past `len`: a cut file).
pub fn top_level<R: Read + Seek>(r: &mut R, len: u64) -> Result<Vec<(u64, BoxHeader)>, FileError> {
    let mut out = Vec::new();
    let mut offset = 0u64;
    let mut head = [0u8; 32];
    // `offset` comes from declared sizes: compare by what is left, which cannot wrap.
    while offset < len && len - offset >= 8 {
        r.seek(SeekFrom::Start(offset))?;
        let n = (len - offset).min(head.len() as u64) as usize;
        r.read_exact(&mut head[..n])?;
        let header = match parse_header(&head[..n], offset)? {
            HeaderParse::Header(h) => h,
            HeaderParse::NeedMore => break,
        };
        let size = header.size.unwrap_or(len - offset);
        out.push((offset, header));
        offset = offset.saturating_add(size);
    }
    Ok(out)
}

/// Reads the first top-level `moov` of a complete file: `(offset, whole box)`.
pub fn read_moov<R: Read + Seek>(r: &mut R, len: u64) -> Result<Option<(u64, u32, Bytes)>, FileError> {
    let boxes = top_level(r, len)?;
    let Some(&(offset, header)) = boxes.iter().find(|(_, h)| h.fourcc.0 == *b"moov") else {
        return Ok(None);
    };
    let size = header.size.unwrap_or(len - offset);
    if size > MAX_META_BOX {
        return Err(Mp4Error::TooLarge { what: "'moov' box".into(), offset, size, limit: MAX_META_BOX }.into());
    }
    if offset + size > len {
        return Err(Mp4Error::invalid(
            "'moov' box",
            offset,
            format!("cut short: {size} bytes declared, file ends first"),
        )
        .into());
    }
    let mut data = vec![0u8; size as usize];
    r.seek(SeekFrom::Start(offset))?;
    r.read_exact(&mut data)?;
    Ok(Some((offset, header.header_len, data.into())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn a_size_that_runs_to_the_end_of_64_bits_stops_the_walk() {
        // A 64-bit size of 2^64 - 1 after an 8-byte box: the next offset saturates.
        let mut f = vec![0, 0, 0, 8, b'f', b't', b'y', b'p'];
        f.extend_from_slice(&[0, 0, 0, 1, b'm', b'd', b'a', b't']);
        f.extend_from_slice(&u64::MAX.to_be_bytes());
        f.extend_from_slice(&[0; 16]);
        let boxes = top_level(&mut Cursor::new(&f), f.len() as u64).unwrap();
        assert_eq!(boxes.len(), 2);
        assert_eq!(boxes[1].1.size, Some(u64::MAX));
    }
}
