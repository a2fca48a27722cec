//! `packet-split`: cuts media into packets using the index the stream carries (MP4), or
//! the blocks themselves (Matroska).

use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::{Outputs, StageContext, StageReport, StageResult};
use crate::formats::matroska::demux::MkvSplitter;
use crate::formats::mp4::demux::{Mp4Splitter, DEFAULT_BUFFER_LIMIT};
use crate::formats::{ContainerEvent, ContainerKind, PacketEvent};

/// Settings of `packet-split`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitConfig {
    /// Most media bytes held while waiting for an index that comes after the media.
    pub buffer_limit: u64,
    /// The input may bring its index after the media (a stream): packets found by scanning
    /// media without an index are held, up to `buffer_limit`, in case it comes.
    pub late_index: bool,
}

impl Default for SplitConfig {
    fn default() -> Self {
        SplitConfig { buffer_limit: DEFAULT_BUFFER_LIMIT, late_index: true }
    }
}

#[allow(clippy::large_enum_variant)] // one per stage, never moved
enum Splitter {
    Mp4(Mp4Splitter),
    Matroska(MkvSplitter),
}

/// Past this, a stream whose packets are held for a late index (see
/// [`Mp4Splitter::held_media_secs`]) is taken for a live recording: a pipe of a whole file
/// brings media far faster than it plays, a live recording at about the speed it plays.
pub const LIVE_SLACK: Duration = Duration::from_millis(1500);

/// Releases held packets once the input comes no faster than twice real time (plus
/// [`LIVE_SLACK`]): a live recording is split as it comes rather than held until it ends.
fn live_pace(splitter: &mut Splitter, started: &mut Option<Instant>, batch: &mut Vec<PacketEvent>) {
    let Splitter::Mp4(s) = splitter else { return };
    let Some(secs) = s.held_media_secs() else {
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
        s.release_hold(Some(note), batch);
    }
}

/// Runs `packet-split`.
pub async fn run(
    ctx: StageContext,
    config: SplitConfig,
    mut input: mpsc::Receiver<ContainerEvent>,
    out: Outputs<PacketEvent>,
) -> StageResult {
    let mut splitter = Splitter::Mp4(Mp4Splitter::new(config.buffer_limit).hold_for_late_index(config.late_index));
    let mut batch = Vec::new();
    let mut hold_started: Option<Instant> = None;
    loop {
        // While packets are held for a late index, the input's pace is watched, also while
        // it is idle.
        let holding = matches!(&splitter, Splitter::Mp4(s) if s.held_media_secs().is_some());
        let ev = if holding {
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
        if ev == ContainerEvent::Container(ContainerKind::Matroska) {
            splitter = Splitter::Matroska(MkvSplitter::new());
        }
        if let ContainerEvent::End(end) = ev {
            let summary = match &mut splitter {
                Splitter::Mp4(s) => s.finish(end, &mut batch).map_err(|e| ctx.error(e))?,
                Splitter::Matroska(s) => s.finish(end, &mut batch),
            };
            for item in batch.drain(..) {
                if out.send(item).await.is_err() {
                    return Ok(StageReport::default());
                }
            }
            let report = StageReport { notes: summary.notes.clone() };
            let _ = out.send(PacketEvent::End(summary)).await;
            return Ok(report);
        }
        match &mut splitter {
            Splitter::Mp4(s) => s.handle(ev, &mut batch).map_err(|e| ctx.error(e))?,
            Splitter::Matroska(s) => s.handle(ev, &mut batch).map_err(|e| ctx.error(e))?,
        }
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
