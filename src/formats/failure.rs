//! Why the remux core ([`Remuxer`](super::remux::Remuxer) and the types it owns) refused
//! its input: one enum for every part, so that a stage and an embedding program word the
//! same failure the same way. It becomes a [`crate::Error`] where it leaves the library
//! (kind, input offset, track and reference path set from its fields).

use std::path::PathBuf;

use crate::error::{Error, ErrorKind};

/// Why the core (or the stage running it) failed.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// Reading or writing failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// An MP4 box is invalid.
    #[error("{0}")]
    Mp4(#[from] crate::formats::mp4::Mp4Error),
    /// The MP4 media cannot be cut into packets.
    #[error("{0}")]
    Split(#[from] crate::formats::mp4::demux::SplitError),
    /// A Matroska element is invalid.
    #[error("{0}")]
    Matroska(#[from] crate::formats::matroska::MkvError),
    /// The output format cannot carry what it was given.
    #[error("{0}")]
    Mux(#[from] crate::formats::MuxError),
    /// The input is not a container livemux reads.
    #[error("not a known media container (first bytes: {head})")]
    NotMedia {
        /// The first bytes, in hex.
        head: String,
    },
    /// No input at all.
    #[error("empty input: no bytes arrived")]
    Empty,
    /// Valid input livemux does not handle.
    #[error("{0}")]
    Unsupported(String),
    /// MP4 media without any index.
    #[error(
        "no 'moov' box: the input holds {media_bytes} bytes of media but no index with codec \
         parameters (the recorder stopped before writing it). Recover it with a reference \
         recording made with the same settings: livemux recover INPUT --reference REF -o OUTPUT"
    )]
    MissingMoov {
        /// Media bytes seen.
        media_bytes: u64,
    },
    /// A reference recording cannot be read.
    #[error("reference recording {}: {reason}", path.display())]
    Reference {
        /// The reference's file.
        path: PathBuf,
        /// Why it cannot serve.
        reason: String,
    },
    /// A reference recording does not fit the stream.
    #[error("the reference recording {} does not match the stream: {detail}", reference.display())]
    Mismatch {
        /// The reference's file.
        reference: PathBuf,
        /// What differs.
        detail: String,
    },
    /// A track's codec parameters cannot be used.
    #[error("track {track} ({codec}): codec parameters unusable: {reason}")]
    Codec {
        /// The track, counted from 1.
        track: usize,
        /// Its codec family.
        codec: &'static str,
        /// Why.
        reason: String,
    },
    /// Anything else, worded for the user.
    #[error("{0}")]
    Other(String),
}

impl Failure {
    /// The input offset the failure points at, when it has one.
    pub fn offset(&self) -> Option<u64> {
        match self {
            Failure::Mp4(e) => Some(e.offset()),
            Failure::Split(crate::formats::mp4::demux::SplitError::Mp4(e)) => Some(e.offset()),
            _ => None,
        }
    }

    /// The [`ErrorKind`] of the failure, and the track (0-based) it is about.
    pub(crate) fn classify(&self) -> (ErrorKind, Option<usize>) {
        match self {
            Failure::Io(io) if io.kind() == std::io::ErrorKind::BrokenPipe => (ErrorKind::OutputClosed, None),
            Failure::Io(io) if io.kind() == std::io::ErrorKind::AlreadyExists => (ErrorKind::OutputRefused, None),
            Failure::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock => (ErrorKind::OutputRefused, None),
            Failure::Io(_) => (ErrorKind::Io, None),
            Failure::Mp4(crate::formats::mp4::Mp4Error::Unsupported { .. }) => (ErrorKind::Unsupported, None),
            Failure::Mp4(_) | Failure::Split(_) | Failure::Matroska(_) => (ErrorKind::InvalidInput, None),
            Failure::Mux(m) => (ErrorKind::Unsupported, m.track()),
            Failure::NotMedia { .. } | Failure::Empty => (ErrorKind::NotMedia, None),
            Failure::Unsupported(_) => (ErrorKind::Unsupported, None),
            Failure::MissingMoov { .. } => (ErrorKind::MissingParameters, None),
            Failure::Codec { track, .. } => (ErrorKind::MissingParameters, track.checked_sub(1)),
            Failure::Reference { .. } | Failure::Mismatch { .. } => (ErrorKind::Reference, None),
            Failure::Other(_) => (ErrorKind::Unsupported, None),
        }
    }

    /// The file the failure is about (a reference recording), when it names one.
    pub(crate) fn path(&self) -> Option<&std::path::Path> {
        match self {
            Failure::Reference { path, .. } => Some(path),
            Failure::Mismatch { reference, .. } => Some(reference),
            _ => None,
        }
    }
}

impl From<Failure> for Error {
    fn from(f: Failure) -> Self {
        let (kind, track) = f.classify();
        let offset = f.offset();
        let path = f.path().map(std::path::Path::to_path_buf);
        let mut e = Error::from_repr(kind, f);
        if let Some(o) = offset {
            e = e.at_offset(o);
        }
        if let Some(t) = track {
            e = e.on_track(t);
        }
        if let Some(p) = path {
            e = e.on_path(p);
        }
        e
    }
}
