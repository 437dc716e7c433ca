//! Futures that are usually ready at once: polled once before anything
//! is set up to wait for them (a timer, a clock reading).

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

/// The future's output if it is ready on its first poll (which registers
/// the task's waker as any poll does), or `None` if it has to wait.
pub(crate) async fn at_once<F: Future + ?Sized>(future: Pin<&mut F>) -> Option<F::Output> {
    let mut future = future;
    std::future::poll_fn(|cx| match future.as_mut().poll(cx) {
        Poll::Ready(output) => Poll::Ready(Some(output)),
        Poll::Pending => Poll::Ready(None),
    })
    .await
}
