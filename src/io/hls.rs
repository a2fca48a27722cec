//! Writes an HLS directory: carries out the [`HlsWrite`]s of an [`HlsPackager`] in order.
//!
//! - The directory is created if missing and locked (`flock` on `DIR/.livemux.lock`, held
//!   while the writer lives): two recordings never write one directory.
//! - A segment or init file is created with `O_EXCL` (an existing file is never replaced),
//!   written whole and, with [`Durability::Fsync`] (the default for files), fsynced.
//! - A playlist is written to a hidden temp file, fsynced, renamed over the old one and the
//!   directory fsynced: after a crash it is the old playlist or the new one, and every file
//!   it names was durable before it.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::{lock_or_refuse, rename_durably, Durability};
use crate::formats::hls::{media_file, HlsPackager, HlsWrite, MEDIA_PLAYLIST, MULTIVARIANT};
use crate::model::Fragment;

/// The lock file of an HLS directory.
pub const LOCK_FILE: &str = ".livemux.lock";

/// An HLS output directory being written.
#[derive(Debug)]
pub struct HlsWriter {
    dir: PathBuf,
    packager: HlsPackager,
    durability: Durability,
    _lock: File,
}

impl HlsWriter {
    /// Opens `path` for writing: a directory, or `DIR/NAME.m3u8` (the multivariant
    /// playlist's name; `index.m3u8` otherwise). An earlier run's playlist there is continued.
    pub fn open(path: &Path, durability: Durability) -> io::Result<HlsWriter> {
        Self::open_with(path, durability, false)
    }

    /// Like [`HlsWriter::open`]; with `fresh`, the HLS files an earlier run left there
    /// (its playlists, init and media segments; nothing else) are removed first, once
    /// the directory is locked: a replay that writes the same recording again from its
    /// start (`livemux serve` after a restart).
    pub fn open_with(path: &Path, durability: Durability, fresh: bool) -> io::Result<HlsWriter> {
        let (dir, multivariant) = split_path(path);
        Self::open_dir(&dir, &multivariant, durability, fresh).map_err(|e| in_dir(&dir, e))
    }

    fn open_dir(dir: &Path, multivariant: &str, durability: Durability, fresh: bool) -> io::Result<HlsWriter> {
        if multivariant == MEDIA_PLAYLIST {
            let why = format!("{MEDIA_PLAYLIST} is the media playlist's name: name the playlist otherwise");
            return Err(io::Error::new(io::ErrorKind::InvalidInput, why));
        }
        let dir = dir.to_path_buf();
        std::fs::create_dir_all(&dir)?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path)?;
        lock_or_refuse(&lock, &dir)?;
        if fresh {
            for entry in std::fs::read_dir(&dir)? {
                let name = entry?.file_name();
                let Some(name) = name.to_str() else { continue };
                let playlist = [MEDIA_PLAYLIST, multivariant].iter().any(|p| name == *p || name == format!(".{p}.tmp"));
                if playlist || media_file(name).is_some() {
                    std::fs::remove_file(dir.join(name))?;
                }
            }
        }
        let previous = match std::fs::read_to_string(dir.join(MEDIA_PLAYLIST)) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&dir)? {
            if let Some(name) = entry?.file_name().to_str() {
                names.push(name.to_string());
            }
        }
        let packager = HlsPackager::new(multivariant, previous.as_deref(), names.iter().map(String::as_str))
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        Ok(HlsWriter { dir, packager, durability, _lock: lock })
    }

    /// Writes what `fragment` completes.
    pub fn write_io(&mut self, fragment: &Fragment) -> io::Result<()> {
        let writes = self.packager.push(fragment).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        self.apply(writes).map_err(|e| in_dir(&self.dir, e))
    }

    /// The clean end: `EXT-X-ENDLIST`.
    pub fn finish(&mut self) -> io::Result<()> {
        let writes = self.packager.finish();
        self.apply(writes).map_err(|e| in_dir(&self.dir, e))
    }

    fn apply(&self, writes: Vec<HlsWrite>) -> io::Result<()> {
        let sync = self.durability == Durability::Fsync;
        for w in writes {
            match w {
                HlsWrite::File { name, parts } => {
                    let path = self.dir.join(&name);
                    let mut f = OpenOptions::new().write(true).create_new(true).open(&path)?;
                    for p in &parts {
                        f.write_all(p)?;
                    }
                    if sync {
                        f.sync_data()?;
                    }
                }
                HlsWrite::Playlist { name, text } => {
                    let tmp = self.dir.join(format!(".{name}.tmp"));
                    let mut f = File::create(&tmp)?;
                    f.write_all(text.as_bytes())?;
                    if sync {
                        f.sync_data()?;
                        rename_durably(&tmp, &self.dir.join(&name))?;
                    } else {
                        std::fs::rename(&tmp, self.dir.join(&name))?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// `e`, saying in which directory.
fn in_dir(dir: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", dir.display()))
}

/// `DIR` or `DIR/NAME.m3u8` → (DIR, NAME.m3u8 or `index.m3u8`).
fn split_path(path: &Path) -> (PathBuf, String) {
    let is_playlist = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("m3u8"));
    match (is_playlist, path.file_name().and_then(|n| n.to_str())) {
        (true, Some(name)) => (super::parent_dir(path).to_path_buf(), name.to_string()),
        _ => (path.to_path_buf(), MULTIVARIANT.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(split_path(Path::new("out")), (PathBuf::from("out"), "index.m3u8".into()));
        assert_eq!(split_path(Path::new("out/live.m3u8")), (PathBuf::from("out"), "live.m3u8".into()));
        assert_eq!(split_path(Path::new("live.m3u8")), (PathBuf::from("."), "live.m3u8".into()));
    }

    #[test]
    fn a_second_writer_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _first = HlsWriter::open(dir.path(), Durability::None).unwrap();
        let e = HlsWriter::open(dir.path(), Durability::None).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "{e}");
    }

    #[test]
    fn fresh_removes_only_hls_files() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["index.m3u8", "stream.m3u8", "init-0.mp4", "seg-000001.m4s", ".stream.m3u8.tmp", "keep.txt", "seg-x.m4s"] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        let _w = HlsWriter::open_with(dir.path(), Durability::None, true).unwrap();
        let mut left: Vec<_> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        left.sort();
        assert_eq!(left, [".livemux.lock", "keep.txt", "seg-x.m4s"]);
    }
}
