//! A real S3-compatible server process for the store tests: moto_server (from
//! tests/py/requirements.txt, beside `LIVEMUX_PYTHON` or on PATH) on a free port, killed
//! on drop. Missing, it fails the test under `LIVEMUX_REQUIRE_TOOLS=1` and skips it
//! (saying so) otherwise.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use livemux::store::{S3Config, S3Store};

/// A moto_server on a free port, killed on drop.
pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// moto_server beside the test Python (the venv of tests/py), else on PATH.
fn moto_server() -> Option<PathBuf> {
    let beside = PathBuf::from(super::python()).with_file_name("moto_server");
    if beside.is_file() {
        return Some(beside);
    }
    let on_path = Command::new("moto_server").arg("--help").stdout(Stdio::null()).stderr(Stdio::null()).status();
    on_path.is_ok_and(|s| s.success()).then(|| PathBuf::from("moto_server"))
}

impl Moto {
    /// Starts one with S3's rules (parts of 5 MiB at least).
    pub fn start() -> Option<Moto> {
        Moto::start_with_min_part(None)
    }

    /// Starts one whose smallest multipart part is `min_part` bytes (moto's
    /// `S3_UPLOAD_PART_MIN_SIZE`), so that small recordings are composed from several parts.
    pub fn start_with_min_part(min_part: Option<u64>) -> Option<Moto> {
        let Some(bin) = moto_server() else {
            let why =
                "moto_server is not installed (python3 -m pip install -r tests/py/requirements.txt, LIVEMUX_PYTHON)";
            assert!(!super::tools_required(), "LIVEMUX_REQUIRE_TOOLS=1 but {why}");
            eprintln!("SKIPPED: {why}");
            return None;
        };
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut command = Command::new(bin);
        command.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        if let Some(n) = min_part {
            command.env("S3_UPLOAD_PART_MIN_SIZE", n.to_string());
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let moto = Moto { child, endpoint: format!("http://127.0.0.1:{port}") };
        // Python starts in a second or two; a loaded machine may take longer.
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not listen on {port}");
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(moto)
    }

    /// The AWS variables that point a `livemux serve` at it.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint.as_str()),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// A client of `url` (`s3://BUCKET/PREFIX`) on it.
    pub fn store(&self, url: &str) -> S3Store {
        let config = S3Config {
            endpoint: Some(self.endpoint.clone()),
            region: "us-east-1".into(),
            access_key: "testing".into(),
            secret_key: "testing".into(),
            ..S3Config::default()
        };
        S3Store::new(url, &config).unwrap()
    }

    /// Creates the bucket `name`.
    pub fn bucket(&self, name: &str) {
        let s = self.store(&format!("s3://{name}"));
        super::block_on(s.create_bucket()).unwrap();
    }
}
