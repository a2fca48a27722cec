//! The one error type of the library: [`Error`], with a [`kind`](Error::kind) to act on and
//! the context a user needs (the file, the input offset, the track) kept as fields rather
//! than flattened into the message.
//!
//! Inside the crate, each part keeps its own precise error (a box that is invalid at an
//! offset, a stage that failed, an append whose plan was refused); they become an
//! [`Error`] where they leave the library. The message of the part's error is the message
//! of the [`Error`], so what a user reads does not depend on which API they called, and
//! [`std::error::Error::source`] walks on to the cause (an `io::Error`...).

use std::fmt;
use std::path::{Path, PathBuf};

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, coarsely: what a program embedding livemux branches on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The input is empty, or not a container livemux reads.
    NotMedia,
    /// The input is damaged: invalid at [`Error::offset`], or a size over a limit.
    InvalidInput,
    /// The input is valid but holds something livemux does not write (a codec the output
    /// format cannot carry, encrypted samples...).
    Unsupported,
    /// Codec parameters are missing or unusable: a reference recording can supply them
    /// (`livemux recover`).
    MissingParameters,
    /// A reference recording cannot be read, or does not match the input.
    Reference,
    /// The settings, the arguments or a pipeline file are wrong: nothing was done.
    Config,
    /// The output exists and would be overwritten, or another process is writing it.
    OutputRefused,
    /// The reader of a streamed output went away.
    OutputClosed,
    /// Reading or writing a file failed (a full disk, a permission...).
    Io,
    /// A bug in livemux (a stage panicked). Outputs are left valid up to the last complete
    /// fragment.
    Internal,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::NotMedia => "not media",
            ErrorKind::InvalidInput => "invalid input",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::MissingParameters => "missing codec parameters",
            ErrorKind::Reference => "reference recording",
            ErrorKind::Config => "configuration",
            ErrorKind::OutputRefused => "output refused",
            ErrorKind::OutputClosed => "output closed",
            ErrorKind::Io => "i/o",
            ErrorKind::Internal => "internal",
        })
    }
}

/// An error of livemux: [`kind`](Error::kind), a message, and where it happened.
///
/// ```
/// # fn demo(e: livemux::Error) {
/// match e.kind() {
///     livemux::ErrorKind::InvalidInput => eprintln!("damaged at byte {:?}: {e}", e.offset()),
///     livemux::ErrorKind::Io => eprintln!("disk trouble on {:?}: {e}", e.path()),
///     _ => eprintln!("{e}"),
/// }
/// # }
/// ```
pub struct Error(Box<Inner>);

struct Inner {
    kind: ErrorKind,
    /// The error as the part of livemux that raised it worded it: its `Display` is this
    /// error's, its `source` this error's.
    repr: Box<dyn std::error::Error + Send + Sync + 'static>,
    offset: Option<u64>,
    track: Option<usize>,
    path: Option<PathBuf>,
}

/// A message without a cause, for errors raised as text.
#[derive(Debug)]
struct Message(String);

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Message {}

impl Error {
    /// An error of `kind` worded by `repr` (whose `source` chain this error keeps).
    pub(crate) fn from_repr(kind: ErrorKind, repr: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Error(Box::new(Inner { kind, repr: repr.into(), offset: None, track: None, path: None }))
    }

    /// An error of `kind` with a message and no cause.
    pub(crate) fn msg(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error::from_repr(kind, Message(message.into()))
    }

    /// Sets the input offset the error points at.
    pub(crate) fn at_offset(mut self, offset: u64) -> Self {
        self.0.offset = Some(offset);
        self
    }

    /// Sets the track (0-based index in the track set) the error is about.
    pub(crate) fn on_track(mut self, track: usize) -> Self {
        self.0.track = Some(track);
        self
    }

    /// Sets the file the error is about, unless one is known already.
    pub(crate) fn on_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.0.path.get_or_insert_with(|| path.into());
        self
    }

    /// What went wrong, coarsely.
    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }

    /// The byte offset in the input the error points at, when it has one.
    pub fn offset(&self) -> Option<u64> {
        self.0.offset
    }

    /// The track the error is about: its 0-based index in the track set (messages count
    /// tracks from 1, as outputs number them).
    pub fn track(&self) -> Option<usize> {
        self.0.track
    }

    /// The file the error is about (the input, the output, a reference recording).
    pub fn path(&self) -> Option<&Path> {
        self.0.path.as_deref()
    }

    /// Whether the error is in what the caller asked for (settings, arguments, a pipeline
    /// file) rather than in the input or the machine: the command line exits with 2 for it.
    pub fn is_usage(&self) -> bool {
        self.0.kind == ErrorKind::Config
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.repr, f)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.0.kind).field("message", &self.to_string());
        if let Some(o) = self.0.offset {
            d.field("offset", &o);
        }
        if let Some(t) = self.0.track {
            d.field("track", &t);
        }
        if let Some(p) = &self.0.path {
            d.field("path", p);
        }
        d.finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.repr.source()
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        let kind = match e.kind() {
            std::io::ErrorKind::BrokenPipe => ErrorKind::OutputClosed,
            _ => ErrorKind::Io,
        };
        Error::from_repr(kind, e)
    }
}

impl From<crate::stages::StageError> for Error {
    fn from(e: crate::stages::StageError) -> Self {
        let (kind, track) = e.failure.classify();
        let offset = e.failure.offset();
        let path = e.failure.path().map(Path::to_path_buf).or_else(|| e.file.clone());
        let mut out = Error::from_repr(kind, e);
        out.0.offset = offset;
        out.0.track = track;
        out.0.path = path;
        out
    }
}

impl From<crate::pipeline::PipelineFileError> for Error {
    fn from(e: crate::pipeline::PipelineFileError) -> Self {
        Error::from_repr(ErrorKind::Config, e)
    }
}

impl From<crate::finalize::FinalizeError> for Error {
    fn from(e: crate::finalize::FinalizeError) -> Self {
        use crate::finalize::FinalizeError as F;
        let kind = match &e {
            F::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock => ErrorKind::OutputRefused,
            F::Io(_) => ErrorKind::Io,
            F::UnknownContainer => ErrorKind::NotMedia,
            F::Unusable(_) => ErrorKind::InvalidInput,
            F::Unsupported(_) => ErrorKind::Unsupported,
        };
        Error::from_repr(kind, e)
    }
}

impl From<crate::append::AppendFileError> for Error {
    fn from(e: crate::append::AppendFileError) -> Self {
        use crate::append::AppendFileError as A;
        use crate::formats::mp4::append::AppendError as P;
        let (kind, path, offset) = match &e {
            A::Io { path, source } if source.kind() == std::io::ErrorKind::WouldBlock => {
                (ErrorKind::OutputRefused, Some(path.clone()), None)
            }
            A::Io { path, .. } => (ErrorKind::Io, Some(path.clone()), None),
            A::NotMp4 { path, .. } => (ErrorKind::Config, Some(path.clone()), None),
            A::Plan(p) if p.is_usage() => (ErrorKind::Config, None, None),
            A::Plan(P::Mp4 { source, .. }) => (ErrorKind::InvalidInput, None, Some(source.offset())),
            A::Plan(P::Incompatible { .. }) => (ErrorKind::Unsupported, None, None),
            A::Plan(_) => (ErrorKind::InvalidInput, None, None),
        };
        let mut out = Error::from_repr(kind, e);
        out.0.path = path;
        out.0.offset = offset;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_is_kept_apart_from_the_message() {
        let e = Error::msg(ErrorKind::InvalidInput, "bad box").at_offset(42).on_track(1).on_path("/x/in.mp4");
        assert_eq!(e.to_string(), "bad box");
        assert_eq!((e.kind(), e.offset(), e.track()), (ErrorKind::InvalidInput, Some(42), Some(1)));
        assert_eq!(e.path(), Some(Path::new("/x/in.mp4")));
        // The first path given is the one kept: the innermost context knows best.
        assert_eq!(e.on_path("/other").path(), Some(Path::new("/x/in.mp4")));
    }

    #[test]
    fn the_source_chain_is_the_cause_of_the_original_error() {
        let io = std::io::Error::new(std::io::ErrorKind::BrokenPipe, "gone");
        let e = Error::from(io);
        assert_eq!(e.kind(), ErrorKind::OutputClosed);
        assert_eq!(e.to_string(), "gone");
        assert!(std::error::Error::source(&e).is_none(), "an io::Error without a cause has none");
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<Error>();
    }
}
