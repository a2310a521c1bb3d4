use super::*;
use tar::{EntryType as T, Header};

fn write(path: &Path, data: &[u8]) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, data).unwrap();
}

fn names(dir: &Path) -> Vec<String> {
    let names = fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name());
    let mut names: Vec<_> = names.map(|n| n.into_string().unwrap()).collect();
    names.sort();
    names
}

fn has(err: &str, part: &str) {
    assert!(err.contains(part), "{err}");
}

/// A header with its name bytes written directly, as an attacker would (tar::Builder
/// refuses "..", and absolute paths are what is tested).
fn header(name: &[u8], kind: T, size: u64) -> Header {
    let mut h = Header::new_gnu();
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.set_mode(0o644);
    h.set_size(size);
    h.set_entry_type(kind);
    h.set_cksum();
    h
}

fn file(name: &[u8], size: u64) -> Header {
    header(name, T::Regular, size)
}

/// A raw tar: each header, its data padded to 512 bytes, the end marker if `end`.
fn tarball(members: &[(Header, &[u8])], end: bool) -> Vec<u8> {
    let mut tar = Vec::new();
    for (h, data) in members {
        tar.extend_from_slice(h.as_bytes());
        tar.extend_from_slice(data);
        tar.resize(tar.len().div_ceil(512) * 512, 0);
    }
    tar.resize(tar.len() + if end { 1024 } else { 0 }, 0);
    tar
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// Extracts `bytes` into tmp/a/dest with `budget` (None: the free space); returns the
/// error, checked to be one line about the archive with nothing written outside dest.
fn refused_within(bytes: &[u8], budget: Option<u64>) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("bad.tar.gz");
    fs::write(&archive, bytes).unwrap();
    let dest = tmp.path().join("a/dest");
    fs::create_dir_all(&dest).unwrap();
    let result = match budget {
        Some(budget) => extract_within(&archive, &dest, budget),
        None => extract(&archive, &dest),
    };
    let err = result.unwrap_err().to_string();
    assert_eq!(names(tmp.path()), ["a", "bad.tar.gz"], "{err}");
    assert_eq!(names(&tmp.path().join("a")), ["dest"], "{err}");
    assert!(
        err.starts_with(&format!("{}: ", archive.display())),
        "{err}"
    );
    assert!(!err.contains('\n'), "{err}");
    err
}

fn refused(bytes: &[u8]) -> String {
    refused_within(bytes, None)
}

/// Checks that `members` are refused with an error naming `member` and `reason`.
fn assert_refused(members: &[(Header, &[u8])], member: &str, reason: &str) {
    let err = refused(&gzip(&tarball(members, true)));
    has(&err, &format!("member \"{member}\": {reason}"));
}

#[test]
fn pack_extract_round_trip_is_deterministic_and_ordered() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bundle");
    let long = format!("entries/{}/123456.json", "h".repeat(253));
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("SHA256SUMS", b"sums\n".to_vec()),
        ("manifest.json", b"{}".to_vec()),
        ("a-b", vec![]),
        ("a/b", (0..100_000u32).map(|i| (i % 251) as u8).collect()),
        (&long, b"{\"x\":1}".to_vec()),
        ("keys/h.vkey", b"h+0+AA\n".to_vec()),
    ];
    for (rel, data) in &files {
        write(&dir.join(rel), data);
    }
    fs::create_dir_all(dir.join("empty")).unwrap();
    let (out1, out2) = (tmp.path().join("b1.tar.gz"), tmp.path().join("b2.tgz"));
    pack(&dir, &out1).unwrap();
    pack(&dir, &out2).unwrap();
    assert_eq!(fs::read(&out1).unwrap(), fs::read(&out2).unwrap());
    let mut order = Vec::new();
    let gz = flate2::read::GzDecoder::new(File::open(&out1).unwrap());
    for entry in tar::Archive::new(gz).entries().unwrap() {
        let entry = entry.unwrap();
        let h = entry.header();
        let (mode, mtime) = (h.mode().unwrap(), h.mtime().unwrap());
        assert_eq!(
            (mode, mtime, h.uid().unwrap(), h.gid().unwrap()),
            (0o644, 0, 0, 0)
        );
        assert_eq!(h.entry_type(), T::Regular);
        assert!(h.username_bytes().is_none_or(|u| u.is_empty()));
        order.push(String::from_utf8(entry.path_bytes().into_owned()).unwrap());
    }
    let first = ["manifest.json", "SHA256SUMS", "a-b", "a/b"];
    assert_eq!(order, [&first[..], &[&long, "keys/h.vkey"]].concat());
    let dest = tmp.path().join("dest");
    fs::create_dir(&dest).unwrap();
    extract(&out1, &dest).unwrap();
    let mut sorted: Vec<_> = files.iter().map(|f| f.0.to_string()).collect();
    sorted.sort();
    assert_eq!(list_files(&dest).unwrap(), sorted);
    for (rel, data) in &files {
        assert_eq!(&fs::read(dest.join(rel)).unwrap(), data, "{rel}");
    }
    assert!(is_archive(&out1) && is_archive(&out2) && !is_archive(&dir));
    // Never inside the directory packed; no temporary file left behind.
    assert!(pack(&dir, &dir.join("x.tar.gz")).is_err());
    assert_eq!(names(tmp.path()), ["b1.tar.gz", "b2.tgz", "bundle", "dest"]);
}

#[test]
fn accepts_dot_slash_members_as_tar_c_dir_dot_writes_them() {
    let members = [
        (header(b"./", T::Directory, 0), &b""[..]),
        (header(b"./keys/", T::Directory, 0), b""),
        (file(b"./keys/h.vkey", 3), b"abc"),
    ];
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("b.tgz");
    fs::write(&archive, gzip(&tarball(&members, true))).unwrap();
    let dest = tmp.path().join("dest");
    fs::create_dir(&dest).unwrap();
    extract(&archive, &dest).unwrap();
    assert_eq!(fs::read(dest.join("keys/h.vkey")).unwrap(), b"abc");
}

#[test]
fn refuses_paths_that_leave_the_directory() {
    let leaves = "path has a \"..\" component, which could leave";
    assert_refused(&[(file(b"../x", 1), b"x")], "../x", leaves);
    assert_refused(&[(file(b"a/../../x", 1), b"x")], "a/../../x", leaves);
    assert_refused(&[(file(b"/etc/x", 1), b"x")], "/etc/x", "absolute path");
    // A pax path overrides the header's name: it is the one checked.
    let record = b"16 path=../evil\n";
    let pax = header(b"PaxHeaders/x", T::XHeader, record.len() as u64);
    assert_refused(&[(pax, record), (file(b"x", 1), b"x")], "../evil", leaves);
}

#[test]
fn refuses_links_devices_fifos_and_sparse_files() {
    let mut sym = header(b"link", T::Symlink, 0);
    sym.set_link_name("/etc").unwrap();
    sym.set_cksum();
    let through = file(b"link/passwd", 1);
    assert_refused(&[(sym, b""), (through, b"x")], "link", "is a symbolic link");
    let mut hard = header(b"hard", T::Link, 0);
    hard.set_link_name("etc/passwd").unwrap();
    hard.set_cksum();
    assert_refused(&[(hard, b"")], "hard", "is a hard link");
    let kinds = [
        (T::Char, "character device"),
        (T::Block, "block device"),
        (T::Fifo, "fifo"),
        (T::GNUSparse, "GNU sparse file"),
        (T::XGlobalHeader, "pax global header"),
    ];
    for (kind, what) in kinds {
        let what = format!("is a {what}");
        assert_refused(&[(header(b"m", kind, 0), b"")], "m", &what);
    }
}

#[test]
fn refuses_duplicate_paths() {
    let twice = "the same path appears twice";
    assert_refused(
        &[(file(b"a/f", 1), b"1"), (file(b"./a/f", 1), b"2")],
        "./a/f",
        twice,
    );
    let dir = header(b"a/", T::Directory, 0);
    assert_refused(&[(file(b"a", 1), b"1"), (dir, b"")], "a/", twice);
    let collides = "collides with a file";
    assert_refused(
        &[(file(b"a", 1), b"1"), (file(b"a/b", 1), b"")],
        "a/b",
        collides,
    );
}

#[test]
fn refuses_sizes_beyond_the_free_space_before_writing() {
    let err = refused(&gzip(&tarball(&[(file(b"big", 1 << 40), b"")], false)));
    has(&err, "member \"big\": declares 1099511627776 bytes");
    // The running total counts too: 2 x 5000 bytes is 16 KiB in blocks, over 12 KB.
    let data = [7u8; 5000];
    let two = [(file(b"1", 5000), &data[..]), (file(b"2", 5000), &data)];
    let err = refused_within(&gzip(&tarball(&two, true)), Some(12_000));
    has(&err, "member \"2\": declares 5000 bytes");
    // Nor can a GNU long name claim memory.
    let name = header(b"././@LongLink", T::GNULongName, 1 << 30);
    let err = refused(&gzip(&tarball(&[(name, b"")], false)));
    has(&err, "GNU long name of 1073741824 bytes (at most 4097)");
}

#[test]
fn refuses_truncated_and_corrupt_streams() {
    let short = [(file(b"blobs/sha256/ab", 1000), &[1u8; 10][..])];
    let err = refused(&gzip(&tarball(&short, false)));
    has(
        &err,
        "member \"blobs/sha256/ab\": data ends after 512 of its 1000",
    );
    let err = refused(b"this is not a gzip stream at all");
    has(&err, "gzip stream is corrupt before the first member");
    let garbage: Vec<u8> = (0..4096u32).map(|i| (i * 7 + 3) as u8).collect();
    let err = refused(&gzip(&garbage));
    has(&err, "tar archive is corrupt before the first member");
    // A member hidden after the end marker, which `tar --ignore-zeros` would extract.
    let (a, b) = (
        tarball(&[(file(b"a", 1), b"1")], true),
        tarball(&[(file(b"b", 1), b"2")], true),
    );
    let err = refused(&gzip(&[a, b].concat()));
    has(&err, "after member \"a\": data after the end of the tar");
    // A gzip stream cut short after a first good member.
    let data = [9u8; 3000];
    let gz = gzip(&tarball(
        &[(file(b"ok", 3000), &data), (file(b"next", 3000), &data)],
        true,
    ));
    has(&refused(&gz[..gz.len() - 12]), "gzip stream is corrupt");
}

#[test]
fn pax_records_and_path_rules() {
    let records = pax_records(b"20 path=a/long/name\n11 size=42\n").unwrap();
    assert_eq!(
        records,
        [(&b"path"[..], &b"a/long/name"[..]), (b"size", b"42")]
    );
    assert!(pax_records(b"20 path=a/long/name\n\n11 size=42\n").is_none());
    assert!(pax_records(b"8 path=x\n").is_none());
    assert_eq!(check_path(b"./a/b", false), Ok(Some("a/b".into())));
    assert_eq!(check_path(b"a/", true), Ok(Some("a".into())));
    assert_eq!(check_path(b"./", true), Ok(None));
    let deep = ["d"; MAX_DEPTH + 1].join("/");
    let bad: [&[u8]; 9] = [
        b"",
        b"a\0b",
        b"\xff",
        b"a//b",
        b"a/./b",
        b"a/",
        b".",
        deep.as_bytes(),
        &[b'a'; 4097],
    ];
    for raw in bad {
        assert!(check_path(raw, false).is_err(), "{}", shown(raw));
    }
}

#[test]
fn list_files_refuses_a_symlink() {
    let tmp = tempfile::tempdir().unwrap();
    write(&tmp.path().join("keys/h.vkey"), b"k");
    let evil = tmp.path().join("keys/evil");
    std::os::unix::fs::symlink("/etc/passwd", &evil).unwrap();
    let err = list_files(tmp.path()).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("{}: is a symbolic link", evil.display())),
        "{err}"
    );
    assert!(pack(tmp.path(), &tmp.path().with_extension("tar.gz")).is_err());
}
