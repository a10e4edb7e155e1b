//! Names: what SharePoint refuses is refused by spgate before any request (the simulator's
//! counters do not move), and every name it accepts — URL-special characters, spaces,
//! non-ASCII — round-trips exactly through upload, listing, stat, rename and download.

mod common;
mod graph_support;

use graph_support::*;
use spgate::graph::{Kind, OnConflict};

const REFUSED: [&str; 12] = [
    "a:b",
    "CON.txt",
    "lpt1",
    "x_vti_y",
    "trailing ",
    " leading",
    "trailing.",
    "~$lock.docx",
    "star*",
    "pipe|x",
    "quote\"x",
    "desktop.ini",
];

#[tokio::test]
async fn invalid_names_are_refused_before_any_request() {
    let world = World::new().await;
    let (_connection, drive) = world.drive("").await;
    put(&drive, "/ok.txt", b"ok").await;
    drive.mkdir("/dir").await.unwrap();
    let long = format!("/{}/{}.txt", "d".repeat(200), "n".repeat(200));
    let before = world.ctx.sim.stats().await;

    let mut paths: Vec<String> = REFUSED.iter().map(|n| format!("/{n}")).collect();
    paths.extend(REFUSED.iter().map(|n| format!("/dir/{n}")));
    paths.push(format!("/{n}/x.txt", n = REFUSED[0]));
    paths.push(long.clone());
    for path in &paths {
        assert_kind(put_result(&drive, path).await, Kind::InvalidName, path);
        assert_kind(
            drive
                .upload_session(path, 10, None, OnConflict::Replace)
                .await
                .map(|_| ()),
            Kind::InvalidName,
            path,
        );
        assert_kind(drive.mkdir(path).await, Kind::InvalidName, path);
        assert_kind(
            drive.rename("/ok.txt", path, false).await,
            Kind::InvalidName,
            path,
        );
        assert_kind(
            drive.rename("/ok.txt", path, true).await,
            Kind::InvalidName,
            path,
        );
        assert_kind(drive.copy("/ok.txt", path).await, Kind::InvalidName, path);
    }
    // `forms` is only refused as a folder at the library root.
    assert_kind(drive.mkdir("/Forms").await, Kind::InvalidName, "/Forms");
    assert_eq!(world.ctx.sim.stats().await, before, "nothing was sent");

    drive
        .mkdir("/dir/Forms")
        .await
        .expect("forms below the root");
    put(&drive, "/forms", b"a file called forms").await;
    assert_eq!(world.names("dir").await, ["Forms"]);
    assert_eq!(world.names("").await, ["dir", "forms", "ok.txt"]);
}

async fn put_result(drive: &spgate::graph::Drive, path: &str) -> spgate::graph::Result<()> {
    drive.upload(path, &b"x"[..], 1, None).await.map(|_| ())
}

#[tokio::test]
async fn the_length_limit_counts_the_library_prefix() {
    let world = World::new().await;
    let (_connection, drive) = world.drive("").await;
    // The library's server-relative path (`sites/partners/Shared Documents`) counts too.
    let web_url = world.ctx.get_json(&world.ctx.d("")).await["webUrl"]
        .as_str()
        .unwrap()
        .to_string();
    let prefix = web_url.splitn(4, '/').nth(3).unwrap().replace("%20", " ");
    let fits = 400 - prefix.chars().count() - 1;
    assert!(
        drive
            .check_new_path(&format!("/{}", "a".repeat(fits)), false)
            .is_ok()
    );
    put(&drive, &format!("/{}", "a".repeat(fits)), b"fits").await;
    let before = world.requests().await;
    assert_kind(
        put_result(&drive, &format!("/{}", "a".repeat(fits + 1))).await,
        Kind::InvalidName,
        "one character too many",
    );
    assert_eq!(world.requests().await, before);
    // The simulator refuses the longer name too: the two rules agree.
    let resp = world
        .ctx
        .put_raw(&"a".repeat(fits + 1), b"x".to_vec(), "")
        .await;
    assert_eq!(resp.status(), 400, "the simulator's own limit");
}

const ACCEPTED: [&str; 9] = [
    "# % & ' + , ; = @ [ ].txt",
    "100% sure #1.txt",
    "a+b=c;d,e@f[g]h&i'j.txt",
    "with  two  spaces.txt",
    "Größe 報告.txt",
    "emoji 😀.txt",
    "%20literal%2F.txt",
    "con1.txt",
    "dot.in.middle",
];

#[tokio::test]
async fn special_names_round_trip() {
    let world = World::new().await;
    let (_connection, drive) = world.drive("").await;
    let folder = "/Ordner # % & ' + , ; = @ [ ] é";
    drive
        .mkdir(folder)
        .await
        .expect("mkdir with special characters");
    for (i, name) in ACCEPTED.iter().enumerate() {
        let path = format!("{folder}/{name}");
        let entry = put(&drive, &path, format!("body {i}").as_bytes()).await;
        assert_eq!(entry.name, *name);
        assert_eq!(drive.stat(&path).await.unwrap().name, *name);
        assert!(
            fetch(&drive, &path, 0, None).await == format!("body {i}").as_bytes(),
            "{name}"
        );
        // The simulator stored exactly this name at exactly this path.
        assert_eq!(world.item(&path).await["name"], *name);
    }
    let mut want: Vec<String> = ACCEPTED.iter().map(|n| n.to_string()).collect();
    want.sort();
    let mut listed: Vec<String> = drive
        .list_all(folder)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    listed.sort();
    assert_eq!(listed, want, "spgate's listing");
    assert_eq!(world.names(folder).await, want, "the simulator's listing");
    assert_eq!(world.names("").await, [folder.trim_start_matches('/')]);

    // Renames between special names keep them exact too.
    let from = format!("{folder}/{}", ACCEPTED[0]);
    let to = format!("{folder}/renamed [1] & 2 #%.txt");
    let entry = drive.rename(&from, &to, false).await.unwrap();
    assert_eq!(entry.name, "renamed [1] & 2 #%.txt");
    assert_eq!(world.item_status(&from).await, 404);
    assert_eq!(world.item(&to).await["name"], "renamed [1] & 2 #%.txt");
}
