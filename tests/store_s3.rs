//! The object-store client against a real S3-compatible server process (moto_server, from
//! tests/py/requirements.txt): conditional writes (the fencing of issue 17), listing under
//! a prefix, multipart uploads composed with server-side copies of byte ranges, presigned
//! reads, and the store's own errors.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::moto::Moto;
use livemux::store::{Condition, S3Config, S3Store, StoreError};

fn start() -> Option<Moto> {
    Moto::start()
}

fn store(moto: &Moto, url: &str) -> S3Store {
    moto.store(url)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

#[test]
fn conditional_writes_fence_an_object() {
    let Some(moto) = start() else { return };
    runtime().block_on(async {
        let s = store(&moto, "s3://fence/rec");
        s.create_bucket().await.unwrap();
        // Created once: a second create fails, whoever tries.
        let first = s.put("a/state.json", Bytes::from_static(b"{\"gen\":1}"), &Condition::IfAbsent).await.unwrap();
        let again = s.put("a/state.json", Bytes::from_static(b"{\"gen\":9}"), &Condition::IfAbsent).await;
        assert!(matches!(again, Err(StoreError::Precondition(_))), "{again:?}");
        // Replaced only by who read the current version.
        let read = Condition::IfMatch(first.clone());
        let second = s.put("a/state.json", Bytes::from_static(b"{\"gen\":2}"), &read).await.unwrap();
        assert_ne!(first, second);
        let stale = s.put("a/state.json", Bytes::from_static(b"{\"gen\":3}"), &Condition::IfMatch(first)).await;
        assert!(matches!(stale, Err(StoreError::Precondition(_))), "a stale owner cannot write: {stale:?}");
        let (body, tag) = s.get("a/state.json").await.unwrap();
        assert_eq!((&body[..], tag), (&b"{\"gen\":2}"[..], second));
        let missing = s.put("a/none.json", Bytes::new(), &Condition::IfMatch("\"x\"".into())).await;
        assert!(matches!(missing, Err(StoreError::NotFound(_))), "{missing:?}");
        assert!(matches!(s.get("a/none.json").await, Err(StoreError::NotFound(_))));
    });
}

#[test]
fn objects_list_under_their_prefix_and_are_deleted() {
    let Some(moto) = start() else { return };
    runtime().block_on(async {
        let s = store(&moto, "s3://list/deep/prefix/");
        s.create_bucket().await.unwrap();
        let other = store(&moto, "s3://list/other");
        for i in 0..3 {
            s.put(&format!("id/in/{i:010}"), Bytes::from(vec![7u8; i + 1]), &Condition::None).await.unwrap();
        }
        other.put("id/in/0000000000", Bytes::from_static(b"x"), &Condition::None).await.unwrap();
        let listed = s.list("id/in/").await.unwrap();
        let keys: Vec<_> = listed.iter().map(|o| (o.key.as_str(), o.size)).collect();
        assert_eq!(
            keys,
            [
                ("deep/prefix/id/in/0000000000", 1),
                ("deep/prefix/id/in/0000000001", 2),
                ("deep/prefix/id/in/0000000002", 3)
            ]
        );
        s.delete("id/in/0000000001").await.unwrap();
        s.delete("id/in/0000000001").await.unwrap();
        assert_eq!(s.list("id/").await.unwrap().len(), 2);
        // A presigned URL reads without credentials.
        let url = s.presigned_get("id/in/0000000002", Duration::from_secs(60));
        let got = reqwest::get(url).await.unwrap();
        assert!(got.status().is_success());
        assert_eq!(&got.bytes().await.unwrap()[..], &[7u8; 3]);
    });
}

#[test]
fn a_multipart_upload_copies_ranges_server_side() {
    let Some(moto) = start() else { return };
    runtime().block_on(async {
        let s = store(&moto, "s3://compose/rec");
        s.create_bucket().await.unwrap();
        const MIB: usize = 1 << 20;
        let media: Vec<u8> = (0..6 * MIB).map(|i| (i % 251) as u8).collect();
        s.put("seg-0", Bytes::from(media.clone()), &Condition::IfAbsent).await.unwrap();
        // The final object: bytes 0..5 MiB copied, then a new tail (an index, say).
        let upload = s.create_multipart("recording.mp4").await.unwrap();
        let part1 = s.upload_part_copy("recording.mp4", &upload, 1, "seg-0", 0..(5 * MIB) as u64).await.unwrap();
        let part2 = s.upload_part("recording.mp4", &upload, 2, Bytes::from_static(b"index")).await.unwrap();
        s.complete_multipart("recording.mp4", &upload, &[part1, part2], &Condition::IfAbsent).await.unwrap();
        let (body, _) = s.get("recording.mp4").await.unwrap();
        assert_eq!(body.len(), 5 * MIB + 5);
        assert!(body[..5 * MIB] == media[..5 * MIB] && &body[5 * MIB..] == b"index");
        // Completing onto an existing object on IfAbsent fails: one writer finishes a recording.
        let late = s.create_multipart("recording.mp4").await.unwrap();
        let part = s.upload_part("recording.mp4", &late, 1, Bytes::from_static(b"late")).await.unwrap();
        let done = s.complete_multipart("recording.mp4", &late, &[part], &Condition::IfAbsent).await;
        assert!(matches!(done, Err(StoreError::Precondition(_))), "{done:?}");
        s.abort_multipart("recording.mp4", &late).await.unwrap();
        // A part under 5 MiB before the last is the store's error, named.
        let small = s.create_multipart("small.mp4").await.unwrap();
        let a = s.upload_part("small.mp4", &small, 1, Bytes::from_static(b"aa")).await.unwrap();
        let b = s.upload_part("small.mp4", &small, 2, Bytes::from_static(b"bb")).await.unwrap();
        let e = s.complete_multipart("small.mp4", &small, &[a, b], &Condition::None).await.unwrap_err();
        assert!(e.to_string().contains("EntityTooSmall"), "{e}");
    });
}

#[test]
fn bad_store_urls_and_an_unreachable_store_are_errors() {
    let config = S3Config {
        endpoint: Some("http://127.0.0.1:9".into()),
        region: "us-east-1".into(),
        access_key: "k".into(),
        secret_key: "s".into(),
        ..S3Config::default()
    };
    for url in ["bucket/prefix", "s3://", "s3:///prefix"] {
        assert!(matches!(S3Store::new(url, &config), Err(StoreError::Config(_))), "{url}");
    }
    let s = S3Store::new("s3://b/p", &config).unwrap();
    let e = runtime().block_on(s.get("x")).unwrap_err();
    assert!(matches!(e, StoreError::Transport { .. }), "{e:?}");
}
