//! The codec-parameter policy, sans-IO: decides each track's codec parameters and emits
//! the track list into the stream of [`ContainerEvent`]s (see [`CodecParams`]).
//!
//! Parameters come from the stream's own header, or from a *reference*: a small complete
//! recording of the same source with the same settings (the "recapture"), whose sample
//! entries are right where the stream's are missing or garbage. The stream's `moov` is
//! forwarded unchanged, preceded by its parsed form ([`ContainerEvent::Movie`]) so that the
//! splitter does not parse it again; only codec parameters are taken from the reference,
//! never timing.
//!
//! Under `auto`, a stream's parameters are unusable when they do not parse, and also when
//! they disagree with the parameter sets the first sample carries in-band: the tracks are
//! then held back until that sample has gone by (a few hundred KB at the start of the
//! stream, at most [`MAX_CHECK_BYTES`]). The fragments parsed for that check go on parsed
//! ([`ContainerEvent::Fragment`]).
//!
//! Matroska input: Tracks, completed by each track's first keyframe where the codec keeps
//! its parameters in the bitstream (VP9, H.264 without CodecPrivate).

use std::sync::Arc;

use bytes::Bytes;

use super::failure::Failure;
use super::matroska::block::parse_block;
use super::matroska::ids as mkv_ids;
use super::matroska::reader::{elements, Element};
use super::matroska::tracks::{parse_tracks, SegmentInfo, TrackEntry};
use super::mp4::moof::parse_moof;
use super::mp4::moov::{parse_movie, Movie, Mp4Track};
use super::mp4::scan::layout::ScanLayout;
use super::mp4::FourCc;
use super::{ContainerEvent, ContainerKind, ElementKind, MetaUnit, ParsedFragment};
use crate::codecs::inband;
use crate::model::{Chunk, MovieMeta, ParamOrigin, Track, TrackKind, Tracks};
use crate::reference::{RefTrack, Reference};

/// Where codec parameters come from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
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
    movie: Arc<Movie>,
    /// Media seen since the `moov`: slices of the input, not copies.
    media: Vec<Chunk>,
    media_bytes: u64,
    /// Per movie track, the decode time after the fragments parsed so far, counted as the
    /// splitter counts it (from the end of the `moov`'s own samples), so that the parsed
    /// fragments can go on to it as they are.
    next_dts: Vec<i64>,
    held: Vec<ContainerEvent>,
    /// The input ended: decide with the samples at hand.
    ended: bool,
}

impl InbandCheck {
    fn new(chosen: Chosen, movie: Arc<Movie>) -> Self {
        let next_dts = movie.tracks.iter().map(|t| t.table.total_duration() as i64).collect();
        InbandCheck { chosen, movie, media: Vec::new(), media_bytes: 0, next_dts, held: Vec::new(), ended: false }
    }

    /// Looks at one more event: media is kept, and a fragment's `moof` says where a track's
    /// first sample is. A `moof` comes back parsed, for the splitter to use as it is.
    fn look_at(&mut self, ev: ContainerEvent) -> ContainerEvent {
        match ev {
            ContainerEvent::Media(c) if self.media_bytes < MAX_CHECK_BYTES => {
                self.media_bytes += c.data.len() as u64;
                self.media.push(c.clone());
                ContainerEvent::Media(c)
            }
            ContainerEvent::Meta(u) if u.kind == ElementKind::Mp4(FourCc::new(b"moof")) => {
                let mut next_dts = self.next_dts.clone();
                let Ok(samples) = parse_moof(&u.data, u.offset, u.header_len, &self.movie, &mut next_dts) else {
                    // The splitter meets the same error and reports it.
                    return ContainerEvent::Meta(u);
                };
                self.next_dts.clone_from(&next_dts);
                for check in self.chosen.to_check.iter_mut().filter(|c| c.samples.is_empty()) {
                    let own = samples.iter().filter(|s| s.track == check.movie_track).take(CHECK_SAMPLES);
                    check.samples = own.map(|s| (s.info.offset, s.info.size)).collect();
                }
                ContainerEvent::Fragment(Arc::new(ParsedFragment { unit: u, samples, next_dts }))
            }
            ContainerEvent::End(e) => {
                self.ended = true;
                ContainerEvent::End(e)
            }
            ev => ev,
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

    /// Ends the check, noting the tracks left unchecked; returns the parsed movie, the
    /// tracks and the held events.
    fn finish(mut self, notes: &mut Vec<String>) -> (Arc<Movie>, Tracks, Vec<ContainerEvent>) {
        notes.append(&mut self.chosen.notes);
        for check in &self.chosen.to_check {
            notes.push(format!(
                "track {}: its first sample did not come within {MAX_CHECK_BYTES} bytes of media; its codec parameters were not compared with the bitstream's",
                check.track + 1
            ));
        }
        (self.movie, Tracks::new(self.chosen.tracks, self.chosen.movie), self.held)
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
    /// The Tracks element the entries were read from, whole.
    element: Option<Bytes>,
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

    /// Reads what an event before the tracks says: Info, Tracks, Tags, a cover, first frames.
    fn look_at_event(&mut self, ev: &ContainerEvent) -> Result<(), Failure> {
        match ev {
            ContainerEvent::Meta(u) if u.kind == ElementKind::Ebml(mkv_ids::INFO) => {
                let body = &u.data[u.header_len as usize..];
                self.info = SegmentInfo::parse(body, u.offset + u.header_len as u64)?;
            }
            ContainerEvent::Meta(u) if u.kind == ElementKind::Ebml(mkv_ids::TRACKS) => {
                let body = &u.data[u.header_len as usize..];
                self.entries = parse_tracks(body, u.offset + u.header_len as u64)?;
                self.first_frames = vec![None; self.entries.len()];
                self.element = Some(u.data.clone());
            }
            ContainerEvent::Meta(u) if u.kind == ElementKind::Ebml(mkv_ids::TAGS) => {
                let body = &u.data[u.header_len as usize..];
                self.tags.extend(super::matroska::meta::parse_global_tags(body, u.offset + u.header_len as u64));
            }
            ContainerEvent::Meta(u) if u.kind == ElementKind::Ebml(mkv_ids::ATTACHMENTS) && self.cover.is_none() => {
                self.cover = super::matroska::meta::parse_cover(&u.data, u.header_len as usize, u.offset);
            }
            ContainerEvent::Media(c) if !self.entries.is_empty() => {
                for e in elements(c.offset, &c.data).map_while(Result::ok) {
                    self.look_at(&e);
                }
            }
            _ => {}
        }
        Ok(())
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

/// The codec-parameter policy over a stream of [`ContainerEvent`]s: takes the reader's
/// events, gives them on with `Movie`/`Tracks` (and `Unindexed`) put in where the tracks
/// are decided. Events may be held back meanwhile (the in-band check, a Matroska track
/// waiting for its first keyframe); they come out in order.
pub struct CodecParams {
    policy: ParamPolicy,
    reference: Option<Arc<Reference>>,
    notes: Vec<String>,
    have_tracks: bool,
    media_bytes: u64,
    unindexed: bool,
    mkv: Option<MatroskaParams>,
    /// Under `auto`, the tracks wait here until their first samples have been compared
    /// with their codec parameters.
    pending: Option<InbandCheck>,
    /// The `moov` (or Matroska Tracks element) the tracks were decided from, whole, and
    /// for a `moov` its parsed form: a later one is compared with it (see
    /// [`CodecParams::repeated_init`]).
    init: Option<(Bytes, Option<Arc<Movie>>)>,
}

impl CodecParams {
    /// Parameters chosen by `policy`; `reference` is needed by every policy but `Stream`.
    pub fn new(policy: ParamPolicy, reference: Option<Arc<Reference>>) -> Result<Self, Failure> {
        if reference.is_none() && policy != ParamPolicy::Stream {
            return Err(Failure::Config(
                "params = reference or auto needs a reference recording (reference = FILE, or --reference)".into(),
            ));
        }
        Ok(CodecParams {
            policy,
            reference,
            notes: Vec::new(),
            have_tracks: false,
            media_bytes: 0,
            unindexed: false,
            mkv: None,
            pending: None,
            init: None,
        })
    }

    /// What the policy decided that the user should know (parameters replaced, tracks left out).
    pub fn take_notes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notes)
    }

    /// Takes one event; appends to `out` what can go on.
    pub fn push(&mut self, ev: ContainerEvent, out: &mut Vec<ContainerEvent>) -> Result<(), Failure> {
        if ev == ContainerEvent::Container(ContainerKind::Matroska) {
            if self.reference.is_some() {
                self.notes.push("the reference is not used for Matroska input: its own Tracks describe it".into());
            }
            self.mkv = Some(MatroskaParams::default());
        }
        if let ContainerEvent::Meta(m) = &ev {
            if self.init.is_some() && (is_moov(m) || m.kind == ElementKind::Ebml(mkv_ids::TRACKS)) {
                return self.repeated_init(m);
            }
        }
        if self.mkv.is_some() && !self.have_tracks {
            return self.push_matroska(ev, out);
        }
        let ev = match self.pending.as_mut() {
            Some(check) => {
                let ev = check.look_at(ev);
                let end = matches!(ev, ContainerEvent::End(_));
                if !check.settle() && !check.gave_up() && !end {
                    check.held.push(ev);
                    return Ok(());
                }
                // Settled: the tracks, what was held, then this event as usual.
                let (movie, tracks, held) = self.pending.take().expect("checked").finish(&mut self.notes);
                out.push(ContainerEvent::Movie(movie));
                out.push(ContainerEvent::Tracks(Arc::new(tracks)));
                out.extend(held);
                ev
            }
            None => ev,
        };
        self.push_mp4(ev, out)
    }

    fn push_mp4(&mut self, ev: ContainerEvent, out: &mut Vec<ContainerEvent>) -> Result<(), Failure> {
        match &ev {
            ContainerEvent::Meta(m) if is_moov(m) && !self.have_tracks => {
                let movie = Arc::new(parse_movie(&m.data, m.offset, m.header_len)?);
                let chosen = choose_tracks(&movie, self.reference.as_deref(), self.policy)?;
                self.have_tracks = true;
                self.init = Some((m.data.clone(), Some(movie.clone())));
                let mut check = InbandCheck::new(chosen, movie);
                if !check.settle() {
                    check.held.push(ev);
                    self.pending = Some(check);
                    return Ok(());
                }
                let (movie, tracks, _) = check.finish(&mut self.notes);
                out.push(ContainerEvent::Movie(movie));
                out.push(ContainerEvent::Tracks(Arc::new(tracks)));
            }
            // An index after media that was scanned without one: the splitter still holds
            // the scanned packets unless there were too many, and then uses this index
            // instead. Its tracks go first, chosen as for an index that comes first.
            ContainerEvent::Meta(m) if is_moov(m) && self.unindexed => {
                let chosen =
                    parse_movie(&m.data, m.offset, m.header_len).map_err(|e| e.to_string()).and_then(|movie| {
                        let chosen = choose_tracks(&movie, self.reference.as_deref(), self.policy);
                        chosen.map(|c| (movie, c)).map_err(|e| e.to_string())
                    });
                match chosen {
                    Ok((movie, mut chosen)) => {
                        self.notes.append(&mut chosen.notes);
                        let movie = Arc::new(movie);
                        self.init = Some((m.data.clone(), Some(movie.clone())));
                        out.push(ContainerEvent::Movie(movie));
                        out.push(ContainerEvent::Tracks(Arc::new(Tracks::new(chosen.tracks, chosen.movie))));
                    }
                    Err(e) => self.notes.push(format!(
                        "a 'moov' index arrived at offset {} after the media was split without one; it cannot be used: {e}",
                        m.offset
                    )),
                }
            }
            // Media before any index, with a reference: the index may never come (a
            // recorder that crashed or is still recording), so the media is split with
            // the reference's layout as it arrives.
            ContainerEvent::MediaStart(_) if !self.have_tracks && self.reference.is_some() => {
                let r = self.reference.as_ref().expect("checked");
                let (tracks, layout) = unindexed_tracks(r)?;
                self.notes.push(format!(
                    "media starts before any 'moov' index: splitting it with the track layout of {}",
                    r.path.display()
                ));
                self.have_tracks = true;
                self.unindexed = true;
                out.push(ContainerEvent::Unindexed(Arc::new(layout)));
                out.push(ContainerEvent::Tracks(Arc::new(tracks.into())));
            }
            ContainerEvent::Media(c) => self.media_bytes += c.data.len() as u64,
            ContainerEvent::End(_) if !self.have_tracks && self.reference.is_some() => {
                return Err(Failure::Other(
                    "the input holds no media ('mdat' box) and no 'moov' index: nothing to recover".into(),
                ));
            }
            ContainerEvent::End(_) if !self.have_tracks => {
                return Err(Failure::MissingMoov { media_bytes: self.media_bytes });
            }
            _ => {}
        }
        out.push(ev);
        Ok(())
    }

    /// A Matroska event before the tracks are known.
    fn push_matroska(&mut self, ev: ContainerEvent, out: &mut Vec<ContainerEvent>) -> Result<(), Failure> {
        let m = self.mkv.as_mut().expect("checked");
        m.look_at_event(&ev)?;
        let media = matches!(ev, ContainerEvent::MediaStart(_) | ContainerEvent::Media(_));
        let end = matches!(ev, ContainerEvent::End(_));
        if (media && !m.entries.is_empty() && m.ready()) || (end && !m.entries.is_empty()) {
            let tracks = m.tracks(&mut self.notes)?;
            self.have_tracks = true;
            self.init = m.element.clone().map(|e| (e, None));
            out.push(ContainerEvent::Tracks(Arc::new(tracks)));
            out.append(&mut m.held);
        } else if media || !m.held.is_empty() {
            // Everything held counts, Tracks known or not, empty Clusters too.
            m.held_bytes += held_cost(&ev);
            if m.held_bytes > MAX_HELD_BYTES {
                let why = if m.entries.is_empty() { "no Tracks element" } else { "no keyframe describing every track" };
                return Err(Failure::Unsupported(format!(
                    "{why} in the first {MAX_HELD_BYTES} bytes of media (livemux holds no more than that)"
                )));
            }
            if end {
                return Err(Failure::Unsupported("the Matroska input has no Tracks element".into()));
            }
            m.held.push(ev);
            return Ok(());
        } else if end {
            return Err(Failure::Unsupported("the Matroska input has no Tracks element".into()));
        }
        out.push(ev);
        Ok(())
    }
}

impl CodecParams {
    /// A `moov` or Tracks element after the one the tracks were decided from. The same
    /// bytes again (a recorder that reconnects sends its init segment again) are dropped;
    /// one describing other tracks is an error naming the first track that differs: the
    /// packets after it cannot be cut or written with the tracks already given out.
    fn repeated_init(&mut self, m: &MetaUnit) -> Result<(), Failure> {
        let (first, movie) = self.init.as_ref().expect("checked");
        let what = if is_moov(m) { "'moov' index" } else { "Tracks element" };
        if m.data == *first {
            self.notes.push(format!("the {what} came again at offset {}, unchanged: ignored", m.offset));
            return Ok(());
        }
        let change = match movie {
            Some(old) => movie_change(old, &parse_movie(&m.data, m.offset, m.header_len)?),
            None => {
                let old = self.mkv.as_ref().map(|p| p.entries.as_slice()).unwrap_or_default();
                let at = m.offset + m.header_len as u64;
                entries_change(old, &parse_tracks(&m.data[m.header_len as usize..], at)?)
            }
        };
        match change {
            Some(e) => Err(e.into()),
            None => {
                self.notes.push(format!(
                    "the {what} came again at offset {}, with other bytes but the same tracks: ignored",
                    m.offset
                ));
                Ok(())
            }
        }
    }
}

/// The first audio or video track (counted as the track list counts them) that differs
/// between two lists, and what differs; `None` when they describe the same tracks.
fn first_change<T>(
    old: &[&T],
    new: &[&T],
    differs: impl Fn(&T, &T) -> Option<&'static str>,
) -> Option<crate::formats::MuxError> {
    if old.len() != new.len() {
        let what = format!("the track count ({} then {})", old.len(), new.len());
        return Some(crate::formats::MuxError::TracksChanged { track: old.len().min(new.len()), what });
    }
    old.iter().zip(new).enumerate().find_map(|(i, (a, b))| {
        differs(a, b).map(|what| crate::formats::MuxError::TracksChanged { track: i, what: what.into() })
    })
}

/// How a later `moov` differs from the first (see [`first_change`]).
fn movie_change(old: &Movie, new: &Movie) -> Option<crate::formats::MuxError> {
    fn av(m: &Movie) -> Vec<&Mp4Track> {
        m.tracks.iter().filter(|t| t.kind != TrackKind::Other).collect()
    }
    let change = first_change(&av(old), &av(new), |a: &Mp4Track, b: &Mp4Track| {
        Some(if a.kind != b.kind || a.track_id != b.track_id {
            "the track kind"
        } else if a.codec != b.codec || a.sample_entry != b.sample_entry {
            "the codec parameters"
        } else if a.timescale != b.timescale {
            "the timescale"
        } else if a != b {
            "the track description"
        } else {
            return None;
        })
    });
    let movie_differs = old.timescale != new.timescale || old.fragmented != new.fragmented;
    change.or_else(|| {
        movie_differs.then(|| crate::formats::MuxError::TracksChanged {
            track: 0,
            what: "the movie's timescale or fragmentation".into(),
        })
    })
}

/// How a later Tracks element differs from the first (see [`first_change`]).
fn entries_change(old: &[TrackEntry], new: &[TrackEntry]) -> Option<crate::formats::MuxError> {
    fn av(e: &[TrackEntry]) -> Vec<&TrackEntry> {
        e.iter().filter(|t| t.kind() != TrackKind::Other).collect()
    }
    first_change(&av(old), &av(new), |a: &TrackEntry, b: &TrackEntry| {
        Some(if a.track_type != b.track_type || a.number != b.number {
            "the track kind"
        } else if a.codec_id != b.codec_id || a.private != b.private {
            "the codec parameters"
        } else if a != b {
            "the track description"
        } else {
            return None;
        })
    })
}

fn is_moov(m: &MetaUnit) -> bool {
    m.kind == ElementKind::Mp4(FourCc::new(b"moov"))
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
