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
    let mut head: Vec<Chunk> = Vec::new();
    let mut head_len = 0;
    let mut walker: Option<Mp4Walker> = None;
    let mut ended = false;
    loop {
        let chunk = input.recv().await;
        if chunk.is_none() {
            ended = true;
        }
        if walker.is_none() {
            if let Some(c) = chunk {
                head_len += c.data.len();
                head.push(c);
                if head_len < SNIFF_LEN {
                    continue;
                }
            }
            let first: Vec<u8> = head.iter().flat_map(|c| c.data.iter().copied()).take(64).collect();
            if first.is_empty() {
                return Err(ctx.error(Failure::Empty));
            }
            match sniff(&first) {
                Some(ContainerKind::Mp4) => {
                    walker = Some(Mp4Walker::new());
                    if out.send(ContainerEvent::Container(ContainerKind::Mp4)).await.is_err() {
                        return Ok(StageReport::default());
                    }
                }
                Some(ContainerKind::Matroska) => {
                    return Err(ctx.error(Failure::Unsupported("Matroska/WebM input is not supported yet".into())));
                }
                None => return Err(ctx.error(Failure::NotMedia { head: hex_head(&first) })),
            }
            let w = walker.as_mut().unwrap();
            for c in head.drain(..) {
                w.push(c).map_err(|e| ctx.error(e))?;
            }
        } else if let Some(c) = chunk {
            walker.as_mut().unwrap().push(c).map_err(|e| ctx.error(e))?;
        }
        let w = walker.as_mut().unwrap();
        while let Some(ev) = w.poll().map_err(|e| ctx.error(e))? {
            if out.send(ev).await.is_err() {
                return Ok(StageReport::default());
            }
        }
        if ended {
            let end = w.finish();
            let _ = out.send(ContainerEvent::End(end)).await;
            return Ok(StageReport::default());
        }
    }
}
