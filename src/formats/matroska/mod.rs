//! Matroska and WebM: a live reader that follows unknown-size Segments and Clusters, block
//! and track parsing, a writer whose every Cluster is complete on disk, and the finalize
//! step that adds Duration, Cues and SeekHead in place.

pub mod block;
pub mod demux;
pub mod ebml;
pub mod finalize;
pub mod ids;
pub mod meta;
pub mod mux;
pub mod reader;
pub mod tracks;

pub use ebml::MkvError;
