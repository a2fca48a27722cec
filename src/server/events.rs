//! One JSON line per upload state change, logged with `tracing` (target `livemux::event`)
//! and posted to the post hook.
//!
//! OWNER: helper "ops". Contract (keep the signatures).

use serde::Serialize;

/// What happened to an upload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// Created (POST).
    Created,
    /// Taken up again after a restart (journal replayed).
    Resumed,
    /// The declared length arrived and the output was finalized.
    Finished,
    /// Idle past the limit: finalized with what arrived.
    Abandoned,
    /// Deleted by the client (tus termination).
    Terminated,
    /// Past its expiry: removed.
    Expired,
    /// The recording failed (its error in `error`); the journal is kept.
    Failed,
}

/// One track of the recording, as events and `GET /files/{id}/status` show it.
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq)]
pub struct TrackInfo {
    /// 1-based, as `livemux probe` numbers tracks.
    pub number: u32,
    /// "video", "audio"...
    pub kind: String,
    /// Codec name ("h264", "opus"...).
    pub codec: String,
}

/// One event.
#[derive(Clone, Debug, Serialize)]
pub struct Event {
    /// Schema version of the line (1).
    pub v: u32,
    /// What happened.
    pub event: EventKind,
    /// The upload id (`/files/{id}`).
    pub id: String,
    /// The recording name the backend chose, if any.
    pub rec: Option<String>,
    /// Input bytes durable.
    pub offset: u64,
    /// Declared upload length, once known.
    pub length: Option<u64>,
    /// The output path, relative to the data dir.
    pub output: Option<String>,
    /// Output bytes written.
    pub output_bytes: u64,
    /// Media duration written, ms.
    pub duration_ms: u64,
    /// The tracks, once known.
    pub tracks: Vec<TrackInfo>,
    /// Notes of the remux.
    pub notes: Vec<String>,
    /// The error, for `failed`.
    pub error: Option<String>,
    /// RFC 3339 UTC time.
    pub time: String,
}

/// Logs `event` as one JSON line.
pub fn emit(event: &Event) {
    tracing::info!(target: "livemux::event", "{}", serde_json::to_string(event).unwrap_or_default());
}

/// The time now, RFC 3339 UTC (`2026-12-01T11:08:46Z`).
pub fn now_rfc3339() -> String {
    String::new()
}
