//! Pipeline files: TOML with a list of stages, parsed into typed stage settings with the
//! source span of every value, so that every error points at its line.
//!
//! ```toml
//! stage = [
//!   { kind = "source", path = "in.mp4" },
//!   { kind = "probe" },
//!   { kind = "codecpar-extract" },
//!   { kind = "packet-split" },
//!   { kind = "mux", format = "fmp4", fragment_ms = 1000 },
//!   { kind = "sink", path = "out.mp4" },
//! ]
//! ```
//!
//! `format = "mp4"` records fragmented MP4 and turns it into a regular MP4 at a clean stop
//! (`reserve_ms`: the expected duration, for which room is kept before the media so that
//! the index can go first; see [`crate::formats::mp4::finalize`]).
//!
//! A stage is named by `name` (default: its kind) and reads the output of `input`
//! (default: the closest stage above it that has an output). Two stages reading the same
//! input fan out. Stages run in the order their inputs give, not in the order of kinds:
//! any number of `tap` stages may sit between a `mux` and its sinks.
//!
//! `kind = "tap"` takes output fragments and gives them on unchanged. It is the place where
//! a program embedding livemux runs its own code on the fragments (see
//! [`Pipeline::insert_after`](super::Pipeline::insert_after)); in a file it only passes
//! them through.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

use crate::formats::fragmenter::FragmentPolicy;
use crate::formats::hls::DEFAULT_SEGMENT_MS;
use crate::formats::output::MuxFormat;
use crate::stages::codecpar::CodecparConfig;
use crate::stages::mux::MuxConfig;
use crate::stages::packet_split::SplitConfig;
use crate::stages::probe::ProbeConfig;
use crate::stages::sink::SinkConfig;
use crate::stages::source::SourceConfig;

/// Span used for values given with `--set` (they are not in the file).
pub const OVERRIDE_SPAN: Range<usize> = usize::MAX..usize::MAX;

/// One problem in a pipeline file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecError {
    /// What is wrong.
    pub message: String,
    /// Byte range in the file; [`OVERRIDE_SPAN`] for a `--set` value, `None` for the file.
    pub span: Option<Range<usize>>,
    /// How to fix it, when there is something to say.
    pub help: Option<String>,
}

impl SpecError {
    /// An error at `span` (`None`: about the whole file).
    pub fn new(message: impl Into<String>, span: Option<Range<usize>>) -> Self {
        SpecError { message: message.into(), span, help: None }
    }

    /// Adds how to fix it.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

/// The kinds of stage, as written in pipeline files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StageKind {
    /// `source`: reads the input (a file, stdin, or bytes fed from code).
    Source,
    /// `probe`: finds the container and its structure.
    Probe,
    /// `codecpar-extract`: finds each track's codec parameters.
    Codecpar,
    /// `packet-split`: cuts the media into packets.
    Split,
    /// `mux`: writes the packets as output fragments.
    Mux,
    /// `tap`: passes output fragments on (or runs code given by the embedding program).
    Tap,
    /// `sink`: writes the output (a file, stdout, or fragments collected by code).
    Sink,
}

impl StageKind {
    /// Every kind, in the order data flows through them.
    pub const ALL: [StageKind; 7] = [
        StageKind::Source,
        StageKind::Probe,
        StageKind::Codecpar,
        StageKind::Split,
        StageKind::Mux,
        StageKind::Tap,
        StageKind::Sink,
    ];

    /// The kind as written in pipeline files.
    pub fn name(self) -> &'static str {
        match self {
            StageKind::Source => "source",
            StageKind::Probe => "probe",
            StageKind::Codecpar => "codecpar-extract",
            StageKind::Split => "packet-split",
            StageKind::Mux => "mux",
            StageKind::Tap => "tap",
            StageKind::Sink => "sink",
        }
    }

    /// The kind written `s` in pipeline files.
    pub fn from_name(s: &str) -> Option<Self> {
        StageKind::ALL.into_iter().find(|k| k.name() == s)
    }
}

/// Typed settings of a stage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StageConfig {
    /// Settings of a `source` stage.
    Source(SourceConfig),
    /// Settings of a `probe` stage.
    Probe(ProbeConfig),
    /// Settings of a `codecpar-extract` stage.
    Codecpar(CodecparConfig),
    /// Settings of a `packet-split` stage.
    Split(SplitConfig),
    /// Settings of a `mux` stage.
    Mux(MuxConfig),
    /// A `tap` stage (it has no settings).
    Tap,
    /// Settings of a `sink` stage.
    Sink(SinkConfig),
}

impl StageConfig {
    /// The kind of stage these settings are for.
    pub fn kind(&self) -> StageKind {
        match self {
            StageConfig::Source(_) => StageKind::Source,
            StageConfig::Probe(_) => StageKind::Probe,
            StageConfig::Codecpar(_) => StageKind::Codecpar,
            StageConfig::Split(_) => StageKind::Split,
            StageConfig::Mux(_) => StageKind::Mux,
            StageConfig::Tap => StageKind::Tap,
            StageConfig::Sink(_) => StageKind::Sink,
        }
    }
}

/// A stage as declared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StageSpec {
    /// The stage's name (unique in its pipeline).
    pub name: String,
    /// Its kind and settings.
    pub config: StageConfig,
    /// Explicit `input`, with its span.
    pub input: Option<(String, Range<usize>)>,
    /// Span of the whole stage table.
    pub span: Range<usize>,
    /// Span of its name (of its kind when it has no `name`).
    pub name_span: Range<usize>,
}

type RawTable = BTreeMap<Spanned<String>, Spanned<toml::Value>>;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    stage: Vec<Spanned<RawTable>>,
}

/// Settings of one stage being read; records an error for each bad value.
struct Fields<'e> {
    map: RawTable,
    kind: StageKind,
    table_span: Range<usize>,
    known: &'static [&'static str],
    errors: &'e mut Vec<SpecError>,
}

impl Fields<'_> {
    fn take(&mut self, key: &str) -> Option<Spanned<toml::Value>> {
        let k = self.map.keys().find(|k| k.get_ref() == key)?.clone();
        self.map.remove(&k)
    }

    fn string(&mut self, key: &str) -> Option<(String, Range<usize>)> {
        let v = self.take(key)?;
        let span = v.span();
        match v.into_inner() {
            toml::Value::String(s) => Some((s, span)),
            other => {
                self.errors
                    .push(SpecError::new(format!("'{key}' must be a string, not {}", other.type_str()), Some(span)));
                None
            }
        }
    }

    fn parsed<T: std::str::FromStr<Err = String>>(&mut self, key: &str) -> Option<T> {
        let (s, span) = self.string(key)?;
        match s.parse() {
            Ok(v) => Some(v),
            Err(e) => {
                self.errors.push(SpecError::new(e, Some(span)));
                None
            }
        }
    }

    fn path(&mut self, key: &str) -> Option<PathBuf> {
        self.string(key).map(|(s, _)| PathBuf::from(s))
    }

    fn bool(&mut self, key: &str) -> Option<bool> {
        let v = self.take(key)?;
        let span = v.span();
        match v.into_inner() {
            toml::Value::Boolean(b) => Some(b),
            other => {
                self.errors.push(SpecError::new(
                    format!("'{key}' must be true or false, not {}", other.type_str()),
                    Some(span),
                ));
                None
            }
        }
    }

    fn int(&mut self, key: &str, range: Range<u64>) -> Option<u64> {
        let v = self.take(key)?;
        let span = v.span();
        match v.into_inner() {
            toml::Value::Integer(i) if i >= 0 && range.contains(&(i as u64)) => Some(i as u64),
            toml::Value::Integer(i) => {
                self.errors.push(SpecError::new(
                    format!("'{key}' = {i} is out of range ({}..{})", range.start, range.end),
                    Some(span),
                ));
                None
            }
            other => {
                self.errors
                    .push(SpecError::new(format!("'{key}' must be an integer, not {}", other.type_str()), Some(span)));
                None
            }
        }
    }

    fn required_path(&mut self, key: &str) -> PathBuf {
        self.path(key).unwrap_or_else(|| {
            self.errors.push(
                SpecError::new(format!("a {} stage needs '{key}'", self.kind.name()), Some(self.table_span.clone()))
                    .with_help(format!("add {key} = \"FILE\" (\"-\" for the standard stream)")),
            );
            PathBuf::new()
        })
    }

    fn finish(self) {
        for (k, _) in self.map {
            let help = format!("settings of a {} stage: {}", self.kind.name(), self.known.join(", "));
            self.errors.push(
                SpecError::new(
                    format!("unknown setting '{}' for a {} stage", k.get_ref(), self.kind.name()),
                    Some(k.span()),
                )
                .with_help(help),
            );
        }
    }
}

/// Reads one stage's settings.
fn stage_config(f: &mut Fields<'_>) -> StageConfig {
    match f.kind {
        StageKind::Source => {
            let d = SourceConfig::default();
            StageConfig::Source(SourceConfig {
                path: f.required_path("path"),
                follow: f.bool("follow").unwrap_or(d.follow),
                idle_timeout: f
                    .int("idle_timeout_ms", 1..86_400_000)
                    .map(Duration::from_millis)
                    .unwrap_or(d.idle_timeout),
                chunk_size: f.int("chunk_size", 1..(1 << 30)).map(|v| v as usize).unwrap_or(d.chunk_size),
                moov_first: f.bool("moov_first").unwrap_or(d.moov_first),
            })
        }
        StageKind::Probe => StageConfig::Probe(ProbeConfig {}),
        StageKind::Codecpar => StageConfig::Codecpar(CodecparConfig {
            params: f.parsed("params").unwrap_or_default(),
            reference: f.path("reference"),
        }),
        StageKind::Split => StageConfig::Split(SplitConfig {
            buffer_limit: f
                .int("buffer_limit_mb", 1..1 << 20)
                .map(|mb| mb << 20)
                .unwrap_or(SplitConfig::default().buffer_limit),
            ..SplitConfig::default()
        }),
        StageKind::Mux => {
            let format: MuxFormat = f.parsed("format").unwrap_or_default();
            // HLS segments are longer than a file's fragments by default.
            let d = match format {
                MuxFormat::Hls => FragmentPolicy { min_ms: DEFAULT_SEGMENT_MS, max_ms: 2 * DEFAULT_SEGMENT_MS },
                _ => FragmentPolicy::default(),
            };
            let given = f.int("fragment_ms", 1..3_600_000);
            let min_ms = given.unwrap_or(d.min_ms);
            // Twice fragment_ms when only that is given, as on the command line.
            let max_ms = f.int("max_fragment_ms", 1..3_600_000).unwrap_or(given.map_or(d.max_ms, |ms| 2 * ms));
            if max_ms < min_ms {
                f.errors.push(SpecError::new(
                    format!("max_fragment_ms ({max_ms}) is less than fragment_ms ({min_ms})"),
                    Some(f.table_span.clone()),
                ));
            }
            StageConfig::Mux(MuxConfig {
                format,
                fragment: FragmentPolicy { min_ms, max_ms },
                reserve_ms: f.int("reserve_ms", 0..1_000_000_000).unwrap_or(MuxConfig::default().reserve_ms),
                skip_unsupported: f.bool("skip_unsupported").unwrap_or(false),
                known_duration_ms: None,
            })
        }
        StageKind::Tap => StageConfig::Tap,
        StageKind::Sink => {
            let sink = SinkConfig::new(f.required_path("path"));
            StageConfig::Sink(SinkConfig {
                durability: f.parsed("durability"),
                hls: f.bool("hls").unwrap_or(sink.hls),
                ..sink
            })
        }
    }
}

fn known_keys(kind: StageKind) -> &'static [&'static str] {
    match kind {
        StageKind::Source => &["path", "follow", "idle_timeout_ms", "chunk_size", "moov_first"],
        StageKind::Probe | StageKind::Tap => &[],
        StageKind::Codecpar => &["params", "reference"],
        StageKind::Split => &["buffer_limit_mb"],
        StageKind::Mux => &["format", "fragment_ms", "max_fragment_ms", "reserve_ms", "skip_unsupported"],
        StageKind::Sink => &["path", "durability", "hls"],
    }
}

/// An override from the command line: `stage.key=value`.
#[derive(Clone, Debug, PartialEq)]
pub struct Override {
    /// The stage's name.
    pub stage: String,
    /// The setting.
    pub key: String,
    /// Its new value.
    pub value: toml::Value,
}

impl std::str::FromStr for Override {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (path, value) = s.split_once('=').ok_or_else(|| format!("'{s}' is not STAGE.KEY=VALUE"))?;
        let (stage, key) = path.split_once('.').ok_or_else(|| format!("'{path}' is not STAGE.KEY"))?;
        // A TOML value if it is one (42, true, "x"), else the text as a string.
        let value = toml::from_str::<BTreeMap<String, toml::Value>>(&format!("v = {value}"))
            .ok()
            .and_then(|mut m| m.remove("v"))
            .unwrap_or_else(|| toml::Value::String(value.to_string()));
        Ok(Override { stage: stage.trim().to_string(), key: key.trim().to_string(), value })
    }
}

/// Parses a pipeline file's text; returns every stage it could read and every error.
pub fn parse(text: &str, overrides: &[Override]) -> (Vec<StageSpec>, Vec<SpecError>) {
    let mut errors = Vec::new();
    let raw: RawFile = match toml::from_str(text) {
        Ok(r) => r,
        Err(e) => {
            let message = e.message().to_string();
            let message = if message.contains("missing field `stage`") {
                "a pipeline file needs a list of stages: stage = [ { kind = \"source\", ... }, ... ]".to_string()
            } else {
                message
            };
            return (Vec::new(), vec![SpecError::new(message, e.span())]);
        }
    };
    let mut stages = Vec::new();
    let mut pending_overrides: Vec<&Override> = overrides.iter().collect();
    for table in raw.stage {
        let table_span = table.span();
        let mut map = table.into_inner();
        let take = |map: &mut RawTable, key: &str| {
            let k = map.keys().find(|k| k.get_ref() == key)?.clone();
            map.remove(&k)
        };
        let Some(kind_v) = take(&mut map, "kind") else {
            errors.push(
                SpecError::new("stage without 'kind'", Some(table_span.clone()))
                    .with_help(format!("kinds: {}", StageKind::ALL.map(StageKind::name).join(", "))),
            );
            continue;
        };
        let kind_span = kind_v.span();
        let Some(kind) = kind_v.get_ref().as_str().and_then(StageKind::from_name) else {
            errors.push(
                SpecError::new(format!("unknown stage kind {}", kind_v.get_ref()), Some(kind_span))
                    .with_help(format!("kinds: {}", StageKind::ALL.map(StageKind::name).join(", "))),
            );
            continue;
        };
        let (name, name_span) = match take(&mut map, "name") {
            Some(v) => match v.get_ref().as_str() {
                Some(s) if !s.is_empty() && !s.contains('.') => (s.to_string(), v.span()),
                _ => {
                    errors.push(SpecError::new("'name' must be a non-empty string without dots", Some(v.span())));
                    continue;
                }
            },
            None => (kind.name().to_string(), kind_span),
        };
        let input = match take(&mut map, "input") {
            Some(v) => match v.get_ref().as_str() {
                Some(s) => Some((s.to_string(), v.span())),
                None => {
                    errors.push(SpecError::new("'input' must be the name of a stage", Some(v.span())));
                    None
                }
            },
            None => None,
        };
        pending_overrides.retain(|o| {
            if o.stage != name {
                return true;
            }
            if let Some(k) = map.keys().find(|k| k.get_ref() == &o.key).cloned() {
                map.remove(&k);
            }
            map.insert(Spanned::new(OVERRIDE_SPAN, o.key.clone()), Spanned::new(OVERRIDE_SPAN, o.value.clone()));
            false
        });
        let mut fields =
            Fields { map, kind, table_span: table_span.clone(), known: known_keys(kind), errors: &mut errors };
        let config = stage_config(&mut fields);
        fields.finish();
        stages.push(StageSpec { name, config, input, span: table_span, name_span });
    }
    for o in pending_overrides {
        errors.push(SpecError::new(
            format!("--set {}.{}: there is no stage named '{}'", o.stage, o.key, o.stage),
            Some(OVERRIDE_SPAN),
        ));
    }
    (stages, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
stage = [
  { kind = "source", path = "in.mp4" },
  { kind = "probe" },
  { kind = "codecpar-extract" },
  { kind = "packet-split" },
  { kind = "mux", format = "fmp4", fragment_ms = 500 },
  { kind = "sink", path = "out.mp4", durability = "none" },
]
"#;

    #[test]
    fn parses_a_linear_pipeline() {
        let (stages, errors) = parse(GOOD, &[]);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(stages.len(), 6);
        let StageConfig::Mux(m) = &stages[4].config else { panic!() };
        assert_eq!(m.fragment, FragmentPolicy { min_ms: 500, max_ms: 1000 }, "max_fragment_ms: twice fragment_ms");
    }

    #[test]
    fn reports_every_error_with_its_span() {
        let text = r#"
[[stage]]
kind = "source"
pth = "x"

[[stage]]
kind = "mux"
format = "avi"
fragment_ms = "long"

[[stage]]
kind = "teleport"
"#;
        let (_, errors) = parse(text, &[]);
        let messages: Vec<_> = errors.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(errors.len(), 5, "{messages:?}");
        for e in &errors {
            let span = e.span.clone().unwrap();
            assert!(span.end <= text.len(), "{e:?}");
        }
        let unknown = errors.iter().find(|e| e.message.contains("unknown setting 'pth'")).unwrap();
        assert_eq!(&text[unknown.span.clone().unwrap()], "pth");
        let avi = errors.iter().find(|e| e.message.contains("avi")).unwrap();
        assert_eq!(&text[avi.span.clone().unwrap()], "\"avi\"");
    }

    #[test]
    fn mux_skip_unsupported() {
        let (stages, _) = parse(GOOD, &[]);
        let StageConfig::Mux(m) = &stages[4].config else { panic!() };
        assert!(!m.skip_unsupported);
        let text = GOOD.replace("format = \"fmp4\"", "format = \"mp4\", skip_unsupported = true");
        let (stages, errors) = parse(&text, &[]);
        assert!(errors.is_empty(), "{errors:?}");
        let StageConfig::Mux(m) = &stages[4].config else { panic!() };
        assert!(m.skip_unsupported);
        let text = GOOD.replace("format = \"fmp4\"", "skip_unsupported = 1");
        let (_, errors) = parse(&text, &[]);
        assert!(errors.iter().any(|e| e.message.contains("'skip_unsupported' must be true or false")), "{errors:?}");
    }

    #[test]
    fn regular_mp4_with_a_reserve() {
        let text = GOOD.replace("format = \"fmp4\"", "format = \"mp4\", reserve_ms = 0");
        let (stages, errors) = parse(&text, &[]);
        assert!(errors.is_empty(), "{errors:?}");
        let StageConfig::Mux(m) = &stages[4].config else { panic!() };
        assert_eq!((m.format, m.reserve_ms), (crate::stages::mux::MuxFormat::Mp4, 0));
        let (stages, _) = parse(GOOD, &[]);
        let StageConfig::Mux(m) = &stages[4].config else { panic!() };
        assert_eq!(m.reserve_ms, crate::formats::mp4::regular::DEFAULT_RESERVE_MS);
    }

    #[test]
    fn overrides_replace_values() {
        let o: Override = "sink.path=other.mp4".parse().unwrap();
        let n: Override = "mux.fragment_ms=250".parse().unwrap();
        let (stages, errors) = parse(GOOD, &[o, n]);
        assert!(errors.is_empty(), "{errors:?}");
        let StageConfig::Sink(s) = &stages[5].config else { panic!() };
        assert_eq!(s.path, PathBuf::from("other.mp4"));
        let StageConfig::Mux(m) = &stages[4].config else { panic!() };
        assert_eq!((m.fragment.min_ms, m.fragment.max_ms), (250, 500), "max_fragment_ms: twice fragment_ms");
        let bad: Override = "nope.path=x".parse().unwrap();
        assert_eq!(parse(GOOD, &[bad]).1.len(), 1);
    }
}
