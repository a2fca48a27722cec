//! Pipelines: declared in a file (or in code), checked as a whole, run as tasks.

pub mod graph;
pub mod runtime;
pub mod spec;

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
#[cfg(feature = "cli")]
use miette::{Diagnostic, LabeledSpan, NamedSource, SourceSpan};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use graph::Graph;
pub use runtime::{External, RunReport};
pub use spec::{Override, SpecError, StageConfig, StageKind, StageSpec};

use crate::model::{Chunk, Fragment};
use crate::stages::codecpar::CodecparConfig;
use crate::stages::mux::MuxConfig;
use crate::stages::sink::SinkConfig;
use crate::stages::source::SourceConfig;
use crate::stages::StageError;

/// Every problem found in a pipeline file, ready to be shown with the lines they point at.
#[derive(Debug, thiserror::Error)]
#[error("{} in pipeline file {name}", plural(errors.len()))]
pub struct PipelineFileError {
    pub name: String,
    /// The file's text, shared by every diagnostic (a file with thousands of errors must
    /// not be copied once per error).
    pub source_text: Arc<str>,
    pub errors: Vec<SpecError>,
}

/// Errors [`PipelineFileError::render`] shows in full under `livemux validate` and `run`;
/// the rest are counted. A generated file can hold thousands.
#[cfg(feature = "cli")]
pub const MAX_RENDERED_ERRORS: usize = 100;

/// Longest stretch of the file (from the start of the first line an error points at to
/// the end of its last) shown under an error; a longer one (a whole file on one line, a
/// stage spanning thousands of lines) is located by line and column only.
#[cfg(feature = "cli")]
pub const MAX_SNIPPET_BYTES: usize = 2048;

fn plural(n: usize) -> String {
    if n == 1 {
        "1 error".into()
    } else {
        format!("{n} errors")
    }
}

/// One error as a miette diagnostic.
#[cfg(feature = "cli")]
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
struct OneError {
    message: String,
    help: Option<String>,
    label: Option<SourceSpan>,
    src: NamedSource<Arc<str>>,
}

#[cfg(feature = "cli")]
impl Diagnostic for OneError {
    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.help.as_ref().map(|h| Box::new(h) as Box<dyn std::fmt::Display>)
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.label.map(|_| &self.src as &dyn miette::SourceCode)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        self.label.map(|l| Box::new(std::iter::once(LabeledSpan::new_with_span(Some("here".into()), l))) as _)
    }
}

/// Where each line of a text starts.
struct Lines {
    starts: Vec<usize>,
    len: usize,
}

impl Lines {
    fn new(text: &str) -> Self {
        let starts = std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect();
        Lines { starts, len: text.len() }
    }

    /// 0-based line of byte `at`.
    fn line(&self, at: usize) -> usize {
        self.starts.partition_point(|&s| s <= at).saturating_sub(1)
    }

    /// (line, column), 1-based, of byte `at` (columns count bytes).
    fn position(&self, at: usize) -> (usize, usize) {
        let at = at.min(self.len);
        let line = self.line(at);
        (line + 1, at - self.starts[line] + 1)
    }

    #[cfg(feature = "cli")]
    /// Bytes from the start of the line of `span.start` to the end of the line of `span.end`.
    fn snippet_len(&self, span: &std::ops::Range<usize>) -> usize {
        let first = self.starts[self.line(span.start.min(self.len))];
        let last = self.line(span.end.min(self.len));
        let end = self.starts.get(last + 1).copied().unwrap_or(self.len);
        end.saturating_sub(first)
    }
}

impl PipelineFileError {
    /// One diagnostic per error, each pointing at its place in the file (made as they are
    /// taken: take only those to show).
    #[cfg(feature = "cli")]
    pub fn diagnostics(&self) -> impl Iterator<Item = impl Diagnostic + Send + Sync + 'static> + '_ {
        let lines = Lines::new(&self.source_text);
        self.errors.iter().map(move |e| {
            let from_set = e.span == Some(spec::OVERRIDE_SPAN);
            OneError {
                message: e.message.clone(),
                help: e.help.clone().or_else(|| from_set.then(|| "this value comes from --set".into())),
                label: e
                    .span
                    .clone()
                    .filter(|s| !from_set && lines.snippet_len(s) <= MAX_SNIPPET_BYTES)
                    .map(|s| SourceSpan::from(s.start..s.end.max(s.start))),
                src: NamedSource::new(&self.name, Arc::clone(&self.source_text)),
            }
        })
    }

    /// (line, column), 1-based, of each error that has a place in the file.
    pub fn positions(&self) -> Vec<Option<(usize, usize)>> {
        let lines = Lines::new(&self.source_text);
        self.errors
            .iter()
            .map(|e| {
                let span = e.span.clone().filter(|s| *s != spec::OVERRIDE_SPAN)?;
                Some(lines.position(span.start))
            })
            .collect()
    }

    /// The first `max` errors as `livemux validate` shows them, each with the lines it
    /// points at, then how many were left out. Memory and time grow with the text and
    /// the number of errors, not with their product.
    #[cfg(feature = "cli")]
    pub fn render(&self, max: usize) -> String {
        let handler = miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor());
        let mut out = String::new();
        for (d, pos) in self.diagnostics().zip(self.positions()).take(max) {
            let mut one = String::new();
            if let Some((line, col)) = pos {
                one.push_str(&format!("{}:{line}:{col}: ", self.name));
            }
            let _ = handler.render_report(&mut one, &d);
            out.push_str(one.trim_end());
            out.push('\n');
        }
        if self.errors.len() > max {
            let more = self.errors.len() - max;
            let s = if more == 1 { "" } else { "s" };
            out.push_str(&format!("... and {more} more error{s} (only the first {max} are shown)\n"));
        }
        out
    }
}

/// A checked pipeline, ready to run.
pub struct Pipeline {
    graph: Graph,
    external: External,
}

/// Sends input bytes into a pipeline built in code (see [`Pipeline::feed`]).
pub struct Feeder {
    tx: mpsc::Sender<Chunk>,
    offset: u64,
}

impl Feeder {
    /// Sends the next bytes of the input; waits while the pipeline is busy. Fails only if
    /// the pipeline has stopped.
    pub async fn send(&mut self, data: Bytes) -> Result<(), Bytes> {
        let len = data.len() as u64;
        let chunk = Chunk { offset: self.offset, data };
        self.tx.send(chunk).await.map_err(|e| e.0.data)?;
        self.offset += len;
        Ok(())
    }
}

impl Pipeline {
    /// Parses and checks pipeline-file text. `name` is used in messages.
    pub fn parse(text: &str, name: &str, overrides: &[Override]) -> Result<Self, PipelineFileError> {
        let (stages, mut errors) = spec::parse(text, overrides);
        let graph = graph::build(stages, &mut errors);
        match graph {
            Some(graph) if errors.is_empty() => Ok(Pipeline { graph, external: External::default() }),
            _ => Err(PipelineFileError { name: name.into(), source_text: text.into(), errors }),
        }
    }

    /// Reads, parses and checks a pipeline file.
    pub fn load(path: &Path, overrides: &[Override]) -> Result<Self, PipelineFileError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| PipelineFileError {
            name: name.clone(),
            source_text: Arc::from(""),
            errors: vec![SpecError::new(format!("cannot read it: {e}"), None)],
        })?;
        Self::parse(&text, &name, overrides)
    }

    /// Builds a linear pipeline in code: each stage reads the one before it.
    pub fn linear(stages: Vec<(&str, StageConfig)>) -> Result<Self, PipelineFileError> {
        let specs = stages
            .into_iter()
            .map(|(name, config)| StageSpec { name: name.into(), config, input: None, span: 0..0, name_span: 0..0 })
            .collect();
        let mut errors = Vec::new();
        match graph::build(specs, &mut errors) {
            Some(graph) if errors.is_empty() => Ok(Pipeline { graph, external: External::default() }),
            _ => Err(PipelineFileError { name: "pipeline built in code".into(), source_text: Arc::from(""), errors }),
        }
    }

    /// The standard pipeline: stages `source`, `probe`, `codecpar-extract`,
    /// `packet-split`, `mux` and `sink`, in that order (what `livemux remux` runs).
    pub fn remux(
        source: SourceConfig,
        params: CodecparConfig,
        mux: MuxConfig,
        sink: SinkConfig,
    ) -> Result<Self, PipelineFileError> {
        use crate::stages::packet_split::SplitConfig;
        // A file read whole gives its trailing index first, if it has one: packets scanned
        // from it need not wait for one.
        let split = SplitConfig { late_index: source.may_index_late(), ..Default::default() };
        Self::linear(vec![
            ("source", StageConfig::Source(source)),
            ("probe", StageConfig::Probe(Default::default())),
            ("codecpar-extract", StageConfig::Codecpar(params)),
            ("packet-split", StageConfig::Split(split)),
            ("mux", StageConfig::Mux(mux)),
            ("sink", StageConfig::Sink(sink)),
        ])
    }

    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// Makes the source stage `name` read from the returned [`Feeder`] instead of its path.
    pub fn feed(&mut self, name: &str) -> Option<Feeder> {
        let i = self.graph.find(name)?;
        if self.graph.stages[i].config.kind() != StageKind::Source {
            return None;
        }
        let (tx, rx) = mpsc::channel(crate::stages::CHUNK_CHANNEL);
        self.external.feeds.insert(name.into(), rx);
        Some(Feeder { tx, offset: 0 })
    }

    /// Makes the sink stage `name` hand its fragments to the returned receiver.
    pub fn collect(&mut self, name: &str) -> Option<mpsc::Receiver<Fragment>> {
        let i = self.graph.find(name)?;
        if self.graph.stages[i].config.kind() != StageKind::Sink {
            return None;
        }
        let (tx, rx) = mpsc::channel(crate::stages::FRAGMENT_CHANNEL);
        self.external.collects.insert(name.into(), tx);
        Some(rx)
    }

    /// Runs to the end of the input, or until `stop` is cancelled (which ends the input
    /// cleanly: every stage drains and outputs are finished).
    pub async fn run(self, stop: CancellationToken) -> Result<RunReport, StageError> {
        runtime::run(self.graph, self.external, stop).await
    }
}
