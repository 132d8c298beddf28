//! Idle threads kept for work that runs beside the caller and borrows from it (sealing a blob
//! on two cores, writing blobs while the metadata is written). A new thread per message cost a
//! spawn and an exit each time, and on a busy machine the new thread waited on its parent's CPU
//! before it ran at all; an idle thread is woken where a CPU is free.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::{Mutex, mpsc};

type Job = Box<dyn FnOnce() + Send + 'static>;

/// Idle threads, each waiting on its own channel.
static IDLE: Mutex<Vec<mpsc::Sender<Job>>> = Mutex::new(Vec::new());

/// Idle threads kept at most; more are made when all are busy, and end after their job.
const KEEP_IDLE: usize = 8;

fn spawn() -> Option<mpsc::Sender<Job>> {
    let (tx, rx) = mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("sluis-crew".into())
        .spawn(move || {
            while let Ok(job) = rx.recv() {
                job();
            }
        })
        .ok()?;
    Some(tx)
}

/// Waits for the job to finish, also while the caller unwinds: the job borrows from the
/// caller's frame.
struct Finish<'r, T> {
    done: &'r mpsc::Receiver<std::thread::Result<T>>,
    waited: bool,
}

impl<T> Finish<'_, T> {
    fn wait(&mut self) -> std::thread::Result<T> {
        self.waited = true;
        // Disconnected: the job was dropped without running, which `join` never does.
        self.done
            .recv()
            .unwrap_or_else(|_| Err(Box::new("a crew job was dropped")))
    }
}

impl<T> Drop for Finish<'_, T> {
    fn drop(&mut self) {
        if !self.waited {
            let _ = self.done.recv();
        }
    }
}

/// Runs `a` on an idle thread (a new one when none is idle, this one when no thread can be
/// made) while `b` runs on this one, and returns both results once both have finished. A panic
/// in either is passed on, after both have finished.
pub fn join<RA: Send, RB>(a: impl FnOnce() -> RA + Send, b: impl FnOnce() -> RB) -> (RA, RB) {
    let (done_tx, done_rx) = mpsc::sync_channel(1);
    // Made before the job, so dropped after it: unwinding with the job unsent drops it (and
    // its sender) first, and the wait ends at once.
    let mut finish = Finish {
        done: &done_rx,
        waited: false,
    };
    type Borrowing<'a> = Box<dyn FnOnce() + Send + 'a>;
    let job: Borrowing<'_> = Box::new(move || {
        let _ = done_tx.send(catch_unwind(AssertUnwindSafe(a)));
    });
    // SAFETY: only the lifetime is erased. The job borrows from this frame, and this function
    // neither returns nor unwinds before the job has finished or been dropped: `Finish` waits
    // for its result (or for its sender to go) on every path out, and a job that no thread
    // took is run here.
    let mut job: Option<Job> = Some(unsafe { std::mem::transmute::<Borrowing<'_>, Job>(job) });
    let worker = loop {
        let idle = IDLE.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let Some(w) = idle.or_else(spawn) else {
            // No thread to be had: run it here, first.
            (job.take().expect("job not sent yet"))();
            break None;
        };
        match w.send(job.take().expect("job not sent yet")) {
            Ok(()) => break Some(w),
            Err(mpsc::SendError(back)) => job = Some(back),
        }
    };
    let rb = b();
    let ra = finish.wait();
    if let Some(w) = worker {
        let mut idle = IDLE.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < KEEP_IDLE {
            idle.push(w);
        }
    }
    match ra {
        Ok(ra) => (ra, rb),
        Err(p) => resume_unwind(p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn both_run_at_once_on_borrowed_data_and_threads_are_kept() {
        let data: Vec<u64> = (1..=1000).collect();
        let (half, rest) = data.split_at(500);
        let (a, b) = join(|| half.iter().sum::<u64>(), || rest.iter().sum::<u64>());
        assert_eq!(a + b, 500_500);
        // `a` really runs beside `b`: each waits until the other has started.
        let started = AtomicUsize::new(0);
        let meet = || {
            started.fetch_add(1, Ordering::SeqCst);
            let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while started.load(Ordering::SeqCst) < 2 {
                assert!(std::time::Instant::now() < until, "not run at once");
                std::thread::yield_now();
            }
            std::thread::current().id()
        };
        let (ta, tb) = join(meet, meet);
        assert_ne!(ta, tb);
        assert!(IDLE.lock().unwrap().len() <= KEEP_IDLE);
        // Nested, as sealing inside the blob writer does.
        let (x, (y, z)) = join(|| 1, || join(|| 2, || 3));
        assert_eq!((x, y, z), (1, 2, 3));
    }

    #[test]
    fn a_panic_is_passed_on_after_both_have_finished() {
        let finished = AtomicUsize::new(0);
        let r = std::panic::catch_unwind(AssertUnwindSafe(|| {
            join(
                || -> u8 { panic!("sealing bug") },
                || {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                    finished.fetch_add(1, Ordering::SeqCst);
                },
            )
        }));
        assert_eq!(finished.load(Ordering::SeqCst), 1);
        let msg = r.unwrap_err();
        assert_eq!(msg.downcast_ref::<&str>(), Some(&"sealing bug"));
        // The caller's side panicking waits for the other side before unwinding.
        let r = std::panic::catch_unwind(AssertUnwindSafe(|| {
            join(
                || {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                    finished.fetch_add(1, Ordering::SeqCst);
                },
                || -> u8 { panic!("caller bug") },
            )
        }));
        assert!(r.is_err());
        assert_eq!(finished.load(Ordering::SeqCst), 2);
        // The threads still serve.
        assert_eq!(join(|| 4, || 5), (4, 5));
    }
}
