//! `mux`: packets in, output fragments out, through a sans-IO [`Muxer`].

use tokio::sync::mpsc;

use super::{Outputs, StageContext, StageReport, StageResult};
use crate::formats::fragmenter::FragmentPolicy;
use crate::formats::matroska::mux::MkvMuxer;
use crate::formats::matroska::tracks::webm_compatible;
use crate::formats::mp4::fmp4::Fmp4Muxer;
use crate::formats::mp4::regular::{RegularMp4Muxer, DEFAULT_RESERVE_MS};
use crate::formats::{Muxer, PacketEvent};
use crate::model::{Fragment, TrackSet};

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
}

impl Default for MuxConfig {
    fn default() -> Self {
        MuxConfig { format: MuxFormat::default(), fragment: FragmentPolicy::default(), reserve_ms: DEFAULT_RESERVE_MS }
    }
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
    while let Some(ev) = input.recv().await {
        match ev {
            PacketEvent::Tracks(tracks) => {
                if muxer.is_none() {
                    let mut m = make_muxer(&config, tracks);
                    fragments.push(m.header().map_err(|e| ctx.error(e))?);
                    muxer = Some(m);
                }
            }
            PacketEvent::Packets(packets) => {
                let m = muxer.as_mut().expect("packet-split sends tracks before packets");
                for p in packets {
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
    Ok(StageReport { notes: muxer.map(|m| m.notes()).unwrap_or_default() })
}
