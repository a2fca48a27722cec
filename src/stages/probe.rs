//! `probe`: recognizes the container and walks its top-level structure.

use tokio::sync::mpsc;

use super::{Failure, Outputs, StageContext, StageReport, StageResult};
use crate::formats::mp4::walker::Mp4Walker;
use crate::formats::{sniff, ContainerEvent, ContainerKind, SNIFF_LEN};
use crate::model::Chunk;

/// Settings of `probe` (none yet: the container is recognized from its bytes).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProbeConfig {}

fn hex_head(data: &[u8]) -> String {
    data.iter().take(8).map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
}

/// Runs `probe`.
pub async fn run(
    ctx: StageContext,
    _config: ProbeConfig,
    mut input: mpsc::Receiver<Chunk>,
    out: Outputs<ContainerEvent>,
) -> StageResult {
    // Hold the first bytes until the container can be recognized.
    let mut head: Vec<Chunk> = Vec::new();
    let mut head_len = 0;
    let mut ended = false;
    while head_len < SNIFF_LEN {
        match input.recv().await {
            Some(c) => {
                head_len += c.data.len();
                head.push(c);
            }
            None => {
                ended = true;
                break;
            }
        }
    }
    let first: Vec<u8> = head.iter().flat_map(|c| c.data.iter().copied()).take(64).collect();
    if first.is_empty() {
        return Err(ctx.error(Failure::Empty));
    }
    let mut walker = match sniff(&first) {
        Some(ContainerKind::Mp4) => Mp4Walker::new(),
        Some(ContainerKind::Matroska) => {
            return Err(ctx.error(Failure::Unsupported("Matroska/WebM input is not supported yet".into())));
        }
        None => return Err(ctx.error(Failure::NotMedia { head: hex_head(&first) })),
    };
    if out.send(ContainerEvent::Container(ContainerKind::Mp4)).await.is_err() {
        return Ok(StageReport::default());
    }
    let mut pending = head;
    loop {
        for c in pending.drain(..) {
            walker.push(c).map_err(|e| ctx.error(e))?;
        }
        while let Some(ev) = walker.poll().map_err(|e| ctx.error(e))? {
            if out.send(ev).await.is_err() {
                return Ok(StageReport::default());
            }
        }
        if ended {
            let _ = out.send(ContainerEvent::End(walker.finish())).await;
            return Ok(StageReport::default());
        }
        match input.recv().await {
            Some(c) => pending.push(c),
            None => ended = true,
        }
    }
}
