//! Scrapes that arrive while a render is running wait for it and share its
//! bytes, so that memory does not grow with the number of scrapers; past a
//! bound on the waiting ones, a scrape is turned away.
//!
//! One render runs at a time per exporter (and its clones). A scrape that
//! finds none running renders itself, synchronously in its first poll, as
//! a lone scrape always did. A scrape that finds one running waits for it:
//! its answer is at most one render old, which is what it would have got
//! had it arrived a moment earlier.

use std::{
    sync::{Arc, Mutex, MutexGuard},
    task::{Context, Poll, Waker},
};

use super::render::Rendered;

#[derive(Debug, Default)]
struct State {
    /// Whether a render is running.
    rendering: bool,
    /// The number of the latest render started.
    started: u64,
    /// The latest render finished, while scrapes still wait for it.
    latest: Option<(u64, Arc<Rendered>)>,
    /// Scrapes waiting for a render.
    waiting: usize,
    wakers: Vec<Waker>,
}

/// What the scrapes of one exporter share.
#[derive(Debug, Default)]
pub(super) struct Share {
    state: Mutex<State>,
}

/// Where one scrape stands.
#[derive(Debug)]
pub(super) enum Turn {
    /// Not polled yet.
    New,
    /// Waiting for the render with this number.
    Waiting(u64),
    /// Answered.
    Done,
}

/// What a poll of a scrape gives.
pub(super) enum Outcome {
    Ready(Arc<Rendered>),
    /// Too many scrapes wait already.
    Busy,
}

impl Share {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while the lock is held leaves the state consistent (every
        // update is a single assignment), so poisoning is ignored.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Moves a scrape on: renders with `render` if no render is running,
    /// waits for the running one otherwise (or is turned away when
    /// `max_waiting` scrapes wait already).
    pub(super) fn poll(
        self: &Arc<Self>,
        turn: &mut Turn,
        max_waiting: usize,
        cx: &mut Context<'_>,
        render: impl FnOnce() -> Rendered,
    ) -> Poll<Outcome> {
        let mut state = self.lock();
        match *turn {
            Turn::Done => {
                // Polled after completion: render again rather than panic.
            }
            Turn::Waiting(number) => {
                if let Some((finished, rendered)) = &state.latest {
                    if *finished >= number {
                        let rendered = rendered.clone();
                        *turn = Turn::Done;
                        state.stop_waiting();
                        return Poll::Ready(Outcome::Ready(rendered));
                    }
                }
                if state.rendering {
                    state.wakers.push(cx.waker().clone());
                    return Poll::Pending;
                }
                // The render waited for was lost (its collector panicked):
                // this scrape renders instead.
                *turn = Turn::Done;
                state.stop_waiting();
            }
            Turn::New if state.rendering => {
                if state.waiting >= max_waiting {
                    *turn = Turn::Done;
                    return Poll::Ready(Outcome::Busy);
                }
                state.waiting += 1;
                *turn = Turn::Waiting(state.started);
                state.wakers.push(cx.waker().clone());
                return Poll::Pending;
            }
            Turn::New => *turn = Turn::Done,
        }
        state.rendering = true;
        state.started += 1;
        let number = state.started;
        drop(state);

        let mut running = Running {
            share: self,
            finished: None,
        };
        let rendered = Arc::new(render());
        running.finished = Some((number, rendered.clone()));
        drop(running);
        Poll::Ready(Outcome::Ready(rendered))
    }

    /// A scrape dropped before it was answered stops waiting.
    pub(super) fn abandon(&self, turn: &Turn) {
        if let Turn::Waiting(_) = turn {
            self.lock().stop_waiting();
        }
    }

    #[cfg(test)]
    #[cfg(not(loom))]
    pub(super) fn holds_a_render(&self) -> bool {
        self.lock().latest.is_some()
    }
}

impl State {
    fn stop_waiting(&mut self) {
        self.waiting -= 1;
        if self.waiting == 0 && !self.rendering {
            // Nobody needs the bytes any more: free them now.
            self.latest = None;
        }
    }
}

/// Marks the end of a render, finished or lost in a panic, and wakes the
/// scrapes waiting for it.
struct Running<'a> {
    share: &'a Share,
    finished: Option<(u64, Arc<Rendered>)>,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let mut state = self.share.lock();
        state.rendering = false;
        state.latest = if state.waiting > 0 {
            self.finished.take()
        } else {
            None
        };
        for waker in state.wakers.drain(..) {
            waker.wake();
        }
    }
}
