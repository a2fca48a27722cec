//! The tus 1.0 protocol (<https://tus.io/protocols/resumable-upload>): core (HEAD, PATCH,
//! OPTIONS), creation (with `Upload-Defer-Length`), creation-with-upload, termination,
//! expiration and checksum (sha1, sha256, md5), plus livemux's own `status` and `output`
//! routes, `/metrics` and `/healthz`.
//!
//! Every refusal has its status: 400 a malformed header, 401/403 the token, 404 an
//! unknown upload, 409 an offset that is not the durable one (the body of the answer
//! says which is), 410 an upload that ended, 412 a missing or other `Tus-Resumable`, 413
//! past a size limit, 415 a PATCH that is not `application/offset+octet-stream`, 422
//! bytes that are not a recording, 460 a checksum mismatch, 503 (+ `Retry-After`) too
//! many recordings open, 507 the disk below its free-space floor.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine;
use bytes::Bytes;
use futures::StreamExt;

use super::auth::{Access, Auth, AuthError};
use super::hooks::{HookRefusal, PreCreate};
use super::stored::Shared;
use super::upload::{state_name, NewUpload, Refusal, Registry, State as UploadState, Upload, LIVE_PLAYLIST};
use crate::formats::hls::{media_file, MediaFile, MEDIA_PLAYLIST};

const TUS_VERSION: &str = "1.0.0";
const EXTENSIONS: &str = "creation,creation-with-upload,creation-defer-length,termination,expiration,checksum";
const CHECKSUMS: &str = "sha1,sha256,md5";
const OFFSET_OCTET_STREAM: &str = "application/offset+octet-stream";
/// `Retry-After` of a 503 for too many open recordings, seconds.
const RETRY_AFTER_SECS: u32 = 10;

/// What every handler shares.
#[derive(Clone)]
pub struct App {
    pub registry: Arc<Registry>,
    pub auth: Auth,
    pub disk: Arc<super::DiskWatch>,
}

/// The routes.
pub fn router(app: App) -> Router {
    let mut router = Router::new()
        .route("/files", post(create).options(options))
        .route("/files/", post(create).options(options))
        .route("/files/{id}", axum::routing::head(head).patch(patch).delete(terminate).options(options))
        .route("/files/{id}/status", get(status))
        .route("/files/{id}/output", get(output))
        .route("/files/{id}/{file}", get(live))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics));
    if app.registry.config.demo {
        router = router
            .route("/", get(|| async { page("text/html; charset=utf-8", include_str!("../../web/demo.html")) }))
            .route(
                "/web/livemux-recorder.js",
                get(|| async { page("text/javascript", include_str!("../../web/livemux-recorder.js")) }),
            )
            .route(
                "/web/vendor/tus.min.js",
                get(|| async { page("text/javascript", include_str!("../../web/vendor/tus.min.js")) }),
            );
    }
    router.with_state(app)
}

fn page(content_type: &'static str, text: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], text).into_response()
}

async fn metrics(State(app): State<App>) -> Response {
    let mut text = app.registry.metrics.render();
    if let Some(shared) = &app.registry.shared {
        text.push_str(&shared.moved.render());
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// A refusal as an answer.
#[derive(Debug)]
struct Problem {
    status: StatusCode,
    message: String,
    headers: Vec<(HeaderName, String)>,
}

impl Problem {
    fn new(status: u16, message: impl Into<String>) -> Problem {
        Problem {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            message: message.into(),
            headers: Vec::new(),
        }
    }

    fn header(mut self, name: HeaderName, value: impl ToString) -> Problem {
        self.headers.push((name, value.to_string()));
        self
    }
}

impl From<Refusal> for Problem {
    fn from(r: Refusal) -> Problem {
        match r {
            Refusal::Gone(state) => {
                Problem::new(410, format!("the upload is {}: it takes no more bytes", state_name(state)))
            }
            Refusal::Conflict { offset } => {
                Problem::new(409, format!("Upload-Offset must be {offset}, the bytes durable"))
                    .header(HeaderName::from_static("upload-offset"), offset)
            }
            Refusal::TooLarge(m) => Problem::new(413, m),
            Refusal::Bad(m) => Problem::new(400, m),
            Refusal::Unprocessable(m) => Problem::new(422, m),
            Refusal::NotFound(m) => Problem::new(404, m),
            Refusal::Internal(m) => Problem::new(500, m),
            // 423, not 503: tus clients (tus-js-client) retry a 423 on the same upload, but
            // start a new upload on any other error of a HEAD.
            Refusal::Busy { retry_after, why } => Problem::new(423, why).header(header::RETRY_AFTER, retry_after),
        }
    }
}

impl From<AuthError> for Problem {
    fn from(e: AuthError) -> Problem {
        let status = e.status();
        let message = match e {
            AuthError::Unauthorized(m) | AuthError::Forbidden(m) => m,
        };
        let p = Problem::new(status, message);
        if status == 401 {
            p.header(header::WWW_AUTHENTICATE, "Bearer")
        } else {
            p
        }
    }
}

type Answer = Result<Response, Problem>;

/// Adds `Tus-Resumable` to every answer, counts errors.
fn finish(app: &App, what: &str, answer: Answer) -> Response {
    let mut response = match answer {
        Ok(r) => r,
        Err(p) => {
            app.registry.metrics.error(p.status.as_u16(), what);
            if p.status.is_server_error() {
                tracing::warn!("{what}: {} {}", p.status.as_u16(), p.message);
            }
            let mut r = (p.status, format!("{}\n", p.message)).into_response();
            for (name, value) in p.headers {
                if let Ok(v) = HeaderValue::from_str(&value) {
                    r.headers_mut().insert(name, v);
                }
            }
            r
        }
    };
    response.headers_mut().insert("tus-resumable", HeaderValue::from_static(TUS_VERSION));
    response
}

fn check_version(headers: &HeaderMap) -> Result<(), Problem> {
    match headers.get("tus-resumable").map(HeaderValue::to_str) {
        Some(Ok(TUS_VERSION)) => Ok(()),
        Some(_) => Err(Problem::new(412, "this server speaks tus 1.0.0 only")
            .header(HeaderName::from_static("tus-version"), TUS_VERSION)),
        None => Err(Problem::new(412, "Tus-Resumable: 1.0.0 is required")
            .header(HeaderName::from_static("tus-version"), TUS_VERSION)),
    }
}

/// A header holding a non-negative decimal number.
fn number(headers: &HeaderMap, name: &str) -> Result<Option<u64>, Problem> {
    let Some(v) = headers.get(name) else { return Ok(None) };
    let s = v.to_str().map_err(|_| Problem::new(400, format!("{name} is not text")))?;
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Problem::new(400, format!("{name} must be a non-negative integer, not {s:?}")));
    }
    s.parse().map(Some).map_err(|_| Problem::new(400, format!("{name} {s:?} is too large")))
}

fn too_many(app: &App) -> Result<(), Problem> {
    let max = app.registry.config.limits.max_uploads;
    if app.registry.open_count() >= max {
        return Err(Problem::new(503, format!("{max} recordings are open, the server's limit: try again later"))
            .header(header::RETRY_AFTER, RETRY_AFTER_SECS));
    }
    Ok(())
}

fn disk_ok(app: &App, floor: u64) -> Result<(), Problem> {
    match app.disk.free() {
        Some(free) if free < floor => Err(Problem::new(
            507,
            format!("the data dir's disk has {free} bytes free, below the server's floor of {floor}"),
        )),
        _ => Ok(()),
    }
}

/// `Upload-Metadata`: `key base64,key2 base64`; values are decoded (lossy UTF-8).
fn metadata(headers: &HeaderMap) -> Result<BTreeMap<String, String>, Problem> {
    let mut out = BTreeMap::new();
    let Some(v) = headers.get("upload-metadata") else { return Ok(out) };
    let s = v.to_str().map_err(|_| Problem::new(400, "Upload-Metadata is not ASCII"))?;
    for pair in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let mut it = pair.splitn(2, ' ');
        let key = it.next().unwrap_or_default();
        if key.is_empty() || key.len() > 128 {
            return Err(Problem::new(400, "an Upload-Metadata key is empty or too long"));
        }
        let value = match it.next().map(str::trim) {
            None | Some("") => String::new(),
            Some(b64) => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(|_| Problem::new(400, format!("Upload-Metadata {key}: not base64")))?;
                String::from_utf8_lossy(&bytes).into_owned()
            }
        };
        out.insert(key.to_string(), value);
    }
    Ok(out)
}

fn encode_metadata(m: &BTreeMap<String, String>) -> String {
    m.iter()
        .map(|(k, v)| {
            if v.is_empty() {
                k.clone()
            } else {
                format!("{k} {}", base64::engine::general_purpose::STANDARD.encode(v))
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn random_id() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("the OS random source");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

async fn options(State(app): State<App>) -> Response {
    let l = &app.registry.config.limits;
    let r = Response::builder()
        .status(StatusCode::NO_CONTENT)
        .header("tus-version", TUS_VERSION)
        .header("tus-extension", EXTENSIONS)
        .header("tus-max-size", l.max_upload_bytes)
        .header("tus-checksum-algorithm", CHECKSUMS)
        .body(Body::empty())
        .expect("valid headers");
    finish(&app, "options", Ok(r))
}

/// The upload the path names, with the access a request needs checked.
async fn find(app: &App, headers: &HeaderMap, id: &str, view: bool) -> Result<Arc<Upload>, Problem> {
    if !super::auth::valid_rec(id) {
        return Err(Problem::new(404, "no such upload"));
    }
    // Unknown here, with a store: the store is asked only once the token allows it.
    if app.registry.get(id).is_none() && app.registry.shared.is_some() {
        let access = if view { Access::View { rec: id } } else { Access::Upload { rec: id } };
        app.auth.check(headers, access)?;
    }
    let upload = app.registry.lookup(id).await?;
    // Check the token before saying whether the upload exists.
    let info = upload.as_ref().map(|u| u.info());
    let rec = info.as_ref().and_then(|i| i.rec.clone()).unwrap_or_else(|| id.to_string());
    let access = if view { Access::View { rec: &rec } } else { Access::Upload { rec: &rec } };
    app.auth.check(headers, access)?;
    let upload = upload.ok_or_else(|| Problem::new(404, "no such upload"))?;
    if info.is_some_and(|i| i.state == UploadState::Terminated) {
        return Err(Problem::new(410, "the upload was terminated"));
    }
    Ok(upload)
}

async fn create(State(app): State<App>, request: Request) -> Response {
    let started = Instant::now();
    let answer = create_inner(&app, request).await;
    app.registry.metrics.patch(started.elapsed());
    finish(&app, "create", answer)
}

async fn create_inner(app: &App, request: Request) -> Answer {
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    check_version(headers)?;
    let grant = app.auth.check(headers, Access::Create)?;
    let limits = &app.registry.config.limits;
    let length = number(headers, "upload-length")?;
    let deferred = match headers.get("upload-defer-length").map(HeaderValue::as_bytes) {
        None => false,
        Some(b"1") => true,
        Some(_) => return Err(Problem::new(400, "Upload-Defer-Length must be 1")),
    };
    match (length, deferred) {
        (Some(_), true) => return Err(Problem::new(400, "Upload-Length and Upload-Defer-Length both given")),
        (None, false) => return Err(Problem::new(400, "Upload-Length or Upload-Defer-Length: 1 is required")),
        (Some(l), false) if l > limits.max_upload_bytes => {
            return Err(Problem::new(
                413,
                format!("Upload-Length {l} is past the server's limit of {} bytes", limits.max_upload_bytes),
            ))
        }
        _ => {}
    }
    let metadata = metadata(headers)?;
    let mut format = None;
    if let Some(f) = metadata.get("format").filter(|f| !f.is_empty()) {
        if !super::is_file_format(f) {
            return Err(Problem::new(400, format!("metadata format {f:?} is none of mp4, fmp4, webm, mkv")));
        }
        format = Some(f.clone());
    }
    disk_ok(app, limits.min_free_bytes)?;
    // Creating a name that exists: the same upload again (a client retrying its POST).
    if let Some(rec) = grant.rec.as_deref() {
        if let Some(upload) = app.registry.lookup(rec).await? {
            app.registry.touch(&upload).await?;
            let info = upload.info();
            if info.state != UploadState::Recording || info.length != length {
                return Err(Problem::new(409, format!("recording {rec} exists already ({})", state_name(info.state))));
            }
            return Ok(created(&upload, Some(upload.offset())));
        }
    }
    too_many(app)?;
    let hook = PreCreate {
        length,
        metadata: metadata.clone(),
        rec: grant.rec.clone(),
        authorization: headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_string),
    };
    let answer = app.registry.hooks.pre_create(&hook).await.map_err(|r| match r {
        HookRefusal::Refused { status, body } => Problem::new(status, body),
        HookRefusal::Unavailable(why) => Problem::new(503, format!("the pre-create hook failed: {why}"))
            .header(header::RETRY_AFTER, RETRY_AFTER_SECS),
    })?;
    if let Some(f) = answer.format.as_deref() {
        if !super::is_file_format(f) {
            return Err(Problem::new(500, format!("the pre-create hook asked for format {f:?}")));
        }
        format = Some(f.to_string());
    }
    let id = match answer.rec.clone().or_else(|| grant.rec.clone()) {
        Some(name) if super::auth::valid_rec(&name) => name,
        Some(name) => {
            return Err(Problem::new(400, format!("recording name {name:?} is not [A-Za-z0-9][A-Za-z0-9._-]*")))
        }
        None => random_id(),
    };
    let new = NewUpload { id, rec: grant.rec.or(answer.rec), length, metadata, format };
    let upload = app.registry.create(new).await.map_err(|r| match r {
        Refusal::Conflict { .. } => Problem::new(409, "an upload of that name exists already"),
        r => r.into(),
    })?;
    // creation-with-upload: a body is the first PATCH.
    let has_body =
        parts.headers.get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes() == OFFSET_OCTET_STREAM.as_bytes());
    if !has_body {
        return Ok(created(&upload, None));
    }
    let cancel = app.registry.take_over(&upload);
    let body_len = number(&parts.headers, "content-length")?;
    let offset =
        app.registry.patch(&upload, 0, None, body_len, limits.max_patch_bytes, body_stream(body), cancel).await?;
    Ok(created(&upload, Some(offset)))
}

fn created(upload: &Upload, offset: Option<u64>) -> Response {
    let mut r =
        Response::builder().status(StatusCode::CREATED).header(header::LOCATION, format!("/files/{}", upload.id));
    if let Some(o) = offset {
        r = r.header("upload-offset", o);
    }
    r.body(Body::empty()).expect("valid headers")
}

fn body_stream(body: Body) -> impl futures::Stream<Item = Result<Bytes, String>> + Unpin {
    body.into_data_stream().map(|r| r.map_err(|e| e.to_string()))
}

async fn head(State(app): State<App>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let answer = async {
        check_version(&headers)?;
        let upload = find(&app, &headers, &id, false).await?;
        app.registry.touch(&upload).await?;
        let info = upload.info();
        let mut r = Response::builder()
            .status(StatusCode::OK)
            .header(header::CACHE_CONTROL, "no-store")
            .header("upload-offset", upload.offset());
        r = match info.length {
            Some(l) => r.header("upload-length", l),
            None => r.header("upload-defer-length", 1),
        };
        if !info.metadata.is_empty() {
            r = r.header("upload-metadata", encode_metadata(&info.metadata));
        }
        if info.state == UploadState::Recording {
            r = r.header("upload-expires", httpdate::fmt_http_date(app.registry.expires(&upload)));
        }
        Ok(r.body(Body::empty()).expect("valid headers"))
    }
    .await;
    finish(&app, "head", answer)
}

async fn patch(State(app): State<App>, Path(id): Path<String>, request: Request) -> Response {
    let started = Instant::now();
    let answer = patch_inner(&app, &id, request).await;
    app.registry.metrics.patch(started.elapsed());
    let refused = answer.is_err();
    let mut response = finish(&app, "patch", answer);
    if refused {
        // The body may be unread: the connection closes after this answer, and says so, so
        // that a client does not send its next request on it.
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

async fn patch_inner(app: &App, id: &str, request: Request) -> Answer {
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    check_version(headers)?;
    let upload = find(app, headers, id, false).await?;
    if headers.get(header::CONTENT_TYPE).map(HeaderValue::as_bytes) != Some(OFFSET_OCTET_STREAM.as_bytes()) {
        return Err(Problem::new(415, format!("a PATCH body must be {OFFSET_OCTET_STREAM}")));
    }
    let offset = number(headers, "upload-offset")?.ok_or_else(|| Problem::new(400, "Upload-Offset is required"))?;
    let declared = number(headers, "upload-length")?;
    let limits = &app.registry.config.limits;
    let body_len = number(headers, "content-length")?;
    if let Some(len) = body_len {
        if len > limits.max_patch_bytes {
            return Err(Problem::new(413, format!("a PATCH body may hold {} bytes at most", limits.max_patch_bytes)));
        }
    }
    disk_ok(app, limits.min_free_bytes / 2)?;
    let checksum = checksum(headers)?;
    let cancel = app.registry.take_over(&upload);
    let new_offset = match checksum {
        None => {
            app.registry
                .patch(&upload, offset, declared, body_len, limits.max_patch_bytes, body_stream(body), cancel)
                .await?
        }
        Some(check) => {
            // The whole body is checked before any of it is taken.
            let bytes = axum::body::to_bytes(body, usize::try_from(limits.max_patch_bytes).unwrap_or(usize::MAX))
                .await
                .map_err(|e| Problem::new(400, format!("cannot read the body: {e}")))?;
            if !check.matches(&bytes) {
                return Err(Problem::new(460, "the body does not match Upload-Checksum"));
            }
            let one = futures::stream::iter([Ok::<_, String>(bytes)]);
            app.registry.patch(&upload, offset, declared, body_len, limits.max_patch_bytes, one, cancel).await?
        }
    };
    let mut r = Response::builder().status(StatusCode::NO_CONTENT).header("upload-offset", new_offset);
    if upload.info().state == UploadState::Recording {
        r = r.header("upload-expires", httpdate::fmt_http_date(app.registry.expires(&upload)));
    }
    Ok(r.body(Body::empty()).expect("valid headers"))
}

/// An `Upload-Checksum: <algorithm> <base64 digest>`.
struct Checksum {
    algorithm: &'static str,
    digest: Vec<u8>,
}

fn checksum(headers: &HeaderMap) -> Result<Option<Checksum>, Problem> {
    let Some(v) = headers.get("upload-checksum") else { return Ok(None) };
    let s = v.to_str().map_err(|_| Problem::new(400, "Upload-Checksum is not ASCII"))?;
    let (algorithm, b64) =
        s.trim().split_once(' ').ok_or_else(|| Problem::new(400, "Upload-Checksum is `<algorithm> <base64>`"))?;
    let algorithm = match algorithm {
        "sha1" => "sha1",
        "sha256" => "sha256",
        "md5" => "md5",
        other => return Err(Problem::new(400, format!("checksum algorithm {other:?} is none of {CHECKSUMS}"))),
    };
    let digest = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|_| Problem::new(400, "Upload-Checksum: the digest is not base64"))?;
    Ok(Some(Checksum { algorithm, digest }))
}

impl Checksum {
    fn matches(&self, data: &[u8]) -> bool {
        use sha2::Digest;
        let got: Vec<u8> = match self.algorithm {
            "sha1" => sha1::Sha1::digest(data).to_vec(),
            "sha256" => sha2::Sha256::digest(data).to_vec(),
            _ => md5::Md5::digest(data).to_vec(),
        };
        got == self.digest
    }
}

async fn terminate(State(app): State<App>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let answer = async {
        check_version(&headers)?;
        let upload = find(&app, &headers, &id, false).await?;
        app.registry.terminate(&upload).await?;
        Ok(StatusCode::NO_CONTENT.into_response())
    }
    .await;
    finish(&app, "delete", answer)
}

async fn status(State(app): State<App>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let answer = async {
        let upload = find(&app, &headers, &id, true).await?;
        app.registry.view(&upload).await?;
        let info = upload.info();
        let report = info.report.clone().unwrap_or_default();
        let body = serde_json::json!({
            "id": info.id,
            "rec": info.rec,
            "state": state_name(info.state),
            "offset": upload.offset(),
            "length": info.length,
            "output": info.output,
            "output_bytes": report.output_bytes,
            "tracks": report.tracks,
            "duration_ms": report.duration_ms,
            "notes": report.notes,
            "error": info.error,
        });
        Ok(([(header::CACHE_CONTROL, "no-store")], axum::Json(body)).into_response())
    }
    .await;
    finish(&app, "status", answer)
}

async fn output(State(app): State<App>, Path(id): Path<String>, request: Request) -> Response {
    let answer = async {
        let upload = find(&app, request.headers(), &id, true).await?;
        app.registry.view(&upload).await?;
        let info = upload.info();
        let Some(rel) = info.output.clone() else {
            return Err(Problem::new(404, "the upload has no output yet (no media bytes arrived)"));
        };
        if let (Some(shared), true) = (&app.registry.shared, info.state != UploadState::Recording) {
            return from_store(shared, &rel, &info, request.headers()).await;
        }
        let path = app.registry.config.data_dir.join(&rel);
        let content_type = match path.extension().and_then(|e| e.to_str()) {
            Some("webm") => "video/webm",
            Some("mkv") => "video/x-matroska",
            _ => "video/mp4",
        };
        let served = tower::ServiceExt::oneshot(
            tower_http::services::ServeFile::new_with_mime(&path, &content_type.parse().expect("a mime")),
            request,
        )
        .await
        .map_err(|e| Problem::new(500, format!("cannot read the output: {e}")))?;
        let mut response = served.map(Body::new);
        if let Some(name) = info.metadata.get("filename").and_then(|n| content_disposition(n)) {
            response.headers_mut().insert(header::CONTENT_DISPOSITION, name);
        }
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        Ok(response)
    }
    .await;
    finish(&app, "output", answer)
}

/// `GET /files/{id}/output` of a recording the store holds: its answer passed on (a range
/// as asked), so that any worker serves any recording.
async fn from_store(shared: &Shared, key: &str, info: &super::upload::Info, headers: &HeaderMap) -> Answer {
    let name = key.strip_prefix(&shared.store.key("")).unwrap_or(key);
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let stored = shared.store.get_response(name, range).await.map_err(|e| match e {
        crate::store::StoreError::NotFound(_) => Problem::new(404, format!("the store has no {key}")),
        e => Problem::new(502, e.to_string()),
    })?;
    let status = stored.status().as_u16();
    if !matches!(status, 200 | 206 | 416) {
        return Err(Problem::new(502, format!("the store answered {status} for {key}")));
    }
    let mut r = Response::builder().status(status);
    for name in [header::CONTENT_LENGTH, header::CONTENT_RANGE, header::ETAG, header::LAST_MODIFIED] {
        if let Some(v) = stored.headers().get(&name) {
            r = r.header(name, v.clone());
        }
    }
    let content_type = match key.rsplit('.').next() {
        Some("webm") => "video/webm",
        Some("mkv") => "video/x-matroska",
        _ => "video/mp4",
    };
    r = r.header(header::CONTENT_TYPE, content_type).header(header::ACCEPT_RANGES, "bytes");
    r = r.header(header::CACHE_CONTROL, "no-store");
    if let Some(name) = info.metadata.get("filename").and_then(|n| content_disposition(n)) {
        r = r.header(header::CONTENT_DISPOSITION, name);
    }
    Ok(r.body(Body::from_stream(stored.bytes_stream())).expect("valid headers"))
}

/// `GET /files/{id}/live.m3u8` and the files it leads to (`stream.m3u8`, `init-N.mp4`,
/// `seg-NNNNNN.m4s`): the live HLS kept beside the recording, for the tokens that may
/// read it.
async fn live(State(app): State<App>, Path((id, file)): Path<(String, String)>, request: Request) -> Response {
    let answer = async {
        let content_type = match file.as_str() {
            LIVE_PLAYLIST | MEDIA_PLAYLIST => "application/vnd.apple.mpegurl",
            f => match media_file(f) {
                Some(MediaFile::Init(_)) => "video/mp4",
                Some(MediaFile::Segment(_)) => "video/iso.segment",
                None => return Err(Problem::new(404, format!("no such resource of an upload: {file:?}"))),
            },
        };
        let upload = find(&app, request.headers(), &id, true).await?;
        app.registry.watch(&upload).await?;
        let path = upload.live_dir().join(&file);
        let mime = content_type.parse().expect("a mime");
        let served = tower::ServiceExt::oneshot(tower_http::services::ServeFile::new_with_mime(&path, &mime), request)
            .await
            .map_err(|e| Problem::new(500, format!("cannot read {file}: {e}")))?;
        let mut response = served.map(Body::new);
        // Playlists change with each segment; a segment never changes under its name.
        let cache = if content_type.ends_with("mpegurl") { "no-store" } else { "max-age=3600" };
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
        Ok(response)
    }
    .await;
    finish(&app, "live", answer)
}

/// `inline; filename="..."` from a client's file name, reduced to a safe base name.
fn content_disposition(name: &str) -> Option<HeaderValue> {
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let clean: String =
        base.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ' ')).take(128).collect();
    let clean = clean.trim_start_matches('.');
    (!clean.is_empty()).then(|| HeaderValue::from_str(&format!("inline; filename=\"{clean}\"")).ok()).flatten()
}

/// Methods the CORS layer allows.
pub const CORS_METHODS: [Method; 6] =
    [Method::GET, Method::HEAD, Method::POST, Method::PATCH, Method::DELETE, Method::OPTIONS];

/// Headers the CORS layer allows and exposes.
pub const CORS_HEADERS: [&str; 11] = [
    "authorization",
    "content-type",
    "tus-resumable",
    "upload-length",
    "upload-defer-length",
    "upload-metadata",
    "upload-offset",
    "upload-checksum",
    "upload-concat",
    "x-http-method-override",
    "x-requested-with",
];

/// Headers the browser may read.
pub const CORS_EXPOSE: [&str; 10] = [
    "location",
    "tus-resumable",
    "tus-version",
    "tus-extension",
    "tus-max-size",
    "tus-checksum-algorithm",
    "upload-offset",
    "upload-length",
    "upload-defer-length",
    "upload-expires",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_round_trip_and_refusals() {
        let mut h = HeaderMap::new();
        h.insert(
            "upload-metadata",
            HeaderValue::from_static("filename d29ybGRfZG9taW5hdGlvbl9wbGFuLnBkZg==,is_confidential"),
        );
        let m = metadata(&h).unwrap();
        assert_eq!(m["filename"], "world_domination_plan.pdf");
        assert_eq!(m["is_confidential"], "");
        let mut h2 = HeaderMap::new();
        h2.insert("upload-metadata", HeaderValue::from_str(&encode_metadata(&m)).unwrap());
        assert_eq!(metadata(&h2).unwrap(), m);
        h.insert("upload-metadata", HeaderValue::from_static("filename !!!"));
        assert_eq!(metadata(&h).unwrap_err().status, 400);
    }

    #[test]
    fn numbers_and_download_names() {
        let mut h = HeaderMap::new();
        for (v, ok) in [("0", true), ("123", true), ("-1", false), ("1e3", false), ("99999999999999999999999", false)] {
            h.insert("upload-offset", HeaderValue::from_static(v));
            assert_eq!(number(&h, "upload-offset").is_ok(), ok, "{v}");
        }
        assert_eq!(content_disposition("../../etc/passwd").unwrap(), "inline; filename=\"passwd\"");
        assert!(content_disposition("..").is_none());
    }
}
