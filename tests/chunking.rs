//! Property: splitting the input into arbitrary chunks never changes the output.

mod common;

use bytes::Bytes;
use livemux::pipeline::Pipeline;
use livemux::stages::mux::MuxConfig;
use livemux::stages::sink::SinkConfig;
use livemux::stages::source::SourceConfig;
use proptest::prelude::*;

/// Runs the default pipeline in-process, feeding `data` cut at `cuts`.
fn remux_in_chunks(data: &Bytes, sizes: &[usize]) -> Vec<u8> {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let sink = SinkConfig::new("-");
        let mut p = Pipeline::remux(SourceConfig::default(), Default::default(), MuxConfig::default(), sink).unwrap();
        let mut feed = p.feed_input().unwrap();
        let mut rx = p.collect_output().unwrap();
        let run = tokio::spawn(p.run(Default::default()));
        let data = data.clone();
        let sizes = sizes.to_vec();
        tokio::spawn(async move {
            let (mut at, mut i) = (0, 0);
            while at < data.len() {
                let n = sizes[i % sizes.len()].min(data.len() - at);
                feed.send(data.slice(at..at + n)).await.unwrap();
                at += n;
                i += 1;
            }
        });
        let mut out = Vec::new();
        while let Some(f) = rx.recv().await {
            out.extend_from_slice(&f.to_bytes());
        }
        run.await.unwrap().unwrap();
        out
    })
}

fn inputs() -> Vec<Bytes> {
    let dir = tempfile::tempdir().unwrap();
    vec![
        Bytes::from(std::fs::read(common::browser_file("chrome_mp4_avc1_opus", dir.path())).unwrap()),
        // moov after the media, streamed: exercises the buffering path.
        Bytes::from(std::fs::read(common::generated_file("h264_aac_moov_end.mp4")).unwrap()),
        Bytes::from(std::fs::read(common::generated_file("h264_aac_fragmented.mp4")).unwrap()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]
    #[test]
    fn any_chunking_gives_the_same_output(
        which in 0usize..3,
        sizes in prop::collection::vec(prop_oneof![1usize..16, 16usize..4096, 4096usize..300_000], 1..8),
    ) {
        static INPUTS: std::sync::OnceLock<Vec<Bytes>> = std::sync::OnceLock::new();
        static EXPECTED: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
        let inputs = INPUTS.get_or_init(inputs);
        let expected = EXPECTED.get_or_init(|| inputs.iter().map(|d| remux_in_chunks(d, &[d.len()])).collect());
        // Tiny chunks only for a while, or the test would take minutes.
        let sizes: Vec<usize> = if sizes.iter().all(|&s| s < 16) { sizes.iter().map(|s| s * 997).collect() } else { sizes };
        let got = remux_in_chunks(&inputs[which], &sizes);
        prop_assert!(got.len() > 1000);
        prop_assert_eq!(&got, &expected[which]);
    }
}
