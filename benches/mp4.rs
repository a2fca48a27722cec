//! Throughput of the sans-IO MP4 layers, without tokio or the file system in the loop.
//!
//! Groups (criterion reports bytes/s):
//! - `walk`: `Mp4Walker` over the whole file in 1 MiB chunks (top-level boxes, mdat slices);
//!   throughput in input bytes.
//! - `split`: walker + `Splitter`, the full demux to packets (the tracks and the parsed
//!   `moov` from `CodecParams`, as a remux has them); throughput in input bytes.
//!   `moov_first` feeds the trailing `moov` first, as the `source` stage does for a complete
//!   file; `stream_order` feeds the file as it lies, so all media is buffered until the `moov`.
//! - `mux`: `Fmp4Muxer` (default 1 s / 2 s fragments) over the pre-split packets, header to
//!   finish; throughput in packet payload bytes.
//! - `parse_moov`: `parse_movie` on the `moov` box; throughput in `moov` bytes.
//! - `remux`: the whole sans-IO remux (`Remuxer`: sniffing, parameters, splitter, muxer)
//!   fed the file in 1 MiB pieces in file order, to fmp4 and to mp4 (finalize writes
//!   included); throughput in input bytes.
//! - `mux` also runs `RegularMp4Muxer` (`--to mp4`: the same fragments, each read back into
//!   the index, and the regular moov built at the end), as `<input>/mp4`.
//! - `finalize`: `finalize::plan` (what `livemux finalize` computes before writing) on the
//!   input remuxed to fragmented MP4, in memory; throughput in packets. When
//!   `bench/out/finalize-2h-frag.mp4` (2 h, ~553,000 packets, made by `bench/finalize.sh`)
//!   exists, also on that file, read with seeks as the command does.
//! - `scan`: `MdatScanner`, cutting the `mdat` into packets without the `moov` (recovery of
//!   a recording whose index is lost), with `h264_aac_reference_1s.mp4`'s layout; throughput
//!   in `mdat` bytes. (`bench/recover.sh` measures the whole `recover` command on an hour.)
//!
//! Input: `tests/fixtures/generated/h264_aac_moov_end.mp4` (10 s, 360p H.264 + AAC, moov at
//! the end; made by `scripts/make-fixtures.sh` when missing). When `bench/out/long-360p-full.mp4`
//! (2 h, ~550,000 packets, made by `bench/vs-ffmpeg.sh`) exists, `parse_moov` also runs on its
//! `moov`. `LIVEMUX_BENCH_INPUT=path.mp4` replaces the fixture with any progressive MP4 (it is
//! read into memory whole).
//!
//! Run: `cargo bench --bench mp4` (about a minute).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use livemux::formats::fragmenter::FragmentPolicy;
use livemux::formats::mp4::finalize::plan;
use livemux::formats::mp4::fmp4::Fmp4Muxer;
use livemux::formats::mp4::moov::parse_movie;
use livemux::formats::mp4::moov::Movie;
use livemux::formats::mp4::regular::{RegularMp4Muxer, DEFAULT_RESERVE_MS};
use livemux::formats::mp4::scan::layout::ScanLayout;
use livemux::formats::mp4::scan::MdatScanner;
use livemux::formats::mp4::walker::Mp4Walker;
use livemux::formats::output::MuxFormat;
use livemux::formats::params::{unindexed_tracks, CodecParams, ParamPolicy};
use livemux::formats::remux::{RemuxOptions, Remuxer};
use livemux::formats::split::{SplitConfig, Splitter};
use livemux::formats::{ContainerEvent, ContainerKind, ElementKind, MetaUnit, Muxer, PacketEvent};
use livemux::model::{Chunk, Packet, TrackSet};
use livemux::reference::Reference;

const CHUNK: usize = 1 << 20;
const SPLIT_LIMIT: u64 = 4 << 30;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The input file's bytes, generating the fixtures first if needed.
fn load_input() -> (String, Bytes) {
    if let Ok(p) = std::env::var("LIVEMUX_BENCH_INPUT") {
        let data = std::fs::read(&p).unwrap_or_else(|e| panic!("reading {p}: {e}"));
        let name = Path::new(&p).file_stem().unwrap().to_string_lossy().into_owned();
        return (name, data.into());
    }
    let path = root().join("tests/fixtures/generated/h264_aac_moov_end.mp4");
    if !path.exists() {
        let status = std::process::Command::new(root().join("scripts/make-fixtures.sh"))
            .status()
            .expect("running scripts/make-fixtures.sh (needs ffmpeg)");
        assert!(status.success(), "scripts/make-fixtures.sh failed");
    }
    let data = std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    ("h264_aac_moov_end".into(), data.into())
}

/// Walks `data` in `CHUNK`-sized slices (zero-copy), handing every event to `f`.
fn walk(data: &Bytes, mut f: impl FnMut(ContainerEvent)) {
    let mut w = Mp4Walker::new();
    let mut off = 0;
    while off < data.len() {
        let end = (off + CHUNK).min(data.len());
        w.push(Chunk::new(off as u64, data.slice(off..end))).unwrap();
        off = end;
        while let Some(ev) = w.poll().unwrap() {
            f(ev);
        }
    }
    f(ContainerEvent::End(w.finish()));
}

fn is_moov(m: &MetaUnit) -> bool {
    m.kind == ElementKind::Mp4(livemux::formats::mp4::FourCc::new(b"moov"))
}

/// The `moov` box of an in-memory file.
fn find_moov(data: &Bytes) -> MetaUnit {
    let mut moov = None;
    walk(data, |ev| match ev {
        ContainerEvent::Meta(m) if is_moov(&m) => moov = Some(m),
        _ => {}
    });
    moov.expect("input has a moov")
}

/// The `moov` of a file on disk, found by hopping over top-level box headers.
fn read_moov_from_file(path: &Path) -> std::io::Result<Option<MetaUnit>> {
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    let mut at = 0u64;
    while at + 8 <= len {
        f.seek(SeekFrom::Start(at))?;
        let mut h = [0u8; 16];
        f.read_exact(&mut h[..8])?;
        let mut size = u32::from_be_bytes(h[..4].try_into().unwrap()) as u64;
        let mut header_len = 8;
        if size == 1 {
            f.read_exact(&mut h[8..16])?;
            size = u64::from_be_bytes(h[8..16].try_into().unwrap());
            header_len = 16;
        } else if size == 0 {
            size = len - at;
        }
        if &h[4..8] == b"moov" {
            let mut data = vec![0u8; size as usize];
            f.seek(SeekFrom::Start(at))?;
            f.read_exact(&mut data)?;
            let kind = ElementKind::Mp4(livemux::formats::mp4::FourCc::new(b"moov"));
            return Ok(Some(MetaUnit { kind, offset: at, header_len, data: data.into() }));
        }
        if size < 8 {
            break;
        }
        at += size;
    }
    Ok(None)
}

/// The audio and video tracks and the parsed `moov`, as the core's parameter policy
/// gives them to the splitter.
fn tracks_of(moov: &MetaUnit) -> (TrackSet, Arc<Movie>) {
    let mut params = CodecParams::new(ParamPolicy::Stream, None).unwrap();
    let mut out = Vec::new();
    params.push(ContainerEvent::Container(ContainerKind::Mp4), &mut out).unwrap();
    params.push(ContainerEvent::Meta(moov.clone()), &mut out).unwrap();
    let tracks = out.iter().find_map(|ev| match ev {
        ContainerEvent::Tracks(t) => Some(t.clone()),
        _ => None,
    });
    let movie = out.iter().find_map(|ev| match ev {
        ContainerEvent::Movie(m) => Some(m.clone()),
        _ => None,
    });
    (tracks.expect("tracks"), movie.expect("the parsed moov"))
}

/// Full demux; `moov_first` sends the moov before the media, as the source stage does for
/// a complete file. Calls `f` on every packet; returns the packet count.
fn split(data: &Bytes, (tracks, movie): &(TrackSet, Arc<Movie>), moov_first: bool, mut f: impl FnMut(Packet)) -> u64 {
    let mut s = Splitter::new(&SplitConfig { buffer_limit: SPLIT_LIMIT, late_index: false });
    let mut out = Vec::new();
    let mut count = 0u64;
    let mut drain = |out: &mut Vec<PacketEvent>| {
        for ev in out.drain(..) {
            if let PacketEvent::Packets(ps) = ev {
                count += ps.len() as u64;
                ps.into_iter().for_each(&mut f);
            }
        }
    };
    if moov_first {
        s.handle(ContainerEvent::Movie(movie.clone()), &mut out).unwrap();
    }
    s.handle(ContainerEvent::Tracks(tracks.clone()), &mut out).unwrap();
    let mut end = None;
    walk(data, |ev| match ev {
        ContainerEvent::End(e) => end = Some(e),
        ev => {
            s.handle(ev, &mut out).unwrap();
            drain(&mut out);
        }
    });
    let summary = s.finish(end.unwrap(), &mut out).unwrap();
    assert!(summary.notes.is_empty(), "splitter notes: {:?}", summary.notes);
    drain(&mut out);
    count
}

/// The whole remux of `data` fed in `CHUNK`-sized pieces; returns the output bytes.
fn remux(data: &Bytes, format: MuxFormat) -> u64 {
    let mut r = Remuxer::new(RemuxOptions::default().format(format).buffer_limit(SPLIT_LIMIT)).unwrap();
    let mut written = 0;
    for piece in data.chunks(CHUNK) {
        r.push(data.slice_ref(piece)).unwrap();
        written += r.take_fragments().iter().map(|f| f.len()).sum::<u64>();
    }
    written + r.finish().unwrap().iter().map(|f| f.len()).sum::<u64>()
}

fn mux(tracks: &TrackSet, packets: &[Packet]) -> u64 {
    mux_with(Box::new(Fmp4Muxer::new(tracks.clone(), FragmentPolicy::default())), packets)
}

fn mux_with(mut m: Box<dyn Muxer>, packets: &[Packet]) -> u64 {
    let mut written = m.header().unwrap().len();
    for p in packets {
        if let Some(frag) = m.push(p.clone()).unwrap() {
            written += frag.len();
        }
    }
    written + m.finish().unwrap().iter().map(|f| f.len()).sum::<u64>()
}

/// The packets as a fragmented MP4 file, in memory.
fn fragmented_file(tracks: &TrackSet, packets: &[Packet]) -> Vec<u8> {
    let mut m = Fmp4Muxer::new(tracks.clone(), FragmentPolicy::default());
    let mut out = m.header().unwrap().to_bytes().to_vec();
    for p in packets {
        if let Some(frag) = m.push(p.clone()).unwrap() {
            out.extend_from_slice(&frag.to_bytes());
        }
    }
    m.finish().unwrap().iter().for_each(|f| out.extend_from_slice(&f.to_bytes()));
    out
}

fn short<M: criterion::measurement::Measurement>(g: &mut BenchmarkGroup<'_, M>) {
    g.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
}

fn benches(c: &mut Criterion) {
    let (name, data) = load_input();
    let moov = find_moov(&data);
    let parsed = tracks_of(&moov);
    let tracks = parsed.0.clone();
    let mut packets = Vec::new();
    let n = split(&data, &parsed, true, |p| packets.push(p));
    let payload: u64 = packets.iter().map(|p| p.data.len() as u64).sum();
    eprintln!(
        "input {name}: {} bytes, moov {} bytes, {} tracks, {n} packets, {payload} payload bytes",
        data.len(),
        moov.data.len(),
        tracks.len()
    );

    let mut g = c.benchmark_group("walk");
    short(&mut g);
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function(&name, |b| {
        b.iter(|| {
            let mut events = 0u32;
            walk(&data, |_| events += 1);
            events
        })
    });
    g.finish();

    let mut g = c.benchmark_group("split");
    short(&mut g);
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function(format!("{name}/moov_first"), |b| b.iter(|| split(&data, &parsed, true, drop)));
    g.bench_function(format!("{name}/stream_order"), |b| b.iter(|| split(&data, &parsed, false, drop)));
    g.finish();

    let mut g = c.benchmark_group("remux");
    short(&mut g);
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function(format!("{name}/fmp4"), |b| b.iter(|| remux(&data, MuxFormat::Fmp4)));
    g.bench_function(format!("{name}/mp4"), |b| b.iter(|| remux(&data, MuxFormat::Mp4)));
    g.finish();

    let mut g = c.benchmark_group("mux");
    short(&mut g);
    g.throughput(Throughput::Bytes(payload));
    g.bench_function(&name, |b| b.iter(|| mux(&tracks, &packets)));
    g.bench_function(format!("{name}/mp4"), |b| {
        b.iter(|| {
            let m = RegularMp4Muxer::new(tracks.clone(), FragmentPolicy::default(), DEFAULT_RESERVE_MS);
            mux_with(Box::new(m), &packets)
        })
    });
    g.finish();

    let mut g = c.benchmark_group("finalize");
    short(&mut g);
    let frag = fragmented_file(&tracks, &packets);
    g.throughput(Throughput::Elements(packets.len() as u64));
    g.bench_function(format!("plan/{name}"), |b| {
        b.iter(|| plan(&mut std::io::Cursor::new(&frag), frag.len() as u64).unwrap())
    });
    let long = root().join("bench/out/finalize-2h-frag.mp4");
    if let Ok(mut f) = File::open(&long) {
        let len = f.metadata().unwrap().len();
        let p = plan(&mut f, len).unwrap();
        eprintln!("finalize-2h-frag: {:?}", p.notes);
        let samples: u64 =
            p.notes.iter().find_map(|n| n.split(" fragments, ").nth(1)?.split(' ').next()?.parse().ok()).unwrap_or(1);
        g.throughput(Throughput::Elements(samples));
        g.bench_function("plan/finalize-2h-frag", |b| b.iter(|| plan(&mut f, len).unwrap()));
    }
    g.finish();

    let mut g = c.benchmark_group("parse_moov");
    short(&mut g);
    g.throughput(Throughput::Bytes(moov.data.len() as u64));
    g.bench_function(&name, |b| b.iter(|| parse_movie(&moov.data, moov.offset, moov.header_len).unwrap()));
    let long = root().join("bench/out/long-360p-full.mp4");
    if let Ok(Some(m)) = read_moov_from_file(&long) {
        eprintln!("long-360p-full: moov {} bytes", m.data.len());
        g.throughput(Throughput::Bytes(m.data.len() as u64));
        g.bench_function("long-360p-full", |b| b.iter(|| parse_movie(&m.data, m.offset, m.header_len).unwrap()));
    }
    g.finish();
}

/// Cuts the mdat payload into packets with a reference's layout, as `recover` does.
fn scan(payload: &Bytes, payload_offset: u64, layout: &ScanLayout) -> u64 {
    let mut scanner = MdatScanner::new(layout.clone());
    let mut out = Vec::new();
    scanner.media_start(payload_offset, None, &mut out).unwrap();
    let mut count = 0;
    for (i, chunk) in payload.chunks(CHUNK).enumerate() {
        scanner.push(payload_offset + (i * CHUNK) as u64, chunk, &mut out).unwrap();
        count += out.drain(..).count() as u64;
    }
    let summary = scanner.finish(&mut out).unwrap();
    assert!(summary.skipped_regions == 0, "{:?}", summary.notes());
    count + out.len() as u64
}

fn scan_benches(c: &mut Criterion) {
    let (name, data) = load_input();
    let reference = root().join("tests/fixtures/generated/h264_aac_reference_1s.mp4");
    let (_, layout) = unindexed_tracks(&Reference::load(&reference).unwrap()).unwrap();
    let mdat = find_mdat(&data);
    let payload = data.slice(mdat.clone());
    eprintln!("scan: {} packets", scan(&payload, mdat.start as u64, &layout));
    let mut g = c.benchmark_group("scan");
    short(&mut g);
    g.throughput(Throughput::Bytes(payload.len() as u64));
    g.bench_function(&name, |b| b.iter(|| scan(&payload, mdat.start as u64, &layout)));
    g.finish();
}

/// The payload range of the first `mdat`.
fn find_mdat(data: &[u8]) -> std::ops::Range<usize> {
    let mut at = 0;
    while at + 8 <= data.len() {
        let size = u32::from_be_bytes(data[at..at + 4].try_into().unwrap()) as usize;
        let (size, header) = match size {
            1 => (u64::from_be_bytes(data[at + 8..at + 16].try_into().unwrap()) as usize, 16),
            0 => (data.len() - at, 8),
            n => (n, 8),
        };
        if &data[at + 4..at + 8] == b"mdat" {
            return at + header..(at + size).min(data.len());
        }
        at += size;
    }
    panic!("no mdat");
}

criterion_group!(mp4, benches, scan_benches);
criterion_main!(mp4);
