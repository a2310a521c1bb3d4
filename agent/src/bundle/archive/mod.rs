//! Bundles as `.tar.gz`: [`pack`] a bundle directory into one, [`extract`] one safely.
//!
//! `verify` takes bundles from outside (an auditor's mailbox, a shared drive), and a tarball
//! is a program for its extractor. A hostile one can try to write outside the target
//! (`../x`, `/etc/x`, or a symlink or hard link that a later member is written through), to
//! create devices or fifos, to fill the disk (a header claiming 1 TiB) or the memory (a GNU
//! long name or pax header claiming gigabytes), or to look different to different tools
//! (duplicate paths, a pax `size` disagreeing with the header). So [`extract`] does not use
//! the tar crate's `unpack`: it reads headers raw, applies its own rules, and writes only
//! regular files (`O_EXCL`, never through a symlink) and directories it creates itself, in
//! an empty directory. What it does not understand is refused, never skipped; a bundle made
//! by [`pack`] or by `tar -C dir -czf out .` meets every rule.
//!
//! [`pack`] is deterministic (same directory, same bytes): members sorted, `manifest.json`
//! and `SHA256SUMS` first so that a streaming reader sees what the bundle claims before the
//! rest, and no timestamp, owner or mode taken from the machine.

use crate::daemon::runner::free_disk;
use sha2::{Digest, Sha256};
use std::cell::Cell;
use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Longest member path accepted (PATH_MAX on Linux).
const MAX_PATH_BYTES: usize = 4096;
/// Deepest member path accepted, in components (a bundle needs 3).
const MAX_DEPTH: usize = 16;
/// Most members accepted: a bound on the work and on the duplicate-path set.
const MAX_MEMBERS: u64 = 5_000_000;
/// Space left free on the destination's filesystem whatever the archive declares.
const RESERVE: u64 = 256 << 20;
/// Largest pax extended header accepted; real ones hold a path and a few times.
const MAX_PAX_BYTES: u64 = 64 << 10;
/// Zero bytes accepted after the tar's end marker (GNU tar pads to 10 KiB records).
const MAX_TRAILING: u64 = 1 << 20;
/// Files are charged against the free space in whole blocks of this size.
const BLOCK: u64 = 4096;
/// The members that come first in a packed bundle, in this order.
const FIRST: [&str; 2] = ["manifest.json", "SHA256SUMS"];

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The archive or directory bundle is refused: a member or file is hostile, malformed,
    /// unsupported or too big, or the gzip or tar stream is corrupt. The message is one
    /// complete line naming the archive and member (or the file) and what is wrong.
    #[error("{0}")]
    Hostile(String),
    /// A local read or write failed for a reason that is not the content's fault
    /// (permissions, disk full…); `context` names the file, and the member when extracting.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

fn io_err(context: impl std::fmt::Display, source: io::Error) -> ArchiveError {
    ArchiveError::Io {
        context: context.to_string(),
        source,
    }
}

/// Whether `path` names a packed bundle (`.tar.gz` or `.tgz`) rather than a directory.
pub fn is_archive(path: &Path) -> bool {
    path.file_name()
        .map(OsStrExt::as_bytes)
        .is_some_and(|n| n.ends_with(b".tar.gz") || n.ends_with(b".tgz"))
}

/// Every regular file under `dir`, as sorted '/'-separated relative paths. Symlinks are not
/// followed but refused, as are fifos, devices, sockets, non-UTF-8 names and paths deeper
/// than 16 components or longer than 4096 bytes: a bundle holds files and directories only.
pub fn list_files(dir: &Path) -> Result<Vec<String>, ArchiveError> {
    let mut files = Vec::new();
    // (directory on disk, its relative path with a trailing '/' or empty, its depth)
    let mut todo = vec![(dir.to_path_buf(), String::new(), 0usize)];
    while let Some((abs, rel, depth)) = todo.pop() {
        for item in fs::read_dir(&abs).map_err(|e| io_err(abs.display(), e))? {
            let item = item.map_err(|e| io_err(abs.display(), e))?;
            let path = item.path();
            let refuse = |what: &str| ArchiveError::Hostile(format!("{}: {what}", path.display()));
            let Some(name) = item.file_name().to_str().map(str::to_owned) else {
                return Err(refuse("name is not UTF-8"));
            };
            let child = format!("{rel}{name}");
            if depth + 1 > MAX_DEPTH {
                return Err(refuse(&format!("deeper than {MAX_DEPTH} components")));
            }
            if child.len() > MAX_PATH_BYTES {
                return Err(refuse(&format!("path longer than {MAX_PATH_BYTES} bytes")));
            }
            // Like symlink_metadata, DirEntry::file_type never follows a symlink (it uses
            // d_type, or lstat where the filesystem gives none), and costs no extra stat.
            let kind = item.file_type().map_err(|e| io_err(path.display(), e))?;
            if kind.is_file() {
                files.push(child);
            } else if kind.is_dir() {
                todo.push((path, format!("{child}/"), depth + 1));
            } else {
                return Err(refuse(&format!(
                    "is a {}; a bundle holds only regular files and directories",
                    describe_file_type(kind)
                )));
            }
        }
    }
    files.sort_unstable();
    Ok(files)
}

fn describe_file_type(kind: fs::FileType) -> &'static str {
    let kinds = [
        (kind.is_symlink(), "symbolic link"),
        (kind.is_fifo(), "fifo"),
        (kind.is_char_device(), "character device"),
        (kind.is_block_device(), "block device"),
        (kind.is_socket(), "socket"),
    ];
    kinds
        .into_iter()
        .find(|k| k.0)
        .map_or("special file", |k| k.1)
}

/// Packs the bundle directory `dir` into the `.tar.gz` `out`, deterministically (see the
/// module doc), streaming file by file. `out` appears complete or not at all: the archive is
/// written to a temporary file beside it, synced, then renamed over it.
pub fn pack(dir: &Path, out: &Path) -> Result<(), ArchiveError> {
    let files = list_files(dir)?;
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    // An archive inside the directory it packs would end up in the next pack of it.
    let canon = |p: &Path| p.canonicalize().map_err(|e| io_err(p.display(), e));
    if canon(parent)?.starts_with(canon(dir)?) {
        let (o, d) = (out.display(), dir.display());
        let msg = format!("{o}: cannot write the archive inside the directory it packs ({d})");
        return Err(ArchiveError::Hostile(msg));
    }
    // Named and locked as an export's staging (`super::staging`), so that the archive a killed
    // export leaves is removed by the next one.
    let mut tmp = tempfile::Builder::new()
        .prefix(super::staging::PREFIX)
        .suffix(".partial")
        .tempfile_in(parent)
        .map_err(|e| io_err(parent.display(), e))?;
    let tmp_path = tmp.path().to_path_buf();
    super::staging::lock(tmp.as_file()).map_err(|e| io_err(tmp_path.display(), e))?;
    let write_err = |e| io_err(tmp_path.display(), e);
    {
        let gz = flate2::write::GzEncoder::new(
            BufWriter::with_capacity(1 << 16, tmp.as_file_mut()),
            flate2::Compression::default(),
        );
        let mut tar = tar::Builder::new(gz);
        let first = FIRST
            .into_iter()
            .filter(|f| files.binary_search_by(|x| x.as_str().cmp(f)).is_ok());
        let rest = files
            .iter()
            .map(String::as_str)
            .filter(|f| !FIRST.contains(f));
        for rel in first.chain(rest) {
            append_file(&mut tar, dir, rel, &tmp_path)?;
        }
        let mut buffered = tar
            .into_inner()
            .and_then(|gz| gz.finish())
            .map_err(write_err)?;
        buffered.flush().map_err(write_err)?;
    }
    tmp.as_file().sync_all().map_err(write_err)?;
    tmp.persist(out)
        .map_err(|e| io_err(out.display(), e.error))?;
    // The rename itself survives a crash only once the directory holding it is synced.
    File::open(parent)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err(parent.display(), e))
}

/// Appends `dir/rel` as a regular-file member with fixed metadata (GNU header, so that
/// paths past 100 bytes get a GNU long name member, which GNU tar and bsdtar read).
fn append_file<W: Write>(
    tar: &mut tar::Builder<W>,
    dir: &Path,
    rel: &str,
    tmp: &Path,
) -> Result<(), ArchiveError> {
    let path = dir.join(rel);
    // O_NOFOLLOW: a file swapped for a symlink since it was listed is refused, not followed;
    // O_NONBLOCK: one swapped for a fifo cannot hang us (no effect on regular files).
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&path)
        .map_err(|e| io_err(path.display(), e))?;
    let meta = file.metadata().map_err(|e| io_err(path.display(), e))?;
    if !meta.is_file() {
        let msg = format!("{}: no longer a regular file", path.display());
        return Err(ArchiveError::Hostile(msg));
    }
    let size = meta.len();
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_size(size);
    let mut src = Exact {
        file: file.take(size),
        left: size,
        failed: false,
    };
    tar.append_data(&mut header, rel, &mut src).map_err(|e| {
        if src.failed {
            io_err(path.display(), e)
        } else {
            io_err(tmp.display(), e)
        }
    })
}

/// Reads exactly the `left` bytes the header promised: a file that shrank while being packed
/// is an error (the tar crate would pad silently and corrupt the archive), one that grew is
/// cut. `failed` tells a read error from a write error once the copy fails.
struct Exact {
    file: io::Take<File>,
    left: u64,
    failed: bool,
}

impl Read for Exact {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read(buf).inspect_err(|_| self.failed = true)?;
        if n == 0 && self.left > 0 && !buf.is_empty() {
            self.failed = true;
            let missing = self.left;
            let why = format!("file shrank while being packed ({missing} bytes missing)");
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, why));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Extracts the `.tar.gz` `archive` into `dest`, an existing empty directory (a tempdir made
/// by the caller), refusing anything but plain files and directories with clean relative
/// paths (see the module doc and [`check_path`]). The archive is read once, as a stream. On
/// error `dest` may hold part of the archive: the caller discards it.
pub fn extract(archive: &Path, dest: &Path) -> Result<(), ArchiveError> {
    let free = free_disk(dest).map_err(|e| io_err(dest.display(), e))?;
    extract_within(archive, dest, free.saturating_sub(RESERVE))
}

/// [`extract`], writing at most `budget` bytes (tests set it small).
fn extract_within(archive: &Path, dest: &Path, budget: u64) -> Result<(), ArchiveError> {
    // The rules rely on `dest` holding only what this function made: no symlink planted in
    // it to be written through, nothing for O_EXCL to collide with.
    let mut listing = fs::read_dir(dest).map_err(|e| io_err(dest.display(), e))?;
    if listing.next().is_some() {
        let msg = format!("{}: extraction directory is not empty", dest.display());
        return Err(ArchiveError::Hostile(msg));
    }
    let file = File::open(archive).map_err(|e| io_err(archive.display(), e))?;
    let failed = Cell::new(false);
    // Multi-member, as gunzip reads it: what follows a first gzip member is not ignored.
    let inner = flate2::read::MultiGzDecoder::new(BufReader::with_capacity(1 << 16, file));
    let mut tar = tar::Archive::new(Tagged {
        inner,
        failed: &failed,
    });
    let mut x = Extractor {
        archive,
        dest,
        budget,
        charged: 0,
        members: 0,
        seen: HashSet::new(),
        last: None,
        made: dest.to_path_buf(),
        failed: &failed,
    };
    // Raw: GNU long names and pax headers come to us, to be bounded before they are read
    // into memory (the tar crate would read any size) and checked for conflicts.
    x.run(tar.entries().map_err(|e| x.stream_error(e))?.raw(true))?;
    // Reading the gzip stream to its end checks its CRC and length. After the tar's end
    // marker only zero padding may follow (GNU tar pads to 10 KiB): members hidden there
    // would be seen by `tar --ignore-zeros` and not by us.
    let (mut rest, mut buf, mut total) = (tar.into_inner(), vec![0u8; 1 << 16], 0);
    loop {
        let n = rest.read(&mut buf).map_err(|e| x.stream_error(e))?;
        total += n as u64;
        if n == 0 {
            break;
        } else if total > MAX_TRAILING || buf[..n].iter().any(|&b| b != 0) {
            let e = io::Error::other("data after the end of the tar archive");
            return Err(x.stream_error(e));
        }
    }
    Ok(())
}

/// Records in `failed` that the archive itself could not be read (file or gzip error), so
/// that an error out of the tar parser or a copy is blamed on the right side.
struct Tagged<'a, R> {
    inner: R,
    failed: &'a Cell<bool>,
}

impl<R: Read> Read for Tagged<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).inspect_err(|_| self.failed.set(true))
    }
}

struct Extractor<'a> {
    archive: &'a Path,
    dest: &'a Path,
    budget: u64,
    /// Bytes promised so far, in whole blocks.
    charged: u64,
    members: u64,
    /// 128-bit hashes of the member paths seen: exact in practice, and 16 bytes a member
    /// however long the (hostile) paths are.
    seen: HashSet<u128>,
    /// The last member extracted, shown, to place errors in the stream.
    last: Option<String>,
    /// The directory of the last file written: it exists, as a directory, from then on.
    made: PathBuf,
    failed: &'a Cell<bool>,
}

impl Extractor<'_> {
    fn run<R: Read>(&mut self, entries: tar::Entries<'_, R>) -> Result<(), ArchiveError> {
        // A GNU long name ('L') and a pax header ('x') describe the member after them.
        let (mut long_name, mut pax) = (None, None);
        for entry in entries {
            let mut entry = entry.map_err(|e| self.stream_error(e))?;
            let kind = entry.header().entry_type().as_byte();
            if kind == b'L' || kind == b'x' {
                let slot = if kind == b'L' {
                    &mut long_name
                } else {
                    &mut pax
                };
                let again = slot.is_some();
                *slot = Some(self.read_extension(&mut entry, kind, again)?);
                continue;
            }
            let header_name = entry.header().path_bytes().into_owned();
            let (raw, facts) = resolve(header_name, long_name.take(), pax.take());
            let name = shown(&raw);
            self.members += 1;
            let admitted = self.admit(kind, entry.size(), &raw, facts);
            let Some((rel, is_dir)) = admitted.map_err(|r| self.refuse(&name, r))? else {
                continue; // "." or "./": the destination itself
            };
            let path = self.dest.join(rel);
            if is_dir {
                self.mkdir(&path, &name)?;
            } else {
                self.write_file(&mut entry, &path, &name)?;
            }
            self.last = Some(name);
        }
        if long_name.is_some() || pax.is_some() {
            let e = io::Error::other("a GNU long name or pax header describes no member");
            return Err(self.stream_error(e));
        }
        Ok(())
    }

    /// Reads a GNU long name or pax header, within bounds.
    fn read_extension<R: Read>(
        &self,
        entry: &mut tar::Entry<'_, R>,
        kind: u8,
        again: bool,
    ) -> Result<Vec<u8>, ArchiveError> {
        let (limit, what) = match kind {
            b'L' => (MAX_PATH_BYTES as u64 + 1, "GNU long name"), // with its NUL
            _ => (MAX_PAX_BYTES, "pax header"),
        };
        let (size, mut data) = (entry.size(), Vec::new());
        let why = if again {
            format!("a second {what} for one member")
        } else if size > limit {
            format!("{what} of {size} bytes (at most {limit})")
        } else {
            let n = entry.take(size).read_to_end(&mut data);
            if n.map_err(|e| self.stream_error(e))? as u64 == size {
                return Ok(data);
            }
            format!("{what} is truncated")
        };
        Err(self.stream_error(io::Error::other(why)))
    }

    /// Checks one member against the rules: its clean relative path and whether it is a
    /// directory, `None` for the destination itself, or why it is refused.
    fn admit(
        &mut self,
        kind: u8,
        size: u64,
        raw: &[u8],
        facts: Facts,
    ) -> Result<Option<(String, bool)>, String> {
        if self.members > MAX_MEMBERS {
            return Err(format!("more than {MAX_MEMBERS} members"));
        }
        let is_dir = match kind {
            b'0' | b'\0' => false,
            b'5' => true,
            other => {
                let what = describe_member_type(other);
                return Err(format!(
                    "is a {what}; only files and directories are allowed"
                ));
            }
        };
        if facts.malformed {
            return Err("malformed pax header".into());
        }
        // Tools disagree on which wins; refusing leaves nothing to disagree on.
        if facts.two_names {
            return Err("has both a GNU long name and a pax path".into());
        }
        if facts.sparse {
            return Err("is a GNU sparse file (pax format)".into());
        }
        match facts.pax_size {
            Some(s) if s != size => return Err(format!("pax size {s} but header size {size}")),
            _ if is_dir && size != 0 => return Err(format!("directory with {size} bytes")),
            _ => {}
        }
        let Some(rel) = check_path(raw, is_dir)? else {
            return Ok(None);
        };
        if !self.seen.insert(path_key(&rel)) {
            return Err("the same path appears twice in the archive".into());
        }
        // Charged before anything is written, so a header claiming 1 TiB writes nothing.
        let blocks = if is_dir { 0 } else { size.div_ceil(BLOCK) };
        self.charged = self.charged.saturating_add(blocks.saturating_mul(BLOCK));
        if self.charged > self.budget {
            return Err(format!(
                "declares {size} bytes; with the members before it, more than the {} bytes \
                 free at {} after a {} MiB reserve",
                self.budget,
                self.dest.display(),
                RESERVE >> 20
            ));
        }
        Ok(Some((rel, is_dir)))
    }

    fn write_file<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        path: &Path,
        name: &str,
    ) -> Result<(), ArchiveError> {
        // Members come grouped by directory: one mkdir per directory, not one per file.
        match path.parent() {
            Some(parent) if parent != self.made => {
                self.mkdir(parent, name)?;
                self.made = parent.to_path_buf();
            }
            _ => {}
        }
        // create_new is O_CREAT|O_EXCL: never an existing file, never through a symlink.
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(|e| self.write_error(name, path, e))?;
        let mut out = BufWriter::with_capacity(1 << 16, file);
        let size = entry.size();
        let copied = match io::copy(&mut entry.take(size), &mut out) {
            Ok(n) => n,
            Err(e) if self.failed.get() => {
                return Err(self.refuse(name, format!("gzip stream is corrupt: {e}")))
            }
            Err(e) => return Err(self.write_error(name, path, e)),
        };
        if copied < size {
            let why = format!("data ends after {copied} of its {size} bytes (truncated)");
            return Err(self.refuse(name, why));
        }
        out.flush().map_err(|e| self.write_error(name, path, e))
    }

    fn mkdir(&self, path: &Path, name: &str) -> Result<(), ArchiveError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(path)
            .map_err(|e| self.write_error(name, path, e))
    }

    /// A failed write is the archive's fault when paths collide (a file where a directory
    /// was made for an earlier member, or the reverse), the local system's otherwise.
    fn write_error(&self, name: &str, path: &Path, e: io::Error) -> ArchiveError {
        if e.kind() == io::ErrorKind::AlreadyExists || e.raw_os_error() == Some(libc::ENOTDIR) {
            return self.refuse(name, "collides with a file or directory before it".into());
        }
        let (a, p) = (self.archive.display(), path.display());
        io_err(format!("{a}: member {name}: writing {p}"), e)
    }

    /// `name` is already [`shown`].
    fn refuse(&self, name: &str, reason: String) -> ArchiveError {
        let a = self.archive.display();
        ArchiveError::Hostile(format!("{a}: member {name}: {reason}"))
    }

    /// An unreadable stream, placed after the last member extracted.
    fn stream_error(&self, e: io::Error) -> ArchiveError {
        let what = match self.failed.get() {
            true => "gzip stream is corrupt",
            false => "tar archive is corrupt",
        };
        let place = match &self.last {
            Some(name) => format!("after member {name}"),
            None => "before the first member".to_string(),
        };
        // The tar crate's messages can quote raw header bytes: keep them on one line.
        let escape = |c: char| match c.is_control() {
            true => c.escape_default().to_string(),
            false => c.to_string(),
        };
        let e: String = e.to_string().chars().map(escape).collect();
        ArchiveError::Hostile(format!("{}: {what} {place}: {e}", self.archive.display()))
    }
}

/// What the extension headers before a member say about it, beyond its path.
#[derive(Default)]
struct Facts {
    pax_size: Option<u64>,
    sparse: bool,
    malformed: bool,
    two_names: bool,
}

/// A member's path (pax `path`, else GNU long name, else the header's) and its [`Facts`].
fn resolve(header: Vec<u8>, long: Option<Vec<u8>>, pax: Option<Vec<u8>>) -> (Vec<u8>, Facts) {
    let mut facts = Facts::default();
    let mut path = None;
    match pax.as_deref().map(pax_records) {
        Some(None) => facts.malformed = true,
        Some(Some(records)) => {
            for (key, value) in records {
                match key {
                    b"path" => {
                        facts.malformed |= path.is_some(); // which one would a tool use?
                        path = Some(value.to_vec());
                    }
                    b"size" => match std::str::from_utf8(value).ok().and_then(|v| v.parse().ok()) {
                        Some(size) => facts.pax_size = Some(size),
                        None => facts.malformed = true,
                    },
                    _ => facts.sparse |= key.starts_with(b"GNU.sparse."),
                }
            }
        }
        None => {}
    }
    let long = long.map(|mut n| {
        if n.last() == Some(&0) {
            n.pop(); // GNU tar ends the name with a NUL
        }
        n
    });
    facts.two_names = long.is_some() && path.is_some();
    (path.or(long).unwrap_or(header), facts)
}

/// Pax records, `"<len> <key>=<value>\n"` each, or `None` if malformed. (The tar crate's
/// parser stops quietly at an empty line, where another tool could read more records.)
fn pax_records(mut data: &[u8]) -> Option<Vec<(&[u8], &[u8])>> {
    let mut records = Vec::new();
    while !data.is_empty() {
        let space = data.iter().position(|&b| b == b' ')?;
        let len: usize = std::str::from_utf8(&data[..space]).ok()?.parse().ok()?;
        if len <= space + 1 || len > data.len() || data[len - 1] != b'\n' {
            return None;
        }
        let record = &data[space + 1..len - 1];
        let eq = record.iter().position(|&b| b == b'=')?;
        records.push((&record[..eq], &record[eq + 1..]));
        data = &data[len..];
    }
    Some(records)
}

/// The member path `raw` made relative and clean, or why it is refused; `None` for the
/// destination itself ("." or "./", as `tar -C dir .` writes first). A leading "./" is
/// stripped, and a trailing '/' on directories; nothing else is rewritten.
fn check_path(raw: &[u8], is_dir: bool) -> Result<Option<String>, String> {
    let s = match std::str::from_utf8(raw) {
        _ if raw.is_empty() => return Err("empty path".into()),
        _ if raw.len() > MAX_PATH_BYTES => return Err("path longer than 4096 bytes".into()),
        _ if raw.contains(&0) => return Err("path contains a NUL byte".into()),
        Err(_) => return Err("path is not UTF-8".into()),
        Ok(s) => s,
    };
    if s.starts_with('/') {
        return Err("absolute path".into());
    }
    if s.split('/').any(|c| c == "..") {
        return Err("path has a \"..\" component, which could leave the bundle directory".into());
    }
    let mut rel = s.strip_prefix("./").unwrap_or(s);
    if is_dir {
        rel = rel.strip_suffix('/').unwrap_or(rel);
    }
    if rel.is_empty() || rel == "." {
        return if is_dir {
            Ok(None)
        } else {
            Err("a file cannot be \".\"".into())
        };
    }
    if rel.split('/').any(|c| c.is_empty() || c == ".") {
        return Err("path has an empty or \".\" component".into());
    }
    if rel.split('/').count() > MAX_DEPTH {
        return Err(format!("path deeper than {MAX_DEPTH} components"));
    }
    Ok(Some(rel.to_string()))
}

fn path_key(rel: &str) -> u128 {
    let digest = Sha256::digest(rel.as_bytes());
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest[..16]);
    u128::from_be_bytes(key)
}

/// A member path for an error message: quoted and escaped (one line whatever it holds), and
/// cut short, since hostile names can be kilobytes long.
fn shown(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    match text.char_indices().nth(200) {
        Some((cut, _)) => format!("{:?}…", &text[..cut]),
        None => format!("{text:?}"),
    }
}

fn describe_member_type(byte: u8) -> String {
    let what = match byte {
        b'1' => "hard link",
        b'2' => "symbolic link",
        b'3' => "character device",
        b'4' => "block device",
        b'6' => "fifo",
        b'7' => "contiguous file",
        b'S' => "GNU sparse file",
        b'g' => "pax global header",
        b'K' => "GNU long link name",
        other => return format!("member of unknown type {:?}", other as char),
    };
    what.to_string()
}

#[cfg(test)]
mod tests;
