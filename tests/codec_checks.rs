//! Codec parameter decisions and the moov-less scanner's audio tails, checked with FFmpeg:
//!
//! - `--params auto` on a stream without in-band parameter sets: the record under which the
//!   first slice headers parse is kept (the reference's when the stream's is wrong but
//!   parseable), and the output decodes without errors;
//! - moov-less recovery of a PCM camera MOV never emits a last audio packet made of bytes
//!   that are not audio; the dropped tail is named.

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

fn ffmpeg(dir: &Path, name: &str, args: &[&str]) -> PathBuf {
    let out = dir.join(name);
    let res = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y"])
        .args(args)
        .arg(&out)
        .output()
        .expect("run ffmpeg");
    assert!(res.status.success(), "ffmpeg {name}: {}", String::from_utf8_lossy(&res.stderr));
    out
}

/// Boxes that hold only boxes, and where their children start.
fn children_at(kind: &[u8], payload: usize) -> Option<usize> {
    match kind {
        b"moov" | b"trak" | b"mdia" | b"minf" | b"stbl" => Some(payload),
        b"stsd" => Some(payload + 8),
        // VisualSampleEntry: 78 bytes of fields before its boxes.
        b"avc1" | b"avc3" | b"hvc1" | b"hev1" => Some(payload + 78),
        _ => None,
    }
}

/// Offsets of the boxes from the top level down to the first box `name` (itself last).
fn box_path(data: &[u8], name: &[u8; 4]) -> Option<Vec<usize>> {
    fn walk(data: &[u8], from: usize, to: usize, name: &[u8; 4], path: &mut Vec<usize>) -> bool {
        let mut at = from;
        while at + 8 <= to {
            let size = u32::from_be_bytes(data[at..at + 4].try_into().unwrap()) as usize;
            let kind = &data[at + 4..at + 8];
            let end = if size == 0 { to } else { at + size };
            if size != 0 && size < 8 || end > to {
                return false;
            }
            path.push(at);
            if kind == name {
                return true;
            }
            if let Some(inner) = children_at(kind, at + 8) {
                if walk(data, inner, end, name, path) {
                    return true;
                }
            }
            path.pop();
            at = end;
        }
        false
    }
    let mut path = Vec::new();
    walk(data, 0, data.len(), name, &mut path).then_some(path)
}

/// The payload of the first box `name`.
fn record(data: &[u8], name: &[u8; 4]) -> Vec<u8> {
    let path = box_path(data, name).expect("record present");
    let at = *path.last().unwrap();
    let size = u32::from_be_bytes(data[at..at + 4].try_into().unwrap()) as usize;
    data[at + 8..at + size].to_vec()
}

/// `data` with the payload of the first box `name` replaced, and the sizes of the boxes
/// around it fixed. Only for files whose `moov` follows the media (FFmpeg's default), so
/// no chunk offset moves.
fn with_record(data: &[u8], name: &[u8; 4], payload: &[u8]) -> Vec<u8> {
    let path = box_path(data, name).expect("record present");
    let at = *path.last().unwrap();
    let old = u32::from_be_bytes(data[at..at + 4].try_into().unwrap()) as usize;
    let moov = path[0];
    // A fragmented file's fragments address their media from their own moof.
    let fragmented = data.windows(4).any(|w| w == b"mvex");
    assert!(fragmented || data[..moov].windows(4).any(|w| w == b"mdat"), "the moov follows the media");
    let delta = payload.len() as i64 - (old as i64 - 8);
    let mut out = data[..at + 8].to_vec();
    out.extend_from_slice(payload);
    out.extend_from_slice(&data[at + old..]);
    for &b in &path {
        let size = u32::from_be_bytes(out[b..b + 4].try_into().unwrap()) as i64 + delta;
        out[b..b + 4].copy_from_slice(&(size as u32).to_be_bytes());
    }
    out
}

fn run(args: &[&std::ffi::OsStr]) -> (bool, String) {
    let res = livemux().args(args).output().unwrap();
    (res.status.success(), String::from_utf8_lossy(&res.stderr).into_owned())
}

/// x264 through FFmpeg's MP4 muxer writes SPS and PPS only in the `avcC` (global
/// headers), as Chromium's MP4 does. An `avcC` from another encoder setting (baseline,
/// CAVLC, no B-frames, another `pic_order_cnt_type`) parses but makes every slice header
/// read wrong; under `auto` the reference's is taken because the slices parse with it.
#[test]
fn wrong_parameters_without_inband_sets_are_taken_from_the_reference() {
    if !tools(&["ffmpeg", "ffprobe"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let src = ["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25"];
    let high = ["-c:v", "libx264", "-preset", "veryfast", "-threads", "1", "-pix_fmt", "yuv420p"];
    let other = [
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-threads",
        "1",
        "-pix_fmt",
        "yuv420p",
        "-profile:v",
        "baseline",
        "-x264-params",
        "ref=1:keyint=250",
    ];
    let main = ffmpeg(d, "main.mp4", &[&src[..], &["-t", "3"], &high[..]].concat());
    let reference = ffmpeg(d, "reference.mp4", &[&src[..], &["-t", "1"], &high[..]].concat());
    let wrong_ref = ffmpeg(d, "other.mp4", &[&src[..], &["-t", "1"], &other[..]].concat());

    let main_bytes = std::fs::read(&main).unwrap();
    let good = record(&main_bytes, b"avcC");
    assert_eq!(record(&std::fs::read(&reference).unwrap(), b"avcC"), good, "same settings, same record");
    let wrong = record(&std::fs::read(&wrong_ref).unwrap(), b"avcC");
    assert_ne!(wrong, good);
    // No parameter set in-band: the first sample holds SEI and IDR slices only.
    assert_eq!(decode_errors(&main), "");

    let spoiled = d.join("spoiled.mp4");
    std::fs::write(&spoiled, with_record(&main_bytes, b"avcC", &wrong)).unwrap();
    assert_ne!(decode_errors(&spoiled), "", "the spoiled record breaks decoding");

    // auto (the default with a reference): the reference's record is written.
    let out = d.join("fixed.mp4");
    let args: Vec<&std::ffi::OsStr> = vec![
        "remux".as_ref(),
        spoiled.as_os_str(),
        "--reference".as_ref(),
        reference.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
    ];
    let (ok, err) = run(&args);
    assert!(ok, "{err}");
    assert!(
        err.contains("do not parse with its own codec parameters") && err.contains("using the reference's"),
        "{err}"
    );
    assert_eq!(record(&std::fs::read(&out).unwrap(), b"avcC"), good);
    assert_eq!(decode_errors(&out), "", "the output decodes cleanly");
    assert_eq!(framemd5(&out).len(), framemd5(&main).len());

    // A correct stream record is kept, whatever the reference says.
    let out = d.join("kept.mp4");
    let args: Vec<&std::ffi::OsStr> = vec![
        "remux".as_ref(),
        main.as_os_str(),
        "--reference".as_ref(),
        wrong_ref.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
    ];
    let (ok, err) = run(&args);
    assert!(ok, "{err}");
    assert!(err.contains("parse with the stream's codec parameters; keeping them"), "{err}");
    assert_eq!(record(&std::fs::read(&out).unwrap(), b"avcC"), good);
    assert_eq!(decode_errors(&out), "");

    // The same record on both sides: nothing to decide, nothing said.
    let out = d.join("same.mp4");
    let args: Vec<&std::ffi::OsStr> = vec![
        "remux".as_ref(),
        main.as_os_str(),
        "--reference".as_ref(),
        reference.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
    ];
    let (ok, err) = run(&args);
    assert!(ok, "{err}");
    assert!(!err.contains("slice"), "{err}");
    assert_eq!(record(&std::fs::read(&out).unwrap(), b"avcC"), good);
}

/// Chromium's fragmented MP4 (OpenH264, no in-band parameter sets) with an x264 `avcC`
/// of the same size in its place: under `auto` with the browser's probe recording as the
/// reference, the probe's record is written and the output decodes like the original.
#[test]
fn chromium_mp4_with_a_wrong_record_takes_the_probes() {
    if !tools(&["ffmpeg"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let original = browser_file("chrome_mp4_avc1_opus", d);
    let probe = browser_file("chrome_mp4_avc1_opus_probe", d);
    let x264 = ffmpeg(
        d,
        "x264.mp4",
        &["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30", "-t", "1", "-c:v", "libx264", "-preset", "veryfast"],
    );
    let bytes = std::fs::read(&original).unwrap();
    let good = record(&bytes, b"avcC");
    assert_eq!(record(&std::fs::read(&probe).unwrap(), b"avcC"), good);
    let wrong = record(&std::fs::read(&x264).unwrap(), b"avcC");
    let spoiled = d.join("spoiled.mp4");
    std::fs::write(&spoiled, with_record(&bytes, b"avcC", &wrong)).unwrap();
    let out = d.join("fixed.mp4");
    let args: Vec<&std::ffi::OsStr> = vec![
        "remux".as_ref(),
        spoiled.as_os_str(),
        "--reference".as_ref(),
        probe.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
    ];
    let (ok, err) = run(&args);
    assert!(ok, "{err}");
    assert!(err.contains("using the reference's"), "{err}");
    assert_eq!(record(&std::fs::read(&out).unwrap(), b"avcC"), good);
    assert_eq!(decode_errors(&out), "");
    let frames = |p: &Path| stream(&decoded_framemd5(p), 0).into_iter().map(|f| f.md5).collect::<Vec<_>>();
    assert_eq!(frames(&out), frames(&original), "decoded frames equal the original's");
}

/// (stream, pos, size) of each packet, by ffprobe.
fn packets(path: &Path) -> Vec<(u32, u64, u64)> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "packet=stream_index,pos,size", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("run ffprobe");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.trim().split(',').collect();
            Some((f.first()?.parse().ok()?, f.get(2)?.parse().ok()?, f.get(1)?.parse().ok()?))
        })
        .collect()
}

/// The bytes of `path` up to its `moov` (a recording whose index was never written).
fn without_moov(path: &Path) -> Vec<u8> {
    let data = std::fs::read(path).unwrap();
    let moov = box_path(&data, b"moov").expect("a moov")[0];
    data[..moov].to_vec()
}

fn recover(input: &Path, reference: &Path, out: &Path) -> String {
    let _ = std::fs::remove_file(out);
    let args: Vec<&std::ffi::OsStr> = vec![
        "recover".as_ref(),
        input.as_os_str(),
        "--reference".as_ref(),
        reference.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
    ];
    let (ok, err) = run(&args);
    assert!(ok, "{}: {err}", input.display());
    err
}

/// Camera-like MOVs with PCM audio recovered without their index. The audio of the first
/// stops a second before its video (its last audio packet is shorter than the others and
/// video follows it): whole, and cut where the tail is partly video and partly audio.
/// Every audio packet emitted is byte for byte one of the original's, the last one too,
/// and bytes left over are named in a note.
#[test]
fn pcm_mov_tails_are_never_emitted_as_audio() {
    if !tools(&["ffmpeg", "ffprobe"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let args = |t: &'static str, audio: &'static str| {
        vec![
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=30",
            "-f",
            "lavfi",
            "-i",
            audio,
            "-ac",
            "2",
            "-t",
            t,
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-threads",
            "1",
            "-c:a",
            "pcm_s16le",
        ]
    };
    let short_audio = "sine=frequency=440:sample_rate=48000:duration=3";
    let full_audio = "sine=frequency=440:sample_rate=48000";
    let reference = ffmpeg(d, "reference.mov", &args("1", full_audio));
    for (name, audio) in [("short_audio.mov", short_audio), ("camera.mov", full_audio)] {
        let original = ffmpeg(d, name, &args("4", audio));
        let bytes = without_moov(&original);
        let all = packets(&original);
        let audio: Vec<&(u32, u64, u64)> = all.iter().filter(|p| p.0 == 1).collect();
        let originals: HashSet<String> = stream(&framemd5(&original), 1).iter().map(|p| p.md5.clone()).collect();

        // The whole media, cuts inside video access units that follow audio (at several
        // depths), and one inside an audio packet.
        let mut cuts = vec![bytes.len() as u64];
        let mut after_audio = 0;
        for w in all.windows(2).skip(all.len() / 2) {
            let ((s0, _, _), (s1, pos, size)) = (w[0], w[1]);
            if s0 == 1 && s1 == 0 && size > 600 {
                cuts.extend([pos + 5, pos + 300, pos + size - 5]);
                after_audio += 1;
                if after_audio == 3 {
                    break;
                }
            }
        }
        let last = audio[audio.len() - 1];
        cuts.push(last.1 + last.2 / 2);
        assert!(after_audio > 0, "{name} has video after audio: {all:?}");

        for cut in cuts {
            let input = d.join("cut.mov");
            std::fs::write(&input, &bytes[..cut as usize]).unwrap();
            let out = d.join("recovered.mp4");
            let err = recover(&input, &reference, &out);
            let got = stream(&framemd5(&out), 1);
            let inside = audio.iter().filter(|p| p.1 + p.2 <= cut).count();
            for (i, p) in got.iter().enumerate() {
                assert!(
                    originals.contains(&p.md5),
                    "{name} cut at {cut}: audio packet {i} of {} ({} bytes) is not one of the original's: {err}",
                    got.len(),
                    p.size
                );
            }
            assert!(got.len() + 1 >= inside, "{name} cut at {cut}: {} of {inside} audio packets: {err}", got.len());
            // What was not taken is said, with its size.
            let last_end = all.iter().filter(|p| p.1 + p.2 <= cut).map(|p| p.1 + p.2).max().unwrap();
            if last_end < cut {
                assert!(
                    err.contains("bytes (from offset") || err.contains("fit no track and were skipped"),
                    "{name} cut at {cut}: {err}"
                );
            }
            if cut == bytes.len() as u64 {
                // A short packet followed by video is kept; one at the very end cannot be told
                // from a cut one, and is dropped with a note.
                let whole = if name == "short_audio.mov" { audio.len() } else { audio.len() - 1 };
                assert_eq!(got.len(), whole, "{name}: the audio packets of the whole media: {err}");
                let video = stream(&framemd5(&out), 0).len();
                assert_eq!(video, all.len() - audio.len(), "{name}: every video packet: {err}");
            }
            assert_eq!(decode_errors(&out), "", "{name} cut at {cut}");
        }
    }
}
