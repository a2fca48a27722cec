//! Splitting a run of audio frames stored back to back without lengths (AAC, Opus in an
//! MP4 whose index is lost) into frames.
//!
//! Each byte position that could end one frame and start the next is a candidate
//! boundary: for AAC, the previous frame's last bits are `ID_END` and padding, and the next
//! bits parse as a channel element with a valid `ics_info` and `section_data` (see
//! [`aac::raw_frame_start`]); for Opus, the TOC byte repeats the stream's configuration.
//! A dynamic program then picks, among all ways to cut the run at candidates into frames of
//! the predicted tracks, the one whose frame sizes fit the reference's size statistics
//! best and whose AAC global gain changes least between frames. On real streams the
//! syntax checks leave one way in nearly all runs; when several remain, the split is
//! reported as ambiguous.

use super::layout::{Framing, TrackLayout};
use crate::codecs::aac::{self, RawFrameStart};

/// Most states kept per frame count (the cheapest ones).
const BEAM: usize = 64;
/// Cost of each frame more or fewer than the interleaving predicts.
const COUNT_PENALTY: f64 = 4.0;
/// A split with another frame count this close in cost makes the choice ambiguous.
const AMBIGUITY_MARGIN: f64 = 2.0;
/// Cost per unit of AAC global gain change between consecutive frames of a track. A weak
/// tie-breaker: 0 mis-splits frames of two interleaved AAC tracks, 0.1 and more shifts
/// boundaries in long chunked runs toward a bogus frame start whose gain happens to fit
/// (measured on tests/recover.rs).
const GAIN_PENALTY: f64 = 0.05;

/// What a frame start looks like, per framing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameStart {
    Aac(RawFrameStart),
    Other,
}

/// Whether a frame of `layout`'s track can start at `data[0]`.
pub fn frame_start(data: &[u8], layout: &TrackLayout) -> Option<FrameStart> {
    match layout.framing {
        Framing::Aac { channel_config, sf_index } => {
            aac::raw_frame_start(data, channel_config, sf_index).map(FrameStart::Aac)
        }
        Framing::Opus { toc_mask, toc } => (data.first()? & toc_mask == toc).then_some(FrameStart::Other),
        Framing::Nal { .. } | Framing::Pcm { .. } => None,
    }
}

/// How a run ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunEnd<'a> {
    /// The last frame ends at one of these positions (sorted), where something else starts.
    At(&'a [usize]),
    /// Exactly `seq.len()` frames, after which a frame of this track starts.
    Then(usize),
}

/// One frame of a split run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame {
    pub track: usize,
    pub len: usize,
    pub start: FrameStart,
}

/// A split run.
#[derive(Clone, Debug, PartialEq)]
pub struct Split {
    pub frames: Vec<Frame>,
    /// Where the run ends (the sum of the frame lengths).
    pub end: usize,
    /// More than one split fits the syntax; the likeliest was taken.
    pub ambiguous: bool,
    /// How unlikely the split is (lower is likelier).
    pub cost: f64,
}

#[derive(Clone, Copy)]
struct State {
    /// Where this frame starts.
    pos: usize,
    start: FrameStart,
    cost: f64,
    /// Index of the previous frame's state in the previous layer.
    from: usize,
    /// Ways to reach this state (saturating).
    ways: u32,
}

/// A memoized frame-start check: the run it was made in, and its result.
type StartMemo = (u32, Option<FrameStart>);

/// Memoized syntax checks over one run's bytes, kept between runs to reuse the memory.
#[derive(Default)]
pub struct Scratch {
    /// Per track, per position: the frame-start check, valid when stamped with `run`.
    starts: Vec<(usize, Vec<StartMemo>)>,
    /// Positions where a frame of the run's tracks can end, ascending.
    ends: Vec<usize>,
    /// Which run the memos belong to.
    run: u32,
}

impl Scratch {
    /// Prepares the memos for splitting `data` into frames of the tracks in `seq`; then
    /// [`Scratch::ends`] lists where frames may end.
    pub fn prepare(&mut self, data: &[u8], seq: &[usize], layouts: &[TrackLayout]) {
        self.reset(data.len());
        self.find_ends(data, seq, layouts);
    }

    /// Positions where a frame may end, ascending (after [`Scratch::prepare`]).
    pub fn ends(&self) -> &[usize] {
        &self.ends
    }

    fn reset(&mut self, len: usize) {
        self.run = self.run.wrapping_add(1);
        if self.run == 0 {
            // Stamps wrapped around: forget everything once.
            self.starts.clear();
            self.run = 1;
        }
        for (_, v) in &mut self.starts {
            if v.len() <= len {
                v.resize(len + 1, (0, None));
            }
        }
    }

    fn start_at(&mut self, data: &[u8], p: usize, track: usize, layouts: &[TrackLayout]) -> Option<FrameStart> {
        let slot = match self.starts.iter().position(|(t, _)| *t == track) {
            Some(i) => i,
            None => {
                self.starts.push((track, vec![(0, None); data.len() + 1]));
                self.starts.len() - 1
            }
        };
        let memo = &mut self.starts[slot].1[p];
        if memo.0 != self.run {
            *memo = (self.run, frame_start(&data[p..], &layouts[track]));
        }
        memo.1
    }

    /// Finds where frames can end: anywhere for Opus, where AAC's ID_END is for AAC.
    fn find_ends(&mut self, data: &[u8], seq: &[usize], layouts: &[TrackLayout]) {
        self.ends.clear();
        let aac_only = seq.iter().all(|&t| matches!(layouts[t].framing, Framing::Aac { .. }));
        self.ends.extend((1..=data.len()).filter(|&p| !aac_only || aac::raw_frame_can_end(&data[..p])));
    }

    /// Whether a frame of `layout`'s track can end at `p`.
    fn end_at(&self, data: &[u8], p: usize, layout: &TrackLayout) -> bool {
        !matches!(layout.framing, Framing::Aac { .. }) || aac::raw_frame_can_end(&data[..p])
    }
}

/// Splits `data` into frames of the tracks `seq` predicts, in that order. With
/// [`RunEnd::At`] any number of frames from 1 to `seq.len()` may fill it up to one of the
/// given ends, costing [`COUNT_PENALTY`] per frame away from `expected` when given; the cheapest split
/// over all ends wins. `last` holds each track's previous frame start, for gain
/// continuity. `scratch` must be prepared for `data` and `seq`. `None` when no split fits.
pub fn split_run(
    data: &[u8],
    seq: &[usize],
    expected: Option<usize>,
    end: RunEnd<'_>,
    layouts: &[TrackLayout],
    last: &[Option<FrameStart>],
    scratch: &mut Scratch,
) -> Option<Split> {
    let first = frame_start(data, &layouts[*seq.first()?])?;
    let mut layers: Vec<Vec<State>> = vec![vec![State { pos: 0, start: first, cost: 0.0, from: 0, ways: 1 }]];
    // (layer, index, total cost, end) of each complete split.
    let mut finals: Vec<(usize, usize, f64, usize)> = Vec::new();
    for k in 0..seq.len() {
        let t = seq[k];
        let layout = &layouts[t];
        let mut states = std::mem::take(&mut layers[k]);
        states.sort_by(|a, b| a.cost.total_cmp(&b.cost));
        states.truncate(BEAM);
        let mut next: Vec<State> = Vec::new();
        for (index, state) in states.iter().enumerate() {
            let prev = if k > 0 && seq[k - 1] == t {
                Some(layers[k - 1][state.from].start)
            } else if k == first_of(seq, k) {
                last[t]
            } else {
                None
            };
            let cost = state.cost + continuity(prev, state.start);
            if cost.is_infinite() {
                continue;
            }
            let lo = state.pos + layout.min_size as usize;
            let hi = (state.pos + layout.max_size as usize).min(data.len());
            let last_frame = k + 1 == seq.len();
            let from = scratch.ends.partition_point(|&p| p < lo);
            let to = scratch.ends.partition_point(|&p| p <= hi);
            for e in from..to {
                let b = scratch.ends[e];
                if !scratch.end_at(data, b, layout) {
                    continue;
                }
                let frame_cost = cost + size_cost(b - state.pos, layout);
                match end {
                    RunEnd::At(ends) if ends.binary_search(&b).is_ok() => {
                        let total = frame_cost + expected.map_or(0.0, |e| COUNT_PENALTY * (k + 1).abs_diff(e) as f64);
                        finals.push((k, index, total, b));
                    }
                    RunEnd::Then(after) if last_frame => {
                        if b < data.len() && scratch.start_at(data, b, after, layouts).is_some() {
                            finals.push((k, index, frame_cost, b));
                        }
                        continue;
                    }
                    _ => {}
                }
                if last_frame || b >= data.len() {
                    continue;
                }
                let Some(start) = scratch.start_at(data, b, seq[k + 1], layouts) else { continue };
                next.push(State { pos: b, start, cost: frame_cost, from: index, ways: state.ways });
            }
        }
        layers[k] = states;
        // One state per position: the cheapest, counting every way to get there.
        next.sort_by(|a, b| a.pos.cmp(&b.pos).then(a.cost.total_cmp(&b.cost)));
        let mut merged: Vec<State> = Vec::with_capacity(next.len());
        for s in next {
            match merged.last_mut() {
                Some(m) if m.pos == s.pos => m.ways = m.ways.saturating_add(s.ways),
                _ => merged.push(s),
            }
        }
        if merged.is_empty() && k + 1 < seq.len() {
            break;
        }
        layers.push(merged);
    }
    let &(k, index, cost, end_at) = finals.iter().min_by(|a, b| a.2.total_cmp(&b.2))?;
    // Other ways to the same end with as many frames, or close runners-up.
    let ways = layers[k][index].ways;
    let close = finals.iter().any(|f| (f.0, f.1, f.3) != (k, index, end_at) && f.2 < cost + AMBIGUITY_MARGIN);
    let mut frames = Vec::with_capacity(k + 1);
    let (mut layer, mut i, mut stop) = (k, index, end_at);
    loop {
        let s = layers[layer][i];
        frames.push(Frame { track: seq[layer], len: stop - s.pos, start: s.start });
        if layer == 0 {
            break;
        }
        stop = s.pos;
        i = s.from;
        layer -= 1;
    }
    frames.reverse();
    Some(Split { frames, end: end_at, ambiguous: ways > 1 || close, cost })
}

/// Whether frame `k` is the first of its track in `seq`.
fn first_of(seq: &[usize], k: usize) -> usize {
    seq.iter().position(|&t| t == seq[k]).unwrap_or(k)
}

/// Cost of a frame of `len` bytes: the negative log-likelihood of a normal distribution
/// around the reference's mean size, with a floor on its spread.
fn size_cost(len: usize, layout: &TrackLayout) -> f64 {
    let sd = layout.sd_size.max(layout.mean_size * 0.15).max(4.0);
    let z = (len as f64 - layout.mean_size) / sd;
    z * z / 2.0
}

/// Cost of `next` following `prev` in one AAC track: the window sequence must be allowed,
/// the gain should move little.
fn continuity(prev: Option<FrameStart>, next: FrameStart) -> f64 {
    match (prev, next) {
        (Some(FrameStart::Aac(a)), FrameStart::Aac(b)) => {
            if !a.may_precede(&b) {
                return f64::INFINITY;
            }
            match (a.global_gain, b.global_gain) {
                (Some(x), Some(y)) => GAIN_PENALTY * f64::from(x.abs_diff(y)),
                _ => 0.0,
            }
        }
        _ => 0.0,
    }
}
