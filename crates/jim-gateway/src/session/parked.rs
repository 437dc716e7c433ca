//! A parked session without a task: a record holding the session, woken by
//! its socket or its outbox as a task would be, which then gives the
//! session a task again.
//!
//! An idle connection's task was 512 B (its future and tokio's own ~100 B,
//! rounded up to 128 B); the record is the session's state and 24 B.

use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};

/// What can wait in a record.
pub(super) trait Parkable: Send + Sized + 'static {
    /// What woke it, when it was something to hand on.
    type Woken;

    /// The wait, as a poll: `Ready` when something is there.
    fn poll_parked(&mut self, cx: &mut Context<'_>) -> Poll<Option<Self::Woken>>;

    /// It was woken while parked in its record: give it a task.
    fn resume(self);
}

/// How parking went.
pub(super) enum Parking<L: Parkable> {
    /// It waits in its record; the task may end.
    Parked,
    /// Something is already there (what woke it, when it was something to
    /// hand on): drive it on in the same task.
    Resumed(L, Option<L::Woken>),
}

/// A parked session, registered as the waker of what it waits on.
struct Record<L> {
    slot: Mutex<Slot<L>>,
}

enum Slot<L> {
    /// The wait is being registered.
    Parking,
    Parked(L),
    /// Woken: while it was being parked, or already given a task.
    Woken,
}

/// Parks `parked` in a record of its own, unless what it waits for is
/// already there.
pub(super) fn park<L: Parkable>(mut parked: L) -> Parking<L> {
    let record = Arc::new(Record {
        slot: Mutex::new(Slot::Parking),
    });
    let waker = Waker::from(Arc::clone(&record));
    // Registering may wake at once (a frame queued meanwhile): that wake
    // finds the record still `Parking`, and marks it.
    if let Poll::Ready(woken) = parked.poll_parked(&mut Context::from_waker(&waker)) {
        return Parking::Resumed(parked, woken);
    }
    let mut slot = record.lock();
    if matches!(*slot, Slot::Woken) {
        return Parking::Resumed(parked, None);
    }
    *slot = Slot::Parked(parked);
    Parking::Parked
}

impl<L> Record<L> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Slot<L>> {
        // Nothing that can panic runs under it.
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<L: Parkable> Wake for Record<L> {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // Taken under the lock, resumed after it: resuming may wake this
        // record again, which must not find the lock held.
        let taken = std::mem::replace(&mut *self.lock(), Slot::Woken);
        if let Slot::Parked(parked) = taken {
            parked.resume();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Whether what it waits for is there, and the waker registered.
    type Ready = Arc<Mutex<(bool, Option<Waker>)>>;

    /// Stands in for a session: waits for `ready`, wakes itself while
    /// registering if told to, and counts its resumptions.
    struct Waiting {
        ready: Ready,
        wake_while_registering: bool,
        resumed: Arc<AtomicUsize>,
    }

    impl Parkable for Waiting {
        type Woken = ();

        fn poll_parked(&mut self, cx: &mut Context<'_>) -> Poll<Option<()>> {
            let mut ready = self.ready.lock().unwrap();
            if ready.0 {
                return Poll::Ready(Some(()));
            }
            ready.1 = Some(cx.waker().clone());
            if self.wake_while_registering {
                cx.waker().wake_by_ref();
            }
            Poll::Pending
        }

        fn resume(self) {
            self.resumed.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn waiting(wake_while_registering: bool) -> (Waiting, Ready, Arc<AtomicUsize>) {
        let ready = Arc::new(Mutex::new((false, None)));
        let resumed = Arc::new(AtomicUsize::new(0));
        let parked = Waiting {
            ready: Arc::clone(&ready),
            wake_while_registering,
            resumed: Arc::clone(&resumed),
        };
        (parked, ready, resumed)
    }

    #[test]
    fn what_is_already_there_resumes_at_once_in_the_same_task() {
        let (parked, ready, resumed) = waiting(false);
        ready.lock().unwrap().0 = true;
        assert!(matches!(park(parked), Parking::Resumed(_, Some(()))));
        assert_eq!(resumed.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_wake_while_registering_resumes_in_the_same_task_and_no_other() {
        let (parked, ready, resumed) = waiting(true);
        let Parking::Resumed(_, None) = park(parked) else {
            panic!("a wake while parking must not be lost");
        };
        // The record's waker, still registered, wakes nothing any more.
        let waker = ready.lock().unwrap().1.take().unwrap();
        waker.wake();
        assert_eq!(resumed.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_parked_one_is_resumed_once_however_often_it_is_woken() {
        let (parked, ready, resumed) = waiting(false);
        assert!(matches!(park(parked), Parking::Parked));
        let waker = ready.lock().unwrap().1.take().unwrap();
        assert_eq!(resumed.load(Ordering::SeqCst), 0, "nothing woke it yet");
        waker.wake_by_ref();
        waker.wake_by_ref();
        waker.wake();
        assert_eq!(resumed.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn wakes_from_many_threads_resume_it_once() {
        for _ in 0..200 {
            let (parked, ready, resumed) = waiting(false);
            assert!(matches!(park(parked), Parking::Parked));
            let waker = ready.lock().unwrap().1.take().unwrap();
            std::thread::scope(|s| {
                for _ in 0..4 {
                    let waker = waker.clone();
                    s.spawn(move || waker.wake());
                }
            });
            assert_eq!(resumed.load(Ordering::SeqCst), 1);
        }
    }

    /// What every idle TCP connection holds instead of a task: its record,
    /// with its `Arc`'s two counts (the socket is in it: its link is not
    /// split into halves sharing it). This fails when a change makes it
    /// larger than it is now: 328 B in a test build, 320 B in a release
    /// build, jemalloc's 320-byte class (the next is 384).
    #[test]
    fn a_parked_tcp_sessions_record_stays_within_328_bytes() {
        type TcpSlot = (
            tokio::sync::OwnedSemaphorePermit,
            Option<crate::addresses::AddressSlot>,
        );
        type Tcp = super::super::Live<jim_router::LocalRouter, TcpSlot>;
        let size = std::mem::size_of::<Record<Tcp>>() + 16;
        assert!(size <= 328, "a parked session's record is {size} B");
    }
}
