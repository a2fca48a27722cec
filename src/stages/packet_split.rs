//! `packet-split`: cuts media into packets using the index the stream carries.

use tokio::sync::mpsc;

use super::{Outputs, StageContext, StageReport, StageResult};
use crate::formats::mp4::demux::{Mp4Splitter, DEFAULT_BUFFER_LIMIT};
use crate::formats::{ContainerEvent, PacketEvent};

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

/// Runs `packet-split`.
pub async fn run(
    ctx: StageContext,
    config: SplitConfig,
    mut input: mpsc::Receiver<ContainerEvent>,
    out: Outputs<PacketEvent>,
) -> StageResult {
    let mut splitter = Mp4Splitter::new(config.buffer_limit);
    let mut batch = Vec::new();
    while let Some(ev) = input.recv().await {
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
        for item in batch.drain(..) {
            if out.send(item).await.is_err() {
                return Ok(StageReport::default());
            }
        }
    }
    // The upstream stage stopped without an end: it failed and reports why.
    Ok(StageReport::default())
}
