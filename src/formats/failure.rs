//! Why the remux core ([`Remuxer`](super::remux::Remuxer) and the types it owns) refused
//! its input: one enum for every part, so that a stage and an embedding program word the
//! same failure the same way. It becomes a [`crate::Error`] where it leaves the library
//! (kind, input offset, track and reference path set from its fields).

use std::path::PathBuf;

use crate::error::{Error, ErrorKind};
use crate::formats::mp4::demux::SplitError;
use crate::formats::mp4::scan::ScanError;
use crate::formats::mp4::Mp4Error;
use crate::formats::MuxError;

/// Why the core (or the stage running it) failed.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// Reading or writing failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// An MP4 box is invalid.
    #[error(transparent)]
    Mp4(#[from] crate::formats::mp4::Mp4Error),
    /// The MP4 media cannot be cut into packets.
    #[error(transparent)]
    Split(#[from] crate::formats::mp4::demux::SplitError),
    /// A Matroska element is invalid.
    #[error(transparent)]
    Matroska(#[from] crate::formats::matroska::MkvError),
    /// The output format cannot carry what it was given.
    #[error(transparent)]
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
    /// Settings that do not fit together (a policy that needs a reference, without one).
    #[error("{0}")]
    Config(String),
    /// A bug in livemux: parts of the core used out of order, a task that panicked.
    #[error("{0}")]
    Internal(String),
    /// Anything else, worded for the user.
    #[error("{0}")]
    Other(String),
}

impl Failure {
    /// The input offset the failure points at, when it has one.
    pub fn offset(&self) -> Option<u64> {
        match self {
            Failure::Mp4(e) | Failure::Split(SplitError::Mp4(e)) => Some(e.offset()),
            Failure::Matroska(e) => Some(e.offset()),
            Failure::Split(SplitError::Scan(
                ScanError::NoFit { offset, .. }
                | ScanError::SliceHeader { offset, .. }
                | ScanError::ParameterSets { offset, .. },
            )) => Some(*offset),
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
            Failure::Mp4(Mp4Error::Unsupported { .. })
            | Failure::Split(SplitError::Mp4(Mp4Error::Unsupported { .. })) => (ErrorKind::Unsupported, None),
            // A limit of livemux's, not damage: the message says how to get past it.
            Failure::Split(SplitError::BufferLimit { .. }) => (ErrorKind::Unsupported, None),
            Failure::Split(SplitError::Scan(
                ScanError::SliceHeader { track, .. } | ScanError::ParameterSets { track, .. },
            )) => (ErrorKind::InvalidInput, track.checked_sub(1)),
            Failure::Mp4(_) | Failure::Split(_) | Failure::Matroska(_) => (ErrorKind::InvalidInput, None),
            Failure::Mux(m) => {
                let kind = match m {
                    MuxError::Unsupported { .. } | MuxError::TracksChanged { .. } => ErrorKind::Unsupported,
                    MuxError::Timing { .. } => ErrorKind::InvalidInput,
                    MuxError::NoSuchTrack { .. } | MuxError::Finalize(_) => ErrorKind::Internal,
                };
                (kind, m.track())
            }
            Failure::Config(_) => (ErrorKind::Config, None),
            Failure::Internal(_) => (ErrorKind::Internal, None),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::matroska::MkvError;
    use std::error::Error as _;

    fn kind_track(f: Failure) -> (ErrorKind, Option<usize>, Option<u64>) {
        let e = Error::from(f);
        (e.kind(), e.track(), e.offset())
    }

    #[test]
    fn each_mux_error_has_its_kind() {
        let unsupported = MuxError::Unsupported { track: 1, codec: "x", format: "webm", reason: "no".into() };
        assert_eq!(kind_track(unsupported.into()), (ErrorKind::Unsupported, Some(1), None));
        let changed = MuxError::TracksChanged { track: 0, what: "the codec parameters".into() };
        assert_eq!(kind_track(changed.into()), (ErrorKind::Unsupported, Some(0), None));
        let timing = MuxError::Timing { track: 2, reason: "backwards".into() };
        assert_eq!(kind_track(timing.into()), (ErrorKind::InvalidInput, Some(2), None));
        let no_such = MuxError::NoSuchTrack { track: 5, tracks: 2 };
        assert_eq!(kind_track(no_such.into()).0, ErrorKind::Internal);
        assert_eq!(kind_track(MuxError::Finalize("x".into()).into()).0, ErrorKind::Internal);
    }

    #[test]
    fn limits_settings_and_bugs_have_their_kinds() {
        let limit = SplitError::BufferLimit { buffered: 10, limit: 5 };
        let msg = limit.to_string();
        let e = Error::from(Failure::from(limit));
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        assert_eq!(e.to_string(), msg, "the message is kept");
        assert_eq!(kind_track(Failure::Config("x".into())).0, ErrorKind::Config);
        assert_eq!(kind_track(Failure::Internal("x".into())).0, ErrorKind::Internal);
    }

    #[test]
    fn offsets_and_tracks_of_matroska_and_scan_errors() {
        let mkv = MkvError::invalid("Cluster", 1234, "bad");
        assert_eq!(kind_track(mkv.into()), (ErrorKind::InvalidInput, None, Some(1234)));
        let scan = ScanError::SliceHeader { track: 2, offset: 99, reason: "x".into() };
        assert_eq!(kind_track(SplitError::Scan(scan).into()), (ErrorKind::InvalidInput, Some(1), Some(99)));
        let scan = ScanError::NoFit { offset: 7, tracks: "a".into() };
        assert_eq!(kind_track(SplitError::Scan(scan).into()).2, Some(7));
    }

    #[test]
    fn wrapping_variants_do_not_repeat_their_message_in_the_chain() {
        let f = Failure::from(MkvError::invalid("Cluster", 1, "bad"));
        assert_eq!(f.to_string(), "Cluster at byte 1: bad");
        assert!(f.source().is_none(), "the wrapped error is the failure itself, not its cause");
        let io = std::io::Error::other("disk on fire");
        assert!(Failure::from(io).source().is_none());
    }
}
