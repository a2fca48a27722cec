//! `probe`: recognizes the container and walks its top-level structure.

use tokio::sync::mpsc;

use super::{Failure, Outputs, StageContext, StageReport, StageResult};
use crate::formats::matroska::reader::{MkvItem, MkvReader};
use crate::formats::mp4::walker::Mp4Walker;
use crate::formats::{sniff, ContainerEvent, ContainerKind, EndState, SNIFF_LEN};
use crate::model::Chunk;

/// Settings of `probe` (none yet: the container is recognized from its bytes).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProbeConfig {}

fn hex_head(data: &[u8]) -> String {
    data.iter().take(8).map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
}

/// The container walker: MP4 boxes or Matroska elements, as [`ContainerEvent`]s.
enum Walker {
    Mp4(Mp4Walker),
    Matroska(MkvReader),
}

impl Walker {
    fn push(&mut self, c: Chunk) -> Result<(), Failure> {
        match self {
            Walker::Mp4(w) => Ok(w.push(c)?),
            Walker::Matroska(r) => {
                r.push(c.data);
                Ok(())
            }
        }
    }

    fn poll(&mut self) -> Result<Option<ContainerEvent>, Failure> {
        match self {
            Walker::Mp4(w) => Ok(w.poll()?),
            Walker::Matroska(r) => Ok(r.poll()?.map(MkvItem::into_event)),
        }
    }

    fn finish(&self) -> EndState {
        match self {
            Walker::Mp4(w) => w.finish(),
            Walker::Matroska(r) => r.finish(),
        }
    }

    /// What the walker has to say about the input (damaged stretches it skipped).
    fn notes(&mut self) -> Vec<String> {
        match self {
            Walker::Mp4(w) => w.take_notes(),
            Walker::Matroska(r) => r.notes(),
        }
    }
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
    let (kind, mut walker) = match sniff(&first) {
        Some(ContainerKind::Mp4) => (ContainerKind::Mp4, Walker::Mp4(Mp4Walker::new())),
        Some(ContainerKind::Matroska) => (ContainerKind::Matroska, Walker::Matroska(MkvReader::resynchronising())),
        None => return Err(ctx.error(Failure::NotMedia { head: hex_head(&first) })),
    };
    if out.send(ContainerEvent::Container(kind)).await.is_err() {
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
            return Ok(StageReport { notes: walker.notes() });
        }
        match input.recv().await {
            Some(c) => pending.push(c),
            None => ended = true,
        }
    }
}
