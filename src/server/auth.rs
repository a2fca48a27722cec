//! Who may do what: HS256 JWT bearer tokens with the claims `rec` (the recording),
//! `scope` (`"upload"` or `"view"`) and `exp`; anonymous access only on loopback.
//!
//! The backend that owns the users shares a secret with `livemux serve` and hands each
//! client a short-lived token for one recording, so livemux needs no user database: a
//! token is the whole permission. What a token allows:
//!
//! | request                                   | `scope: "upload"` for R | `scope: "view"` for R |
//! |-------------------------------------------|-------------------------|-----------------------|
//! | `POST /files/` (creates upload id R)      | yes                     | 403                   |
//! | `HEAD`/`PATCH`/`DELETE /files/R`          | yes                     | 403                   |
//! | `GET /files/R/status`, `/output`          | yes                     | yes                   |
//! | `GET /files/R/live.m3u8` and its files    | yes                     | yes                   |
//! | anything of another recording S           | 403                     | 403                   |
//!
//! No token, a malformed, forged (another secret, another algorithm, `alg: none`),
//! expired or not-yet-valid one: 401. The messages say which, and never repeat the token.
//!
//! Only HS256 is accepted, whatever the token's header says; the signature is compared in
//! constant time (by `jsonwebtoken`, through `ring`). `exp` is required, with 5 s of
//! leeway for clocks; `nbf` is honoured when present; `iat` is allowed and not checked.
//! A token with an `aud` claim is refused (it is meant for another service). The `rec`
//! claim must be a [valid recording name](valid_rec): it becomes a directory name under
//! the data dir, so it can never be `..` or hold a `/`.
//!
//! Without a secret ([`Auth::new(None)`](Auth::new)) every request is allowed and
//! anonymous; the server allows that only on a loopback address
//! ([`ServeConfig::check`](super::ServeConfig::check)).

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::{header::AUTHORIZATION, HeaderMap};
use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind as JwtErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind};

/// Seconds of clock difference tolerated on `exp` and `nbf`.
pub const LEEWAY_SECS: u64 = 5;

/// Longest recording name (`rec` claim, upload id), bytes.
pub const MAX_REC_LEN: usize = 128;

/// What a request wants to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access<'a> {
    /// Create an upload (POST /files/).
    Create,
    /// Write to, read the state of, or delete the upload of recording `rec`.
    Upload {
        /// The recording.
        rec: &'a str,
    },
    /// Read the output / status of recording `rec` (an upload token also may).
    View {
        /// The recording.
        rec: &'a str,
    },
}

/// What a token allowed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grant {
    /// The `rec` claim (`None` for anonymous access).
    pub rec: Option<String>,
}

/// Why a request was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum AuthError {
    /// No token, or a bad, forged or expired one: 401.
    Unauthorized(String),
    /// A valid token for something else: 403.
    Forbidden(String),
}

impl AuthError {
    /// 401 or 403.
    pub fn status(&self) -> u16 {
        match self {
            AuthError::Unauthorized(_) => 401,
            AuthError::Forbidden(_) => 403,
        }
    }

    /// The reason, for the response body and the log (never holds the token).
    pub fn message(&self) -> &str {
        match self {
            AuthError::Unauthorized(m) | AuthError::Forbidden(m) => m,
        }
    }
}

impl std::fmt::Display for AuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for AuthError {}

/// Whether `name` may be a recording name (a `rec` claim or an upload id): it matches
/// `[A-Za-z0-9][A-Za-z0-9._-]{0,127}`, so it is one path component, never `.` or `..`,
/// never hidden, and the same on every file system.
pub fn valid_rec(name: &str) -> bool {
    let b = name.as_bytes();
    match b.first() {
        Some(c) if c.is_ascii_alphanumeric() => {}
        _ => return false,
    }
    b.len() <= MAX_REC_LEN && b.iter().all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

/// What a token allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scope {
    /// Create, write, read and delete one upload.
    Upload,
    /// Read one recording.
    View,
}

impl Scope {
    fn parse(s: &str) -> Option<Scope> {
        match s {
            "upload" => Some(Scope::Upload),
            "view" => Some(Scope::View),
            _ => None,
        }
    }
}

/// The claims of a livemux token (others are ignored).
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    rec: String,
    scope: String,
    exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iat: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nbf: Option<u64>,
}

/// The server's token checker.
#[derive(Clone)]
pub struct Auth {
    /// `None`: anonymous access. `Some(None)`: a secret was given but is unusable (empty):
    /// every request is refused rather than accepting tokens signed with an empty key.
    key: Option<Option<DecodingKey>>,
    validation: Validation,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        f.debug_struct("Auth").field("required", &self.required()).finish()
    }
}

impl Auth {
    /// With a shared secret: every request needs a token. Without: anonymous access
    /// (the caller allows that only on loopback). An empty secret refuses every token
    /// (use [`Auth::from_secret_file`] to have it reported as an error instead).
    pub fn new(secret: Option<Vec<u8>>) -> Auth {
        let key = secret.map(|s| {
            if s.is_empty() {
                tracing::error!("the JWT secret is empty: every request will be refused");
                None
            } else {
                Some(DecodingKey::from_secret(&s))
            }
        });
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.leeway = LEEWAY_SECS;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp"]);
        Auth { key, validation }
    }

    /// Reads the secret from a file (`--jwt-secret-file`), without one trailing newline,
    /// and refuses an empty one.
    pub fn from_secret_file(path: &Path) -> crate::Result<Auth> {
        let bytes = std::fs::read(path).map_err(|e| Error::from(e).on_path(path))?;
        let secret = trim_newline(&bytes);
        if secret.is_empty() {
            return Err(Error::msg(ErrorKind::Config, format!("{}: the JWT secret is empty", path.display())));
        }
        if secret.len() < 32 {
            tracing::warn!(
                "the JWT secret in {} is {} bytes; HS256 wants at least 32 random bytes",
                path.display(),
                secret.len()
            );
        }
        Ok(Auth::new(Some(secret.to_vec())))
    }

    /// Whether requests need a token.
    pub fn required(&self) -> bool {
        self.key.is_some()
    }

    /// Checks the request's `Authorization: Bearer` token for `access`.
    pub fn check(&self, headers: &HeaderMap, access: Access<'_>) -> Result<Grant, AuthError> {
        let key = match &self.key {
            None => return Ok(Grant { rec: None }),
            Some(None) => return Err(unauthorized("the server's JWT secret is empty: no token is accepted")),
            Some(Some(key)) => key,
        };
        let token = bearer(headers)?;
        let claims = self.decode(token, key)?;
        let scope = Scope::parse(&claims.scope)
            .ok_or_else(|| unauthorized("malformed token: its scope claim is neither \"upload\" nor \"view\""))?;
        if !valid_rec(&claims.rec) {
            return Err(unauthorized(
                "malformed token: its rec claim is not a recording name ([A-Za-z0-9][A-Za-z0-9._-]{0,127})",
            ));
        }
        match access {
            Access::Create => {
                if scope != Scope::Upload {
                    return Err(forbidden("a view token cannot create an upload: an upload token is needed"));
                }
            }
            Access::Upload { rec } => {
                if claims.rec != rec {
                    return Err(forbidden("the token is for another recording"));
                }
                if scope != Scope::Upload {
                    return Err(forbidden("a view token can only read: writing or deleting needs an upload token"));
                }
            }
            Access::View { rec } => {
                if claims.rec != rec {
                    return Err(forbidden("the token is for another recording"));
                }
            }
        }
        Ok(Grant { rec: Some(claims.rec) })
    }

    /// Verifies the signature (HS256 only) and the times, and reads the claims.
    fn decode(&self, token: &str, key: &DecodingKey) -> Result<Claims, AuthError> {
        // Look at the header's algorithm first, to say why a token of another algorithm
        // (or `none`) is refused; `jsonwebtoken` refuses it anyway.
        let header = token.split('.').next().unwrap_or("");
        let alg = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header.trim_end_matches('='))
            .ok()
            .and_then(|h| serde_json::from_slice::<serde_json::Value>(&h).ok())
            .ok_or_else(|| unauthorized("malformed token: its header is not base64url JSON"))?
            .get("alg")
            .and_then(|a| a.as_str().map(|a| a == "HS256"));
        match alg {
            Some(true) => {}
            Some(false) => return Err(unauthorized("token refused: only HS256-signed tokens are accepted")),
            None => return Err(unauthorized("malformed token: its header names no algorithm")),
        }
        match jsonwebtoken::decode::<Claims>(token, key, &self.validation) {
            Ok(data) => Ok(data.claims),
            Err(e) => Err(unauthorized(match e.kind() {
                JwtErrorKind::InvalidSignature => {
                    "token refused: its signature does not match (forged, or signed with another secret)"
                }
                JwtErrorKind::ExpiredSignature => "token expired (exp is past)",
                JwtErrorKind::ImmatureSignature => "token not valid yet (nbf is in the future)",
                JwtErrorKind::MissingRequiredClaim(_) => "malformed token: it has no exp claim",
                JwtErrorKind::InvalidAlgorithm | JwtErrorKind::InvalidAlgorithmName => {
                    "token refused: only HS256-signed tokens are accepted"
                }
                JwtErrorKind::InvalidAudience => "token refused: it has an aud claim (meant for another service)",
                JwtErrorKind::Json(_) => "malformed token: its claims need rec and scope (strings) and exp (a number)",
                _ => "malformed token: not a JWT (header.claims.signature, base64url)",
            })),
        }
    }
}

/// The token of the request's one `Authorization: Bearer` header.
fn bearer(headers: &HeaderMap) -> Result<&str, AuthError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let value = values
        .next()
        .ok_or_else(|| unauthorized("no token: send Authorization: Bearer <token> (see `livemux token`)"))?;
    if values.next().is_some() {
        return Err(unauthorized("malformed request: more than one Authorization header"));
    }
    let value = value.to_str().map_err(|_| unauthorized("malformed Authorization header: not ASCII"))?;
    let (scheme, token) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(unauthorized("malformed Authorization header: expected Bearer <token>"));
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(unauthorized("malformed Authorization header: the bearer token is empty"));
    }
    Ok(token)
}

fn unauthorized(message: &str) -> AuthError {
    AuthError::Unauthorized(message.to_string())
}

fn forbidden(message: &str) -> AuthError {
    AuthError::Forbidden(message.to_string())
}

/// A secret file's bytes without one trailing newline (as `echo ... > secret` leaves one).
fn trim_newline(secret: &[u8]) -> &[u8] {
    secret.strip_suffix(b"\n").map(|s| s.strip_suffix(b"\r").unwrap_or(s)).unwrap_or(secret)
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Mints a token (what `livemux token` prints): `rec`, `scope` ("upload"/"view"), valid
/// for `ttl_secs` from now.
pub fn mint(secret: &[u8], rec: &str, scope: &str, ttl_secs: u64) -> crate::Result<String> {
    if secret.is_empty() {
        return Err(Error::msg(ErrorKind::Config, "the JWT secret is empty"));
    }
    if !valid_rec(rec) {
        return Err(Error::msg(
            ErrorKind::Config,
            format!("{rec:?} is not a recording name: [A-Za-z0-9][A-Za-z0-9._-]{{0,127}}"),
        ));
    }
    if Scope::parse(scope).is_none() {
        return Err(Error::msg(ErrorKind::Config, format!("scope {scope:?} is neither upload nor view")));
    }
    if ttl_secs == 0 {
        return Err(Error::msg(ErrorKind::Config, "the token's lifetime (ttl) must be above 0 s"));
    }
    let now = now_secs();
    let exp = now
        .checked_add(ttl_secs)
        .ok_or_else(|| Error::msg(ErrorKind::Config, format!("ttl {ttl_secs} s is too long")))?;
    let claims = Claims { rec: rec.to_string(), scope: scope.to_string(), exp, iat: Some(now), nbf: None };
    encode(secret, &claims).map_err(|e| Error::msg(ErrorKind::Internal, format!("signing the token: {e}")))
}

fn encode(secret: &[u8], claims: &Claims) -> jsonwebtoken::errors::Result<String> {
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(secret))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn auth() -> Auth {
        Auth::new(Some(SECRET.to_vec()))
    }

    fn headers(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {token}")).unwrap());
        h
    }

    fn token(rec: &str, scope: &str) -> String {
        mint(SECRET, rec, scope, 600).unwrap()
    }

    fn raw(secret: &[u8], claims: serde_json::Value) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(secret)).unwrap()
    }

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    fn check(token: &str, access: Access<'_>) -> Result<Grant, AuthError> {
        auth().check(&headers(token), access)
    }

    fn assert_401(r: Result<Grant, AuthError>, says: &str) {
        match r {
            Err(AuthError::Unauthorized(m)) => assert!(m.contains(says), "{m:?} should say {says:?}"),
            other => panic!("expected 401 ({says}), got {other:?}"),
        }
    }

    fn assert_403(r: Result<Grant, AuthError>) {
        match r {
            Err(e @ AuthError::Forbidden(_)) => assert_eq!(e.status(), 403),
            other => panic!("expected 403, got {other:?}"),
        }
    }

    #[test]
    fn valid_rec_names() {
        for ok in ["a", "A9", "rec-1", "user_42.take.3", "0", &"x".repeat(128), "a..b", "a-"] {
            assert!(valid_rec(ok), "{ok:?}");
        }
        for bad in [
            "",
            ".",
            "..",
            "../x",
            "a/b",
            "a\\b",
            ".hidden",
            "-a",
            "_a",
            "a b",
            "é",
            "a\0",
            &"x".repeat(129),
            "a%2F",
            "a:b",
        ] {
            assert!(!valid_rec(bad), "{bad:?}");
        }
    }

    #[test]
    fn anonymous_allows_everything() {
        let a = Auth::new(None);
        assert!(!a.required());
        let h = HeaderMap::new();
        for access in [Access::Create, Access::Upload { rec: "x" }, Access::View { rec: "y" }] {
            assert_eq!(a.check(&h, access), Ok(Grant { rec: None }));
        }
        // Even with a token, anonymous stays anonymous.
        assert_eq!(a.check(&headers(&token("a", "upload")), Access::Create), Ok(Grant { rec: None }));
    }

    #[test]
    fn upload_token_creates_writes_and_reads_its_recording() {
        let t = token("rec-1", "upload");
        let grant = Grant { rec: Some("rec-1".into()) };
        assert!(auth().required());
        assert_eq!(check(&t, Access::Create), Ok(grant.clone()));
        assert_eq!(check(&t, Access::Upload { rec: "rec-1" }), Ok(grant.clone()));
        assert_eq!(check(&t, Access::View { rec: "rec-1" }), Ok(grant));
    }

    #[test]
    fn view_token_only_reads() {
        let t = token("rec-1", "view");
        assert_eq!(check(&t, Access::View { rec: "rec-1" }), Ok(Grant { rec: Some("rec-1".into()) }));
        assert_403(check(&t, Access::Create));
        assert_403(check(&t, Access::Upload { rec: "rec-1" }));
    }

    #[test]
    fn token_for_another_recording_is_forbidden() {
        for scope in ["upload", "view"] {
            let t = token("A", scope);
            assert_403(check(&t, Access::Upload { rec: "B" }));
            assert_403(check(&t, Access::View { rec: "B" }));
            // Case matters: ids are file names.
            assert_403(check(&t, Access::View { rec: "a" }));
            assert_403(check(&t, Access::View { rec: "A/../A" }));
        }
    }

    #[test]
    fn no_or_malformed_authorization_is_unauthorized() {
        let a = auth();
        assert_401(a.check(&HeaderMap::new(), Access::Create), "no token");
        for value in ["Basic dXNlcjpwdw==", "Bearer", "Bearer   ", "bearer", "Token abc"] {
            let mut h = HeaderMap::new();
            h.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
            assert_401(a.check(&h, Access::Create), "malformed");
        }
        for t in ["abc", "a.b.c", "a.b", "....", "e30.e30."] {
            assert_401(check(t, Access::Create), "malformed");
        }
        // A well-formed header over anything: the signature is checked before the claims.
        let t = format!("{}.e30.c2ln", b64(b"{\"alg\":\"HS256\"}"));
        assert_401(check(&t, Access::Create), "signature");
        // Signed, but the claims are not JSON.
        let h = b64(b"{\"alg\":\"HS256\",\"typ\":\"JWT\"}");
        let body = b64(b"not json");
        let sig = jsonwebtoken::crypto::sign(
            format!("{h}.{body}").as_bytes(),
            &EncodingKey::from_secret(SECRET),
            Algorithm::HS256,
        )
        .unwrap();
        assert_401(check(&format!("{h}.{body}.{sig}"), Access::Create), "malformed");
        // Non-ASCII header value.
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_bytes(b"Bearer \xff\xfe").unwrap());
        assert_401(a.check(&h, Access::Create), "malformed");
        // Two Authorization headers.
        let mut h = headers(&token("a", "upload"));
        h.append(AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {}", token("b", "upload"))).unwrap());
        assert_401(a.check(&h, Access::Create), "more than one");
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        let t = token("a", "upload");
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_str(&format!("bEaReR {t}")).unwrap());
        assert!(auth().check(&h, Access::Create).is_ok());
    }

    #[test]
    fn messages_never_echo_the_token() {
        let forged = mint(b"another secret, not the server's", "a", "upload", 600).unwrap();
        let expired = raw(SECRET, serde_json::json!({"rec": "a", "scope": "upload", "exp": now_secs() - 100}));
        for t in [forged, expired, "gArBaGe.tOkEn.hErE".to_string()] {
            let e = check(&t, Access::Create).unwrap_err();
            for part in t.split('.') {
                assert!(part.len() < 4 || !e.message().contains(part), "{e} echoes the token");
            }
        }
    }

    #[test]
    fn alg_none_is_refused() {
        let claims = serde_json::json!({"rec": "a", "scope": "upload", "exp": now_secs() + 600});
        let body = b64(claims.to_string().as_bytes());
        for header in [r#"{"alg":"none","typ":"JWT"}"#, r#"{"alg":"None"}"#, r#"{"alg":"NONE"}"#] {
            let h = b64(header.as_bytes());
            for t in [format!("{h}.{body}."), format!("{h}.{body}"), format!("{h}.{body}.c2ln")] {
                assert_401(check(&t, Access::Create), "only HS256");
            }
        }
        // No alg at all.
        let t = format!("{}.{body}.", b64(br#"{"typ":"JWT"}"#));
        assert_401(check(&t, Access::Create), "no algorithm");
    }

    #[test]
    fn other_algorithms_are_refused() {
        let claims = serde_json::json!({"rec": "a", "scope": "upload", "exp": now_secs() + 600});
        // HS512 with the right secret: still refused (only HS256).
        let t =
            jsonwebtoken::encode(&Header::new(Algorithm::HS512), &claims, &EncodingKey::from_secret(SECRET)).unwrap();
        assert_401(check(&t, Access::Create), "only HS256");
        // An RS256 header over an HMAC signature (the classic key-confusion attempt).
        let good = raw(SECRET, claims);
        let mut parts = good.splitn(2, '.');
        let _ = parts.next();
        let t = format!("{}.{}", b64(br#"{"alg":"RS256","typ":"JWT"}"#), parts.next().unwrap());
        assert_401(check(&t, Access::Create), "only HS256");
    }

    #[test]
    fn token_signed_with_another_secret_is_unauthorized() {
        let t = mint(b"0123456789abcdef0123456789abcdeF", "a", "upload", 600).unwrap();
        assert_401(check(&t, Access::Create), "signature");
        assert_401(check(&t, Access::Upload { rec: "a" }), "signature");
        // A good token whose claims were swapped for another recording's.
        let good = token("a", "upload");
        let other = token("b", "upload");
        let g: Vec<&str> = good.split('.').collect();
        let o: Vec<&str> = other.split('.').collect();
        let spliced = format!("{}.{}.{}", g[0], o[1], g[2]);
        assert_401(check(&spliced, Access::Upload { rec: "b" }), "signature");
        // A flipped signature character.
        let mut sig: Vec<u8> = g[2].bytes().collect();
        sig[0] = if sig[0] == b'A' { b'B' } else { b'A' };
        let t = format!("{}.{}.{}", g[0], g[1], String::from_utf8(sig).unwrap());
        assert_401(check(&t, Access::Upload { rec: "a" }), "signature");
    }

    #[test]
    fn expired_token_is_unauthorized() {
        let now = now_secs();
        let t = raw(SECRET, serde_json::json!({"rec": "a", "scope": "upload", "exp": now - 60}));
        assert_401(check(&t, Access::Upload { rec: "a" }), "expired");
        let t = raw(SECRET, serde_json::json!({"rec": "a", "scope": "view", "exp": now - LEEWAY_SECS - 3}));
        assert_401(check(&t, Access::View { rec: "a" }), "expired");
        // Within the leeway: accepted.
        let t = raw(SECRET, serde_json::json!({"rec": "a", "scope": "view", "exp": now - 1}));
        assert!(check(&t, Access::View { rec: "a" }).is_ok());
    }

    #[test]
    fn exp_is_required_and_numeric() {
        let t = raw(SECRET, serde_json::json!({"rec": "a", "scope": "upload"}));
        assert_401(check(&t, Access::Create), "exp");
        let t = raw(SECRET, serde_json::json!({"rec": "a", "scope": "upload", "exp": "tomorrow"}));
        assert_401(check(&t, Access::Create), "malformed");
    }

    #[test]
    fn nbf_in_the_future_is_unauthorized_and_iat_is_allowed() {
        let now = now_secs();
        let t = raw(SECRET, serde_json::json!({"rec": "a", "scope": "upload", "exp": now + 600, "nbf": now + 60}));
        assert_401(check(&t, Access::Create), "not valid yet");
        let t = raw(
            SECRET,
            serde_json::json!({"rec": "a", "scope": "upload", "exp": now + 600, "nbf": now - 1, "iat": now - 1, "jti": "x"}),
        );
        assert!(check(&t, Access::Create).is_ok());
    }

    #[test]
    fn wrong_or_missing_scope_is_refused() {
        let exp = now_secs() + 600;
        let t = raw(SECRET, serde_json::json!({"rec": "a", "scope": "admin", "exp": exp}));
        assert_401(check(&t, Access::View { rec: "a" }), "scope");
        let t = raw(SECRET, serde_json::json!({"rec": "a", "exp": exp}));
        assert_401(check(&t, Access::View { rec: "a" }), "malformed");
        // A view token cannot create, write or delete.
        assert_403(check(&token("a", "view"), Access::Create));
        assert_403(check(&token("a", "view"), Access::Upload { rec: "a" }));
    }

    #[test]
    fn rec_that_is_not_a_name_is_refused() {
        let exp = now_secs() + 600;
        for rec in ["../x", "..", "a/../../etc", "/etc/passwd", ".", "", "a b", &"y".repeat(129)] {
            let t = raw(SECRET, serde_json::json!({"rec": rec, "scope": "upload", "exp": exp}));
            assert_401(check(&t, Access::Create), "rec");
            assert_401(check(&t, Access::Upload { rec }), "rec");
        }
        let t = raw(SECRET, serde_json::json!({"rec": 7, "scope": "upload", "exp": exp}));
        assert_401(check(&t, Access::Create), "malformed");
        assert!(mint(SECRET, "../x", "upload", 60).is_err());
    }

    #[test]
    fn audience_claim_is_refused() {
        let t = raw(SECRET, serde_json::json!({"rec": "a", "scope": "upload", "exp": now_secs() + 600, "aud": "x"}));
        assert_401(check(&t, Access::Create), "aud");
    }

    #[test]
    fn mint_checks_its_arguments() {
        assert!(mint(b"", "a", "upload", 60).is_err());
        assert!(mint(SECRET, "a", "admin", 60).is_err());
        assert!(mint(SECRET, "a", "upload", 0).is_err());
        assert!(mint(SECRET, "a", "upload", u64::MAX).is_err());
        let t = mint(SECRET, "a", "view", 60).unwrap();
        let h = jsonwebtoken::decode_header(&t).unwrap();
        assert_eq!(h.alg, Algorithm::HS256);
    }

    #[test]
    fn empty_secret_refuses_everything() {
        let a = Auth::new(Some(Vec::new()));
        assert!(a.required());
        let forged = raw(b"x", serde_json::json!({"rec": "a", "scope": "upload", "exp": now_secs() + 600}));
        // An empty HMAC key is still a key: make sure a token "signed" with it is refused.
        let empty_key = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &serde_json::json!({"rec": "a", "scope": "upload", "exp": now_secs() + 600}),
            &EncodingKey::from_secret(b""),
        )
        .unwrap();
        for t in [forged, empty_key] {
            assert_401(a.check(&headers(&t), Access::Create), "empty");
        }
    }

    #[test]
    fn secret_file_is_trimmed_and_must_not_be_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, [SECRET, b"\n"].concat()).unwrap();
        let a = Auth::from_secret_file(&path).unwrap();
        assert!(a.check(&headers(&token("a", "upload")), Access::Create).is_ok());
        std::fs::write(&path, b"\n").unwrap();
        assert!(Auth::from_secret_file(&path).is_err());
        assert!(Auth::from_secret_file(&dir.path().join("missing")).is_err());
        assert!(!format!("{a:?}").contains("0123"));
    }
}
