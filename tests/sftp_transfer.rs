//! SFTP transfers with OpenSSH's `sftp`: put and get of sizes around the edges of Graph's
//! upload rules (empty, one byte, one 320 KiB fragment and either side of it, past the 4 MiB
//! simple-upload limit, a 100 MiB file), and `reput`/`reget` resuming partial transfers. Every
//! upload is checked in the simulator (size, quickXorHash recomputed here, content) and by
//! getting it back.

mod common;
mod sftp_support;

use sftp_support::{Gateway, User, assert_same, random};

const ALL: &[&str] = &["*"];

/// A gateway whose user `alice` sees the library folder `Transfers` as `/`.
async fn gateway() -> Gateway {
    let gw = Gateway::start(&[User::new("alice").sharepoint("/", "/Transfers", ALL)]).await;
    gw.sim_mkdirs("Transfers").await;
    gw
}

#[tokio::test]
async fn put_and_get_keep_files_of_every_size() {
    let gw = gateway().await;
    let sizes = [0, 1, 327_679, 327_680, 327_681, 10 * 1024 * 1024 + 1];
    let mut files = Vec::new();
    let (mut puts, mut gets) = (String::new(), String::new());
    std::fs::create_dir(gw.client_dir().join("back")).unwrap();
    for size in sizes {
        let name = format!("f{size}.bin");
        let bytes = random(size);
        gw.write_local(&name, &bytes);
        puts += &format!("put {name} {name}\n");
        gets += &format!("get {name} back/{name}\n");
        files.push((name, bytes));
    }
    gw.sftp_ok("alice", &format!("{puts}ls -l\n")).await;
    for (name, bytes) in &files {
        gw.assert_stored(&format!("Transfers/{name}"), bytes).await;
    }
    gw.sftp_ok("alice", &gets).await;
    for (name, bytes) in &files {
        assert_same(&gw.read_local(&format!("back/{name}")), bytes, name);
    }
}

#[tokio::test]
async fn a_100_mib_file_goes_up_and_comes_back() {
    let gw = gateway().await;
    let bytes = random(100 * 1024 * 1024);
    gw.write_local("big.bin", &bytes);
    let started = std::time::Instant::now();
    gw.sftp_ok("alice", "put big.bin big.bin\n").await;
    let up = started.elapsed();
    gw.assert_stored("Transfers/big.bin", &bytes).await;
    let started = std::time::Instant::now();
    gw.sftp_ok("alice", "get big.bin back.bin\n").await;
    let down = started.elapsed();
    assert_same(&gw.read_local("back.bin"), &bytes, "big.bin got back");
    eprintln!("100 MiB through spgate: put {up:?}, get {down:?}");
}

/// The first `cut` bytes of `bytes` with one byte changed: what a resumed transfer keeps, so
/// that the result shows the transfer resumed instead of starting over.
fn marked_prefix(bytes: &[u8], cut: usize) -> Vec<u8> {
    let mut prefix = bytes[..cut].to_vec();
    prefix[cut / 2] ^= 0xff;
    prefix
}

#[tokio::test]
async fn reput_completes_a_partial_upload() {
    let gw = gateway().await;
    let bytes = random(5 * 1024 * 1024 + 12_345);
    let cut = 2 * 1024 * 1024 + 7;
    let prefix = marked_prefix(&bytes, cut);
    gw.write_local("whole.bin", &bytes);
    gw.write_local("part.bin", &prefix);
    gw.sftp_ok("alice", "put part.bin data.bin\n").await;
    gw.assert_stored("Transfers/data.bin", &prefix).await;

    gw.sftp_ok("alice", "reput whole.bin data.bin\n").await;
    let want = [&prefix[..], &bytes[cut..]].concat();
    gw.assert_stored("Transfers/data.bin", &want).await;
    gw.sftp_ok("alice", "get data.bin check.bin\n").await;
    assert_same(&gw.read_local("check.bin"), &want, "data.bin after reput");
}

#[tokio::test]
async fn reget_completes_a_partial_download() {
    let gw = gateway().await;
    let bytes = random(3 * 1024 * 1024 + 999);
    gw.sim_put("Transfers/remote.bin", &bytes).await;
    let cut = 1024 * 1024 + 3;
    let prefix = marked_prefix(&bytes, cut);
    gw.write_local("remote.bin", &prefix);

    gw.sftp_ok("alice", "reget remote.bin remote.bin\n").await;
    let want = [&prefix[..], &bytes[cut..]].concat();
    assert_same(
        &gw.read_local("remote.bin"),
        &want,
        "remote.bin after reget",
    );
    // The remote file is untouched.
    gw.assert_stored("Transfers/remote.bin", &bytes).await;
}
