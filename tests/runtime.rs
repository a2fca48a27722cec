//! The pipeline runtime as a program embedding livemux uses it: a fed input ended by
//! `stop`, a stage that panics, stages between the mux and the sink, and feeding and
//! collecting interleaved in one task. Outputs are checked with ffprobe/ffmpeg and against
//! the `livemux` binary.

mod common;

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use common::{ffprobe, framemd5, livemux, tools};
use livemux::io::{apply_in_memory, WriteStep};
use livemux::pipeline::{Collect, Feed, Pipeline, Tap};
use livemux::stages::mux::{MuxConfig, MuxFormat};
use livemux::{ErrorKind, Fragment, FragmentKind};
use tokio_util::sync::CancellationToken;

/// Long enough for any run here; a run that does not end is a failure, not a hang.
const LIMIT: Duration = Duration::from_secs(60);

fn recording() -> Bytes {
    Bytes::from(common::browser_chunks("chrome_mp4_avc1_opus").concat())
}

/// Writes the fragment at its offset, as a file output would (the library's in-memory
/// applier).
fn apply(output: &mut Vec<u8>, f: &Fragment) {
    apply_in_memory(output, &[], &WriteStep::for_fragment(f));
}

/// Applies every fragment still to come to `output`, noting their kinds.
async fn collect_all(fragments: &mut Collect, output: &mut Vec<u8>, kinds: &mut Vec<FragmentKind>) {
    while let Some(f) = fragments.recv().await {
        kinds.push(f.kind);
        apply(output, &f);
    }
}

/// Feeds `data` in pieces of `piece` bytes, then (with `hold_open`) keeps the input open,
/// sending nothing more, until the pipeline refuses the feed. Returns whether the feed was
/// refused (the pipeline stopped before the input ended).
async fn feed_all(mut feed: Feed, data: Bytes, piece: usize, hold_open: bool) -> bool {
    for at in (0..data.len()).step_by(piece) {
        if feed.send(data.slice(at..(at + piece).min(data.len()))).await.is_err() {
            return true;
        }
    }
    if !hold_open {
        feed.finish();
        return false;
    }
    loop {
        tokio::time::sleep(Duration::from_millis(10)).await;
        if feed.send(Bytes::new()).await.is_err() {
            return true;
        }
    }
}

/// What `livemux remux` writes to a file from `input` read as a stream (as the fed
/// pipelines read it).
fn remux_with_the_binary(input: &[u8], to: &str) -> Vec<u8> {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("out.{to}"));
    let mut child = livemux()
        .args(["remux", "-", "--to", to, "-o"])
        .arg(&path)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(out.status.success(), "livemux remux: {}", String::from_utf8_lossy(&out.stderr));
    std::fs::read(path).unwrap()
}

fn write(dir: &Path, name: &str, data: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, data).unwrap();
    path
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// Cancelling `stop` ends a fed input that was never finished: the stages drain, the mux
/// finishes the regular MP4 (its Finalize writes arrive), `run` returns Ok, and the feed's
/// next send says the pipeline stopped. Before, the fed source never looked at `stop` and
/// the run waited for the feed forever.
#[test]
fn stop_ends_a_fed_input() {
    if !tools(&["ffprobe", "ffmpeg"]) {
        return;
    }
    let data = recording();
    let (output, kinds, late_send) = rt().block_on(async {
        let mux = MuxConfig { format: MuxFormat::Mp4, ..MuxConfig::default() };
        let (pipeline, mut feed, mut fragments) = Pipeline::remux_fed(Default::default(), mux).unwrap();
        let stop = CancellationToken::new();
        let run = tokio::spawn(pipeline.run(stop.clone()));
        // The first media fragment and part of the second's moof, then nothing more: an
        // upload that stalls mid-box.
        let moofs: Vec<usize> =
            common::top_level_boxes(&data).iter().filter(|b| &b.0 == b"moof").map(|b| b.1).collect();
        assert!(moofs.len() >= 2, "the recording has two fragments");
        let cut = moofs[1] + 100;
        feed.send(data.slice(..cut)).await.unwrap();
        let first = tokio::time::timeout(LIMIT, fragments.recv()).await.unwrap().expect("a first fragment");
        let (mut output, mut kinds) = (Vec::new(), vec![first.kind]);
        apply(&mut output, &first);
        stop.cancel();
        tokio::time::timeout(LIMIT, collect_all(&mut fragments, &mut output, &mut kinds)).await.expect("the run ended");
        let report = tokio::time::timeout(LIMIT, run).await.expect("run returns").unwrap();
        report.expect("a stopped run is a clean run");
        let late_send = feed.send(data.slice(cut..)).await;
        (output, kinds, late_send)
    });
    assert!(late_send.is_err(), "the feed is closed once the input has ended");
    assert!(kinds.contains(&FragmentKind::Finalize), "the mux finished the regular MP4: {kinds:?}");
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "stopped.mp4", &output);
    let (ok, text) = ffprobe(&path, "stream=codec_name");
    assert!(ok, "ffprobe: {text}");
    assert!(text.contains("h264") && text.contains("opus"), "{text}");
    // What the same writer makes of the whole recording.
    let whole = write(dir.path(), "whole.mp4", &remux_with_the_binary(&data, "mp4"));
    let (whole, part) = (framemd5(&whole), framemd5(&path));
    assert!(!part.is_empty() && part.len() < whole.len(), "{} of {} packets", part.len(), whole.len());
    common::assert_cut_prefix(&whole, &part, "stopped");
}

/// A tap that panics after passing on the header and one media fragment: `run` returns
/// an Internal error naming the stage and the panic's message, every other stage stops
/// (the run ends, the feed is refused), and what reached the output is a valid
/// fragmented MP4.
#[test]
fn a_panicking_stage_is_an_internal_error() {
    if !tools(&["ffprobe"]) {
        return;
    }
    let data = recording();
    let (result, output, kinds, refused) = rt().block_on(async {
        let fragment = livemux::FragmentPolicy::new(200, 400);
        let mux = MuxConfig { fragment, ..Default::default() };
        let (mut pipeline, feed, mut fragments) = Pipeline::remux_fed(Default::default(), mux).unwrap();
        let bomb = Tap::new(|mut input, output| async move {
            let mut passed = 0;
            while let Some(f) = input.recv().await {
                if passed == 2 {
                    panic!("tap exploded on purpose");
                }
                passed += 1;
                if output.send(f).await.is_err() {
                    break;
                }
            }
            Ok(())
        });
        pipeline.insert_after("mux", "bomb", bomb).unwrap();
        let run = tokio::spawn(pipeline.run(CancellationToken::new()));
        let feeding = tokio::spawn(feed_all(feed, data.clone(), 4096, true));
        let (mut output, mut kinds) = (Vec::new(), Vec::new());
        tokio::time::timeout(LIMIT, collect_all(&mut fragments, &mut output, &mut kinds)).await.expect("output ends");
        let result = tokio::time::timeout(LIMIT, run).await.expect("run returns").expect("run is not a panic");
        let refused = tokio::time::timeout(LIMIT, feeding).await.expect("the feed ends").unwrap();
        (result, output, kinds, refused)
    });
    assert!(refused, "the feed is refused once the run stopped");
    let e = result.expect_err("a panic is an error");
    assert_eq!(e.kind(), ErrorKind::Internal, "{e}");
    let message = e.to_string();
    assert!(message.contains("'bomb'") && message.contains("tap exploded on purpose"), "{message}");
    assert_eq!(kinds, [FragmentKind::Header, FragmentKind::Media], "what the tap passed on");
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "until-the-panic.mp4", &output);
    let (ok, text) = ffprobe(&path, "stream=codec_name");
    assert!(ok && text.contains("h264"), "ffprobe: {text}");
}

/// Stages between the mux and the sink, declared in a file after the sink that reads
/// them: a `tap` that passes fragments on unchanged and one running code. The output is
/// byte-identical to `livemux remux`, and the code saw every fragment in order.
#[test]
fn taps_between_mux_and_sink() {
    let dir = tempfile::tempdir().unwrap();
    let data = recording();
    let input = write(dir.path(), "in.mp4", &data);
    let out = dir.path().join("out.m4s");
    let text = format!(
        r#"stage = [
  {{ kind = "sink", path = "{}", input = "plain" }},
  {{ kind = "tap", name = "plain", input = "counter" }},
  {{ kind = "source", path = "{}" }}, {{ kind = "probe" }}, {{ kind = "codecpar-extract" }},
  {{ kind = "packet-split" }}, {{ kind = "mux", format = "fmp4" }},
  {{ kind = "tap", name = "counter", input = "mux" }},
]"#,
        out.display(),
        input.display()
    );
    let mut pipeline = Pipeline::parse(&text, "taps.toml", &[]).unwrap_or_else(|e| panic!("{}", e.render(10)));
    let (seen_tx, seen_rx) = std::sync::mpsc::channel();
    let counter = Tap::new(move |mut input, output| async move {
        while let Some(f) = input.recv().await {
            seen_tx.send((f.offset, f.len())).unwrap();
            if output.send(f).await.is_err() {
                break;
            }
        }
        Ok(())
    });
    pipeline.attach("counter", counter).unwrap();
    assert!(pipeline.attach("mux", Tap::new(|_, _| async { Ok(()) })).is_err(), "only a tap takes code");
    let run = rt().block_on(async { tokio::time::timeout(LIMIT, pipeline.run(CancellationToken::new())).await });
    run.expect("the run ends").unwrap();
    let got = std::fs::read(&out).unwrap();
    let seen: Vec<(u64, u64)> = seen_rx.try_iter().collect();
    assert!(seen.len() > 2, "{seen:?}");
    let mut at = 0;
    for (offset, len) in &seen {
        assert_eq!(*offset, at, "fragments in order");
        at += len;
    }
    assert_eq!(at, got.len() as u64, "the tap saw every byte written");
    let reference = dir.path().join("ref.m4s");
    let res = livemux().arg("remux").arg(&input).args(["--to", "fmp4", "-o"]).arg(&reference).output().unwrap();
    assert!(res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));
    assert!(got == std::fs::read(&reference).unwrap(), "a tap changes nothing");
}

/// One task feeds pieces of 1 byte to 64 KiB and collects fragments with `tokio::select!`
/// on a single-threaded runtime: with channels of one or two items it never waits
/// forever, and the output is byte-identical to `livemux remux` of the same stream, for
/// each output format that can carry H.264 (a regular MP4 and Matroska rewrite their
/// start at the end: the Finalize fragments are applied at their offsets).
#[test]
fn feeding_and_collecting_interleaved_in_one_task() {
    let data = recording();
    for (format, to) in [(MuxFormat::Fmp4, "fmp4"), (MuxFormat::Mp4, "mp4"), (MuxFormat::Mkv, "mkv")] {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let output = rt
            .block_on(async { tokio::time::timeout(LIMIT, interleaved(data.clone(), format)).await })
            .expect("no deadlock");
        assert!(output == remux_with_the_binary(&data, to), "{to}: same bytes as livemux remux");
    }
}

async fn interleaved(data: Bytes, format: MuxFormat) -> Vec<u8> {
    let mux = MuxConfig { format, ..MuxConfig::default() };
    let (mut pipeline, feed, mut fragments) = Pipeline::remux_fed(Default::default(), mux).unwrap();
    // A code tap in the path too: the interleaving holds with more stages.
    pipeline.insert_after("mux", "pass", Tap::new(pass_on)).unwrap();
    let run = tokio::spawn(pipeline.run(CancellationToken::new()));
    let sizes = [1usize, 7, 65536, 13, 4096, 1, 100_000, 3];
    let (mut at, mut n) = (0, 0);
    let mut feed = Some(feed);
    let mut output = Vec::new();
    loop {
        let piece = data.slice(at..(at + sizes[n % sizes.len()]).min(data.len()));
        tokio::select! {
            sent = async { feed.as_mut().unwrap().send(piece.clone()).await }, if feed.is_some() => {
                sent.unwrap();
                at += piece.len();
                n += 1;
                if at == data.len() {
                    feed.take().unwrap().finish();
                }
            }
            f = fragments.recv() => match f {
                Some(f) => apply(&mut output, &f),
                None => break,
            },
        }
    }
    run.await.unwrap().unwrap();
    output
}

async fn pass_on(mut input: Collect, output: livemux::pipeline::TapOutput) -> livemux::Result<()> {
    while let Some(f) = input.recv().await {
        if output.send(f).await.is_err() {
            break;
        }
    }
    Ok(())
}
