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

use std::collections::HashMap;

use super::layout::{Framing, TrackLayout};
use crate::codecs::aac::{self, RawFrameStart};

/// Most states kept per frame count (the cheapest ones).
const BEAM: usize = 64;
/// Cost of each frame more or fewer than the interleaving predicts.
const COUNT_PENALTY: f64 = 4.0;
/// A split with another frame count this close in cost makes the choice ambiguous.
const AMBIGUITY_MARGIN: f64 = 2.0;
/// Cost per unit of AAC global gain change between consecutive frames of a track.
const GAIN_PENALTY: f64 = 0.25;

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

/// Whether a frame of `layout`'s track can end with the last byte of `frame`.
fn frame_end(frame: &[u8], layout: &TrackLayout) -> bool {
    match layout.framing {
        Framing::Aac { .. } => aac::raw_frame_can_end(frame),
        _ => true,
    }
}

/// How a run ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunEnd {
    /// The last frame ends exactly at the end of the data (something else starts there).
    Exact,
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
    /// More than one split fits the syntax; the likeliest was taken.
    pub ambiguous: bool,
    /// How unlikely the split is (lower is likelier).
    pub cost: f64,
}

#[derive(Clone, Copy)]
struct State {
    cost: f64,
    /// Start of the previous frame, for the back-track.
    from: usize,
    /// Ways to reach this state (saturating).
    ways: u32,
}

/// Splits `data` into frames of the tracks `seq` predicts, in that order. With
/// [`RunEnd::Exact`] any number of frames from 1 to `seq.len()` may fill it, costing
/// [`COUNT_PENALTY`] per frame away from `expected`. `last` holds each track's previous
/// frame start, for gain continuity. `None` when no split fits.
pub fn split_run(
    data: &[u8],
    seq: &[usize],
    expected: usize,
    end: RunEnd,
    layouts: &[TrackLayout],
    last: &[Option<FrameStart>],
) -> Option<Split> {
    if seq.is_empty() {
        return None;
    }
    let first = frame_start(data, &layouts[seq[0]])?;
    let mut starts: HashMap<(usize, usize), Option<FrameStart>> = HashMap::new();
    let mut start_at = |track: usize, p: usize| -> Option<FrameStart> {
        *starts.entry((track, p)).or_insert_with(|| frame_start(&data[p..], &layouts[track]))
    };
    // layers[k]: start position of frame k -> best state.
    let mut layers: Vec<HashMap<usize, State>> = vec![HashMap::from([(0, State { cost: 0.0, from: 0, ways: 1 })])];
    let mut frame_starts: HashMap<(usize, usize), FrameStart> = HashMap::from([((0, 0), first)]);
    let mut finals: Vec<(usize, State)> = Vec::new();
    for k in 0..seq.len() {
        let t = seq[k];
        let layout = &layouts[t];
        let mut next: HashMap<usize, State> = HashMap::new();
        let mut states: Vec<(usize, State)> = layers[k].iter().map(|(&p, &s)| (p, s)).collect();
        states.sort_by(|a, b| a.1.cost.total_cmp(&b.1.cost));
        states.truncate(BEAM);
        for (s, state) in states {
            let here = frame_starts[&(k, s)];
            let prev = if k > 0 && seq[k - 1] == t { frame_starts.get(&(k - 1, state.from)).copied() } else { None };
            let prev = prev.or(if k == first_of(seq, k) { last[t] } else { None });
            let cost = state.cost + continuity(prev, here);
            if cost.is_infinite() {
                continue;
            }
            let lo = s + layout.min_size as usize;
            let hi = (s + layout.max_size as usize).min(data.len());
            for b in lo..=hi {
                if !frame_end(&data[s..b], layout) {
                    continue;
                }
                let frame_cost = cost + size_cost(b - s, layout);
                let last_frame = k + 1 == seq.len();
                match end {
                    RunEnd::Exact if b == data.len() => {
                        let n = k + 1;
                        let total = frame_cost + COUNT_PENALTY * n.abs_diff(expected) as f64;
                        finals.push((n, State { cost: total, from: s, ways: state.ways }));
                        continue;
                    }
                    RunEnd::Then(after) if last_frame => {
                        if b < data.len() && start_at(after, b).is_some() {
                            finals.push((k + 1, State { cost: frame_cost, from: s, ways: state.ways }));
                        }
                        continue;
                    }
                    _ => {}
                }
                if last_frame || b >= data.len() {
                    continue;
                }
                let Some(start) = start_at(seq[k + 1], b) else { continue };
                frame_starts.insert((k + 1, b), start);
                let e = next.entry(b).or_insert(State { cost: f64::INFINITY, from: s, ways: 0 });
                e.ways = e.ways.saturating_add(state.ways);
                if frame_cost < e.cost {
                    e.cost = frame_cost;
                    e.from = s;
                }
            }
        }
        layers.push(next);
    }
    let &(n, best) = finals.iter().min_by(|a, b| a.1.cost.total_cmp(&b.1.cost))?;
    // Other ways with as many frames, or close runners-up with another count.
    let ways = finals.iter().filter(|(k, _)| *k == n).fold(0u32, |a, (_, s)| a.saturating_add(s.ways));
    let close = finals.iter().any(|(k, s)| *k != n && s.cost < best.cost + AMBIGUITY_MARGIN);
    // Walk back from the last frame's start.
    let mut bounds = vec![data.len()];
    let mut from = best.from;
    for k in (0..n).rev() {
        bounds.push(from);
        if k > 0 {
            from = layers[k][&from].from;
        }
    }
    bounds.reverse();
    let frames = bounds
        .windows(2)
        .enumerate()
        .map(|(k, w)| Frame { track: seq[k], len: w[1] - w[0], start: frame_starts[&(k, w[0])] })
        .collect();
    Some(Split { frames, ambiguous: ways > 1 || close, cost: best.cost })
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
