//! `livemux append`: the IO side of [`crate::formats::mp4::append`].
//!
//! Locks TARGET in two ways. Appends queue behind each other on an OFD record lock
//! (`fcntl(F_OFD_SETLKW)` on the whole file; an append that waited re-opens TARGET if the one
//! before it replaced the file). Then, without waiting, it takes the `flock` that every livemux
//! writer holds on its output (`remux`, `finalize`, `append`): if some other writer holds it
//! (a running `livemux remux` is still writing TARGET), the append is refused, since waiting
//! for a recording to end could take hours and appending to a file in mid-write would break
//! it. The two kinds of lock are independent on Linux, which is what tells "another append"
//! (wait) from "another writer" (refuse). Then it reads the layout and metadata boxes of every input,
//! asks the planner for the steps, and runs them: in place on TARGET with an fsync at every
//! barrier, or into a temporary file beside TARGET that is fsynced, renamed over TARGET, and
//! made durable by an fsync of the directory. Media is copied range by range through one
//! bounded buffer, never held whole in memory.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::formats::mp4::append::{self as planner, AppendError, AppendOptions, ChunkSlice, InputData, Mode, Plan};
use crate::formats::mp4::file::FileError;
use crate::events::{emit, step_event, Observer};
use crate::io::{describe_write_error, lock_or_refuse, Apply, Barriers, WriteStep};

/// What to append to what.
#[derive(Clone, Debug, Default)]
pub struct AppendRequest {
    /// The file appended to, in place or by a rewrite renamed over it.
    pub target: PathBuf,
    /// The chunks of TARGET kept (only chunks at its end may be dropped).
    pub target_slice: ChunkSlice,
    /// The files appended, in order, each with the chunks taken from it.
    pub sources: Vec<(PathBuf, ChunkSlice)>,
    /// Index room to reserve, sample entries for differing parameters.
    pub options: AppendOptions,
    /// Sleep after every step (crash tests use it to kill the process between steps).
    #[doc(hidden)]
    pub step_pause: Option<Duration>,
}

/// What an append did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppendReport {
    /// Length of TARGET before.
    pub len_before: u64,
    /// Every byte written (media, index, headers), to TARGET or to its replacement.
    pub bytes_written: u64,
    /// The plan carried out, without its steps (its vocabulary is internal).
    #[doc(hidden)]
    pub plan: Plan,
}

/// Why an append failed.
#[derive(Debug, thiserror::Error)]
pub enum AppendFileError {
    /// Reading or writing a file failed (a full disk names its file system; a TARGET another
    /// writer holds locked is refused with `WouldBlock`).
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The planner refused: nothing was written.
    #[error(transparent)]
    Plan(#[from] AppendError),
    /// An input that is not MP4/MOV (a WebM, a Matroska file...).
    #[error("{}: {what}: append takes MP4/MOV files only (remux it to MP4 first: livemux remux IN -o OUT.mp4)", path.display())]
    NotMp4 {
        /// The file.
        path: PathBuf,
        /// What it is instead.
        what: String,
    },
}

impl AppendFileError {
    /// A mistake in the command line (a bad slice, a non-MP4 input) rather than in the files.
    pub fn is_usage(&self) -> bool {
        matches!(self, AppendFileError::Plan(e) if e.is_usage()) || matches!(self, AppendFileError::NotMp4 { .. })
    }

    /// Whether TARGET was left as it was (the error came before any write, or the writes
    /// were undone).
    pub fn target_unchanged(&self) -> bool {
        !matches!(self, AppendFileError::Io { .. })
    }
}

fn io_err(path: &Path) -> impl Fn(io::Error) -> AppendFileError + '_ {
    move |source| AppendFileError::Io { path: path.to_path_buf(), source }
}

/// Opens TARGET for writing and takes its locks (see the module doc): waits for other
/// appends, refuses a file another writer holds. If another append replaced TARGET while
/// this one waited, the lock is on the old file: open the new one and lock again.
pub fn lock_target(path: &Path) -> io::Result<File> {
    loop {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        wait_for_other_appends(&file)?;
        let (held, now) = (file.metadata()?, fs::metadata(path)?);
        if held.dev() == now.dev() && held.ino() == now.ino() {
            lock_or_refuse(&file, path)?;
            return Ok(file);
        }
    }
}

/// Waits for an exclusive OFD record lock on the whole of `file`, released when the file is
/// closed. Only appends take it.
fn wait_for_other_appends(file: &File) -> io::Result<()> {
    // SAFETY: an all-zero `flock` struct is valid; the fields that matter are set below.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = libc::F_WRLCK as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    // l_start 0, l_len 0: the whole file, however long it grows; l_pid must be 0.
    loop {
        // SAFETY: fcntl takes a descriptor that `file` keeps open and a valid flock struct.
        let r = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLKW, &lock) };
        if r == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Refuses an input that is not MP4/MOV, naming what it is.
fn check_mp4(file: &File, path: &Path) -> Result<(), AppendFileError> {
    use crate::formats::{sniff, ContainerKind, SNIFF_LEN};
    let mut head = [0u8; SNIFF_LEN];
    let mut n = 0;
    while n < head.len() {
        match file.read_at(&mut head[n..], n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_err(path)(e)),
        }
    }
    match sniff(&head[..n]) {
        Some(ContainerKind::Matroska) => {
            Err(AppendFileError::NotMp4 { path: path.to_path_buf(), what: "a Matroska/WebM file".into() })
        }
        _ => Ok(()),
    }
}

fn read_input(file: &mut File, path: &Path) -> Result<InputData, AppendFileError> {
    let len = file.metadata().map_err(io_err(path))?.len();
    InputData::read(file, len).map_err(|e| match e {
        FileError::Io(source) => AppendFileError::Io { path: path.to_path_buf(), source },
        FileError::Mp4(source) => AppendError::Mp4 { input: path.display().to_string(), source }.into(),
    })
}

/// The temporary file a rewrite of `target` goes through: beside it, so that the rename
/// stays within one file system.
pub fn temp_path(target: &Path) -> PathBuf {
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    target.with_file_name(format!(".{name}.livemux-append.tmp"))
}

/// Appends the sources to TARGET.
pub fn append(req: &AppendRequest) -> crate::Result<AppendReport> {
    append_file(req, None).map_err(Into::into)
}

/// [`append`], giving `observer` a [`RunEvent::FinalizeStep`](crate::events::RunEvent::FinalizeStep)
/// after each step of the plan (durable at the next `sync` step).
pub fn append_observed(req: &AppendRequest, observer: Option<&Observer>) -> crate::Result<AppendReport> {
    append_file(req, observer).map_err(Into::into)
}

/// [`append`] with the error as append words it, for the command line (usage or not,
/// TARGET changed or not).
pub(crate) fn append_file(req: &AppendRequest, observer: Option<&Observer>) -> Result<AppendReport, AppendFileError> {
    // The file itself, not a symlink to it: the rewrite renames within its directory.
    let target_path = &fs::canonicalize(&req.target).map_err(io_err(&req.target))?;
    let mut target = lock_target(target_path).map_err(io_err(target_path))?;
    check_mp4(&target, &req.target)?;
    // A rewrite killed before its rename leaves its temporary file: nobody else writes it
    // while the lock is held.
    let _ = fs::remove_file(temp_path(target_path));
    let target_data = read_input(&mut target, target_path)?;
    let mut files = Vec::with_capacity(req.sources.len());
    let mut datas = Vec::with_capacity(req.sources.len());
    for (path, _) in &req.sources {
        let mut f = File::open(path).map_err(io_err(path))?;
        check_mp4(&f, path)?;
        datas.push(read_input(&mut f, path)?);
        files.push(f);
    }
    let names: Vec<String> = req.sources.iter().map(|(p, _)| p.display().to_string()).collect();
    let sources: Vec<planner::SourceInput<'_>> = datas
        .iter()
        .zip(&names)
        .zip(&req.sources)
        .map(|((data, name), (_, slice))| planner::SourceInput { data, name, slice: *slice })
        .collect();
    let target_name = req.target.display().to_string();
    let plan = planner::plan(&target_data, &target_name, req.target_slice, &sources, &req.options)?;

    let mut inputs: Vec<&File> = vec![&target];
    inputs.extend(files.iter());
    let steps = plan.steps.len();
    let on_step = |i: usize, step: &WriteStep| emit(observer, step_event(target_path, i, steps, step));
    let bytes_written = match &plan.mode {
        Mode::InPlace => {
            // Media goes past everything TARGET's index references, before the switch: a
            // step that failed there (a full disk) is undone by cutting TARGET back.
            let run = Apply::new(Barriers::AtSyncSteps).inputs(&inputs).pause(req.step_pause).on_step(&on_step);
            run.run(&target, &plan.steps).map_err(|e| io_err(target_path)(describe_write_error(target_path, e)))?
        }
        Mode::Rewrite(_) => {
            let temp = temp_path(target_path);
            let result = (|| -> io::Result<u64> {
                let out = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&temp)?;
                // Once renamed over TARGET, the new file is locked until this append ends.
                lock_or_refuse(&out, &temp)?;
                out.set_permissions(target.metadata()?.permissions())?;
                let run = Apply::new(Barriers::AtSyncSteps).inputs(&inputs).pause(req.step_pause).on_step(&on_step);
                let n = run.run(&out, &plan.steps)?;
                out.sync_all()?;
                crate::io::rename_durably(&temp, target_path)?;
                Ok(n)
            })();
            if result.is_err() {
                let _ = fs::remove_file(&temp);
            }
            result.map_err(|e| io_err(target_path)(describe_write_error(target_path, e)))?
        }
    };
    Ok(AppendReport { len_before: target_data.len, bytes_written, plan: Plan { steps: Vec::new(), ..plan } })
}
