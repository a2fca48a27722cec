//! livemux turns the live output of media recorders into crash-safe files in real time.
//!
//! A backend that receives a recording in pieces (an upload, a WebSocket) gives each piece
//! to a [`Recording`]: every fragment the input completes is written at its place and made
//! durable before [`Recording::push`] returns, so a crash loses at most the fragment still
//! open, and [`Recording::finish`] turns the file into a regular MP4 (or a seekable
//! WebM/Matroska file) in place. The file is byte-identical to what `livemux remux -` makes
//! of the same bytes on stdin, whatever the size of the pieces (a finished file named on
//! the command line gets a regular MP4's reserve sized from its duration instead).
//!
//! ```
//! # fn main() -> livemux::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! # let sample = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/samples/chrome_mp4_avc1_opus.mp4")).unwrap();
//! # let upload = sample.chunks(10_000).map(bytes::Bytes::copy_from_slice);
//! use livemux::{Recording, RecordingOptions};
//! let mut rec = Recording::create(dir.path().join("talk.mp4"), RecordingOptions::default())?;
//! for piece in upload {
//!     rec.push(piece)?;
//! }
//! let report = rec.finish()?;
//! assert_eq!(report.tracks.map(|t| t.len()), Some(2));
//! # Ok(()) }
//! ```
//!
//! The parts, from the outside in:
//! - [`Recording`] / [`AsyncRecording`]: a recording written to a file (the above).
//! - [`Remuxer`]: the same remux without IO: bytes in, [`Fragment`]s out, each with the
//!   offset it is written at; feed and collect in any rhythm:
//!
//! ```
//! # fn main() -> livemux::Result<()> {
//! # let sample = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/samples/chrome_mp4_avc1_opus.mp4")).unwrap();
//! use livemux::{FragmentKind, MuxFormat, RemuxOptions, Remuxer};
//! let mut remux = Remuxer::new(RemuxOptions::default().format(MuxFormat::Fmp4))?;
//! let mut file: Vec<u8> = Vec::new();
//! let mut write = |f: livemux::Fragment| {
//!     let end = f.offset as usize + f.len() as usize;
//!     file.resize(file.len().max(end), 0);
//!     file[f.offset as usize..end].copy_from_slice(&f.to_bytes());
//! };
//! for piece in sample.chunks(4096) {
//!     remux.push(bytes::Bytes::copy_from_slice(piece))?;
//!     while let Some(f) = remux.next_fragment() {
//!         write(f); // a fragment is ready as soon as the input completes it
//!     }
//! }
//! for f in remux.finish()? {
//!     assert_ne!(f.kind, FragmentKind::Finalize, "fragmented MP4 needs no finalize");
//!     write(f);
//! }
//! assert_eq!(&file[4..8], b"ftyp");
//! # Ok(()) }
//! ```
//!
//! - [`Pipeline`]: typed async stages — source, probe, codecpar-extract, packet-split, mux,
//!   sink — over bounded channels, from a pipeline file or built in code, with [`Feed`] and
//!   [`Collect`] handles for bytes from anywhere (see [`Pipeline`] for an example).
//! - [`finalize_file`], [`append()`], [`Reference`]: work on finished files.
//! - [`Error`]: the one error type, with a [`kind`](Error::kind), the input
//!   [`offset`](Error::offset), the [`track`](Error::track) and the [`path`](Error::path).
//!
//! # Cargo features
//!
//! - `cli` (default): the `livemux` command line and what only it needs (clap, miette,
//!   tracing-subscriber, inotify). A program embedding livemux turns it off with
//!   `default-features = false`; a followed file is then polled for its writer closing it.
//! - `internals`: makes the internal modules public for the crate's own tests, benches,
//!   examples and fuzz targets. Not a supported API.

#![warn(missing_docs)]
// The library never prints: what it has to say goes into its results, errors and reports
// (or `tracing`). Only the command line writes to the terminal. Unit tests may print.
#![cfg_attr(not(test), deny(clippy::print_stdout, clippy::print_stderr))]

// Internal modules: `pub` (hidden from the docs) with the `internals` feature, for the tests,
// benches, examples and fuzz targets that test the parts directly; private otherwise.
/// Declares the internal modules: `pub` (hidden from the docs) with `internals`, private
/// otherwise.
macro_rules! internal_modules {
    ($($name:ident),* $(,)?) => {$(
        #[cfg(feature = "internals")]
        #[doc(hidden)]
        pub mod $name;
        #[cfg(not(feature = "internals"))]
        mod $name;
    )*};
}
internal_modules!(append, codecs, finalize, formats, io, pipeline, reference, stages);
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod fuzzing;

/// The command line (`src/main.rs` calls [`cli::main`]); not a library API.
#[cfg(feature = "cli")]
#[doc(hidden)]
#[allow(clippy::print_stdout, clippy::print_stderr)]
pub mod cli;
mod error;
pub mod events;
pub mod model;
#[cfg(any(test, feature = "internals"))]
mod parse_count;
mod recording;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "server")]
pub mod store;

pub use error::{Error, ErrorKind, Result};
pub use events::{Observer, RunEvent, TrackInfo, EVENTS_VERSION};
pub use model::{Chunk, Fragment, FragmentKind, IndexUpdate, Packet, Payload, Track, TrackKind, TrackSet, Tracks};

// Running a remux: the pipeline and its settings.
pub use formats::fragmenter::FragmentPolicy;
pub use pipeline::{Collect, Feed, Pipeline, PipelineFileError, RunReport, Stopped, Tap, TapOutput};
pub use stages::codecpar::{CodecparConfig, ParamPolicy};
pub use stages::mux::{MuxConfig, MuxFormat};
pub use stages::sink::{Durability, SinkConfig};
pub use stages::source::SourceConfig;

// The sans-IO core, and a recording written to a file with it.
pub use formats::remux::{RemuxOptions, Remuxer};
pub use recording::{format_for_path, AsyncRecording, Recording, RecordingOptions, RecordingReport};

// Work on finished files.
pub use append::{append, append_observed, AppendReport, AppendRequest};
pub use finalize::{finalize_file, finalize_file_observed, FinalizeReport};
pub use formats::mp4::append::{AppendOptions, ChunkSlice};
pub use formats::ContainerKind;
pub use reference::Reference;
