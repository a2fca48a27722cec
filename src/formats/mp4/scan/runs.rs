//! Audio runs: a run of unframed AAC/Opus frames between self-delimiting packets, split
//! into frames (in windows when the run is longer than the clocks predict), and PCM packets
//! of the reference's size.

use super::*;

impl MdatScanner {
    /// Cuts a run of unframed audio frames starting with one of track `t`.
    pub(super) fn audio_run(&mut self, t: usize, at_end: bool) -> Step {
        if frame_start(&self.buf, &self.layout.tracks[t]).is_none() {
            return Step::NoFit;
        }
        let (seq, closed) = self.predicted_run(t);
        let last: Vec<Option<FrameStart>> = self.tracks.iter().map(|s| s.last_start).collect();
        let sizes = seq.iter().map(|&s| self.layout.tracks[s].max_size as usize);
        // Room for two frames more than predicted: the prediction can be off where clocks
        // tie or durations vary.
        let max_len = sizes.clone().sum::<usize>() + 2 * sizes.max().unwrap_or(0);
        if self.buf.len() < max_len && !at_end {
            return Step::NeedMore;
        }
        let window_len = self.buf.len().min(max_len);
        let mut loose = seq.clone();
        loose.extend([*seq.last().expect("seq starts with t"); 2]);
        let split = if closed {
            // The run ends where the next self-delimiting packet starts: of the places
            // within reach where one does, the one the frames before it fit best.
            // Most runs are as long as predicted: look near there first, then everywhere
            // within reach when that gives no clear answer.
            let likely: f64 = seq
                .iter()
                .map(|&s| {
                    let l = &self.layout.tracks[s];
                    l.mean_size + 3.0 * l.sd_size
                })
                .sum();
            let near = (likely as usize + self.layout.tracks[t].max_size as usize).min(window_len);
            let first = self.closed_run(t, Some(seq.len()), &loose, &last, near, at_end);
            match first {
                Ok(Some(split)) if !split.ambiguous || near == window_len => Some(split),
                Ok(_) if near < window_len => {
                    match self.closed_run(t, Some(seq.len()), &loose, &last, window_len, at_end) {
                        Ok(split) => split,
                        Err(step) => return step,
                    }
                }
                Ok(split) => split,
                Err(step) => return step,
            }
        } else {
            self.open_run(&seq, &last, window_len, at_end)
        };
        let split = match split.filter(|s| !s.frames.is_empty()) {
            Some(split) => split,
            None => match self.long_run(t, &last, at_end) {
                Ok(Some(split)) if !split.frames.is_empty() => split,
                Ok(_) => return Step::NoFit,
                Err(step) => return step,
            },
        };
        if split.ambiguous {
            self.summary.ambiguous_runs += 1;
        }
        for f in split.frames {
            self.cut(f.track, f.len, true, Some(f.start));
        }
        Step::Cut
    }

    /// Splits a window of the run no self-delimiting packet closes: the frames `seq`
    /// predicts but the last, which must start where they end. All but the last
    /// [`RUN_OVERLAP`] are kept; those are split again with what follows them.
    pub(super) fn open_run(
        &mut self,
        seq: &[usize],
        last: &[Option<FrameStart>],
        window_len: usize,
        at_end: bool,
    ) -> Option<audio::Split> {
        let (window, layouts) = (&self.buf[..window_len], &self.layout.tracks);
        let (head, next) = seq.split_at(seq.len() - 1);
        self.scratch.prepare(window, seq, layouts);
        match split_run(window, head, Some(head.len()), RunEnd::Then(next[0]), layouts, last, &mut self.scratch) {
            Some(mut split) => {
                let keep = split.frames.len().saturating_sub(RUN_OVERLAP).max(1);
                split.frames.truncate(keep);
                Some(split)
            }
            None if at_end && window_len == self.buf.len() => {
                split_cut_run(window, seq, layouts, last, &mut self.scratch)
            }
            None => None,
        }
    }

    /// A run longer than the clocks predict. Recorders that interleave in chunks
    /// (GStreamer's mp4mux `interleave-time`, Android's MediaMuxer: a second or more of one
    /// track, then of the other) write audio far past the decode time of the next video
    /// packet. With no frame count to expect, the run is split as a window of
    /// [`MAX_RUN_FRAMES`] frames, or, near its end, up to where an access unit starts.
    pub(super) fn long_run(
        &mut self,
        t: usize,
        last: &[Option<FrameStart>],
        at_end: bool,
    ) -> Result<Option<audio::Split>, Step> {
        let seq = self.unframed_order(t);
        let max_len: usize = seq.iter().map(|&s| self.layout.tracks[s].max_size as usize).sum();
        if self.buf.len() < max_len && !at_end {
            return Err(Step::NeedMore);
        }
        let window_len = self.buf.len().min(max_len);
        // A whole window first: with no count to expect, a run closed far away could be
        // reached with too few, merged frames.
        if let Some(split) = self.open_run(&seq, last, window_len, at_end) {
            return Ok(Some(split));
        }
        if !self.layout.tracks.iter().any(|l| l.framing.self_delimiting()) {
            return Ok(None);
        }
        self.closed_run(t, None, &seq, last, window_len, at_end)
    }

    /// [`MAX_RUN_FRAMES`] frames of unframed tracks from `first` on, in the order their
    /// clocks give, ignoring the self-delimiting tracks.
    pub(super) fn unframed_order(&self, first: usize) -> Vec<usize> {
        let mut clocks: Vec<i64> = self.tracks.iter().map(|t| t.next_dts).collect();
        let unframed: Vec<usize> =
            (0..clocks.len()).filter(|&t| !self.layout.tracks[t].framing.self_delimiting()).collect();
        let mut seq = vec![first];
        clocks[first] += i64::from(self.layout.tracks[first].packet_ticks);
        while seq.len() < MAX_RUN_FRAMES {
            let t = *unframed.iter().min_by(|&&a, &&b| self.due_cmp(a, clocks[a], b, clocks[b])).expect("first is one");
            seq.push(t);
            clocks[t] += i64::from(self.layout.tracks[t].packet_ticks);
        }
        seq
    }

    /// Splits a run that ends where an access unit starts, looking for that start within
    /// the first `reach` bytes; `expected` frames cost least, when given. `Err` when the
    /// answer must wait for more bytes.
    pub(super) fn closed_run(
        &mut self,
        t: usize,
        expected: Option<usize>,
        loose: &[usize],
        last: &[Option<FrameStart>],
        reach: usize,
        at_end: bool,
    ) -> Result<Option<audio::Split>, Step> {
        let min = self.layout.tracks[t].min_size as usize;
        let data_len = reach.min(self.buf.len());
        self.scratch.prepare(&self.buf[..data_len], loose, &self.layout.tracks);
        let (mut ends, mut incomplete) = (Vec::new(), Vec::new());
        // Where the run's last frame can end and an access unit starts.
        for &q in self.scratch.ends() {
            if q < min || q >= self.buf.len() {
                continue;
            }
            match self.anchor_at(q, at_end) {
                Anchor::Yes => ends.push(q),
                Anchor::Incomplete => {
                    ends.push(q);
                    incomplete.push(q);
                }
                Anchor::No => {}
            }
        }
        let data = &self.buf[..data_len];
        let layouts = &self.layout.tracks;
        let best = split_run(data, loose, expected, RunEnd::At(&ends), layouts, last, &mut self.scratch);
        // The best fit ends where an access unit may start whose end has not arrived:
        // wait until it can be told.
        if best.as_ref().is_some_and(|b| incomplete.contains(&b.end)) {
            return Err(Step::NeedMore);
        }
        Ok(match best {
            // The input ends inside the run.
            None if at_end && data_len == self.buf.len() => {
                split_cut_run(data, loose, layouts, last, &mut self.scratch)
            }
            best => best,
        })
    }

    /// Whether a self-delimiting packet (an access unit of a video track) starts at
    /// `buf[q]`, where an audio run would end.
    pub(super) fn anchor_at(&self, q: usize, at_end: bool) -> Anchor {
        let rest = &self.buf[q..];
        let mut anchor = Anchor::No;
        for l in &self.layout.tracks {
            if let Framing::Nal { rules, .. } = &l.framing {
                match access_unit(rest, rules, at_end) {
                    // Only where what follows the unit could be a packet too: a run of
                    // bytes that merely looks like a long NAL unit would swallow packets.
                    AuParse::Unit { len, .. } => match self.packet_may_start(&rest[len..], at_end) {
                        Some(true) => return Anchor::Yes,
                        Some(false) => {}
                        None => anchor = Anchor::Incomplete,
                    },
                    AuParse::NeedMore if starts_like_access_unit(rest, rules) => anchor = Anchor::Incomplete,
                    // Cut by the end of the input: the unit is lost, but it does end the run.
                    AuParse::NotAnAccessUnit if at_end && starts_like_access_unit(rest, rules) => return Anchor::Yes,
                    _ => {}
                }
            }
        }
        anchor
    }

    /// Whether a packet of some track may start at `data[0]`; `None` when too few bytes
    /// have arrived to tell.
    pub(super) fn packet_may_start(&self, data: &[u8], at_end: bool) -> Option<bool> {
        /// Enough bytes for any of the checks below.
        const NEEDED: usize = 32;
        if data.is_empty() || (data.len() < NEEDED && !at_end) {
            return if at_end { Some(true) } else { None };
        }
        Some(self.layout.tracks.iter().any(|l| match &l.framing {
            Framing::Nal { rules, .. } => starts_like_access_unit(data, rules),
            Framing::Aac { .. } | Framing::Opus { .. } => frame_start(data, l).is_some(),
            Framing::Pcm { .. } => true,
        }))
    }

    /// Cuts a PCM packet of track `t`. PCM has no syntax to check: any bytes would do, so
    /// the bytes around the packet are: bytes that hold a video access unit (or, at the end
    /// of the input, begin one that was cut off) are not audio. A packet that is not
    /// followed by video may be followed by more audio, unless a video access unit starts
    /// inside it: then the audio ended there (a recording whose audio stops before its
    /// video writes a last, shorter packet), and only the bytes before it are the packet.
    pub(super) fn pcm_packet(&mut self, t: usize, packet_bytes: usize, frame: usize, at_end: bool) -> Step {
        /// Bytes after a packet enough to tell whether video starts there.
        const LOOKAHEAD: usize = 32;
        if self.video_starts_here(at_end) {
            return Step::NoFit;
        }
        // At the end of the input, fewer bytes than a packet: only a packet that ends
        // where video starts can be told whole.
        let whole = self.buf.len() >= packet_bytes;
        let rest = &self.buf[packet_bytes.min(self.buf.len())..];
        if rest.len() < LOOKAHEAD && whole && !at_end {
            return Step::NeedMore;
        }
        let video_rules: Vec<AuRules> = self
            .layout
            .tracks
            .iter()
            .filter_map(|l| match &l.framing {
                Framing::Nal { rules, .. } => Some(*rules),
                _ => None,
            })
            .collect();
        let video_follows = whole && (rest.is_empty() || video_rules.iter().any(|r| starts_like_access_unit(rest, r)));
        if !video_follows && !video_rules.is_empty() {
            let frame = frame.max(1);
            let mut k = frame;
            while k < packet_bytes.min(self.buf.len()) {
                let here = &self.buf[k..];
                for rules in &video_rules {
                    match access_unit(here, rules, at_end) {
                        AuParse::Unit { len, .. } => {
                            let after = &here[len..];
                            if after.is_empty() || starts_like_access_unit(after, rules) {
                                // The audio's last packet ends where this access unit starts.
                                let ticks =
                                    u64::from(self.layout.tracks[t].packet_ticks) * k as u64 / packet_bytes as u64;
                                if self.summary.short_packets.len() < MAX_LISTED_SKIPS {
                                    self.summary.short_packets.push((t, self.pos, k as u64));
                                }
                                self.cut_timed(t, k, true, None, Some(u32::try_from(ticks).unwrap_or(u32::MAX)));
                                return Step::Cut;
                            }
                        }
                        // Wait for the unit's end before taking these bytes for audio.
                        AuParse::NeedMore if !at_end && starts_like_access_unit(here, rules) => return Step::NeedMore,
                        // The input ends inside a unit that starts here: what comes before it
                        // cannot be told to be a whole packet.
                        AuParse::NotAnAccessUnit | AuParse::NeedMore
                            if at_end && starts_like_access_unit(here, rules) =>
                        {
                            return Step::NoFit
                        }
                        _ => {}
                    }
                }
                k += frame;
            }
        }
        if !whole {
            return Step::NoFit;
        }
        self.cut(t, packet_bytes, true, None);
        Step::Cut
    }
}
