//! Runs a [`Graph`]: one task per stage, a bounded channel per edge.
//!
//! Every channel is made before any stage starts, from the edges alone, so the runtime
//! knows nothing of which kind follows which: a stage is started with whatever its input
//! port and output port carry. A stage that panics is caught in its own task
//! (`catch_unwind`, so that the panic is known by stage) and becomes an
//! [`ErrorKind::Internal`] error; the channels it held close, so the stages after it drain
//! and finish their outputs as at the end of the input.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures::FutureExt;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::graph::{ports, Graph, Port};
use super::handles::Tap;
use super::spec::StageConfig;
use crate::error::{Error, ErrorKind};
use crate::events::RunEvent;
use crate::formats::{ContainerEvent, PacketEvent};
use crate::model::{Chunk, Fragment};
use crate::stages::{self, Outputs, StageContext, StageReport};

/// Ends given by the program instead of files or built-in code, by stage index: a source
/// in `feeds` reads from the receiver, a sink in `collects` sends to the sender, a tap in
/// `taps` runs that code.
#[derive(Default)]
pub(crate) struct External {
    pub feeds: HashMap<usize, mpsc::Receiver<Chunk>>,
    pub collects: HashMap<usize, mpsc::Sender<Fragment>>,
    pub taps: HashMap<usize, Tap>,
    /// Gets every event of the run.
    pub observer: Option<crate::events::Observer>,
}

/// What a finished run reports.
#[derive(Debug, Default, Clone)]
pub struct RunReport {
    /// Notes from each stage (dropped tracks, cut fragments...), by stage name.
    pub notes: Vec<(String, String)>,
}

/// A stage's input.
enum Rx {
    Chunks(mpsc::Receiver<Chunk>),
    Events(mpsc::Receiver<ContainerEvent>),
    Packets(mpsc::Receiver<PacketEvent>),
    Fragments(mpsc::Receiver<Fragment>),
}

/// A stage's output, to all its consumers.
enum Tx {
    Chunks(Outputs<Chunk>),
    Events(Outputs<ContainerEvent>),
    Packets(Outputs<PacketEvent>),
    Fragments(Outputs<Fragment>),
}

fn channels<T: Clone>(n: usize, cap: usize) -> (Outputs<T>, Vec<mpsc::Receiver<T>>) {
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..n).map(|_| mpsc::channel(cap)).unzip();
    (Outputs::new(txs), rxs)
}

/// The channels of every edge: each stage's output and each stage's input, by index.
fn wire(graph: &Graph) -> (Vec<Option<Tx>>, Vec<Option<Rx>>) {
    let n = graph.stages.len();
    let mut txs: Vec<Option<Tx>> = (0..n).map(|_| None).collect();
    let mut rxs: Vec<Option<Rx>> = (0..n).map(|_| None).collect();
    for (i, spec) in graph.stages.iter().enumerate() {
        let Some(port) = ports(spec.config.kind()).1 else { continue };
        let consumers = graph.consumers(i);
        macro_rules! edge {
            ($variant:ident, $cap:expr) => {{
                let (out, ins) = channels(consumers.len(), $cap);
                for (&c, rx) in consumers.iter().zip(ins) {
                    rxs[c] = Some(Rx::$variant(rx));
                }
                Tx::$variant(out)
            }};
        }
        txs[i] = Some(match port {
            Port::Chunks => edge!(Chunks, stages::CHUNK_CHANNEL),
            Port::Structure | Port::Described => edge!(Events, stages::EVENT_CHANNEL),
            Port::Packets => edge!(Packets, stages::PACKET_CHANNEL),
            Port::Fragments => edge!(Fragments, stages::FRAGMENT_CHANNEL),
        });
    }
    (txs, rxs)
}

/// The file a stage's data comes from: its source's path, unless that is stdin or fed.
fn input_file(graph: &Graph, external: &External, mut i: usize) -> Option<std::path::PathBuf> {
    while let Some(j) = graph.inputs[i] {
        i = j;
    }
    match &graph.stages[i].config {
        StageConfig::Source(cfg) if !cfg.is_stdin() && !external.feeds.contains_key(&i) => Some(cfg.path.clone()),
        _ => None,
    }
}

type StageOutcome = Result<StageReport, Error>;

/// A stage's task: its outcome, or the panic that ended it.
type Joined = (usize, Result<StageOutcome, Box<dyn Any + Send>>);

fn spawn(tasks: &mut JoinSet<Joined>, i: usize, stage: impl Future<Output = StageOutcome> + Send + 'static) {
    tasks.spawn(async move { (i, AssertUnwindSafe(stage).catch_unwind().await) });
}

/// A built-in stage's task, its error made an [`Error`].
macro_rules! builtin {
    ($tasks:expr, $i:expr, $run:expr) => {{
        let run = $run;
        spawn($tasks, $i, async move { run.await.map_err(Error::from) })
    }};
}

/// Starts stage `i` on its channels.
fn start(
    tasks: &mut JoinSet<Joined>,
    graph: &Graph,
    external: &mut External,
    i: usize,
    (input, output, file): (Option<Rx>, Option<Tx>, Option<std::path::PathBuf>),
    stop: &CancellationToken,
) {
    let spec = &graph.stages[i];
    let mut ctx = StageContext::new(spec.name.clone(), spec.config.kind().name());
    ctx.file = file;
    ctx.observer = external.observer.clone();
    match (&spec.config, input, output) {
        (StageConfig::Source(cfg), None, Some(Tx::Chunks(out))) => {
            let stop = stop.clone();
            match external.feeds.remove(&i) {
                Some(feed) => spawn(tasks, i, fed_source(feed, out, stop)),
                None => builtin!(tasks, i, stages::source::run(ctx, cfg.clone(), out, stop)),
            }
        }
        (StageConfig::Probe(cfg), Some(Rx::Chunks(rx)), Some(Tx::Events(out))) => {
            builtin!(tasks, i, stages::probe::run(ctx, cfg.clone(), rx, out))
        }
        (StageConfig::Codecpar(cfg), Some(Rx::Events(rx)), Some(Tx::Events(out))) => {
            builtin!(tasks, i, stages::codecpar::run(ctx, cfg.clone(), rx, out))
        }
        (StageConfig::Split(cfg), Some(Rx::Events(rx)), Some(Tx::Packets(out))) => {
            builtin!(tasks, i, stages::packet_split::run(ctx, cfg.clone(), rx, out))
        }
        (StageConfig::Mux(cfg), Some(Rx::Packets(rx)), Some(Tx::Fragments(out))) => {
            builtin!(tasks, i, stages::mux::run(ctx, cfg.clone(), rx, out))
        }
        (StageConfig::Tap, Some(Rx::Fragments(rx)), Some(Tx::Fragments(out))) => match external.taps.remove(&i) {
            Some(tap) => spawn(tasks, i, async move { tap.start(rx, out).await.map(|()| StageReport::default()) }),
            None => spawn(tasks, i, pass_on(rx, out)),
        },
        (StageConfig::Sink(cfg), Some(Rx::Fragments(rx)), None) => match external.collects.remove(&i) {
            Some(tx) => spawn(tasks, i, collected_sink(rx, tx)),
            None => {
                ctx.file = (!cfg.is_stdout()).then(|| cfg.path.clone());
                builtin!(tasks, i, stages::sink::run(ctx, cfg.clone(), rx))
            }
        },
        _ => unreachable!("graph::build checked that every edge carries what its stage takes"),
    }
}

/// A source fed from code: forwards the chunks sent to its [`Feed`](super::Feed) until
/// the feed finishes or `stop` is cancelled, which ends the input as Ctrl-C ends a file,
/// also while a chunk waits for a stuck downstream stage.
async fn fed_source(mut feed: mpsc::Receiver<Chunk>, out: Outputs<Chunk>, stop: CancellationToken) -> StageOutcome {
    loop {
        let chunk = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            chunk = feed.recv() => match chunk {
                Some(chunk) => chunk,
                None => break,
            },
        };
        tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            sent = out.send(chunk) => if sent.is_err() {
                break;
            },
        }
    }
    // Dropping the receiver fails the feed's next send: the program learns the input ended.
    Ok(StageReport::default())
}

/// A `tap` without code: passes every fragment on.
async fn pass_on(mut rx: mpsc::Receiver<Fragment>, out: Outputs<Fragment>) -> StageOutcome {
    while let Some(f) = rx.recv().await {
        if out.send(f).await.is_err() {
            break;
        }
    }
    Ok(StageReport::default())
}

/// A sink collected by code: hands every fragment to its [`Collect`](super::Collect).
async fn collected_sink(mut rx: mpsc::Receiver<Fragment>, tx: mpsc::Sender<Fragment>) -> StageOutcome {
    while let Some(f) = rx.recv().await {
        if tx.send(f).await.is_err() {
            break;
        }
    }
    Ok(StageReport::default())
}

/// The error for a stage that panicked: a bug, reported with the stage and the message.
fn panic_error(graph: &Graph, i: usize, payload: &(dyn Any + Send)) -> Error {
    let spec = &graph.stages[i];
    let message = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)");
    Error::msg(
        ErrorKind::Internal,
        format!(
            "stage '{}' ({}) panicked: {message} (a bug in livemux, or in the code given for the stage); \
             the outputs keep every complete fragment",
            spec.name,
            spec.config.kind().name()
        ),
    )
}

/// Runs every stage to its end. Returns the first stage failure (in time), or the first
/// panic if a stage panicked (the cause, rather than what it made fail downstream); a
/// failure also ends the input, and the other stages stop when a neighbour's channel
/// closes.
pub(crate) async fn run(graph: Graph, mut external: External, stop: CancellationToken) -> Result<RunReport, Error> {
    // Cancelled by the caller, or here when a stage fails.
    let stop = stop.child_token();
    let (txs, rxs) = wire(&graph);
    let mut tasks: JoinSet<Joined> = JoinSet::new();
    // Known before any source's feed is taken.
    let files: Vec<_> = (0..graph.stages.len()).map(|i| input_file(&graph, &external, i)).collect();
    for (i, ((input, output), file)) in rxs.into_iter().zip(txs).zip(files).enumerate() {
        start(&mut tasks, &graph, &mut external, i, (input, output, file), &stop);
    }
    let mut results: Vec<(usize, StageReport)> = Vec::new();
    let (mut first_error, mut first_panic): (Option<Error>, Option<Error>) = (None, None);
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((i, Ok(Ok(r)))) => {
                for text in &r.notes {
                    let stage = graph.stages[i].name.clone();
                    crate::events::emit(external.observer.as_ref(), RunEvent::Note { stage, text: text.clone() });
                }
                results.push((i, r));
            }
            Ok((_, Ok(Err(e)))) => {
                // A failed stage ends the input too: a source blocked on an idle pipe would
                // otherwise keep the run alive after its sink failed (a closed stdout). The
                // stages that then fail for want of input are not the cause: the first
                // failure is the one reported.
                stop.cancel();
                first_error.get_or_insert(e);
            }
            Ok((i, Err(payload))) => {
                stop.cancel();
                first_panic.get_or_insert_with(|| panic_error(&graph, i, &*payload));
            }
            // Tasks are never aborted; a task is cancelled only by a runtime shutting down.
            Err(e) => {
                stop.cancel();
                first_error
                    .get_or_insert_with(|| Error::msg(ErrorKind::Internal, format!("a stage was cancelled: {e}")));
            }
        }
    }
    if let Some(e) = first_panic.or(first_error) {
        return Err(e);
    }
    results.sort_by_key(|(i, _)| graph.order.iter().position(|o| o == i));
    let mut report = RunReport::default();
    for (i, r) in results {
        report.notes.extend(r.notes.into_iter().map(|n| (graph.stages[i].name.clone(), n)));
    }
    Ok(report)
}
