//! `mux`: packets in, output fragments out: a loop over [`Output`].

use tokio::sync::mpsc;

use crate::events::{RunEvent, TrackInfo};
use super::{Outputs, StageContext, StageReport, StageResult};
use crate::formats::output::Output;
pub use crate::formats::output::{MuxConfig, MuxFormat};
use crate::formats::PacketEvent;
use crate::model::Fragment;

/// Runs `mux`.
pub async fn run(
    ctx: StageContext,
    config: MuxConfig,
    mut input: mpsc::Receiver<PacketEvent>,
    out: Outputs<Fragment>,
) -> StageResult {
    let mut output = Output::new(config);
    let mut fragments: Vec<Fragment> = Vec::new();
    while let Some(ev) = input.recv().await {
        if let PacketEvent::Tracks(tracks) = &ev {
            ctx.emit(RunEvent::Tracks { stage: ctx.name.clone(), tracks: TrackInfo::list(tracks) });
        }
        output.push(ev, &mut fragments).map_err(|e| ctx.error(e))?;
        for f in fragments.drain(..) {
            if out.send(f).await.is_err() {
                return Ok(StageReport::default());
            }
        }
    }
    Ok(StageReport { notes: output.take_notes() })
}
