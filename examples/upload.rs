//! Embedding livemux: feed recorder bytes from anywhere (here: a file read in small pieces,
//! as an upload handler would receive them) and get crash-safe fragments back.
//!
//!     cargo run --example upload -- samples/chrome_mp4_avc1_opus.mp4 out.mp4

use std::io::Write;

use bytes::Bytes;
use livemux::pipeline::Pipeline;
use livemux::stages::mux::MuxConfig;
use livemux::stages::sink::SinkConfig;
use livemux::stages::source::SourceConfig;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (input, output) = match args.as_slice() {
        [_, i, o] => (i.clone(), o.clone()),
        _ => return Err("usage: upload INPUT OUTPUT".into()),
    };
    // The source and sink settings are unused: their ends are handed to this program.
    let mut pipeline = Pipeline::remux(
        SourceConfig::default(),
        Default::default(),
        MuxConfig::default(),
        SinkConfig { path: "-".into(), durability: None },
    )?;
    let mut feed = pipeline.feed_input()?;
    let mut fragments = pipeline.collect_output()?;
    let run = tokio::spawn(pipeline.run(Default::default()));

    let data = Bytes::from(std::fs::read(&input)?);
    tokio::spawn(async move {
        for piece in data.chunks(64 * 1024) {
            if feed.send(data.slice_ref(piece)).await.is_err() {
                break;
            }
        }
    });
    let mut file = std::fs::File::create(&output)?;
    while let Some(f) = fragments.recv().await {
        file.write_all(&f.to_bytes())?;
        file.sync_data()?;
        eprintln!("{:?} fragment: {} bytes, {} packets", f.kind, f.len(), f.packets);
    }
    run.await??;
    Ok(())
}
