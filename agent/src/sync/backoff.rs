//! Exponential backoff with jitter between failed sync attempts.

use rand::Rng;
use std::time::Duration;

/// Delays that double from `first` up to `cap`, each drawn uniformly from the upper half of
/// its step ("equal jitter"): never zero, so a dead endpoint is not hammered, and spread out, so
/// a fleet of hosts coming back from the same outage does not retry in lockstep.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    cap: Duration,
    failures: u32,
}

impl Backoff {
    pub fn new(first: Duration, cap: Duration) -> Backoff {
        Backoff {
            first,
            cap,
            failures: 0,
        }
    }

    /// The delay before the next attempt, after one more failure.
    pub fn next_delay(&mut self) -> Duration {
        let step = self
            .first
            .saturating_mul(2u32.saturating_pow(self.failures.min(31)))
            .min(self.cap);
        self.failures = self.failures.saturating_add(1);
        let half = step / 2;
        half + rand::thread_rng().gen_range(Duration::ZERO..=step - half)
    }

    /// Back to the first delay, after a success.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_within_jitter_up_to_the_cap() {
        let first = Duration::from_secs(1);
        let cap = Duration::from_secs(60);
        let mut b = Backoff::new(first, cap);
        for n in 0..40u32 {
            let step = first
                .saturating_mul(2u32.saturating_pow(n.min(31)))
                .min(cap);
            let d = b.next_delay();
            assert!(
                d >= step / 2 && d <= step,
                "failure {n}: {d:?} not in [{:?}, {step:?}]",
                step / 2
            );
        }
        assert_eq!(b.failures(), 40);
        b.reset();
        assert!(b.next_delay() <= first);
    }

    #[test]
    fn jitter_spreads_delays() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..20 {
            let mut b = Backoff::new(Duration::from_secs(8), Duration::from_secs(8));
            seen.insert(b.next_delay());
        }
        assert!(seen.len() > 1, "20 delays were all equal: {seen:?}");
    }
}
