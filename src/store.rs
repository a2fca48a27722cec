//! An S3-compatible object store client: the primitives the object-store backend of
//! `livemux serve` is built from (issue 17; the protocol is in `docs/object-store.md`).
//!
//! What it needs and why it is this crate: conditional writes (`If-None-Match: *` to create,
//! `If-Match: <etag>` to replace: the fencing of an upload's owner), multipart uploads whose
//! parts are copied server-side from stored objects with a byte range (`UploadPartCopy`, how
//! the final recording is composed without downloading its media), listing, and presigned
//! GETs (a player reads the store directly). `aws-sdk-s3` has all of it but costs about 90
//! more crates and a C build; `object_store` and `rust-s3` have no `UploadPartCopy`.
//! `rusty-s3` signs requests without doing IO (presigned URLs, SigV4 in the query string,
//! any header signed), so each action here is one signed URL sent with the `reqwest` client
//! the server already has. `UploadPartCopy` is `UploadPart` with the `x-amz-copy-source`
//! headers, and its answer (`<CopyPartResult><ETag>`) is read here.
//!
//! Addressing and credentials come from the usual AWS variables: `AWS_ENDPOINT_URL`
//! (default `https://s3.<region>.amazonaws.com`), `AWS_REGION` (or `AWS_DEFAULT_REGION`,
//! default `us-east-1`), `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`.
//! Path-style URLs are used when an endpoint is given (MinIO, Ceph, moto...), virtual-host
//! style for AWS itself, unless told.

use std::time::Duration;

use bytes::Bytes;
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};

/// How long a signed URL is valid: long enough for a slow part, short enough to be useless
/// if logged.
const SIGNED_FOR: Duration = Duration::from_secs(15 * 60);

/// Longest wait for the next bytes of a store's answer.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a store request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A conditional write found the object other than required (412: it exists for
    /// `IfAbsent`, its ETag differs for `IfMatch`), or a concurrent write to it won (409).
    #[error("the object {0} was changed by someone else (a conditional write failed)")]
    Precondition(String),
    /// The object does not exist.
    #[error("no object {0}")]
    NotFound(String),
    /// The store answered with another error.
    #[error("the store answered {status} to {what}: {message}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The request.
        what: String,
        /// The store's error code and message, if it gave them.
        message: String,
    },
    /// The store could not be reached, or its answer not read.
    #[error("the store could not be reached for {what}: {source}")]
    Transport {
        /// The request.
        what: String,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// The configuration is unusable (a bad URL, no credentials...).
    #[error("object store: {0}")]
    Config(String),
}

type Result<T> = std::result::Result<T, StoreError>;

/// The condition a write is made on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Condition {
    /// Write whatever is there.
    None,
    /// Create: fail if the object exists (`If-None-Match: *`).
    IfAbsent,
    /// Replace: fail unless the object's ETag is this one (`If-Match`).
    IfMatch(String),
}

/// An object, as a listing shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Its key, the store's prefix included.
    pub key: String,
    /// Its length in bytes.
    pub size: u64,
}

/// A bucket and a key prefix in an S3-compatible store (`s3://BUCKET/PREFIX`).
#[derive(Clone, Debug)]
pub struct S3Store {
    bucket: Bucket,
    credentials: Credentials,
    prefix: String,
    http: reqwest::Client,
}

/// Where the store is and who signs: what [`S3Config::from_env`] reads.
#[derive(Clone, Debug, Default)]
pub struct S3Config {
    /// The endpoint (`http://127.0.0.1:9000`), `None` for AWS in `region`.
    pub endpoint: Option<String>,
    /// The region requests are signed for.
    pub region: String,
    /// The access key id.
    pub access_key: String,
    /// The secret key.
    pub secret_key: String,
    /// A session token, with temporary credentials.
    pub session_token: Option<String>,
    /// Path-style URLs (`ENDPOINT/BUCKET/KEY`) even without an endpoint; with one they are
    /// always path-style.
    pub path_style: bool,
}

impl S3Config {
    /// The configuration the standard AWS variables give (module doc).
    pub fn from_env(path_style: bool) -> Result<Self> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let (Some(access_key), Some(secret_key)) = (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) else {
            return Err(StoreError::Config("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set".into()));
        };
        Ok(S3Config {
            endpoint: var("AWS_ENDPOINT_URL"),
            region: var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION")).unwrap_or_else(|| "us-east-1".into()),
            access_key,
            secret_key,
            session_token: var("AWS_SESSION_TOKEN"),
            path_style,
        })
    }
}

impl S3Store {
    /// The store `url` (`s3://BUCKET` or `s3://BUCKET/PREFIX`) with the AWS variables'
    /// configuration; `path_style` forces path-style URLs.
    pub fn from_env(url: &str, path_style: bool) -> Result<Self> {
        S3Store::new(url, &S3Config::from_env(path_style)?)
    }

    /// The store `url` (`s3://BUCKET` or `s3://BUCKET/PREFIX`) as `config` says.
    pub fn new(url: &str, config: &S3Config) -> Result<Self> {
        let rest =
            url.strip_prefix("s3://").ok_or_else(|| StoreError::Config(format!("{url}: not s3://BUCKET/PREFIX")))?;
        let (name, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if name.is_empty() {
            return Err(StoreError::Config(format!("{url}: no bucket")));
        }
        let style = if config.path_style || config.endpoint.is_some() { UrlStyle::Path } else { UrlStyle::VirtualHost };
        let endpoint = config.endpoint.clone().unwrap_or_else(|| format!("https://s3.{}.amazonaws.com", config.region));
        let endpoint = endpoint.parse().map_err(|e| StoreError::Config(format!("endpoint {endpoint}: {e}")))?;
        let bucket = Bucket::new(endpoint, style, name.to_string(), config.region.clone())
            .map_err(|e| StoreError::Config(format!("bucket {name}: {e}")))?;
        let credentials = match &config.session_token {
            Some(token) => Credentials::new_with_token(&config.access_key, &config.secret_key, token),
            None => Credentials::new(&config.access_key, &config.secret_key),
        };
        let prefix = prefix.trim_matches('/');
        let prefix = if prefix.is_empty() { String::new() } else { format!("{prefix}/") };
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            // A store that takes a connection and never answers must not hold a request
            // (and the upload it locks) for ever.
            .read_timeout(READ_TIMEOUT)
            .build()
            .map_err(|e| StoreError::Config(format!("HTTP client: {e}")))?;
        Ok(S3Store { bucket, credentials, prefix, http })
    }

    /// Creates the bucket (for tests and first setups; 409 if it exists is an error).
    pub async fn create_bucket(&self) -> Result<()> {
        let url = self.bucket.create_bucket(&self.credentials).sign(SIGNED_FOR);
        send(self.http.put(url).header("content-length", "0"), self.bucket.name(), "CreateBucket").await.map(drop)
    }

    /// The full key of `name` (under the prefix).
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// A URL that reads `name` without credentials until `valid_for` has passed (what a
    /// player is given).
    pub fn presigned_get(&self, name: &str, valid_for: Duration) -> reqwest::Url {
        let key = self.key(name);
        self.bucket.get_object(Some(&self.credentials), &key).sign(valid_for)
    }

    /// Writes `body` to `name` on `condition`; returns the new ETag.
    pub async fn put(&self, name: &str, body: Bytes, condition: &Condition) -> Result<String> {
        let key = self.key(name);
        let mut action = self.bucket.put_object(Some(&self.credentials), &key);
        condition_headers(action.headers_mut(), condition);
        let request = self.http.put(action.sign(SIGNED_FOR)).header("content-type", "application/octet-stream");
        let response = send(with_condition(request, condition).body(body), &key, "PUT").await?;
        etag(&response, &key)
    }

    /// Reads `name`: its bytes and ETag.
    pub async fn get(&self, name: &str) -> Result<(Bytes, String)> {
        let key = self.key(name);
        let url = self.bucket.get_object(Some(&self.credentials), &key).sign(SIGNED_FOR);
        let response = send(self.http.get(url), &key, "GET").await?;
        let tag = etag(&response, &key)?;
        let body = response.bytes().await.map_err(|source| transport("GET", &key, source))?;
        Ok((body, tag))
    }

    /// Reads `name` as [`S3Store::get`] does, with how long ago it was last written by the
    /// store's own clock (its `Date` minus the object's `Last-Modified`, whole seconds): how a
    /// lease is judged without trusting any worker's clock.
    pub async fn get_aged(&self, name: &str) -> Result<(Bytes, String, Duration)> {
        let key = self.key(name);
        let url = self.bucket.get_object(Some(&self.credentials), &key).sign(SIGNED_FOR);
        let response = send(self.http.get(url), &key, "GET").await?;
        let tag = etag(&response, &key)?;
        let date = |name: &str| {
            response.headers().get(name).and_then(|v| v.to_str().ok()).and_then(|v| httpdate::parse_http_date(v).ok())
        };
        let age = match (date("date"), date("last-modified")) {
            (Some(now), Some(then)) => now.duration_since(then).unwrap_or_default(),
            _ => return Err(bad_answer("GET", &key, "no Date or Last-Modified header")),
        };
        let body = response.bytes().await.map_err(|source| transport("GET", &key, source))?;
        Ok((body, tag, age))
    }

    /// Starts reading `name` (with a `Range` header when given): the store's answer, its
    /// status and body to be passed on as they are (a 206 for a range, 416 past the end).
    pub async fn get_response(&self, name: &str, range: Option<&str>) -> Result<reqwest::Response> {
        let key = self.key(name);
        let url = self.bucket.get_object(Some(&self.credentials), &key).sign(SIGNED_FOR);
        let mut request = self.http.get(url);
        if let Some(r) = range {
            request = request.header("range", r);
        }
        match request.send().await.map_err(|source| transport("GET", &key, source))? {
            r if r.status().as_u16() == 404 => Err(StoreError::NotFound(key)),
            r => Ok(r),
        }
    }

    /// Removes `name` (no error if it is gone already).
    pub async fn delete(&self, name: &str) -> Result<()> {
        let key = self.key(name);
        let url = self.bucket.delete_object(Some(&self.credentials), &key).sign(SIGNED_FOR);
        match send(self.http.delete(url), &key, "DELETE").await {
            Ok(_) | Err(StoreError::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Removes the objects `keys` (full keys, as [`S3Store::list`] gives them), a thousand
    /// per request (`DeleteObjects`); those gone already are no error.
    pub async fn delete_keys(&self, keys: &[String]) -> Result<()> {
        for batch in keys.chunks(1000) {
            let objects: Vec<_> = batch.iter().map(|k| rusty_s3::actions::ObjectIdentifier::new(k.clone())).collect();
            let mut action = self.bucket.delete_objects(Some(&self.credentials), objects.iter());
            action.set_quiet(true);
            let url = action.sign(SIGNED_FOR);
            let (body, md5) = action.body_with_md5();
            let request = self.http.post(url).header("content-md5", md5).body(body);
            let what = self.bucket.name();
            let response = send(request, what, "DeleteObjects").await?;
            let text = response.text().await.map_err(|source| transport("DeleteObjects", what, source))?;
            if text.contains("<Error>") {
                return Err(bad_answer("DeleteObjects", what, &text));
            }
        }
        Ok(())
    }

    /// Every object whose name starts with `prefix` (under the store's prefix), in key order.
    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let full = self.key(prefix);
        let mut objects = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut action = self.bucket.list_objects_v2(Some(&self.credentials));
            action.with_prefix(full.as_str());
            if let Some(t) = &token {
                action.with_continuation_token(t.as_str());
            }
            let response = send(self.http.get(action.sign(SIGNED_FOR)), &full, "LIST").await?;
            let text = response.text().await.map_err(|source| transport("LIST", &full, source))?;
            let page = rusty_s3::actions::ListObjectsV2::parse_response(&text)
                .map_err(|e| bad_answer("LIST", &full, &e.to_string()))?;
            objects.extend(page.contents.into_iter().map(|c| ObjectInfo { key: c.key, size: c.size.unwrap_or(0) }));
            match page.next_continuation_token {
                Some(t) => token = Some(t),
                None => return Ok(objects),
            }
        }
    }

    /// Starts a multipart upload of `name`; returns its upload id.
    pub async fn create_multipart(&self, name: &str) -> Result<String> {
        let key = self.key(name);
        let url = self.bucket.create_multipart_upload(Some(&self.credentials), &key).sign(SIGNED_FOR);
        // An empty body, so that it has a Content-Length (some stores require one).
        let response = send(self.http.post(url).header("content-length", "0"), &key, "CreateMultipartUpload").await?;
        let text = response.text().await.map_err(|source| transport("CreateMultipartUpload", &key, source))?;
        let parsed = rusty_s3::actions::CreateMultipartUpload::parse_response(&text)
            .map_err(|e| bad_answer("CreateMultipartUpload", &key, &e.to_string()))?;
        Ok(parsed.upload_id().to_string())
    }

    /// Uploads part `number` (from 1) of `upload`; returns its ETag.
    pub async fn upload_part(&self, name: &str, upload: &str, number: u16, body: Bytes) -> Result<String> {
        let key = self.key(name);
        let url = self.bucket.upload_part(Some(&self.credentials), &key, number, upload).sign(SIGNED_FOR);
        let response = send(self.http.put(url).body(body), &key, "UploadPart").await?;
        etag(&response, &key)
    }

    /// Makes bytes `range` (start..end) of the stored `source` part `number` of `upload`,
    /// copied by the store itself; returns the part's ETag. (The store copies a range only
    /// from a source of more than 5 MB; every part but the last must be 5 MiB or more.)
    pub async fn upload_part_copy(
        &self,
        name: &str,
        upload: &str,
        number: u16,
        source: &str,
        range: std::ops::Range<u64>,
    ) -> Result<String> {
        let key = self.key(name);
        if range.is_empty() {
            return Err(StoreError::Config(format!("an empty range of {source} for part {number} of {key}")));
        }
        let copy_source = format!("{}/{}", self.bucket.name(), self.key(source));
        let copy_range = format!("bytes={}-{}", range.start, range.end - 1);
        let mut action = self.bucket.upload_part(Some(&self.credentials), &key, number, upload);
        action.headers_mut().insert("x-amz-copy-source", copy_source.clone());
        action.headers_mut().insert("x-amz-copy-source-range", copy_range.clone());
        let request = self
            .http
            .put(action.sign(SIGNED_FOR))
            .header("x-amz-copy-source", copy_source)
            .header("x-amz-copy-source-range", copy_range);
        let response = send(request, &key, "UploadPartCopy").await?;
        let text = response.text().await.map_err(|source| transport("UploadPartCopy", &key, source))?;
        // <CopyPartResult><ETag>"..."</ETag>...</CopyPartResult>; a 200 may still carry an <Error>.
        match (text.find("<ETag>"), text.find("</ETag>")) {
            (Some(a), Some(b)) if a + 6 <= b => Ok(text[a + 6..b].replace("&quot;", "\"")),
            _ => Err(bad_answer("UploadPartCopy", &key, &text)),
        }
    }

    /// Completes `upload` of `name` from the parts' ETags, in order, on `condition`;
    /// returns the object's ETag.
    pub async fn complete_multipart(
        &self,
        name: &str,
        upload: &str,
        etags: &[String],
        condition: &Condition,
    ) -> Result<String> {
        let key = self.key(name);
        let mut action = self.bucket.complete_multipart_upload(
            Some(&self.credentials),
            &key,
            upload,
            etags.iter().map(String::as_str),
        );
        condition_headers(action.headers_mut(), condition);
        let url = action.sign(SIGNED_FOR);
        let request = with_condition(self.http.post(url), condition).body(action.body());
        let response = send(request, &key, "CompleteMultipartUpload").await?;
        let text = response.text().await.map_err(|source| transport("CompleteMultipartUpload", &key, source))?;
        // A 200 may still carry an <Error> (S3 reports late failures so).
        if text.contains("<Error>") {
            return Err(bad_answer("CompleteMultipartUpload", &key, &text));
        }
        let parsed = rusty_s3::actions::CompleteMultipartUploadResponse::parse(&text)
            .map_err(|e| bad_answer("CompleteMultipartUpload", &key, &e.to_string()))?;
        Ok(parsed.etag().to_string())
    }

    /// Abandons `upload` of `name` (its parts are freed).
    pub async fn abort_multipart(&self, name: &str, upload: &str) -> Result<()> {
        let key = self.key(name);
        let url = self.bucket.abort_multipart_upload(Some(&self.credentials), &key, upload).sign(SIGNED_FOR);
        match send(self.http.delete(url), &key, "AbortMultipartUpload").await {
            Ok(_) | Err(StoreError::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// The headers of `condition`, to be signed.
fn condition_headers<'a>(headers: &mut rusty_s3::Map<'a>, condition: &'a Condition) {
    match condition {
        Condition::None => {}
        Condition::IfAbsent => headers.insert("if-none-match", "*"),
        Condition::IfMatch(tag) => headers.insert("if-match", tag.as_str()),
    }
}

/// The same headers on the request sent.
fn with_condition(request: reqwest::RequestBuilder, condition: &Condition) -> reqwest::RequestBuilder {
    match condition {
        Condition::None => request,
        Condition::IfAbsent => request.header("if-none-match", "*"),
        Condition::IfMatch(tag) => request.header("if-match", tag),
    }
}

/// Sends `request`; a non-2xx answer becomes its [`StoreError`].
async fn send(request: reqwest::RequestBuilder, key: &str, what: &str) -> Result<reqwest::Response> {
    let response = request.send().await.map_err(|source| transport(what, key, source))?;
    let status = response.status().as_u16();
    if (200..300).contains(&status) {
        return Ok(response);
    }
    let text = response.text().await.unwrap_or_default();
    Err(match status {
        404 => StoreError::NotFound(key.to_string()),
        409 | 412 => StoreError::Precondition(key.to_string()),
        _ => StoreError::Status { status, what: format!("{what} {key}"), message: error_message(&text) },
    })
}

/// `Code: Message` of an S3 error document, or its start.
fn error_message(xml: &str) -> String {
    let field = |name: &str| {
        let (open, close) = (format!("<{name}>"), format!("</{name}>"));
        let a = xml.find(&open)? + open.len();
        let b = xml[a..].find(&close)? + a;
        Some(xml[a..b].to_string())
    };
    match (field("Code"), field("Message")) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c,
        _ => xml.chars().take(200).collect(),
    }
}

fn etag(response: &reqwest::Response, key: &str) -> Result<String> {
    response
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .ok_or_else(|| bad_answer("ETag", key, "no ETag header"))
}

fn transport(what: &str, key: &str, source: reqwest::Error) -> StoreError {
    StoreError::Transport { what: format!("{what} {key}"), source }
}

fn bad_answer(what: &str, key: &str, detail: &str) -> StoreError {
    StoreError::Status { status: 200, what: format!("{what} {key}"), message: error_message(detail) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_documents_read_as_code_and_message() {
        let xml = "<?xml version=\"1.0\"?><Error><Code>EntityTooSmall</Code><Message>Your proposed upload is \
                   smaller than the minimum allowed object size.</Message></Error>";
        assert_eq!(
            error_message(xml),
            "EntityTooSmall: Your proposed upload is smaller than the minimum allowed object size."
        );
        assert_eq!(error_message("<Error><Code>X</Code></Error>"), "X");
        assert_eq!(error_message("<Code>"), "<Code>");
    }
}
