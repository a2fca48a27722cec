//! `codecpar-extract`: decides each track's codec parameters and emits the track list.
//!
//! Parameters come from the stream's own header, or from a *reference*: a small complete
//! recording of the same source with the same settings (the "recapture"), whose sample
//! entries are right where the stream's are missing or garbage. The stream's `moov` is
//! forwarded unchanged so that `packet-split` can read its sample tables; only codec
//! parameters are taken from the reference, never timing.
//!
//! Under `auto`, a stream's parameters are unusable when they do not parse, and also when
//! they disagree with the parameter sets the first sample carries in-band: the tracks are
//! then held back until that sample has gone by (a few hundred KB at the start of the
//! stream, at most [`MAX_CHECK_BYTES`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use tokio::sync::mpsc;

use super::{Failure, Outputs, StageContext, StageReport, StageResult};
use crate::codecs::inband;
use crate::formats::matroska::block::parse_block;
use crate::formats::matroska::ids as mkv_ids;
use crate::formats::matroska::reader::{elements, Element};
use crate::formats::matroska::tracks::{parse_tracks, SegmentInfo, TrackEntry};
use crate::formats::mp4::moof::parse_moof;
use crate::formats::mp4::moov::{parse_movie, Movie, Mp4Track};
use crate::formats::mp4::scan::layout::ScanLayout;
use crate::formats::mp4::FourCc;
use crate::formats::{ContainerEvent, ContainerKind, ElementKind};
use crate::model::{Chunk, MovieMeta, ParamOrigin, Track, TrackKind, Tracks};
use crate::reference::{RefTrack, Reference};

/// Where codec parameters come from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ParamPolicy {
    /// The stream's own.
    #[default]
    Stream,
    /// The reference recording's.
    Reference,
    /// The stream's, or the reference's where the stream's are missing or unusable.
    Auto,
}

impl std::str::FromStr for ParamPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "stream" => Ok(ParamPolicy::Stream),
            "reference" => Ok(ParamPolicy::Reference),
            "auto" => Ok(ParamPolicy::Auto),
            _ => Err(format!("unknown parameter policy '{s}' (expected stream, reference or auto)")),
        }
    }
}

/// Settings of `codecpar-extract`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CodecparConfig {
    pub params: ParamPolicy,
    /// A complete recording of the same source whose parameters to use.
    pub reference: Option<PathBuf>,
}

/// Reads a reference recording, for a stage.
pub fn load_reference(path: &Path) -> Result<Reference, Failure> {
    Reference::load(path).map_err(|reason| Failure::Reference { path: path.to_path_buf(), reason })
}

/// The stream's tracks when the stream has no index of its own: the reference's, with the
/// layout that finds their packets in the media.
pub fn unindexed_tracks(reference: &Reference) -> Result<(Vec<Track>, ScanLayout), Failure> {
    let tracks: Vec<Track> = reference.tracks.iter().map(|r| r.track.clone()).collect();
    let stats: Vec<_> = reference.tracks.iter().map(|r| &r.stats).collect();
    let layout = ScanLayout::new(&tracks, &stats).map_err(|e| Failure::Unsupported(e.to_string()))?;
    Ok((tracks, layout))
}

/// The tracks of an MP4 input with their parameters chosen by `policy`.
struct Chosen {
    tracks: Vec<Track>,
    notes: Vec<String>,
    /// Tracks whose own parameters were kept under `auto`, still to be compared with the
    /// parameter sets their first sample carries in-band.
    to_check: Vec<Recheck>,
    /// The movie's title, creation time and tags.
    movie: MovieMeta,
}

/// A track waiting for its first sample, and what replaces its parameters if they
/// disagree with that sample's.
struct Recheck {
    /// Index in [`Chosen::tracks`].
    track: usize,
    /// Index in [`Movie::tracks`].
    movie_track: usize,
    reference: Track,
    /// Offset and size of the track's first samples (at most [`CHECK_SAMPLES`]), once known.
    samples: Vec<(u64, u32)>,
}

/// Samples at the start of a track whose slice headers are read to decide between the
/// stream's and the reference's parameter sets (see [`inband::decide`]).
pub const CHECK_SAMPLES: usize = 8;

/// The track made from a stream track and its reference's parameters and sample entry.
fn reference_track(t: &Mp4Track, movie_timescale: u32, r: &RefTrack) -> Track {
    let mut track = t.to_track(movie_timescale, r.codec.clone(), ParamOrigin::Reference);
    track.mp4_sample_entry = r.track.mp4_sample_entry.clone();
    track
}

fn choose_tracks(movie: &Movie, reference: Option<&Reference>, policy: ParamPolicy) -> Result<Chosen, Failure> {
    let stream: Vec<(usize, &Mp4Track)> =
        movie.tracks.iter().enumerate().filter(|(_, t)| t.kind != TrackKind::Other).collect();
    let notes: Vec<String> = movie
        .tracks
        .iter()
        .filter(|t| t.kind == TrackKind::Other)
        .map(|t| format!("track {} ('{}' handler) is neither audio nor video; left out", t.track_id, t.handler))
        .collect();
    if stream.is_empty() {
        return Err(Failure::Other("the input has no audio or video track".into()));
    }
    // Encrypted samples without their sample auxiliary information (senc/saiz/saio) and
    // pssh cannot be decrypted: refused rather than written broken.
    if let Some(why) = stream.iter().enumerate().find_map(|(i, (_, t))| t.encryption_refusal(i + 1)) {
        return Err(Failure::Other(why));
    }
    let matched = match reference {
        Some(r) => Some(pair(&stream.iter().map(|(_, t)| *t).collect::<Vec<_>>(), r)?),
        None => None,
    };
    let mut chosen = Chosen { tracks: Vec::new(), notes, to_check: Vec::new(), movie: movie.meta.clone() };
    for (i, &(movie_track, t)) in stream.iter().enumerate() {
        let own = t.codec.clone().and_then(|c| c.validate().map(|_| c));
        let from_ref = matched.as_ref().map(|m| m[i]);
        let use_ref = match (policy, &own) {
            (ParamPolicy::Stream, _) => false,
            (ParamPolicy::Reference, _) => true,
            (ParamPolicy::Auto, Ok(_)) => false,
            (ParamPolicy::Auto, Err(_)) => true,
        };
        let track = if use_ref {
            let r = from_ref.expect("policies that use a reference require one");
            if let Err(e) = &own {
                chosen
                    .notes
                    .push(format!("track {}: stream's codec parameters unusable ({e}); using the reference's", i + 1));
            }
            reference_track(t, movie.timescale, r)
        } else {
            let codec = own.map_err(|e| Failure::Codec {
                track: i + 1,
                codec: t.codec_family(),
                reason: format!("{e}; give a reference recording (--reference) to take them from it"),
            })?;
            if let (ParamPolicy::Auto, Some(r)) = (policy, from_ref) {
                let samples =
                    t.table.samples().take(CHECK_SAMPLES).map_while(Result::ok).map(|s| (s.offset, s.size)).collect();
                let reference = reference_track(t, movie.timescale, r);
                chosen.to_check.push(Recheck { track: i, movie_track, reference, samples });
            }
            t.to_track(movie.timescale, codec, ParamOrigin::Stream)
        };
        chosen.tracks.push(track);
    }
    Ok(chosen)
}

/// Most media bytes kept to compare a stream's codec parameters with those its first
/// samples carry in-band. A first sample that lies further into the input goes unchecked.
pub const MAX_CHECK_BYTES: u64 = 16 << 20;

/// The check of [`Chosen::to_check`]: holds the tracks (and the events after them) until
/// every checked track's first sample has been seen, or [`MAX_CHECK_BYTES`] have passed.
struct InbandCheck {
    chosen: Chosen,
    movie: Movie,
    /// Media seen since the `moov`: slices of the input, not copies.
    media: Vec<Chunk>,
    media_bytes: u64,
    next_dts: Vec<i64>,
    held: Vec<ContainerEvent>,
    /// The input ended: decide with the samples at hand.
    ended: bool,
}

impl InbandCheck {
    fn new(chosen: Chosen, movie: Movie) -> Self {
        let next_dts = vec![0; movie.tracks.len()];
        InbandCheck { chosen, movie, media: Vec::new(), media_bytes: 0, next_dts, held: Vec::new(), ended: false }
    }

    /// Looks at one more event: media is kept, and a fragment's `moof` says where a track's
    /// first sample is.
    fn look_at(&mut self, ev: &ContainerEvent) {
        match ev {
            ContainerEvent::Media(c) if self.media_bytes < MAX_CHECK_BYTES => {
                self.media_bytes += c.data.len() as u64;
                self.media.push(c.clone());
            }
            ContainerEvent::Meta(u) if u.kind == ElementKind::Mp4(FourCc::new(b"moof")) => {
                let Ok(samples) = parse_moof(&u.data, u.offset, u.header_len, &self.movie, &mut self.next_dts) else {
                    return;
                };
                for check in self.chosen.to_check.iter_mut().filter(|c| c.samples.is_empty()) {
                    let own = samples.iter().filter(|s| s.track == check.movie_track).take(CHECK_SAMPLES);
                    check.samples = own.map(|s| (s.info.offset, s.info.size)).collect();
                }
            }
            ContainerEvent::End(_) => self.ended = true,
            _ => {}
        }
    }

    /// Compares every track whose first sample is at hand; true when none is left.
    fn settle(&mut self) -> bool {
        let last_chance = self.gave_up() || self.ended;
        let Chosen { tracks, notes, to_check, .. } = &mut self.chosen;
        to_check.retain_mut(|check| {
            // Every known first sample, or (when no more media will be kept) those at hand.
            let read: Vec<Vec<u8>> =
                check.samples.iter().map_while(|&(at, size)| read_media(&self.media, at, size)).collect();
            if read.is_empty() || (read.len() < check.samples.len() && !last_chance) {
                return true;
            }
            let samples: Vec<&[u8]> = read.iter().map(Vec::as_slice).collect();
            let track = &mut tracks[check.track];
            let decision = inband::decide(&track.codec, &check.reference.codec, &samples);
            if let Some(note) = decision.note {
                notes.push(format!("track {}: {note}", check.track + 1));
            }
            if decision.use_reference {
                *track = check.reference.clone();
            }
            false
        });
        to_check.is_empty()
    }

    /// True when the first samples not yet seen will not be kept.
    fn gave_up(&self) -> bool {
        self.media_bytes >= MAX_CHECK_BYTES
    }

    /// Ends the check, noting the tracks left unchecked; returns the tracks and the held events.
    fn finish(mut self, notes: &mut Vec<String>) -> (Tracks, Vec<ContainerEvent>) {
        notes.append(&mut self.chosen.notes);
        for check in &self.chosen.to_check {
            notes.push(format!(
                "track {}: its first sample did not come within {MAX_CHECK_BYTES} bytes of media; its codec parameters were not compared with the bitstream's",
                check.track + 1
            ));
        }
        (Tracks::new(self.chosen.tracks, self.chosen.movie), self.held)
    }
}

/// The `size` bytes at input offset `at`, if `media` holds all of them.
fn read_media(media: &[Chunk], at: u64, size: u32) -> Option<Vec<u8>> {
    let end = at.checked_add(size as u64)?;
    // Grown as bytes are found, not sized by a count from the input.
    let mut out = Vec::new();
    for c in media {
        if out.len() as u64 == size as u64 {
            break;
        }
        let want = at + out.len() as u64;
        if c.offset <= want && want < c.end() {
            let from = (want - c.offset) as usize;
            let to = (end.min(c.end()) - c.offset) as usize;
            out.extend_from_slice(&c.data[from..to]);
        }
    }
    (out.len() as u64 == size as u64).then_some(out)
}

/// Pairs each stream track with a reference track: same kind and codec, then in order.
/// Any difference that would make the reference's parameters wrong for the stream is an
/// error naming both sides.
fn pair<'r>(stream: &[&Mp4Track], reference: &'r Reference) -> Result<Vec<&'r RefTrack>, Failure> {
    let refs = &reference.tracks;
    let mismatch = |detail: String| Failure::Mismatch { reference: reference.path.clone(), detail };
    let list = stream.iter().map(|t| t.describe()).collect::<Vec<_>>().join("; ");
    let ref_list = refs.iter().map(|t| t.describe()).collect::<Vec<_>>().join("; ");
    if refs.len() != stream.len() {
        return Err(mismatch(format!(
            "the stream has {} tracks ({list}), the reference {} ({ref_list})",
            stream.len(),
            refs.len(),
        )));
    }
    let key = |t: &Mp4Track| (t.kind, t.codec_family());
    let ref_key = |t: &RefTrack| (t.kind, t.codec.name());
    let mut out = Vec::new();
    for (i, s) in stream.iter().enumerate() {
        let nth = stream[..i].iter().filter(|o| key(o) == key(s)).count();
        let Some(r) = refs.iter().filter(|r| ref_key(r) == key(s)).nth(nth) else {
            return Err(mismatch(format!(
                "stream track {} ({}) has no {} {} track to match in the reference ({ref_list})",
                i + 1,
                s.describe(),
                s.kind,
                s.codec_family(),
            )));
        };
        let differs = if r.mp4_timescale.is_some_and(|ts| ts != s.timescale) {
            Some("timescale")
        } else if matches!((s.dims, r.codec.dimensions()), (Some(a), Some(b)) if a.width > 0 && a != b) {
            Some("resolution")
        } else {
            None
        };
        if let Some(what) = differs {
            return Err(mismatch(format!(
                "{what} differs: stream track {} is {}, reference track is {}",
                i + 1,
                s.describe(),
                r.describe()
            )));
        }
        out.push(r);
    }
    Ok(out)
}

/// Most bytes of Matroska input held while waiting for the first frames that describe
/// tracks whose parameters are in the bitstream (VP9, H.264 without CodecPrivate).
pub const MAX_HELD_BYTES: u64 = 64 << 20;

/// What holding an event costs against [`MAX_HELD_BYTES`]: its bytes and its own record.
fn held_cost(ev: &ContainerEvent) -> u64 {
    let data = match ev {
        ContainerEvent::Media(c) => c.data.len(),
        ContainerEvent::Meta(m) => m.data.len(),
        _ => 0,
    };
    data as u64 + 128
}

/// Codec parameters of a Matroska input: Tracks, completed by each track's first
/// keyframe where the codec keeps its parameters in the bitstream.
#[derive(Default)]
struct MatroskaParams {
    info: SegmentInfo,
    entries: Vec<TrackEntry>,
    /// The Segment's global tags, when they come before the media.
    tags: Vec<(String, String)>,
    cover: Option<crate::model::CoverArt>,
    first_frames: Vec<Option<Bytes>>,
    held: Vec<ContainerEvent>,
    held_bytes: u64,
}

impl MatroskaParams {
    fn ready(&self) -> bool {
        self.entries.iter().zip(&self.first_frames).all(|(e, f)| !e.needs_first_frame() || f.is_some())
    }

    /// Keeps the first keyframe of each track that needs one.
    fn look_at(&mut self, element: &Element) {
        let Ok(block) = parse_block(element) else { return };
        let Some(i) = self.entries.iter().position(|e| e.number == block.track) else { return };
        if self.first_frames[i].is_some() || !block.keyframe {
            return;
        }
        if let Some(frame) = block.frames.into_iter().next() {
            let frame = match &self.entries[i].header_strip {
                Some(prefix) => Bytes::from([prefix.as_ref(), frame.as_ref()].concat()),
                None => frame,
            };
            self.first_frames[i] = Some(frame);
        }
    }

    fn tracks(&self, notes: &mut Vec<String>) -> Result<Tracks, Failure> {
        let mut out = Vec::new();
        for (e, frame) in self.entries.iter().zip(&self.first_frames) {
            if e.kind() == TrackKind::Other {
                notes.push(format!("track {} ({}) is not audio or video; dropped", e.number, e.codec_id));
                continue;
            }
            let codec = e.codec(frame.as_deref()).map_err(|reason| {
                Failure::Unsupported(format!("Matroska track {} ({}): {reason}", e.number, e.codec_id))
            })?;
            out.push(e.to_track(&self.info, codec));
        }
        if out.is_empty() {
            return Err(Failure::Unsupported("the Matroska input has no audio or video track".into()));
        }
        let mut movie = self.info.movie_meta(self.tags.clone());
        movie.cover = self.cover.clone();
        Ok(Tracks::new(out, movie))
    }
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
                .map_err(|e| ctx.error(Failure::Other(format!("reading the reference failed: {e}"))))?;
            Some(loaded.map_err(|e| ctx.error(e))?)
        }
        None if config.params != ParamPolicy::Stream => {
            return Err(ctx.error(Failure::Other(
                "params = reference or auto needs a reference recording (reference = FILE, or --reference)".into(),
            )));
        }
        None => None,
    };
    let mut report = StageReport::default();
    let mut have_tracks = false;
    let mut media_bytes = 0u64;
    let mut unindexed = false;
    let mut mkv: Option<MatroskaParams> = None;
    // Under `auto`, the tracks wait here until their first samples have been compared
    // with their codec parameters.
    let mut pending: Option<InbandCheck> = None;
    while let Some(ev) = input.recv().await {
        let mut send = vec![];
        if ev == ContainerEvent::Container(ContainerKind::Matroska) {
            if reference.is_some() {
                report.notes.push("the reference is not used for Matroska input: its own Tracks describe it".into());
            }
            mkv = Some(MatroskaParams::default());
        }
        if let Some(m) = mkv.as_mut().filter(|_| !have_tracks) {
            match &ev {
                ContainerEvent::Meta(u) if u.kind == ElementKind::Ebml(mkv_ids::INFO) => {
                    let body = &u.data[u.header_len as usize..];
                    m.info = SegmentInfo::parse(body, u.offset + u.header_len as u64).map_err(|e| ctx.error(e))?;
                }
                ContainerEvent::Meta(u) if u.kind == ElementKind::Ebml(mkv_ids::TRACKS) => {
                    let body = &u.data[u.header_len as usize..];
                    m.entries = parse_tracks(body, u.offset + u.header_len as u64).map_err(|e| ctx.error(e))?;
                    m.first_frames = vec![None; m.entries.len()];
                }
                ContainerEvent::Meta(u) if u.kind == ElementKind::Ebml(mkv_ids::TAGS) => {
                    let body = &u.data[u.header_len as usize..];
                    m.tags.extend(crate::formats::matroska::meta::parse_global_tags(
                        body,
                        u.offset + u.header_len as u64,
                    ));
                }
                ContainerEvent::Meta(u) if u.kind == ElementKind::Ebml(mkv_ids::ATTACHMENTS) && m.cover.is_none() => {
                    m.cover = crate::formats::matroska::meta::parse_cover(&u.data, u.header_len as usize, u.offset);
                }
                ContainerEvent::Media(c) if !m.entries.is_empty() => {
                    for e in elements(c.offset, &c.data).map_while(Result::ok) {
                        m.look_at(&e);
                    }
                }
                _ => {}
            }
            let media = matches!(ev, ContainerEvent::MediaStart(_) | ContainerEvent::Media(_));
            let end = matches!(ev, ContainerEvent::End(_));
            if (media && !m.entries.is_empty() && m.ready()) || (end && !m.entries.is_empty()) {
                let tracks = m.tracks(&mut report.notes).map_err(|e| ctx.error(e))?;
                have_tracks = true;
                send.push(ContainerEvent::Tracks(Arc::new(tracks)));
                send.append(&mut m.held);
            } else if media || !m.held.is_empty() {
                // Everything held counts, Tracks known or not, empty Clusters too.
                m.held_bytes += held_cost(&ev);
                if m.held_bytes > MAX_HELD_BYTES {
                    let why =
                        if m.entries.is_empty() { "no Tracks element" } else { "no keyframe describing every track" };
                    return Err(ctx.error(Failure::Unsupported(format!(
                        "{why} in the first {MAX_HELD_BYTES} bytes of media (livemux holds no more than that)"
                    ))));
                }
                if end {
                    return Err(ctx.error(Failure::Unsupported("the Matroska input has no Tracks element".into())));
                }
                m.held.push(ev);
                continue;
            } else if end {
                return Err(ctx.error(Failure::Unsupported("the Matroska input has no Tracks element".into())));
            }
            send.push(ev);
            for ev in send {
                if out.send(ev).await.is_err() {
                    return Ok(report);
                }
            }
            continue;
        }
        if let Some(check) = pending.as_mut() {
            check.look_at(&ev);
            let end = matches!(ev, ContainerEvent::End(_));
            if !check.settle() && !check.gave_up() && !end {
                check.held.push(ev);
                continue;
            }
            // Settled: the tracks, what was held, then this event as usual.
            let (tracks, held) = pending.take().expect("checked").finish(&mut report.notes);
            send.push(ContainerEvent::Tracks(Arc::new(tracks)));
            send.extend(held);
        }
        match &ev {
            ContainerEvent::Meta(m) if m.kind == ElementKind::Mp4(FourCc::new(b"moov")) && !have_tracks => {
                let movie = parse_movie(&m.data, m.offset, m.header_len).map_err(|e| ctx.error(e))?;
                let chosen = choose_tracks(&movie, reference.as_ref(), config.params).map_err(|e| ctx.error(e))?;
                have_tracks = true;
                let mut check = InbandCheck::new(chosen, movie);
                if !check.settle() {
                    check.held.push(ev);
                    pending = Some(check);
                    continue;
                }
                let (tracks, _) = check.finish(&mut report.notes);
                send.push(ContainerEvent::Tracks(Arc::new(tracks)));
            }
            // An index after media that was scanned without one: `packet-split` still holds
            // the scanned packets unless there were too many, and then uses this index
            // instead. Its tracks go first, chosen as for an index that comes first.
            ContainerEvent::Meta(m) if m.kind == ElementKind::Mp4(FourCc::new(b"moov")) && unindexed => {
                let chosen =
                    parse_movie(&m.data, m.offset, m.header_len).map_err(|e| e.to_string()).and_then(|movie| {
                        choose_tracks(&movie, reference.as_ref(), config.params).map_err(|e| e.to_string())
                    });
                match chosen {
                    Ok(mut chosen) => {
                        report.notes.append(&mut chosen.notes);
                        send.push(ContainerEvent::Tracks(Arc::new(Tracks::new(chosen.tracks, chosen.movie))));
                    }
                    Err(e) => report.notes.push(format!(
                        "a 'moov' index arrived at offset {} after the media was split without one; it cannot be used: {e}",
                        m.offset
                    )),
                }
            }
            // Media before any index, with a reference: the index may never come (a
            // recorder that crashed or is still recording), so the media is split with
            // the reference's layout as it arrives.
            ContainerEvent::MediaStart(_) if !have_tracks && reference.is_some() => {
                let r = reference.as_ref().expect("checked");
                let (tracks, layout) = unindexed_tracks(r).map_err(|e| ctx.error(e))?;
                report.notes.push(format!(
                    "media starts before any 'moov' index: splitting it with the track layout of {}",
                    r.path.display()
                ));
                have_tracks = true;
                unindexed = true;
                send.push(ContainerEvent::Unindexed(Arc::new(layout)));
                send.push(ContainerEvent::Tracks(Arc::new(tracks.into())));
            }
            ContainerEvent::Media(c) => media_bytes += c.data.len() as u64,
            ContainerEvent::End(_) if !have_tracks && reference.is_some() => {
                return Err(ctx.error(Failure::Other(
                    "the input holds no media ('mdat' box) and no 'moov' index: nothing to recover".into(),
                )));
            }
            ContainerEvent::End(_) if !have_tracks => {
                return Err(ctx.error(Failure::MissingMoov { media_bytes }));
            }
            _ => {}
        }
        send.push(ev);
        for ev in send {
            if out.send(ev).await.is_err() {
                return Ok(report);
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_media_joins_chunks_and_needs_every_byte() {
        let media = [Chunk::new(100, &b"abcd"[..]), Chunk::new(104, &b"efgh"[..])];
        assert_eq!(read_media(&media, 102, 4).as_deref(), Some(&b"cdef"[..]));
        assert_eq!(read_media(&media, 100, 8).as_deref(), Some(&b"abcdefgh"[..]));
        assert_eq!(read_media(&media, 106, 4), None, "runs past the media seen");
        assert_eq!(read_media(&media, 90, 4), None, "before it");
        assert_eq!(read_media(&media, u64::MAX, 4), None);
    }
}
