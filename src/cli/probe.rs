//! `livemux probe`: runs source, probe, codecpar-extract and packet-split, and describes
//! what they saw.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::codecs::CodecConfig;
use crate::formats::{ContainerEvent, ContainerKind, ElementKind, PacketEvent};
use crate::model::{ParamOrigin, TrackSet};
use crate::stages::{self, codecpar, packet_split, probe, source, Outputs, StageContext};
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

pub(crate) async fn run(input: PathBuf, json: bool, params: codecpar::CodecparConfig) -> ExitCode {
    let mut report = Report { input: input.display().to_string(), ..Default::default() };
    let src_cfg = source::SourceConfig { path: input.clone(), ..Default::default() };
    let mut src_ctx = StageContext::new("source", "source");
    src_ctx.file = (!src_cfg.is_stdin()).then(|| input.clone());

    let (chunk_tx, chunk_rx) = mpsc::channel(stages::CHUNK_CHANNEL);
    let (layout_tx, mut layout_rx) = mpsc::channel(stages::EVENT_CHANNEL);
    let (ev_tx, ev_rx) = mpsc::channel(stages::EVENT_CHANNEL);
    let (desc_tx, desc_rx) = mpsc::channel(stages::EVENT_CHANNEL);
    let (pkt_tx, mut pkt_rx) = mpsc::channel(stages::PACKET_CHANNEL);
    let ctx = |name: &str, kind: &'static str| {
        let mut c = StageContext::new(name, kind);
        c.file = src_ctx.file.clone();
        c
    };
    let tasks = vec![
        tokio::spawn(source::run(src_ctx.clone(), src_cfg, Outputs::new(vec![chunk_tx]), CancellationToken::new())),
        tokio::spawn(probe::run(
            ctx("probe", "probe"),
            Default::default(),
            chunk_rx,
            Outputs::new(vec![layout_tx, ev_tx]),
        )),
        tokio::spawn(codecpar::run(
            ctx("codecpar-extract", "codecpar-extract"),
            params,
            ev_rx,
            Outputs::new(vec![desc_tx]),
        )),
        tokio::spawn(packet_split::run(
            ctx("packet-split", "packet-split"),
            Default::default(),
            desc_rx,
            Outputs::new(vec![pkt_tx]),
        )),
    ];

    let layout = tokio::spawn(async move {
        let (mut layout, mut container, mut moov_at, mut mdat_at, mut fragmented, mut end) =
            (Vec::new(), None, None, None, false, None);
        while let Some(ev) = layout_rx.recv().await {
            match ev {
                ContainerEvent::Container(k) => container = Some(k),
                ContainerEvent::Meta(m) => {
                    if let ElementKind::Mp4(f) = m.kind {
                        match &f.0 {
                            b"moov" => moov_at = moov_at.or(Some(m.offset)),
                            b"moof" => fragmented = true,
                            _ => {}
                        }
                    }
                    layout.push(format!("{}@{}", m.kind, m.offset));
                }
                ContainerEvent::Skipped(r) | ContainerEvent::MediaStart(r) => {
                    if r.kind == ElementKind::Mp4(crate::formats::mp4::FourCc::new(b"mdat")) {
                        mdat_at = mdat_at.or(Some(r.offset));
                    }
                    layout.push(format!("{}@{}", r.kind, r.offset));
                }
                ContainerEvent::End(e) => end = Some(e),
                _ => {}
            }
        }
        layout.sort_by_key(|s| s.rsplit('@').next().and_then(|n| n.parse::<u64>().ok()));
        let index = match (moov_at, mdat_at) {
            (None, _) => "no moov",
            (Some(_), _) if fragmented => "fragmented",
            (Some(m), Some(d)) if m > d => "moov after media",
            (Some(_), _) => "moov before media",
        };
        (layout, container, index.to_string(), end)
    });

    let mut tracks: Option<TrackSet> = None;
    let mut counts = Vec::new();
    while let Some(ev) = pkt_rx.recv().await {
        match ev {
            PacketEvent::Tracks(t) => tracks = Some(t),
            PacketEvent::End(summary) => {
                counts = summary.packets;
                report.notes.extend(summary.notes);
            }
            _ => {}
        }
    }
    for t in tasks {
        match t.await {
            Ok(Err(e)) if report.error.is_none() => report.error = Some(e.to_string()),
            Ok(Ok(r)) => report.notes.extend(r.notes),
            _ => {}
        }
    }
    let (layout, container, index, end) = layout.await.unwrap_or_default();
    report.layout = layout;
    report.container = container;
    report.index = index;
    if let Some(end) = end {
        report.complete = end.cut.is_none();
        report.cut_at = end.cut.map(|c| c.offset);
    }
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
