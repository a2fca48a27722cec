//! `probe`: recognizes the container and walks its top-level structure: a loop over
//! [`Probe`].

use tokio::sync::mpsc;

use super::{Outputs, StageContext, StageReport, StageResult};
use crate::formats::demux::Probe;
use crate::formats::ContainerEvent;
use crate::model::Chunk;

/// Settings of `probe` (none yet: the container is recognized from its bytes).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProbeConfig {}

/// Runs `probe`.
pub async fn run(
    ctx: StageContext,
    _config: ProbeConfig,
    mut input: mpsc::Receiver<Chunk>,
    out: Outputs<ContainerEvent>,
) -> StageResult {
    let mut probe = Probe::new();
    loop {
        match input.recv().await {
            Some(c) => probe.push(c).map_err(|e| ctx.error(e))?,
            None => probe.end_of_input().map_err(|e| ctx.error(e))?,
        }
        while let Some(ev) = probe.poll().map_err(|e| ctx.error(e))? {
            let end = matches!(ev, ContainerEvent::End(_));
            if out.send(ev).await.is_err() && !end {
                return Ok(StageReport::default());
            }
            if end {
                return Ok(StageReport { notes: probe.notes().to_vec() });
            }
        }
    }
}
