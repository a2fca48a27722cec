//! The output lock every livemux writer takes, and the wording of a failed write.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

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
    let dir = super::parent_dir(path).to_path_buf();
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::OpenOptions;

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
    fn the_mount_point_is_the_highest_directory_on_the_same_device() {
        assert_eq!(mount_point(Path::new("/")), PathBuf::from("/"));
        let proc_self = mount_point(Path::new("/proc/self"));
        assert_eq!(proc_self, PathBuf::from("/proc"));
    }
}
