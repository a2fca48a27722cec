//! A `livemux serve` process for the server tests: started on a free loopback port with a
//! temporary data dir, killed (SIGKILL) or stopped (SIGTERM), restarted on the same dir.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running `livemux serve`.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    pub data_dir: PathBuf,
    /// Extra arguments it was started with (kept for `restart`).
    args: Vec<String>,
    /// Extra environment variables (kept for `restart`).
    env: Vec<(String, String)>,
    /// Every stderr line so far (log and event lines).
    pub log: Arc<Mutex<Vec<String>>>,
    /// Keeps a temporary data dir alive.
    _tmp: Option<tempfile::TempDir>,
}

impl Server {
    /// Starts `livemux serve --listen 127.0.0.1:0 --data-dir <temp> ARGS...`.
    pub fn start(args: &[&str]) -> Server {
        Server::start_with(None, args, &[])
    }

    /// Starts on a given data dir (which may hold uploads of an earlier run).
    pub fn start_in(data_dir: &Path, args: &[&str]) -> Server {
        Server::start_with(Some(data_dir), args, &[])
    }

    /// Starts with extra environment variables (`data_dir`: `None` for a temporary one).
    ///
    /// With `LIVEMUX_TEST_STORE=s3://BUCKET` in the tests' environment (and the AWS
    /// variables pointing at that store), every server the tests start keeps its uploads
    /// there, under a prefix of its own (`--store s3://BUCKET/<random>`): how the serve
    /// tests are run a second time against an object store (`scripts/test-store.sh`).
    pub fn start_with(data_dir: Option<&Path>, args: &[&str], env: &[(String, String)]) -> Server {
        let mut args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        if let Ok(store) = std::env::var("LIVEMUX_TEST_STORE") {
            if !store.is_empty() && !args.iter().any(|a| a == "--store") {
                let n: u64 =
                    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
                args.push("--store".into());
                args.push(format!("{}/t{:x}-{}", store.trim_end_matches('/'), n, std::process::id()));
            }
        }
        let (tmp, data_dir) = match data_dir {
            Some(d) => (None, d.to_path_buf()),
            None => {
                let tmp = tempfile::tempdir().unwrap();
                let d = tmp.path().join("data");
                (Some(tmp), d)
            }
        };
        let env = env.to_vec();
        let (child, url, log) = spawn(&data_dir, &args, &env, "127.0.0.1:0");
        Server { child, url, data_dir, args, env, log, _tmp: tmp }
    }

    /// What the status calls an output `rel` to the data dir (`<id>/recording.mp4`): that,
    /// or with a store the object's key (`PREFIX/<id>/recording.mp4`).
    pub fn output_name(&self, rel: &str) -> String {
        let store = self.args.iter().position(|a| a == "--store").and_then(|i| self.args.get(i + 1));
        match store.and_then(|url| url.trim_start_matches("s3://").split_once('/')) {
            Some((_, prefix)) if !prefix.trim_matches('/').is_empty() => format!("{}/{rel}", prefix.trim_matches('/')),
            _ => rel.to_string(),
        }
    }

    /// Whether it keeps its uploads in an object store (`--store`).
    pub fn stored(&self) -> bool {
        self.args.iter().any(|a| a == "--store")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `URL/files/` etc.
    pub fn at(&self, path: &str) -> String {
        format!("{}{}", self.url, path)
    }

    /// SIGKILL, and waits for the process to be gone.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM; returns the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        super::signal(self.child.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "livemux serve did not exit within 60 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts again on the same data dir and port (after `kill9` or `terminate`).
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let addr = self.url.trim_start_matches("http://").to_string();
        let (child, url, log) = spawn(&self.data_dir, &self.args, &self.env, &addr);
        self.child = child;
        self.url = url;
        self.log = log;
    }

    /// The event lines logged so far (JSON objects with an "event" key).
    pub fn events(&self) -> Vec<serde_json::Value> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| l.find('{').and_then(|i| serde_json::from_str::<serde_json::Value>(&l[i..]).ok()))
            .filter(|v| v.get("event").is_some())
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(
    data_dir: &Path,
    args: &[String],
    env: &[(String, String)],
    listen: &str,
) -> (Child, String, Arc<Mutex<Vec<String>>>) {
    // The port of an earlier run may be in TIME_WAIT or not yet released: retry a moment.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut child = Command::new(env!("CARGO_BIN_EXE_livemux"))
            .args(["serve", "--listen", listen, "--data-dir"])
            .arg(data_dir)
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start livemux serve");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let lines = log.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(at) = line.find("listening on http://") {
                    let url = line[at + "listening on ".len()..].split_whitespace().next().unwrap().to_string();
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(url);
                    }
                }
                lines.lock().unwrap().push(line);
            }
        });
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(url) => return (child, url, log),
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().unwrap();
                let text = log.lock().unwrap().join("\n");
                assert!(
                    Instant::now() < deadline && text.contains("in use"),
                    "livemux serve did not start ({status}):\n{text}"
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}
