//! The response body handed to the caller: the provider's bytes, unchanged and unbuffered,
//! watched on their way through so the span learns the usage when the body ends.

use crate::response::Observer;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use spanlens::record::LlmCall;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A body that records its call when it ends, fails or is dropped.
pub(crate) struct ObservedBody {
    inner: reqwest::Body,
    /// `None` once the call has been recorded.
    watch: Option<(LlmCall, Observer)>,
}

impl ObservedBody {
    pub(crate) fn new(inner: reqwest::Body, call: LlmCall, observer: Observer) -> ObservedBody {
        ObservedBody {
            inner,
            watch: Some((call, observer)),
        }
    }

    /// Records what was seen and ends the span (`complete`: the body was read to its end).
    fn close(&mut self, complete: bool) {
        if let Some((call, observer)) = self.watch.take() {
            observer.finish(&call, complete);
            call.finish();
        }
    }
}

impl Body for ObservedBody {
    type Data = Bytes;
    type Error = reqwest::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, reqwest::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(data), Some((call, observer))) = (frame.data_ref(), &mut this.watch) {
                    observer.feed(data, call);
                }
            }
            Poll::Ready(Some(Err(e))) => {
                if let Some((call, _)) = &this.watch {
                    call.error_typed(
                        Some("body_error"),
                        format!("reading the answer failed: {e}"),
                    );
                }
                this.close(false);
            }
            Poll::Ready(None) => this.close(true),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for ObservedBody {
    fn drop(&mut self) {
        // Dropped before its end (the caller stopped reading a stream): what was seen is kept.
        self.close(false);
    }
}
