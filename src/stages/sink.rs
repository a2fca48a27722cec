//! `sink`: writes fragments to a file or stdout, each with one write, made durable as
//! configured. [`FragmentKind::Finalize`] fragments are written in place, in order, each
//! durable before the next, when the output is a file; a stream skips them.
//!
//! Writes happen on a blocking thread with plain `write` calls: async file emulation would
//! split a fragment into several writes, and a crash between them would leave a torn
//! fragment in the middle of the file rather than at its end.
//!
//! Protecting what is already on disk:
//! - The output is opened when the first fragment is ready, never before: a run that fails
//!   earlier neither creates nor clobbers it. A file that did not exist when the run began
//!   but exists then (another program made it meanwhile) is not overwritten.
//! - A regular file is opened without `O_TRUNC`, locked (`flock(LOCK_EX|LOCK_NB)`, held until
//!   the run ends) and only then cut to 0 bytes, so a second writer onto a file that is being
//!   written fails with "being written by another process (locked)" and changes nothing.
//!   `livemux finalize` and `livemux append` refuse a locked file the same way.
//! - A write that fails (a full disk) is cut back to the end of the last complete fragment,
//!   and the error names the file system that is full.
//! - A closed stdout (the reader of the pipe went away) is an error ("output closed"), both
//!   when a write fails with `EPIPE` and, while no fragment is due, when polling the pipe shows
//!   that its reader is gone.

use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::mpsc;

use super::{Failure, StageContext, StageReport, StageResult};
use crate::formats::WriteStep;
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

/// Settings of `sink`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SinkConfig {
    /// A file, or `-` for stdout.
    pub path: PathBuf,
    /// Default: fsync for files, flush for stdout.
    pub durability: Option<Durability>,
}

impl SinkConfig {
    pub fn is_stdout(&self) -> bool {
        self.path.as_os_str() == "-"
    }

    pub fn durability(&self) -> Durability {
        self.durability.unwrap_or(if self.is_stdout() { Durability::Flush } else { Durability::Fsync })
    }
}

/// How often a pipe on stdout is checked for a reader that went away while no fragment is
/// being written.
pub const CLOSED_OUTPUT_POLL: Duration = Duration::from_millis(200);

/// Runs `sink`.
pub async fn run(ctx: StageContext, config: SinkConfig, input: mpsc::Receiver<Fragment>) -> StageResult {
    let ctx2 = ctx.clone();
    // Whether the output existed before any input was read: if it did, the caller chose to
    // replace it (`livemux -y`); if not, whatever appears there meanwhile is someone else's.
    let existed = !config.is_stdout() && std::fs::symlink_metadata(&config.path).is_ok();
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        write_all(&config, input, existed, &handle).map_err(|e| ctx2.error(Failure::Io(e)))
    })
    .await
    .map_err(|e| ctx.error(Failure::Other(format!("sink thread failed: {e}"))))?
}

/// The error of a write to a stream whose reader went away.
pub fn output_closed() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "output closed: the reader of stdout went away")
}

/// Whether `fd` is a pipe or a socket (whose reader can go away).
fn fd_is_pipe_or_socket(fd: i32) -> bool {
    // SAFETY: fstat fills the struct it is given; an invalid fd only returns an error.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return false;
    }
    let kind = st.st_mode & libc::S_IFMT;
    kind == libc::S_IFIFO || kind == libc::S_IFSOCK
}

/// Whether the reader of the pipe or socket `fd` has gone away (POLLERR/POLLHUP).
fn reader_gone(fd: i32) -> bool {
    let mut p = libc::pollfd { fd, events: 0, revents: 0 };
    // SAFETY: one pollfd, no wait.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    n > 0 && p.revents & (libc::POLLERR | libc::POLLHUP) != 0
}

/// How long [`lock_or_refuse`] retries a lock held elsewhere before refusing. A process that
/// forks (to run a child) holds a copy of every descriptor, and so of every `flock`, until
/// the child's `exec` closes them: a moment, not a writer.
pub const LOCK_GRACE: std::time::Duration = std::time::Duration::from_millis(250);

/// Takes an exclusive `flock` on `file` without waiting for a writer; a lock still held
/// elsewhere after [`LOCK_GRACE`] is an error that says so. The lock lasts as long as the
/// file stays open.
pub fn lock_or_refuse(file: &File, path: &Path) -> io::Result<()> {
    let start = std::time::Instant::now();
    loop {
        // SAFETY: flock takes a file descriptor that `file` keeps open for the call.
        let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if r == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EWOULDBLOCK) if start.elapsed() < LOCK_GRACE => {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
            Some(libc::EWOULDBLOCK) => return Err(locked_error(path)),
            _ => return Err(e),
        }
    }
}

/// The error for a file that another process holds locked.
pub fn locked_error(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::WouldBlock,
        format!("{} is being written by another process (locked)", path.display()),
    )
}

/// Whether `e` means that the disk (or the user's quota) is full.
pub fn is_no_space(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

/// Turns a "no space left" error from writing `path` into one that names the file system
/// that is full (its mount point and the bytes still free); other errors pass unchanged.
pub fn describe_write_error(path: &Path, e: io::Error) -> io::Error {
    if !is_no_space(&e) {
        return e;
    }
    if std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir()) {
        // A device (/dev/full) or a pipe: no file system to name.
        return io::Error::new(e.kind(), format!("no space left on device while writing {}", path.display()));
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
    let mount = mount_point(&dir);
    let free = free_bytes(&dir).map(|b| format!(" ({b} bytes free)")).unwrap_or_default();
    let (what, state) = if e.raw_os_error() == Some(libc::EDQUOT) {
        ("disk quota exceeded", "your quota on it is used up")
    } else {
        ("no space left on device", "it is full")
    };
    io::Error::new(
        e.kind(),
        format!(
            "{what} while writing {}: the file system of {} (mounted at {}): {state}{free}",
            path.display(),
            dir.display(),
            mount.display()
        ),
    )
}

/// The mount point of the file system holding `dir`: its highest ancestor on the same device.
fn mount_point(dir: &Path) -> PathBuf {
    let Ok(dev) = std::fs::metadata(dir).map(|m| m.dev()) else {
        return dir.to_path_buf();
    };
    let mut at = dir;
    while let Some(parent) = at.parent() {
        if std::fs::metadata(parent).map(|m| m.dev()).ok() != Some(dev) {
            break;
        }
        at = parent;
    }
    at.to_path_buf()
}

/// Bytes available to this user on the file system holding `dir`.
fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs fills the struct it is given from a NUL-terminated path.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

/// An open output: stdout, a regular file (locked), or another kind of file (a FIFO, a
/// device) written as a stream.
struct Output {
    file: File,
    regular: bool,
}

fn open_output(config: &SinkConfig, existed: bool) -> io::Result<Output> {
    if config.is_stdout() {
        use std::os::fd::AsFd;
        // A raw handle on fd 1: no line buffering, so a fragment is one write.
        let file = File::from(io::stdout().as_fd().try_clone_to_owned()?);
        return Ok(Output { file, regular: false });
    }
    let path = &config.path;
    let mut options = OpenOptions::new();
    options.write(true);
    if existed {
        options.create(true);
    } else {
        // It was not there when the run began: never replace what someone else made since.
        options.create_new(true);
    }
    let file = options.open(path).map_err(|e| {
        if e.kind() == io::ErrorKind::AlreadyExists {
            io::Error::new(
                e.kind(),
                format!("{} was created by another program during this run; it is left as it is", path.display()),
            )
        } else {
            e
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

/// Waits for the next fragment. While waiting, a pipe on stdout whose reader went away
/// ends the run with [`output_closed`].
fn next_fragment(
    handle: &tokio::runtime::Handle,
    input: &mut mpsc::Receiver<Fragment>,
    watch_stdout: bool,
) -> io::Result<Option<Fragment>> {
    if !watch_stdout {
        return Ok(input.blocking_recv());
    }
    loop {
        match handle.block_on(async { tokio::time::timeout(CLOSED_OUTPUT_POLL, input.recv()).await }) {
            Ok(next) => return Ok(next),
            Err(_) if reader_gone(1) => return Err(output_closed()),
            Err(_) => {}
        }
    }
}

/// Makes the file's directory entry durable too, once, so a power cut cannot lose the
/// file itself.
fn sync_parent(path: &Path) -> std::io::Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(parent)?.sync_all()
}

/// Most buffers one `writev` takes (Linux's IOV_MAX).
const IOV_MAX: usize = 1024;

/// Writes all parts with as few `writev` calls as the kernel allows: one for a fragment of
/// up to [`IOV_MAX`] parts that the kernel takes whole, which is the usual case.
fn write_parts(f: &mut File, parts: &[bytes::Bytes]) -> std::io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = parts.iter().filter(|p| !p.is_empty()).map(|p| IoSlice::new(p)).collect();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        let n = rest.len().min(IOV_MAX);
        match f.write_vectored(&rest[..n]) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(written) => IoSlice::advance_slices(&mut rest, written),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn write_all(
    config: &SinkConfig,
    mut input: mpsc::Receiver<Fragment>,
    existed: bool,
    handle: &tokio::runtime::Handle,
) -> io::Result<StageReport> {
    let watch_stdout = config.is_stdout() && fd_is_pipe_or_socket(1);
    let mut out: Option<Output> = None;
    let durability = config.durability();
    let mut first = true;
    // End of the last complete fragment in a regular file: a failed write is cut back to it.
    let mut complete = 0u64;
    // stdout redirected to a file is named by that file.
    let name = if config.is_stdout() {
        std::fs::read_link("/proc/self/fd/1").unwrap_or_else(|_| PathBuf::from("stdout"))
    } else {
        config.path.clone()
    };
    let name = name.as_path();
    let fail = |e: io::Error| -> io::Error {
        if e.kind() == io::ErrorKind::BrokenPipe {
            output_closed()
        } else {
            describe_write_error(name, e)
        }
    };
    while let Some(fragment) = next_fragment(handle, &mut input, watch_stdout)? {
        if fragment.kind == FragmentKind::Finalize {
            // In-place changes need a file that can seek; a stream is complete without them.
            if let Some(o) = out.as_ref().filter(|o| o.regular) {
                let step = WriteStep::Write { offset: fragment.offset, data: fragment.to_bytes() };
                let end = fragment.offset + fragment.len();
                crate::finalize::apply(&o.file, &[step], durability == Durability::Fsync).map_err(fail)?;
                complete = complete.max(end);
            }
            continue;
        }
        if fragment.is_empty() {
            continue;
        }
        if out.is_none() {
            out = Some(open_output(config, existed)?);
        }
        let o = out.as_mut().unwrap();
        let regular = o.regular;
        let written = write_parts(&mut o.file, &fragment.parts).and_then(|()| match durability {
            Durability::Fsync if regular => o.file.sync_data(),
            Durability::Fsync | Durability::Flush => o.file.flush(),
            Durability::None => Ok(()),
        });
        if let Err(e) = written {
            if regular {
                if complete == 0 && !existed {
                    // Nothing complete in a file this run made: leave no file at all.
                    let _ = std::fs::remove_file(&config.path);
                } else if o.file.set_len(complete).is_ok() {
                    // A torn fragment at the end is cut off: the file keeps every complete one.
                    let _ = o.file.sync_data();
                }
            }
            return Err(fail(e));
        }
        if regular {
            complete += fragment.len();
            if first && durability == Durability::Fsync {
                sync_parent(&config.path)?;
            }
        }
        first = false;
    }
    Ok(StageReport::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_a_locked_file_is_refused_with_its_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.mp4");
        let first = File::create(&path).unwrap();
        lock_or_refuse(&first, &path).unwrap();
        // flock locks belong to the open file: a second open conflicts, even in one process.
        let second = OpenOptions::new().write(true).open(&path).unwrap();
        let e = lock_or_refuse(&second, &path).unwrap_err();
        assert_eq!(e.to_string(), format!("{} is being written by another process (locked)", path.display()));
        drop(first);
        lock_or_refuse(&second, &path).unwrap();
    }

    #[test]
    fn a_full_disk_is_named_by_its_mount_point() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.mp4");
        let e = describe_write_error(&path, io::Error::from_raw_os_error(libc::ENOSPC));
        let text = e.to_string();
        assert!(text.starts_with(&format!("no space left on device while writing {}", path.display())), "{text}");
        assert!(text.contains("mounted at /"), "{text}");
        assert_eq!(e.raw_os_error(), None, "a new error with the same kind");
        assert_eq!(e.kind(), io::ErrorKind::StorageFull);
        // Other errors pass unchanged.
        let other = describe_write_error(&path, io::Error::from_raw_os_error(libc::EIO));
        assert_eq!(other.raw_os_error(), Some(libc::EIO));
    }

    #[test]
    fn a_pipe_whose_reader_closed_is_noticed() {
        let mut fds = [0i32; 2];
        // SAFETY: pipe fills two descriptors, closed below.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        assert!(fd_is_pipe_or_socket(fds[1]));
        assert!(!reader_gone(fds[1]));
        unsafe { libc::close(fds[0]) };
        assert!(reader_gone(fds[1]));
        unsafe { libc::close(fds[1]) };
    }

    #[test]
    fn the_mount_point_is_the_highest_directory_on_the_same_device() {
        assert_eq!(mount_point(Path::new("/")), PathBuf::from("/"));
        let proc_self = mount_point(Path::new("/proc/self"));
        assert_eq!(proc_self, PathBuf::from("/proc"));
    }
}
