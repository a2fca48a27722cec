//! `livemux append`: the IO side of [`crate::formats::mp4::append`].
//!
//! Takes an exclusive lock on TARGET (`flock`; an append that waited re-opens TARGET if the
//! one before it replaced the file), reads the layout and metadata boxes of every input,
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

use crate::formats::mp4::append::{
    self as planner, AppendError, AppendOptions, ChunkSlice, InputData, Mode, Plan, Step,
};
use crate::formats::mp4::file::FileError;

/// Bytes copied per read/write.
pub const COPY_BUFFER: usize = 1 << 20;

/// What to append to what.
#[derive(Clone, Debug, Default)]
pub struct AppendRequest {
    pub target: PathBuf,
    pub target_slice: ChunkSlice,
    pub sources: Vec<(PathBuf, ChunkSlice)>,
    pub options: AppendOptions,
    /// Sleep after every step (crash tests use it to kill the process between steps).
    pub step_pause: Option<Duration>,
}

/// What an append did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppendReport {
    pub len_before: u64,
    /// Every byte written (media, index, headers), to TARGET or to its replacement.
    pub bytes_written: u64,
    /// The plan carried out, without its steps.
    pub plan: Plan,
}

/// Why an append failed.
#[derive(Debug, thiserror::Error)]
pub enum AppendFileError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Plan(#[from] AppendError),
}

impl AppendFileError {
    pub fn is_usage(&self) -> bool {
        matches!(self, AppendFileError::Plan(e) if e.is_usage())
    }
}

fn io_err(path: &Path) -> impl Fn(io::Error) -> AppendFileError + '_ {
    move |source| AppendFileError::Io { path: path.to_path_buf(), source }
}

/// Opens TARGET for writing and takes its lock. If another append replaced TARGET while
/// this one waited, the lock is on the old file: open the new one and lock again.
pub fn lock_target(path: &Path) -> io::Result<File> {
    loop {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        flock_exclusive(&file)?;
        let (held, now) = (file.metadata()?, fs::metadata(path)?);
        if held.dev() == now.dev() && held.ino() == now.ino() {
            return Ok(file);
        }
    }
}

/// Waits for an exclusive `flock` on `file`, released when the file is closed. (std's
/// `File::lock` needs Rust 1.89, newer than this crate's minimum.)
fn flock_exclusive(file: &File) -> io::Result<()> {
    loop {
        // SAFETY: flock takes a file descriptor that `file` keeps open for the call.
        let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        if r == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

fn read_input(file: &mut File, path: &Path) -> Result<InputData, AppendFileError> {
    let len = file.metadata().map_err(io_err(path))?.len();
    InputData::read(file, len).map_err(|e| match e {
        FileError::Io(source) => AppendFileError::Io { path: path.to_path_buf(), source },
        FileError::Mp4(source) => AppendError::Mp4 { input: path.display().to_string(), source }.into(),
    })
}

/// Runs `steps` on `out`, reading copies from `inputs`. Returns the bytes written.
fn run_steps(out: &File, inputs: &[&File], steps: &[Step], pause: Option<Duration>) -> io::Result<u64> {
    let mut buf = vec![0u8; COPY_BUFFER];
    let mut written = 0;
    for step in steps {
        match step {
            Step::Copy { input, from, len, to } => {
                let mut done = 0u64;
                while done < *len {
                    let n = (len - done).min(buf.len() as u64) as usize;
                    inputs[*input].read_exact_at(&mut buf[..n], from + done)?;
                    out.write_all_at(&buf[..n], to + done)?;
                    done += n as u64;
                }
            }
            Step::Write { offset, data } => out.write_all_at(data, *offset)?,
            Step::Truncate { len } => out.set_len(*len)?,
            Step::Sync => out.sync_data()?,
        }
        written += step.written();
        if let Some(p) = pause {
            std::thread::sleep(p);
        }
    }
    Ok(written)
}

/// The temporary file a rewrite of `target` goes through: beside it, so that the rename
/// stays within one file system.
pub fn temp_path(target: &Path) -> PathBuf {
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    target.with_file_name(format!(".{name}.livemux-append.tmp"))
}

/// Appends the sources to TARGET.
pub fn append(req: &AppendRequest) -> Result<AppendReport, AppendFileError> {
    // The file itself, not a symlink to it: the rewrite renames within its directory.
    let target_path = &fs::canonicalize(&req.target).map_err(io_err(&req.target))?;
    let mut target = lock_target(target_path).map_err(io_err(target_path))?;
    // A rewrite killed before its rename leaves its temporary file: nobody else writes it
    // while the lock is held.
    let _ = fs::remove_file(temp_path(target_path));
    let target_data = read_input(&mut target, target_path)?;
    let mut files = Vec::with_capacity(req.sources.len());
    let mut datas = Vec::with_capacity(req.sources.len());
    for (path, _) in &req.sources {
        let mut f = File::open(path).map_err(io_err(path))?;
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
    let bytes_written = match &plan.mode {
        Mode::InPlace => run_steps(&target, &inputs, &plan.steps, req.step_pause).map_err(io_err(target_path))?,
        Mode::Rewrite(_) => {
            let temp = temp_path(target_path);
            let result = (|| -> io::Result<u64> {
                let out = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&temp)?;
                out.set_permissions(target.metadata()?.permissions())?;
                let n = run_steps(&out, &inputs, &plan.steps, req.step_pause)?;
                out.sync_all()?;
                fs::rename(&temp, target_path)?;
                let dir = match target_path.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p,
                    _ => Path::new("."),
                };
                File::open(dir)?.sync_all()?;
                Ok(n)
            })();
            if result.is_err() {
                let _ = fs::remove_file(&temp);
            }
            result.map_err(io_err(target_path))?
        }
    };
    Ok(AppendReport { len_before: target_data.len, bytes_written, plan: Plan { steps: Vec::new(), ..plan } })
}
