//! Runs a [`Graph`]: one task per stage, a bounded channel per edge.

use std::collections::HashMap;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::graph::Graph;
use super::spec::StageConfig;
use crate::formats::{ContainerEvent, PacketEvent};
use crate::model::{Chunk, Fragment};
use crate::stages::{self, Outputs, StageContext, StageError, StageReport, StageResult};

/// Channel ends given by a library user instead of files: a source named in `feeds` reads
/// from the receiver, a sink named in `collects` sends to the sender.
#[derive(Default)]
pub struct External {
    pub feeds: HashMap<String, mpsc::Receiver<Chunk>>,
    pub collects: HashMap<String, mpsc::Sender<Fragment>>,
}

/// What a finished run reports.
#[derive(Debug, Default, Clone)]
pub struct RunReport {
    /// Notes from each stage (dropped tracks, cut fragments...), by stage name.
    pub notes: Vec<(String, String)>,
}

enum Rx {
    Chunks(mpsc::Receiver<Chunk>),
    Events(mpsc::Receiver<ContainerEvent>),
    Packets(mpsc::Receiver<PacketEvent>),
    Fragments(mpsc::Receiver<Fragment>),
}

fn outputs<T: Clone>(n: usize, cap: usize) -> (Outputs<T>, Vec<mpsc::Receiver<T>>) {
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..n).map(|_| mpsc::channel(cap)).unzip();
    (Outputs::new(txs), rxs)
}

/// The file a stage's data comes from: its source's path, unless that is stdin.
fn input_file(graph: &Graph, mut i: usize) -> Option<std::path::PathBuf> {
    while let Some(j) = graph.inputs[i] {
        i = j;
    }
    match &graph.stages[i].config {
        StageConfig::Source(cfg) if !cfg.is_stdin() => Some(cfg.path.clone()),
        _ => None,
    }
}

/// Runs every stage to its end. Returns the first stage failure (in time); a failure also
/// ends the input, and the other stages stop when a neighbour's channel closes.
pub async fn run(graph: Graph, mut external: External, stop: CancellationToken) -> Result<RunReport, StageError> {
    // Cancelled by the caller, or here when a stage fails.
    let stop = stop.child_token();
    let mut inboxes: HashMap<usize, Rx> = HashMap::new();
    let mut tasks: JoinSet<(usize, StageResult)> = JoinSet::new();
    for &i in &graph.order {
        let spec = &graph.stages[i];
        let kind = spec.config.kind().name();
        let mut ctx = StageContext::new(spec.name.clone(), kind);
        ctx.file = input_file(&graph, i);
        let consumers = graph.consumers(i);
        let input = inboxes.remove(&i);
        macro_rules! wire {
            ($variant:ident, $cap:expr) => {{
                let (out, rxs) = outputs(consumers.len(), $cap);
                for (c, rx) in consumers.iter().zip(rxs) {
                    inboxes.insert(*c, Rx::$variant(rx));
                }
                out
            }};
        }
        match (&spec.config, input) {
            (StageConfig::Source(cfg), None) => {
                let out = wire!(Chunks, stages::CHUNK_CHANNEL);
                let stop = stop.clone();
                if let Some(mut feed) = external.feeds.remove(&spec.name) {
                    tasks.spawn(async move {
                        while let Some(c) = feed.recv().await {
                            if out.send(c).await.is_err() {
                                break;
                            }
                        }
                        (i, Ok(StageReport::default()))
                    });
                } else {
                    let cfg = cfg.clone();
                    tasks.spawn(async move { (i, stages::source::run(ctx, cfg, out, stop).await) });
                }
            }
            (StageConfig::Probe(cfg), Some(Rx::Chunks(rx))) => {
                let out = wire!(Events, stages::EVENT_CHANNEL);
                let cfg = cfg.clone();
                tasks.spawn(async move { (i, stages::probe::run(ctx, cfg, rx, out).await) });
            }
            (StageConfig::Codecpar(cfg), Some(Rx::Events(rx))) => {
                let out = wire!(Events, stages::EVENT_CHANNEL);
                let cfg = cfg.clone();
                tasks.spawn(async move { (i, stages::codecpar::run(ctx, cfg, rx, out).await) });
            }
            (StageConfig::Split(cfg), Some(Rx::Events(rx))) => {
                let out = wire!(Packets, stages::PACKET_CHANNEL);
                let cfg = cfg.clone();
                tasks.spawn(async move { (i, stages::packet_split::run(ctx, cfg, rx, out).await) });
            }
            (StageConfig::Mux(cfg), Some(Rx::Packets(rx))) => {
                let out = wire!(Fragments, stages::FRAGMENT_CHANNEL);
                let cfg = cfg.clone();
                tasks.spawn(async move { (i, stages::mux::run(ctx, cfg, rx, out).await) });
            }
            (StageConfig::Sink(cfg), Some(Rx::Fragments(mut rx))) => {
                if let Some(tx) = external.collects.remove(&spec.name) {
                    tasks.spawn(async move {
                        while let Some(f) = rx.recv().await {
                            if tx.send(f).await.is_err() {
                                break;
                            }
                        }
                        (i, Ok(StageReport::default()))
                    });
                } else {
                    ctx.file = (!cfg.is_stdout()).then(|| cfg.path.clone());
                    let cfg = cfg.clone();
                    tasks.spawn(async move { (i, stages::sink::run(ctx, cfg, rx).await) });
                }
            }
            _ => unreachable!("graph::build checked every edge's type"),
        }
    }
    let mut results: Vec<(usize, StageReport)> = Vec::new();
    let mut first_error: Option<StageError> = None;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((i, Ok(r))) => results.push((i, r)),
            Ok((_, Err(e))) => {
                // A failed stage ends the input too: a source blocked on an idle pipe would
                // otherwise keep the run alive after its sink failed (a closed stdout). The
                // stages that then fail for want of input are not the cause: the first
                // failure is the one reported.
                stop.cancel();
                first_error.get_or_insert(e);
            }
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    results.sort_by_key(|(i, _)| graph.order.iter().position(|o| o == i));
    let mut report = RunReport::default();
    for (i, r) in results {
        report.notes.extend(r.notes.into_iter().map(|n| (graph.stages[i].name.clone(), n)));
    }
    Ok(report)
}
