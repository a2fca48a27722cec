//! `/metrics`: Prometheus text exposition (format 0.0.4) of the server's counters.
//!
//! The series, all prefixed `livemux_`:
//!
//! | name | type | what |
//! |---|---|---|
//! | `livemux_uploads_active` | gauge | uploads open now (created or resumed, not yet ended) |
//! | `livemux_uploads_started_total` | counter | uploads created or resumed |
//! | `livemux_uploads_ended_total{state}` | counter | uploads ended, by final state (finished, abandoned, terminated, expired, failed) |
//! | `livemux_bytes_acknowledged_total` | counter | input bytes durable and acknowledged to clients |
//! | `livemux_errors_total{status,kind}` | counter | requests answered with an error, by HTTP status and reason |
//! | `livemux_patch_duration_seconds` | histogram | time from a PATCH's arrival to its answer |
//! | `livemux_flush_duration_seconds` | histogram | time of one group-commit flush round |
//! | `livemux_flush_batch_files` | histogram | files synced by one flush round |
//! | `livemux_store_bytes_total{what}` | counter | with `--store`: bytes `input_uploaded` (the input log), `output_uploaded`, `copied` by the store (UploadPartCopy), `downloaded` (takeovers) |
//!
//! With `--store` a flush is the store's PUT of one input log object (one file per round).
//!
//! Why hand-written rather than the `prometheus` crate: a dozen series with fixed names
//! need a few atomics and forty lines of formatting; the crate would bring a registry,
//! its own locking and dependencies for nothing more. Counters and histograms are plain
//! atomics (`Relaxed`: each number is exact, a scrape is not a snapshot across series,
//! which Prometheus does not expect either). The two labelled counters sit behind a small
//! mutex taken only when an upload ends or a request fails, never on the PATCH path.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency histogram buckets, in microseconds (0.001 s .. 10 s).
const LATENCY_BUCKETS_US: [u64; 13] = [
    1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

/// Upper bounds of the flush batch size buckets, in files.
const BATCH_BUCKETS: [u64; 11] = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000];

/// The final states an upload can end in; always exposed, zero or not, so that a rate
/// over them exists from the first scrape.
const END_STATES: [&str; 5] = ["finished", "abandoned", "terminated", "expired", "failed"];

/// At most this many distinct label sets per labelled counter are kept; later new ones are
/// counted as `other` (states and kinds come from the server's code: this only bounds a bug).
const MAX_LABELLED_SERIES: usize = 256;

/// A histogram over fixed integer bucket bounds (non-cumulative counts; cumulated when
/// rendered).
#[derive(Debug)]
struct Histogram<const N: usize> {
    /// Upper bounds (inclusive), ascending, in the unit of `observe`.
    bounds: [u64; N],
    /// Divides a bound or the sum to get the exposed unit (1e6 for µs → s).
    scale: f64,
    /// `counts[i]`: observations in `(bounds[i-1], bounds[i]]`; `counts[N]`: above the last.
    counts: [AtomicU64; N],
    over: AtomicU64,
    sum: AtomicU64,
    count: AtomicU64,
}

impl<const N: usize> Histogram<N> {
    fn new(bounds: [u64; N], scale: f64) -> Self {
        Histogram {
            bounds,
            scale,
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            over: AtomicU64::new(0),
            sum: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    fn observe(&self, v: u64) {
        match self.bounds.iter().position(|&b| v <= b) {
            Some(i) => self.counts[i].fetch_add(1, Relaxed),
            None => self.over.fetch_add(1, Relaxed),
        };
        self.sum.fetch_add(v, Relaxed);
        self.count.fetch_add(1, Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut cumulative = 0u64;
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            cumulative = cumulative.saturating_add(count.load(Relaxed));
            let le = *bound as f64 / self.scale;
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
        }
        cumulative = cumulative.saturating_add(self.over.load(Relaxed));
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
        let _ = writeln!(out, "{name}_sum {}", self.sum.load(Relaxed) as f64 / self.scale);
        // The count is the +Inf bucket (read once above), so the two always agree even
        // while observations land during the render.
        let _ = writeln!(out, "{name}_count {cumulative}");
    }
}

/// The server's counters; shared as `Arc<Metrics>`, updated lock-free.
#[derive(Debug)]
pub struct Metrics {
    active: AtomicI64,
    started: AtomicU64,
    bytes: AtomicU64,
    ended: Mutex<BTreeMap<String, u64>>,
    errors: Mutex<BTreeMap<(u16, String), u64>>,
    patch: Histogram<13>,
    flush: Histogram<13>,
    batch: Histogram<11>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            active: AtomicI64::new(0),
            started: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            ended: Mutex::new(END_STATES.iter().map(|s| (s.to_string(), 0)).collect()),
            errors: Mutex::new(BTreeMap::new()),
            patch: Histogram::new(LATENCY_BUCKETS_US, 1e6),
            flush: Histogram::new(LATENCY_BUCKETS_US, 1e6),
            batch: Histogram::new(BATCH_BUCKETS, 1.0),
        }
    }
}

/// Microseconds of `d`, saturated.
fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Escapes a label value as the text format wants (`\\`, `\"`, `\n`).
fn label(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

impl Metrics {
    /// Zeroed counters.
    pub fn new() -> Self {
        Metrics::default()
    }
    /// A flush round took `took` for `files` files.
    pub fn flush(&self, took: Duration, files: usize) {
        self.flush.observe(micros(took));
        self.batch.observe(u64::try_from(files).unwrap_or(u64::MAX));
    }
    /// `n` input bytes were acknowledged.
    pub fn bytes_in(&self, n: u64) {
        self.bytes.fetch_add(n, Relaxed);
    }
    /// A PATCH was answered after `took`.
    pub fn patch(&self, took: Duration) {
        self.patch.observe(micros(took));
    }
    /// An upload was created / resumed (`+1`) or ended (`-1`).
    pub fn uploads(&self, delta: i64) {
        self.active.fetch_add(delta, Relaxed);
        if delta > 0 {
            self.started.fetch_add(delta.unsigned_abs(), Relaxed);
        }
    }
    /// An upload ended in `state` (finished, abandoned, terminated, expired, failed).
    pub fn ended(&self, state: &str) {
        let mut ended = self.ended.lock().unwrap_or_else(|e| e.into_inner());
        let state = if ended.contains_key(state) || ended.len() < MAX_LABELLED_SERIES { state } else { "other" };
        *ended.entry(state.to_string()).or_insert(0) += 1;
    }
    /// A request failed with `status`, for the reason `kind` (a short snake_case word).
    pub fn error(&self, status: u16, kind: &str) {
        let mut errors = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        let mut key = (status, kind.to_string());
        if !errors.contains_key(&key) && errors.len() >= MAX_LABELLED_SERIES {
            key.1 = "other".to_string();
        }
        *errors.entry(key).or_insert(0) += 1;
    }
    /// The text for `GET /metrics` (content type `text/plain; version=0.0.4`).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let simple = |out: &mut String, name: &str, kind: &str, help: &str, value: String| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            let _ = writeln!(out, "{name} {value}");
        };
        simple(
            &mut out,
            "livemux_uploads_active",
            "gauge",
            "Uploads open now (created or resumed, not yet ended).",
            self.active.load(Relaxed).to_string(),
        );
        simple(
            &mut out,
            "livemux_uploads_started_total",
            "counter",
            "Uploads created or resumed.",
            self.started.load(Relaxed).to_string(),
        );
        let _ = writeln!(out, "# HELP livemux_uploads_ended_total Uploads ended, by final state.");
        let _ = writeln!(out, "# TYPE livemux_uploads_ended_total counter");
        for (state, n) in self.ended.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(out, "livemux_uploads_ended_total{{state=\"{}\"}} {n}", label(state));
        }
        simple(
            &mut out,
            "livemux_bytes_acknowledged_total",
            "counter",
            "Input bytes made durable and acknowledged to clients.",
            self.bytes.load(Relaxed).to_string(),
        );
        let _ =
            writeln!(out, "# HELP livemux_errors_total Requests answered with an error, by HTTP status and reason.");
        let _ = writeln!(out, "# TYPE livemux_errors_total counter");
        for ((status, kind), n) in self.errors.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(out, "livemux_errors_total{{status=\"{status}\",kind=\"{}\"}} {n}", label(kind));
        }
        self.patch.render(&mut out, "livemux_patch_duration_seconds", "Time from a PATCH's arrival to its answer.");
        self.flush.render(&mut out, "livemux_flush_duration_seconds", "Time of one group-commit flush round.");
        self.batch.render(&mut out, "livemux_flush_batch_files", "Files synced by one group-commit flush round.");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// One parsed sample line.
    #[derive(Debug)]
    struct Sample {
        name: String,
        labels: BTreeMap<String, String>,
        value: f64,
    }

    fn is_name(s: &str) -> bool {
        let mut c = s.chars();
        c.next().is_some_and(|f| f.is_ascii_alphabetic() || f == '_' || f == ':')
            && c.all(|x| x.is_ascii_alphanumeric() || x == '_' || x == ':')
    }

    fn value(s: &str) -> Result<f64, String> {
        match s {
            "+Inf" => Ok(f64::INFINITY),
            "-Inf" => Ok(f64::NEG_INFINITY),
            "NaN" => Ok(f64::NAN),
            s => s.parse().map_err(|_| format!("bad value {s:?}")),
        }
    }

    /// Checks `text` against the text exposition format 0.0.4: HELP/TYPE comments, every
    /// sample of a declared family (histograms: `_bucket` with `le`, `_sum`, `_count`),
    /// label syntax and escapes, numeric values, a final newline.
    fn check(text: &str) -> Result<Vec<Sample>, String> {
        if !text.ends_with('\n') {
            return Err("no final newline".into());
        }
        let mut types: BTreeMap<String, String> = BTreeMap::new();
        let mut samples = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let err = |m: &str| format!("line {}: {m}: {line:?}", i + 1);
            if let Some(rest) = line.strip_prefix("# ") {
                let mut p = rest.splitn(3, ' ');
                match (p.next(), p.next(), p.next()) {
                    (Some("HELP"), Some(n), Some(_)) if is_name(n) => {}
                    (Some("TYPE"), Some(n), Some(t)) if is_name(n) => {
                        if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&t) {
                            return Err(err("unknown type"));
                        }
                        if types.insert(n.to_string(), t.to_string()).is_some() {
                            return Err(err("second TYPE"));
                        }
                    }
                    _ => return Err(err("bad comment")),
                }
                continue;
            }
            let name_end = line.find(['{', ' ']).ok_or_else(|| err("no value"))?;
            let name = &line[..name_end];
            if !is_name(name) {
                return Err(err("bad name"));
            }
            let mut labels = BTreeMap::new();
            let mut rest = &line[name_end..];
            if let Some(r) = rest.strip_prefix('{') {
                let mut r = r;
                loop {
                    if let Some(after) = r.strip_prefix('}') {
                        r = after;
                        break;
                    }
                    let eq = r.find('=').ok_or_else(|| err("label without ="))?;
                    let key = &r[..eq];
                    if !is_name(key) {
                        return Err(err("bad label name"));
                    }
                    let mut chars = r[eq + 1..].char_indices();
                    if chars.next().map(|c| c.1) != Some('"') {
                        return Err(err("label value not quoted"));
                    }
                    let mut v = String::new();
                    let mut end = None;
                    while let Some((j, c)) = chars.next() {
                        match c {
                            '\\' => match chars.next().map(|c| c.1) {
                                Some('\\') => v.push('\\'),
                                Some('"') => v.push('"'),
                                Some('n') => v.push('\n'),
                                _ => return Err(err("bad escape")),
                            },
                            '"' => {
                                end = Some(eq + 1 + j + 1);
                                break;
                            }
                            c => v.push(c),
                        }
                    }
                    let end = end.ok_or_else(|| err("unterminated label value"))?;
                    labels.insert(key.to_string(), v);
                    r = &r[end..];
                    r = r.strip_prefix(',').unwrap_or(r);
                }
                rest = r;
            }
            let rest = rest.strip_prefix(' ').ok_or_else(|| err("no space before value"))?;
            let mut parts = rest.split(' ');
            let value = value(parts.next().unwrap_or("")).map_err(|e| err(&e))?;
            if let Some(ts) = parts.next() {
                ts.parse::<i64>().map_err(|_| err("bad timestamp"))?;
            }
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s).filter(|f| types.get(*f).is_some_and(|t| t == "histogram")))
                .unwrap_or(name);
            let ty = types.get(family).ok_or_else(|| err("sample before its TYPE"))?;
            if ty == "histogram" && name == family {
                return Err(err("histogram sample without _bucket/_sum/_count"));
            }
            if name.ends_with("_bucket") && ty == "histogram" && !labels.contains_key("le") {
                return Err(err("bucket without le"));
            }
            samples.push(Sample { name: name.to_string(), labels, value });
        }
        Ok(samples)
    }

    /// The `(le, cumulative count)` pairs of histogram `family`, and its `_count`.
    fn buckets(samples: &[Sample], family: &str) -> (Vec<(f64, f64)>, f64) {
        let name = format!("{family}_bucket");
        let b = samples.iter().filter(|s| s.name == name).map(|s| (value(&s.labels["le"]).unwrap(), s.value)).collect();
        let count = samples.iter().find(|s| s.name == format!("{family}_count")).unwrap().value;
        (b, count)
    }

    #[test]
    fn renders_parseable_text() {
        let m = Metrics::new();
        m.uploads(1);
        m.uploads(1);
        m.uploads(-1);
        m.ended("finished");
        m.bytes_in(1000);
        m.bytes_in(234);
        m.error(409, "offset_mismatch");
        m.error(409, "offset_mismatch");
        m.error(460, "checksum");
        m.error(400, "weird \"kind\"\\\n");
        m.patch(Duration::from_micros(300));
        m.patch(Duration::from_millis(30));
        m.patch(Duration::from_secs(60));
        m.flush(Duration::from_millis(4), 3);
        let text = m.render();
        let samples = check(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let get = |name: &str, labels: &[(&str, &str)]| {
            samples
                .iter()
                .find(|s| {
                    s.name == name && labels.iter().all(|(k, v)| s.labels.get(*k).map(|x| x.as_str()) == Some(*v))
                })
                .unwrap_or_else(|| panic!("no {name} {labels:?} in\n{text}"))
                .value
        };
        assert_eq!(get("livemux_uploads_active", &[]), 1.0);
        assert_eq!(get("livemux_uploads_started_total", &[]), 2.0);
        assert_eq!(get("livemux_uploads_ended_total", &[("state", "finished")]), 1.0);
        assert_eq!(get("livemux_uploads_ended_total", &[("state", "failed")]), 0.0);
        assert_eq!(get("livemux_bytes_acknowledged_total", &[]), 1234.0);
        assert_eq!(get("livemux_errors_total", &[("status", "409"), ("kind", "offset_mismatch")]), 2.0);
        assert_eq!(get("livemux_errors_total", &[("status", "460"), ("kind", "checksum")]), 1.0);
        assert_eq!(get("livemux_errors_total", &[("status", "400"), ("kind", "weird \"kind\"\\\n")]), 1.0);
        assert_eq!(get("livemux_patch_duration_seconds_count", &[]), 3.0);
        assert!((get("livemux_patch_duration_seconds_sum", &[]) - 60.0303).abs() < 1e-9);
        assert_eq!(get("livemux_patch_duration_seconds_bucket", &[("le", "0.001")]), 1.0);
        assert_eq!(get("livemux_patch_duration_seconds_bucket", &[("le", "0.05")]), 2.0);
        assert_eq!(get("livemux_patch_duration_seconds_bucket", &[("le", "10")]), 2.0);
        assert_eq!(get("livemux_patch_duration_seconds_bucket", &[("le", "+Inf")]), 3.0);
        assert_eq!(get("livemux_flush_duration_seconds_bucket", &[("le", "0.005")]), 1.0);
        assert_eq!(get("livemux_flush_batch_files_bucket", &[("le", "2")]), 0.0);
        assert_eq!(get("livemux_flush_batch_files_bucket", &[("le", "5")]), 1.0);
        assert_eq!(get("livemux_flush_batch_files_sum", &[]), 3.0);
    }

    #[test]
    fn the_checker_catches_bad_text() {
        for bad in [
            "livemux_x 1\n",                                      // no TYPE
            "# TYPE livemux_x counter\nlivemux_x one\n",          // bad value
            "# TYPE livemux_x counter\nlivemux_x{a=\"b} 1\n",     // unterminated
            "# TYPE livemux_x counter\nlivemux_x{a=b} 1\n",       // unquoted
            "# TYPE livemux_x histogram\nlivemux_x_bucket 1\n",   // no le
            "# TYPE livemux_x counter\nlivemux_x 1",              // no final newline
            "# TYPE livemux_x thing\n",                           // unknown type
            "# TYPE livemux_x counter\nlivemux_x{a=\"\\t\"} 1\n", // bad escape
        ] {
            assert!(check(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn buckets_are_cumulative() {
        let m = Metrics::new();
        for ms in [0u64, 1, 2, 3, 7, 20, 40, 90, 200, 400, 900, 2000, 4000, 9000, 10_000, 10_001, 50_000] {
            m.patch(Duration::from_millis(ms));
            m.flush(Duration::from_millis(ms), usize::try_from(ms / 10).unwrap());
        }
        let text = m.render();
        let samples = check(&text).unwrap();
        for family in ["livemux_patch_duration_seconds", "livemux_flush_duration_seconds", "livemux_flush_batch_files"]
        {
            let (b, count) = buckets(&samples, family);
            assert!(b.len() >= 11, "{family}: {b:?}");
            assert!(b.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1), "{family} not cumulative: {b:?}");
            assert_eq!(b.last().unwrap().0, f64::INFINITY);
            assert_eq!(b.last().unwrap().1, count);
            assert_eq!(count, 17.0);
        }
        let (b, _) = buckets(&samples, "livemux_patch_duration_seconds");
        assert_eq!(b.first().unwrap(), &(0.001, 2.0)); // 0 ms and 1 ms: le is inclusive
        assert_eq!(b.iter().find(|x| x.0 == 10.0).unwrap().1, 15.0);
    }

    #[test]
    fn error_series_are_bounded() {
        let m = Metrics::new();
        for i in 0..MAX_LABELLED_SERIES + 10 {
            m.error(400, &format!("k{i}"));
        }
        let text = m.render();
        let samples = check(&text).unwrap();
        let n = samples.iter().filter(|s| s.name == "livemux_errors_total").count();
        assert_eq!(n, MAX_LABELLED_SERIES + 1);
        let other = samples.iter().find(|s| s.labels.get("kind").is_some_and(|k| k == "other")).unwrap();
        assert_eq!(other.value, 10.0);
    }
}
