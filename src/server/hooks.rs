//! Hooks: HTTP POSTs to the backend before an upload is created (it may refuse it or name
//! the recording) and after it ends (finished, terminated, abandoned, expired, failed).
//!
//! OWNER: helper "ops". Contract (keep the signatures).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::config::HooksConfig;
use super::events::Event;

/// What the pre-create hook is asked.
#[derive(Clone, Debug, Serialize)]
pub struct PreCreate {
    /// Declared length (`None`: deferred).
    pub length: Option<u64>,
    /// The decoded `Upload-Metadata`.
    pub metadata: BTreeMap<String, String>,
    /// The `rec` claim of the token, if any.
    pub rec: Option<String>,
    /// The request's `Authorization` header, for a backend that authorizes by its own rules.
    pub authorization: Option<String>,
}

/// The pre-create hook's answer when it allows the upload (a 2xx with an optional JSON
/// body); any other status refuses it.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct PreCreateAnswer {
    /// The recording name to use (replaces the token's).
    pub rec: Option<String>,
    /// Output format to force: "mp4", "fmp4", "webm", "mkv".
    pub format: Option<String>,
}

/// Why the pre-create hook did not allow an upload.
#[derive(Debug)]
pub enum HookRefusal {
    /// The hook answered with this status (4xx) and body: passed on to the client.
    Refused {
        /// The hook's status.
        status: u16,
        /// The hook's body.
        body: String,
    },
    /// The hook could not be reached or failed (5xx, timeout): the client gets 503.
    Unavailable(String),
}

/// The configured hooks.
#[derive(Clone, Debug)]
pub struct Hooks {}

impl Hooks {
    /// From the configuration (no URLs: no hooks).
    pub fn new(config: &HooksConfig) -> Hooks {
        let _ = config;
        Hooks {}
    }

    /// Asks the pre-create hook; `Ok(default)` when none is configured.
    pub async fn pre_create(&self, request: &PreCreate) -> Result<PreCreateAnswer, HookRefusal> {
        let _ = request;
        Ok(PreCreateAnswer::default())
    }

    /// Posts `event` to the post hook in the background (a few retries), if one is configured.
    pub fn notify(&self, event: &Event) {
        let _ = event;
    }
}
