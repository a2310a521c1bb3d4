//! Work spread over every core: [`par_map`], used by the verifiers (a bundle's files and
//! entries, a ledger's signatures and leaves), whose checks are independent per item and
//! dominated by Ed25519 and SHA-256. A verifier on one core would leave the rest idle.

/// `f` over `items` on every core, results in input order. Workers take small pieces in turn,
/// so one descheduled thread does not hold up the end.
pub fn par_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    const PIECE: usize = 256;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if threads == 1 || items.len() <= PIECE {
        return items.iter().map(f).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let (f, next) = (&f, &next);
    let mut pieces: Vec<(usize, Vec<R>)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(move || {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(piece) = items.chunks(PIECE).nth(i) else {
                            return done;
                        };
                        done.push((i, piece.iter().map(f).collect::<Vec<R>>()));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            // A worker only panics if `f` does; let that surface as it would on one thread.
            .flat_map(|w| w.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    pieces.sort_by_key(|(i, _)| *i);
    pieces.into_iter().flat_map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    use super::par_map;

    #[test]
    fn results_keep_the_input_order() {
        let items: Vec<u64> = (0..10_000).collect();
        let squares = par_map(&items, |i| i * i);
        assert_eq!(squares, items.iter().map(|i| i * i).collect::<Vec<_>>());
        assert!(par_map(&[] as &[u64], |i| *i).is_empty());
    }
}
