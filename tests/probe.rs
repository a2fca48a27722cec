//! `livemux probe` next to ffprobe: durations, frame rates and bit rates within 1% of
//! ffprobe's, profile/level and codec names, Matroska layout by element name, the JSON
//! report against `schemas/probe.schema.json`, and the text saying what the JSON says.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::Value;

/// The files compared, made by FFmpeg or recorded by Chromium.
fn fixtures(dir: &Path) -> Vec<(&'static str, PathBuf)> {
    let mut files = vec![
        ("mp4", generated_file("h264_aac_moov_end.mp4")),
        ("fragmented mp4", generated_file("h264_aac_fragmented.mp4")),
        ("hevc mov", generated_file("hevc_aac_moov_end.mov")),
        ("mkv", generated_file("h264_opus.mkv")),
        ("live webm", generated_file("vp9_opus_live.webm")),
        ("audio-only mp4", generated_file("aac_only.mp4")),
        ("browser webm", browser_file("chrome_webm_vp9_opus", dir)),
        ("browser mp4", browser_file("chrome_mp4_avc1_opus", dir)),
    ];
    if let Some(mp3) = mp3_file(dir) {
        files.push(("mp3 in mkv", mp3));
    }
    files
}

/// MP3 in Matroska, made by ffmpeg with libmp3lame; `None` (said loudly, or a failure
/// with LIVEMUX_REQUIRE_TOOLS=1) when this ffmpeg has no libmp3lame.
fn mp3_file(dir: &Path) -> Option<PathBuf> {
    let path = dir.join("mp3.mkv");
    let ok = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "sine=d=3:r=44100", "-ac", "2"])
        .args(["-c:a", "libmp3lame", "-b:a", "128k"])
        .arg(&path)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(!tools_required(), "LIVEMUX_REQUIRE_TOOLS=1 but ffmpeg cannot encode MP3 (libmp3lame)");
        eprintln!("SKIPPED: the MP3 part: ffmpeg cannot encode MP3 (no libmp3lame)");
        return None;
    }
    Some(path)
}

fn probe_json(path: &Path) -> (Value, String) {
    let out = livemux().arg("probe").arg("--json").arg(path).output().unwrap();
    assert!(out.status.success(), "{}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    (serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}")), text)
}

fn probe_text(path: &Path) -> String {
    let out = livemux().arg("probe").arg(path).output().unwrap();
    assert!(out.status.success(), "{}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn ffprobe_json(path: &Path) -> Value {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-of", "json", "-show_entries"])
        .arg("format=duration,bit_rate:stream=codec_type,codec_name,profile,avg_frame_rate,duration,bit_rate")
        .arg(path)
        .output()
        .expect("run ffprobe");
    assert!(out.status.success(), "ffprobe {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// ffprobe's value as a number; `None` for N/A and 0/0.
fn number(v: &Value) -> Option<f64> {
    let s = v.as_str()?;
    let x = match s.split_once('/') {
        Some((n, d)) => n.parse::<f64>().ok()? / d.parse::<f64>().ok()?,
        None => s.parse().ok()?,
    };
    (x.is_finite() && x > 0.0).then_some(x)
}

/// Checks `ours` against ffprobe's `theirs` within 1%, when ffprobe reports one; returns
/// whether it compared.
fn within_1pct(what: &str, ours: &Value, theirs: &Value) -> bool {
    let Some(theirs) = number(theirs) else { return false };
    let ours = ours.as_f64().unwrap_or_else(|| panic!("{what}: livemux says nothing, ffprobe {theirs}"));
    let off = (ours - theirs).abs() / theirs;
    assert!(off <= 0.01, "{what}: livemux {ours}, ffprobe {theirs} ({:.2}% apart)", off * 100.0);
    true
}

#[test]
fn duration_frame_rate_and_bit_rate_agree_with_ffprobe() {
    if !tools(&["ffmpeg", "ffprobe"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut compared = 0;
    for (what, path) in fixtures(dir.path()) {
        let (ours, _) = probe_json(&path);
        let theirs = ffprobe_json(&path);
        let mut here = 0;
        for field in ["duration", "bit_rate"] {
            here += within_1pct(&format!("{what}: {field}"), &ours[field], &theirs["format"][field]) as usize;
        }
        let streams: Vec<&Value> = theirs["streams"].as_array().unwrap().iter().collect();
        for kind in ["video", "audio"] {
            let mine: Vec<&Value> = ours["tracks"].as_array().unwrap().iter().filter(|t| t["kind"] == kind).collect();
            let refs: Vec<&&Value> = streams.iter().filter(|s| s["codec_type"] == kind).collect();
            assert_eq!(mine.len(), refs.len(), "{what}: {kind} tracks");
            for (t, s) in mine.iter().zip(refs) {
                let label = format!("{what}: track {} ({})", t["number"], t["codec"]);
                assert_eq!(t["codec"], s["codec_name"], "{label}: codec name");
                if let Some(p) = s["profile"].as_str().filter(|p| *p != "unknown") {
                    assert_eq!(t["profile"], p, "{label}: profile name");
                }
                for (ours, theirs) in
                    [("duration", "duration"), ("bit_rate", "bit_rate"), ("frame_rate", "avg_frame_rate")]
                {
                    if ours == "frame_rate" && kind != "video" {
                        continue;
                    }
                    here += within_1pct(&format!("{label}: {ours}"), &t[ours], &s[theirs]) as usize;
                }
            }
        }
        eprintln!("{what}: {here} fields agree with ffprobe");
        assert!(here > 0, "{what}: ffprobe gave nothing to compare");
        compared += here;
    }
    assert!(compared >= 30, "{compared} fields compared");
}

#[test]
fn json_validates_against_the_schema_and_the_text_says_the_same() {
    if !tools(&["ffmpeg", "ffprobe"]) || !jsonschema_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut files = fixtures(dir.path());
    files.push(("truncated mp4", generated_file("h264_aac_fragmented_truncated.mp4")));
    for (what, path) in files {
        let (json, raw) = probe_json(&path);
        validate_json("probe.schema.json", &raw, false);
        assert_eq!(json["schema_version"], 1, "{what}");
        let text = probe_text(&path);
        let line = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key).map(str::trim))
                .unwrap_or_else(|| panic!("{what}: no '{key}' line:\n{text}"))
                .to_string()
        };
        assert_eq!(line("index:"), json["index"].as_str().unwrap(), "{what}");
        let layout: Vec<&str> = json["layout"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert_eq!(line("layout:"), layout.join(" "), "{what}");
        if let Some(d) = json["duration"].as_f64() {
            assert!(line("duration:").starts_with(&format!("{d:.3} s")), "{what}: {text}");
        }
        if let Some(b) = json["bit_rate"].as_u64() {
            assert!(line("bit rate:").starts_with(&format!("{b} bit/s")), "{what}: {text}");
        }
        for (i, t) in json["tracks"].as_array().unwrap().iter().enumerate() {
            assert_eq!(t["number"], i + 1, "{what}: tracks are numbered from 1");
            let head =
                format!("track {}:   {} {} ", t["number"], t["kind"].as_str().unwrap(), t["codec"].as_str().unwrap());
            let at = text.find(&head).unwrap_or_else(|| panic!("{what}: no '{head}' in\n{text}"));
            let mut lines = text[at..].lines();
            let first = lines.next().unwrap();
            assert!(first.ends_with(&format!("(params from {})", t["params_from"].as_str().unwrap())), "{first}");
            assert!(first.contains(&format!("packets {}", t["packets"])), "{first}");
            let figures = lines.next().unwrap();
            for (key, shown) in [
                ("profile", t["profile"].as_str().map(|p| format!("profile {p}"))),
                ("level", t["level"].as_str().map(|l| format!("level {l}"))),
                ("duration", t["duration"].as_f64().map(|d| format!("duration {d:.3} s"))),
                ("frame_rate", t["frame_rate"].as_f64().map(|f| format!("{f:.3} fps"))),
                ("bit_rate", t["bit_rate"].as_u64().map(|b| format!("{b} bit/s"))),
                ("bytes", t["bytes"].as_u64().map(|b| format!("{b} bytes"))),
            ] {
                if let Some(shown) = shown {
                    assert!(figures.contains(&shown), "{what}: {key}: '{shown}' not in '{figures}'");
                }
            }
            assert_eq!(lines.next().unwrap().trim(), t["config"].as_str().unwrap(), "{what}");
        }
        // Notes once, the same in both.
        let notes: Vec<&str> = json["notes"].as_array().unwrap().iter().map(|n| n.as_str().unwrap()).collect();
        let mut unique = notes.clone();
        unique.dedup();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), notes.len(), "{what}: a note twice: {notes:?}");
        let text_notes: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("note:")).map(str::trim).collect();
        assert_eq!(text_notes, notes, "{what}");
        assert!(!text.contains("params from Stream") && !text.contains("EBML element"), "{what}: {text}");
    }
}

#[test]
fn matroska_layout_names_elements_and_says_whether_it_has_cues_and_duration() {
    if !tools(&["ffmpeg"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // FFmpeg's Matroska: SeekHead, Info with a Duration, Cues at the end.
    let (mkv, _) = probe_json(&generated_file("h264_opus.mkv"));
    let layout: Vec<String> = mkv["layout"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().into()).collect();
    let names: Vec<&str> = layout.iter().map(|l| l.split('@').next().unwrap()).collect();
    for name in ["EBML", "Segment", "SeekHead", "Info", "Tracks", "Cluster", "Cues"] {
        assert!(names.contains(&name), "no {name} in {layout:?}");
    }
    assert_eq!(layout[0], "EBML@0");
    assert!(!names.iter().any(|n| n.starts_with("0x") || *n == "Timestamp"), "{layout:?}");
    assert_eq!(mkv["index"], "cues: yes, duration: yes");
    assert_eq!(mkv["matroska"], serde_json::json!({"cues": true, "duration": true}));
    // Chromium's live WebM: neither.
    let (webm, _) = probe_json(&browser_file("chrome_webm_vp9_opus", dir.path()));
    assert_eq!(webm["index"], "cues: no, duration: no");
    assert!(webm["duration"].as_f64().is_some_and(|d| (5.5..6.5).contains(&d)), "{}", webm["duration"]);
    let text = probe_text(&browser_file("chrome_webm_vp9_opus", dir.path()));
    assert!(text.contains("index:     cues: no, duration: no"), "{text}");
    assert!(text.contains("layout:    EBML@0 Segment@"), "{text}");
}

#[test]
fn names_profiles_levels_and_codecs_livemux_does_not_write() {
    if !tools(&["ffmpeg"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (mp4, _) = probe_json(&generated_file("h264_aac_moov_end.mp4"));
    assert_eq!((mp4["tracks"][0]["profile"].as_str(), mp4["tracks"][0]["level"].as_str()), (Some("High"), Some("3.0")));
    assert_eq!(mp4["tracks"][1]["profile"], "LC");
    let (hevc, _) = probe_json(&generated_file("hevc_aac_moov_end.mov"));
    assert_eq!(hevc["tracks"][0]["profile"], "Main");
    let (chrome, _) = probe_json(&browser_file("chrome_mp4_avc1_opus", dir.path()));
    assert_eq!(chrome["tracks"][0]["profile"], "Constrained Baseline");
    assert_eq!(chrome["tracks"][0]["level"], "3.1");
    assert!(chrome["creation_time"].as_str().is_some_and(|c| c.ends_with('Z')), "{}", chrome["creation_time"]);
    let (webm, _) = probe_json(&browser_file("chrome_webm_vp9_opus", dir.path()));
    assert_eq!(webm["tracks"][0]["profile"], "Profile 0");
    assert_eq!(webm["tracks"][0]["language"], "eng");
    // A codec livemux does not read: the probe fails, naming the track all the same.
    let mpeg2 = dir.path().join("mpeg2.mkv");
    let ok = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=d=1:s=320x240", "-c:v", "mpeg2video"])
        .arg(&mpeg2)
        .status()
        .unwrap()
        .success();
    assert!(ok, "ffmpeg -c:v mpeg2video");
    let out = livemux().arg("probe").arg("--json").arg(&mpeg2).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["tracks"][0]["codec"], "mpeg2video", "{json}");
    assert_eq!(json["tracks"][0]["dimensions"]["width"], 320, "{json}");
    assert_eq!(json["index"], "cues: yes, duration: yes", "the SeekHead lists the Cues the read did not reach");
    if let Some(mp3) = mp3_file(dir.path()) {
        let (json, _) = probe_json(&mp3);
        assert_eq!(json["tracks"][0]["codec"], "mp3", "{json}");
        assert!(probe_text(&mp3).contains("track 1:   audio mp3 44100 Hz, 2 ch"));
    }
}

#[test]
fn rotation_comes_from_the_display_matrix() {
    if !tools(&["ffmpeg", "ffprobe"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let rotated = dir.path().join("rotated.mp4");
    // FFmpeg 6.1 and later take -display_rotation; earlier ones the stream's rotate tag.
    let ffmpeg = |before: &[&str], after: &[&str]| {
        Command::new("ffmpeg")
            .args(["-nostdin", "-v", "quiet", "-y"])
            .args(before)
            .arg("-i")
            .arg(generated_file("h264_aac_reference_1s.mp4"))
            .args(["-c", "copy"])
            .args(after)
            .arg(&rotated)
            .status()
            .unwrap()
            .success()
    };
    assert!(
        ffmpeg(&["-display_rotation", "90"], &[]) || ffmpeg(&[], &["-metadata:s:v", "rotate=90"]),
        "ffmpeg could not write a rotated file"
    );
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v", "-show_entries", "stream_side_data=rotation", "-of", "csv=p=0"])
        .arg(&rotated)
        .output()
        .unwrap();
    let theirs: i64 = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.trim().parse().ok())
        .expect("ffprobe sees a rotation");
    assert_ne!(theirs, 0);
    let (json, _) = probe_json(&rotated);
    assert_eq!(json["tracks"][0]["rotation"], theirs, "{json}");
    assert!(probe_text(&rotated).contains(&format!("rotation {theirs}")));
}

#[test]
fn failed_probes_print_json_that_validates_too() {
    if !tools(&["ffmpeg"]) || !jsonschema_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.bin");
    std::fs::write(&garbage, b"not a media file at all").unwrap();
    for path in [generated_file("h264_aac_truncated_60pct.mp4"), garbage] {
        let out = livemux().arg("probe").arg("--json").arg(&path).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", path.display());
        let raw = String::from_utf8(out.stdout).unwrap();
        validate_json("probe.schema.json", &raw, false);
        let json: Value = serde_json::from_str(&raw).unwrap();
        assert!(json["error"].is_string(), "{json}");
        assert_eq!(json["schema_version"], 1);
    }
}
