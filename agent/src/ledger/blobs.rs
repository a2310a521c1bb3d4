//! Content-addressed blob storage inside the ledger database, in fixed-size chunks.

use super::LedgerError;
use rusqlite::{params, Connection, OptionalExtension};
use std::io::{Read, Write};

/// Chunk size: large enough that per-row overhead is small, small enough to stream.
const CHUNK: usize = 1 << 20;

/// Store `reader`'s bytes under `digest` unless already present. The caller vouches that the
/// digest and size are those of the bytes (they come from `collectors::Content`); the chunk
/// count and total are checked here against the size.
pub fn put(
    conn: &Connection,
    digest: &[u8; 32],
    size: u64,
    reader: &mut dyn Read,
) -> Result<(), LedgerError> {
    let exists = conn
        .prepare_cached("SELECT 1 FROM blobs WHERE digest = ?1")?
        .query_row([&digest[..]], |_| Ok(()))
        .optional()?
        .is_some();
    if exists {
        return Ok(());
    }
    // The chunk count is known before reading: a mismatch below aborts the whole transaction.
    let chunks = size.div_ceil(CHUNK as u64) as i64;
    conn.prepare_cached("INSERT INTO blobs (digest, size, chunks) VALUES (?1, ?2, ?3)")?
        .execute(params![&digest[..], size as i64, chunks])?;
    let mut insert =
        conn.prepare_cached("INSERT INTO blob_chunks (digest, seq, data) VALUES (?1, ?2, ?3)")?;
    // No larger than the content (at least one byte, so that content longer than its stated
    // size is still noticed): most snapshots are small, and a zeroed 1 MiB buffer for each
    // one cost more than the rest of an append.
    let len = usize::try_from(size).map_or(CHUNK, |s| s.clamp(1, CHUNK));
    let mut buf = vec![0u8; len];
    let (mut seq, mut total) = (0i64, 0u64);
    loop {
        let n = read_full(reader, &mut buf).map_err(|e| LedgerError::Io {
            op: "read snapshot content",
            source: e,
        })?;
        if n == 0 {
            break;
        }
        insert.execute(params![&digest[..], seq, &buf[..n]])?;
        seq += 1;
        total += n as u64;
    }
    if total != size {
        return Err(LedgerError::Corrupt(format!(
            "content for sha256:{} has {total} bytes, expected {size}",
            hex::encode(digest)
        )));
    }
    Ok(())
}

fn read_full(reader: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Size of the stored blob, if present.
pub fn size(conn: &Connection, digest: &[u8; 32]) -> Result<Option<u64>, LedgerError> {
    Ok(conn
        .prepare_cached("SELECT size FROM blobs WHERE digest = ?1")?
        .query_row([&digest[..]], |r| r.get::<_, i64>(0))
        .optional()?
        .map(|s| s as u64))
}

/// Stream a blob's bytes into `out`, chunk by chunk. Returns the number of bytes written, or
/// `None` if no such blob is stored.
pub fn copy_to(
    conn: &Connection,
    digest: &[u8; 32],
    out: &mut dyn Write,
) -> Result<Option<u64>, LedgerError> {
    if size(conn, digest)?.is_none() {
        return Ok(None);
    }
    let mut stmt =
        conn.prepare_cached("SELECT data FROM blob_chunks WHERE digest = ?1 ORDER BY seq")?;
    let mut rows = stmt.query([&digest[..]])?;
    let mut total = 0u64;
    while let Some(row) = rows.next()? {
        let data = row
            .get_ref(0)?
            .as_blob()
            .map_err(|e| LedgerError::Corrupt(format!("blob chunk: {e}")))?;
        out.write_all(data).map_err(|e| LedgerError::Io {
            op: "write blob",
            source: e,
        })?;
        total += data.len() as u64;
    }
    Ok(Some(total))
}
