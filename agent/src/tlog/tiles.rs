//! C2SP tlog-tiles: the static layout of a log as hash tiles and entry bundles, which is how the
//! ledger is laid out in S3 (DESIGN.md §3) and how verifiers read it back.
//!
//! A tile at level `L` holds up to 256 consecutive hashes of tree level `8·L`: level 0 holds
//! leaf hashes, level 1 the roots of 256-leaf subtrees, and so on. A full tile has 256 hashes;
//! the rightmost tile of a level may be partial (`.p/<W>`, W in 1..=255). An entry bundle holds
//! the entries of the leaves a level-0 tile covers, each prefixed by its big-endian u16 length.
//! Everything here is pure: the hashes come from any [`NodeSource`].

use super::merkle::NodeSource;

/// Hashes per full tile.
pub const TILE_WIDTH: u64 = 256;
/// Tree levels per tile level.
const TILE_HEIGHT: u32 = 8;
/// Largest entry an entry bundle can hold (its length prefix is a u16).
pub const MAX_ENTRY_SIZE: usize = u16::MAX as usize;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TileError {
    #[error("entry {index} is {size} bytes; an entry bundle holds at most {MAX_ENTRY_SIZE}")]
    EntryTooLarge { index: u64, size: usize },
    #[error("malformed entry bundle: {0}")]
    MalformedBundle(String),
}

/// One tile: its level, its index within the level, and its width (256 when full).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tile {
    pub level: u32,
    pub index: u64,
    pub width: u64,
}

impl Tile {
    pub fn is_partial(&self) -> bool {
        self.width < TILE_WIDTH
    }

    /// `tile/<L>/<N>[.p/<W>]`.
    pub fn path(&self) -> String {
        format!("tile/{}/{}", self.level, self.index_path())
    }

    /// `tile/entries/<N>[.p/<W>]`, for level-0 tiles.
    pub fn entries_path(&self) -> String {
        format!("tile/entries/{}", self.index_path())
    }

    /// `<N>` as 3-digit groups, all but the last prefixed with `x`, then the partial suffix.
    fn index_path(&self) -> String {
        let mut groups = Vec::new();
        let mut n = self.index;
        loop {
            groups.push(n % 1000);
            n /= 1000;
            if n == 0 {
                break;
            }
        }
        let last = groups.len() - 1;
        let path: Vec<String> = groups
            .iter()
            .rev()
            .enumerate()
            .map(|(i, g)| {
                if i < last {
                    format!("x{g:03}")
                } else {
                    format!("{g:03}")
                }
            })
            .collect::<Vec<_>>();
        let mut path = path.join("/");
        if self.is_partial() {
            path.push_str(&format!(".p/{}", self.width));
        }
        path
    }

    /// The leaf range `[first, end)` whose hashes (level 0) or subtrees (higher levels) this
    /// tile covers.
    pub fn leaf_range(&self) -> (u64, u64) {
        let span = 1u64 << (TILE_HEIGHT * self.level);
        let first = self.index * TILE_WIDTH * span;
        (first, first + self.width * span)
    }
}

/// Every tile of a tree of `size` leaves, level by level: the full ones and, where the level's
/// count of hashes is not a multiple of 256, the partial rightmost one.
pub fn tiles_for_size(size: u64) -> Vec<Tile> {
    let mut tiles = Vec::new();
    let mut level = 0;
    loop {
        let shift = TILE_HEIGHT * level;
        if shift >= 64 {
            break;
        }
        let hashes = size >> shift;
        if hashes == 0 {
            break;
        }
        for index in 0..hashes / TILE_WIDTH {
            tiles.push(Tile {
                level,
                index,
                width: TILE_WIDTH,
            });
        }
        if hashes % TILE_WIDTH != 0 {
            tiles.push(Tile {
                level,
                index: hashes / TILE_WIDTH,
                width: hashes % TILE_WIDTH,
            });
        }
        level += 1;
    }
    tiles
}

/// The tiles of a tree of `new` leaves that a tree of `old` leaves lacks: what to publish when
/// the tree grows. A partial tile of another width is another object, so it counts as new.
pub fn tiles_added(old: u64, new: u64) -> Vec<Tile> {
    tiles_for_size(new)
        .into_iter()
        .filter(|t| {
            let hashes = old.checked_shr(TILE_HEIGHT * t.level).unwrap_or(0);
            let held = if t.is_partial() {
                t.index == hashes / TILE_WIDTH && t.width == hashes % TILE_WIDTH
            } else {
                t.index < hashes / TILE_WIDTH
            };
            !held
        })
        .collect()
}

/// The bytes of a hash tile: its hashes, 32 bytes each, left to right.
pub fn read_tile<S: NodeSource>(src: &S, tile: Tile) -> Result<Vec<u8>, S::Error> {
    let tree_level = TILE_HEIGHT * tile.level;
    let mut out = Vec::with_capacity(tile.width as usize * 32);
    for i in 0..tile.width {
        out.extend_from_slice(&src.node(tree_level, tile.index * TILE_WIDTH + i)?);
    }
    Ok(out)
}

/// An entry bundle from the entries of one level-0 tile, in order; `first_index` is the log
/// index of the first, for error messages.
pub fn entry_bundle<'a>(
    first_index: u64,
    entries: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Vec<u8>, TileError> {
    let mut out = Vec::new();
    for (i, entry) in entries.into_iter().enumerate() {
        let len = u16::try_from(entry.len()).map_err(|_| TileError::EntryTooLarge {
            index: first_index + i as u64,
            size: entry.len(),
        })?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(entry);
    }
    Ok(out)
}

/// Split an entry bundle back into its entries.
pub fn parse_entry_bundle(mut bytes: &[u8]) -> Result<Vec<&[u8]>, TileError> {
    let mut entries = Vec::new();
    while !bytes.is_empty() {
        let [hi, lo, rest @ ..] = bytes else {
            return Err(TileError::MalformedBundle("truncated length prefix".into()));
        };
        let len = u16::from_be_bytes([*hi, *lo]) as usize;
        if rest.len() < len {
            return Err(TileError::MalformedBundle(format!(
                "entry {} claims {len} bytes, {} remain",
                entries.len(),
                rest.len()
            )));
        }
        entries.push(&rest[..len]);
        bytes = &rest[len..];
    }
    if entries.len() as u64 > TILE_WIDTH {
        return Err(TileError::MalformedBundle(format!(
            "{} entries; a bundle holds at most {TILE_WIDTH}",
            entries.len()
        )));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_spec() {
        let t = |level, index, width| {
            Tile {
                level,
                index,
                width,
            }
            .path()
        };
        assert_eq!(t(0, 0, 256), "tile/0/000");
        assert_eq!(t(0, 1, 44), "tile/0/001.p/44");
        assert_eq!(t(1, 0, 1), "tile/1/000.p/1");
        assert_eq!(t(2, 1_234_067, 256), "tile/2/x001/x234/067");
        assert_eq!(t(0, 1_234_067, 8), "tile/0/x001/x234/067.p/8");
        assert_eq!(t(0, 1000, 256), "tile/0/x001/000");
        assert_eq!(
            Tile {
                level: 0,
                index: 1,
                width: 44
            }
            .entries_path(),
            "tile/entries/001.p/44"
        );
    }

    #[test]
    fn tiles_added_is_the_set_difference() {
        let sizes = [
            0, 1, 2, 255, 256, 257, 300, 511, 512, 65_535, 65_536, 65_537, 70_000,
        ];
        for &old in &sizes {
            for &new in sizes.iter().filter(|&&n| n >= old) {
                let before: std::collections::HashSet<Tile> =
                    tiles_for_size(old).into_iter().collect();
                let want: Vec<Tile> = tiles_for_size(new)
                    .into_iter()
                    .filter(|t| !before.contains(t))
                    .collect();
                assert_eq!(tiles_added(old, new), want, "{old} -> {new}");
            }
        }
        assert!(tiles_added(300, 300).is_empty());
    }

    #[test]
    fn tiles_for_a_size() {
        assert_eq!(tiles_for_size(0), vec![]);
        let t300 = tiles_for_size(300);
        assert_eq!(
            t300,
            vec![
                Tile {
                    level: 0,
                    index: 0,
                    width: 256
                },
                Tile {
                    level: 0,
                    index: 1,
                    width: 44
                },
                Tile {
                    level: 1,
                    index: 0,
                    width: 1
                },
            ]
        );
        let t = tiles_for_size(65_536 + 3);
        assert_eq!(t.iter().filter(|t| t.level == 0).count(), 257);
        assert!(t.contains(&Tile {
            level: 1,
            index: 0,
            width: 256
        }));
        assert!(t.contains(&Tile {
            level: 2,
            index: 0,
            width: 1
        }));
        assert_eq!(
            Tile {
                level: 1,
                index: 2,
                width: 3
            }
            .leaf_range(),
            (131_072, 131_840)
        );
    }

    #[test]
    fn bundles_round_trip_and_reject_garbage() {
        let entries: Vec<&[u8]> = vec![b"a", b"", b"hello"];
        let bundle = entry_bundle(0, entries.iter().copied()).unwrap();
        assert_eq!(parse_entry_bundle(&bundle).unwrap(), entries);
        assert!(parse_entry_bundle(&[0]).is_err());
        assert!(parse_entry_bundle(&[0, 5, b'a']).is_err());
        let big = vec![0u8; MAX_ENTRY_SIZE + 1];
        assert_eq!(
            entry_bundle(7, [big.as_slice()]),
            Err(TileError::EntryTooLarge {
                index: 7,
                size: MAX_ENTRY_SIZE + 1
            })
        );
    }
}
