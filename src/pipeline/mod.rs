//! Pipelines: declared in a file (or in code), checked as a whole, run as tasks.
//!
//! A program embedding livemux holds typed ends on a pipeline: a [`Feed`] for its input,
//! a [`Collect`] for its output, and [`Tap`]s, code of its own run on the fragments
//! between the mux and the sinks.

pub mod graph;
mod handles;
pub mod runtime;
pub mod spec;

use std::path::Path;
use std::sync::Arc;

#[cfg(feature = "cli")]
use miette::{Diagnostic, LabeledSpan, NamedSource, SourceSpan};
use tokio_util::sync::CancellationToken;

pub use graph::Graph;
pub use handles::{Collect, Feed, Stopped, Tap, TapOutput};
pub use runtime::RunReport;
pub use spec::{Override, SpecError, StageConfig, StageKind, StageSpec};

use crate::error::{Error, ErrorKind};
use crate::stages::codecpar::CodecparConfig;
use crate::stages::mux::MuxConfig;
use crate::stages::sink::SinkConfig;
use crate::stages::source::SourceConfig;
use runtime::External;

/// Every problem found in a pipeline file, ready to be shown with the lines they point at.
#[derive(Debug, thiserror::Error)]
#[error("{} in pipeline file {name}", plural(errors.len()))]
pub struct PipelineFileError {
    /// The file's name, as given.
    pub name: String,
    /// The file's text, shared by every diagnostic (a file with thousands of errors must
    /// not be copied once per error).
    pub(crate) source_text: Arc<str>,
    /// Every problem found, in the order of the file.
    pub(crate) errors: Vec<SpecError>,
}

impl PipelineFileError {
    /// The message of each problem, in the order of the file (the command line shows
    /// them with the lines they point at).
    pub fn messages(&self) -> impl Iterator<Item = &str> + '_ {
        self.errors.iter().map(|e| e.message.as_str())
    }
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

/// A checked pipeline, ready to [`run`](Pipeline::run).
///
/// Built from a pipeline file ([`load`](Pipeline::load)) or in code
/// ([`remux`](Pipeline::remux), [`remux_fed`](Pipeline::remux_fed)). A program feeds its input and collects its output
/// while the pipeline runs, at the same time: every channel holds one or two items, so
/// sending the whole input before reading any output would wait forever.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use livemux::pipeline::Pipeline;
/// use livemux::stages::mux::MuxConfig;
/// // A Chromium recording, in the blobs the browser delivered it in.
/// let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/browser/chrome_mp4_avc1_opus.chunks");
/// let mut blobs = std::fs::read_dir(dir)?.map(|e| e.map(|e| e.path())).collect::<Result<Vec<_>, _>>()?;
/// blobs.sort();
///
/// let (pipeline, mut feed, mut fragments) = Pipeline::remux_fed(Default::default(), MuxConfig::default())?;
/// let run = tokio::spawn(pipeline.run(Default::default()));
/// // The upload is fed from one task while this one collects the fragments.
/// let upload = tokio::spawn(async move {
///     for blob in blobs {
///         let blob = bytes::Bytes::from(std::fs::read(blob).expect("a fixture"));
///         for piece in blob.chunks(16 * 1024) {
///             feed.send(blob.slice_ref(piece)).await?;
///         }
///     }
///     feed.finish();
///     Ok::<_, livemux::pipeline::Stopped>(())
/// });
/// let mut output = Vec::new();
/// while let Some(f) = fragments.recv().await {
///     // Each fragment goes at its offset (a regular MP4 or a Matroska file is finished
///     // by rewriting its start).
///     let (at, bytes) = (f.offset as usize, f.to_bytes());
///     if output.len() < at + bytes.len() {
///         output.resize(at + bytes.len(), 0);
///     }
///     output[at..at + bytes.len()].copy_from_slice(&bytes);
/// }
/// upload.await??;
/// run.await??;
/// assert_eq!(&output[4..8], b"ftyp");
/// # Ok(()) }
/// ```
pub struct Pipeline {
    graph: Graph,
    external: External,
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

    /// Reads, parses and checks a pipeline file. A relative path in the file (a source's or
    /// sink's `path`, a `reference`) is taken from the file's folder, as `include`s are in
    /// most configuration languages, so that a pipeline means the same from any working
    /// directory; one given in `overrides` (`--set`) is taken from the working directory,
    /// as any path on a command line.
    pub fn load(path: &Path, overrides: &[Override]) -> Result<Self, PipelineFileError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| PipelineFileError {
            name: name.clone(),
            source_text: Arc::from(""),
            errors: vec![SpecError::new(format!("cannot read it: {e}"), None)],
        })?;
        let mut pipeline = Self::parse(&text, &name, overrides)?;
        let folder = path.parent().unwrap_or(Path::new(""));
        for stage in &mut pipeline.graph.stages {
            let set = |key: &str| overrides.iter().any(|o| o.stage == stage.name && o.key == key);
            let (key, path) = match &mut stage.config {
                StageConfig::Source(c) => ("path", &mut c.path),
                StageConfig::Sink(c) => ("path", &mut c.path),
                StageConfig::Codecpar(c) => match &mut c.reference {
                    Some(r) => ("reference", r),
                    None => continue,
                },
                _ => continue,
            };
            if path.is_relative() && path.as_os_str() != "-" && !set(key) {
                *path = folder.join(&*path);
            }
        }
        Ok(pipeline)
    }

    /// Builds a linear pipeline in code: each stage reads the one before it. Fails
    /// ([`ErrorKind::Config`]) if the stages do not fit together.
    pub(crate) fn linear(stages: Vec<(&str, StageConfig)>) -> crate::Result<Self> {
        let specs = stages
            .into_iter()
            .map(|(name, config)| StageSpec { name: name.into(), config, input: None, span: 0..0, name_span: 0..0 })
            .collect();
        let mut errors = Vec::new();
        match graph::build(specs, &mut errors) {
            Some(graph) if errors.is_empty() => Ok(Pipeline { graph, external: External::default() }),
            _ => {
                Err(PipelineFileError { name: "pipeline built in code".into(), source_text: Arc::from(""), errors }
                    .into())
            }
        }
    }

    /// The standard pipeline: stages `source`, `probe`, `codecpar-extract`,
    /// `packet-split`, `mux` and `sink`, in that order (what `livemux remux` runs).
    pub fn remux(
        source: SourceConfig,
        params: CodecparConfig,
        mux: MuxConfig,
        sink: SinkConfig,
    ) -> crate::Result<Self> {
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

    /// The standard pipeline on input fed from code and output collected by code: no
    /// file, so no source or sink settings.
    pub fn remux_fed(params: CodecparConfig, mux: MuxConfig) -> crate::Result<(Self, Feed, Collect)> {
        // A stream: an MP4 index may come after the media.
        let source = SourceConfig { path: "-".into(), ..SourceConfig::default() };
        let sink = SinkConfig::new("-");
        let mut p = Self::remux(source, params, mux, sink)?;
        let feed = p.feed_input()?;
        let collect = p.collect_output()?;
        Ok((p, feed, collect))
    }

    /// The checked stages and edges.
    #[cfg(feature = "cli")]
    pub(crate) fn graph(&self) -> &Graph {
        &self.graph
    }

    /// Makes the pipeline's source read from the returned [`Feed`] instead of its path.
    /// Fails ([`ErrorKind::Config`]) unless the pipeline has exactly one source (name it
    /// with [`feed`](Pipeline::feed) otherwise).
    pub fn feed_input(&mut self) -> crate::Result<Feed> {
        let i = self.only(StageKind::Source)?;
        Ok(self.feed_stage(i))
    }

    /// Makes the pipeline's sink hand its fragments to the returned [`Collect`] instead of
    /// writing its path. Fails ([`ErrorKind::Config`]) unless the pipeline has exactly one
    /// sink (name it with [`collect`](Pipeline::collect) otherwise).
    pub fn collect_output(&mut self) -> crate::Result<Collect> {
        let i = self.only(StageKind::Sink)?;
        Ok(self.collect_stage(i))
    }

    /// Makes the source stage `name` read from the returned [`Feed`] instead of its path
    /// (`None`: no source has that name). For pipelines with several sources.
    pub fn feed(&mut self, name: &str) -> Option<Feed> {
        let i = self.graph.find(name).filter(|&i| self.graph.stages[i].config.kind() == StageKind::Source)?;
        Some(self.feed_stage(i))
    }

    /// Makes the sink stage `name` hand its fragments to the returned [`Collect`] (`None`:
    /// no sink has that name). For pipelines with several sinks.
    pub fn collect(&mut self, name: &str) -> Option<Collect> {
        let i = self.graph.find(name).filter(|&i| self.graph.stages[i].config.kind() == StageKind::Sink)?;
        Some(self.collect_stage(i))
    }

    /// Puts `tap`, named `name`, between the stage `after` (a `mux` or another tap) and
    /// the stages that read it: they read what the tap sends on (a `tap` declared in a
    /// pipeline file is given code with [`attach`](Pipeline::attach)). Fails ([`ErrorKind::Config`]) if there is no stage
    /// `after`, if it does not give fragments, or if `name` is taken.
    pub fn insert_after(&mut self, after: &str, name: &str, tap: Tap) -> crate::Result<()> {
        let Some(j) = self.graph.find(after) else {
            return Err(Error::msg(ErrorKind::Config, format!("no stage is named '{after}'")));
        };
        let kind = self.graph.stages[j].config.kind();
        if graph::ports(kind).1 != Some(graph::Port::Fragments) {
            let msg = format!("a tap reads output fragments, but '{after}' is a {} stage", kind.name());
            return Err(Error::msg(ErrorKind::Config, msg));
        }
        if name.is_empty() || name.contains('.') || self.graph.find(name).is_some() {
            let msg = format!("'{name}' cannot name the tap: names are unique, non-empty, without dots");
            return Err(Error::msg(ErrorKind::Config, msg));
        }
        let spec = StageSpec { name: name.into(), config: StageConfig::Tap, input: None, span: 0..0, name_span: 0..0 };
        let i = self.graph.insert_after(j, spec);
        self.external.taps.insert(i, tap);
        Ok(())
    }

    /// Runs `tap` as the `tap` stage `name` (declared in the pipeline file) instead of
    /// passing the fragments on unchanged. Fails ([`ErrorKind::Config`]) if no tap stage
    /// has that name.
    pub fn attach(&mut self, name: &str, tap: Tap) -> crate::Result<()> {
        match self.graph.find(name).filter(|&i| self.graph.stages[i].config.kind() == StageKind::Tap) {
            Some(i) => {
                self.external.taps.insert(i, tap);
                Ok(())
            }
            None => Err(Error::msg(ErrorKind::Config, format!("no tap stage is named '{name}'"))),
        }
    }

    /// Gives `observer` every event of the run ([`RunEvent`](crate::RunEvent)): input read,
    /// tracks, each fragment once durable, notes, finalize steps.
    pub fn observe(&mut self, observer: crate::events::Observer) {
        self.external.observer = Some(observer);
    }

    /// Runs to the end of the input, or until `stop` is cancelled, which ends the input
    /// cleanly (a fed input too): every stage drains and the outputs are finished.
    ///
    /// A stage that fails stops the run: the first failure is returned, and the outputs
    /// keep every complete fragment. A stage that panics is an [`ErrorKind::Internal`]
    /// error naming the stage and the panic's message.
    pub async fn run(self, stop: CancellationToken) -> crate::Result<RunReport> {
        runtime::run(self.graph, self.external, stop).await
    }

    /// The one stage of `kind`.
    fn only(&self, kind: StageKind) -> crate::Result<usize> {
        let mut of_kind = (0..self.graph.stages.len()).filter(|&i| self.graph.stages[i].config.kind() == kind);
        match (of_kind.next(), of_kind.next()) {
            (Some(i), None) => Ok(i),
            (None, _) => Err(Error::msg(ErrorKind::Config, format!("the pipeline has no {} stage", kind.name()))),
            (Some(_), Some(_)) => Err(Error::msg(
                ErrorKind::Config,
                format!("the pipeline has several {} stages: name the one meant", kind.name()),
            )),
        }
    }

    fn feed_stage(&mut self, i: usize) -> Feed {
        let (feed, rx) = Feed::new(crate::stages::CHUNK_CHANNEL);
        self.external.feeds.insert(i, rx);
        feed
    }

    fn collect_stage(&mut self, i: usize) -> Collect {
        let (collect, tx) = Collect::new(crate::stages::FRAGMENT_CHANNEL);
        self.external.collects.insert(i, tx);
        collect
    }
}
