//! `mux`: packets in, output fragments out, through a sans-IO [`Muxer`].

use std::sync::Arc;

use bytes::BytesMut;
use tokio::sync::mpsc;

use super::{Failure, Outputs, StageContext, StageReport, StageResult};
use crate::formats::fragmenter::FragmentPolicy;
use crate::formats::matroska::mux::MkvMuxer;
use crate::formats::matroska::tracks::{codec_id_and_private, webm_compatible};
use crate::formats::mp4::fmp4::Fmp4Muxer;
use crate::formats::mp4::init::write_sample_entry;
use crate::formats::mp4::regular::{RegularMp4Muxer, DEFAULT_RESERVE_MS};
use crate::formats::{MuxError, Muxer, PacketEvent};
use crate::model::{Fragment, Track, TrackSet, Tracks};

/// Output container.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MuxFormat {
    /// Fragmented MP4: ftyp + moov once, then moof + mdat per fragment.
    #[default]
    Fmp4,
    /// Fragmented MP4 while recording, turned into a regular MP4 in place at a clean stop
    /// (by outputs that can seek; a stream gets the fragmented file).
    Mp4,
    /// Matroska: one Cluster per fragment; Cues, Duration and SeekHead at a clean stop.
    Mkv,
    /// WebM: Matroska restricted to VP8, VP9, AV1 and Opus.
    Webm,
    /// WebM when every codec fits in WebM, Matroska otherwise.
    Matroska,
}

impl std::str::FromStr for MuxFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "fmp4" => Ok(MuxFormat::Fmp4),
            "mp4" => Ok(MuxFormat::Mp4),
            "mkv" => Ok(MuxFormat::Mkv),
            "webm" => Ok(MuxFormat::Webm),
            "matroska" => Ok(MuxFormat::Matroska),
            _ => Err(format!("unknown output format '{s}' (expected fmp4, mp4, mkv, webm or matroska)")),
        }
    }
}

impl MuxFormat {
    /// The format a file name asks for: `.webm`, `.mkv`/`.mka`; `None` otherwise.
    pub fn from_extension(path: &std::path::Path) -> Option<MuxFormat> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "webm" => Some(MuxFormat::Webm),
            "mkv" | "mka" => Some(MuxFormat::Mkv),
            _ => None,
        }
    }
}

/// Settings of `mux`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MuxConfig {
    pub format: MuxFormat,
    pub fragment: FragmentPolicy,
    /// `mp4`: the expected duration, for which room is reserved before the media so that
    /// the final index goes first (0: none, the index goes at the end).
    pub reserve_ms: u64,
    /// Drop (with a note) the tracks the output format cannot carry, instead of refusing
    /// the input.
    pub skip_unsupported: bool,
}

impl Default for MuxConfig {
    fn default() -> Self {
        MuxConfig {
            format: MuxFormat::default(),
            fragment: FragmentPolicy::default(),
            reserve_ms: DEFAULT_RESERVE_MS,
            skip_unsupported: false,
        }
    }
}

/// Whether `format` can carry track `index`: the muxer's own refusal when it cannot.
pub fn check_writable(format: MuxFormat, index: usize, track: &Track) -> Result<(), MuxError> {
    match format {
        MuxFormat::Fmp4 | MuxFormat::Mp4 => write_sample_entry(&mut BytesMut::new(), index, track),
        MuxFormat::Mkv | MuxFormat::Matroska => codec_id_and_private(index, track, false).map(drop),
        MuxFormat::Webm => codec_id_and_private(index, track, true).map(drop),
    }
}

/// The tracks `format` can carry, and for each input track its index among them (`None`:
/// dropped, with a note naming it).
fn writable_tracks(format: MuxFormat, tracks: &TrackSet, notes: &mut Vec<String>) -> (TrackSet, Vec<Option<usize>>) {
    let mut kept = Vec::new();
    let mut map = Vec::with_capacity(tracks.len());
    for (i, t) in tracks.iter().enumerate() {
        match check_writable(format, i, t) {
            Ok(()) => {
                map.push(Some(kept.len()));
                kept.push(t.clone());
            }
            Err(e) => {
                notes.push(format!("{e}; dropped (--skip-unsupported)"));
                map.push(None);
            }
        }
    }
    (Arc::new(Tracks::new(kept, tracks.movie.clone())), map)
}

fn make_muxer(config: &MuxConfig, tracks: TrackSet) -> Box<dyn Muxer> {
    match config.format {
        MuxFormat::Fmp4 => Box::new(Fmp4Muxer::new(tracks, config.fragment)),
        MuxFormat::Mp4 => Box::new(RegularMp4Muxer::new(tracks, config.fragment, config.reserve_ms)),
        MuxFormat::Mkv => Box::new(MkvMuxer::new(tracks, config.fragment, false)),
        MuxFormat::Webm => Box::new(MkvMuxer::new(tracks, config.fragment, true)),
        MuxFormat::Matroska => {
            let webm = webm_compatible(&tracks);
            Box::new(MkvMuxer::new(tracks, config.fragment, webm))
        }
    }
}

/// Runs `mux`.
pub async fn run(
    ctx: StageContext,
    config: MuxConfig,
    mut input: mpsc::Receiver<PacketEvent>,
    out: Outputs<Fragment>,
) -> StageResult {
    let mut muxer: Option<Box<dyn Muxer>> = None;
    let mut fragments: Vec<Fragment> = Vec::new();
    let mut notes = Vec::new();
    // Input track index -> output track index, when --skip-unsupported dropped some.
    let mut track_map: Option<Vec<Option<usize>>> = None;
    while let Some(ev) = input.recv().await {
        match ev {
            PacketEvent::Tracks(tracks) => {
                if muxer.is_none() {
                    let tracks = if config.skip_unsupported {
                        let (kept, map) = writable_tracks(config.format, &tracks, &mut notes);
                        if kept.is_empty() {
                            let why = notes.join("; ");
                            return Err(ctx.error(Failure::Unsupported(format!("no track can be written: {why}"))));
                        }
                        if map.iter().any(Option::is_none) {
                            track_map = Some(map);
                        }
                        kept
                    } else {
                        tracks
                    };
                    let mut m = make_muxer(&config, tracks);
                    fragments.push(m.header().map_err(|e| ctx.error(e))?);
                    muxer = Some(m);
                }
            }
            PacketEvent::Packets(packets) => {
                let m = muxer.as_mut().expect("packet-split sends tracks before packets");
                for mut p in packets {
                    if let Some(map) = &track_map {
                        match map.get(p.track) {
                            Some(Some(t)) => p.track = *t,
                            Some(None) => continue, // a track dropped by --skip-unsupported
                            None => {
                                let e = MuxError::NoSuchTrack { track: p.track, tracks: map.len() };
                                return Err(ctx.error(e));
                            }
                        }
                    }
                    fragments.extend(m.push(p).map_err(|e| ctx.error(e))?);
                }
            }
            PacketEvent::Boundary => {
                if let Some(m) = muxer.as_mut() {
                    fragments.extend(m.boundary().map_err(|e| ctx.error(e))?);
                }
            }
            PacketEvent::End(_) => {
                if let Some(m) = muxer.as_mut() {
                    fragments.extend(m.finish().map_err(|e| ctx.error(e))?);
                }
            }
        }
        for f in fragments.drain(..) {
            if out.send(f).await.is_err() {
                return Ok(StageReport::default());
            }
        }
    }
    notes.extend(muxer.map(|m| m.notes()).unwrap_or_default());
    Ok(StageReport { notes })
}
