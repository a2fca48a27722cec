//! An upload's journal: every byte a client sent, appended as CRC-framed records to one
//! file, so that a torn tail after a crash is found and cut, never replayed.
//!
//! OWNER: helper "store". Contract (keep the signatures):
//!
//! ```text
//!  record = magic u32 LE (0x4c4d4a31 "LMJ1") | len u32 LE | crc32c u32 LE over (len bytes ‖ payload) | payload
//! ```

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

/// Largest payload of one record: longer appends are split into several records.
pub const MAX_RECORD: usize = 4 << 20;

/// One upload's journal file.
pub struct Journal {
    file: Arc<File>,
    path: PathBuf,
    /// Payload bytes appended (what the upload's offset becomes once synced).
    len: u64,
}

impl Journal {
    /// Creates a new journal at `path` (refuses one that exists) and makes its directory
    /// entry durable.
    pub fn create(path: &Path) -> io::Result<Journal> {
        let file = std::fs::OpenOptions::new().create_new(true).append(true).open(path)?;
        crate::io::sync_parent(path)?;
        Ok(Journal { file: Arc::new(file), path: path.to_path_buf(), len: 0 })
    }

    /// Opens a journal after a restart: checks every record, cuts a torn or corrupt tail
    /// (truncate + fsync), and hands each payload to `each` in order (the replay).
    pub fn open(path: &Path, mut each: impl FnMut(Bytes) -> crate::Result<()>) -> crate::Result<Journal> {
        // Interim: no torn-tail check yet.
        let data = Bytes::from(std::fs::read(path).map_err(|e| crate::Error::from(e).on_path(path))?);
        let mut at = 0usize;
        let mut len = 0u64;
        while at + 12 <= data.len() {
            let n = u32::from_le_bytes(data[at + 4..at + 8].try_into().unwrap()) as usize;
            if at + 12 + n > data.len() {
                break;
            }
            each(data.slice(at + 12..at + 12 + n))?;
            len += n as u64;
            at += 12 + n;
        }
        let file =
            std::fs::OpenOptions::new().append(true).open(path).map_err(|e| crate::Error::from(e).on_path(path))?;
        file.set_len(at as u64).map_err(|e| crate::Error::from(e).on_path(path))?;
        Ok(Journal { file: Arc::new(file), path: path.to_path_buf(), len })
    }

    /// Appends `data` (written, not yet synced: [`Journal::file`] goes to the committer).
    pub fn append(&mut self, data: &[u8]) -> io::Result<()> {
        use std::io::Write;
        for part in data.chunks(MAX_RECORD) {
            let mut rec = Vec::with_capacity(12 + part.len());
            rec.extend_from_slice(&0x4c4d4a31u32.to_le_bytes());
            rec.extend_from_slice(&(part.len() as u32).to_le_bytes());
            rec.extend_from_slice(&0u32.to_le_bytes());
            rec.extend_from_slice(part);
            (&*self.file).write_all(&rec)?;
            self.len += part.len() as u64;
        }
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

    /// The file, for [`commit::Committer::sync`](super::commit::Committer::sync).
    pub fn file(&self) -> &Arc<File> {
        &self.file
    }

    /// The journal's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
