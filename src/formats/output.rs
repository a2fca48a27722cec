//! The output side of the core: the output format, which tracks it can carry
//! (`--skip-unsupported`), the muxer for it, and [`Output`], which turns
//! [`PacketEvent`]s into output [`Fragment`]s.

use std::sync::Arc;

use bytes::BytesMut;

use super::failure::Failure;
use super::fragmenter::FragmentPolicy;
use super::matroska::mux::MkvMuxer;
use super::matroska::tracks::{codec_id_and_private, webm_compatible};
use super::mp4::fmp4::Fmp4Muxer;
use super::mp4::init::write_sample_entry;
use super::mp4::regular::{RegularMp4Muxer, DEFAULT_RESERVE_MS};
use super::{MuxError, Muxer, PacketEvent};
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
    /// Fragmented MP4 for HLS: the codecs HLS players name, fragments cut as segments
    /// (written as an HLS directory by a sink with `hls`; README "Live HLS").
    Hls,
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
            "hls" => Ok(MuxFormat::Hls),
            _ => Err(format!("unknown output format '{s}' (expected fmp4, mp4, mkv, webm, matroska or hls)")),
        }
    }
}

impl MuxFormat {
    /// The format a file name asks for: `.webm`, `.mkv`/`.mka`, `.m3u8`; `None` otherwise.
    pub fn from_extension(path: &std::path::Path) -> Option<MuxFormat> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "webm" => Some(MuxFormat::Webm),
            "mkv" | "mka" => Some(MuxFormat::Mkv),
            "m3u8" => Some(MuxFormat::Hls),
            _ => None,
        }
    }
}

/// Settings of the output (and of the `mux` stage).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MuxConfig {
    /// The output container.
    pub format: MuxFormat,
    /// Where fragments end.
    pub fragment: FragmentPolicy,
    /// `mp4`: the expected duration, for which room is reserved before the media so that
    /// the final index goes first (0: none, the index goes at the end).
    pub reserve_ms: u64,
    /// Drop (with a note) the tracks the output format cannot carry, instead of refusing
    /// the input.
    pub skip_unsupported: bool,
    /// The input's duration when it is known before the output starts (a finished file):
    /// `mp4` sizes its reserve and its running index for it (with some to spare) instead of
    /// for `reserve_ms` and at least an hour, so that a short file does not grow.
    pub known_duration_ms: Option<u64>,
}

impl Default for MuxConfig {
    fn default() -> Self {
        MuxConfig {
            format: MuxFormat::default(),
            fragment: FragmentPolicy::default(),
            reserve_ms: DEFAULT_RESERVE_MS,
            skip_unsupported: false,
            known_duration_ms: None,
        }
    }
}

/// Whether `format` can carry track `index`: the muxer's own refusal when it cannot.
pub fn check_writable(format: MuxFormat, index: usize, track: &Track) -> Result<(), MuxError> {
    match format {
        MuxFormat::Fmp4 | MuxFormat::Mp4 => write_sample_entry(&mut BytesMut::new(), index, track),
        MuxFormat::Hls => match crate::codecs::rfc6381::codec_string(*b"hls ", &track.codec) {
            Some(_) => write_sample_entry(&mut BytesMut::new(), index, track),
            None => Err(MuxError::Unsupported {
                track: index,
                codec: track.codec.name(),
                format: "hls",
                reason: "HLS players take H.264, HEVC, AV1, VP9, AAC, Opus, FLAC, MP3, AC-3 and E-AC-3".into(),
            }),
        },
        MuxFormat::Mkv | MuxFormat::Matroska => codec_id_and_private(index, track, false).map(drop),
        MuxFormat::Webm => codec_id_and_private(index, track, true).map(drop),
    }
}

/// The tracks `format` can carry, and for each input track its index among them (`None`:
/// dropped, with a note naming it).
pub fn writable_tracks(
    format: MuxFormat,
    tracks: &TrackSet,
    notes: &mut Vec<String>,
) -> (TrackSet, Vec<Option<usize>>) {
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

/// The muxer `config` asks for, over `tracks`.
pub fn make_muxer(config: &MuxConfig, tracks: TrackSet) -> Box<dyn Muxer> {
    match config.format {
        MuxFormat::Fmp4 | MuxFormat::Hls => Box::new(Fmp4Muxer::new(tracks, config.fragment)),
        MuxFormat::Mp4 => Box::new(match config.known_duration_ms {
            Some(ms) => RegularMp4Muxer::for_duration(tracks, config.fragment, ms),
            None => RegularMp4Muxer::new(tracks, config.fragment, config.reserve_ms),
        }),
        MuxFormat::Mkv => Box::new(MkvMuxer::new(tracks, config.fragment, false)),
        MuxFormat::Webm => Box::new(MkvMuxer::new(tracks, config.fragment, true)),
        MuxFormat::Matroska => {
            let webm = webm_compatible(&tracks);
            Box::new(MkvMuxer::new(tracks, config.fragment, webm))
        }
    }
}

/// How a second track list differs from the first: the first track that differs and what
/// differs in it, or `None` when they are the same.
fn tracks_change(old: &Tracks, new: &Tracks) -> Option<MuxError> {
    if old.len() != new.len() {
        let what = format!("the track count ({} then {})", old.len(), new.len());
        return Some(MuxError::TracksChanged { track: old.len().min(new.len()), what });
    }
    old.iter().zip(new.iter()).enumerate().find_map(|(i, (a, b))| {
        let what = if a.kind != b.kind {
            "the track kind"
        } else if a.codec != b.codec {
            "the codec parameters"
        } else if a.timescale != b.timescale {
            "the timescale"
        } else if a != b {
            "the track description"
        } else {
            return None;
        };
        Some(MuxError::TracksChanged { track: i, what: what.into() })
    })
}

/// The output: packets in, fragments out, through the muxer of [`MuxConfig::format`].
pub struct Output {
    config: MuxConfig,
    muxer: Option<Box<dyn Muxer>>,
    /// The tracks as they came in (before `--skip-unsupported`).
    input_tracks: Option<TrackSet>,
    /// Input track index -> output track index, when `--skip-unsupported` dropped some.
    track_map: Option<Vec<Option<usize>>>,
    notes: Vec<String>,
}

impl Output {
    /// An output with `config`; the muxer is made when the tracks come.
    pub fn new(config: MuxConfig) -> Self {
        Output { config, muxer: None, input_tracks: None, track_map: None, notes: Vec::new() }
    }

    /// The tracks the output was begun with, as they came in.
    pub fn tracks(&self) -> Option<&TrackSet> {
        self.input_tracks.as_ref()
    }

    /// Takes one event; appends the fragments it completes to `out` (the header with the
    /// tracks, the last fragments and any finalize fragments with `End`).
    pub fn push(&mut self, ev: PacketEvent, out: &mut Vec<crate::model::Fragment>) -> Result<(), Failure> {
        match ev {
            PacketEvent::Tracks(tracks) => self.begin(tracks, out)?,
            PacketEvent::Packets(packets) => {
                let Some(m) = self.muxer.as_mut() else {
                    return Err(Failure::Internal("packets came before the tracks".into()));
                };
                for mut p in packets {
                    if let Some(map) = &self.track_map {
                        match map.get(p.track) {
                            Some(Some(t)) => p.track = *t,
                            Some(None) => continue, // a track dropped by --skip-unsupported
                            None => return Err(MuxError::NoSuchTrack { track: p.track, tracks: map.len() }.into()),
                        }
                    }
                    out.extend(m.push(p)?);
                }
            }
            PacketEvent::Boundary => {
                if let Some(m) = self.muxer.as_mut() {
                    out.extend(m.boundary()?);
                }
            }
            PacketEvent::End(_) => {
                if let Some(m) = self.muxer.as_mut() {
                    out.extend(m.finish()?);
                }
            }
        }
        Ok(())
    }

    /// The tracks: the muxer and its header, or (a second time) a check that they did not
    /// change.
    fn begin(&mut self, tracks: TrackSet, out: &mut Vec<Fragment>) -> Result<(), Failure> {
        if let Some(old) = &self.input_tracks {
            return match tracks_change(old, &tracks) {
                Some(e) => Err(e.into()),
                None => Ok(()),
            };
        }
        self.input_tracks = Some(tracks.clone());
        let tracks = if self.config.skip_unsupported {
            let (kept, map) = writable_tracks(self.config.format, &tracks, &mut self.notes);
            if kept.is_empty() {
                let why = self.notes.join("; ");
                return Err(Failure::Unsupported(format!("no track can be written: {why}")));
            }
            if map.iter().any(Option::is_none) {
                self.track_map = Some(map);
            }
            kept
        } else {
            // Refused here, before any output: a muxer may write what its format's
            // players cannot take (fragmented MP4 carries VP8; HLS has no name for it).
            for (i, t) in tracks.iter().enumerate() {
                check_writable(self.config.format, i, t)?;
            }
            tracks
        };
        let mut m = make_muxer(&self.config, tracks);
        out.push(m.header()?);
        self.muxer = Some(m);
        Ok(())
    }

    /// What the output did that the user should know (tracks dropped, the index's place);
    /// complete after `End`.
    pub fn take_notes(&mut self) -> Vec<String> {
        let mut notes = std::mem::take(&mut self.notes);
        notes.extend(self.muxer.as_ref().map(|m| m.notes()).unwrap_or_default());
        notes
    }
}
