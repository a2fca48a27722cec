//! One JSON line per upload state change, logged with `tracing` (target `livemux::event`,
//! level INFO) and posted, for the end states, to the post hook.
//!
//! Why a line per change: a log shipper (or a `grep`) can follow every recording without
//! asking the server, and the post hook gets exactly the same JSON, so a backend needs to
//! understand one schema.
//!
//! # Schema, version 1
//!
//! One JSON object; every key is always present (`null` when unknown):
//!
//! | key | type | meaning |
//! |---|---|---|
//! | `v` | number | schema version: `1`. New keys may be added within a version; a change of meaning gets a new version |
//! | `event` | string | `created`, `resumed` (taken up after a restart: journal replayed), `finished` (declared length reached, output finalized), `abandoned` (idle past the limit: finalized with what arrived), `terminated` (DELETE: removed), `expired` (past its expiry: removed), `failed` (remux error; journal kept) |
//! | `id` | string | the upload id, as in `/files/{id}` |
//! | `rec` | string or null | the recording name the token or the pre-create hook chose |
//! | `offset` | number | input bytes durable (acknowledged) |
//! | `length` | number or null | declared upload length, once known (`null` while deferred) |
//! | `output` | string or null | the output file, relative to the data dir (`<id>/recording.mp4`) |
//! | `output_bytes` | number | output bytes written |
//! | `duration_ms` | number | media duration written, milliseconds |
//! | `tracks` | array | `{"number": 1, "kind": "video", "codec": "h264"}` per track (`number` 1-based, as `livemux probe` numbers them) |
//! | `notes` | array of strings | notes of the remux (what it repaired or dropped) |
//! | `error` | string or null | the error, for `failed` |
//! | `time` | string | RFC 3339 UTC time with milliseconds, `2026-12-01T11:17:31.123Z` |
//!
//! With the default log format the line reads `<time>  INFO livemux::event: {"v":1,...}`:
//! the JSON starts at the first `{`.

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
pub use crate::events::TrackInfo;

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

impl EventKind {
    /// The name as it appears in the JSON (`"finished"`...), also the `state` label of
    /// `livemux_uploads_ended_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Created => "created",
            EventKind::Resumed => "resumed",
            EventKind::Finished => "finished",
            EventKind::Abandoned => "abandoned",
            EventKind::Terminated => "terminated",
            EventKind::Expired => "expired",
            EventKind::Failed => "failed",
        }
    }

    /// Whether the upload ends with this event (the post hook is told of these).
    pub fn is_end(self) -> bool {
        !matches!(self, EventKind::Created | EventKind::Resumed)
    }
}

impl Event {
    /// Schema version of the lines this build writes.
    pub const VERSION: u32 = 1;

    /// An event of `kind` for upload `id`, stamped now, every other field empty.
    pub fn new(kind: EventKind, id: impl Into<String>) -> Event {
        Event {
            v: Event::VERSION,
            event: kind,
            id: id.into(),
            rec: None,
            offset: 0,
            length: None,
            output: None,
            output_bytes: 0,
            duration_ms: 0,
            tracks: Vec::new(),
            notes: Vec::new(),
            error: None,
            time: now_rfc3339(),
        }
    }

    /// The event as one line of JSON (no newline inside: serde_json escapes them).
    pub fn to_json(&self) -> String {
        // Serializing plain strings and numbers cannot fail; keep a line anyway if it did.
        serde_json::to_string(self).unwrap_or_else(|e| {
            format!(
                r#"{{"v":{},"event":"{}","id":{:?},"error":"event not serializable: {}"}}"#,
                self.v,
                self.event.as_str(),
                self.id,
                e
            )
        })
    }
}

/// Logs `event` as one JSON line.
pub fn emit(event: &Event) {
    let json = event.to_json();
    tracing::info!(target: "livemux::event", "{json}");
}

/// The current time as RFC 3339 UTC with milliseconds (`2026-12-01T11:17:31.123Z`).
pub fn now_rfc3339() -> String {
    rfc3339(std::time::SystemTime::now())
}

/// `t` as RFC 3339 UTC with milliseconds, without a date crate (times before 1970 too).
pub fn rfc3339(t: std::time::SystemTime) -> String {
    let ms: i128 = match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => i128::try_from(d.as_millis()).unwrap_or(i128::MAX),
        Err(e) => -i128::try_from(e.duration().as_millis()).unwrap_or(i128::MAX),
    };
    // Clamp to years 0000..=9999, what the format can write.
    let ms = ms.clamp(-62_167_219_200_000, 253_402_300_799_999);
    let secs = ms.div_euclid(1000);
    let milli = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{milli:03}Z", sod / 3600, sod % 3600 / 60, sod % 60)
}

/// The proleptic Gregorian date (year, month 1-12, day 1-31) of `z` days after
/// 1970-01-01: Howard Hinnant's `civil_from_days`
/// (<https://howardhinnant.github.io/date_algorithms.html#civil_from_days>), which works
/// in 400-year eras starting on March 1st so that the leap day is the era's last day.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468; // days from 0000-03-01
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March = 0
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32; // [1, 31]
    let m = (if mp < 10 { mp + 3 } else { mp - 9 }) as u32; // [1, 12]
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(59), (1970, 3, 1));
        assert_eq!(civil_from_days(10_956), (1999, 12, 31));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29)); // 2000 is a leap year
        assert_eq!(civil_from_days(11_017), (2000, 3, 1));
        assert_eq!(civil_from_days(47_541), (2100, 3, 1)); // 2100 is not: Feb 28 is the day before
        assert_eq!(civil_from_days(47_540), (2100, 2, 28));
        assert_eq!(civil_from_days(-719_468), (0, 3, 1));
        // Every day of 1900..2400 follows the day before.
        let mut prev = civil_from_days(-25_568);
        assert_eq!(prev, (1899, 12, 31));
        for z in -25_567..157_000 {
            let (y, m, d) = civil_from_days(z);
            let next_ok = (y, m, d) == (prev.0, prev.1, prev.2 + 1)
                || (y, m, d) == (prev.0, prev.1 + 1, 1)
                || (y, m, d) == (prev.0 + 1, 1, 1);
            assert!(next_ok, "{prev:?} then {:?} (day {z})", (y, m, d));
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let len = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m as usize - 1];
            assert!(d <= len, "{y}-{m}-{d}");
            prev = (y, m, d);
        }
    }

    #[test]
    fn rfc3339_times() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_millis(1_764_588_451_123)), "2025-12-01T11:27:31.123Z");
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_secs(4_107_542_399)), "2100-02-28T23:59:59.000Z");
        assert_eq!(rfc3339(UNIX_EPOCH - Duration::from_millis(1)), "1969-12-31T23:59:59.999Z");
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_secs(1 << 40)), "9999-12-31T23:59:59.999Z");
        let now = now_rfc3339();
        assert_eq!(now.len(), 24, "{now}");
        assert!(now.starts_with("20") && now.ends_with('Z'), "{now}");
    }

    #[test]
    fn event_json_has_every_field() {
        let mut e = Event::new(EventKind::Finished, "abc");
        e.rec = Some("r\n\"1".into());
        e.tracks.push(TrackInfo { number: 1, kind: "video".into(), codec: "h264".into() });
        let json = e.to_json();
        assert!(!json.contains('\n'), "{json}");
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        for k in [
            "v",
            "event",
            "id",
            "rec",
            "offset",
            "length",
            "output",
            "output_bytes",
            "duration_ms",
            "tracks",
            "notes",
            "error",
            "time",
        ] {
            assert!(keys.contains(&k), "{k} missing in {json}");
        }
        assert_eq!(v["v"], 1);
        assert_eq!(v["event"], "finished");
        assert_eq!(v["rec"], "r\n\"1");
        assert_eq!(v["length"], serde_json::Value::Null);
        assert_eq!(v["tracks"][0]["codec"], "h264");
        for k in [
            EventKind::Created,
            EventKind::Resumed,
            EventKind::Finished,
            EventKind::Abandoned,
            EventKind::Terminated,
            EventKind::Expired,
            EventKind::Failed,
        ] {
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
    }
}
