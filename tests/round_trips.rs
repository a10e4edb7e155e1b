//! Graph requests per client operation, counted by the simulator: a small file costs one
//! request (the upload itself settles create-or-replace and answers the new item), and mkdir,
//! rename and delete of a listed file one each. SharePoint is 50-200 ms away; every request
//! saved is a round trip a partner does not wait for.

mod common;
mod ftp_support;
mod sftp_support;

use serde_json::{Value, json};

use common::{Gateway, User, random};

const ALL: &[&str] = &["*"];

/// Requests by kind since the last reset, without the kinds that are zero, once the upload
/// queue has settled (with `upload_commit = "queued"`, uploads go on after the client is done).
async fn requests(gw: &Gateway) -> Value {
    gw.settle().await;
    let stats = gw.ctx.sim.stats().await;
    let by_kind = stats["by_kind"].as_object().expect("by_kind").clone();
    Value::Object(
        by_kind
            .into_iter()
            .filter(|(_, n)| n.as_u64() != Some(0))
            .collect(),
    )
}

async fn reset(gw: &Gateway) {
    gw.ctx.sim.control("/stats/reset", json!({})).await;
}

#[tokio::test]
async fn a_small_file_costs_one_request_over_sftp_and_ftp() {
    let gw = Gateway::start(&[User::new("alice")
        .password("wonderland")
        .sharepoint("/", "/", ALL)])
    .await;
    gw.sim_mkdirs("in").await;
    let names: Vec<String> = (0..20).map(|i| format!("f{i:02}.txt")).collect();
    for name in &names {
        gw.write_local(name, &random(10 * 1024));
    }
    // The folder is looked at first (as clients do: cd, ls); then only the uploads count.
    let puts: String = names.iter().map(|n| format!("put {n}\n")).collect();
    let batch = format!(
        "cd in\nls\n!curl -s -X POST {}\n{puts}",
        gw.ctx.sim.ctl("/stats/reset")
    );
    gw.sftp_ok("alice", &batch).await;
    assert_eq!(
        requests(&gw).await,
        json!({"simple_upload": 20}),
        "one request per small file over SFTP"
    );
    for name in &names {
        gw.assert_stored(&format!("in/{name}"), &gw.read_local(name))
            .await;
    }

    // Replacing costs the same; so do the same files over FTP.
    reset(&gw).await;
    gw.sftp_ok("alice", &format!("cd in\n{puts}")).await;
    let replaced = requests(&gw).await;
    assert_eq!(replaced["simple_upload"], 20, "{replaced}");
    assert!(
        replaced["get_item"].as_u64().unwrap_or(0) <= 1,
        "at most the folder's stat: {replaced}"
    );
    let script = format!(
        "import io\nftp.cwd('/in')\nfor name in {names:?}:\n    \
         ftp.storbinary('STOR ' + name, io.BytesIO(b'ftp ' + name.encode()))\nprint('done')\n"
    );
    reset(&gw).await;
    let out = gw.python_ok("alice", "wonderland", &script).await;
    assert!(out.contains("done"), "{out}");
    let over_ftp = requests(&gw).await;
    assert_eq!(over_ftp["simple_upload"], 20, "{over_ftp}");
    assert!(
        over_ftp["get_item"].as_u64().unwrap_or(0) <= 1,
        "at most the folder's stat (CWD): {over_ftp}"
    );
    gw.assert_stored("in/f07.txt", b"ftp f07.txt").await;
}

#[tokio::test]
async fn mkdir_rename_and_delete_of_listed_files_cost_one_request_each() {
    let gw = Gateway::start(&[User::new("alice").sharepoint("/", "/", ALL)]).await;
    gw.sim_put("a.txt", b"a").await;
    gw.sim_put("b.txt", b"b").await;
    let reset_url = gw.ctx.sim.ctl("/stats/reset");
    gw.sftp_ok(
        "alice",
        &format!("ls\n!curl -s -X POST {reset_url}\nmkdir d\nrename a.txt c.txt\nrm b.txt\n"),
    )
    .await;
    assert_eq!(
        requests(&gw).await,
        json!({"mkdir": 1, "move": 1, "delete": 1}),
        "one request each"
    );
    assert_eq!(gw.sim_names("").await, ["c.txt", "d"]);
}

#[tokio::test]
async fn a_user_who_may_not_overwrite_is_refused_without_a_stat_of_its_own() {
    let writer = User::new("alice")
        .password("wonderland")
        .sharepoint("/", "/", &["list", "read", "write"])
        // The close hears SharePoint's "name taken"; a queued close costs a stat instead.
        .commit("close");
    let gw = Gateway::start(&[writer]).await;
    gw.sim_put("taken.txt", b"original").await;
    gw.sim_put("other.txt", b"other").await;
    gw.write_local("new.txt", b"new content");
    // OpenSSH stats the target itself: the gateway refuses from what that answered.
    reset(&gw).await;
    let out = gw
        .sftp("alice", "put new.txt fresh.txt\nput new.txt taken.txt\n")
        .await;
    let asked = requests(&gw).await;
    assert!(!out.success, "{out}");
    assert!(out.output.contains("Permission denied"), "{out}");
    assert_eq!(
        asked["simple_upload"], 1,
        "the refused one was not sent: {asked}"
    );
    // ftplib does not stat: the upload goes out create-only and SharePoint refuses it.
    reset(&gw).await;
    let out = gw
        .python(
            "alice",
            "wonderland",
            "import io\nprint(attempt(ftp.storbinary, 'STOR other.txt', io.BytesIO(b'ftp')))\n",
        )
        .await;
    let asked = requests(&gw).await;
    assert!(out.output.contains("ERR 550"), "{out}");
    assert_eq!(asked["simple_upload"], 1, "{asked}");
    assert!(asked.get("get_item").is_none(), "no stat: {asked}");
    gw.assert_stored("fresh.txt", b"new content").await;
    gw.assert_stored("taken.txt", b"original").await;
    gw.assert_stored("other.txt", b"other").await;
}

#[tokio::test]
async fn an_upload_into_a_missing_folder_fails_and_creates_nothing() {
    let gw = Gateway::start(&[User::new("alice")
        .password("wonderland")
        .sharepoint("/", "/", ALL)
        // A STOR onto a folder's name is refused at close (queued: quarantined).
        .commit("close")])
    .await;
    gw.write_local("x.txt", b"x");
    let out = gw.sftp("alice", "put x.txt nowhere/x.txt\n").await;
    assert!(!out.success, "{out}");
    assert!(out.output.contains("No such file"), "{out}");
    assert!(gw.sim_item("nowhere").await.is_none(), "no folder created");
    // Onto a folder's name: refused as a folder, the folder untouched.
    gw.sim_put("box/inside.txt", b"inside").await;
    let out = gw
        .python(
            "alice",
            "wonderland",
            "import io\nprint(attempt(ftp.storbinary, 'STOR box', io.BytesIO(b'x')))\n",
        )
        .await;
    assert!(out.output.contains("ERR 550"), "{out}");
    assert!(gw.sim_item("box").await.unwrap()["folder"].is_object());
    gw.assert_stored("box/inside.txt", b"inside").await;
}
