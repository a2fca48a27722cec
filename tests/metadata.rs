//! Metadata survives a remux: rotation, language, pixel aspect, colour, HDR, title,
//! creation time and tags read back the same in ffprobe after remux to fMP4, regular MP4,
//! Matroska, WebM (where the codec allows) and after `livemux finalize`. Inputs are made
//! with FFmpeg and mkvmerge in a temporary directory.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{livemux, tools};
use serde_json::Value;

fn run(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ffmpeg(dir: &Path, args: &[&str]) {
    let mut c = Command::new("ffmpeg");
    c.current_dir(dir).args(["-v", "error", "-y"]).args(args);
    run(&mut c, &format!("ffmpeg {args:?}"));
}

fn mkvmerge(dir: &Path, args: &[&str]) {
    let mut c = Command::new("mkvmerge");
    c.current_dir(dir).arg("-q").args(args);
    run(&mut c, &format!("mkvmerge {args:?}"));
}

/// An H.264 clip (and an AAC track when `audio`), without colour in the bitstream, so that
/// colour read back can only come from the container.
fn base(dir: &Path, audio: bool) -> PathBuf {
    let name = if audio { "base_av.mp4" } else { "base.mp4" };
    if !dir.join(name).exists() {
        let mut args = vec!["-f", "lavfi", "-i", "testsrc2=s=64x48:d=1:r=10"];
        if audio {
            args.extend(["-f", "lavfi", "-i", "sine=f=440:d=1:r=48000", "-c:a", "aac", "-b:a", "64k"]);
        }
        args.extend(["-c:v", "libx264", "-g", "5", "-pix_fmt", "yuv420p", name]);
        ffmpeg(dir, &args);
    }
    dir.join(name)
}

fn probe(path: &Path) -> Value {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_streams", "-show_format", "-of", "json"])
        .arg(path)
        .output()
        .expect("run ffprobe");
    assert!(out.status.success(), "ffprobe {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("ffprobe json")
}

fn fraction(v: &Value) -> Option<f64> {
    let s = v.as_str()?;
    let (n, d) = s.split_once('/').unwrap_or((s, "1"));
    Some(n.parse::<f64>().ok()? / d.parse::<f64>().ok()?)
}

/// A tag, by case-insensitive name (Matroska's are upper-case).
fn tag(obj: &Value, name: &str) -> Option<String> {
    obj.get("tags")?
        .as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.as_str())
        .map(String::from)
}

/// What ffprobe says of the things a remux must keep, normalised where formats say the
/// same thing differently (Matroska leaves `und` unsaid, writes tags upper-case, stores
/// chromaticities as floats).
#[derive(Debug, PartialEq)]
struct Seen {
    format: Vec<(String, Option<String>)>,
    streams: Vec<Vec<(String, String)>>,
}

const FORMAT_TAGS: [&str; 5] = ["title", "creation_time", "artist", "comment", "album"];

fn seen(path: &Path) -> Seen {
    let v = probe(path);
    let format = FORMAT_TAGS.iter().map(|k| (k.to_string(), tag(&v["format"], k))).collect();
    let mut streams = Vec::new();
    for s in v["streams"].as_array().expect("streams") {
        let mut f: Vec<(String, String)> = Vec::new();
        let mut put = |k: &str, v: String| f.push((k.to_string(), v));
        put("type", s["codec_type"].as_str().unwrap_or("").into());
        put("language", tag(s, "language").unwrap_or_else(|| "und".into()));
        if s["codec_type"] == "video" {
            let sar = s["sample_aspect_ratio"].as_str().filter(|r| *r != "0:1").unwrap_or("1:1");
            put("sar", sar.into());
            for k in ["color_range", "color_space", "color_transfer", "color_primaries"] {
                put(k, s[k].as_str().unwrap_or("unknown").into());
            }
        }
        for d in s["side_data_list"].as_array().into_iter().flatten() {
            match d["side_data_type"].as_str() {
                Some("Display Matrix") => put("rotation", format!("{}", d["rotation"].as_f64().unwrap_or(f64::NAN))),
                Some("Mastering display metadata") => {
                    for k in [
                        "red_x",
                        "red_y",
                        "green_x",
                        "green_y",
                        "blue_x",
                        "blue_y",
                        "white_point_x",
                        "white_point_y",
                        "min_luminance",
                        "max_luminance",
                    ] {
                        put(k, format!("{:.5}", fraction(&d[k]).unwrap_or(f64::NAN)));
                    }
                }
                Some("Content light level metadata") => {
                    put("max_content", d["max_content"].to_string());
                    put("max_average", d["max_average"].to_string());
                }
                _ => {}
            }
        }
        f.sort();
        streams.push(f);
    }
    Seen { format, streams }
}

/// Remuxes `input` to every target (and finalizes the fMP4) and checks that ffprobe sees the
/// same metadata as in the input. Returns the outputs.
fn check_all(dir: &Path, input: &Path, targets: &[&str], expect: impl Fn(&Seen)) -> Vec<PathBuf> {
    let want = seen(input);
    expect(&want);
    let stem = input.file_stem().unwrap().to_string_lossy().into_owned();
    let mut outs = Vec::new();
    for to in targets {
        let ext = if *to == "fmp4" { "mp4" } else { to };
        let out = dir.join(format!("{stem}.{to}.{ext}"));
        let mut c = livemux();
        c.arg("remux").arg(input).arg("-o").arg(&out).args(["-y", "--to", to]);
        run(&mut c, &format!("livemux remux {} --to {to}", input.display()));
        assert_eq!(seen(&out), want, "{} --to {to}", input.display());
        if *to == "fmp4" {
            let fin = dir.join(format!("{stem}.finalized.mp4"));
            std::fs::copy(&out, &fin).unwrap();
            run(livemux().arg("finalize").arg(&fin), "livemux finalize");
            assert_eq!(seen(&fin), want, "{} --to fmp4, then finalize", input.display());
            outs.push(fin);
        }
        outs.push(out);
    }
    outs
}

fn field<'a>(s: &'a Seen, stream: usize, k: &str) -> Option<&'a str> {
    s.streams.get(stream)?.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

fn format_tag<'a>(s: &'a Seen, k: &str) -> Option<&'a str> {
    s.format.iter().find(|(n, _)| n == k).and_then(|(_, v)| v.as_deref())
}

const ALL: [&str; 3] = ["fmp4", "mp4", "mkv"];

#[test]
fn rotation_language_title_and_tags_from_mp4() {
    if !tools(&["ffmpeg", "ffprobe"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    base(d, true);
    base(d, false);
    #[rustfmt::skip]
    ffmpeg(d, &["-i", "base_av.mp4", "-map", "0", "-c", "copy",
        "-metadata:s:v", "rotate=90", "-metadata:s:v", "language=fre", "-metadata:s:a", "language=und",
        "-metadata", "title=A title", "-metadata", "artist=Someone", "-metadata", "comment=Hi there",
        "-metadata", "album=Album", "-metadata", "creation_time=2020-01-02T03:04:05Z", "rot90.mp4"]);
    let outs = check_all(d, &d.join("rot90.mp4"), &ALL, |s| {
        assert_eq!(field(s, 0, "rotation"), Some("90"), "{s:?}");
        assert_eq!(field(s, 0, "language"), Some("fre"));
        assert_eq!(field(s, 1, "language"), Some("und"));
        assert_eq!(format_tag(s, "title"), Some("A title"));
        assert_eq!(format_tag(s, "creation_time"), Some("2020-01-02T03:04:05.000000Z"));
        assert_eq!(format_tag(s, "artist"), Some("Someone"));
    });
    // The Matroska output says it as FFmpeg reads a rotation: a rectangular projection
    // rolled 90 degrees; and writes `und` explicitly (its default is English).
    if tools(&["mkvinfo"]) {
        let mkv = outs.iter().find(|p| p.extension().unwrap() == "mkv").unwrap();
        let info = Command::new("mkvinfo").arg(mkv).output().unwrap();
        let info = String::from_utf8_lossy(&info.stdout);
        assert!(info.contains("Projection type: 0") && info.contains("roll rotation: 90"), "{info}");
        assert!(info.contains("Language: und"), "{info}");
    }

    ffmpeg(
        d,
        &["-i", "base.mp4", "-c", "copy", "-metadata:s:v", "rotate=270", "-metadata:s:v", "language=eng", "rot270.mp4"],
    );
    check_all(d, &d.join("rot270.mp4"), &ALL, |s| {
        assert_eq!(field(s, 0, "rotation"), Some("-90"), "{s:?}");
        assert_eq!(field(s, 0, "language"), Some("eng"));
    });
}

#[test]
fn quicktime_language_codes() {
    if !tools(&["ffmpeg", "ffprobe"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    base(d, true);
    // FFmpeg's QuickTime muxer writes English as Macintosh language code 0, French as 1.
    #[rustfmt::skip]
    ffmpeg(d, &["-i", "base_av.mp4", "-map", "0", "-c", "copy",
        "-metadata:s:v", "language=eng", "-metadata:s:a", "language=fra", "qt.mov"]);
    check_all(d, &d.join("qt.mov"), &ALL, |s| {
        assert_eq!(field(s, 0, "language"), Some("eng"), "{s:?}");
        assert_eq!(field(s, 1, "language"), Some("fra"));
    });
}

#[test]
fn pixel_aspect_and_colour_from_mp4() {
    if !tools(&["ffmpeg", "ffprobe"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    base(d, false);
    #[rustfmt::skip]
    ffmpeg(d, &["-i", "base.mp4", "-c", "copy", "-aspect", "8:3",
        "-color_primaries", "bt709", "-color_trc", "bt709", "-colorspace", "bt709", "-color_range", "pc", "bt709.mp4"]);
    check_all(d, &d.join("bt709.mp4"), &ALL, |s| {
        assert_eq!(field(s, 0, "sar"), Some("2:1"), "{s:?}");
        assert_eq!(field(s, 0, "color_primaries"), Some("bt709"));
        assert_eq!(field(s, 0, "color_range"), Some("pc"));
    });
}

#[test]
fn hdr_and_pixel_aspect_from_matroska_and_mp4() {
    if !tools(&["ffmpeg", "ffprobe", "mkvmerge"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    base(d, false);
    #[rustfmt::skip]
    mkvmerge(d, &["-o", "hdr.mkv", "--title", "HDR clip", "--language", "0:ger", "--track-name", "0:Camera",
        "--colour-matrix", "0:9", "--colour-range", "0:1", "--colour-transfer-characteristics", "0:16",
        "--colour-primaries", "0:9", "--max-content-light", "0:1000", "--max-frame-light", "0:400",
        "--chromaticity-coordinates", "0:0.68,0.32,0.265,0.69,0.15,0.06", "--white-colour-coordinates", "0:0.3127,0.329",
        "--max-luminance", "0:1000", "--min-luminance", "0:0.005", "--display-dimensions", "0:128x48", "base.mp4"]);
    let expect = |s: &Seen| {
        assert_eq!(field(s, 0, "sar"), Some("2:1"), "{s:?}");
        assert_eq!(field(s, 0, "color_transfer"), Some("smpte2084"));
        assert_eq!(field(s, 0, "color_primaries"), Some("bt2020"));
        assert_eq!(field(s, 0, "max_content"), Some("1000"));
        assert_eq!(field(s, 0, "red_x"), Some("0.68000"));
        assert_eq!(field(s, 0, "max_luminance"), Some("1000.00000"));
        assert_eq!(field(s, 0, "language"), Some("ger"));
    };
    let outs = check_all(d, &d.join("hdr.mkv"), &ALL, |s| {
        expect(s);
        assert_eq!(format_tag(s, "title"), Some("HDR clip"));
    });
    // The track name goes through MP4 (`udta/name`, which ffprobe does not show) and back.
    let mp4 = outs.iter().find(|p| p.to_string_lossy().ends_with(".mp4.mp4")).unwrap();
    let back = d.join("back.mkv");
    run(livemux().arg("remux").arg(mp4).arg("-o").arg(&back).args(["--to", "mkv"]), "remux back to mkv");
    let v = probe(&back);
    assert_eq!(tag(&v["streams"][0], "title").as_deref(), Some("Camera"));
    assert_eq!(tag(&v["format"], "title").as_deref(), Some("HDR clip"));

    // FFmpeg's MP4 of it (colr, mdcv, clli, pasp boxes) reads the same.
    ffmpeg(d, &["-i", "hdr.mkv", "-c", "copy", "hdr_ffmpeg.mp4"]);
    check_all(d, &d.join("hdr_ffmpeg.mp4"), &ALL, expect);
}

#[test]
fn vp9_to_webm_keeps_rotation_language_and_title() {
    if !tools(&["ffmpeg", "ffprobe"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    #[rustfmt::skip]
    ffmpeg(d, &["-f", "lavfi", "-i", "testsrc2=s=64x48:d=1:r=10", "-c:v", "libvpx-vp9", "-deadline", "realtime",
        "-cpu-used", "8", "-g", "5", "vp9_plain.mp4"]);
    #[rustfmt::skip]
    ffmpeg(d, &["-i", "vp9_plain.mp4", "-c", "copy", "-metadata:s:v", "rotate=180", "-metadata:s:v", "language=jpn",
        "-metadata", "title=VP9", "-aspect", "8:3", "vp9.mp4"]);
    check_all(d, &d.join("vp9.mp4"), &["webm", "mkv", "fmp4", "mp4"], |s| {
        assert_eq!(field(s, 0, "rotation"), Some("-180"), "{s:?}");
        assert_eq!(field(s, 0, "language"), Some("jpn"));
        assert_eq!(field(s, 0, "sar"), Some("2:1"));
        assert_eq!(format_tag(s, "title"), Some("VP9"));
    });
}

/// The attached picture ffprobe sees (codec, MD5 of its bytes), if any.
fn cover_of(path: &Path) -> Option<(String, String)> {
    let v = probe(path);
    let s = v["streams"].as_array()?.iter().find(|s| s["disposition"]["attached_pic"] == 1)?.clone();
    let index = s["index"].as_u64()?.to_string();
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-map", &format!("0:{index}"), "-c", "copy", "-f", "md5", "-"])
        .output()
        .expect("run ffmpeg");
    Some((s["codec_name"].as_str()?.to_string(), String::from_utf8_lossy(&out.stdout).trim().to_string()))
}

#[test]
fn cover_art_between_ilst_and_attachments() {
    if !tools(&["ffmpeg", "ffprobe"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    base(d, false);
    ffmpeg(d, &["-f", "lavfi", "-i", "color=blue:s=16x16", "-frames:v", "1", "cover.jpg"]);
    #[rustfmt::skip]
    ffmpeg(d, &["-i", "base.mp4", "-i", "cover.jpg", "-map", "0", "-map", "1", "-c", "copy",
        "-disposition:v:1", "attached_pic", "-metadata", "title=Cover", "cover.mp4"]);
    let want = cover_of(&d.join("cover.mp4"));
    assert_eq!(want.as_ref().map(|c| c.0.as_str()), Some("mjpeg"), "the input has its cover");
    let outs = check_all(d, &d.join("cover.mp4"), &ALL, |_| {});
    for out in &outs {
        assert_eq!(cover_of(out), want, "{}", out.display());
    }
    // And back from the Matroska attachment to an MP4 'covr'.
    let mkv = outs.iter().find(|p| p.extension().unwrap() == "mkv").unwrap();
    let back = d.join("cover_back.mp4");
    run(livemux().arg("remux").arg(mkv).arg("-o").arg(&back).args(["--to", "mp4"]), "remux mkv to mp4");
    assert_eq!(cover_of(&back), want);
}
