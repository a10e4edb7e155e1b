//! A 1 GiB session upload (10 MiB fragments generated on the fly) and its streamed download
//! keep the simulator's peak resident memory under 200 MiB.

mod common;

use std::time::Instant;

use common::*;
use futures_util::StreamExt;
use quickxorhash::QuickXorHash;
use serde_json::json;

const GIB: usize = 1 << 30;
const LIMIT_KIB: u64 = 200 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_gib_upload_and_download_stay_under_200_mib() {
    let ctx = Ctx::new().await;
    let frag = 32 * FRAG; // 10 MiB
    let item = json!({"@microsoft.graph.conflictBehavior": "fail"});
    let session = ctx.create_session("one-gib.bin", item).await;
    let url = session["uploadUrl"].as_str().unwrap().to_string();
    let started = Instant::now();
    let mut hash = QuickXorHash::new();
    let mut buf = vec![0u8; frag];
    let (mut pos, mut n) = (0, 0u64);
    let done = loop {
        let len = frag.min(GIB - pos);
        fill(&mut buf[..len], n);
        n += 1;
        hash.update(&buf[..len]);
        let resp = put_fragment(&ctx.sim.http, &url, pos, &buf[..len], GIB).await;
        pos += len;
        if pos < GIB {
            let v = json_status(resp, 202).await;
            assert_eq!(v["nextExpectedRanges"], json!([format!("{pos}-")]));
        } else {
            break json_status(resp, 201).await;
        }
    };
    let upload_time = started.elapsed();
    let expected = b64(&hash.finalize());
    assert_eq!(done["size"], GIB);
    assert_eq!(done["file"]["hashes"]["quickXorHash"], expected.as_str());
    let after_upload = ctx.sim.vm_hwm_kib();
    assert!(
        after_upload < LIMIT_KIB,
        "VmHWM after 1 GiB upload: {after_upload} KiB"
    );

    // Stream it back without holding it (neither here nor in the simulator).
    let id = done["id"].as_str().unwrap();
    let resp = ctx.get(&ctx.d(&format!("/items/{id}/content"))).await;
    assert_eq!(resp.status(), 302);
    let loc = resp.headers()["location"].to_str().unwrap().to_string();
    let resp = ctx.sim.http.get(&loc).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut stream = resp.bytes_stream();
    let mut back = QuickXorHash::new();
    let mut len = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.expect("download stream");
        len += chunk.len();
        back.update(&chunk);
    }
    assert_eq!(len, GIB);
    assert_eq!(b64(&back.finalize()), expected);
    let peak = ctx.sim.vm_hwm_kib();
    assert!(peak < LIMIT_KIB, "VmHWM after 1 GiB download: {peak} KiB");
    eprintln!(
        "1 GiB: upload {upload_time:?}, total {:?}, simulator VmHWM {peak} KiB",
        started.elapsed()
    );
}
