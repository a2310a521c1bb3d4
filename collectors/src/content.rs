//! Snapshot content: bytes in memory or in a spool file, always with their SHA-256 and size.
//!
//! The digest is computed while the content is produced, in one pass, by [`ContentWriter`]; the
//! ledger trusts it because only this type can construct a [`Content`].

use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, Cursor, Read, Write};
use std::path::Path;

/// Content held in memory up to this size; beyond it, [`ContentWriter`] moves to a spool file.
const MEMORY_LIMIT: usize = 1 << 20;

#[derive(Debug)]
enum Storage {
    Memory(Vec<u8>),
    Spooled(tempfile::NamedTempFile),
}

/// The bytes of one snapshot with their SHA-256 digest and length.
#[derive(Debug)]
pub struct Content {
    storage: Storage,
    sha256: [u8; 32],
    size: u64,
}

impl Content {
    /// Content from bytes already in memory (canonical JSON, small outputs).
    pub fn from_bytes(bytes: Vec<u8>) -> Content {
        let sha256 = Sha256::digest(&bytes).into();
        let size = bytes.len() as u64;
        Content {
            storage: Storage::Memory(bytes),
            sha256,
            size,
        }
    }

    pub fn sha256(&self) -> [u8; 32] {
        self.sha256
    }

    pub fn sha256_hex(&self) -> String {
        hex::encode(self.sha256)
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// A reader over the content from its first byte.
    pub fn reader(&self) -> io::Result<Box<dyn Read + '_>> {
        match &self.storage {
            Storage::Memory(bytes) => Ok(Box::new(Cursor::new(bytes.as_slice()))),
            Storage::Spooled(file) => Ok(Box::new(File::open(file.path())?)),
        }
    }

    /// The content as bytes in memory, if it is small enough to have stayed there.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match &self.storage {
            Storage::Memory(bytes) => Some(bytes),
            Storage::Spooled(_) => None,
        }
    }
}

/// Builds a [`Content`] from streamed writes, hashing as it goes and spilling to a temporary file
/// in the spool directory once the content outgrows memory.
pub struct ContentWriter {
    hasher: Sha256,
    size: u64,
    memory: Vec<u8>,
    spool: Option<(tempfile::NamedTempFile, io::BufWriter<File>)>,
    spool_dir: std::path::PathBuf,
}

impl ContentWriter {
    pub fn new(spool_dir: &Path) -> ContentWriter {
        ContentWriter {
            hasher: Sha256::new(),
            size: 0,
            memory: Vec::new(),
            spool: None,
            spool_dir: spool_dir.to_path_buf(),
        }
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.size
    }

    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// Flush and seal the content. A spool file is not fsynced: it only lives until the ledger
    /// has copied it into its own transaction, which is what makes the bytes durable (a crash
    /// before that commit loses the run, whose spool is then removed as stale at the next
    /// start). Syncing it would write every large snapshot to disk one more time for nothing.
    pub fn finish(mut self) -> io::Result<Content> {
        let sha256 = std::mem::take(&mut self.hasher).finalize().into();
        let storage = match self.spool.take() {
            None => Storage::Memory(std::mem::take(&mut self.memory)),
            Some((temp, mut writer)) => {
                writer.flush()?;
                Storage::Spooled(temp)
            }
        };
        Ok(Content {
            storage,
            sha256,
            size: self.size,
        })
    }
}

impl Write for ContentWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.spool.is_none() && self.memory.len() + buf.len() > MEMORY_LIMIT {
            std::fs::create_dir_all(&self.spool_dir)?;
            let temp = tempfile::Builder::new()
                .prefix("content-")
                .tempfile_in(&self.spool_dir)?;
            let mut writer = io::BufWriter::with_capacity(1 << 16, temp.reopen()?);
            writer.write_all(&self.memory)?;
            self.memory = Vec::new();
            self.spool = Some((temp, writer));
        }
        match &mut self.spool {
            Some((_, writer)) => writer.write_all(buf)?,
            None => self.memory.extend_from_slice(buf),
        }
        self.hasher.update(buf);
        self.size += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.spool {
            Some((_, writer)) => writer.flush(),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_and_spooled_content_hash_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..(3 * MEMORY_LIMIT as u32))
            .map(|i| (i % 251) as u8)
            .collect();
        let mut writer = ContentWriter::new(dir.path());
        for chunk in data.chunks(10_000) {
            writer.write_all(chunk).unwrap();
        }
        let spooled = writer.finish().unwrap();
        assert!(
            spooled.as_bytes().is_none(),
            "3 MiB must spill to the spool"
        );
        let memory = Content::from_bytes(data.clone());
        assert_eq!(spooled.sha256(), memory.sha256());
        assert_eq!(spooled.size(), data.len() as u64);
        let mut back = Vec::new();
        spooled.reader().unwrap().read_to_end(&mut back).unwrap();
        assert_eq!(back, data);
    }
}
