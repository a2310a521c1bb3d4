//! Bounded fan-out for the remote-API kinds: many requests of one run (the reviews of each
//! pull request, the policies of each IAM user) with a few in flight at once.

use crate::CollectError;
use std::future::Future;
use std::time::Instant;

/// Runs `task` on every input with at most `limit` in flight; the results come back in input
/// order. The first error, or the deadline passing, stops the rest (dropping the task set
/// aborts what is still running) and is returned, so a run never goes on with a hole.
pub(crate) async fn each_bounded<T, R, F, Fut>(
    inputs: Vec<T>,
    limit: usize,
    deadline: Option<Instant>,
    task: F,
) -> Result<Vec<R>, CollectError>
where
    T: Send + 'static,
    R: Send + 'static,
    F: Fn(T) -> Fut,
    Fut: Future<Output = Result<R, CollectError>> + Send + 'static,
{
    let mut results: Vec<Option<R>> = inputs.iter().map(|_| None).collect();
    let mut pending = inputs.into_iter().enumerate();
    let mut running = tokio::task::JoinSet::new();
    loop {
        while running.len() < limit.max(1) {
            let Some((index, input)) = pending.next() else {
                break;
            };
            crate::check_deadline(deadline)?;
            let future = task(input);
            running.spawn(async move { (index, future.await) });
        }
        match running.join_next().await {
            None => break,
            Some(Ok((index, Ok(result)))) => {
                if let Some(slot) = results.get_mut(index) {
                    *slot = Some(result);
                }
            }
            Some(Ok((_, Err(err)))) => return Err(err),
            Some(Err(join)) => {
                return Err(CollectError::Other(format!(
                    "a request task of this run stopped: {join}"
                )))
            }
        }
    }
    Ok(results.into_iter().flatten().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[tokio::test]
    async fn results_keep_input_order_within_the_limit() {
        let in_flight = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let out = each_bounded((0..20u64).collect(), 3, None, |n| {
            let (in_flight, most) = (Arc::clone(&in_flight), Arc::clone(&most));
            async move {
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                // Later inputs finish first, so order comes from the indexes, not completion.
                tokio::task::yield_now().await;
                in_flight.fetch_sub(1, Ordering::SeqCst);
                Ok(n * 10)
            }
        })
        .await
        .unwrap();
        assert_eq!(out, (0..20u64).map(|n| n * 10).collect::<Vec<_>>());
        assert!(most.load(Ordering::SeqCst) <= 3);
    }

    #[tokio::test]
    async fn the_first_error_is_returned() {
        let err = each_bounded(vec![1, 2, 3], 2, None, |n| async move {
            if n == 2 {
                Err(CollectError::Other("two failed".into()))
            } else {
                Ok(n)
            }
        })
        .await
        .unwrap_err();
        assert_eq!(err.to_string(), "two failed");
    }
}
