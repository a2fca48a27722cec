//! [`Remuxer`]: the whole remux without IO. Input bytes go in with [`Remuxer::push`],
//! output [`Fragment`]s come out with their place in the output file, and
//! [`Remuxer::finish`] gives the last ones, including the in-place
//! [`FragmentKind::Finalize`](crate::model::FragmentKind::Finalize) writes that make an
//! `mp4` or Matroska output seekable at a clean stop.
//!
//! It owns, in order, the sniffing front ([`Probe`]), the codec-parameter policy
//! ([`CodecParams`]), the splitter ([`Splitter`]) and the output ([`Output`]): the same
//! types the pipeline's stages run, so the bytes are those of `livemux remux`.
//!
//! ```
//! use livemux::formats::output::MuxFormat;
//! use livemux::formats::remux::{RemuxOptions, Remuxer};
//! # fn demo(upload: Vec<bytes::Bytes>) -> livemux::Result<()> {
//! let mut remux = Remuxer::new(RemuxOptions::default().format(MuxFormat::Mkv))?;
//! let mut out = Vec::new();
//! for piece in upload {
//!     remux.push(piece)?;
//!     // Write each fragment at `f.offset` (Finalize fragments overwrite earlier bytes).
//!     out.extend(remux.take_fragments());
//! }
//! out.extend(remux.finish()?);
//! # Ok(()) }
//! ```

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;

use super::demux::Probe;
use super::failure::Failure;
use super::fragmenter::FragmentPolicy;
use super::output::{MuxConfig, MuxFormat, Output};
use super::params::{CodecParams, ParamPolicy};
use super::split::{SplitConfig, Splitter};
use super::{ContainerEvent, PacketEvent, SplitSummary};
use crate::error::{Error, ErrorKind, Result};
use crate::model::{Chunk, Fragment, TrackSet};
use crate::reference::Reference;

/// What a [`Remuxer`] makes: `RemuxOptions::default()` and the setters below.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RemuxOptions {
    /// The output container (`--to`); fragmented MP4 by default.
    pub format: MuxFormat,
    /// Where output fragments end (`--fragment-ms`).
    pub fragment: FragmentPolicy,
    /// Where codec parameters come from (`--params`).
    pub params: ParamPolicy,
    /// A reference recording, read (`--reference`); needed by every `params` but `Stream`.
    pub reference: Option<Arc<Reference>>,
    /// `mp4`: the expected duration in ms, room for whose index is reserved before the media.
    pub reserve_ms: u64,
    /// Drop the tracks the output cannot carry, with a note, instead of refusing the input.
    pub skip_unsupported: bool,
    /// Most media bytes held while waiting for an index that comes after the media.
    pub buffer_limit: u64,
    /// Hold packets found by scanning media without an index, in case the index comes later.
    pub late_index: bool,
    /// A second output fed the same packets (live HLS beside a recording): its fragments
    /// come out of [`Remuxer::next_side_fragment`]. It cannot fail the remux: an error
    /// of its own ends it, with a note.
    pub side: Option<MuxConfig>,
}

impl Default for RemuxOptions {
    /// The defaults of the output ([`MuxConfig`]) and of the splitter (`SplitConfig`).
    fn default() -> Self {
        let MuxConfig { format, fragment, reserve_ms, skip_unsupported, .. } = MuxConfig::default();
        let SplitConfig { buffer_limit, late_index } = SplitConfig::default();
        RemuxOptions {
            format,
            fragment,
            params: ParamPolicy::default(),
            reference: None,
            reserve_ms,
            skip_unsupported,
            buffer_limit,
            late_index,
            side: None,
        }
    }
}

impl RemuxOptions {
    /// Sets the output container.
    pub fn format(mut self, format: MuxFormat) -> Self {
        self.format = format;
        self
    }

    /// Sets where output fragments end.
    pub fn fragment(mut self, fragment: FragmentPolicy) -> Self {
        self.fragment = fragment;
        self
    }

    /// Sets where codec parameters come from.
    pub fn params(mut self, params: ParamPolicy) -> Self {
        self.params = params;
        self
    }

    /// Sets the reference recording (read with [`Reference::load`]).
    pub fn reference(mut self, reference: Arc<Reference>) -> Self {
        self.reference = Some(reference);
        self
    }

    /// Sets the duration (ms) whose index room an `mp4` output reserves before the media.
    pub fn reserve_ms(mut self, reserve_ms: u64) -> Self {
        self.reserve_ms = reserve_ms;
        self
    }

    /// Sets whether tracks the output cannot carry are dropped (with a note).
    pub fn skip_unsupported(mut self, skip: bool) -> Self {
        self.skip_unsupported = skip;
        self
    }

    /// Sets the most media bytes held while waiting for a late index.
    pub fn buffer_limit(mut self, bytes: u64) -> Self {
        self.buffer_limit = bytes;
        self
    }

    /// Sets whether packets scanned without an index are held for a late one.
    pub fn late_index(mut self, hold: bool) -> Self {
        self.late_index = hold;
        self
    }

    /// Sets a second output fed the same packets.
    pub fn side_output(mut self, config: MuxConfig) -> Self {
        self.side = Some(config);
        self
    }

    /// The output's settings, as the `mux` stage takes them.
    pub(crate) fn mux_config(&self) -> MuxConfig {
        MuxConfig {
            format: self.format,
            fragment: self.fragment,
            reserve_ms: self.reserve_ms,
            skip_unsupported: self.skip_unsupported,
            known_duration_ms: None,
        }
    }

    /// The splitter's settings, as the `packet-split` stage takes them.
    pub(crate) fn split_config(&self) -> SplitConfig {
        SplitConfig { buffer_limit: self.buffer_limit, late_index: self.late_index }
    }
}

/// The remux, sans-IO: input bytes in with [`Remuxer::push`], output [`Fragment`]s out with
/// their place in the output file ([`Remuxer::next_fragment`]), and at [`Remuxer::finish`]
/// the last ones, including the in-place
/// [`FragmentKind::Finalize`](crate::model::FragmentKind::Finalize) writes that make an
/// `mp4` or Matroska output seekable at a clean stop. The bytes are those of
/// `livemux remux`, whatever the size of the pieces pushed.
pub struct Remuxer {
    probe: Probe,
    params: CodecParams,
    splitter: Splitter,
    output: Output,
    /// The second output and its fragments not yet taken (`None` once it failed).
    side: Option<(Output, VecDeque<Fragment>)>,
    /// Input bytes pushed so far: the offset of the next ones.
    input_len: u64,
    fragments: VecDeque<Fragment>,
    events: Vec<ContainerEvent>,
    packets: Vec<PacketEvent>,
    notes: Vec<String>,
    summary: Option<SplitSummary>,
    /// Set by an error: the remux cannot go on.
    failed: bool,
    finished: bool,
}

impl Remuxer {
    /// A remux with `options`. Fails when the options do not fit together (a `params`
    /// policy that needs a reference, without one).
    pub fn new(options: RemuxOptions) -> Result<Self> {
        let params = CodecParams::new(options.params, options.reference.clone())?;
        Ok(Remuxer {
            probe: Probe::new(),
            params,
            splitter: Splitter::new(&options.split_config()),
            output: Output::new(options.mux_config()),
            side: options.side.map(|c| (Output::new(c), VecDeque::new())),
            input_len: 0,
            fragments: VecDeque::new(),
            events: Vec::new(),
            packets: Vec::new(),
            notes: Vec::new(),
            summary: None,
            failed: false,
            finished: false,
        })
    }

    /// Takes the next bytes of the input (any size, down to one byte). The fragments they
    /// complete are ready in [`Remuxer::next_fragment`] / [`Remuxer::take_fragments`].
    pub fn push(&mut self, data: Bytes) -> Result<()> {
        self.usable()?;
        let chunk = Chunk::new(self.input_len, data);
        self.input_len += chunk.data.len() as u64;
        let result = self.probe.push(chunk).and_then(|()| self.pump());
        self.fail_on(result)
    }

    /// The input ended: returns every fragment not yet taken, the last media and the
    /// finalize writes included. [`Remuxer::notes`] is complete after it.
    pub fn finish(&mut self) -> Result<Vec<Fragment>> {
        self.usable()?;
        self.finished = true;
        let result = self.probe.end_of_input().and_then(|()| self.pump());
        self.fail_on(result)?;
        self.notes.extend(self.probe.notes().iter().cloned());
        self.notes.extend(self.params.take_notes());
        self.notes.extend(self.summary.as_ref().map(|s| s.notes.clone()).unwrap_or_default());
        self.notes.extend(self.output.take_notes());
        if let Some((side, _)) = &mut self.side {
            self.notes.extend(side.take_notes().into_iter().map(|n| format!("side output: {n}")));
        }
        Ok(self.take_fragments())
    }

    /// The next output fragment ready, in output order: write it at its `offset`.
    pub fn next_fragment(&mut self) -> Option<Fragment> {
        self.fragments.pop_front()
    }

    /// Every output fragment ready, in output order.
    pub fn take_fragments(&mut self) -> Vec<Fragment> {
        self.fragments.drain(..).collect()
    }

    /// The next fragment of the side output ([`RemuxOptions::side_output`]) ready.
    pub fn next_side_fragment(&mut self) -> Option<Fragment> {
        self.side.as_mut()?.1.pop_front()
    }

    /// The tracks, once the codec parameters are decided (as the input describes them,
    /// before `--skip-unsupported`).
    pub fn tracks(&self) -> Option<&TrackSet> {
        self.output.tracks()
    }

    /// What the remux has to say (damage skipped, parameters replaced, tracks dropped,
    /// where the index went), one line each; complete after [`Remuxer::finish`].
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// Input bytes pushed so far.
    pub fn input_len(&self) -> u64 {
        self.input_len
    }

    /// Seconds of media held back in case an index comes after the media (an MP4 stream
    /// split with a reference's layout), while that is the case. A live caller that sees
    /// the media come at the speed it plays releases them with [`Remuxer::release_held`].
    pub fn held_media_secs(&self) -> Option<f64> {
        self.splitter.held_media_secs()
    }

    /// Stops waiting for a late index: the held packets go on to the output (`note` says
    /// why, among the notes), and the rest is split as it comes.
    pub fn release_held(&mut self, note: Option<String>) -> Result<()> {
        self.usable()?;
        self.splitter.release_hold(note, &mut self.packets);
        let result = self.mux_packets();
        self.fail_on(result)
    }

    fn usable(&self) -> Result<()> {
        if self.failed {
            return Err(Error::msg(ErrorKind::Config, "the remux failed earlier: it cannot take more input"));
        }
        if self.finished {
            return Err(Error::msg(ErrorKind::Config, "the remux is finished: it cannot take more input"));
        }
        Ok(())
    }

    fn fail_on(&mut self, result: Result<(), Failure>) -> Result<()> {
        result.map_err(|f| {
            self.failed = true;
            Error::from(f)
        })
    }

    /// Runs every event the input gave through parameters, splitter and output.
    fn pump(&mut self) -> Result<(), Failure> {
        while let Some(ev) = self.probe.poll()? {
            self.params.push(ev, &mut self.events)?;
            for ev in std::mem::take(&mut self.events) {
                match ev {
                    ContainerEvent::End(end) => {
                        let summary = self.splitter.finish(end, &mut self.packets)?;
                        self.packets.push(PacketEvent::End(summary.clone()));
                        self.summary = Some(summary);
                    }
                    ev => self.splitter.handle(ev, &mut self.packets)?,
                }
                self.mux_packets()?;
            }
        }
        Ok(())
    }

    fn mux_packets(&mut self) -> Result<(), Failure> {
        if let Some((side, ready)) = &mut self.side {
            let mut out = Vec::new();
            let result = self.packets.iter().try_for_each(|pe| side.push(pe.clone(), &mut out));
            ready.extend(out);
            if let Err(e) = result {
                self.notes.push(format!("side output stopped: {}", Error::from(e)));
                self.side = None;
            }
        }
        let mut out = Vec::new();
        let mut result = Ok(());
        for pe in self.packets.drain(..) {
            result = self.output.push(pe, &mut out);
            if result.is_err() {
                break;
            }
        }
        // The fragments completed before an error are still the caller's to write: the
        // output keeps every fragment completed before it, as the pipeline's does.
        self.fragments.extend(out);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_options_are_the_output_and_splitter_defaults() {
        let o = RemuxOptions::default();
        assert_eq!(o.mux_config(), MuxConfig::default());
        assert_eq!(o.split_config(), SplitConfig::default());
        assert_eq!((o.params, o.reference.is_none()), (ParamPolicy::Stream, true));
    }
}
