//! The sans-IO core (`livemux::formats::remux::Remuxer` and the types it owns), driven
//! directly: byte-identical to the command line whatever the input's pieces, one parse per
//! box, and a mid-stream change of tracks refused by name.

mod common;

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use common::{browser_file, livemux, root, top_level_boxes, Lcg};
use livemux::formats::output::{MuxConfig, MuxFormat, Output};
use livemux::formats::params::ParamPolicy;
use livemux::formats::remux::{RemuxOptions, Remuxer};
use livemux::formats::{parse_counts, Failure, PacketEvent, WriteStep};
use livemux::io::apply_in_memory;
use livemux::model::TrackSet;
use livemux::model::{Fragment, FragmentKind};
use livemux::reference::Reference;
use livemux::ErrorKind;

/// Writes fragments at their offsets, as a file output does (`Finalize` over earlier bytes,
/// the running index's writes in place).
fn apply(file: &mut Vec<u8>, fragments: impl IntoIterator<Item = Fragment>) {
    for f in fragments {
        apply_in_memory(file, &[], &WriteStep::for_fragment(&f));
    }
}

/// Pieces of 1 byte to 1 MiB, mostly small (log-uniform sizes), from a seed.
fn pieces(data: &Bytes, seed: u64) -> Vec<Bytes> {
    let mut rng = Lcg(seed);
    let mut out = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let bits = rng.next(21) + 1;
        let len = (1 + rng.next(1 << bits) as usize).min(1 << 20).min(data.len() - at);
        out.push(data.slice(at..at + len));
        at += len;
    }
    out
}

/// The remux of `data` fed to a [`Remuxer`] in `pieces`, taking fragments as they come.
fn remux(data: &Bytes, options: RemuxOptions, seed: u64) -> (Vec<u8>, Vec<FragmentKind>) {
    let mut r = Remuxer::new(options).unwrap();
    let mut file = Vec::new();
    let mut kinds = Vec::new();
    for piece in pieces(data, seed) {
        r.push(piece).unwrap();
        while let Some(f) = r.next_fragment() {
            kinds.push(f.kind);
            apply(&mut file, [f]);
        }
    }
    let last = r.finish().unwrap();
    kinds.extend(last.iter().map(|f| f.kind));
    apply(&mut file, last);
    (file, kinds)
}

/// `livemux remux` of `input` (from stdin when `stdin`), as written to a file.
fn cli(input: &Path, format: &str, ext: &str, stdin: bool, dir: &Path) -> Vec<u8> {
    let out = dir.join(format!("cli-{format}-{}.{ext}", input.file_stem().unwrap().to_string_lossy()));
    let mut cmd = livemux();
    cmd.arg("remux");
    if stdin {
        cmd.arg("-").stdin(std::fs::File::open(input).unwrap());
    } else {
        cmd.arg(input);
    }
    // --reserve-ms: the library's default, which a finished file would not get (it is sized
    // from the file's duration).
    let status = cmd.arg("-o").arg(&out).args(["--to", format, "--durability", "none", "--reserve-ms", "60000"]);
    let status = status.output().unwrap();
    assert!(status.status.success(), "livemux remux {}: {}", input.display(), String::from_utf8_lossy(&status.stderr));
    std::fs::read(&out).unwrap()
}

fn format_of(name: &str) -> MuxFormat {
    name.parse().unwrap()
}

#[test]
fn the_remuxer_in_random_pieces_is_byte_identical_to_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let inputs: Vec<(std::path::PathBuf, bool, &[&str])> = vec![
        (browser_file("chrome_mp4_avc1_opus", dir.path()), false, &["fmp4", "mp4", "mkv"]),
        (browser_file("chrome_webm_vp9_opus", dir.path()), false, &["fmp4", "mp4", "mkv", "webm"]),
        (browser_file("chrome_mkv_avc1_opus", dir.path()), false, &["fmp4", "mkv"]),
        // Progressive, the index after the media: read as a stream, in order.
        (root().join("tests/fixtures/tools/h264_aac_moov_end.mp4"), true, &["fmp4", "mp4", "mkv"]),
    ];
    for (input, stdin, formats) in inputs {
        let data = Bytes::from(std::fs::read(&input).unwrap());
        for (i, format) in formats.iter().enumerate() {
            let ext = match *format {
                "webm" => "webm",
                "mkv" => "mkv",
                _ => "mp4",
            };
            let want = cli(&input, format, ext, stdin, dir.path());
            for seed in [1, 2 + i as u64] {
                let (got, kinds) = remux(&data, RemuxOptions::default().format(format_of(format)), seed);
                let what = format!("{} --to {format} (seed {seed})", input.display());
                assert!(got == want, "{what}: {} bytes from the Remuxer, {} from the CLI", got.len(), want.len());
                assert_eq!(kinds.first(), Some(&FragmentKind::Header), "{what}");
                if matches!(*format, "mp4" | "mkv" | "webm") {
                    assert!(kinds.contains(&FragmentKind::Finalize), "{what}: finalize writes at finish()");
                }
            }
        }
    }
}

/// Remuxes `data` in 64 KiB pieces on this thread; returns the `moov` and `moof` parses.
fn parses_of(data: &Bytes, options: RemuxOptions) -> (u64, u64) {
    let before = parse_counts();
    let mut r = Remuxer::new(options).unwrap();
    for piece in data.chunks(64 << 10) {
        r.push(data.slice_ref(piece)).unwrap();
    }
    r.finish().unwrap();
    let after = parse_counts();
    (after.0 - before.0, after.1 - before.1)
}

#[test]
fn every_moov_and_moof_is_parsed_once() {
    let dir = tempfile::tempdir().unwrap();
    let input = Bytes::from(std::fs::read(browser_file("chrome_mp4_avc1_opus", dir.path())).unwrap());
    let moofs = top_level_boxes(&input).iter().filter(|(f, ..)| f == b"moof").count() as u64;
    assert!(moofs >= 2, "a fragmented input");
    let reference = Arc::new(Reference::load(&browser_file("chrome_mp4_avc1_opus_probe", dir.path())).unwrap());
    assert_eq!(parses_of(&input, RemuxOptions::default()), (1, moofs), "--params stream");
    let auto = RemuxOptions::default().params(ParamPolicy::Auto).reference(reference.clone());
    assert_eq!(parses_of(&input, auto), (1, moofs), "--params auto (the in-band check's parses go on)");
    let with_ref = RemuxOptions::default().params(ParamPolicy::Reference).reference(reference);
    assert_eq!(parses_of(&input, with_ref), (1, moofs), "--params reference");

    let progressive = Bytes::from(std::fs::read(root().join("tests/fixtures/tools/h264_aac_moov_end.mp4")).unwrap());
    assert_eq!(parses_of(&progressive, RemuxOptions::default()), (1, 0), "a progressive file read as a stream");
}

/// The tracks of a remux of `name`.
fn tracks_of(name: &str, dir: &Path) -> TrackSet {
    let data = Bytes::from(std::fs::read(browser_file(name, dir)).unwrap());
    let mut r = Remuxer::new(RemuxOptions::default()).unwrap();
    r.push(data).unwrap();
    r.finish().unwrap();
    r.tracks().cloned().unwrap()
}

#[test]
fn a_second_track_list_that_differs_is_an_error_naming_the_track() {
    let dir = tempfile::tempdir().unwrap();
    let avc = tracks_of("chrome_mp4_avc1_opus", dir.path());
    let vp9 = tracks_of("chrome_mp4_vp9_opus", dir.path());
    assert_eq!(avc.len(), 2);
    let mut out = Vec::new();
    let mut output = Output::new(MuxConfig::default());
    output.push(PacketEvent::Tracks(avc.clone()), &mut out).unwrap();
    assert_eq!(out.len(), 1, "the header");
    // The same tracks again change nothing.
    output.push(PacketEvent::Tracks(Arc::new((*avc).clone())), &mut out).unwrap();
    assert_eq!(out.len(), 1);
    let err = output.push(PacketEvent::Tracks(vp9), &mut out).unwrap_err();
    assert!(matches!(err, Failure::Mux(_)), "{err}");
    let msg = err.to_string();
    assert!(msg.starts_with("track 1: the codec parameters changed mid-stream"), "{msg}");
    let err = livemux::Error::from(err);
    assert_eq!((err.kind(), err.track()), (ErrorKind::Unsupported, Some(0)));

    // One track fewer: named too.
    let mut output = Output::new(MuxConfig::default());
    output.push(PacketEvent::Tracks(avc.clone()), &mut out).unwrap();
    let fewer = Arc::new(livemux::model::Tracks::from(vec![avc[0].clone()]));
    let msg = output.push(PacketEvent::Tracks(fewer), &mut out).unwrap_err().to_string();
    assert!(msg.contains("track 2: the track count (2 then 1) changed mid-stream"), "{msg}");
}

#[test]
fn errors_say_what_and_where() {
    let mut r = Remuxer::new(RemuxOptions::default()).unwrap();
    let e = r.push(Bytes::from_static(b"this is not a media file")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotMedia, "{e}");
    assert!(r.push(Bytes::from_static(b"more")).is_err(), "no more input after an error");

    let mut r = Remuxer::new(RemuxOptions::default()).unwrap();
    assert_eq!(r.finish().unwrap_err().kind(), ErrorKind::NotMedia, "an empty input");

    let e = Remuxer::new(RemuxOptions::default().params(ParamPolicy::Auto)).err().expect("auto needs a reference");
    assert!(e.to_string().contains("needs a reference recording"), "{e}");
    assert_eq!(e.kind(), ErrorKind::Config, "a settings mistake");

    // A damaged box: the offset of the damage.
    let data = std::fs::read(root().join("tests/fixtures/tools/h264_aac_moov_end.mp4")).unwrap();
    let mut bad = data[..64].to_vec();
    bad[..4].copy_from_slice(&3u32.to_be_bytes()); // ftyp size 3 < 8
    let mut r = Remuxer::new(RemuxOptions::default()).unwrap();
    let e = r.push(Bytes::from(bad)).and_then(|()| r.finish().map(drop)).unwrap_err();
    assert_eq!((e.kind(), e.offset()), (ErrorKind::InvalidInput, Some(0)), "{e}");

    let e = Reference::load(Path::new("/nonexistent/reference.mp4")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Reference);
    assert_eq!(e.path(), Some(Path::new("/nonexistent/reference.mp4")));
}

/// A Chromium recording, whole, and its init segment (everything before the first media).
fn recording_and_init(name: &str) -> (Vec<u8>, Vec<u8>) {
    let data = common::browser_chunks(name).concat();
    let init_len = if name.contains("mp4") {
        let boxes = top_level_boxes(&data);
        boxes.iter().find(|(fourcc, ..)| fourcc == b"moof").map(|&(_, off, _)| off).unwrap()
    } else {
        // The first Cluster (1F 43 B6 75).
        data.windows(4).position(|w| w == [0x1f, 0x43, 0xb6, 0x75]).unwrap()
    };
    let init = data[..init_len].to_vec();
    (data, init)
}

/// The remux of `data` in one piece: the output file, or the error.
fn remux_whole(data: Vec<u8>) -> livemux::Result<Vec<u8>> {
    let mut r = Remuxer::new(RemuxOptions::default())?;
    r.push(Bytes::from(data))?;
    let mut file = Vec::new();
    apply(&mut file, r.take_fragments());
    apply(&mut file, r.finish()?);
    Ok(file)
}

#[test]
fn a_second_init_segment_that_differs_is_an_error_naming_the_track() {
    for (first, second) in
        [("chrome_mp4_avc1_opus", "chrome_mp4_vp9_opus"), ("chrome_webm_vp9_opus", "chrome_webm_vp8_opus")]
    {
        let (a, _) = recording_and_init(first);
        let (b, b_init) = recording_and_init(second);
        // The whole second recording after the first, and its init segment alone.
        for tail in [b, b_init] {
            let e = remux_whole([a.clone(), tail].concat()).expect_err("a second, different init segment");
            assert_eq!((e.kind(), e.track()), (ErrorKind::Unsupported, Some(0)), "{first} then {second}: {e}");
            assert!(e.to_string().contains("track 1: the codec parameters changed mid-stream"), "{e}");
        }
    }
}

#[test]
fn the_same_init_segment_again_is_ignored() {
    for name in ["chrome_mp4_avc1_opus", "chrome_webm_vp9_opus"] {
        let (data, init) = recording_and_init(name);
        let alone = remux_whole(data.clone()).unwrap();
        // A recorder that reconnects sends its init segment again before going on.
        let again = remux_whole([data, init].concat()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(again, alone, "{name}: the repeated init segment changes nothing");
    }
}

/// `livemux probe` keeps what it noted before a packet-split error (as it does for the
/// other stages' errors).
#[test]
fn probe_keeps_its_notes_when_the_split_fails() {
    let (data, init) = recording_and_init("chrome_mp4_avc1_opus");
    let boxes = top_level_boxes(&data);
    let &(_, moof, _) = boxes.iter().find(|(fourcc, ..)| fourcc == b"moof").unwrap();
    // The same init again (noted, ignored), then a first 'moof' whose first child box
    // is 3 bytes long: invalid, found by the splitter.
    let mut input = [init.clone(), data.clone()].concat();
    let child = init.len() + moof + 8;
    input[child..child + 4].copy_from_slice(&3u32.to_be_bytes());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad_moof.mp4");
    std::fs::write(&path, input).unwrap();
    let out = livemux().args(["probe", path.to_str().unwrap()]).output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stderr.contains("packet-split"), "the split failed: {stderr}");
    assert!(stdout.contains("note:      the 'moov' index came again at offset"), "{stdout}");
}
