//! Tests of the scanner: garbage, PCM, chunking.

use super::*;
use crate::reference::Reference;

fn layout() -> ScanLayout {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tools/h264_aac_reference_1s.mp4");
    let reference = Reference::load(&path).unwrap();
    let tracks: Vec<_> = reference.tracks.iter().map(|r| r.track.clone()).collect();
    let stats: Vec<_> = reference.tracks.iter().map(|r| &r.stats).collect();
    ScanLayout::new(&tracks, &stats).unwrap()
}

/// Garbage never panics and never yields packets: the layout is not confirmed by it.
#[test]
fn garbage_is_refused_without_panic() {
    let layout = layout();
    let mut x: u32 = 99;
    for len in [0usize, 1, 7, 100, 5000, 300_000] {
        let data: Vec<u8> = (0..len)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (x >> 16) as u8
            })
            .collect();
        let mut scanner = MdatScanner::new(layout.clone());
        let mut out = Vec::new();
        let pushed = scanner.push(40, &data, &mut out);
        let finished = scanner.finish(&mut out);
        assert!(out.is_empty(), "{len} random bytes gave {} packets", out.len());
        assert!(len == 0 || pushed.is_err() || finished.is_err(), "{len} random bytes accepted");
    }
}

/// A layout of a synthetic 16x16 H.264 track (IDR pictures only, POC type 2) at 30 fps
/// and a 48 kHz stereo 16-bit PCM track with packets of 1/30 s, and one IDR access unit.
fn pcm_layout() -> (ScanLayout, Vec<u8>) {
    use crate::codecs::h264::tests::{escape, BitWriter};
    let mut w = BitWriter::default();
    w.bits(24, 0x42_00_1e);
    w.ue(0); // seq_parameter_set_id
    w.ue(0); // log2_max_frame_num_minus4
    w.ue(2); // pic_order_cnt_type
    w.ue(1); // max_num_ref_frames
    w.bit(false);
    w.ue(0); // 1 macroblock wide
    w.ue(0); // 1 high
    w.bits(4, 0b1100);
    let sps = [&[0x67][..], &escape(&w.finish_rbsp())].concat();
    let mut w = BitWriter::default();
    w.ue(0);
    w.ue(0);
    w.bits(2, 0);
    for _ in 0..3 {
        w.ue(0);
    }
    w.bits(3, 0);
    for _ in 0..3 {
        w.se(0);
    }
    w.bits(3, 0);
    let pps = [&[0x68][..], &escape(&w.finish_rbsp())].concat();
    let avcc = h264::AvcConfig::from_parameter_sets(&[sps.into()], &[pps.into()]).unwrap().to_bytes();
    let mut w = BitWriter::default();
    w.ue(0); // first_mb_in_slice
    w.ue(7); // I
    w.ue(0); // pic_parameter_set_id
    w.bits(4, 0); // frame_num
    w.ue(0); // idr_pic_id
    w.bits(2, 0); // dec_ref_pic_marking
    w.se(0); // slice_qp_delta
    w.bits(40, 0x55_aa_55_aa_55);
    let idr = [&[0x65][..], &escape(&w.finish_rbsp())].concat();
    let mut au = (idr.len() as u32).to_be_bytes().to_vec();
    au.extend_from_slice(&idr);
    let video = TrackLayout {
        framing: Framing::Nal {
            rules: crate::codecs::access_unit::AuRules {
                syntax: crate::codecs::access_unit::NalSyntax::H264,
                length_size: 4,
                max_nal_size: 1 << 20,
            },
            config: CodecConfig::H264 { avcc, dims: crate::codecs::Dimensions { width: 16, height: 16 } },
        },
        timescale: 30,
        packet_ticks: 1,
        media_time_ticks: 0,
        first_cts_ticks: 0,
        min_size: 1,
        max_size: 1 << 20,
        mean_size: au.len() as f64,
        sd_size: 0.0,
    };
    let audio = TrackLayout {
        framing: Framing::Pcm { packet_bytes: 6400, frame_bytes: 4 },
        timescale: 48_000,
        packet_ticks: 1600,
        media_time_ticks: 0,
        first_cts_ticks: 0,
        min_size: 6400,
        max_size: 6400,
        mean_size: 6400.0,
        sd_size: 0.0,
    };
    (ScanLayout { tracks: vec![video, audio] }, au)
}

/// PCM samples whose every 4-byte word reads as a NAL length far too large.
fn pcm_bytes(n: usize) -> Vec<u8> {
    (0..n).map(|i| if i % 2 == 0 { 0x10 + (i % 7) as u8 } else { 0x7f - (i % 5) as u8 }).collect()
}

/// Audio that stops before the video: its last packet is shorter, and video follows it.
/// That packet is cut where the video starts; a packet is never made of video bytes.
#[test]
fn pcm_packets_end_where_video_starts() {
    let (layout, au) = pcm_layout();
    let mut media = Vec::new();
    let mut audio = Vec::new();
    for _ in 0..30 {
        media.extend_from_slice(&au);
        let p = pcm_bytes(6400);
        media.extend_from_slice(&p);
        audio.push(p);
    }
    media.extend_from_slice(&au);
    let short = pcm_bytes(2048);
    media.extend_from_slice(&short);
    audio.push(short);
    for _ in 0..5 {
        media.extend_from_slice(&au);
    }
    for at_once in [media.len(), 1000, 7] {
        let mut scanner = MdatScanner::new(layout.clone());
        let mut out = Vec::new();
        for (i, piece) in media.chunks(at_once).enumerate() {
            scanner.push((40 + i * at_once) as u64, piece, &mut out).unwrap();
        }
        let summary = scanner.finish(&mut out).unwrap();
        let got: Vec<Vec<u8>> = out.iter().filter(|p| p.track == 1).map(|p| p.data.contiguous().to_vec()).collect();
        let sizes: Vec<usize> = got.iter().map(Vec::len).collect();
        assert!(got == audio, "pieces of {at_once}: sizes {sizes:?}, {:?}", summary.notes());
        assert_eq!(out.iter().filter(|p| p.track == 0).count(), 36, "pieces of {at_once}");
        let last = out.iter().rfind(|p| p.track == 1).unwrap();
        assert_eq!(last.duration_ticks, 512, "2048 bytes of 4-byte frames");
        assert_eq!(summary.short_packets.len(), 1);
        assert!(summary.notes().iter().any(|n| n.contains("only the 2048 bytes before it")), "{:?}", summary.notes());
    }
    // Cut inside the access unit that follows the short packet: the bytes before it
    // cannot be told to be a whole packet, and are dropped with a note.
    let cut = media.len() - 5 * au.len() + 10;
    let mut scanner = MdatScanner::new(layout.clone());
    let mut out = Vec::new();
    scanner.push(40, &media[..cut], &mut out).unwrap();
    let summary = scanner.finish(&mut out).unwrap();
    let got: Vec<Vec<u8>> = out.iter().filter(|p| p.track == 1).map(|p| p.data.contiguous().to_vec()).collect();
    let sizes: Vec<usize> = got.iter().map(Vec::len).collect();
    assert!(got == audio[..30], "no packet made of the cut tail: sizes {sizes:?}, {:?}", summary.notes());
    let notes = summary.notes().join("\n");
    assert!(notes.contains("2058 bytes") || notes.contains("skipped"), "{notes}");
}

/// The same media pushed in pieces of any size gives the same packets.
#[test]
fn pieces_do_not_change_the_packets() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tools/h264_aac_moov_end.mp4");
    let file = std::fs::read(path).unwrap();
    // ftyp (32) + free (8) + mdat header (8): the payload starts at 48.
    let media = &file[48..400_000];
    let run = |piece: usize| {
        let mut scanner = MdatScanner::new(layout());
        let mut out = Vec::new();
        for (i, c) in media.chunks(piece).enumerate() {
            scanner.push(48 + (i * piece) as u64, c, &mut out).unwrap();
        }
        scanner.finish(&mut out).unwrap();
        out.iter().map(|p| (p.track, p.dts_ticks, p.pts_ticks, p.data.contiguous())).collect::<Vec<_>>()
    };
    let whole = run(media.len());
    assert!(whole.len() > 250, "{} packets", whole.len());
    for piece in [1000, 4096, 65_537] {
        assert_eq!(run(piece), whole, "pieces of {piece} bytes");
    }
}
