//! `/metrics`: Prometheus text exposition of the server's counters.
//!
//! OWNER: helper "ops". Contract (keep the signatures).

use std::time::Duration;

/// The server's counters; shared as `Arc<Metrics>`, updated lock-free.
#[derive(Debug, Default)]
pub struct Metrics {}

impl Metrics {
    /// Zeroed counters.
    pub fn new() -> Self {
        Metrics::default()
    }
    /// A flush round took `took` for `files` files.
    pub fn flush(&self, took: Duration, files: usize) {
        let _ = (took, files);
    }
    /// `n` input bytes were acknowledged.
    pub fn bytes_in(&self, n: u64) {
        let _ = n;
    }
    /// A PATCH was answered after `took`.
    pub fn patch(&self, took: Duration) {
        let _ = took;
    }
    /// An upload was created / resumed (`+1`) or ended (`-1`).
    pub fn uploads(&self, delta: i64) {
        let _ = delta;
    }
    /// An upload ended in `state` (finished, abandoned, terminated, expired, failed).
    pub fn ended(&self, state: &str) {
        let _ = state;
    }
    /// A request failed with `status`, for the reason `kind` (a short snake_case word).
    pub fn error(&self, status: u16, kind: &str) {
        let _ = (status, kind);
    }
    /// The text for `GET /metrics`.
    pub fn render(&self) -> String {
        String::new()
    }
}
