//! Running a function over a slice on a few threads, in order.

/// How many threads to use: one per core, at most `max` (at least 1).
pub(crate) fn threads(max: usize) -> usize {
    std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(1)
        .clamp(1, max.max(1))
}

/// Splits `items` into `threads` contiguous chunks, runs `f` on each (the first on this
/// thread, the others on scoped threads) and concatenates the results in order. The error
/// is the first chunk's, in order; a panicking thread gives `panicked()`.
pub(crate) fn map_chunks<T: Sync, R: Send, E: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&[T]) -> Result<Vec<R>, E> + Sync,
    panicked: impl Fn() -> E,
) -> Result<Vec<R>, E> {
    if threads <= 1 || items.len() <= 1 {
        return f(items);
    }
    let f = &f;
    std::thread::scope(|scope| {
        let mut chunks = items.chunks(items.len().div_ceil(threads));
        let first = chunks.next().unwrap_or_default();
        let handles: Vec<_> = chunks.map(|chunk| scope.spawn(move || f(chunk))).collect();
        let mut out = f(first);
        for handle in handles {
            let more = handle.join().unwrap_or_else(|_| Err(panicked()));
            out = match (out, more) {
                (Ok(mut all), Ok(more)) => {
                    all.extend(more);
                    Ok(all)
                }
                (Err(e), _) | (Ok(_), Err(e)) => Err(e),
            };
        }
        out
    })
}

#[cfg(test)]
mod tests {
    use super::map_chunks;

    #[test]
    fn results_in_order_and_first_error() {
        let items: Vec<u32> = (0..1000).collect();
        let doubled = map_chunks(
            &items,
            4,
            |c| Ok::<_, String>(c.iter().map(|i| i * 2).collect()),
            || "panicked".to_string(),
        )
        .unwrap();
        assert_eq!(doubled, items.iter().map(|i| i * 2).collect::<Vec<_>>());
        let failed = map_chunks(
            &items,
            4,
            |c| match c.iter().find(|i| **i % 300 == 299) {
                Some(i) => Err(format!("at {i}")),
                None => Ok(c.to_vec()),
            },
            || "panicked".to_string(),
        );
        assert_eq!(failed, Err("at 299".to_string()));
    }
}
