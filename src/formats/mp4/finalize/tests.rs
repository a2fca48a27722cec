//! Finalize on files the muxer writes: both layouts, the crash-safe order, edits.

use super::*;
use crate::codecs::{CodecConfig, Dimensions};
use crate::formats::fragmenter::FragmentPolicy;
use crate::formats::mp4::file::top_level;
use crate::formats::mp4::moof::FragSample;
use crate::formats::mp4::moov::parse_movie;
use crate::formats::mp4::regular::RegularMp4Muxer;
use crate::formats::mp4::sample_table::SampleInfo;
use crate::formats::mp4::write::{close, open};
use crate::formats::Muxer;
use crate::formats::WriteStep;
use crate::model::Edit;
use crate::model::{FragmentKind, Packet, Track, TrackKind};
use bytes::{BufMut, Bytes, BytesMut};
use std::io::Cursor;
use std::sync::Arc;

fn track(kind: TrackKind, timescale: u32, edits: Vec<Edit>) -> Track {
    let (codec, entry) = match kind {
        TrackKind::Video => (CodecConfig::Vp8 { dims: Dimensions { width: 64, height: 48 } }, None),
        _ => {
            // An audio entry livemux does not know: written back verbatim.
            let mut e = vec![0, 0, 0, 36, b'x', b'a', b'u', b'd', 0, 0, 0, 0, 0, 0, 0, 1];
            e.extend_from_slice(&[0; 8]);
            e.extend_from_slice(&[0, 2, 0, 16, 0, 0, 0, 0, 0xBB, 0x80, 0, 0]);
            (CodecConfig::Unknown { fourcc: *b"xaud", dims: None, audio: None }, Some(Bytes::from(e)))
        }
    };
    Track { edits, mp4_sample_entry: entry, ..Track::for_test(kind, timescale, codec) }
}

/// Video at 30 fps (every 30th a keyframe, some B-frame-like offsets, one negative)
/// and audio at 48 kHz in 1024-sample frames, interleaved by time, `secs` long.
fn packets(secs: i64, audio_start: i64) -> Vec<Packet> {
    let mut out = Vec::new();
    let mut n = 0u8;
    let mut payload = |len: usize| {
        n = n.wrapping_add(1);
        Bytes::from(vec![n; len])
    };
    let (mut v, mut a) = (0i64, 0i64);
    while v < secs * 30 || a * 1024 < secs * 48_000 {
        let v_time = v * 1000 / 30;
        let a_time = audio_start * 1000 / 48_000 + a * 1024 * 1000 / 48_000;
        if v < secs * 30 && (v_time <= a_time || a * 1024 >= secs * 48_000) {
            let dts = v * 512;
            let cts = match v % 3 {
                1 => 1024,
                2 if v == 5 => -256,
                _ => 0,
            };
            out.push(Packet {
                track: 0,
                dts_ticks: dts,
                pts_ticks: dts + cts,
                duration_ticks: 512,
                keyframe: v % 30 == 0,
                data: payload(100 + (v as usize * 7) % 50).into(),
            });
            v += 1;
        } else {
            let dts = audio_start + a * 1024;
            out.push(Packet {
                track: 1,
                dts_ticks: dts,
                pts_ticks: dts,
                duration_ticks: 1024,
                keyframe: true,
                data: payload(20 + (a as usize % 5)).into(),
            });
            a += 1;
        }
    }
    out
}

struct Muxed {
    /// The file as written while recording.
    recorded: Vec<u8>,
    steps: Vec<WriteStep>,
    notes: Vec<String>,
}

fn mux(tracks: Vec<Track>, packets: &[Packet], reserve: u64) -> Muxed {
    let mut m = RegularMp4Muxer::with_reserve_bytes(Arc::new(tracks.into()), FragmentPolicy::default(), reserve, 64);
    let mut frags = vec![m.header().unwrap()];
    for p in packets {
        frags.extend(m.push(p.clone()).unwrap());
    }
    frags.extend(m.finish().unwrap());
    let mut recorded = Vec::new();
    let mut steps = Vec::new();
    for f in frags {
        if f.kind == FragmentKind::Finalize {
            steps.push(WriteStep::Write { offset: f.offset, data: f.to_bytes() });
        } else {
            assert_eq!(f.offset, recorded.len() as u64);
            recorded.extend_from_slice(&f.to_bytes());
        }
    }
    Muxed { recorded, steps, notes: m.notes() }
}

fn apply(file: &mut Vec<u8>, steps: &[WriteStep]) {
    crate::formats::plan::apply_in_memory(file, &[], steps);
}

/// The samples of a regular file, per track, read with the crate's table reader.
fn regular_samples(file: &[u8]) -> Vec<Vec<SampleInfo>> {
    let boxes = top_level(&mut Cursor::new(file), file.len() as u64).unwrap();
    let names: Vec<_> = boxes.iter().map(|(_, h)| h.fourcc.to_string()).collect();
    assert!(names.iter().all(|n| n != "moof" && n != "free"), "{names:?}");
    assert_eq!(boxes.iter().filter(|(_, h)| h.fourcc.0 == *b"moov").count(), 1, "{names:?}");
    let Scanned::Regular { .. } = scan(&mut Cursor::new(file), file.len() as u64).unwrap() else {
        panic!("not regular: {names:?}")
    };
    let (offset, hl, moov) =
        crate::formats::mp4::file::read_moov(&mut Cursor::new(file), file.len() as u64).unwrap().unwrap();
    let movie = parse_movie(&moov, offset, hl).unwrap();
    assert!(!movie.fragmented);
    movie.tracks.iter().map(|t| t.table.samples().map(|s| s.unwrap()).collect()).collect()
}

/// Every packet is in the regular file with its bytes, times and flags.
fn check_packets(file: &[u8], packets: &[Packet]) {
    let samples = regular_samples(file);
    for (track, samples) in samples.iter().enumerate() {
        let expected: Vec<&Packet> = packets.iter().filter(|p| p.track == track).collect();
        assert_eq!(samples.len(), expected.len(), "track {track}");
        for (s, p) in samples.iter().zip(expected) {
            let at = s.offset as usize;
            assert_eq!(&file[at..at + s.size as usize], &p.data.contiguous()[..], "track {track} {s:?}");
            assert_eq!(s.dts, p.dts_ticks - expected_first(packets, track), "track {track} {s:?}");
            assert_eq!(s.cts_offset, p.pts_ticks - p.dts_ticks);
            assert_eq!(s.sync, p.keyframe);
        }
    }
}

fn expected_first(packets: &[Packet], track: usize) -> i64 {
    packets.iter().find(|p| p.track == track).unwrap().dts_ticks
}

#[test]
fn faststart_when_the_index_fits_the_reserve() {
    let packets = packets(5, 0);
    let tracks = vec![track(TrackKind::Video, 15360, vec![]), track(TrackKind::Audio, 48000, vec![])];
    let m = mux(tracks, &packets, 64 << 10);
    assert!(m.notes.iter().any(|n| n.contains("faststart")), "{:?}", m.notes);
    // Two writes: moov body + mdat header inside the free box, then the 8-byte switch.
    assert_eq!(m.steps.len(), 2);
    let WriteStep::Write { offset: f, data } = &m.steps[1] else { panic!() };
    assert_eq!((data.len(), &data[4..8]), (8, &b"moov"[..]));
    let mut file = m.recorded.clone();
    apply(&mut file, &m.steps);
    assert_eq!(file.len(), m.recorded.len(), "nothing appended");
    let boxes = top_level(&mut Cursor::new(&file), file.len() as u64).unwrap();
    let kinds: Vec<_> = boxes.iter().map(|(o, h)| (h.fourcc.to_string(), *o)).collect();
    assert_eq!(kinds[1], ("moov".to_string(), *f), "{kinds:?}");
    assert_eq!(kinds[2].0, "mdat", "{kinds:?}");
    assert_eq!(kinds.len(), 3, "{kinds:?}");
    check_packets(&file, &packets);
    // Only bytes inside the reserved box were written.
    let end = m.steps.iter().map(|s| match s {
        WriteStep::Write { offset, data } => offset + data.len() as u64,
        _ => 0,
    });
    assert!(end.max().unwrap() <= f + (64 << 10));
}

#[test]
fn moov_at_the_end_without_reserve_or_room() {
    let packets = packets(5, 0);
    for reserve in [0, 200] {
        let tracks = vec![track(TrackKind::Video, 15360, vec![]), track(TrackKind::Audio, 48000, vec![])];
        let m = mux(tracks, &packets, reserve);
        assert!(m.notes.iter().any(|n| n.contains("moov at the end")), "{:?}", m.notes);
        let mut file = m.recorded.clone();
        apply(&mut file, &m.steps);
        let WriteStep::Write { offset, data } = &m.steps[1] else { panic!() };
        assert_eq!((data.len(), &data[4..8]), (16, &b"mdat"[..]));
        let ftyp = u32::from_be_bytes(m.recorded[..4].try_into().unwrap()) as u64;
        assert_eq!(*offset, ftyp, "the switch is over the free box or the moov right after ftyp");
        check_packets(&file, &packets);
    }
}

#[test]
fn the_file_plan_equals_the_muxer_plan() {
    let packets = packets(4, 0);
    for reserve in [0, 64 << 10] {
        let tracks = vec![track(TrackKind::Video, 15360, vec![]), track(TrackKind::Audio, 48000, vec![])];
        let m = mux(tracks, &packets, reserve);
        let p = plan(&mut Cursor::new(&m.recorded), m.recorded.len() as u64).unwrap();
        assert_eq!(p.steps, m.steps, "reserve {reserve}");
    }
}

#[test]
fn cut_tail_and_trailing_boxes_are_dropped_first() {
    let packets = packets(4, 0);
    let tracks = vec![track(TrackKind::Video, 15360, vec![]), track(TrackKind::Audio, 48000, vec![])];
    let m = mux(tracks, &packets, 0);
    let boxes = top_level(&mut Cursor::new(&m.recorded), m.recorded.len() as u64).unwrap();
    let last_moof = boxes.iter().rev().find(|(_, h)| h.fourcc.0 == *b"moof").unwrap().0 as usize;
    // Cut in the middle of the last fragment's media.
    let cut = &m.recorded[..m.recorded.len() - 30];
    let p = plan(&mut Cursor::new(cut), cut.len() as u64).unwrap();
    assert_eq!(p.steps[0], WriteStep::Truncate { len: last_moof as u64 });
    assert!(p.notes[0].contains("incomplete last fragment"), "{:?}", p.notes);
    let mut file = cut.to_vec();
    apply(&mut file, &p.steps);
    let samples = regular_samples(&file);
    let before_cut = |t: usize| packets.iter().filter(|p| p.track == t).count();
    assert!(samples[0].len() < before_cut(0) && !samples[0].is_empty());
    // A trailing mfra-like box after the last fragment is cut too.
    let mut extra = m.recorded.clone();
    extra.extend_from_slice(&[0, 0, 0, 16, b'm', b'f', b'r', b'a', 0, 0, 0, 8, b'm', b'f', b'r', b'o']);
    let p = plan(&mut Cursor::new(&extra), extra.len() as u64).unwrap();
    assert_eq!(p.steps[0], WriteStep::Truncate { len: m.recorded.len() as u64 });
    let mut file = extra.clone();
    apply(&mut file, &p.steps);
    check_packets(&file, &packets);
}

#[test]
fn refuses_what_it_cannot_finalize_and_leaves_regular_files_alone() {
    let packets = packets(3, 0);
    let tracks = vec![track(TrackKind::Video, 15360, vec![]), track(TrackKind::Audio, 48000, vec![])];
    let m = mux(tracks, &packets, 0);
    let unusable = |data: &[u8]| match plan(&mut Cursor::new(data), data.len() as u64) {
        Err(FinalizeMp4Error::Unusable(m)) => m,
        other => panic!("{other:?}"),
    };
    // Header only: no fragment.
    let moov_end = {
        let boxes = top_level(&mut Cursor::new(&m.recorded), m.recorded.len() as u64).unwrap();
        let (o, h) = boxes.iter().find(|(_, h)| h.fourcc.0 == *b"moov").unwrap();
        (*o + h.size.unwrap()) as usize
    };
    assert!(unusable(&m.recorded[..moov_end + 100]).contains("no complete fragment"));
    assert!(unusable(&m.recorded[..moov_end - 10]).contains("no complete 'moov'"));
    assert!(unusable(&[0, 0, 0, 16, b'f', b't', b'y', b'p', 0, 0, 0, 0, 0, 0, 0, 0]).contains("no 'moov'"));
    // A damaged fragment in the middle is not cut off with the ones after it.
    let mut damaged = m.recorded.clone();
    let boxes = top_level(&mut Cursor::new(&damaged), damaged.len() as u64).unwrap();
    let moof = boxes.iter().find(|(_, h)| h.fourcc.0 == *b"moof").unwrap().0 as usize;
    let trun = moof + damaged[moof..].windows(4).position(|w| w == b"trun").unwrap();
    damaged[trun + 8..trun + 12].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(unusable(&damaged).contains("complete fragments follow"));
    // Finalized: nothing to do.
    let mut file = m.recorded.clone();
    apply(&mut file, &m.steps);
    let p = plan(&mut Cursor::new(&file), file.len() as u64).unwrap();
    assert!(p.steps.is_empty() && p.notes[0].contains("already a regular MP4"), "{p:?}");
}

#[test]
fn late_start_and_edit_lists_keep_presentation_times() {
    // Audio starts 0.5 s late (first tfdt 24000); video has an edit skipping 2 frames.
    let packets = packets(3, 24_000);
    let edit = Edit { segment_duration_movie_ticks: 60_000, media_time_ticks: 1024, media_rate_integer: 1 };
    let tracks = vec![track(TrackKind::Video, 15360, vec![edit]), track(TrackKind::Audio, 48000, vec![])];
    let m = mux(tracks, &packets, 0);
    let mut file = m.recorded.clone();
    apply(&mut file, &m.steps);
    check_packets(&file, &packets);
    let (offset, hl, moov) =
        crate::formats::mp4::file::read_moov(&mut Cursor::new(&file), file.len() as u64).unwrap().unwrap();
    let movie = parse_movie(&moov, offset, hl).unwrap();
    // Video: the edit is cut to the media: presentation ends at 46592 ticks (frame 88,
    // shown 1024 ticks late), minus the 1024 skipped, in ms rounded up.
    assert_eq!(movie.tracks[0].edits.len(), 1);
    assert_eq!(movie.tracks[0].edits[0].media_time_ticks, 1024);
    assert_eq!(movie.tracks[0].edits[0].segment_duration_movie_ticks, 2967);
    // Audio: an empty edit of 0.5 s, then the media from its first sample.
    let a = &movie.tracks[1].edits;
    assert_eq!((a[0].segment_duration_movie_ticks, a[0].media_time_ticks), (500, -1));
    assert_eq!(a[1].media_time_ticks, 0);
    assert_eq!(movie.duration, 500 + a[1].segment_duration_movie_ticks);
}

#[test]
fn long_durations_take_version_1_headers_and_far_offsets_co64() {
    // Three samples of 2^32 - 1 ticks at a 1 GHz timescale: 12.9 s, past 32 bits.
    let mut t = track(TrackKind::Video, 1_000_000_000, vec![]);
    t.movie_timescale = 1_000_000_000;
    let packets: Vec<Packet> = (0..3)
        .map(|i| Packet {
            track: 0,
            dts_ticks: i * u32::MAX as i64,
            pts_ticks: i * u32::MAX as i64,
            duration_ticks: u32::MAX,
            keyframe: true,
            data: Bytes::from(vec![i as u8; 10]).into(),
        })
        .collect();
    let m = mux(vec![t], &packets, 0);
    let mut file = m.recorded.clone();
    apply(&mut file, &m.steps);
    check_packets(&file, &packets);
    let (offset, hl, moov) =
        crate::formats::mp4::file::read_moov(&mut Cursor::new(&file), file.len() as u64).unwrap().unwrap();
    let movie = parse_movie(&moov, offset, hl).unwrap();
    assert_eq!(movie.duration, 3 * u32::MAX as u64);
    let at = moov.windows(4).position(|w| w == b"mdhd").unwrap();
    assert_eq!(moov[at + 4], 1, "mdhd version 1");
    let at = moov.windows(4).position(|w| w == b"tkhd").unwrap();
    assert_eq!(moov[at + 4], 1, "tkhd version 1");

    // co64: an index whose fragments lie past 4 GiB (only the tables are built).
    let (offset, hl, frag_moov) = {
        let r = &m.recorded;
        crate::formats::mp4::file::read_moov(&mut Cursor::new(r), r.len() as u64).unwrap().unwrap()
    };
    let mut index = FragmentIndex::new(frag_moov, offset, hl).unwrap();
    let far = 5u64 << 30;
    let sample = |i: u32| FragSample {
        track: 0,
        info: SampleInfo {
            index: i,
            offset: far + i as u64 * 10,
            size: 10,
            dts: i as i64 * 1000,
            cts_offset: 0,
            duration: 1000,
            sync: i == 0,
            description: 1,
        },
        flags: if i == 0 { 0x0200_0000 } else { 0x0101_0000 },
    };
    index.add(&[sample(0), sample(1)]).unwrap();
    let moov = index.final_moov().unwrap();
    assert!(moov.windows(4).any(|w| w == b"co64"));
    assert!(moov.windows(4).any(|w| w == b"stss"));
    assert!(!moov.windows(4).any(|w| w == b"mvex"));
}

#[test]
fn samples_the_fragmented_moov_indexes_itself_come_first() {
    // A regular moov with an mvex added: a fragmented movie whose moov has samples.
    let packets = packets(3, 0);
    let tracks = vec![track(TrackKind::Video, 15360, vec![]), track(TrackKind::Audio, 48000, vec![])];
    let m = mux(tracks, &packets, 0);
    let mut file = m.recorded.clone();
    apply(&mut file, &m.steps);
    let (offset, hl, moov) =
        crate::formats::mp4::file::read_moov(&mut Cursor::new(&file), file.len() as u64).unwrap().unwrap();
    let mut hybrid = BytesMut::from(&moov[..]);
    let mvex = open(&mut hybrid, b"mvex");
    for id in 1..=2 {
        let trex = crate::formats::mp4::write::open_full(&mut hybrid, b"trex", 0, 0);
        [id, 1, 0, 0, 0].iter().for_each(|&v| hybrid.put_u32(v));
        close(&mut hybrid, trex);
    }
    close(&mut hybrid, mvex);
    close(&mut hybrid, 0);
    let hybrid = hybrid.freeze();
    // Samples the moov indexes must be inside the file, checked as they are read.
    let e = FragmentIndex::in_file(hybrid.clone(), offset, hl, offset - 10).unwrap_err();
    assert!(e.to_string().contains("run past the end of the file"), "{e}");
    let index = FragmentIndex::in_file(hybrid, offset, hl, file.len() as u64).unwrap();
    let regular = regular_samples(&file);
    assert_eq!(index.sample_counts(), regular.iter().map(|t| t.len() as u32).collect::<Vec<_>>());
    assert_eq!(index.next_dts[1], packets.iter().filter(|p| p.track == 1).count() as i64 * 1024);
    let rebuilt = parse_movie(&index.final_moov().unwrap(), offset, hl).unwrap();
    assert!(!rebuilt.fragmented);
    for (t, want) in rebuilt.tracks.iter().zip(&regular) {
        let got: Vec<SampleInfo> = t.table.samples().map(|s| s.unwrap()).collect();
        assert_eq!(&got, want);
    }
}

#[test]
fn edit_durations_past_64_bits_are_an_error_not_a_panic() {
    // An empty edit of almost 2^64 ticks, then the media: the track duration overflows.
    let packets = packets(4, 0);
    let empty = Edit { segment_duration_movie_ticks: u64::MAX - 10, media_time_ticks: -1, media_rate_integer: 1 };
    let main = Edit { segment_duration_movie_ticks: 1000, media_time_ticks: 0, media_rate_integer: 1 };
    let tracks = vec![track(TrackKind::Video, 15360, vec![empty, main]), track(TrackKind::Audio, 48000, vec![])];
    let mut m = RegularMp4Muxer::with_reserve_bytes(Arc::new(tracks.into()), FragmentPolicy::default(), 0, 64);
    let mut recorded = m.header().unwrap().to_bytes().to_vec();
    for p in &packets {
        m.push(p.clone()).unwrap().iter().for_each(|f| recorded.extend_from_slice(&f.to_bytes()));
    }
    let err = m.finish().unwrap_err();
    assert!(err.to_string().contains("add up to more than 64 bits"), "{err}");
    // The same file left by a crash: `livemux finalize` says so too.
    match plan(&mut Cursor::new(&recorded), recorded.len() as u64) {
        Err(FinalizeMp4Error::Mp4(e)) => assert!(e.to_string().contains("add up to more than 64 bits"), "{e}"),
        other => panic!("{other:?}"),
    }
}

/// The mixed state: `recorded` finalized after `k` fragments, then the rest appended.
fn mixed(m: &Muxed, k: usize) -> (Vec<u8>, Vec<u8>) {
    let boxes = top_level(&mut Cursor::new(&m.recorded), m.recorded.len() as u64).unwrap();
    let moofs: Vec<usize> = boxes.iter().filter(|(_, h)| h.fourcc.0 == *b"moof").map(|(o, _)| *o as usize).collect();
    let cut = moofs[k];
    let mut file = m.recorded[..cut].to_vec();
    let p = plan(&mut Cursor::new(&file), file.len() as u64).unwrap();
    apply(&mut file, &p.steps);
    file.extend_from_slice(&m.recorded[cut..]);
    let mut whole = m.recorded.clone();
    apply(&mut whole, &m.steps);
    (file, whole)
}

#[test]
fn fragments_after_a_regular_moov_are_indexed_with_the_rest() {
    let packets = packets(5, 0);
    for reserve in [64 << 10, 100] {
        let tracks = vec![track(TrackKind::Video, 15360, vec![]), track(TrackKind::Audio, 48000, vec![])];
        let m = mux(tracks, &packets, reserve);
        let (mut file, whole) = mixed(&m, 2);
        let p = plan(&mut Cursor::new(&file), file.len() as u64).unwrap();
        assert!(p.notes[0].contains("later fragments are indexed"), "{:?}", p.notes);
        assert_eq!(p.steps.len(), 2, "hidden moov, then the switch: {:?}", p.notes);
        apply(&mut file, &p.steps);
        check_packets(&file, &packets);
        // As if finalized once at the end (offsets aside: appended strays move).
        type Timing = Vec<Vec<(u32, i64, i64, u32, bool)>>;
        let timing = |f: &[u8]| -> Timing {
            let samples = regular_samples(f);
            samples
                .iter()
                .map(|t| t.iter().map(|s| (s.size, s.dts, s.cts_offset, s.duration, s.sync)).collect())
                .collect()
        };
        assert_eq!(timing(&file), timing(&whole), "reserve {reserve}");
    }
    // The recorder went on writing at the old end, over the hidden moov: no top-level
    // moov, and the mdat's header covers the first 8 bytes of the next moof.
    let tracks = vec![track(TrackKind::Video, 15360, vec![]), track(TrackKind::Audio, 48000, vec![])];
    let m = mux(tracks, &packets, 100);
    let boxes = top_level(&mut Cursor::new(&m.recorded), m.recorded.len() as u64).unwrap();
    let cut = boxes.iter().filter(|(_, h)| h.fourcc.0 == *b"moof").nth(2).unwrap().0 as usize;
    let mut file = m.recorded[..cut].to_vec();
    let p = plan(&mut Cursor::new(&file), file.len() as u64).unwrap();
    apply(&mut file, &p.steps);
    assert!(file.len() > cut);
    file.truncate(cut);
    file.extend_from_slice(&m.recorded[cut..]);
    let p = plan(&mut Cursor::new(&file), file.len() as u64).unwrap();
    assert!(p.notes[0].contains("wrote over the new moov"), "{:?}", p.notes);
    apply(&mut file, &p.steps);
    check_packets(&file, &packets);
    // Without a reserve the switch went over the old moov's header: it is rebuilt.
    let tracks = vec![track(TrackKind::Video, 15360, vec![]), track(TrackKind::Audio, 48000, vec![])];
    let m = mux(tracks, &packets, 0);
    let (mut file, _) = mixed(&m, 2);
    let p = plan(&mut Cursor::new(&file), file.len() as u64).unwrap();
    assert!(p.notes[0].contains("later fragments are indexed"), "{:?}", p.notes);
    let mut repaired = file.clone();
    apply(&mut repaired, &p.steps);
    check_packets(&repaired, &packets);
    // Its mvhd damaged too: nothing to index from; refused, with the reason.
    let ftyp = u32::from_be_bytes(file[..4].try_into().unwrap()) as usize;
    file[ftyp + 16] = 7;
    match plan(&mut Cursor::new(&file), file.len() as u64) {
        Err(FinalizeMp4Error::Unusable(e)) => assert!(e.contains("is not found in its mdat"), "{e}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_switch_stays_inside_one_sector() {
    let moov = Bytes::from(vec![0u8; 100]);
    let layout = |reserve, moov_offset| Layout { reserve, moov_offset, end: 10_000, len: 10_000 };
    // A foreign moov whose 16 bytes would cross a sector: a 32-bit header instead.
    let p = plan_steps(&layout(None, 500), moov.clone());
    let WriteStep::Write { offset: 500, data } = &p.steps[1] else { panic!("{p:?}") };
    assert_eq!(&data[..], &[0, 0, 0x25, 0x24, b'm', b'd', b'a', b't'][..]);
    // Within a sector: the 64-bit header, covering the trailing free header.
    let p = plan_steps(&layout(None, 36), moov.clone());
    let WriteStep::Write { offset: 36, data } = &p.steps[1] else { panic!("{p:?}") };
    assert_eq!(u64::from_be_bytes(data[8..16].try_into().unwrap()), 10_008 - 36);
    let WriteStep::Write { offset: 10_000, data } = &p.steps[0] else { panic!("{p:?}") };
    assert_eq!(&data[..8], &[0, 0, 0, 108, b'f', b'r', b'e', b'e'][..]);
    // A reserve too small for the moov: the switch goes over the free box.
    let p = plan_steps(&layout(Some((32, 64)), 96), moov.clone());
    assert!(matches!(&p.steps[1], WriteStep::Write { offset: 32, .. }), "{p:?}");
    // Big enough (100 + 8 <= 108): faststart with a 32-bit mdat header.
    let p = plan_steps(&layout(Some((32, 108)), 140), moov);
    let WriteStep::Write { offset: 40, data } = &p.steps[0] else { panic!("{p:?}") };
    assert_eq!(data.len(), 92 + 8);
    assert_eq!(&data[92..], &[0, 0, 0x26, 0x8C, b'm', b'd', b'a', b't'][..]);
}
