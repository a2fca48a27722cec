//! Pipelines: declared in a file (or in code), checked as a whole, run as tasks.

pub mod graph;
pub mod runtime;
pub mod spec;

use std::path::Path;

use bytes::Bytes;
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
    pub source_text: String,
    pub errors: Vec<SpecError>,
}

fn plural(n: usize) -> String {
    if n == 1 {
        "1 error".into()
    } else {
        format!("{n} errors")
    }
}

/// One error as a miette diagnostic.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
struct OneError {
    message: String,
    help: Option<String>,
    label: Option<SourceSpan>,
    src: NamedSource<String>,
}

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

impl PipelineFileError {
    /// One diagnostic per error, each pointing at its place in the file.
    pub fn diagnostics(&self) -> Vec<impl Diagnostic + Send + Sync + 'static> {
        self.errors
            .iter()
            .map(|e| {
                let from_set = e.span == Some(spec::OVERRIDE_SPAN);
                OneError {
                    message: e.message.clone(),
                    help: e.help.clone().or_else(|| from_set.then(|| "this value comes from --set".into())),
                    label: e.span.clone().filter(|_| !from_set).map(|s| SourceSpan::from(s.start..s.end.max(s.start))),
                    src: NamedSource::new(self.name.clone(), self.source_text.clone()),
                }
            })
            .collect()
    }

    /// (line, column), 1-based, of each error that has a place in the file.
    pub fn positions(&self) -> Vec<Option<(usize, usize)>> {
        self.errors
            .iter()
            .map(|e| {
                let span = e.span.clone().filter(|s| *s != spec::OVERRIDE_SPAN)?;
                let before = &self.source_text[..span.start.min(self.source_text.len())];
                let line = before.matches('\n').count() + 1;
                let col = before.len() - before.rfind('\n').map_or(0, |p| p + 1) + 1;
                Some((line, col))
            })
            .collect()
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
            source_text: String::new(),
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
            _ => Err(PipelineFileError { name: "pipeline built in code".into(), source_text: String::new(), errors }),
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
