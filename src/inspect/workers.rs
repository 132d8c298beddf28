//! Long-lived threads that inspect large messages, so that each message does not pay for a
//! new thread with a 64 MiB stack (and a cold allocator arena). A worker whose job overruns the
//! time limit is given up: it is never handed another job and ends when the stuck job does.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Mutex, mpsc};
use std::time::Duration;

type Job = Box<dyn FnOnce() + Send>;

struct Worker {
    jobs: mpsc::Sender<Job>,
}

/// Idle workers kept for the next messages.
const KEEP_IDLE: usize = 4;

static IDLE: Mutex<Vec<Worker>> = Mutex::new(Vec::new());

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RunError {
    /// No thread could be started.
    NoThread,
    /// The job panicked.
    Panicked,
    /// No answer within the time given.
    TimedOut,
}

fn spawn() -> Option<Worker> {
    let (jobs, rx) = mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("sluis-inspect".into())
        // Parsers of nested content recurse; a deep but legitimate document must not overflow.
        .stack_size(64 * 1024 * 1024)
        .spawn(move || {
            while let Ok(job) = rx.recv() {
                job();
            }
        })
        .ok()?;
    Some(Worker { jobs })
}

/// Runs `f` on a worker and waits at most `wait` for its result.
pub(crate) fn run<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
    wait: Duration,
) -> Result<T, RunError> {
    let (tx, rx) = mpsc::channel();
    let mut job: Option<Job> = Some(Box::new(move || {
        let _ = tx.send(catch_unwind(AssertUnwindSafe(f)));
    }));
    // An idle worker, or a new one; one whose thread has gone (it cannot, but) is replaced.
    let worker = loop {
        let idle = IDLE.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let w = match idle {
            Some(w) => w,
            None => spawn().ok_or(RunError::NoThread)?,
        };
        match w.jobs.send(job.take().expect("job not sent yet")) {
            Ok(()) => break w,
            Err(mpsc::SendError(back)) => job = Some(back),
        }
    };
    let give_back = |w: Worker| {
        let mut idle = IDLE.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < KEEP_IDLE {
            idle.push(w);
        }
    };
    match rx.recv_timeout(wait) {
        Ok(Ok(v)) => {
            give_back(worker);
            Ok(v)
        }
        Ok(Err(_)) => {
            give_back(worker);
            Err(RunError::Panicked)
        }
        // The worker is dropped here: its thread ends once the stuck job returns.
        Err(mpsc::RecvTimeoutError::Timeout) => Err(RunError::TimedOut),
        Err(mpsc::RecvTimeoutError::Disconnected) => Err(RunError::Panicked),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_panics_and_timeouts() {
        assert_eq!(run(|| 6 * 7, Duration::from_secs(5)), Ok(42));
        assert_eq!(
            run(|| -> u8 { panic!("parser bug") }, Duration::from_secs(5)),
            Err(RunError::Panicked)
        );
        // The worker survives a panic and is used again.
        assert_eq!(run(|| 1, Duration::from_secs(5)), Ok(1));
        let slow = run(
            || std::thread::sleep(Duration::from_millis(300)),
            Duration::from_millis(20),
        );
        assert_eq!(slow, Err(RunError::TimedOut));
        // Still serving jobs after a worker was given up.
        assert_eq!(run(|| 2, Duration::from_secs(5)), Ok(2));
        assert!(IDLE.lock().unwrap().len() <= KEEP_IDLE);
    }
}
