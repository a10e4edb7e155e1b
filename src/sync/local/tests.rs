use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::*;
use crate::wire::quick_xor_hash;

fn filter(patterns: &[&str]) -> Filter {
    let patterns: Vec<String> = patterns.iter().map(|p| p.to_string()).collect();
    Filter::new(&patterns).unwrap()
}

fn write(root: &Path, rel: &str, bytes: &[u8]) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, bytes).unwrap();
}

fn mkdir(root: &Path, rel: &str) {
    fs::create_dir_all(root.join(rel)).unwrap();
}

/// Scans with `filter`, nothing known and every name accepted.
fn scan_with(root: &Path, filter: &Filter) -> Scan {
    scan(root, filter, &|_| false, &|_, _| Ok(())).unwrap()
}

fn paths(scan: &Scan) -> Vec<&str> {
    scan.entries.iter().map(|e| e.path.as_str()).collect()
}

fn problem_paths(scan: &Scan) -> Vec<&str> {
    scan.problems.iter().map(|p| p.path.as_str()).collect()
}

fn entry<'a>(scan: &'a Scan, path: &str) -> &'a LocalEntry {
    scan.entries.iter().find(|e| e.path == path).unwrap()
}

#[test]
fn scans_nested_folders_sorted_by_path() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "a/b/c.txt", b"hello");
    write(root, "a.txt", b"x");
    write(root, "a b.txt", b"");
    write(root, "B.txt", b"");
    mkdir(root, "empty");
    let when = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_900);
    let file = fs::File::options()
        .write(true)
        .open(root.join("a/b/c.txt"))
        .unwrap();
    file.set_modified(when).unwrap();

    let scan = scan_with(root, &filter(&[]));
    assert_eq!(
        paths(&scan),
        [
            "B.txt",
            "a",
            "a b.txt",
            "a.txt",
            "a/b",
            "a/b/c.txt",
            "empty"
        ]
    );
    let c = entry(&scan, "a/b/c.txt");
    assert_eq!((c.is_dir, c.size, c.modified), (false, 5, 1_700_000_000));
    let a = entry(&scan, "a");
    assert_eq!((a.is_dir, a.size), (true, 0));
    assert!(entry(&scan, "empty").is_dir);
    assert!(scan.problems.is_empty());
    assert!(scan.incomplete.is_empty());
}

#[test]
fn filter_matches_names_at_any_depth_and_paths_from_the_root() {
    let f = filter(&["*.tmp", "Thumbs.db", "archive/**", "reports/*.tmp2"]);
    assert!(f.excludes("x.tmp", false));
    assert!(f.excludes("a/b/x.tmp", false));
    assert!(f.excludes("a/Thumbs.db", false));
    assert!(!f.excludes("a/Thumbs.db.bak", false));
    assert!(f.excludes("archive/x", false));
    assert!(f.excludes("archive/x/y.txt", false));
    assert!(
        !f.excludes("archive", true),
        "archive/** leaves the folder itself"
    );
    assert!(
        !f.excludes("old/archive/x", false),
        "path patterns start at the root"
    );
    assert!(f.excludes("reports/a.tmp2", false));
    assert!(
        !f.excludes("reports/sub/a.tmp2", false),
        "* does not match /"
    );
    assert!(!f.excludes("x.txt", false));
}

#[test]
fn filter_folder_patterns_and_everything_under_an_excluded_folder() {
    let f = filter(&["cache/", "/build/out/", "/top.txt"]);
    assert!(f.excludes("cache", true));
    assert!(f.excludes("a/cache", true));
    assert!(
        !f.excludes("a/cache", false),
        "a trailing / matches folders only"
    );
    assert!(f.excludes("a/cache/deep/x.txt", false));
    assert!(f.excludes("build/out", true));
    assert!(f.excludes("build/out/x.o", false));
    assert!(!f.excludes("src/build/out", true));
    assert!(f.excludes("top.txt", false));
    assert!(
        !f.excludes("a/top.txt", false),
        "a leading / anchors at the root"
    );
}

#[test]
fn filter_always_excludes_temp_names_and_ignores_case_and_normalisation() {
    let f = filter(&["*.tmp", "Café/"]);
    assert!(f.excludes(".spgate.x.txt.0123456789abcdef.partial", false));
    assert!(f.excludes("a/.spgate.d/x.txt", false));
    assert!(filter(&[]).excludes("a/.spgate.x.1.partial", false));
    assert!(f.excludes("X.TMP", false));
    assert!(f.excludes("CAFÉ", true));
    assert!(
        f.excludes("cafe\u{301}/x", false),
        "NFD paths match NFC patterns"
    );
    let nfd = filter(&["cafe\u{301}.txt"]);
    assert!(
        nfd.excludes("café.txt", false),
        "NFD patterns match NFC paths"
    );
    assert!(Filter::new(&["[".to_string()]).is_err());
}

#[test]
fn excluded_paths_are_invisible_and_excluded_folders_not_entered() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "keep.txt", b"");
    write(root, "x.tmp", b"");
    write(root, "sub/y.tmp", b"");
    write(root, "archive/old.txt", b"");
    write(root, "cache/c.bin", b"");
    write(root, "notes/cache", b"a file named like a folder pattern");
    write(root, "sub/.spgate.z.txt.0011223344556677.partial", b"");
    // A refused name inside an excluded folder is never even looked at.
    write(root, "cache/bad:name", b"");
    let seen = std::cell::RefCell::new(Vec::new());
    let check = |path: &str, _| {
        seen.borrow_mut().push(path.to_string());
        if path.contains(':') {
            Err("no colons".to_string())
        } else {
            Ok(())
        }
    };
    let f = filter(&["*.tmp", "/archive/", "cache/"]);
    let scan = super::scan(root, &f, &|_| false, &check).unwrap();
    assert_eq!(paths(&scan), ["keep.txt", "notes", "notes/cache", "sub"]);
    assert!(scan.problems.is_empty());
    assert!(seen.borrow().iter().all(|p| !p.starts_with("cache")));
}

#[test]
fn symlinks_are_skipped_with_a_problem_and_never_followed() {
    let outside = tempfile::tempdir().unwrap();
    write(outside.path(), "secret.txt", b"");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "real.txt", b"");
    symlink(root.join("real.txt"), root.join("link.txt")).unwrap();
    symlink(outside.path(), root.join("out")).unwrap();
    symlink(root.join("missing"), root.join("dangling")).unwrap();

    let scan = scan_with(root, &filter(&[]));
    assert_eq!(paths(&scan), ["real.txt"]);
    assert_eq!(problem_paths(&scan), ["dangling", "link.txt", "out"]);
    for problem in &scan.problems {
        assert_eq!(problem.side, "local");
        assert_eq!(problem.reason, "symbolic links are not synced");
    }
}

#[test]
fn sockets_are_skipped_silently() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "a.txt", b"");
    let _socket = std::os::unix::net::UnixListener::bind(root.join("sock")).unwrap();
    let scan = scan_with(root, &filter(&[]));
    assert_eq!(paths(&scan), ["a.txt"]);
    assert!(scan.problems.is_empty());
}

#[test]
fn case_collision_of_files_keeps_the_known_variant_else_the_first_in_byte_order() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "A.txt", b"upper");
    write(root, "a.txt", b"lower");
    write(root, "b.txt", b"");

    let scan = scan_with(root, &filter(&[]));
    assert_eq!(paths(&scan), ["A.txt", "b.txt"]);
    assert_eq!(problem_paths(&scan), ["a.txt"]);
    assert_eq!(
        scan.problems[0].reason,
        "`a.txt` differs only in case from `A.txt`, which is synced; SharePoint cannot hold both"
    );

    let scan = super::scan(root, &filter(&[]), &|p| p == "a.txt", &|_, _| Ok(())).unwrap();
    assert_eq!(paths(&scan), ["a.txt", "b.txt"]);
    assert_eq!(problem_paths(&scan), ["A.txt"]);
    assert!(scan.problems[0].reason.contains("from `a.txt`"));
}

#[test]
fn case_collision_of_folders_skips_the_other_subtree_without_merging() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "Docs/x.txt", b"");
    write(root, "Docs/Sub/y.txt", b"");
    write(root, "docs/z.txt", b"");
    write(root, "docs/sub/w.txt", b"");
    // Problems under the skipped variant are not reported (it is one problem).
    write(root, "docs/bad:name.txt", b"");
    symlink("/", root.join("docs/root")).unwrap();
    let check = |path: &str, _| match path.contains(':') {
        true => Err("no colons".to_string()),
        false => Ok(()),
    };

    let scan1 = scan(root, &filter(&[]), &|_| false, &check).unwrap();
    assert_eq!(
        paths(&scan1),
        ["Docs", "Docs/Sub", "Docs/Sub/y.txt", "Docs/x.txt"]
    );
    assert_eq!(problem_paths(&scan1), ["docs"]);

    let known = |p: &str| p == "docs" || p == "docs/z.txt";
    let scan2 = scan(root, &filter(&[]), &known, &check).unwrap();
    assert_eq!(
        paths(&scan2),
        ["docs", "docs/sub", "docs/sub/w.txt", "docs/z.txt"]
    );
    assert_eq!(
        problem_paths(&scan2),
        ["Docs", "docs/bad:name.txt", "docs/root"]
    );
    assert!(
        scan2.problems[0]
            .reason
            .contains("`Docs` differs only in case from `docs`")
    );
}

#[test]
fn case_collision_between_a_file_and_a_folder() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "Report", b"a file");
    write(root, "report/inside.txt", b"");
    let scan = scan_with(root, &filter(&[]));
    assert_eq!(paths(&scan), ["Report"]);
    assert_eq!(problem_paths(&scan), ["report"]);
}

#[test]
fn names_are_nfc_and_two_normalisations_of_one_name_collide() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let nfd_folder = "cafe\u{301}";
    write(root, &format!("{nfd_folder}/re\u{301}sume\u{301}.txt"), b"");
    let scan1 = scan_with(root, &filter(&[]));
    assert_eq!(paths(&scan1), ["café", "café/résumé.txt"]);

    // The NFD name sorts first ("e" + U+0301 < "é" in bytes), so it is the one kept.
    write(root, &format!("{nfd_folder}/résumé.txt"), b"nfc twin");
    let scan2 = scan_with(root, &filter(&[]));
    assert_eq!(paths(&scan2), ["café", "café/résumé.txt"]);
    assert_eq!(entry(&scan2, "café/résumé.txt").size, 0);
    assert_eq!(problem_paths(&scan2), ["café/résumé.txt"]);
    assert!(scan2.problems[0].reason.contains("another Unicode form"));

    // The same for folders: the other one is skipped whole.
    write(root, "café/other.txt", b"");
    let scan3 = scan_with(root, &filter(&[]));
    assert_eq!(paths(&scan3), ["café", "café/résumé.txt"]);
    assert_eq!(problem_paths(&scan3), ["café", "café/résumé.txt"]);
}

#[test]
fn names_the_check_refuses_are_skipped_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "ok.txt", b"");
    write(root, "a:b.txt", b"");
    write(root, "x:y/deep/z.txt", b"");
    let dirs = std::cell::RefCell::new(Vec::new());
    let check = |path: &str, is_dir: bool| {
        if is_dir {
            dirs.borrow_mut().push(path.to_string());
        }
        match path.rsplit('/').next().unwrap().contains(':') {
            true => Err(format!("':' is not allowed in {path}")),
            false => Ok(()),
        }
    };
    let scan = super::scan(root, &filter(&[]), &|_| false, &check).unwrap();
    assert_eq!(paths(&scan), ["ok.txt"]);
    assert_eq!(problem_paths(&scan), ["a:b.txt", "x:y"]);
    assert_eq!(scan.problems[1].reason, "':' is not allowed in x:y");
    assert_eq!(*dirs.borrow(), ["x:y"], "a refused folder is not entered");
}

#[test]
fn names_that_are_not_utf8_are_skipped_with_a_problem() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "ok.txt", b"");
    let bad = std::ffi::OsStr::from_bytes(b"bad\xff");
    fs::create_dir(root.join(bad)).unwrap();
    fs::write(root.join(bad).join("inner.txt"), b"").unwrap();
    fs::write(root.join(std::ffi::OsStr::from_bytes(b"x\xfe.tmp")), b"").unwrap();

    let scan = scan_with(root, &filter(&["*.tmp"]));
    assert_eq!(paths(&scan), ["ok.txt"]);
    assert_eq!(problem_paths(&scan), ["bad\u{fffd}"]);
    assert_eq!(scan.problems[0].reason, "the name is not valid UTF-8");
}

#[test]
fn an_unreadable_folder_is_incomplete_not_empty() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "a.txt", b"");
    write(root, "locked/inside.txt", b"");
    write(root, "locked2/x.tmp", b"");
    let locked = root.join("locked");
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o000)).unwrap();
    fs::set_permissions(root.join("locked2"), fs::Permissions::from_mode(0o000)).unwrap();
    let readable_anyway = fs::read_dir(&locked).is_ok();
    let result = (!readable_anyway).then(|| {
        let scan = scan_with(root, &filter(&["locked2/"]));
        let root_error = super::scan(&locked, &filter(&[]), &|_| false, &|_, _| Ok(()));
        (scan, root_error)
    });
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(root.join("locked2"), fs::Permissions::from_mode(0o755)).unwrap();
    let Some((scan, root_error)) = result else {
        eprintln!("skipped: this user can read a folder with mode 000 (root)");
        return;
    };
    assert_eq!(paths(&scan), ["a.txt", "locked"]);
    assert_eq!(scan.incomplete, ["locked"]);
    assert_eq!(problem_paths(&scan), ["locked"]);
    assert!(scan.problems[0].reason.starts_with("could not be read"));
    assert!(scan.is_incomplete("locked"));
    assert!(scan.is_incomplete("locked/inside.txt"));
    assert!(!scan.is_incomplete("locked.txt"));
    assert!(!scan.is_incomplete("a.txt"));
    assert!(matches!(
        root_error,
        Err(ScanError::RootUnreadable(p, e)) if p == locked && e.kind() == io::ErrorKind::PermissionDenied
    ));
}

#[test]
fn a_missing_root_or_a_file_as_root_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("gone");
    let none = |_: &str| false;
    let ok = |_: &str, _: bool| Ok(());
    assert!(matches!(
        scan(&missing, &filter(&[]), &none, &ok),
        Err(ScanError::RootMissing(p)) if p == missing
    ));
    write(dir.path(), "file", b"");
    let file = dir.path().join("file");
    assert!(matches!(
        scan(&file, &filter(&[]), &none, &ok),
        Err(ScanError::RootNotDir(p)) if p == file
    ));
    let empty = scan(dir.path(), &filter(&["file"]), &none, &ok).unwrap();
    assert_eq!(empty, Scan::default(), "the root itself is never an entry");
}

#[test]
fn hash_reader_matches_the_quick_xor_hash_of_the_bytes() {
    let dir = tempfile::tempdir().unwrap();
    // Over two buffers, not a multiple of the buffer size.
    let data: Vec<u8> = (0..(5 << 19) + 77u32)
        .map(|i| (i * 31 % 251) as u8)
        .collect();
    fs::write(dir.path().join("big"), &data).unwrap();
    fs::write(dir.path().join("empty"), b"").unwrap();
    let hash = |name: &str| hash_reader(fs::File::open(dir.path().join(name)).unwrap()).unwrap();
    assert_eq!(hash("big"), (quick_xor_hash(&data), data.len() as u64));
    assert_eq!(hash("empty"), (quick_xor_hash(b""), 0));
    // From where the reader is: the rest of the file.
    let mut file = fs::File::open(dir.path().join("big")).unwrap();
    std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(100)).unwrap();
    assert_eq!(
        hash_reader(file).unwrap(),
        (quick_xor_hash(&data[100..]), data.len() as u64 - 100)
    );
}

#[test]
fn temp_paths_are_spgate_partials_the_scan_never_sees() {
    let dir = tempfile::tempdir().unwrap();
    assert!(temp_path("a/b/report.docx").starts_with("a/b/.spgate.report.docx."));
    let temp = dir.path().join(temp_path("report.docx"));
    assert_eq!(temp.parent().unwrap(), dir.path());
    let name = temp.file_name().unwrap().to_str().unwrap();
    let random = name
        .strip_prefix(".spgate.report.docx.")
        .and_then(|rest| rest.strip_suffix(".partial"))
        .unwrap();
    assert_eq!(random.len(), 16);
    assert!(random.chars().all(|c| c.is_ascii_hexdigit()));
    assert_ne!(temp, dir.path().join(temp_path("report.docx")));
    assert!(crate::storage::local::is_partial(name));

    fs::write(&temp, b"half").unwrap();
    assert_eq!(scan_with(dir.path(), &filter(&[])), Scan::default());
}
