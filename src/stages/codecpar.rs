//! `codecpar-extract`: decides each track's codec parameters and emits the track list: a
//! loop over [`CodecParams`] (see [`crate::formats::params`] for the policy), after
//! reading the reference recording, if any.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::mpsc;

use super::{Failure, Outputs, StageContext, StageReport, StageResult};
use crate::formats::params::CodecParams;
pub use crate::formats::params::ParamPolicy;
use crate::formats::ContainerEvent;
use crate::reference::Reference;

/// Settings of `codecpar-extract`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CodecparConfig {
    /// Where codec parameters come from.
    pub params: ParamPolicy,
    /// A complete recording of the same source whose parameters to use.
    pub reference: Option<PathBuf>,
}

/// Reads a reference recording, for a stage.
pub fn load_reference(path: &Path) -> Result<Reference, Failure> {
    Reference::read(path).map_err(|reason| Failure::Reference { path: path.to_path_buf(), reason })
}

/// Runs `codecpar-extract`.
pub async fn run(
    ctx: StageContext,
    config: CodecparConfig,
    mut input: mpsc::Receiver<ContainerEvent>,
    out: Outputs<ContainerEvent>,
) -> StageResult {
    let reference = match &config.reference {
        Some(path) => {
            let path = path.clone();
            let loaded = tokio::task::spawn_blocking(move || load_reference(&path))
                .await
                .map_err(|e| ctx.error(Failure::Internal(format!("reading the reference failed: {e}"))))?;
            Some(Arc::new(loaded.map_err(|e| ctx.error(e))?))
        }
        None => None,
    };
    let mut params = CodecParams::new(config.params, reference).map_err(|e| ctx.error(e))?;
    let mut send = Vec::new();
    while let Some(ev) = input.recv().await {
        params.push(ev, &mut send).map_err(|e| ctx.error(e))?;
        for ev in send.drain(..) {
            if out.send(ev).await.is_err() {
                return Ok(StageReport { notes: params.take_notes() });
            }
        }
    }
    Ok(StageReport { notes: params.take_notes() })
}
