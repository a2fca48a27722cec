//! What a run reports while it runs: typed [`RunEvent`]s, given to an [`Observer`] and
//! logged with `tracing`.
//!
//! One stream serves three readers: a program embedding livemux (its observer gets every
//! event as it happens, typed), `livemux -v` (each event is a `tracing` event: fragments,
//! tracks and finalize steps at INFO, notes at DEBUG, input reads at TRACE; target
//! `livemux::run`), and `livemux --events` (each event becomes one JSON line; the schema,
//! version [`EVENTS_VERSION`], is `schemas/events.schema.json` and the README's "Events").
//!
//! Events are emitted by the stage that knows the fact, when it happens: the source after
//! each read, the mux when it learns the tracks, the sink after each fragment is durable
//! (so a `fragment` event is as much a promise as the file: a crash after it loses nothing
//! it counts), the runtime when a stage ends with notes; the in-place writers
//! ([`finalize_file_observed`](crate::finalize::finalize_file_observed), appends) after
//! each step of their write plan.

use std::sync::Arc;

use serde::Serialize;

/// Version of the `--events` lines this build writes (their `"v"`). New keys may be added
/// within a version; a change of meaning gets a new version.
pub const EVENTS_VERSION: u32 = 1;

/// Receives every event of a run, from the thread of the stage that emits it: keep it
/// quick (hand the event to a channel if it has work to do).
pub type Observer = Arc<dyn Fn(&RunEvent) + Send + Sync>;

/// One thing that happened during a run.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum RunEvent {
    /// Input bytes read so far by a source (for progress; not written by `--events`).
    Read {
        /// The source stage.
        stage: String,
        /// Bytes read from the start of the input.
        bytes: u64,
    },
    /// The tracks the output will carry, known before the first fragment.
    Tracks {
        /// The mux stage.
        stage: String,
        /// Every track, numbered from 1 in output order (as `livemux probe` numbers them).
        tracks: Vec<TrackInfo>,
    },
    /// A fragment is written and as durable as the sink's durability makes it.
    Fragment(FragmentEvent),
    /// A note of a stage (a dropped track, a repaired timestamp...), as the run's report
    /// lists it.
    Note {
        /// The stage.
        stage: String,
        /// The note.
        text: String,
    },
    /// One step of an in-place change is durable (finishing a regular MP4 at a clean stop,
    /// `livemux finalize`, an append).
    FinalizeStep(StepEvent),
}

/// One track of an output, as events, `livemux serve`'s status and `livemux probe` show it.
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct TrackInfo {
    /// 1-based, in output order.
    pub number: u32,
    /// "video", "audio"...
    pub kind: String,
    /// Codec name ("h264", "opus"...).
    pub codec: String,
}

impl TrackInfo {
    /// The tracks of `tracks`, numbered from 1.
    pub fn list(tracks: &crate::TrackSet) -> Vec<TrackInfo> {
        (1..)
            .zip(tracks.iter())
            .map(|(number, t)| TrackInfo { number, kind: t.kind.to_string(), codec: t.codec.name().to_string() })
            .collect()
    }
}

/// A fragment written by a sink.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FragmentEvent {
    /// The sink stage.
    pub stage: String,
    /// The output: a file, `-` for stdout, or an HLS directory.
    pub output: String,
    /// `header`, `media` or `trailer`.
    pub kind: &'static str,
    /// Where the fragment starts in the output (for HLS: in the stream of segments).
    pub offset: u64,
    /// Its length in bytes.
    pub size: u64,
    /// Packets it carries.
    pub packets: u32,
    /// Start of its media on the presentation timeline, ms (`None` for headers).
    pub start_ms: Option<i64>,
    /// Duration of its media, ms.
    pub duration_ms: u64,
    /// Media this sink has written so far, ms.
    pub media_ms: u64,
    /// Fragments with media this sink has written so far.
    pub fragments: u64,
    /// What was done to make it durable: `fsync`, `flush` or `none`.
    pub durability: &'static str,
    /// Time taken by the write and the fsync (or flush), ms.
    pub write_ms: f64,
}

/// One durable step of an in-place change.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StepEvent {
    /// The file changed.
    pub file: String,
    /// 1-based number of the step.
    pub step: u64,
    /// Steps in the plan, when known before it starts.
    pub steps: Option<u64>,
    /// `write`, `copy`, `truncate` or `sync`.
    pub kind: &'static str,
    /// Where the step writes (the new length for `truncate`).
    pub offset: u64,
    /// Bytes it writes.
    pub bytes: u64,
}

impl RunEvent {
    /// The event's name, as in the JSON (`"fragment"`...).
    pub fn name(&self) -> &'static str {
        match self {
            RunEvent::Read { .. } => "read",
            RunEvent::Tracks { .. } => "tracks",
            RunEvent::Fragment(_) => "fragment",
            RunEvent::Note { .. } => "note",
            RunEvent::FinalizeStep(_) => "finalize_step",
        }
    }
}

impl std::fmt::Display for RunEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunEvent::Read { stage, bytes } => write!(f, "{stage}: {bytes} bytes read"),
            RunEvent::Tracks { stage, tracks } => {
                write!(f, "{stage}: tracks")?;
                for t in tracks {
                    write!(f, " {}:{} {}", t.number, t.kind, t.codec)?;
                }
                Ok(())
            }
            RunEvent::Fragment(e) => write!(
                f,
                "{}: {} fragment {} at {} ({} bytes, {} packets, {} ms of media, {} ms in all), {} in {:.1} ms",
                e.stage,
                e.kind,
                e.output,
                e.offset,
                e.size,
                e.packets,
                e.duration_ms,
                e.media_ms,
                e.durability,
                e.write_ms
            ),
            RunEvent::Note { stage, text } => write!(f, "{stage}: note: {text}"),
            RunEvent::FinalizeStep(s) => {
                write!(f, "{}: step {}", s.file, s.step)?;
                if let Some(n) = s.steps {
                    write!(f, " of {n}")?;
                }
                write!(f, ": {} {} bytes at {}", s.kind, s.bytes, s.offset)
            }
        }
    }
}

/// Logs `event` (target `livemux::run`) and gives it to `observer`.
pub(crate) fn emit(observer: Option<&Observer>, event: RunEvent) {
    match &event {
        RunEvent::Read { .. } => tracing::trace!(target: "livemux::run", "{event}"),
        RunEvent::Note { .. } => tracing::debug!(target: "livemux::run", "{event}"),
        _ => tracing::info!(target: "livemux::run", "{event}"),
    }
    if let Some(o) = observer {
        o(&event);
    }
}

/// The event of one applied step of a write plan.
pub(crate) fn step_event(file: &std::path::Path, n: usize, steps: usize, step: &crate::io::WriteStep) -> RunEvent {
    use crate::io::WriteStep;
    let (kind, offset) = match step {
        WriteStep::Write { offset, .. } => ("write", *offset),
        WriteStep::Copy { to, .. } => ("copy", *to),
        WriteStep::Truncate { len } => ("truncate", *len),
        WriteStep::Sync => ("sync", 0),
    };
    RunEvent::FinalizeStep(StepEvent {
        file: file.display().to_string(),
        step: n as u64 + 1,
        steps: Some(steps as u64),
        kind,
        offset,
        bytes: step.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialize_with_their_name() {
        let e = RunEvent::Note { stage: "mux".into(), text: "dropped".into() };
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["event"], e.name());
        assert_eq!(json["stage"], "mux");
        let f = RunEvent::Fragment(FragmentEvent {
            stage: "sink".into(),
            output: "out.mp4".into(),
            kind: "media",
            offset: 10,
            size: 20,
            packets: 3,
            start_ms: Some(0),
            duration_ms: 1000,
            media_ms: 1000,
            fragments: 1,
            durability: "fsync",
            write_ms: 1.5,
        });
        let json = serde_json::to_value(&f).unwrap();
        assert_eq!(json["event"], "fragment");
        assert_eq!(json["offset"], 10);
        assert!(f.to_string().contains("media fragment out.mp4 at 10"), "{f}");
    }
}
