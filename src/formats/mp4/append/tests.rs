//! Planner tests on synthetic files: real sample entries (from the committed corpus
//! recording), synthetic tables and small payloads, so that a thousand appends or every
//! crash state run in memory in a moment.

use std::io::Cursor;

use bytes::{Bytes, BytesMut};

use super::*;
use crate::codecs::CodecConfig;
use crate::formats::mp4::init::{write_mvhd, write_trak, TrakTiming};
use crate::formats::mp4::tables::TableBuilder;
use crate::formats::mp4::write::{close, open};
use crate::formats::plan::apply_in_memory;
use crate::model::{Edit, ParamOrigin, Track, TrackKind};

const CORPUS_1S: &[u8] = include_bytes!("../../../../tests/fixtures/tools/h264_aac_reference_1s.mp4");

/// (size, duration, composition offset, sync)
type S = (u32, u32, i32, bool);

#[derive(Clone)]
struct SynthTrack {
    kind: TrackKind,
    timescale: u32,
    entry: Bytes,
    edits: Vec<Edit>,
    samples: Vec<S>,
}

fn corpus_entries() -> (Bytes, Bytes) {
    let data = InputData::read(&mut Cursor::new(CORPUS_1S), CORPUS_1S.len() as u64).unwrap();
    let index = InputIndex::build(&data, "corpus").unwrap();
    (index.tracks[0].entries[0].bytes.clone(), index.tracks[1].entries[0].bytes.clone())
}

/// `seconds` of 30 fps video with B-frames (delay 2 frames, keyframe every 60) and AAC-like
/// audio at 48 kHz, with edit lists like FFmpeg's.
fn av_tracks(seconds: u32, seed: u32) -> Vec<SynthTrack> {
    let (v, a) = corpus_entries();
    let frames = 30 * seconds;
    let video: Vec<S> = (0..frames)
        .map(|i| {
            let cts = match i % 3 {
                0 => 1024,
                1 => 1536,
                _ => 512,
            };
            (20 + (i * 7 + seed) % 13, 512, cts, i % 60 == 0)
        })
        .collect();
    let audio: Vec<S> =
        (0..(48_000 * seconds).div_ceil(1024) + 1).map(|i| (6 + (i + seed) % 5, 1024, 0, true)).collect();
    let movie = |media: u32, ts: u32| media as u64 * 1000 / ts as u64;
    vec![
        SynthTrack {
            kind: TrackKind::Video,
            timescale: 15360,
            entry: v,
            edits: vec![Edit {
                segment_duration_movie_ticks: movie(frames * 512, 15360),
                media_time_ticks: 1024,
                media_rate_integer: 1,
            }],
            samples: video,
        },
        SynthTrack {
            kind: TrackKind::Audio,
            timescale: 48_000,
            entry: a,
            edits: vec![Edit {
                segment_duration_movie_ticks: movie(48_000 * seconds, 48_000),
                media_time_ticks: 1024,
                media_rate_integer: 1,
            }],
            samples: audio,
        },
    ]
}

/// Payload of sample `i` of track `t` of file `seed`: recognizable bytes.
fn payload(seed: u32, t: usize, i: usize, size: u32) -> Vec<u8> {
    (0..size).map(|k| (seed as usize * 31 + t * 131 + i * 7 + k as usize) as u8).collect()
}

/// A progressive MP4: chunks of `per_chunk` samples, interleaved by time, `moov` first or last.
fn synth_file(tracks: &[SynthTrack], seed: u32, faststart: bool, per_chunk: usize) -> Vec<u8> {
    let movie_ts = 1000u32;
    // Chunks: (start seconds, track, sample range).
    let mut chunks = Vec::new();
    for (t, tr) in tracks.iter().enumerate() {
        let mut dts = 0u64;
        for (c, group) in tr.samples.chunks(per_chunk).enumerate() {
            chunks.push((dts as f64 / tr.timescale as f64, t, c * per_chunk..c * per_chunk + group.len()));
            dts += group.iter().map(|s| s.1 as u64).sum::<u64>();
        }
    }
    chunks.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap().then(a.1.cmp(&b.1)));
    let mut media = Vec::new();
    let mut offsets = Vec::new();
    for (_, t, range) in &chunks {
        offsets.push(media.len() as u64);
        for i in range.clone() {
            media.extend(payload(seed, *t, i, tracks[*t].samples[i].0));
        }
    }
    let mut ftyp = BytesMut::new();
    crate::formats::mp4::init::write_ftyp(&mut ftyp, b"isom", &[b"isom", b"iso2", b"mp41"]);
    let build_moov = |media_start: u64| -> Bytes {
        let mut buf = BytesMut::new();
        let m = open(&mut buf, b"moov");
        let durations: Vec<u64> = tracks
            .iter()
            .map(|t| t.samples.iter().map(|s| s.1 as u64).sum::<u64>() * 1000 / t.timescale as u64)
            .collect();
        write_mvhd(&mut buf, movie_ts, durations.iter().copied().max().unwrap_or(0), tracks.len() as u32 + 1);
        for (t, tr) in tracks.iter().enumerate() {
            let mut tb = TableBuilder::new();
            for ((_, ct, range), off) in chunks.iter().zip(&offsets) {
                if *ct != t {
                    continue;
                }
                tb.start_chunk(media_start + off, 1);
                for s in &tr.samples[range.clone()] {
                    tb.push(s.0, s.1, s.2, s.3);
                }
            }
            let track = Track {
                input_id: t as u64 + 1,
                kind: tr.kind,
                timescale: tr.timescale,
                codec: CodecConfig::Unknown { fourcc: *b"test", dims: None, audio: None },
                language: *b"und",
                edits: tr.edits.clone(),
                movie_timescale: movie_ts,
                origin: ParamOrigin::Stream,
                mp4_sample_entry: Some(tr.entry.clone()),
                meta: Default::default(),
            };
            let timing = TrakTiming {
                duration_movie: durations[t],
                duration_media: tr.samples.iter().map(|s| s.1 as u64).sum(),
                movie_timescale: movie_ts,
                created: 0,
            };
            write_trak(&mut buf, t, &track, &timing, |b| tb.write(b)).unwrap();
        }
        close(&mut buf, m);
        buf.freeze()
    };
    let mut out = ftyp.to_vec();
    if faststart {
        let len = build_moov(0).len() as u64;
        let moov = build_moov(out.len() as u64 + len + 8);
        out.extend_from_slice(&moov);
        out.extend_from_slice(&((media.len() + 8) as u32).to_be_bytes());
        out.extend_from_slice(b"mdat");
        out.extend(media);
    } else {
        let start = out.len() as u64 + 8;
        out.extend_from_slice(&((media.len() + 8) as u32).to_be_bytes());
        out.extend_from_slice(b"mdat");
        out.extend(media);
        out.extend_from_slice(&build_moov(start));
    }
    out
}

fn data(bytes: &[u8]) -> InputData {
    InputData::read(&mut Cursor::new(bytes), bytes.len() as u64).unwrap()
}

/// Per track: every sample's payload, decode time, composition time and sync flag, in
/// seconds-exact form (ticks and timescale), as a reader would present them.
type Content = Vec<(u32, Vec<(Vec<u8>, i64, i64, bool)>)>;

fn content(bytes: &[u8]) -> Result<Content, AppendError> {
    let index = InputIndex::build(&data(bytes), "state")?;
    let mut out = Vec::new();
    for (t, tr) in index.tracks.iter().enumerate() {
        let mut samples = Vec::new();
        let mut dts = 0i64;
        let mut pieces: Vec<_> = index.pieces.iter().filter(|p| p.track == t).collect();
        pieces.sort_by_key(|p| p.first);
        for p in pieces {
            let mut off = p.offset as usize;
            for s in &tr.samples[p.samples()] {
                samples.push((bytes[off..off + s.size as usize].to_vec(), dts, dts + s.cts as i64, s.sync));
                off += s.size as usize;
                dts += s.duration as i64;
            }
        }
        out.push((tr.timescale, samples));
    }
    Ok(out)
}

fn src<'a>(data: &'a InputData, name: &'a str) -> SourceInput<'a> {
    SourceInput { data, name, slice: ChunkSlice::All }
}

/// Runs a plan: in place on `target`, or into a new file. `inputs[0]` is TARGET as it was.
fn run(target: &mut Vec<u8>, inputs: &[&[u8]], plan: &Plan) -> u64 {
    match plan.mode {
        Mode::InPlace => apply_in_memory(target, inputs, &plan.steps),
        Mode::Rewrite(_) => {
            let mut out = Vec::new();
            let n = apply_in_memory(&mut out, inputs, &plan.steps);
            *target = out;
            n
        }
    }
}

fn append(target: &mut Vec<u8>, sources: &[&[u8]], options: &AppendOptions) -> Plan {
    let td = data(target);
    let sds: Vec<InputData> = sources.iter().map(|s| data(s)).collect();
    let names: Vec<String> = (0..sources.len()).map(|i| format!("source{i}")).collect();
    let ins: Vec<SourceInput<'_>> = sds.iter().zip(&names).map(|(d, n)| src(d, n)).collect();
    let plan = plan(&td, "target", ChunkSlice::All, &ins, options).unwrap();
    let snapshot = target.clone();
    let mut inputs: Vec<&[u8]> = vec![&snapshot];
    inputs.extend_from_slice(sources);
    run(target, &inputs, &plan);
    plan
}

/// The content of `a` followed by `b`'s, as the join rules make it for tracks without
/// timescale changes: decode times continue; composition offsets are kept (same delays).
fn joined(a: &Content, b: &Content) -> Content {
    a.iter()
        .zip(b)
        .map(|((ts, x), (_, y))| {
            let end = x.last().map_or(0, |l| l.1) + x.windows(2).last().map_or(0, |w| w[1].1 - w[0].1);
            let mut v = x.clone();
            v.extend(y.iter().map(|(p, d, c, s)| (p.clone(), d + end, c + end, *s)));
            (*ts, v)
        })
        .collect()
}

#[test]
fn first_append_rewrites_then_appends_in_place() {
    let a = synth_file(&av_tracks(2, 1), 1, false, 10);
    let b = synth_file(&av_tracks(1, 2), 2, true, 10);
    let mut target = a.clone();
    let plan = append(&mut target, &[&b], &AppendOptions::default());
    assert_eq!(plan.mode, Mode::Rewrite("TARGET's index is after its media".into()));
    assert_eq!(content(&target).unwrap(), joined(&content(&a).unwrap(), &content(&b).unwrap()));
    assert!(Slots::detect(&data(&target).top, target.len() as u64).is_some());

    let before = content(&target).unwrap();
    let plan = append(&mut target, &[&b], &AppendOptions::default());
    assert_eq!(plan.mode, Mode::InPlace);
    assert!(plan.bytes_written() <= plan.media_bytes + plan.index_bytes + 4096, "{plan:?}");
    let media: usize = content(&b).unwrap().iter().flat_map(|t| t.1.iter().map(|s| s.0.len())).sum();
    assert_eq!(plan.media_bytes, media as u64);
    assert_eq!(content(&target).unwrap(), joined(&before, &content(&b).unwrap()));
}

#[test]
fn edit_lists_are_extended_to_the_last_clip_end() {
    let a = synth_file(&av_tracks(2, 1), 1, true, 10);
    let b = synth_file(&av_tracks(1, 2), 2, true, 10);
    let mut target = a.clone();
    append(&mut target, &[&b, &b], &AppendOptions::default());
    let index = InputIndex::build(&data(&target), "t").unwrap();
    // Video: 4 s of frames; the edit starts at the delay and shows all of them.
    assert_eq!(
        index.tracks[0].edits,
        vec![Edit { segment_duration_movie_ticks: 4000, media_time_ticks: 1024, media_rate_integer: 1 }]
    );
    // Audio: each clip has 1 s of sound plus priming and padding; the edit ends where the
    // last clip's own edit ends.
    let per_clip = |s: u32| ((48_000 * s).div_ceil(1024) + 1) as i64 * 1024;
    let last_start = per_clip(2) + per_clip(1);
    let end = last_start + 1024 + 48_000;
    let want = ((end - 1024) * 1000 + 24_000) / 48_000;
    assert_eq!(index.tracks[1].edits[0].segment_duration_movie_ticks, want as u64);
}

#[test]
fn crash_at_any_step_leaves_the_old_or_the_new_file() {
    let a = synth_file(&av_tracks(2, 1), 1, false, 10);
    let b = synth_file(&av_tracks(1, 2), 2, false, 10);
    let c = synth_file(&av_tracks(1, 3), 3, true, 7);
    let mut target = a.clone();
    append(&mut target, &[&b], &AppendOptions { future_frames: 600, ..Default::default() });
    let old = content(&target).unwrap();

    // Drop TARGET's last chunk, append two sources (several copies before the first sync).
    let (td, bd, cd) = (data(&target), data(&b), data(&c));
    let sources =
        [src(&bd, "b"), SourceInput { data: &cd, name: "c", slice: ChunkSlice::Range { start: Some(1), stop: None } }];
    let plan =
        plan(&td, "t", ChunkSlice::Range { start: None, stop: Some(-1) }, &sources, &AppendOptions::default()).unwrap();
    assert_eq!(plan.mode, Mode::InPlace);
    let inputs: Vec<&[u8]> = vec![&target, &b, &c];
    let mut new_file = target.clone();
    apply_in_memory(&mut new_file, &inputs, &plan.steps);
    let new = content(&new_file).unwrap();
    assert_ne!(old, new);

    let groups: Vec<&[Step]> = plan.steps.split(|s| *s == Step::Sync).collect();
    assert!(groups[0].len() >= 3, "several writes before the first barrier: {:?}", groups[0].len());
    let mut states = 0;
    let mut saw = [false, false];
    for g in 0..groups.len() {
        let mut base = target.clone();
        for done in &groups[..g] {
            apply_in_memory(&mut base, &inputs, done);
        }
        let w = groups[g];
        // Any subset of the group's writes may have reached the disk, the last one maybe torn.
        for mask in 0u32..(1 << w.len()) {
            for torn in [false, true] {
                let mut state = base.clone();
                let chosen: Vec<&Step> = (0..w.len()).filter(|i| mask & (1 << i) != 0).map(|i| &w[i]).collect();
                for (n, step) in chosen.iter().enumerate() {
                    let step = match (torn && n + 1 == chosen.len(), step) {
                        (true, Step::Write { offset, data }) if data.len() > 4 => {
                            Step::Write { offset: *offset, data: data.slice(..data.len() / 2) }
                        }
                        (true, Step::Copy { input, from, len, to }) => {
                            Step::Copy { input: *input, from: *from, len: len / 2, to: *to }
                        }
                        (_, s) => (*s).clone(),
                    };
                    apply_in_memory(&mut state, &inputs, std::slice::from_ref(&step));
                }
                let got = content(&state).unwrap_or_else(|e| panic!("group {g} mask {mask:b}: {e}"));
                assert!(got == old || got == new, "group {g} mask {mask:b} torn {torn}: neither old nor new");
                saw[(got == new) as usize] = true;
                states += 1;
            }
        }
    }
    assert!(saw[0] && saw[1] && states > 20, "{states} states");
}

#[test]
fn dropped_tail_and_crash_leftovers_are_cut_off() {
    let a = synth_file(&av_tracks(2, 1), 1, false, 10);
    let b = synth_file(&av_tracks(1, 2), 2, true, 10);
    let mut target = a.clone();
    append(&mut target, &[&b], &AppendOptions::default());
    let full = content(&target).unwrap();
    // A crashed append left media past the end.
    target.extend(std::iter::repeat_n(0xAB, 5000));
    let td = data(&target);
    let plan =
        plan(&td, "t", ChunkSlice::Range { start: None, stop: Some(-3) }, &[], &AppendOptions::default()).unwrap();
    assert_eq!(plan.mode, Mode::InPlace);
    assert!(matches!(plan.steps[plan.steps.len() - 2], Step::Truncate { .. }));
    let before_len = target.len();
    let snapshot = target.clone();
    apply_in_memory(&mut target, &[&snapshot], &plan.steps);
    assert!(target.len() < before_len - 5000);
    let got = content(&target).unwrap();
    let dropped: usize = full.iter().map(|t| t.1.len()).sum::<usize>() - got.iter().map(|t| t.1.len()).sum::<usize>();
    assert!(dropped > 0);
    for (g, f) in got.iter().zip(&full) {
        assert_eq!(g.1[..], f.1[..g.1.len()]);
    }
}

#[test]
fn a_slice_of_target_may_only_drop_its_end() {
    let a = synth_file(&av_tracks(1, 1), 1, true, 10);
    let td = data(&a);
    let e = plan(&td, "a.mp4", ChunkSlice::Range { start: Some(1), stop: None }, &[], &AppendOptions::default());
    assert!(matches!(e, Err(AppendError::Usage(ref m)) if m.contains("only drop chunks from its end")), "{e:?}");
    assert!(e.unwrap_err().is_usage());
}

#[test]
fn thousand_appends_of_one_second_rewrite_log_n_times() {
    let clip = synth_file(&av_tracks(1, 5), 5, false, 15);
    let mut target = clip.clone();
    let mut rewrites = 0;
    let mut worst_extra = 0i64;
    let mut first_rewrite_done = false;
    for n in 0..1000 {
        let plan = append(&mut target, &[&clip], &AppendOptions::default());
        match plan.mode {
            Mode::Rewrite(_) => {
                rewrites += 1;
                first_rewrite_done = true;
            }
            Mode::InPlace => {
                assert!(first_rewrite_done);
                let extra = plan.bytes_written() as i64 - (plan.media_bytes + plan.index_bytes) as i64;
                assert!(extra <= 4096, "append {n}: {extra} bytes beyond media and index");
                worst_extra = worst_extra.max(extra);
            }
        }
    }
    let index = InputIndex::build(&data(&target), "t").unwrap();
    assert_eq!(index.tracks[0].samples.len(), 1001 * 30);
    let bound = (1000f64).log2().floor() as usize + 2;
    eprintln!(
        "1000 appends of 1 s: {rewrites} rewrites (bound {bound}), in-place appends write at most {worst_extra} bytes \
         beyond media and index, final index {} bytes",
        index.moov.len()
    );
    assert!(rewrites <= bound, "{rewrites} rewrites");
}

#[test]
fn future_frames_reserve_room_up_front() {
    let clip = synth_file(&av_tracks(1, 5), 5, false, 15);
    let mut target = clip.clone();
    let plan = append(&mut target, &[&clip], &AppendOptions { future_frames: 30 * 100, ..Default::default() });
    assert!(matches!(plan.mode, Mode::Rewrite(_)));
    for _ in 0..95 {
        assert_eq!(append(&mut target, &[&clip], &AppendOptions::default()).mode, Mode::InPlace);
    }
}

#[test]
fn offsets_past_4_gib_use_co64_and_long_durations_version_1() {
    let mut tracks = av_tracks(1, 1);
    // Video in a timescale where a few samples last longer than 2^32 ticks.
    tracks[0].timescale = 1_000_000;
    tracks[0].edits.clear();
    for s in &mut tracks[0].samples {
        s.1 = 200_000_000;
    }
    let a = synth_file(&tracks, 1, true, 10);
    let td = data(&a);
    let ti = InputIndex::build(&td, "a").unwrap();
    let merge = Merge::new(vec![Clip { input: &ti, input_no: 0, chunks: 0..ti.chunks.len() }], false).unwrap();
    let out: Vec<OutPiece> = ti
        .chunks
        .iter()
        .flat_map(|c| c.clone())
        .map(|p| OutPiece { clip: 0, piece: p, offset: (5 << 30) + ti.pieces[p].offset })
        .collect();
    let (moov, _) = merge.build_moov(&out).unwrap();
    let movie = crate::formats::mp4::moov::parse_movie(&moov, 0, 8).unwrap();
    let offsets: Vec<u64> = movie.tracks[0].table.samples().map(|s| s.unwrap().offset).collect();
    assert!(offsets.iter().all(|&o| o > u32::MAX as u64));
    assert_eq!(offsets[0], (5 << 30) + ti.pieces.iter().find(|p| p.track == 0).unwrap().offset);
    assert!(moov.windows(4).any(|w| w == b"co64"));
    assert_eq!(movie.tracks[0].table.total_duration(), 30 * 200_000_000);
    let mdhd = moov.windows(4).position(|w| w == b"mdhd").unwrap();
    assert_eq!(moov[mdhd + 4], 1, "mdhd version 1 for a duration past 2^32");
}

#[test]
fn other_timescales_convert_exactly_or_widen_or_are_refused() {
    let a = synth_file(&av_tracks(1, 1), 1, true, 10);
    let td = data(&a);
    let convert = |ts: u32, dur: u32| {
        let mut t = av_tracks(1, 2);
        t[0].timescale = ts;
        t[0].edits.clear();
        t[0].samples.iter_mut().for_each(|s| {
            s.1 = dur;
            s.2 = 0;
        });
        synth_file(&t, 2, true, 10)
    };
    // 90 kHz: 3000 ticks a frame is 512 at 15360.
    let b = convert(90_000, 3000);
    let bd = data(&b);
    let p = plan(&td, "a", ChunkSlice::All, &[src(&bd, "b")], &AppendOptions::default()).unwrap();
    let mut out = Vec::new();
    apply_in_memory(&mut out, &[&a, &b], &p.steps);
    let c = content(&out).unwrap();
    assert_eq!(c[0].0, 15360);
    assert!(c[0].1.windows(2).all(|w| w[1].1 - w[0].1 == 512));
    // 1 kHz with 33 ms frames cannot be 15360 exactly: the track widens to 384000.
    let b = convert(1000, 33);
    let bd = data(&b);
    let p = plan(&td, "a", ChunkSlice::All, &[src(&bd, "b")], &AppendOptions::default()).unwrap();
    assert!(p.notes.iter().any(|n| n.contains("timescale changed from 15360 to 384000")), "{:?}", p.notes);
    let mut out = Vec::new();
    apply_in_memory(&mut out, &[&a, &b], &p.steps);
    let c = content(&out).unwrap();
    assert_eq!(c[0].0, 384_000);
    let steps: Vec<i64> = c[0].1.windows(2).map(|w| w[1].1 - w[0].1).collect();
    assert!(steps[..29].iter().all(|&d| d == 512 * 25) && steps[30..].iter().all(|&d| d == 33 * 384));
    // A prime timescale has no common multiple within 32 bits.
    let b = convert(4_294_967_291, 143_165_576);
    let bd = data(&b);
    let e = plan(&td, "a", ChunkSlice::All, &[src(&bd, "b")], &AppendOptions::default()).unwrap_err();
    assert!(e.to_string().contains("cannot be combined exactly"), "{e}");
}

#[test]
fn video_delay_differences_shift_composition_offsets() {
    let a = synth_file(&av_tracks(1, 1), 1, true, 10);
    let mut t = av_tracks(1, 2);
    t[0].edits.clear();
    t[0].samples.iter_mut().for_each(|s| s.2 = 0);
    let b = synth_file(&t, 2, true, 10);
    let mut target = a.clone();
    append(&mut target, &[&b], &AppendOptions::default());
    let c = content(&target).unwrap();
    // The source's frames (no B-frames) are shown after TARGET's delay like TARGET's own.
    for (_, dts, cts, _) in &c[0].1[30..] {
        assert_eq!(cts - dts, 1024);
    }
}

#[test]
fn incompatible_sources_are_refused_before_planning_writes() {
    let a = synth_file(&av_tracks(1, 1), 1, true, 10);
    let td = data(&a);
    // Audio only: track layout.
    let b = synth_file(&av_tracks(1, 2)[1..], 2, true, 10);
    let bd = data(&b);
    let e = plan(&td, "a", ChunkSlice::All, &[src(&bd, "b")], &AppendOptions::default()).unwrap_err();
    assert!(e.to_string().contains("track layouts differ"), "{e}");
    // Other resolution: patch the width of the visual sample entry.
    let mut t = av_tracks(1, 2);
    let mut entry = t[0].entry.to_vec();
    entry[32..34].copy_from_slice(&320u16.to_be_bytes());
    t[0].entry = entry.into();
    let b = synth_file(&t, 2, true, 10);
    let bd = data(&b);
    let e = plan(&td, "a", ChunkSlice::All, &[src(&bd, "b")], &AppendOptions::default()).unwrap_err();
    assert!(e.to_string().contains("resolutions differ: TARGET's is 640x360, the source's is 320x360"), "{e}");
    // Other codec: rename the entry.
    let mut t = av_tracks(1, 2);
    let mut entry = t[0].entry.to_vec();
    entry[4..8].copy_from_slice(b"hvc1");
    t[0].entry = entry.into();
    let b = synth_file(&t, 2, true, 10);
    let bd = data(&b);
    let e = plan(&td, "a", ChunkSlice::All, &[src(&bd, "b")], &AppendOptions::default()).unwrap_err();
    assert!(e.to_string().contains("codecs differ"), "{e}");
}

#[test]
fn other_h264_parameters_are_refused_or_get_a_second_sample_entry_when_asked() {
    let a = synth_file(&av_tracks(1, 1), 1, true, 10);
    let mut t = av_tracks(1, 2);
    // Change the last byte of the PPS inside avcC.
    let mut entry = t[0].entry.to_vec();
    let body = entry.windows(4).position(|w| w == b"avcC").unwrap() + 4;
    let sps_len = u16::from_be_bytes([entry[body + 6], entry[body + 7]]) as usize;
    let pps = body + 8 + sps_len + 1;
    let pps_len = u16::from_be_bytes([entry[pps], entry[pps + 1]]) as usize;
    entry[pps + 2 + pps_len - 1] ^= 0x01;
    t[0].entry = entry.into();
    let b = synth_file(&t, 2, true, 10);
    let (ad, bd) = (data(&a), data(&b));
    let e = plan(&ad, "a", ChunkSlice::All, &[src(&bd, "b")], &AppendOptions::default()).unwrap_err();
    assert!(e.to_string().contains("only made with --new-sample-entries"), "{e}");
    let mut target = a.clone();
    let p = append(&mut target, &[&b, &a], &AppendOptions { new_sample_entries: true, ..Default::default() });
    assert!(p.notes.iter().any(|n| n.contains("sample entry of their own")), "{:?}", p.notes);
    let index = InputIndex::build(&data(&target), "t").unwrap();
    assert_eq!(index.tracks[0].entries.len(), 2);
    assert_eq!(index.tracks[1].entries.len(), 1);
    let descs: Vec<u16> = index.tracks[0].samples.iter().map(|s| s.desc).collect();
    assert!(descs[..30].iter().all(|&d| d == 1) && descs[30..60].iter().all(|&d| d == 2));
    assert!(descs[60..].iter().all(|&d| d == 1));
}

#[test]
fn damaged_inputs_give_errors_not_panics() {
    let a = synth_file(&av_tracks(1, 1), 1, false, 10);
    let mut target = a.clone();
    append(&mut target, &[&a], &AppendOptions::default());
    let mut seed = 0x5eed_u64;
    let mut next = |below: usize| {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (seed >> 33) as usize % below
    };
    let mut errors = 0;
    for round in 0..400 {
        let base = if round % 2 == 0 { &a } else { &target };
        let mut bad = base.clone();
        match round % 4 {
            0 | 1 => {
                for _ in 0..1 + next(8) {
                    let i = next(bad.len());
                    bad[i] ^= 1 << next(8);
                }
            }
            2 => bad.truncate(next(bad.len())),
            _ => {
                // A size field of a box near the index.
                let i = next(bad.len() - 4) & !3;
                bad[i..i + 4].copy_from_slice(&(next(1 << 20) as u32).to_be_bytes());
            }
        }
        let Ok(bd) = InputData::read(&mut Cursor::new(&bad), bad.len() as u64) else {
            errors += 1;
            continue;
        };
        let good = data(&a);
        let as_target = plan(&bd, "bad", ChunkSlice::All, &[src(&good, "good")], &AppendOptions::default());
        let as_source = plan(&good, "good", ChunkSlice::All, &[src(&bd, "bad")], &AppendOptions::default());
        errors += as_target.is_err() as usize + as_source.is_err() as usize;
    }
    assert!(errors > 50, "damage was noticed ({errors} errors)");
}

#[test]
fn a_cut_inside_a_group_of_b_frames_does_not_overlap_the_next_clip() {
    // Chunks of 11 samples: the first video chunk ends with a frame shown after one that is
    // in the next chunk (decode order I P B: the cut keeps the P, drops its B).
    let a = synth_file(&av_tracks(2, 1), 1, true, 11);
    let (ad, td) = (data(&a), data(&a));
    let slice = |start, stop| ChunkSlice::Range { start: Some(start), stop: Some(stop) };
    let sources = [
        SourceInput { data: &ad, name: "a", slice: slice(0, 1) },
        SourceInput { data: &ad, name: "a", slice: slice(0, 3) },
    ];
    let p = plan(&td, "t", slice(0, -1), &sources, &AppendOptions::default()).unwrap();
    assert!(p.notes.iter().any(|n| n.contains("group of B-frames")), "{:?}", p.notes);
    let mut target = a.clone();
    run(&mut target, &[&a, &a, &a], &p);
    let c = content(&target).unwrap();
    let video = &c[0].1;
    // Decode times continue exactly (every frame lasts 512 ticks)...
    assert!(video.windows(2).all(|w| w[1].1 - w[0].1 == 512), "decode times continue");
    // ...and no two frames are shown at the same time.
    let mut pts: Vec<i64> = video.iter().map(|s| s.2).collect();
    pts.sort();
    assert!(pts.windows(2).all(|w| w[0] < w[1]), "presentation times overlap: {pts:?}");
    assert!(video.iter().all(|s| s.2 >= s.1));
    // The edit list shows up to the last frame.
    let index = InputIndex::build(&data(&target), "t").unwrap();
    let edit = index.tracks[0].edits[0];
    let shown = (pts.last().unwrap() + 512 - edit.media_time_ticks) as u64;
    assert_eq!(edit.segment_duration_movie_ticks, (shown * 1000 + 7680) / 15360, "{edit:?}");
}

#[test]
fn edit_and_duration_sums_past_64_bits_are_refused() {
    // TARGET's empty edit is almost 2^64 ticks: the track duration overflows.
    let mut t = av_tracks(1, 1);
    t[0].edits
        .insert(0, Edit { segment_duration_movie_ticks: u64::MAX - 10, media_time_ticks: -1, media_rate_integer: 1 });
    let a = synth_file(&t, 1, true, 10);
    let b = synth_file(&av_tracks(1, 2), 2, true, 10);
    let (ad, bd) = (data(&a), data(&b));
    let e = plan(&ad, "a", ChunkSlice::All, &[src(&bd, "b")], &AppendOptions::default()).unwrap_err();
    assert!(e.to_string().contains("does not fit 64 bits"), "{e}");
    // A media time near 2^63 in the source's edit: its end overflows.
    let mut t = av_tracks(1, 2);
    t[0].edits[0].media_time_ticks = i64::MAX - 100;
    let b = synth_file(&t, 2, true, 10);
    let bd = data(&b);
    let a = synth_file(&av_tracks(1, 1), 1, true, 10);
    let ad = data(&a);
    let e = plan(&ad, "a", ChunkSlice::All, &[src(&bd, "b")], &AppendOptions::default()).unwrap_err();
    assert!(e.to_string().contains("does not fit 64 bits"), "{e}");
}

#[test]
fn sample_counts_are_checked_against_the_file_before_allocating() {
    // A constant-size stsz claiming 2^25 samples of 7 bytes in a small file.
    let a = synth_file(&av_tracks(1, 1), 1, true, 10);
    let mut bad = a.clone();
    let at = bad.windows(4).rposition(|w| w == b"stsz").unwrap() - 4;
    // The audio track's stsz: make it constant (7 bytes) with 2^25 samples.
    bad[at + 12..at + 16].copy_from_slice(&7u32.to_be_bytes());
    bad[at + 16..at + 20].copy_from_slice(&(1u32 << 25).to_be_bytes());
    let e = InputIndex::build(&data(&bad), "bad").unwrap_err();
    assert!(e.to_string().contains("claims 33554432 samples of 7 bytes"), "{e}");
    assert!(e.to_string().contains(&format!("has only {} bytes", bad.len())), "{e}");
    // The largest claims, and the limit over all tracks.
    let check = super::index::check_sample_count;
    assert!(check(1, 1 << 25, Some(u32::MAX), 0, u64::MAX).is_ok());
    let e = check(1, 1 << 25, Some(u32::MAX), 0, 1000).unwrap_err();
    assert!(e.contains("(144115188042301440 bytes), but the file has only 1000 bytes"), "{e}");
    let e = check(3, 1 << 25, None, (1 << 26) - 10, u64::MAX).unwrap_err();
    assert!(e.contains("over 67108864 samples together"), "{e}");
}
