//! `packet-split`: cuts media into packets using the index the stream carries (MP4), or
//! the blocks themselves (Matroska): a loop over [`Splitter`], which adds the live pacing
//! (a clock the sans-IO splitter does not have).

use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::{Outputs, StageContext, StageReport, StageResult};
use crate::formats::pace::LivePace;
pub use crate::formats::split::SplitConfig;
use crate::formats::split::Splitter;
use crate::formats::{ContainerEvent, PacketEvent};

/// Releases the held packets once the input comes at the pace of a live recording.
fn live_pace(splitter: &mut Splitter, pace: &mut LivePace, batch: &mut Vec<PacketEvent>) {
    if let Some(note) = pace.check(splitter.held_media_secs(), Instant::now()) {
        splitter.release_hold(Some(note), batch);
    }
}

/// Runs `packet-split`.
pub async fn run(
    ctx: StageContext,
    config: SplitConfig,
    mut input: mpsc::Receiver<ContainerEvent>,
    out: Outputs<PacketEvent>,
) -> StageResult {
    let mut splitter = Splitter::new(&config);
    let mut batch = Vec::new();
    let mut pace = LivePace::default();
    loop {
        // While packets are held for a late index, the input's pace is watched, also while
        // it is idle.
        let ev = if splitter.held_media_secs().is_some() {
            match tokio::time::timeout(Duration::from_millis(250), input.recv()).await {
                Ok(ev) => ev,
                Err(_) => {
                    live_pace(&mut splitter, &mut pace, &mut batch);
                    for item in batch.drain(..) {
                        if out.send(item).await.is_err() {
                            return Ok(StageReport::default());
                        }
                    }
                    continue;
                }
            }
        } else {
            input.recv().await
        };
        let Some(ev) = ev else { break };
        if let ContainerEvent::End(end) = ev {
            let summary = splitter.finish(end, &mut batch).map_err(|e| ctx.error(e))?;
            for item in batch.drain(..) {
                if out.send(item).await.is_err() {
                    return Ok(StageReport::default());
                }
            }
            let report = StageReport { notes: summary.notes.clone() };
            let _ = out.send(PacketEvent::End(summary)).await;
            return Ok(report);
        }
        splitter.handle(ev, &mut batch).map_err(|e| ctx.error(e))?;
        live_pace(&mut splitter, &mut pace, &mut batch);
        for item in batch.drain(..) {
            if out.send(item).await.is_err() {
                return Ok(StageReport::default());
            }
        }
    }
    // The upstream stage stopped without an end: it failed and reports why.
    Ok(StageReport::default())
}
