//! livemux turns the live output of media recorders into crash-safe files in real time.
//!
//! A [`Pipeline`] of typed async stages — source, probe, codecpar-extract, packet-split,
//! mux, sink — passes data over bounded channels. The container work is done by sans-IO
//! readers and writers that the stages drive.
//!
//! ```no_run
//! # async fn demo(upload: Vec<bytes::Bytes>) -> Result<(), Box<dyn std::error::Error>> {
//! use livemux::{MuxConfig, Pipeline, SinkConfig, SourceConfig};
//! let sink = SinkConfig::new("-");
//! let mut p = Pipeline::remux(SourceConfig::default(), Default::default(), MuxConfig::default(), sink)?;
//! let mut feed = p.feed_input()?;
//! let mut fragments = p.collect_output()?;
//! let run = tokio::spawn(p.run(Default::default()));
//! for bytes in upload {
//!     feed.send(bytes).await.ok();
//! }
//! drop(feed);
//! while let Some(f) = fragments.recv().await {
//!     eprintln!("{} bytes of {:?}", f.len(), f.kind);
//! }
//! run.await??;
//! # Ok(()) }
//! ```
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
//
// `codecs` and `formats` hold items only those use, and a few dead ones (listed in the
// issue 14 api report): allowed until the concurrent changes to these modules are merged.
// TODO(issue 14): remove the two `allow`s and the items they cover.
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod append;
#[cfg(not(feature = "internals"))]
mod append;
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod codecs;
#[cfg(not(feature = "internals"))]
#[allow(dead_code, unused_imports, clippy::wrong_self_convention)]
mod codecs;
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod finalize;
#[cfg(not(feature = "internals"))]
mod finalize;
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod formats;
#[cfg(not(feature = "internals"))]
#[allow(dead_code, unused_imports)]
mod formats;
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod fuzzing;
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod io;
#[cfg(not(feature = "internals"))]
mod io;
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod pipeline;
#[cfg(not(feature = "internals"))]
mod pipeline;
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod reference;
#[cfg(not(feature = "internals"))]
mod reference;
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod stages;
#[cfg(not(feature = "internals"))]
mod stages;

/// The command line (`src/main.rs` calls [`cli::main`]); not a library API.
#[cfg(feature = "cli")]
#[doc(hidden)]
#[allow(clippy::print_stdout, clippy::print_stderr)]
pub mod cli;
mod error;
pub mod model;
mod recording;

pub use error::{Error, ErrorKind, Result};
pub use model::{Chunk, Fragment, FragmentKind, Packet, Payload, Track, TrackKind, TrackSet, Tracks};

// Running a remux: the pipeline and its settings.
pub use formats::fragmenter::FragmentPolicy;
pub use pipeline::{Collect, Feed, Pipeline, RunReport, Stopped, Tap, TapOutput};
pub use stages::codecpar::{CodecparConfig, ParamPolicy};
pub use stages::mux::{MuxConfig, MuxFormat};
pub use stages::sink::{Durability, SinkConfig};
pub use stages::source::SourceConfig;

// The sans-IO core, and a recording written to a file with it.
pub use formats::remux::{RemuxOptions, Remuxer};
pub use recording::{format_for_path, AsyncRecording, Recording, RecordingOptions, RecordingReport};

// Work on finished files.
pub use append::{append, AppendReport, AppendRequest};
pub use finalize::{finalize_file, FinalizeReport};
pub use formats::mp4::append::{AppendOptions, ChunkSlice};
pub use reference::Reference;
