//! `livemux probe`: reads the input with the `source` stage and the sans-IO core (the
//! sniffing reader, the codec-parameter policy and the splitter, without an output), and
//! describes what they saw.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use crate::codecs::CodecConfig;
use crate::formats::demux::Probe;
use crate::formats::params::CodecParams;
use crate::formats::split::Splitter;
use crate::formats::{ContainerEvent, ContainerKind, ElementKind, Failure, PacketEvent};
use crate::model::{ParamOrigin, TrackSet};
use crate::stages::{self, codecpar, source, Outputs, StageContext, StageError};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

#[derive(Serialize, Default)]
struct Report {
    input: String,
    container: Option<ContainerKind>,
    /// Top-level boxes in file order, e.g. "ftyp@0 mdat@40 moov@1082051".
    layout: Vec<String>,
    /// Where the index is: "moov before media", "moov after media", "fragmented", "no moov".
    index: String,
    complete: bool,
    cut_at: Option<u64>,
    tracks: Vec<TrackReport>,
    notes: Vec<String>,
    error: Option<String>,
}

#[derive(Serialize)]
struct TrackReport {
    input_id: u64,
    kind: crate::TrackKind,
    codec: &'static str,
    timescale: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    dimensions: Option<crate::codecs::Dimensions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    audio: Option<crate::codecs::AudioFormat>,
    language: String,
    params_from: ParamOrigin,
    config: String,
    packets: u64,
}

fn describe_config(c: &CodecConfig) -> String {
    let hex = |b: &[u8]| b.iter().take(16).map(|x| format!("{x:02x}")).collect::<String>();
    match c {
        CodecConfig::H264 { avcc, .. } => match crate::codecs::h264::AvcConfig::parse(avcc) {
            Ok(a) => format!(
                "avcC profile {} level {} ({} SPS, {} PPS, {}-byte lengths)",
                a.profile_idc,
                a.level_idc,
                a.sps.len(),
                a.pps.len(),
                a.nal_length_size
            ),
            Err(e) => format!("avcC unusable: {e}"),
        },
        CodecConfig::Hevc { hvcc, .. } => format!("hvcC {} bytes", hvcc.len()),
        CodecConfig::Av1 { av1c, .. } => format!("av1C {}", hex(av1c)),
        CodecConfig::Vp9 { vpcc, .. } => format!("vpcC {}", hex(vpcc)),
        CodecConfig::Vp8 { .. } => "none".into(),
        CodecConfig::Aac { asc, .. } => format!("AudioSpecificConfig {}", hex(asc)),
        CodecConfig::Opus { head } => {
            format!(
                "OpusHead {} channels, pre-skip {}, mapping family {}",
                head.channels, head.pre_skip, head.mapping_family
            )
        }
        CodecConfig::Pcm { pcm } => format!(
            "{}-bit {}{}",
            pcm.bits_per_sample,
            if pcm.float { "float" } else { "integer" },
            if pcm.little_endian { " little-endian" } else { " big-endian" }
        ),
        CodecConfig::Audio { config, .. } if config.is_empty() => "none (in the frames)".into(),
        CodecConfig::Audio { codec, config, .. } => {
            let what = match codec {
                crate::codecs::AudioCodec::Vorbis => "Vorbis headers",
                crate::codecs::AudioCodec::Flac => "FLAC metadata blocks",
                crate::codecs::AudioCodec::Ac3 => "dac3",
                crate::codecs::AudioCodec::Eac3 => "dec3",
                crate::codecs::AudioCodec::Alac => "ALAC magic cookie",
                _ => "AudioSpecificConfig",
            };
            if config.len() <= 32 {
                format!("{what} {}", hex(config))
            } else {
                format!("{what} {} bytes", config.len())
            }
        }
        CodecConfig::Unknown { fourcc, .. } => format!("sample entry '{}'", String::from_utf8_lossy(fourcc)),
    }
}

/// The top-level layout of the input, from the reader's events.
#[derive(Default)]
struct Layout {
    boxes: Vec<String>,
    container: Option<ContainerKind>,
    moov_at: Option<u64>,
    mdat_at: Option<u64>,
    fragmented: bool,
    end: Option<crate::formats::EndState>,
}

impl Layout {
    fn look_at(&mut self, ev: &ContainerEvent) {
        match ev {
            ContainerEvent::Container(k) => self.container = Some(*k),
            ContainerEvent::Meta(m) => {
                if let ElementKind::Mp4(f) = m.kind {
                    match &f.0 {
                        b"moov" => self.moov_at = self.moov_at.or(Some(m.offset)),
                        b"moof" => self.fragmented = true,
                        _ => {}
                    }
                }
                self.boxes.push(format!("{}@{}", m.kind, m.offset));
            }
            ContainerEvent::Skipped(r) | ContainerEvent::MediaStart(r) => {
                if r.kind == ElementKind::Mp4(crate::formats::mp4::FourCc::new(b"mdat")) {
                    self.mdat_at = self.mdat_at.or(Some(r.offset));
                }
                self.boxes.push(format!("{}@{}", r.kind, r.offset));
            }
            ContainerEvent::End(e) => self.end = Some(e.clone()),
            _ => {}
        }
    }

    fn index(&self) -> &'static str {
        match (self.moov_at, self.mdat_at) {
            (None, _) => "no moov",
            (Some(_), _) if self.fragmented => "fragmented",
            (Some(m), Some(d)) if m > d => "moov after media",
            (Some(_), _) => "moov before media",
        }
    }
}

/// What the core made of the input: the tracks and the split summary.
#[derive(Default)]
struct Seen {
    layout: Layout,
    tracks: Option<TrackSet>,
    summary: Option<crate::formats::SplitSummary>,
    notes: Vec<String>,
}

/// Runs the input through the core's reader, parameter policy and splitter (no output),
/// noting what each saw. The errors are worded as the pipeline's stages word them.
async fn read_input(
    mut input: mpsc::Receiver<crate::model::Chunk>,
    ctx: impl Fn(&str) -> StageContext,
    params: codecpar::CodecparConfig,
    seen: &mut Seen,
) -> Result<(), StageError> {
    let reference = match params.reference.clone() {
        Some(path) => {
            let loaded = tokio::task::spawn_blocking(move || codecpar::load_reference(&path)).await.map_err(|e| {
                ctx("codecpar-extract").error(Failure::Internal(format!("reading the reference failed: {e}")))
            })?;
            Some(Arc::new(loaded.map_err(|e| ctx("codecpar-extract").error(e))?))
        }
        None => None,
    };
    let mut policy = CodecParams::new(params.params, reference).map_err(|e| ctx("codecpar-extract").error(e))?;
    let mut probe = Probe::new();
    let mut splitter = Splitter::new(&Default::default());
    let (mut events, mut packets) = (Vec::new(), Vec::new());
    let result = loop {
        let step = match input.recv().await {
            Some(c) => probe.push(c),
            None => probe.end_of_input(),
        };
        if let Err(e) = step {
            break Err(ctx("probe").error(e));
        }
        let mut done = false;
        let polled = 'poll: loop {
            let ev = match probe.poll() {
                Ok(Some(ev)) => ev,
                Ok(None) => break Ok(()),
                Err(e) => break Err(ctx("probe").error(e)),
            };
            seen.layout.look_at(&ev);
            if let Err(e) = policy.push(ev, &mut events) {
                break Err(ctx("codecpar-extract").error(e));
            }
            for ev in events.drain(..) {
                let split = match ev {
                    ContainerEvent::End(end) => {
                        done = true;
                        splitter.finish(end, &mut packets).map(|s| seen.summary = Some(s))
                    }
                    ev => splitter.handle(ev, &mut packets),
                };
                if let Err(e) = split {
                    // As for the other stages: the notes gathered so far are kept.
                    break 'poll Err(ctx("packet-split").error(e));
                }
                for p in packets.drain(..) {
                    if let PacketEvent::Tracks(t) = p {
                        seen.tracks.get_or_insert(t);
                    }
                }
            }
        };
        if polled.is_err() || done {
            break polled;
        }
    };
    seen.notes.extend(probe.notes().iter().cloned());
    seen.notes.extend(policy.take_notes());
    result
}

pub async fn run(input: PathBuf, json: bool, params: codecpar::CodecparConfig) -> ExitCode {
    let mut report = Report { input: input.display().to_string(), ..Default::default() };
    let src_cfg = source::SourceConfig { path: input.clone(), ..Default::default() };
    let mut src_ctx = StageContext::new("source", "source");
    src_ctx.file = (!src_cfg.is_stdin()).then(|| input.clone());

    let (chunk_tx, chunk_rx) = mpsc::channel(stages::CHUNK_CHANNEL);
    let source =
        tokio::spawn(source::run(src_ctx.clone(), src_cfg, Outputs::new(vec![chunk_tx]), CancellationToken::new()));
    let ctx = |name: &str| {
        let kind = match name {
            "probe" => "probe",
            "codecpar-extract" => "codecpar-extract",
            _ => "packet-split",
        };
        let mut c = StageContext::new(name, kind);
        c.file = src_ctx.file.clone();
        c
    };
    let mut seen = Seen::default();
    let read = read_input(chunk_rx, ctx, params, &mut seen).await;
    match source.await {
        Ok(Err(e)) => report.error = Some(e.to_string()),
        Ok(Ok(r)) => report.notes.extend(r.notes),
        Err(_) => {}
    }
    if let Err(e) = read {
        report.error.get_or_insert(e.to_string());
    }
    report.notes.extend(seen.notes);
    let mut counts = Vec::new();
    if let Some(summary) = seen.summary {
        counts = summary.packets;
        report.notes.extend(summary.notes);
    }
    let layout = seen.layout;
    report.index = layout.index().to_string();
    report.container = layout.container;
    report.layout = layout.boxes;
    report.layout.sort_by_key(|s| s.rsplit('@').next().and_then(|n| n.parse::<u64>().ok()));
    if let Some(end) = layout.end {
        report.complete = end.cut.is_none();
        report.cut_at = end.cut.map(|c| c.offset);
    }
    let tracks = seen.tracks;
    for (i, t) in tracks.iter().flat_map(|t| t.iter()).enumerate() {
        report.tracks.push(TrackReport {
            input_id: t.input_id,
            kind: t.kind,
            codec: t.codec.name(),
            timescale: t.timescale,
            dimensions: t.codec.dimensions(),
            audio: t.codec.audio_format(),
            language: t.language_str().to_string(),
            params_from: t.origin.clone(),
            config: describe_config(&t.codec),
            packets: counts.get(i).copied().unwrap_or(0),
        });
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&report).expect("report serializes"));
    } else {
        print_text(&report);
    }
    if let Some(e) = &report.error {
        eprintln!("error: {e}");
        return ExitCode::from(super::EXIT_RUNTIME);
    }
    ExitCode::SUCCESS
}

fn print_text(r: &Report) {
    println!("input:     {}", r.input);
    println!("container: {}", r.container.map_or("unknown".to_string(), |c| c.to_string()));
    println!("layout:    {}", r.layout.join(" "));
    println!("index:     {}", r.index);
    match r.cut_at {
        None => println!("complete:  yes"),
        Some(at) => println!("complete:  no (cut inside the box at offset {at})"),
    }
    for (i, t) in r.tracks.iter().enumerate() {
        let shape = match (t.dimensions, t.audio) {
            (Some(d), _) => format!("{}x{}", d.width, d.height),
            (_, Some(a)) => format!("{} Hz, {} ch", a.sample_rate, a.channels),
            _ => String::new(),
        };
        println!(
            "track {}:   {} {} {} timescale {} lang {} packets {} (params from {:?})",
            i + 1,
            t.kind,
            t.codec,
            shape,
            t.timescale,
            t.language,
            t.packets,
            t.params_from
        );
        println!("           {}", t.config);
    }
    for n in &r.notes {
        println!("note:      {n}");
    }
}
