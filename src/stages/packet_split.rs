//! `packet-split`: cuts media into packets using the index the stream carries (MP4), or
//! the blocks themselves (Matroska): a loop over [`Splitter`], which adds the live pacing
//! (a clock the sans-IO splitter does not have).

use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::{Outputs, StageContext, StageReport, StageResult};
pub use crate::formats::split::SplitConfig;
use crate::formats::split::Splitter;
use crate::formats::{ContainerEvent, PacketEvent};

/// Past this, a stream whose packets are held for a late index (see
/// [`Splitter::held_media_secs`]) is taken for a live recording: a pipe of a whole file
/// brings media far faster than it plays, a live recording at about the speed it plays.
pub const LIVE_SLACK: Duration = Duration::from_millis(1500);

/// Releases held packets once the input comes no faster than twice real time (plus
/// [`LIVE_SLACK`]): a live recording is split as it comes rather than held until it ends.
fn live_pace(splitter: &mut Splitter, started: &mut Option<Instant>, batch: &mut Vec<PacketEvent>) {
    let Some(secs) = splitter.held_media_secs() else {
        *started = None;
        return;
    };
    let started = *started.get_or_insert_with(Instant::now);
    if started.elapsed() > LIVE_SLACK + Duration::from_secs_f64(secs.clamp(0.0, 1e6) / 2.0) {
        let note = format!(
            "the media came at about the speed it plays ({secs:.1} s of media in {:.1} s), as from a live \
             recording: it is split with the reference's layout as it comes, and a 'moov' index that comes \
             later is not used",
            started.elapsed().as_secs_f64()
        );
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
    let mut hold_started: Option<Instant> = None;
    loop {
        // While packets are held for a late index, the input's pace is watched, also while
        // it is idle.
        let ev = if splitter.held_media_secs().is_some() {
            match tokio::time::timeout(Duration::from_millis(250), input.recv()).await {
                Ok(ev) => ev,
                Err(_) => {
                    live_pace(&mut splitter, &mut hold_started, &mut batch);
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
        live_pace(&mut splitter, &mut hold_started, &mut batch);
        for item in batch.drain(..) {
            if out.send(item).await.is_err() {
                return Ok(StageReport::default());
            }
        }
    }
    // The upstream stage stopped without an end: it failed and reports why.
    Ok(StageReport::default())
}
