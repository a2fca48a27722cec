//! Embedding livemux as an upload handler would: the recording arrives in pieces of any
//! size (here: a file cut into pieces of 1 byte to `--max-piece` bytes), each piece goes to
//! a [`Recording`], and the file is crash-safe after every piece. The result is the file
//! `livemux remux INPUT -o OUTPUT` makes, byte for byte.
//!
//!     cargo run --example upload -- samples/chrome_mp4_avc1_opus.mp4 out.mp4
//!     cargo run --example upload -- in.webm out.webm --max-piece 1 -y
//!
//! Options: `--to fmp4|mp4|mkv|webm|matroska` (default: from OUTPUT's name, as `remux -o`),
//! `--max-piece BYTES` (default 1048576), `--seed N` (piece sizes), `-y` (replace OUTPUT).

use bytes::Bytes;
use livemux::{MuxFormat, Recording, RecordingOptions};

struct Args {
    input: String,
    output: String,
    to: Option<MuxFormat>,
    max_piece: usize,
    seed: u64,
    overwrite: bool,
}

fn args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut positional = Vec::new();
    let mut args =
        Args { input: String::new(), output: String::new(), to: None, max_piece: 1 << 20, seed: 1, overwrite: false };
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--to" => args.to = Some(value()?.parse()?),
            "--max-piece" => args.max_piece = value()?.parse().map_err(|e| format!("--max-piece: {e}"))?,
            "--seed" => args.seed = value()?.parse().map_err(|e| format!("--seed: {e}"))?,
            "-y" => args.overwrite = true,
            _ => positional.push(a),
        }
    }
    let [input, output] = <[String; 2]>::try_from(positional)
        .map_err(|_| "usage: upload INPUT OUTPUT [--to FORMAT] [--max-piece BYTES] [--seed N] [-y]".to_string())?;
    if args.max_piece == 0 {
        return Err("--max-piece must be at least 1".into());
    }
    (args.input, args.output) = (input, output);
    Ok(args)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = args()?;
    let data = Bytes::from(std::fs::read(&args.input)?);
    let mut options = RecordingOptions::default().overwrite(args.overwrite);
    if let Some(to) = args.to {
        options = options.format(to);
    }
    let mut recording = Recording::create(&args.output, options)?;
    // Piece sizes as a network delivers them: irregular, from 1 byte up to --max-piece.
    let mut x = args.seed | 1;
    let mut at = 0;
    while at < data.len() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let n = (1 + (x % args.max_piece as u64) as usize).min(data.len() - at);
        recording.push(data.slice(at..at + n))?;
        at += n;
    }
    let report = recording.finish()?;
    for note in &report.notes {
        eprintln!("note: {note}");
    }
    eprintln!(
        "{}: {:?}, {} bytes in, {} bytes out, {} fragments, {} finalize writes, {} ms",
        report.path.display(),
        report.format,
        report.input_len,
        report.output_len,
        report.fragments,
        report.finalize_writes,
        report.duration_ms
    );
    Ok(())
}
