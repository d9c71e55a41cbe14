//! The solver's scheduling: the planned stages run each as soon as the stages it needs are
//! done, independent ones in parallel threads. It knows stages only as indices with
//! dependencies; what a stage does (its operations) is the caller's closure.

use std::collections::BTreeSet;
use std::sync::mpsc;

/// Runs `run(index)` for each `(index, deps)` of `stages` once every stage in `deps` has
/// succeeded, independent ones in parallel scoped threads, and hands each result to `done`
/// (on the calling thread, in the order they finish). After the first error no stage
/// starts; that error is returned once the running ones finish.
pub(crate) fn run_stages<T, E, F, D>(
    stages: &[(usize, &BTreeSet<usize>)],
    run: F,
    mut done: D,
) -> Result<(), E>
where
    T: Send,
    E: Send,
    F: Fn(usize) -> Result<T, E> + Sync,
    D: FnMut(usize, T),
{
    let mut first_error = None;
    let run = &run;
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::channel();
        let mut started = vec![false; stages.len()];
        let mut finished: Vec<usize> = Vec::new();
        let mut running = 0;
        loop {
            if first_error.is_none() {
                for (i, (index, deps)) in stages.iter().enumerate() {
                    if started[i] || !deps.iter().all(|d| finished.contains(d)) {
                        continue;
                    }
                    started[i] = true;
                    running += 1;
                    let (tx, index) = (tx.clone(), *index);
                    scope.spawn(move || {
                        let _ = tx.send((index, run(index)));
                    });
                }
            }
            if running == 0 {
                break;
            }
            let Ok((index, result)) = rx.recv() else {
                break;
            };
            running -= 1;
            match result {
                Ok(value) => {
                    done(index, value);
                    finished.push(index);
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
    });
    first_error.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn stages_start_after_their_dependencies_and_stop_after_an_error() {
        let none = BTreeSet::new();
        let on0: BTreeSet<usize> = [0].into();
        let on1: BTreeSet<usize> = [1].into();
        let log = Mutex::new(Vec::new());
        let mut done = Vec::new();
        let stages = [(0, &none), (1, &on0), (2, &on1)];
        let r: Result<(), String> = run_stages(
            &stages,
            |i| {
                log.lock().unwrap().push(i);
                Ok(i * 10)
            },
            |i, v| done.push((i, v)),
        );
        assert!(r.is_ok());
        assert_eq!(*log.lock().unwrap(), [0, 1, 2]);
        assert_eq!(done, [(0, 0), (1, 10), (2, 20)]);
        let r = run_stages(
            &stages,
            |i| {
                if i == 1 {
                    Err(format!("stage {i}"))
                } else {
                    Ok(())
                }
            },
            |_, _| {},
        );
        assert_eq!(r, Err("stage 1".to_string()));
    }
}
