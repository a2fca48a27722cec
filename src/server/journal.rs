//! An upload's journal: every byte a client sent, appended as CRC-framed records to one
//! file, so that a torn tail after a crash is found and cut, never replayed.
//!
//! Why a journal: the output recording is rewritten as fragments complete, so it cannot
//! say which input byte was the last one received. The journal can: an upload's durable
//! offset is the payload length of its journal's valid records, and replaying them into a
//! fresh [`Recording`](crate::Recording) gives, byte for byte, the output an uninterrupted
//! run would have written.
//!
//! ```text
//!  DATA/<id>/input.journal
//!  ┌────────── record 0 ──────────┬────────── record 1 ──────────┬─ ─ ─ ┬── torn tail ──┐
//!  │ magic │ len │ crc │ payload  │ magic │ len │ crc │ payload  │  ...  │ magic │ len │ …│
//!  └───────┴─────┴─────┴──────────┴───────┴─────┴─────┴──────────┴─ ─ ─ ┴───────┴─────┴──┘
//!    4 B     4 B   4 B   len B
//!
//!  record = magic u32 LE (0x4c4d4a31 "LMJ1") | len u32 LE | crc32c u32 LE over (len bytes ‖ payload) | payload
//!           0 < len ≤ MAX_RECORD (4 MiB); an append longer than that is split into several records
//! ```
//!
//! There is no file header: an empty file is an empty journal. The records are written
//! with plain `write(2)` calls and made durable by the [group committer](super::commit)
//! before the server acknowledges them.
//!
//! **Opening after a crash** ([`Journal::open`]) reads the file in large blocks and checks
//! every record: its magic, its length (bounded by [`MAX_RECORD`] and by what is left of
//! the file: a length is never trusted to size an allocation or a read) and its CRC.
//!
//! - A record that ends past the end of the file, or a bad record that no valid record
//!   follows, is a **torn tail**: the bytes of an append the process or the machine died
//!   in, never acknowledged. It is cut (`ftruncate` + `fsync`), and appends go on from there.
//! - A bad record that a valid record follows is **corruption in the middle**: bytes that
//!   were acknowledged are damaged. That is an [`InvalidInput`](crate::ErrorKind::InvalidInput)
//!   error with the record's offset, never a silent truncation (which would drop the valid
//!   records after it).
//!
//! After `kill -9` the page cache holds every completed `write`, so a tail can only be a
//! prefix of a record. After a power loss, unsynced pages of the last (unacknowledged)
//! appends may reach the disk out of order: a zeroed page followed by a valid record of
//! the same unacknowledged append is then reported as corruption too. That is the
//! conservative answer (the journal cannot tell it from acknowledged bytes lost by the
//! disk); the upload is then kept for an operator instead of being guessed at.
//!
//! **Disk cost.** 12 bytes per record (one record per append, one more per 4 MiB of a
//! longer append): for 1 s browser blobs of 100 KB-1 MB that is 0.001-0.01 %. The journal
//! is as large as the input received, so an upload takes about twice its input size
//! (journal + recording) while it runs; the journal is deleted once the recording is
//! finalized, unless `keep_journal` is set.

use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use crate::{Error, ErrorKind};

/// Largest payload of one record: longer appends are split into several records.
pub const MAX_RECORD: usize = 4 << 20;

/// The record magic, `"LMJ1"` read as a little-endian u32.
pub const MAGIC: u32 = 0x4c4d_4a31;

/// Bytes of a record before its payload: magic, length, CRC.
pub const RECORD_HEADER: usize = 12;

/// Bytes read at once when a journal is opened (holds a whole record at least twice).
const READ_BLOCK: usize = 2 * (MAX_RECORD + RECORD_HEADER);

/// The CRC of a record: crc32c over its length field (LE) and its payload.
fn record_crc(len: u32, payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&len.to_le_bytes()), payload)
}

/// The header of a record holding `payload`.
fn record_header(payload: &[u8]) -> [u8; RECORD_HEADER] {
    // `payload.len() <= MAX_RECORD < u32::MAX`: the callers split at MAX_RECORD.
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let mut header = [0u8; RECORD_HEADER];
    header[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    header[4..8].copy_from_slice(&len.to_le_bytes());
    header[8..12].copy_from_slice(&record_crc(len, payload).to_le_bytes());
    header
}

/// A record header's length and CRC, if its magic is right and its length within bounds:
/// not 0, at most [`MAX_RECORD`], at most `left` (the bytes of the file after the header).
fn parse_header(header: &[u8], left: u64) -> Option<(u32, u32)> {
    let word = |at: usize| u32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]]);
    let (magic, len, crc) = (word(0), word(4), word(8));
    (magic == MAGIC && len != 0 && len as usize <= MAX_RECORD && u64::from(len) <= left).then_some((len, crc))
}

/// One upload's journal file.
pub struct Journal {
    file: Arc<File>,
    path: PathBuf,
    /// Payload bytes appended (what the upload's offset becomes once synced).
    len: u64,
    /// File bytes: payload plus record headers (where the next record starts).
    end: u64,
    /// An append failed and its partial record could not be cut: no more appends.
    broken: bool,
}

impl Journal {
    /// Creates a new journal at `path` (refuses one that exists) and makes its directory
    /// entry durable.
    pub fn create(path: &Path) -> io::Result<Journal> {
        let file = OpenOptions::new().read(true).append(true).create_new(true).open(path)?;
        crate::io::sync_parent(path)?;
        Ok(Journal { file: Arc::new(file), path: path.to_path_buf(), len: 0, end: 0, broken: false })
    }

    /// Opens a journal after a restart: checks every record, cuts a torn or corrupt tail
    /// (truncate + fsync), and hands each payload to `each` in order (the replay).
    ///
    /// A damaged record that valid records follow is an error of kind
    /// [`InvalidInput`](crate::ErrorKind::InvalidInput) at the record's offset; an error of
    /// `each` stops the replay and is returned (the file is then left as it was).
    pub fn open(path: &Path, mut each: impl FnMut(Bytes) -> crate::Result<()>) -> crate::Result<Journal> {
        let io_err = |e: io::Error| Error::from(e).on_path(path);
        let file = OpenOptions::new().read(true).append(true).open(path).map_err(io_err)?;
        let size = file.metadata().map_err(io_err)?.len();
        let mut reader = BlockReader { file: &file, size, pos: 0, buf: BytesMut::new() };
        let mut len = 0u64;
        // Where the valid records end (the end of the file, or the first bad record).
        let end = loop {
            let at = reader.pos;
            let left = size - at;
            if left < RECORD_HEADER as u64 {
                break at;
            }
            let header = reader.take(RECORD_HEADER).map_err(io_err)?;
            let Some((rec_len, crc)) = parse_header(&header, left - RECORD_HEADER as u64) else {
                break at;
            };
            let payload = reader.take(rec_len as usize).map_err(io_err)?;
            if record_crc(rec_len, &payload) != crc {
                break at;
            }
            len += u64::from(rec_len);
            each(payload)?;
        };
        if end < size {
            // Torn tail or damage in the middle: whether a valid record follows tells. (Its
            // length field may be the damaged part, so the search starts at the next byte.)
            if let Some(valid) = find_valid_record(&file, end + 1, size).map_err(io_err)? {
                return Err(Error::msg(
                    ErrorKind::InvalidInput,
                    format!(
                        "journal {}: the record at byte {end} is damaged and a valid record follows it (at byte \
                         {valid}): acknowledged bytes are lost, the journal is not cut",
                        path.display()
                    ),
                )
                .at_offset(end)
                .on_path(path));
            }
            tracing::warn!(
                journal = %path.display(),
                at = end,
                cut = size - end,
                "journal: cutting a torn tail (an append that was never acknowledged)"
            );
            file.set_len(end).map_err(io_err)?;
            file.sync_all().map_err(io_err)?;
        }
        Ok(Journal { file: Arc::new(file), path: path.to_path_buf(), len, end, broken: false })
    }

    /// Appends `data` (written, not yet synced: [`Journal::file`] goes to the committer).
    ///
    /// On an error (a full disk...) the partial record is cut, so that the journal stays a
    /// sequence of valid records and the append may be retried.
    pub fn append(&mut self, data: &[u8]) -> io::Result<()> {
        if self.broken {
            return Err(io::Error::other(format!(
                "journal {}: an earlier append failed and could not be undone",
                self.path.display()
            )));
        }
        let (mut len, mut end) = (self.len, self.end);
        for payload in data.chunks(MAX_RECORD) {
            let header = record_header(payload);
            if let Err(e) = write_all_vectored(&self.file, &mut [IoSlice::new(&header), IoSlice::new(payload)]) {
                // Cut what this append wrote: a partial record followed by the records of a
                // later append would read as corruption in the middle.
                if self.file.set_len(self.end).is_err() {
                    self.broken = true;
                }
                return Err(e);
            }
            // Bounded by the file size, which the file system bounds.
            len = len.saturating_add(payload.len() as u64);
            end = end.saturating_add((RECORD_HEADER + payload.len()) as u64);
        }
        (self.len, self.end) = (len, end);
        Ok(())
    }

    /// Payload bytes appended.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was appended.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes of the journal file (payload and record headers).
    pub fn file_len(&self) -> u64 {
        self.end
    }

    /// The file, for [`commit::Committer::sync`](super::commit::Committer::sync).
    pub fn file(&self) -> &Arc<File> {
        &self.file
    }

    /// The journal's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// `write_all` of several slices with `writev`, resumed after short writes.
fn write_all_vectored(mut file: &File, mut bufs: &mut [IoSlice<'_>]) -> io::Result<()> {
    while !bufs.is_empty() {
        match file.write_vectored(bufs) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "failed to write the whole record")),
            Ok(n) => IoSlice::advance_slices(&mut bufs, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads a file front to back in large blocks and hands out pieces of them as [`Bytes`]
/// (which share the block: no copy per record).
struct BlockReader<'a> {
    file: &'a File,
    size: u64,
    /// File offset of `buf[0]`.
    pos: u64,
    buf: BytesMut,
}

impl BlockReader<'_> {
    /// The next `n` bytes; the caller made sure that `pos + n <= size`.
    fn take(&mut self, n: usize) -> io::Result<Bytes> {
        if self.buf.len() < n {
            // A new block, starting with what is left of the old one (less than a record).
            let start = self.pos + self.buf.len() as u64;
            let want = (self.size - start).min(READ_BLOCK.max(n) as u64) as usize;
            let mut block = BytesMut::with_capacity(self.buf.len() + want);
            block.extend_from_slice(&self.buf);
            let have = block.len();
            block.resize(have + want, 0);
            self.file.read_exact_at(&mut block[have..], start)?;
            self.buf = block;
        }
        self.pos += n as u64;
        Ok(self.buf.split_to(n).freeze())
    }
}

/// The offset of the first valid record (magic, bounded length, CRC) at or after `from`.
fn find_valid_record(file: &File, from: u64, size: u64) -> io::Result<Option<u64>> {
    let magic = MAGIC.to_le_bytes();
    let mut at = from;
    let mut block = vec![0u8; READ_BLOCK.min(usize::try_from(size.saturating_sub(from)).unwrap_or(READ_BLOCK))];
    while at.saturating_add(RECORD_HEADER as u64) <= size {
        let n = usize::try_from(size - at).unwrap_or(usize::MAX).min(block.len());
        file.read_exact_at(&mut block[..n], at)?;
        for i in 0..n.saturating_sub(3) {
            if block[i..i + 4] != magic {
                continue;
            }
            let offset = at + i as u64;
            if offset + RECORD_HEADER as u64 > size {
                return Ok(None);
            }
            let mut header = [0u8; RECORD_HEADER];
            file.read_exact_at(&mut header, offset)?;
            if let Some((len, crc)) = parse_header(&header, size - offset - RECORD_HEADER as u64) {
                let mut payload = vec![0u8; len as usize];
                file.read_exact_at(&mut payload, offset + RECORD_HEADER as u64)?;
                if record_crc(len, &payload) == crc {
                    return Ok(Some(offset));
                }
            }
        }
        // The next block overlaps this one by 3 bytes: a magic across the boundary is seen.
        at += (n.saturating_sub(3)).max(1) as u64;
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replay(path: &Path) -> crate::Result<(Journal, Vec<Bytes>)> {
        let mut got = Vec::new();
        let j = Journal::open(path, |b| {
            got.push(b);
            Ok(())
        })?;
        Ok((j, got))
    }

    /// Payloads of various sizes with recognizable bytes.
    fn pieces() -> Vec<Vec<u8>> {
        [1usize, 7, 100, 4096, 65_537, 3]
            .iter()
            .enumerate()
            .map(|(i, &n)| (0..n).map(|k| (k * 31 + i * 7) as u8).collect())
            .collect()
    }

    fn write_journal(path: &Path, pieces: &[Vec<u8>]) -> Journal {
        let mut j = Journal::create(path).unwrap();
        for p in pieces {
            j.append(p).unwrap();
        }
        j.file().sync_data().unwrap();
        j
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("input.journal");
        let pieces = pieces();
        let j = write_journal(&path, &pieces);
        let total: usize = pieces.iter().map(Vec::len).sum();
        assert_eq!(j.len(), total as u64);
        assert_eq!(j.file_len(), (total + RECORD_HEADER * pieces.len()) as u64);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), j.file_len());
        drop(j);
        let (mut j, got) = replay(&path).unwrap();
        assert_eq!(got, pieces);
        assert_eq!(j.len(), total as u64);
        // Appends go on after a reopen.
        j.append(b"more").unwrap();
        drop(j);
        let (_, got) = replay(&path).unwrap();
        assert_eq!(got.len(), pieces.len() + 1);
        assert_eq!(&got[pieces.len()][..], b"more");
        // `create` refuses an existing journal.
        assert_eq!(Journal::create(&path).err().map(|e| e.kind()), Some(io::ErrorKind::AlreadyExists));
    }

    #[test]
    fn empty_append_and_empty_journal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let mut j = Journal::create(&path).unwrap();
        j.append(&[]).unwrap();
        assert!(j.is_empty());
        drop(j);
        let (j, got) = replay(&path).unwrap();
        assert!(got.is_empty() && j.is_empty() && j.file_len() == 0);
    }

    #[test]
    fn long_append_is_split_at_max_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let data: Vec<u8> = (0..MAX_RECORD * 2 + 5).map(|i| (i % 251) as u8).collect();
        let j = write_journal(&path, std::slice::from_ref(&data));
        assert_eq!(j.file_len(), (data.len() + 3 * RECORD_HEADER) as u64);
        drop(j);
        let (_, got) = replay(&path).unwrap();
        assert_eq!(got.iter().map(Bytes::len).collect::<Vec<_>>(), [MAX_RECORD, MAX_RECORD, 5]);
        assert_eq!(got.concat(), data);
    }

    #[test]
    fn torn_tail_at_every_byte_of_the_last_record_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let whole = dir.path().join("whole");
        let pieces = pieces();
        let j = write_journal(&whole, &pieces);
        let full = std::fs::read(&whole).unwrap();
        let last = pieces.last().unwrap().len();
        let last_start = full.len() - RECORD_HEADER - last;
        let kept: u64 = pieces[..pieces.len() - 1].iter().map(|p| p.len() as u64).sum();
        drop(j);
        for cut in last_start..full.len() {
            let path = dir.path().join(format!("torn{cut}"));
            std::fs::write(&path, &full[..cut]).unwrap();
            let (mut j, got) = replay(&path).unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
            assert_eq!(got, pieces[..pieces.len() - 1], "cut at {cut}");
            assert_eq!(j.len(), kept);
            assert_eq!(std::fs::metadata(&path).unwrap().len(), last_start as u64, "cut at {cut}: not truncated");
            // The journal goes on cleanly from the cut.
            j.append(b"next").unwrap();
            drop(j);
            let (_, got) = replay(&path).unwrap();
            assert_eq!(&got.last().unwrap()[..], b"next");
        }
    }

    #[test]
    fn zero_filled_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let pieces = pieces();
        let j = write_journal(&path, &pieces);
        let end = j.file_len();
        drop(j);
        // What a file system can show after a power loss: the size grew, the data did not land.
        for zeros in [1u64, 11, 12, 4096, 1 << 20] {
            let f = OpenOptions::new().write(true).open(&path).unwrap();
            f.set_len(end + zeros).unwrap();
            drop(f);
            let (j, got) = replay(&path).unwrap();
            assert_eq!(got, pieces);
            assert_eq!(j.file_len(), end);
            assert_eq!(std::fs::metadata(&path).unwrap().len(), end, "{zeros} zeros not cut");
        }
    }

    #[test]
    fn damaged_last_record_is_cut_at_every_bit_of_its_header_and_payload() {
        // Guard: the CRC is checked. A flipped bit anywhere in the last record (none
        // follows it) is a torn tail: cut, never replayed.
        let dir = tempfile::tempdir().unwrap();
        let whole = dir.path().join("whole");
        let pieces = vec![b"first record".to_vec(), b"second".to_vec()];
        drop(write_journal(&whole, &pieces));
        let full = std::fs::read(&whole).unwrap();
        let last_start = RECORD_HEADER + pieces[0].len();
        for byte in last_start..full.len() {
            for bit in 0..8 {
                let mut damaged = full.clone();
                damaged[byte] ^= 1 << bit;
                let path = dir.path().join("damaged");
                std::fs::write(&path, &damaged).unwrap();
                let (_, got) = replay(&path).unwrap_or_else(|e| panic!("byte {byte} bit {bit}: {e}"));
                assert_eq!(got, pieces[..1], "byte {byte} bit {bit} replayed");
                assert_eq!(std::fs::metadata(&path).unwrap().len(), last_start as u64);
            }
        }
    }

    #[test]
    fn corrupt_middle_record_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let whole = dir.path().join("whole");
        let pieces = pieces();
        drop(write_journal(&whole, &pieces));
        let full = std::fs::read(&whole).unwrap();
        let second = RECORD_HEADER + pieces[0].len();
        let third = second + RECORD_HEADER + pieces[1].len();
        // A bit of the second record's payload, its CRC, its length (now past a valid
        // record boundary or over the file), its magic: each one is corruption, the
        // valid records after it stay, and the file is not cut.
        for at in [second + RECORD_HEADER + 3, second + 9, second + 4, second + 6, second] {
            let mut damaged = full.clone();
            damaged[at] ^= 0x40;
            let path = dir.path().join("damaged");
            std::fs::write(&path, &damaged).unwrap();
            let mut replayed = 0;
            let err = Journal::open(&path, |_| {
                replayed += 1;
                Ok(())
            })
            .err()
            .unwrap_or_else(|| panic!("damage at {at} not reported"));
            assert_eq!(err.kind(), crate::ErrorKind::InvalidInput, "{err}");
            assert_eq!(err.offset(), Some(second as u64), "{err}");
            assert_eq!(replayed, 1);
            assert_eq!(std::fs::read(&path).unwrap(), damaged, "the journal was changed");
        }
        // A zeroed stretch in the middle (a lost page) is corruption too.
        let mut damaged = full.clone();
        damaged[second..third].fill(0);
        let path = dir.path().join("zeroed");
        std::fs::write(&path, &damaged).unwrap();
        let err = replay(&path).err().expect("zeroed middle record not reported");
        assert_eq!((err.kind(), err.offset()), (crate::ErrorKind::InvalidInput, Some(second as u64)));
    }

    #[test]
    fn a_failing_replay_stops_the_scan_and_keeps_the_file() {
        // Guard: the scan can fail, and a failure leaves no half-cut journal behind.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let pieces = pieces();
        drop(write_journal(&path, &pieces));
        let mut torn = std::fs::read(&path).unwrap();
        torn.extend_from_slice(&MAGIC.to_le_bytes());
        std::fs::write(&path, &torn).unwrap();
        let mut seen = 0;
        let err = Journal::open(&path, |_| {
            seen += 1;
            if seen == 3 {
                Err(crate::Error::msg(crate::ErrorKind::InvalidInput, "the recording refused it"))
            } else {
                Ok(())
            }
        })
        .err()
        .expect("the replay error was swallowed");
        assert_eq!(err.to_string(), "the recording refused it");
        assert_eq!(seen, 3);
        assert_eq!(std::fs::read(&path).unwrap(), torn);
        // A missing journal is an i/o error naming the file.
        let err = replay(&dir.path().join("missing")).err().unwrap();
        assert_eq!(err.kind(), crate::ErrorKind::Io);
        assert!(err.path().is_some());
    }

    #[test]
    fn a_length_is_never_trusted() {
        // A header claiming 4 GiB (or MAX_RECORD + 1, or more than the file holds) is not
        // read: no huge allocation, a tail cut.
        let dir = tempfile::tempdir().unwrap();
        for len in [u32::MAX, MAX_RECORD as u32 + 1, 1000] {
            let path = dir.path().join(format!("j{len}"));
            let mut data = Vec::new();
            data.extend_from_slice(&MAGIC.to_le_bytes());
            data.extend_from_slice(&len.to_le_bytes());
            data.extend_from_slice(&0u32.to_le_bytes());
            data.extend_from_slice(&[7u8; 100]);
            std::fs::write(&path, &data).unwrap();
            let (j, got) = replay(&path).unwrap();
            assert!(got.is_empty() && j.file_len() == 0);
            assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
        }
    }

    #[test]
    fn crash_during_appends_then_replay_is_a_prefix() {
        // A child-free crash model: the file as a killed process leaves it is every prefix
        // of what it wrote. Each prefix replays to whole appends only, and to all of them
        // that were complete.
        let dir = tempfile::tempdir().unwrap();
        let whole = dir.path().join("whole");
        let pieces = pieces();
        drop(write_journal(&whole, &pieces));
        let full = std::fs::read(&whole).unwrap();
        let mut ends = vec![0usize];
        for p in &pieces {
            ends.push(ends.last().unwrap() + RECORD_HEADER + p.len());
        }
        let path = dir.path().join("prefix");
        for cut in (0..=full.len()).step_by(97).chain([full.len()]) {
            std::fs::write(&path, &full[..cut]).unwrap();
            let (_, got) = replay(&path).unwrap();
            let complete = ends.iter().filter(|&&e| e <= cut).count() - 1;
            assert_eq!(got, pieces[..complete], "cut at {cut}");
        }
    }
}
