//! Tests of POC derivation against the `ctts` order FFmpeg wrote, and on synthetic streams.

use super::super::h264::tests::{escape, fuzz, BitWriter};
use super::*;
use crate::codecs::h264::{NAL_IDR, NAL_SLICE};
use crate::codecs::{h264, hevc};
use std::path::{Path, PathBuf};
use std::process::Command;

fn generated() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let root = if root.join("scripts/make-fixtures.sh").exists() { root } else { PathBuf::from("/work/main") };
    let dir = root.join("tests/fixtures/generated");
    if !dir.join(".complete-5").exists() {
        let status = Command::new("flock")
            .arg(root.join("tests/fixtures/.lock"))
            .arg(root.join("scripts/make-fixtures.sh"))
            .arg(&dir)
            .status()
            .expect("run scripts/make-fixtures.sh");
        assert!(status.success(), "scripts/make-fixtures.sh failed");
    }
    dir
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

/// Child boxes of `data` as (type, payload).
fn boxes(data: &[u8]) -> Vec<([u8; 4], &[u8])> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 8 <= data.len() {
        let mut size = be32(data, pos) as usize;
        let kind: [u8; 4] = data[pos + 4..pos + 8].try_into().unwrap();
        let mut header = 8;
        if size == 1 {
            size = u64::from_be_bytes(data[pos + 8..pos + 16].try_into().unwrap()) as usize;
            header = 16;
        } else if size == 0 {
            size = data.len() - pos;
        }
        out.push((kind, &data[pos + header..pos + size]));
        pos += size;
    }
    out
}

fn child<'a>(data: &'a [u8], kind: &[u8; 4]) -> &'a [u8] {
    boxes(data).into_iter().find(|(k, _)| k == kind).unwrap_or_else(|| panic!("no {kind:?} box")).1
}

/// (configuration record, samples in decode order, pts per sample) of the first video
/// track of a non-fragmented file.
fn video_track(path: &Path, config_box: &[u8; 4]) -> (Vec<u8>, Vec<Vec<u8>>, Vec<i64>) {
    let file = std::fs::read(path).unwrap();
    let moov = child(&file, b"moov");
    let trak = boxes(moov)
        .into_iter()
        .filter(|(k, _)| k == b"trak")
        .map(|(_, t)| t)
        .find(|t| &child(child(t, b"mdia"), b"hdlr")[8..12] == b"vide")
        .expect("video trak");
    let stbl = child(child(child(trak, b"mdia"), b"minf"), b"stbl");
    let stsd = child(stbl, b"stsd");
    let at = stsd.windows(4).position(|w| w == config_box).expect("config box") + 4;
    let config = stsd[at..at - 8 + be32(stsd, at - 8) as usize].to_vec();

    let stsz = child(stbl, b"stsz");
    let count = be32(stsz, 8) as usize;
    let sizes: Vec<usize> =
        (0..count).map(|i| if be32(stsz, 4) != 0 { be32(stsz, 4) } else { be32(stsz, 12 + 4 * i) } as usize).collect();
    let chunks: Vec<u64> = if let Some((_, co)) = boxes(stbl).into_iter().find(|(k, _)| k == b"stco") {
        (0..be32(co, 4) as usize).map(|i| u64::from(be32(co, 8 + 4 * i))).collect()
    } else {
        let co = child(stbl, b"co64");
        (0..be32(co, 4) as usize).map(|i| u64::from_be_bytes(co[8 + 8 * i..16 + 8 * i].try_into().unwrap())).collect()
    };
    let stsc = child(stbl, b"stsc");
    let entries: Vec<(usize, usize)> = (0..be32(stsc, 4) as usize)
        .map(|i| (be32(stsc, 8 + 12 * i) as usize, be32(stsc, 12 + 12 * i) as usize))
        .collect();
    let mut samples = Vec::with_capacity(count);
    for (c, &chunk_offset) in chunks.iter().enumerate() {
        let per_chunk = entries.iter().rev().find(|(first, _)| *first <= c + 1).unwrap().1;
        let mut off = chunk_offset as usize;
        for _ in 0..per_chunk {
            if samples.len() == count {
                break;
            }
            let size = sizes[samples.len()];
            samples.push(file[off..off + size].to_vec());
            off += size;
        }
    }
    assert_eq!(samples.len(), count);

    let stts = child(stbl, b"stts");
    let mut dts = Vec::with_capacity(count);
    let mut t = 0i64;
    for i in 0..be32(stts, 4) as usize {
        for _ in 0..be32(stts, 8 + 8 * i) {
            dts.push(t);
            t += i64::from(be32(stts, 12 + 8 * i));
        }
    }
    // No ctts: presentation order is decode order.
    let mut pts = dts.clone();
    if let Some((_, ctts)) = boxes(stbl).into_iter().find(|(k, _)| k == b"ctts") {
        let mut i = 0;
        for e in 0..be32(ctts, 4) as usize {
            for _ in 0..be32(ctts, 8 + 8 * e) {
                pts[i] += i64::from(be32(ctts, 12 + 8 * e) as i32);
                i += 1;
            }
        }
        assert_eq!(i, count);
    }
    assert_eq!(pts.len(), count);
    (config, samples, pts)
}

fn split(sample: &[u8]) -> Vec<&[u8]> {
    h264::length_prefixed(sample, 4).map(|r| r.unwrap()).collect()
}

/// Compares the presentation order from POCs with the one from `ctts`.
fn check_order(pocs: &[(i32, bool)], pts: &[i64]) {
    let mut p = PresentationOrder::new();
    let mut from_poc = Vec::new();
    for &(poc, reset) in pocs {
        p.push(poc, reset);
        from_poc.extend(std::iter::from_fn(|| p.pop()).map(|i| i as usize));
    }
    p.finish();
    from_poc.extend(std::iter::from_fn(|| p.pop()).map(|i| i as usize));
    let mut by_pts: Vec<usize> = (0..pts.len()).collect();
    by_pts.sort_by_key(|&i| pts[i]);
    let mut from_pts = vec![0; pts.len()];
    for (pos, &i) in by_pts.iter().enumerate() {
        from_pts[i] = pos;
    }
    assert_eq!(from_poc, from_pts, "POCs {pocs:?}");
}

#[test]
fn h264_poc_matches_ctts_order() {
    let (pocs, pts, _) = h264_pocs(&generated().join("h264_aac_moov_end.mp4"));
    assert_eq!(pocs[0], (0, true));
    // B-frames: decode order differs from presentation order.
    assert!(pocs.windows(2).any(|w| w[1].0 < w[0].0 && !w[1].1));
    check_order(&pocs[..60], &pts[..60]);
    check_order(&pocs, &pts);
}

#[test]
fn hevc_poc_matches_ctts_order() {
    let (hvcc, samples, pts) = video_track(&generated().join("hevc_aac_moov_end.mov"), b"hvcC");
    let mut state = HevcPocState::from_hvcc(&hvcc).unwrap();
    let mut pocs = Vec::new();
    for s in &samples {
        let nals = split(s);
        let t = nals.iter().map(|n| hevc::nal_type(n[0])).find(|&t| t <= 31).unwrap();
        let poc = state.picture(&nals).unwrap().expect("slice");
        assert_eq!(state.last_was_reset(), matches!(t, 16..=20) || pocs.is_empty());
        pocs.push((poc, state.last_was_reset()));
    }
    assert_eq!(pocs[0], (0, true));
    assert!(pocs.windows(2).any(|w| w[1].0 < w[0].0 && !w[1].1));
    check_order(&pocs[..60], &pts[..60]);
    check_order(&pocs, &pts);
}

/// Every slice header of real x264 (B-frames, CABAC, weighted prediction, several
/// references) and x265 streams parses with the stream's own record in
/// [`crate::codecs::slices`], and an x264 record of other settings does not fit.
#[test]
fn real_slice_headers_parse_with_their_own_records() {
    use crate::codecs::slices::{check_h264, check_hevc};
    let (avcc, samples, _) = video_track(&generated().join("h264_aac_moov_end.mp4"), b"avcC");
    let refs: Vec<&[u8]> = samples.iter().map(Vec::as_slice).collect();
    let c = check_h264(&avcc, &refs).unwrap();
    assert!(c.slices >= samples.len() && !c.inband_parameter_sets, "{c:?}");
    let (other, _, _) = video_track(&generated().join("recover_small_25fps_nob_44k_stereo.mp4"), b"avcC");
    assert_ne!(other, avcc);
    assert!(check_h264(&other, &refs[..8]).is_err());
    let (hvcc, samples, _) = video_track(&generated().join("hevc_aac_moov_end.mov"), b"hvcC");
    let refs: Vec<&[u8]> = samples.iter().map(Vec::as_slice).collect();
    let c = check_hevc(&hvcc, &refs).unwrap();
    assert!(c.slices >= samples.len(), "{c:?}");
}

/// Encodes a clip with FFmpeg (libx264) using `args`; `None` when FFmpeg is missing.
fn encode(name: &str, args: &[&str]) -> Option<PathBuf> {
    let path = std::env::temp_dir().join(format!("livemux-poc-{}-{name}.mp4", std::process::id()));
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=s=320x240:r=25", "-t", "4"])
        .args(["-an", "-c:v", "libx264", "-preset", "veryfast", "-g", "30"])
        .args(args)
        .arg(&path)
        .status();
    match status {
        Ok(s) if s.success() => Some(path),
        _ if std::env::var("LIVEMUX_REQUIRE_TOOLS").is_ok_and(|v| v == "1") => {
            panic!("LIVEMUX_REQUIRE_TOOLS=1 but ffmpeg with libx264 could not encode {name}")
        }
        _ => {
            eprintln!("SKIPPED: ffmpeg with libx264 not available (set LIVEMUX_REQUIRE_TOOLS=1 to fail)");
            None
        }
    }
}

fn h264_pocs(path: &Path) -> (Vec<(i32, bool)>, Vec<i64>, u8) {
    let (avcc, samples, pts) = video_track(path, b"avcC");
    let config = h264::AvcConfig::parse(&avcc).unwrap();
    let poc_type = h264::parse_sps(&config.sps[0]).unwrap().pic_order_cnt_type;
    let mut state = H264PocState::from_avcc(&avcc).unwrap();
    let mut pocs = Vec::new();
    for s in &samples {
        let nals = split(s);
        let idr = nals.iter().any(|n| h264::nal_type(n[0]) == NAL_IDR);
        let poc = state.picture(&nals).unwrap().expect("slice");
        assert_eq!(state.last_was_reset(), idr);
        pocs.push((poc, idr));
    }
    (pocs, pts, poc_type)
}

#[test]
fn h264_poc_type2_and_mbaff() {
    // Without B-frames x264 signals pic_order_cnt_type 2.
    if let Some(path) = encode("t2", &["-bf", "0"]) {
        let (avcc, samples, _) = video_track(&path, b"avcC");
        let refs: Vec<&[u8]> = samples.iter().map(Vec::as_slice).collect();
        crate::codecs::slices::check_h264(&avcc, &refs).unwrap();
        let (pocs, pts, poc_type) = h264_pocs(&path);
        let _ = std::fs::remove_file(&path);
        assert_eq!(poc_type, 2);
        // 2 * frame_num within each GOP (every picture is a reference).
        assert!(pocs.iter().all(|&(poc, _)| poc % 2 == 0));
        check_order(&pocs, &pts);
    }
    // Interlaced (MBAFF: frame pictures with delta_pic_order_cnt_bottom) with B-frames.
    if let Some(path) = encode("mbaff", &["-flags", "+ildct", "-x264-params", "interlaced=1", "-bf", "2"]) {
        let (avcc, samples, _) = video_track(&path, b"avcC");
        let config = h264::AvcConfig::parse(&avcc).unwrap();
        assert!(!h264::parse_sps(&config.sps[0]).unwrap().frame_mbs_only);
        // Their slice headers (MBAFF, fields) read as the stream's.
        let refs: Vec<&[u8]> = samples.iter().map(Vec::as_slice).collect();
        crate::codecs::slices::check_h264(&avcc, &refs).unwrap();
        let (pocs, pts, poc_type) = h264_pocs(&path);
        let _ = std::fs::remove_file(&path);
        assert_eq!(poc_type, 0);
        check_order(&pocs, &pts);
    }
}

/// avcC with a 16x16 Baseline SPS (log2_max_frame_num 4) of `poc_type` and a PPS.
fn synthetic_avcc(poc_type: u32) -> Vec<u8> {
    let mut w = BitWriter::default();
    w.bits(24, 0x42_00_1e); // profile 66, constraints, level 30
    w.ue(0); // seq_parameter_set_id
    w.ue(0); // log2_max_frame_num_minus4
    w.ue(poc_type);
    match poc_type {
        0 => w.ue(0), // log2_max_pic_order_cnt_lsb_minus4: MaxPicOrderCntLsb 16
        1 => {
            w.bit(false); // delta_pic_order_always_zero_flag
            w.se(-2); // offset_for_non_ref_pic
            w.se(0); // offset_for_top_to_bottom_field
            w.ue(1); // num_ref_frames_in_pic_order_cnt_cycle
            w.se(4); // offset_for_ref_frame[0]
        }
        _ => {}
    }
    w.ue(1); // max_num_ref_frames
    w.bit(false); // gaps_in_frame_num_value_allowed_flag
    w.ue(0); // pic_width_in_mbs_minus1
    w.ue(0); // pic_height_in_map_units_minus1
    w.bits(4, 0b1100); // frame_mbs_only, direct_8x8_inference, no cropping, no VUI
    let sps = [&[0x67][..], &escape(&w.finish_rbsp())].concat();
    let mut w = BitWriter::default();
    for _ in 0..2 {
        w.ue(0); // pic_parameter_set_id, seq_parameter_set_id
    }
    w.bits(2, 0); // entropy_coding_mode_flag, bottom_field_pic_order_in_frame_present_flag
    for _ in 0..3 {
        w.ue(0); // num_slice_groups_minus1, num_ref_idx_l0/l1_default_active_minus1
    }
    w.bits(3, 0); // weighted_pred_flag, weighted_bipred_idc
    for _ in 0..3 {
        w.se(0); // pic_init_qp_minus26, pic_init_qs_minus26, chroma_qp_index_offset
    }
    w.bits(3, 0); // deblocking filter control, constrained intra, redundant_pic_cnt_present
    let pps = [&[0x68][..], &escape(&w.finish_rbsp())].concat();
    let mut avcc = vec![1, 0x42, 0, 0x1e, 0xff, 0xe1];
    avcc.extend_from_slice(&(sps.len() as u16).to_be_bytes());
    avcc.extend_from_slice(&sps);
    avcc.push(1);
    avcc.extend_from_slice(&(pps.len() as u16).to_be_bytes());
    avcc.extend_from_slice(&pps);
    avcc
}

/// A slice NAL unit of a [`synthetic_avcc`] stream: `I` an IDR (frame_num 0), `P` a
/// reference P slice, `b` a non-reference P slice. `poc` writes the POC fields.
fn synthetic_slice(kind: char, frame_num: u32, poc: impl FnOnce(&mut BitWriter)) -> Vec<u8> {
    let mut w = BitWriter::default();
    w.ue(0); // first_mb_in_slice
    w.ue(if kind == 'I' { 7 } else { 5 }); // slice_type I or P
    w.ue(0); // pic_parameter_set_id
    w.bits(4, u64::from(frame_num));
    if kind == 'I' {
        w.ue(0); // idr_pic_id
    }
    poc(&mut w);
    w.bits(16, 0xffff); // rest of the slice
    let header = match kind {
        'I' => 0x65,
        'P' => 0x41,
        _ => 0x01,
    };
    [&[header][..], &escape(&w.finish_rbsp())].concat()
}

#[test]
fn h264_synthetic_poc_types() {
    // Type 0 with MaxPicOrderCntLsb 16: the MSB steps up on wrap and back for a B-frame.
    let mut state = H264PocState::from_avcc(&synthetic_avcc(0)).unwrap();
    let mut poc = |kind: char, frame_num: u32, lsb: u64| {
        state.picture(&[&synthetic_slice(kind, frame_num, |w| w.bits(4, lsb))]).unwrap().unwrap()
    };
    let got: Vec<i32> = [('I', 0, 0), ('P', 1, 4), ('P', 2, 8), ('P', 3, 12), ('P', 4, 0), ('b', 5, 14), ('P', 5, 4)]
        .iter()
        .map(|&(k, f, l)| poc(k, f, l))
        .collect();
    assert_eq!(got, [0, 4, 8, 12, 16, 14, 20]);
    assert_eq!(poc('I', 0, 6), 6); // IDR resets the MSB

    // Type 1: one reference frame per cycle adding 4, non-reference pictures -2; the
    // frame_num wrap (MaxFrameNum 16) carries into FrameNumOffset.
    let mut state = H264PocState::from_avcc(&synthetic_avcc(1)).unwrap();
    let mut poc = |kind: char, frame_num: u32, delta: i32| {
        state.picture(&[&synthetic_slice(kind, frame_num, |w| w.se(delta))]).unwrap().unwrap()
    };
    assert_eq!(poc('I', 0, 0), 0);
    assert_eq!(poc('P', 1, 0), 4);
    assert_eq!(poc('b', 2, 0), 2);
    assert_eq!(poc('P', 2, 1), 9);
    for f in 3..16 {
        assert_eq!(poc('P', f, 0), 4 * f as i32);
    }
    assert_eq!(poc('P', 0, 0), 64);
    assert_eq!(poc('b', 1, 0), 62);
    assert_eq!(poc('P', 1, -3), 65);

    // Type 2: 2 * (FrameNumOffset + frame_num), minus 1 for non-reference pictures.
    let mut state = H264PocState::from_avcc(&synthetic_avcc(2)).unwrap();
    let mut poc = |kind: char, frame_num: u32| state.picture(&[&synthetic_slice(kind, frame_num, |_| {})]).unwrap();
    assert_eq!(poc('I', 0), Some(0));
    for f in 1..16 {
        assert_eq!(poc('P', f), Some(2 * f as i32));
    }
    assert_eq!(poc('b', 0), Some(31));
    assert_eq!(poc('P', 0), Some(32));
    assert_eq!(poc('I', 0), Some(0));
}

#[test]
fn garbage_and_truncation_never_panic() {
    let (avcc, samples, _) = video_track(&generated().join("h264_aac_moov_end.mp4"), b"avcC");
    let state = H264PocState::from_avcc(&avcc).unwrap();
    for n in 0..avcc.len() {
        let _ = H264PocState::from_avcc(&avcc[..n]);
    }
    fuzz(&avcc, |b| H264PocState::from_avcc(b).map(drop));
    let slice = split(&samples[1]).into_iter().find(|n| h264::nal_type(n[0]) == NAL_SLICE).unwrap().to_vec();
    assert!(state.clone().picture(&[&slice[..1]]).is_err());
    assert!(state.clone().picture(&[&[0x65]]).is_err());
    fuzz(&slice[..slice.len().min(48)], |b| state.clone().picture(&[b]));
    assert_eq!(state.clone().picture(&[&[0x09, 0xf0]]).unwrap(), None);
    assert_eq!(state.clone().picture(&[]).unwrap(), None);

    let (hvcc, samples, _) = video_track(&generated().join("hevc_aac_moov_end.mov"), b"hvcC");
    let state = HevcPocState::from_hvcc(&hvcc).unwrap();
    for n in 0..hvcc.len() {
        let _ = HevcPocState::from_hvcc(&hvcc[..n]);
    }
    fuzz(&hvcc, |b| HevcPocState::from_hvcc(b).map(drop));
    let nals = split(&samples[1]);
    let slice = nals.iter().find(|n| hevc::nal_type(n[0]) <= 31).unwrap().to_vec();
    assert!(state.clone().picture(&[&slice[..3]]).is_err());
    assert!(state.clone().picture(&[&[0x26]]).is_err());
    fuzz(&slice[..slice.len().min(48)], |b| state.clone().picture(&[b]));
    assert_eq!(state.clone().picture(&[&[0x46, 0x01, 0x50]]).unwrap(), None);
}

#[test]
fn h264_in_band_parameter_sets_and_errors() {
    let (avcc, samples, _) = video_track(&generated().join("h264_aac_moov_end.mp4"), b"avcC");
    let config = h264::AvcConfig::parse(&avcc).unwrap();
    let idr = split(&samples[0]).into_iter().find(|n| h264::nal_type(n[0]) == NAL_IDR).unwrap().to_vec();
    // A state whose PPS is unknown until the access unit carries it.
    let mut state = H264PocState::from_avcc(&avcc).unwrap();
    // (Only the SPS: the PPS is left out.)
    state.sets = h264::ParameterSets::default();
    state.sets.add(&config.sps[0]).unwrap();
    assert!(state.clone().picture(&[&idr]).is_err());
    let (sps, pps) = (config.sps[0].to_vec(), config.pps[0].to_vec());
    assert_eq!(state.picture(&[&sps, &pps, &idr]).unwrap(), Some(0));
    // Slice groups are reported as unsupported.
    assert!(matches!(h264::sps::parse_pps(&[0x68, 0xc5, 0x80]), Err(CodecError::Unsupported { .. })));
}

/// Each SPS is parsed once, by `h264::parse_sps`, and that one parse serves POC derivation
/// and the slice header check: both take the parsed `h264::ParameterSets` (and POC
/// derivation reads its fields from `&h264::Sps`), and neither parses an SPS of its own.
#[test]
fn poc_and_slice_check_share_one_sps_parse() {
    use crate::parse_count::Parsed;
    let parses = || crate::parse_count::parses(Parsed::Sps) as usize;
    let (avcc, samples, _) = video_track(&generated().join("h264_aac_moov_end.mp4"), b"avcC");
    let config = h264::AvcConfig::parse(&avcc).unwrap();
    let checked = samples.len().min(8);
    let sps_units = |samples: &[Vec<u8>]| {
        samples.iter().flat_map(|s| split(s)).filter(|n| h264::nal_type(n[0]) == h264::NAL_SPS).count()
    };
    let in_band = sps_units(&samples) + sps_units(&samples[..checked]);
    let start = parses();
    let sets = h264::ParameterSets::from_config(&config, true).unwrap();
    assert_eq!(parses() - start, 1, "the record's SPS is parsed once");
    let sps = sets.sps(0).unwrap().clone();
    assert_eq!(sps.log2_max_frame_num(), u32::from(sps.log2_max_frame_num_minus4) + 4);

    let refs: Vec<&[u8]> = samples.iter().map(Vec::as_slice).collect();
    let check = crate::codecs::slices::check_h264_with(sets.clone(), config.nal_length_size, &refs[..checked]);
    assert!(check.is_ok(), "{check:?}");
    let mut state = H264PocState::new(sets).unwrap();
    for sample in &samples {
        state.picture(&split(sample)).unwrap();
    }
    // Only in-band SPS units (if any) add parses; the record's is never read again.
    assert_eq!(parses() - start, 1 + in_band);
    assert!(H264PocState::new(h264::ParameterSets::default()).is_err());

    // The production entry points: a record, parsed from its bytes or built from its
    // parameter sets, gives its dimensions, the slice check and the POC state (and its
    // clones) from one parse of each of its SPS.
    let in_band_used = sps_units(&samples[..checked]) + sps_units(&samples[..1]);
    let builds: [&dyn Fn() -> h264::AvcConfig; 2] = [&|| h264::AvcConfig::parse(&avcc).unwrap(), &|| {
        h264::AvcConfig::from_parameter_sets(&config.sps, &config.pps).unwrap()
    }];
    for build in builds {
        let start = parses();
        let config = build();
        assert!(config.dimensions().unwrap().width > 0);
        assert!(crate::codecs::slices::check_h264_config(&config, &refs[..checked]).is_ok());
        let mut state = H264PocState::from_config(&config).unwrap();
        state.picture(&split(&samples[0])).unwrap();
        let copy = config.clone();
        assert!(copy.dimensions().is_ok() && copy.parameter_sets().is_ok());
        assert_eq!(parses() - start, config.sps.len() + in_band_used);
    }
    // The byte-level entry points parse the record once each.
    let start = parses();
    assert!(H264PocState::from_avcc(&avcc).is_ok());
    assert_eq!(parses() - start, 1);
    let start = parses();
    assert!(crate::codecs::slices::check_h264(&avcc, &refs[..checked]).is_ok());
    assert_eq!(parses() - start, config.sps.len() + sps_units(&samples[..checked]));
}
