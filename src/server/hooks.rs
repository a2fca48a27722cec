//! Hooks: HTTP POSTs to the backend before an upload is created (it may refuse it or name
//! the recording) and after it ends (finished, terminated, abandoned, expired, failed).
//!
//! # Pre-create
//!
//! `POST <hooks.pre_create>` with `Content-Type: application/json` and the body
//! [`PreCreate`]: `{"length": N|null, "metadata": {..}, "rec": "..."|null, "authorization": "Bearer ..."|null}`.
//! The answer decides:
//! - **2xx**: allowed. An empty body keeps the defaults; a JSON object [`PreCreateAnswer`]
//!   `{"rec": "name", "format": "mp4"|"fmp4"|"webm"|"mkv"|"matroska"}` (both optional,
//!   other keys ignored) names the recording and/or forces the output format. A body that is
//!   not such an object, or a `rec` outside `[A-Za-z0-9][A-Za-z0-9._-]{0,127}`, counts as a
//!   broken hook (unavailable): silently ignoring the name the backend meant would be worse.
//! - **4xx**: refused; the client gets that status and the first KiB of the body.
//! - anything else (**3xx**, **5xx**), a timeout, or a connection error: the hook is
//!   unavailable; the client gets 503. Redirects are not followed.
//!
//! # Post
//!
//! `POST <hooks.post>` with the [`Event`] JSON (the same line the log gets, schema in
//! [`super::events`]), in a background task: a 2xx ends it; a connection error, timeout,
//! 5xx, 408 or 429 is retried three times (after 0.5 s, 1 s, 2 s); then, or on another 4xx,
//! it gives up with a warning in the log. Delivery is at least once when the backend is
//! up: a retry after a timeout can deliver an event twice, so a backend should key on
//! `id` + `event`. [`Hooks::settle`] waits for the posts in flight (at shutdown).
//!
//! # Transport
//!
//! `reqwest` is built without TLS (the crate stays free of OpenSSL/rustls), so hook URLs
//! must be `http://`: the hooks are meant for a backend next to the server (loopback or a
//! private network). An `https://` URL is warned about at start and every call fails
//! (pre-create: 503). Each request is bounded by `hooks.timeout_secs` (connect to last
//! byte). Proxy environment variables are ignored: hooks go straight to the backend.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

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
pub struct Hooks {
    pre_create: Option<String>,
    post: Option<String>,
    /// The HTTP client (with the timeout), or why it could not be built.
    client: Result<reqwest::Client, String>,
    /// First retry delay of the post hook (doubled each retry).
    backoff: Duration,
    /// Post-hook deliveries in flight.
    pending: Arc<AtomicUsize>,
}

/// Most of a pre-create answer body read (a backend answers a few bytes).
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// Most of a refusal body passed on to the client.
const MAX_REFUSAL_BYTES: usize = 1024;
/// Retries of a post-hook delivery after the first attempt.
const POST_RETRIES: u32 = 3;

/// Counts a post-hook delivery down when dropped.
struct Pending(Arc<AtomicUsize>);

impl Drop for Pending {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Whether `rec` is a valid recording name (it becomes a directory name).
fn valid_rec(rec: &str) -> bool {
    let b = rec.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && b[0].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

/// Reads at most `max` bytes of `resp`'s body (the rest is not read).
async fn body_prefix(resp: &mut reqwest::Response, max: usize) -> Result<Vec<u8>, reqwest::Error> {
    let mut out = Vec::new();
    while out.len() < max {
        match resp.chunk().await? {
            Some(chunk) => {
                let room = max - out.len();
                out.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            None => break,
        }
    }
    Ok(out)
}

/// `bytes` as text, cut to at most `max` bytes on a character boundary.
fn text_prefix(bytes: &[u8], max: usize) -> String {
    let mut s = String::from_utf8_lossy(bytes).into_owned();
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

/// What went wrong with a request, with its cause (reqwest's top error says little).
fn describe(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "failed"
    };
    let mut text = format!("{what}: {e}");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

impl Hooks {
    /// From the configuration (no URLs: no hooks).
    pub fn new(config: &HooksConfig) -> Hooks {
        let timeout = Duration::from_secs(config.timeout_secs.max(1));
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!("livemux/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client for hooks: {e}"));
        let url = |u: &Option<String>, which: &str| {
            let u = u.as_deref().map(str::trim).filter(|u| !u.is_empty())?;
            if !u.starts_with("http://") {
                tracing::warn!(
                    "hooks.{which} = {u:?}: only http:// URLs are supported (no TLS in this build); every call will fail"
                );
            }
            Some(u.to_string())
        };
        if let Err(e) = &client {
            tracing::warn!("{e}");
        }
        Hooks {
            pre_create: url(&config.pre_create, "pre_create"),
            post: url(&config.post, "post"),
            client,
            backoff: Duration::from_millis(500),
            pending: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Asks the pre-create hook; `Ok(default)` when none is configured.
    pub async fn pre_create(&self, request: &PreCreate) -> Result<PreCreateAnswer, HookRefusal> {
        let Some(url) = &self.pre_create else {
            return Ok(PreCreateAnswer::default());
        };
        let unavailable = |why: String| {
            let why = format!("pre-create hook {url}: {why}");
            tracing::warn!("{why}");
            HookRefusal::Unavailable(why)
        };
        let client = self.client.as_ref().map_err(|e| unavailable(e.clone()))?;
        let mut resp = client.post(url).json(request).send().await.map_err(|e| unavailable(describe(&e)))?;
        let status = resp.status().as_u16();
        match status {
            200..=299 => {
                let body = body_prefix(&mut resp, MAX_ANSWER_BYTES + 1)
                    .await
                    .map_err(|e| unavailable(format!("reading its answer {}", describe(&e))))?;
                if body.len() > MAX_ANSWER_BYTES {
                    return Err(unavailable(format!("answer longer than {MAX_ANSWER_BYTES} bytes")));
                }
                if body.iter().all(u8::is_ascii_whitespace) {
                    return Ok(PreCreateAnswer::default());
                }
                let answer: PreCreateAnswer = serde_json::from_slice(&body).map_err(|e| {
                    unavailable(format!(
                        "answered {status} with a body that is not a JSON object {{\"rec\", \"format\"}} ({e}): {:?}",
                        text_prefix(&body, 200)
                    ))
                })?;
                if let Some(rec) = &answer.rec {
                    if !valid_rec(rec) {
                        return Err(unavailable(format!(
                            "answered rec {rec:?}, which is not [A-Za-z0-9][A-Za-z0-9._-]{{0,127}}"
                        )));
                    }
                }
                if let Some(format) = &answer.format {
                    if !super::is_file_format(format) {
                        return Err(unavailable(format!("answered format {format:?}: none of mp4, fmp4, webm, mkv")));
                    }
                }
                Ok(answer)
            }
            400..=499 => {
                // The body is passed on as far as it could be read.
                let body = body_prefix(&mut resp, MAX_REFUSAL_BYTES).await.unwrap_or_default();
                tracing::info!("pre-create hook {url} refused an upload with {status}");
                Err(HookRefusal::Refused { status, body: text_prefix(&body, MAX_REFUSAL_BYTES) })
            }
            _ => Err(unavailable(format!("answered {status}"))),
        }
    }

    /// Posts `event` to the post hook in the background (a few retries), if one is configured.
    ///
    /// Needs a tokio runtime (it spawns a task); outside one it logs a warning and drops
    /// the event.
    pub fn notify(&self, event: &Event) {
        let Some(url) = self.post.clone() else {
            return;
        };
        let client = match &self.client {
            Ok(c) => c.clone(),
            Err(e) => {
                tracing::warn!("post hook {url}: not told of {} of {}: {e}", event.event.as_str(), event.id);
                return;
            }
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!("post hook {url}: not told of {} of {}: no runtime", event.event.as_str(), event.id);
            return;
        };
        let what = format!("{} of {}", event.event.as_str(), event.id);
        let body = event.to_json();
        let backoff = self.backoff;
        let pending = self.pending.clone();
        pending.fetch_add(1, Ordering::SeqCst);
        runtime.spawn(async move {
            // Counted down however the task ends (done, panicked, or dropped at shutdown).
            let _pending = Pending(pending);
            let mut delay = backoff;
            let mut attempt = 0u32;
            loop {
                let sent = client
                    .post(&url)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.clone())
                    .send()
                    .await;
                let (failure, retry) = match sent {
                    Ok(resp) if resp.status().is_success() => break,
                    Ok(resp) => {
                        let status = resp.status().as_u16();
                        (format!("answered {status}"), !(400..500).contains(&status) || status == 408 || status == 429)
                    }
                    Err(e) => (describe(&e), true),
                };
                if !retry || attempt >= POST_RETRIES {
                    let tries = attempt + 1;
                    tracing::warn!("post hook {url}: gave up telling {what} after {tries} attempt(s): {failure}");
                    break;
                }
                tracing::debug!("post hook {url}: {what}: {failure}; retrying in {delay:?}");
                attempt += 1;
                tokio::time::sleep(delay).await;
                delay = delay.saturating_mul(2);
            }
        });
    }

    /// Waits until the post-hook deliveries in flight are done, at most `within`; whether
    /// they all are (for a clean shutdown).
    pub async fn settle(&self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        while self.pending.load(Ordering::SeqCst) > 0 {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// Whether a pre-create hook is configured.
    pub fn has_pre_create(&self) -> bool {
        self.pre_create.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::events::EventKind;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio::sync::mpsc;

    /// One request the test server got: its head (request line and headers) and body.
    #[derive(Debug)]
    struct Got {
        head: String,
        body: String,
    }

    /// A tiny HTTP/1.1 server on a free loopback port answering the i-th connection with
    /// `answers[i]` (the last one repeated; `None`: never answers); its requests arrive on
    /// the channel.
    async fn server(answers: Vec<Option<String>>) -> (String, mpsc::UnboundedReceiver<Got>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            for i in 0.. {
                let Ok((mut sock, _)) = listener.accept().await else { return };
                let answer = answers[i.min(answers.len() - 1)].clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let head_end = loop {
                        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break p + 4;
                        }
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
                    let length = head
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length").then(|| v.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    while buf.len() < head_end + length {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let body = String::from_utf8_lossy(&buf[head_end..]).into_owned();
                    let _ = tx.send(Got { head, body });
                    match answer {
                        Some(a) => {
                            let _ = sock.write_all(a.as_bytes()).await;
                            let _ = sock.shutdown().await;
                        }
                        None => tokio::time::sleep(Duration::from_secs(30)).await,
                    }
                });
            }
        });
        (url, rx)
    }

    fn answer(status: &str, body: &str) -> Option<String> {
        Some(format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ))
    }

    fn hooks(pre: Option<&str>, post: Option<&str>, timeout_secs: u64) -> Hooks {
        let mut h =
            Hooks::new(&HooksConfig { pre_create: pre.map(String::from), post: post.map(String::from), timeout_secs });
        h.backoff = Duration::from_millis(20);
        h
    }

    fn request() -> PreCreate {
        PreCreate {
            length: Some(1234),
            metadata: [("filename".to_string(), "a.webm".to_string())].into(),
            rec: Some("r1".into()),
            authorization: Some("Bearer t".into()),
        }
    }

    /// A loopback URL nothing listens on.
    async fn unreachable() -> String {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", l.local_addr().unwrap());
        drop(l);
        url
    }

    #[tokio::test]
    async fn no_hooks() {
        let h = hooks(None, Some("  "), 5);
        assert!(!h.has_pre_create());
        assert_eq!(h.pre_create(&request()).await.unwrap(), PreCreateAnswer::default());
        h.notify(&Event::new(EventKind::Finished, "x"));
        assert!(h.settle(Duration::ZERO).await);
    }

    #[tokio::test]
    async fn pre_create_allows() {
        let (url, mut rx) = server(vec![answer("204 No Content", "")]).await;
        let h = hooks(Some(&url), None, 5);
        assert_eq!(h.pre_create(&request()).await.unwrap(), PreCreateAnswer::default());
        let got = rx.recv().await.unwrap();
        assert!(got.head.starts_with("POST /hook HTTP/1.1\r\n"), "{}", got.head);
        assert!(got.head.to_ascii_lowercase().contains("content-type: application/json"), "{}", got.head);
        let v: serde_json::Value = serde_json::from_str(&got.body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"length": 1234, "metadata": {"filename": "a.webm"}, "rec": "r1", "authorization": "Bearer t"})
        );
    }

    #[tokio::test]
    async fn pre_create_names() {
        let (url, _rx) = server(vec![answer("200 OK", r#"{"rec":"named-1","format":"webm","other":[1]}"#)]).await;
        let h = hooks(Some(&url), None, 5);
        let a = h.pre_create(&request()).await.unwrap();
        assert_eq!(a, PreCreateAnswer { rec: Some("named-1".into()), format: Some("webm".into()) });
    }

    #[tokio::test]
    async fn pre_create_refuses() {
        let long = "é".repeat(1000); // 2000 bytes: cut to 1 KiB on a character boundary
        let (url, _rx) = server(vec![answer("403 Forbidden", &long), answer("418 I'm a teapot", "no")]).await;
        let h = hooks(Some(&url), None, 5);
        match h.pre_create(&request()).await {
            Err(HookRefusal::Refused { status: 403, body }) => {
                assert_eq!(body.len(), 1024);
                assert!(body.chars().all(|c| c == 'é'));
            }
            other => panic!("{other:?}"),
        }
        match h.pre_create(&request()).await {
            Err(HookRefusal::Refused { status: 418, body }) => assert_eq!(body, "no"),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn pre_create_unavailable() {
        // 5xx, a redirect, bad answers.
        for a in [
            answer("500 Internal Server Error", "oops"),
            answer("302 Found", ""),
            answer("200 OK", "ok"),
            answer("200 OK", r#"{"rec":"../etc"}"#),
            answer("200 OK", r#"{"rec":""}"#),
            answer("200 OK", r#"{"format":"avi"}"#),
        ] {
            let (url, _rx) = server(vec![a.clone()]).await;
            let h = hooks(Some(&url), None, 5);
            let r = h.pre_create(&request()).await;
            assert!(matches!(r, Err(HookRefusal::Unavailable(_))), "{a:?}: {r:?}");
        }
        // Nothing listening.
        let h = hooks(Some(&unreachable().await), None, 5);
        match h.pre_create(&request()).await {
            Err(HookRefusal::Unavailable(why)) => assert!(why.contains("connect"), "{why}"),
            other => panic!("{other:?}"),
        }
        // An https URL: no TLS in this build.
        let h = hooks(Some("https://127.0.0.1:9/hook"), None, 5);
        assert!(matches!(h.pre_create(&request()).await, Err(HookRefusal::Unavailable(_))));
    }

    #[tokio::test]
    async fn pre_create_times_out() {
        let (url, _rx) = server(vec![None]).await;
        let h = hooks(Some(&url), None, 1);
        let t = std::time::Instant::now();
        match h.pre_create(&request()).await {
            Err(HookRefusal::Unavailable(why)) => assert!(why.contains("timed out"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    }

    #[tokio::test]
    async fn notify_retries_until_it_is_told() {
        let (url, mut rx) = server(vec![answer("503 Service Unavailable", ""), None, answer("200 OK", "")]).await;
        // A 1 s timeout: the second attempt (never answered) times out.
        let h = hooks(None, Some(&url), 1);
        let mut e = Event::new(EventKind::Finished, "up1");
        e.offset = 42;
        h.notify(&e);
        assert!(h.settle(Duration::from_secs(30)).await);
        let mut bodies = Vec::new();
        while let Ok(got) = rx.try_recv() {
            bodies.push(got.body);
        }
        assert_eq!(bodies.len(), 3, "{bodies:?}");
        for b in &bodies {
            let v: serde_json::Value = serde_json::from_str(b).unwrap();
            assert_eq!(
                (v["event"].as_str(), v["id"].as_str(), v["offset"].as_u64()),
                (Some("finished"), Some("up1"), Some(42))
            );
        }
    }

    #[tokio::test]
    async fn notify_gives_up() {
        // Always 500: one attempt and three retries.
        let (url, mut rx) = server(vec![answer("500 Internal Server Error", "")]).await;
        let h = hooks(None, Some(&url), 5);
        h.notify(&Event::new(EventKind::Terminated, "up2"));
        assert!(h.settle(Duration::from_secs(30)).await);
        let mut n = 0;
        while rx.try_recv().is_ok() {
            n += 1;
        }
        assert_eq!(n, 4);
        // A 404 is not retried.
        let (url, mut rx) = server(vec![answer("404 Not Found", "")]).await;
        let h = hooks(None, Some(&url), 5);
        h.notify(&Event::new(EventKind::Terminated, "up3"));
        assert!(h.settle(Duration::from_secs(30)).await);
        assert!(rx.try_recv().is_ok());
        assert!(rx.try_recv().is_err());
        // Nothing listening: gives up too, and settles.
        let h = hooks(None, Some(&unreachable().await), 5);
        h.notify(&Event::new(EventKind::Abandoned, "up4"));
        assert!(h.settle(Duration::from_secs(30)).await);
    }
}
