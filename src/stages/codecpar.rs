//! `codecpar-extract`: decides each track's codec parameters and emits the track list.
//!
//! Parameters come from the stream's own header (`params = "stream"`, the default). The
//! stream's `moov` is forwarded unchanged so that `packet-split` can read its sample tables.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::mpsc;

use super::{Failure, Outputs, StageContext, StageReport, StageResult};
use crate::formats::mp4::moov::parse_movie;
use crate::formats::{ContainerEvent, ElementKind};
use crate::model::{ParamOrigin, TrackKind};

/// Where codec parameters come from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ParamPolicy {
    /// The stream's own.
    #[default]
    Stream,
    /// The reference recording's.
    Reference,
    /// The stream's, or the reference's where the stream's are missing or unusable.
    Auto,
}

impl std::str::FromStr for ParamPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "stream" => Ok(ParamPolicy::Stream),
            "reference" => Ok(ParamPolicy::Reference),
            "auto" => Ok(ParamPolicy::Auto),
            _ => Err(format!("unknown parameter policy '{s}' (expected stream, reference or auto)")),
        }
    }
}

/// Settings of `codecpar-extract`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CodecparConfig {
    pub params: ParamPolicy,
    /// A complete recording of the same source whose parameters to use.
    pub reference: Option<PathBuf>,
}

/// Runs `codecpar-extract`.
pub async fn run(
    ctx: StageContext,
    config: CodecparConfig,
    mut input: mpsc::Receiver<ContainerEvent>,
    out: Outputs<ContainerEvent>,
) -> StageResult {
    if config.params != ParamPolicy::Stream || config.reference.is_some() {
        return Err(
            ctx.error(Failure::Unsupported("parameters from a reference recording are not supported yet".into()))
        );
    }
    let mut report = StageReport::default();
    let mut have_tracks = false;
    let mut media_bytes = 0u64;
    while let Some(ev) = input.recv().await {
        match &ev {
            ContainerEvent::Meta(m)
                if m.kind == ElementKind::Mp4(crate::formats::mp4::FourCc::new(b"moov")) && !have_tracks =>
            {
                let movie = parse_movie(&m.data, m.offset, m.header_len).map_err(|e| ctx.error(e))?;
                let mut tracks = Vec::new();
                for (i, t) in movie.tracks.iter().enumerate() {
                    if t.kind == TrackKind::Other {
                        report.notes.push(format!(
                            "track {} ('{}' handler) is neither audio nor video; left out",
                            t.track_id, t.handler
                        ));
                        continue;
                    }
                    let codec = t.codec.clone().map_err(|e| {
                        ctx.error(Failure::Codec { track: i + 1, codec: fourcc_name(t), reason: e.to_string() })
                    })?;
                    tracks.push(t.to_track(movie.timescale, codec, ParamOrigin::Stream));
                }
                if tracks.is_empty() {
                    return Err(ctx.error(Failure::Other("the input has no audio or video track".into())));
                }
                have_tracks = true;
                if out.send(ContainerEvent::Tracks(Arc::new(tracks))).await.is_err() {
                    return Ok(report);
                }
            }
            ContainerEvent::Media(c) => media_bytes += c.data.len() as u64,
            ContainerEvent::End(_) if !have_tracks => {
                return Err(ctx.error(Failure::MissingMoov { media_bytes }));
            }
            _ => {}
        }
        if out.send(ev).await.is_err() {
            break;
        }
    }
    Ok(report)
}

fn fourcc_name(t: &crate::formats::mp4::moov::Mp4Track) -> &'static str {
    match &t.sample_entry_fourcc.0 {
        b"avc1" | b"avc3" => "h264",
        b"hvc1" | b"hev1" => "hevc",
        b"av01" => "av1",
        b"vp09" => "vp9",
        b"mp4a" => "aac",
        b"Opus" => "opus",
        _ => "unknown codec",
    }
}
