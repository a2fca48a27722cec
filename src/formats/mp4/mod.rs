//! ISO BMFF / QuickTime: reading every common layout, writing fragmented MP4, and turning
//! fragmented MP4 into regular MP4 in place ([`finalize`], [`regular`]).
//!
//! Written by hand rather than on a box crate: a live remuxer needs (1) a top-level walker
//! that streams `mdat` payload as zero-copy slices and tells "need more bytes" from
//! "invalid at offset X", (2) sample tables read in place from the `moov` bytes rather
//! than decoded into per-sample structs (a 10-hour index stays a few `Bytes`), and (3)
//! QuickTime sound descriptions (v1/v2, `wave`, PCM fourccs) that ISO-only crates reject.

pub mod append;
pub mod boxes;
pub mod demux;
pub mod file;
pub mod finalize;
pub mod fmp4;
pub mod init;
pub mod meta;
pub mod moof;
pub mod moov;
pub mod patch;
pub mod regular;
pub mod sample_table;
pub mod scan;
pub mod sidx;
pub mod tables;
pub mod walker;
pub mod write;

pub use boxes::{FourCc, Mp4Error};
