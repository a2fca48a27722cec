//! `packet-split`: cuts media into packets using the index the stream carries (MP4), or
//! the blocks themselves (Matroska).

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
}

impl Default for SplitConfig {
    fn default() -> Self {
        SplitConfig { buffer_limit: DEFAULT_BUFFER_LIMIT }
    }
}

#[allow(clippy::large_enum_variant)] // one per stage, never moved
enum Splitter {
    Mp4(Mp4Splitter),
    Matroska(MkvSplitter),
}

/// Runs `packet-split`.
pub async fn run(
    ctx: StageContext,
    config: SplitConfig,
    mut input: mpsc::Receiver<ContainerEvent>,
    out: Outputs<PacketEvent>,
) -> StageResult {
    let mut splitter = Splitter::Mp4(Mp4Splitter::new(config.buffer_limit));
    let mut batch = Vec::new();
    while let Some(ev) = input.recv().await {
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
        for item in batch.drain(..) {
            if out.send(item).await.is_err() {
                return Ok(StageReport::default());
            }
        }
    }
    // The upstream stage stopped without an end: it failed and reports why.
    Ok(StageReport::default())
}
