//! livemux turns the live output of media recorders into crash-safe files in real time.
//!
//! A pipeline of typed async stages ([`stages`]) — source, probe, codecpar-extract,
//! packet-split, mux, sink — passes data over bounded channels. The container work is done
//! by sans-IO readers and writers in [`formats`] that a program can also drive directly.
//!
//! ```no_run
//! # async fn demo(upload: Vec<bytes::Bytes>) -> Result<(), Box<dyn std::error::Error>> {
//! use livemux::pipeline::Pipeline;
//! use livemux::stages::{mux::MuxConfig, sink::SinkConfig, source::SourceConfig};
//! let sink = SinkConfig { path: "-".into(), durability: None };
//! let mut p = Pipeline::remux(SourceConfig::default(), Default::default(), MuxConfig::default(), sink)?;
//! let mut feed = p.feed_input()?;
//! let mut fragments = p.collect_output()?;
//! let run = tokio::spawn(p.run(Default::default()));
//! for bytes in upload {
//!     feed.send(bytes).await.ok();
//! }
//! drop(feed);
//! while let Some(f) = fragments.recv().await {
//!     println!("{} bytes of {:?}", f.len(), f.kind);
//! }
//! run.await??;
//! # Ok(()) }
//! ```

pub mod append;
pub mod codecs;
mod error;
pub mod finalize;
pub mod formats;
#[doc(hidden)]
pub mod fuzzing;
pub mod model;
pub mod pipeline;
pub mod reference;
pub mod stages;

pub use error::{Error, ErrorKind, Result};
pub use model::{Chunk, Fragment, FragmentKind, Packet, Payload, Track, TrackKind};
pub use pipeline::{Pipeline, PipelineFileError};
pub use stages::StageError;
