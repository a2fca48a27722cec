//! [`FragmentWriter`]: a muxer's fragments into a file or stdout, each with one write, made
//! durable as configured. [`FragmentKind::Finalize`] fragments are written in place, in
//! order, each durable before the next, when the output is a file; a stream skips them. So
//! does it a fragment's [`IndexUpdate`](crate::IndexUpdate): in a file, `prepare` goes
//! before the fragment, inside its durability barrier, and `publish` after it.
//!
//! Plain blocking `write` calls: async file emulation would split a fragment into several
//! writes, and a crash between them would leave a torn fragment in the middle of the file
//! rather than at its end.
//!
//! Protecting what is already on disk:
//! - The output is opened when the first fragment is ready, never before: a run that fails
//!   earlier neither creates nor clobbers it. A file that did not exist when the writer was
//!   made but exists then (another program made it meanwhile) is never overwritten, even
//!   when overwriting is allowed: that covers only a file the caller saw.
//! - A regular file is opened without `O_TRUNC`, locked (`flock(LOCK_EX|LOCK_NB)`, held until
//!   the writer is dropped) and only then cut to 0 bytes, so a second writer onto a file that
//!   is being written fails with "being written by another process (locked)" and changes
//!   nothing. `livemux finalize` and `livemux append` refuse a locked file the same way.
//! - A write that fails (a full disk) is cut back to the end of the last complete fragment,
//!   and the error names the file system that is full. If nothing was complete in a file the
//!   writer made, the file is removed. Either way the writer is then failed: every later
//!   write is refused without touching the file, which keeps what it held after the failure.

use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::{describe_write_error, lock_or_refuse, Apply, Barriers, WriteStep};
use crate::error::{Error, ErrorKind};
use crate::model::{Fragment, FragmentKind};

/// What happens after each fragment is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Leave it to the OS.
    None,
    /// Hand it to the OS at once (what a pipe reader needs to see it).
    Flush,
    /// Wait until it is on stable storage (survives a power cut).
    Fsync,
}

impl Durability {
    /// Its name, as the command line and pipeline files spell it.
    pub fn name(self) -> &'static str {
        match self {
            Durability::None => "none",
            Durability::Flush => "flush",
            Durability::Fsync => "fsync",
        }
    }
}

impl std::str::FromStr for Durability {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(Durability::None),
            "flush" => Ok(Durability::Flush),
            "fsync" => Ok(Durability::Fsync),
            _ => Err(format!("unknown durability '{s}' (expected none, flush or fsync)")),
        }
    }
}

/// The error of a write to a stream whose reader went away.
pub fn output_closed() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "output closed: the reader of stdout went away")
}

/// Writes a muxer's [`Fragment`]s to a file (or stdout, for the path `-`) as they come:
/// media fragments one after another, each with one write; [`FragmentKind::Finalize`]
/// fragments in place at their offsets. See the module doc for what it protects.
///
/// ```
/// # fn demo(fragments: Vec<livemux::Fragment>) -> livemux::Result<()> {
/// use livemux::io::{Durability, FragmentWriter};
/// let mut out = FragmentWriter::create("out.mp4").with_durability(Durability::Flush).with_overwrite(true);
/// for f in &fragments {
///     out.write(f)?;
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct FragmentWriter {
    path: PathBuf,
    /// What errors name: the path, or the file stdout is redirected to.
    name: PathBuf,
    durability: Durability,
    overwrite: bool,
    /// Whether the file existed when the writer was made.
    existed: bool,
    out: Option<Output>,
    /// End of the last complete fragment in a regular file: a failed write is cut back to it.
    complete: u64,
    /// Where the next media fragment goes when it follows the last one.
    pos: u64,
    first: bool,
    /// The kind of the error that failed the writer: later writes are refused with it.
    failed: Option<io::ErrorKind>,
}

/// An open output: stdout, a regular file (locked), or another kind of file (a FIFO, a
/// device) written as a stream.
#[derive(Debug)]
struct Output {
    file: File,
    regular: bool,
}

impl FragmentWriter {
    /// A writer of `path` (`-`: stdout) that opens nothing yet. Durability: fsync for a
    /// file, flush for stdout. Overwrite: whether `path` exists now (what the caller saw and
    /// chose to replace); a file that appears later is someone else's and is refused.
    pub fn create(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let stdout = path.as_os_str() == "-";
        let existed = !stdout && std::fs::symlink_metadata(&path).is_ok();
        // stdout redirected to a file is named by that file.
        let name = if stdout {
            std::fs::read_link("/proc/self/fd/1").unwrap_or_else(|_| PathBuf::from("stdout"))
        } else {
            path.clone()
        };
        FragmentWriter {
            durability: if stdout { Durability::Flush } else { Durability::Fsync },
            path,
            name,
            overwrite: existed,
            existed,
            out: None,
            complete: 0,
            pos: 0,
            first: true,
            failed: None,
        }
    }

    /// What happens after each fragment is written.
    pub fn with_durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Whether a file at the path when the writer was made may be replaced (`true`) or is
    /// refused (`false`) when the first fragment is written. A file that appears later is
    /// refused either way.
    pub fn with_overwrite(mut self, overwrite: bool) -> Self {
        self.overwrite = overwrite;
        self
    }

    /// Whether the output is stdout.
    pub fn is_stdout(&self) -> bool {
        self.path.as_os_str() == "-"
    }

    /// Bytes of complete fragments in a regular file so far (0 for a stream).
    pub fn complete_len(&self) -> u64 {
        self.complete
    }

    /// Writes `fragment`: a media fragment after the previous ones (opening the output for
    /// the first), a [`FragmentKind::Finalize`] fragment in place (skipped on a stream).
    pub fn write(&mut self, fragment: &Fragment) -> crate::Result<()> {
        self.write_io(fragment).map_err(|e| output_error(e, &self.name))
    }

    /// Whether a write failed: every later one is refused.
    pub fn has_failed(&self) -> bool {
        self.failed.is_some()
    }

    /// [`FragmentWriter::write`] with the `io::Error` (already worded for the user: a full
    /// disk names its file system, a closed pipe says "output closed"). After an error the
    /// writer is failed and refuses every later write without touching the output.
    pub(crate) fn write_io(&mut self, fragment: &Fragment) -> io::Result<()> {
        if let Some(kind) = self.failed {
            return Err(self.refused(kind));
        }
        let written = self.write_fragment(fragment);
        if let Err(e) = &written {
            self.failed = Some(e.kind());
        }
        written
    }

    /// The error of a write after a failed one.
    fn refused(&self, kind: io::ErrorKind) -> io::Error {
        let what = match &self.out {
            None => "no fragment was kept".to_string(),
            Some(o) if o.regular => format!("the file holds every fragment up to byte {}", self.complete),
            Some(_) => "nothing more is written to this stream".to_string(),
        };
        io::Error::new(kind, format!("an earlier write failed; {what}"))
    }

    fn write_fragment(&mut self, fragment: &Fragment) -> io::Result<()> {
        if fragment.kind == FragmentKind::Finalize {
            return self.write_in_place(fragment);
        }
        if fragment.is_empty() {
            return Ok(());
        }
        if self.out.is_none() {
            self.out = Some(self.open()?);
        }
        let o = self.out.as_mut().expect("opened above");
        let regular = o.regular;
        let written = (|| {
            if regular {
                for (at, data) in &fragment.index.prepare {
                    o.file.write_all_at(data, *at)?;
                }
                if fragment.offset != self.pos {
                    o.file.seek(SeekFrom::Start(fragment.offset))?;
                }
            }
            write_parts(&mut o.file, &fragment.parts)?;
            match self.durability {
                Durability::Fsync if regular => o.file.sync_data()?,
                Durability::Fsync | Durability::Flush => o.file.flush()?,
                Durability::None => {}
            }
            // Made durable by the next fragment's barrier: until then the index counts
            // one fragment less, which is valid.
            if regular {
                for (at, data) in &fragment.index.publish {
                    o.file.write_all_at(data, *at)?;
                }
            }
            Ok(())
        })();
        if let Err(e) = written {
            if regular {
                if self.complete == 0 && !self.existed {
                    // Nothing complete in a file this writer made: leave no file at all, and
                    // keep no descriptor on the removed file.
                    let _ = std::fs::remove_file(&self.path);
                    self.out = None;
                } else if o.file.set_len(self.complete).is_ok() {
                    // A torn fragment at the end is cut off: the file keeps every complete one.
                    let _ = o.file.sync_data();
                }
            }
            return Err(self.fail(e));
        }
        if regular {
            self.pos = fragment.offset + fragment.len();
            self.complete = self.complete.max(self.pos);
            if self.first && self.durability == Durability::Fsync {
                super::sync_parent(&self.path)?;
            }
        }
        self.first = false;
        Ok(())
    }

    /// An in-place change at a clean stop: needs a file that can seek; a stream is complete
    /// without it.
    fn write_in_place(&mut self, fragment: &Fragment) -> io::Result<()> {
        let Some(o) = self.out.as_ref().filter(|o| o.regular) else { return Ok(()) };
        let barriers = if self.durability == Durability::Fsync { Barriers::EachStep } else { Barriers::Never };
        let step = WriteStep::from_fragment(fragment);
        Apply::new(barriers).run(&o.file, std::slice::from_ref(&step)).map_err(|e| self.fail(e))?;
        self.complete = self.complete.max(fragment.offset + fragment.len());
        Ok(())
    }

    fn fail(&self, e: io::Error) -> io::Error {
        if e.kind() == io::ErrorKind::BrokenPipe {
            output_closed()
        } else {
            describe_write_error(&self.name, e)
        }
    }

    fn open(&self) -> io::Result<Output> {
        if self.is_stdout() {
            use std::os::fd::AsFd;
            // A raw handle on fd 1: no line buffering, so a fragment is one write.
            let file = File::from(io::stdout().as_fd().try_clone_to_owned()?);
            return Ok(Output { file, regular: false });
        }
        let path = &self.path;
        let mut options = OpenOptions::new();
        options.write(true);
        if self.overwrite && self.existed {
            options.create(true);
        } else {
            // Never replace what someone else made since, or what the caller keeps.
            options.create_new(true);
        }
        let file = options.open(path).map_err(|e| {
            if e.kind() != io::ErrorKind::AlreadyExists {
                e
            } else if self.existed {
                io::Error::new(e.kind(), format!("{} exists and overwriting it was not allowed", path.display()))
            } else {
                io::Error::new(
                    e.kind(),
                    format!("{} was created by another program during this run; it is left as it is", path.display()),
                )
            }
        })?;
        let kind = file.metadata()?.file_type();
        if !kind.is_file() {
            // A FIFO, a character device (/dev/null): a stream, no lock, nothing to cut.
            return Ok(Output { file, regular: false });
        }
        // Lock first, cut after: a file that another writer holds is left untouched.
        lock_or_refuse(&file, path)?;
        file.set_len(0)?;
        Ok(Output { file, regular: true })
    }
}

/// The public error for an output error: refused (exists, locked), closed, or I/O.
fn output_error(e: io::Error, path: &Path) -> Error {
    let kind = match e.kind() {
        io::ErrorKind::BrokenPipe => ErrorKind::OutputClosed,
        io::ErrorKind::AlreadyExists | io::ErrorKind::WouldBlock => ErrorKind::OutputRefused,
        _ => ErrorKind::Io,
    };
    Error::from_repr(kind, e).on_path(path)
}

/// Most buffers one `writev` takes (Linux's IOV_MAX).
const IOV_MAX: usize = 1024;

/// Writes all parts with as few `writev` calls as the kernel allows: one for a fragment of
/// up to [`IOV_MAX`] parts that the kernel takes whole, which is the usual case.
fn write_parts(f: &mut File, parts: &[bytes::Bytes]) -> io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = parts.iter().filter(|p| !p.is_empty()).map(|p| IoSlice::new(p)).collect();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        let n = rest.len().min(IOV_MAX);
        match f.write_vectored(&rest[..n]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(written) => IoSlice::advance_slices(&mut rest, written),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
