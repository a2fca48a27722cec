//! Codecs carried through a remux: PCM in every byte order decodes to the same samples,
//! and Vorbis, FLAC, MP3, AC-3, E-AC-3, DTS and ALAC pass through with their codec
//! private data mapped wherever the output container can carry them (packets identical
//! per FFmpeg), refused by name and track where it cannot, or dropped with
//! `--skip-unsupported`. Inputs are made with FFmpeg in a temporary directory.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("livemux-codec-passthrough-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs ffmpeg with `args` writing `out`; false when this FFmpeg cannot (encoder or
/// muxer missing), so that the caller can skip that input loudly.
fn ffmpeg(args: &[&str], out: &Path) -> bool {
    let o = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y"])
        .args(args)
        .arg(out)
        .output()
        .expect("run ffmpeg");
    if !o.status.success() {
        eprintln!("SKIPPED input {}: {}", out.display(), String::from_utf8_lossy(&o.stderr).trim());
    }
    o.status.success()
}

/// `ffmpeg -i FILE -map 0:a -f md5 -`: the MD5 of the decoded audio.
fn decoded_md5(path: &Path) -> String {
    let o = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-map", "0:a", "-f", "md5", "-"])
        .output()
        .expect("run ffmpeg");
    assert!(o.status.success(), "decode {}: {}", path.display(), String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn codec_names(path: &Path) -> Vec<String> {
    let (_, out) = ffprobe(path, "stream=codec_name");
    out.lines().filter_map(|l| l.strip_prefix("codec_name=")).map(str::to_string).collect()
}

/// `livemux remux IN -o OUT --to FORMAT [extra]`: (success, stderr).
fn remux(input: &Path, output: &Path, to: &str, extra: &[&str]) -> (bool, String) {
    let o =
        livemux().arg("remux").arg(input).arg("-o").arg(output).args(["-y", "--to", to]).args(extra).output().unwrap();
    (o.status.success(), String::from_utf8_lossy(&o.stderr).into_owned())
}

/// Asserts the packets of every stream carry the same bytes in the same order (sizes
/// and MD5s; timestamps are another test's business: the time bases differ).
fn assert_same_bytes(input: &[FramePacket], output: &[FramePacket], what: &str) {
    let streams = input.iter().map(|p| p.stream).max().map_or(0, |m| m + 1);
    assert_eq!(streams, output.iter().map(|p| p.stream).max().map_or(0, |m| m + 1), "{what}: stream count");
    for s in 0..streams {
        let bytes = |p: &[FramePacket]| stream(p, s).into_iter().map(|p| (p.size, p.md5)).collect::<Vec<_>>();
        let (a, b) = (bytes(input), bytes(output));
        assert_eq!(a.len(), b.len(), "{what}: stream {s} packet count");
        if let Some(i) = a.iter().zip(&b).position(|(x, y)| x != y) {
            panic!("{what}: stream {s} packet {i}: {:?} became {:?}", a[i], b[i]);
        }
    }
}

/// Output targets: (--to, file extension).
const TARGETS: [(&str, &str); 4] = [("mp4", "mp4"), ("fmp4", "mp4"), ("mkv", "mkv"), ("webm", "webm")];

#[test]
fn pcm_decodes_to_the_same_samples_in_every_byte_order() {
    if !tools(&["ffmpeg", "ffprobe"]) {
        return;
    }
    let dir = tmp("pcm");
    let mut checked = 0;
    let formats = ["s16le", "s16be", "s24le", "s24be", "s32le", "s32be", "f32le", "f32be", "f64le", "f64be"];
    // 96 kHz does not fit the 16.16 rate of a version 0/1 sound description.
    let cases = formats.iter().map(|f| (*f, 44_100)).chain([("s24le", 96_000), ("f32be", 96_000), ("s16le", 192_000)]);
    for (fmt, rate) in cases {
        for container in ["mov", "mp4", "mkv"] {
            let input = dir.join(format!("in-{fmt}-{rate}.{container}"));
            let codec = format!("pcm_{fmt}");
            let source = format!("sine=f=440:d=1:r={rate}");
            // Matroska has no big-endian float; MP4 (ISO) PCM needs FFmpeg 6.
            if !ffmpeg(&["-f", "lavfi", "-i", &source, "-ac", "2", "-c:a", &codec], &input) {
                continue;
            }
            let want = decoded_md5(&input);
            for (to, ext) in TARGETS.iter().filter(|(to, _)| *to != "webm") {
                let out = dir.join(format!("out-{fmt}-{rate}-{container}-{to}.{ext}"));
                let (ok, err) = remux(&input, &out, to, &[]);
                assert!(ok, "{fmt} {container} -> {to}: {err}");
                assert_eq!(decoded_md5(&out), want, "{fmt} {container} -> {to}: decoded samples differ");
                // The byte order survives where the container can say it (Matroska
                // stores float little-endian only: big-endian floats are swapped).
                let mut expect = codec.clone();
                if *to == "mkv" && fmt.starts_with('f') {
                    expect = expect.replace("be", "le");
                }
                assert_eq!(codec_names(&out), [expect], "{fmt} {container} -> {to}");
                let (_, probed) = ffprobe(&out, "stream=sample_rate");
                assert_eq!(probed.trim(), format!("sample_rate={rate}"), "{fmt} {container} -> {to}");
                checked += 1;
            }
        }
    }
    // 13 formats from MOV, 10 from Matroska (no big-endian float), each to 3 targets;
    // FFmpeg 6 also makes ISO MP4 PCM inputs.
    assert!(checked >= 69, "only {checked} PCM remuxes checked");
}

/// An input made by FFmpeg with one audio codec.
struct Case {
    name: &'static str,
    /// FFmpeg's codec name, as ffprobe prints it.
    probe_name: &'static str,
    args: &'static [&'static str],
    containers: &'static [&'static str],
    /// --to values that must refuse it.
    refused_by: &'static [&'static str],
}

const CASES: &[Case] = &[
    Case {
        name: "vorbis",
        probe_name: "vorbis",
        args: &["-c:a", "libvorbis"],
        containers: &["mkv", "webm", "mp4"],
        refused_by: &[],
    },
    Case {
        name: "flac",
        probe_name: "flac",
        args: &["-c:a", "flac", "-strict", "-2"],
        containers: &["mkv", "mp4"],
        refused_by: &["webm"],
    },
    Case {
        name: "mp3",
        probe_name: "mp3",
        args: &["-c:a", "libmp3lame"],
        containers: &["mkv", "mp4", "mov"],
        refused_by: &["webm"],
    },
    Case {
        name: "ac3",
        probe_name: "ac3",
        args: &["-c:a", "ac3"],
        containers: &["mkv", "mp4", "mov"],
        refused_by: &["webm"],
    },
    Case {
        name: "eac3",
        probe_name: "eac3",
        args: &["-c:a", "eac3"],
        containers: &["mkv", "mp4", "mov"],
        refused_by: &["webm"],
    },
    Case {
        name: "alac",
        probe_name: "alac",
        args: &["-c:a", "alac"],
        containers: &["mkv", "mp4", "mov"],
        refused_by: &["webm"],
    },
    Case {
        name: "dts",
        probe_name: "dts",
        args: &["-c:a", "dca", "-strict", "-2"],
        containers: &["mkv"],
        refused_by: &["webm", "mp4", "fmp4"],
    },
];

#[test]
fn audio_codecs_pass_through_where_the_target_carries_them() {
    if !tools(&["ffmpeg", "ffprobe"]) {
        return;
    }
    let dir = tmp("codecs");
    let mut passed = 0;
    for case in CASES {
        for container in case.containers {
            let input = dir.join(format!("in-{}.{container}", case.name));
            let mut args = vec!["-f", "lavfi", "-i", "sine=f=440:d=2:r=48000", "-ac", "2"];
            args.extend_from_slice(case.args);
            if !ffmpeg(&args, &input) {
                assert!(case.name != "vorbis" || !tools_required(), "no Vorbis encoder");
                continue;
            }
            let want = framemd5(&input);
            assert!(want.len() > 10, "{}: {} packets", input.display(), want.len());
            for (to, ext) in TARGETS {
                let out = dir.join(format!("out-{}-{container}-{to}.{ext}", case.name));
                let (ok, err) = remux(&input, &out, to, &[]);
                if case.refused_by.contains(&to) {
                    assert!(!ok, "{} {container} -> {to} was not refused", case.name);
                    let format = if to == "fmp4" { "mp4" } else { to };
                    let expect = format!("track 1: {} cannot be written to {format}", case.probe_name);
                    assert!(err.contains(&expect), "{} {container} -> {to}: {err}", case.name);
                    continue;
                }
                assert!(ok, "{} {container} -> {to}: {err}", case.name);
                assert_eq!(codec_names(&out), [case.probe_name], "{} {container} -> {to}", case.name);
                assert_same_bytes(&want, &framemd5(&out), &format!("{} {container} -> {to}", case.name));
                assert_eq!(decode_errors(&out), "", "{} {container} -> {to}", case.name);
                passed += 1;
            }
        }
    }
    assert!(passed >= 30, "only {passed} remuxes checked");
}

#[test]
fn vp8_vorbis_webm_remuxes_to_webm_mkv_and_mp4() {
    if !tools(&["ffmpeg", "ffprobe"]) {
        return;
    }
    let dir = tmp("webm");
    let input = dir.join("in.webm");
    let video = ["-f", "lavfi", "-i", "testsrc=s=160x120:d=2:r=25", "-f", "lavfi", "-i", "sine=d=2"];
    let mut args = video.to_vec();
    args.extend(["-c:v", "libvpx", "-b:v", "200k", "-c:a", "libvorbis", "-ac", "2"]);
    if !ffmpeg(&args, &input) {
        assert!(!tools_required(), "FFmpeg cannot make VP8 + Vorbis WebM");
        return;
    }
    let want = framemd5(&input);
    for (to, ext, format) in [
        ("webm", "webm", "matroska,webm"),
        ("mkv", "mkv", "matroska,webm"),
        ("matroska", "webm", "matroska,webm"),
        // Vorbis in MP4 as FFmpeg writes it (esds objectTypeIndication 0xDD).
        ("mp4", "mp4", "mov,mp4"),
    ] {
        let out = dir.join(format!("out-{to}.{ext}"));
        let (ok, err) = remux(&input, &out, to, &[]);
        assert!(ok, "-> {to}: {err}");
        assert_eq!(codec_names(&out), ["vp8", "vorbis"], "-> {to}");
        assert_same_bytes(&want, &framemd5(&out), to);
        let (_, probed) = ffprobe(&out, "format=format_name");
        assert!(probed.contains(format), "{probed}");
        assert_eq!(decode_errors(&out), "", "-> {to}");
    }
}

#[test]
fn tracks_the_target_cannot_carry_are_refused_by_name_or_skipped() {
    if !tools(&["ffmpeg", "ffprobe"]) {
        return;
    }
    let dir = tmp("skip");
    let input = dir.join("in.mkv");
    let args = ["-f", "lavfi", "-i", "testsrc=s=160x120:d=1:r=25", "-f", "lavfi", "-i", "sine=d=1"];
    let mut a = args.to_vec();
    a.extend(["-map", "0", "-map", "1", "-c:v", "libvpx", "-c:a", "dca", "-strict", "-2", "-ac", "2"]);
    if !ffmpeg(&a, &input) {
        assert!(!tools_required(), "FFmpeg cannot make VP8 + DTS");
        return;
    }
    let want = framemd5(&input);
    let out = dir.join("out.mp4");
    let (ok, err) = remux(&input, &out, "mp4", &[]);
    assert!(!ok && err.contains("track 2: dts cannot be written to mp4"), "{err}");
    assert!(!out.exists(), "a refused run left {}", out.display());
    let (ok, err) = remux(&input, &out, "mp4", &["--skip-unsupported"]);
    assert!(ok, "{err}");
    assert!(err.contains("track 2: dts cannot be written to mp4") && err.contains("dropped"), "{err}");
    assert_eq!(codec_names(&out), ["vp8"]);
    assert_same_bytes(&stream(&want, 0), &framemd5(&out), "vp8 alone");
    // WebM drops the DTS track the same way; mkv keeps both.
    let webm = dir.join("out.webm");
    let (ok, err) = remux(&input, &webm, "webm", &["--skip-unsupported"]);
    assert!(ok && err.contains("track 2: dts cannot be written to webm"), "{err}");
    assert_eq!(codec_names(&webm), ["vp8"]);
    let mkv = dir.join("out.mkv");
    let (ok, err) = remux(&input, &mkv, "mkv", &["--skip-unsupported"]);
    assert!(ok && !err.contains("dropped"), "{err}");
    assert_same_bytes(&want, &framemd5(&mkv), "mkv");
}

#[test]
fn skip_unsupported_in_a_pipeline_file_and_recover_flag() {
    if !tools(&["ffmpeg", "ffprobe"]) {
        return;
    }
    let dir = tmp("pipeline");
    let input = dir.join("in.mkv");
    let args = ["-f", "lavfi", "-i", "sine=d=1", "-f", "lavfi", "-i", "sine=f=880:d=1", "-map", "0", "-map", "1"];
    let mut a = args.to_vec();
    a.extend(["-c:a:0", "aac", "-c:a:1", "dca", "-strict", "-2"]);
    if !ffmpeg(&a, &input) {
        return;
    }
    let out = dir.join("out.mp4");
    let pipeline = dir.join("p.toml");
    let text = |skip: bool| {
        format!(
            "stage = [\n  {{ kind = \"source\", path = {:?} }},\n  {{ kind = \"probe\" }},\n  \
             {{ kind = \"codecpar-extract\" }},\n  {{ kind = \"packet-split\" }},\n  \
             {{ kind = \"mux\", format = \"mp4\", skip_unsupported = {skip} }},\n  \
             {{ kind = \"sink\", path = {:?} }},\n]\n",
            input.display().to_string(),
            out.display().to_string()
        )
    };
    std::fs::write(&pipeline, text(false)).unwrap();
    let o = livemux().arg("run").arg(&pipeline).arg("-y").output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("track 2: dts cannot be written to mp4"), "{err}");
    std::fs::write(&pipeline, text(true)).unwrap();
    let o = livemux().arg("run").arg(&pipeline).arg("-y").output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && err.contains("dropped"), "{err}");
    assert_eq!(codec_names(&out), ["aac"]);
    // `recover` takes the flag too.
    let o = livemux().args(["recover", "--help"]).output().unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).contains("--skip-unsupported"));
}

#[test]
fn probe_names_the_codecs() {
    if !tools(&["ffmpeg"]) {
        return;
    }
    let dir = tmp("probe");
    for (name, args, container, config) in [
        ("flac", &["-c:a", "flac"][..], "mkv", "FLAC metadata blocks"),
        ("ac3", &["-c:a", "ac3"][..], "mkv", "dac3"),
        ("eac3", &["-c:a", "eac3"][..], "mp4", "dec3"),
        ("alac", &["-c:a", "alac"][..], "mp4", "ALAC magic cookie"),
        ("mp3", &["-c:a", "libmp3lame"][..], "mp4", "none"),
        ("vorbis", &["-c:a", "libvorbis"][..], "mkv", "Vorbis headers"),
        ("vorbis", &["-c:a", "libvorbis"][..], "mp4", "Vorbis headers"),
    ] {
        let input = dir.join(format!("in-{name}.{container}"));
        let mut a = vec!["-f", "lavfi", "-i", "sine=d=1:r=48000", "-ac", "2"];
        a.extend_from_slice(args);
        if !ffmpeg(&a, &input) {
            continue;
        }
        let o = livemux().arg("probe").arg(&input).output().unwrap();
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "{name}: {}", String::from_utf8_lossy(&o.stderr));
        assert!(text.contains(&format!("audio {name} 48000 Hz, 2 ch")), "{name}: {text}");
        assert!(text.contains(config), "{name}: {text}");
    }
}
