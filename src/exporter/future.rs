//! The response future of the scrape endpoint.

use std::{
    convert::Infallible,
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use http::Response;

use super::{
    busy, respond,
    share::{Outcome, Turn},
    MetricsBody, MetricsExporter, Wanted,
};

/// Response future of [`MetricsExporter`].
///
/// Ready at its first poll unless another scrape of the same exporter is
/// rendering: then it waits for that render and answers with its bytes.
pub struct ScrapeFuture {
    state: State,
}

enum State {
    /// Answered without a render (405).
    Answered(Option<Response<MetricsBody>>),
    Scrape {
        exporter: MetricsExporter,
        wanted: Wanted,
        turn: Turn,
    },
}

impl ScrapeFuture {
    pub(super) fn answered(response: Response<MetricsBody>) -> Self {
        Self {
            state: State::Answered(Some(response)),
        }
    }

    pub(super) fn new(exporter: MetricsExporter, wanted: Wanted) -> Self {
        Self {
            state: State::Scrape {
                exporter,
                wanted,
                turn: Turn::New,
            },
        }
    }
}

impl Future for ScrapeFuture {
    type Output = Result<Response<MetricsBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // No field is pinned: the future is `Unpin`.
        match &mut self.get_mut().state {
            State::Answered(response) => Poll::Ready(Ok(response.take().unwrap_or_else(|| {
                super::plain(
                    http::StatusCode::INTERNAL_SERVER_ERROR,
                    "scrape future polled after completion\n".to_owned(),
                )
            }))),
            State::Scrape {
                exporter,
                wanted,
                turn,
            } => {
                let share = exporter.share.clone();
                let max_waiting = exporter.max_waiting;
                let format = wanted.format;
                match share.poll(turn, max_waiting, cx, || exporter.render_shared(format)) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(Outcome::Busy) => {
                        exporter.answered(format, super::stats::Outcome::Busy);
                        Poll::Ready(Ok(busy()))
                    }
                    Poll::Ready(Outcome::Ready(rendered)) => {
                        Poll::Ready(Ok(respond(exporter, &rendered, *wanted)))
                    }
                }
            }
        }
    }
}

impl Drop for ScrapeFuture {
    fn drop(&mut self) {
        if let State::Scrape { exporter, turn, .. } = &self.state {
            exporter.share.abandon(turn);
        }
    }
}

impl fmt::Debug for ScrapeFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Answered(_) => "answered",
            State::Scrape {
                turn: Turn::Waiting(_),
                ..
            } => "waiting",
            State::Scrape { .. } => "scrape",
        };
        f.debug_struct("ScrapeFuture")
            .field("state", &state)
            .finish()
    }
}
