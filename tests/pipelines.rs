//! Every pipeline file in pipelines/ is validated and run; bad files report every error
//! with its line and column and exit 2.

mod common;

use std::io::Write;
use std::process::Stdio;

use common::*;

#[test]
fn every_pipeline_file_validates() {
    let dir = root().join("pipelines");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let out = livemux().arg("validate").arg(&path).output().unwrap();
        assert!(out.status.success(), "{}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
        n += 1;
    }
    assert!(n >= 3);
}

fn run_pipeline(file: &str, sets: &[String], stdin: Option<Vec<u8>>) -> std::process::Output {
    let mut cmd = livemux();
    cmd.current_dir(root()).arg("run").arg(format!("pipelines/{file}"));
    for s in sets {
        cmd.arg("--set").arg(s);
    }
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut pipe = child.stdin.take().unwrap();
    if let Some(data) = stdin {
        std::thread::spawn(move || pipe.write_all(&data));
    } else {
        drop(pipe);
    }
    child.wait_with_output().unwrap()
}

#[test]
fn remux_pipeline_runs_on_the_shipped_sample() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("out.mp4");
    let out = run_pipeline("remux-fmp4.toml", &[format!("sink.path={}", out_path.display())], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(std::fs::metadata(&out_path).unwrap().len() > 100_000);
}

#[test]
fn browser_webm_pipeline_writes_a_seekable_webm() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("rec.webm");
    let input = browser_chunks("chrome_webm_vp9_opus").concat();
    let out = run_pipeline("browser-webm.toml", &[format!("sink.path={}", out_path.display())], Some(input));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let data = std::fs::read(&out_path).unwrap();
    assert_eq!(&data[..4], &[0x1A, 0x45, 0xDF, 0xA3]);
    // The Segment got its size (no unknown-size marker left after its ID).
    let seg = data.windows(4).position(|w| w == [0x18, 0x53, 0x80, 0x67]).unwrap();
    let header = livemux::formats::matroska::ebml::parse_header(&data[seg..], seg as u64).unwrap();
    let livemux::formats::matroska::ebml::HeaderParse::Header(h) = header else { panic!() };
    assert_eq!(h.total(), Some((data.len() - seg) as u64), "the Segment spans the file");
}

#[test]
fn stdin_to_stdout_pipeline() {
    let input = std::fs::read(root().join("samples/chrome_mp4_avc1_opus.mp4")).unwrap();
    let out = run_pipeline("stdin-to-stdout.toml", &[], Some(input));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(&out.stdout[4..8], b"ftyp");
}

#[test]
fn fanout_pipeline_writes_file_and_stdout_identically() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("safe.mp4");
    let sets = [
        format!("source.path={}", root().join("samples/chrome_mp4_avc1_opus.mp4").display()),
        "source.idle_timeout_ms=300".to_string(),
        format!("file.path={}", file.display()),
    ];
    let out = run_pipeline("follow-fanout.toml", &sets, None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout, std::fs::read(&file).unwrap());
}

#[test]
fn bad_file_reports_every_error_with_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "stage = [\n { kind = \"source\", pth = \"x\" },\n { kind = \"mux\", format = \"avi\" },\n { kind = \"sink\", path = \"-\", input = \"nowhere\" },\n]\n",
    )
    .unwrap();
    let out = livemux().arg("validate").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in ["bad.toml:2:21", "unknown setting 'pth'", "bad.toml:3:27", "'avi'", "bad.toml:4:39", "'nowhere'"] {
        assert!(err.contains(needle), "missing '{needle}' in:\n{err}");
    }
    let out = livemux().arg("run").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = livemux()
        .args(["run", "pipelines/remux-fmp4.toml", "--set", "nosuch.path=x"])
        .current_dir(root())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = livemux().args(["remux"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "usage error");
}

#[test]
fn streamed_media_is_released_as_it_is_cut_and_the_buffer_limit_is_enforced() {
    // moov first: the whole ~1 MiB file must pass through a 1 MiB buffer.
    let input = std::fs::read(generated_file("h264_aac_faststart.mp4")).unwrap();
    assert!(input.len() > 1 << 20);
    let out = run_pipeline("stdin-to-stdout.toml", &["packet-split.buffer_limit_mb=1".into()], Some(input));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // moov last, from a pipe: the media must wait for the index, and the limit says no.
    let input = std::fs::read(generated_file("h264_aac_moov_end.mp4")).unwrap();
    let out = run_pipeline("stdin-to-stdout.toml", &["packet-split.buffer_limit_mb=1".into()], Some(input));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("waiting for the 'moov' index") && err.contains("give the input as a file"), "{err}");
}

#[test]
fn browser_recapture_pipeline_recovers_zeroed_parameters_from_stdin() {
    let data = std::fs::read(root().join("samples/chrome_mp4_avc1_opus.mp4")).unwrap();
    let mut spoiled = data.clone();
    let at = spoiled.windows(4).position(|w| w == b"avcC").unwrap();
    let size = u32::from_be_bytes(spoiled[at - 4..at].try_into().unwrap()) as usize;
    spoiled[at + 4..at - 4 + size].fill(0);
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("recording.mp4");
    let out = run_pipeline("browser-recapture.toml", &[format!("sink.path={}", out_path.display())], Some(spoiled));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let recovered = std::fs::read(&out_path).unwrap();
    let clean = dir.path().join("clean.mp4");
    let res = livemux()
        .arg("remux")
        .arg(root().join("samples/chrome_mp4_avc1_opus.mp4"))
        .args(["--to", "fmp4", "-o"])
        .arg(&clean)
        .output()
        .unwrap();
    assert!(res.status.success());
    // The probe recording carries the same parameters the stream had before they were zeroed.
    assert_eq!(recovered, std::fs::read(&clean).unwrap());
}

#[test]
fn relative_paths_come_from_the_file_folder_and_set_ones_from_the_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    let (files, cwd) = (dir.path().join("jobs"), dir.path().join("cwd"));
    std::fs::create_dir_all(files.join("media")).unwrap();
    std::fs::create_dir_all(&cwd).unwrap();
    std::fs::copy(root().join("samples/chrome_mp4_avc1_opus.mp4"), files.join("media/in.mp4")).unwrap();
    std::fs::write(
        files.join("job.toml"),
        r#"stage = [
  { kind = "source", path = "media/in.mp4" },
  { kind = "probe" },
  { kind = "codecpar-extract", reference = "media/in.mp4" },
  { kind = "packet-split" },
  { kind = "mux", format = "fmp4" },
  { kind = "sink", path = "out/rec.mp4" },
]
"#,
    )
    .unwrap();
    std::fs::create_dir_all(files.join("out")).unwrap();
    let run = |sets: &[&str]| {
        let mut cmd = livemux();
        cmd.current_dir(&cwd).arg("run").arg("../jobs/job.toml");
        for s in sets {
            cmd.arg("--set").arg(s);
        }
        cmd.output().unwrap()
    };
    let out = run(&[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(files.join("out/rec.mp4").is_file(), "the sink's path is from the file's folder");
    assert!(!cwd.join("out").exists());
    // A path given with --set is from the working directory.
    let out = run(&["sink.path=here.mp4"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(cwd.join("here.mp4").is_file());
    assert!(!files.join("here.mp4").exists());
}
