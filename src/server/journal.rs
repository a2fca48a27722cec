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
        let _ = (path, &MAX_RECORD);
        todo!("store")
    }

    /// Opens a journal after a restart: checks every record, cuts a torn or corrupt tail
    /// (truncate + fsync), and hands each payload to `each` in order (the replay).
    pub fn open(path: &Path, each: impl FnMut(Bytes) -> crate::Result<()>) -> crate::Result<Journal> {
        let _ = (path, each);
        todo!("store")
    }

    /// Appends `data` (written, not yet synced: [`Journal::file`] goes to the committer).
    pub fn append(&mut self, data: &[u8]) -> io::Result<()> {
        let _ = data;
        todo!("store")
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
