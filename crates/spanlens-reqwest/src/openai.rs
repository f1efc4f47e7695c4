//! async-openai through a middleware client (feature `async-openai`).
//!
//! async-openai's `Client::with_http_client` takes only a plain `reqwest::Client`, which no
//! middleware can wrap. Its `middleware` feature, though, lets `Client::with_http_service` take
//! any tower service of its request factories: [`MiddlewareService`] is such a service that sends
//! through a [`ClientWithMiddleware`], so [`crate::SpanlensMiddleware`] (and any retry middleware
//! in that client) sees every request async-openai makes, streamed ones included.

use async_openai::config::Config;
use async_openai::error::OpenAIError;
use async_openai::middleware::HttpRequestFactory;
use reqwest_middleware::ClientWithMiddleware;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A tower service for `async_openai::Client::with_http_service` that sends every request
/// through a middleware client.
#[derive(Clone, Debug)]
pub struct MiddlewareService {
    client: ClientWithMiddleware,
}

impl MiddlewareService {
    /// Sends through `client` (build it with [`crate::SpanlensMiddleware`] in its chain).
    pub fn new(client: ClientWithMiddleware) -> MiddlewareService {
        MiddlewareService { client }
    }
}

impl tower_service::Service<HttpRequestFactory> for MiddlewareService {
    type Response = reqwest::Response;
    type Error = OpenAIError;
    type Future = Pin<Box<dyn Future<Output = Result<reqwest::Response, OpenAIError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), OpenAIError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, factory: HttpRequestFactory) -> Self::Future {
        let client = self.client.clone();
        Box::pin(async move {
            let request = factory.build().await?;
            client.execute(request).await.map_err(|e| match e {
                reqwest_middleware::Error::Reqwest(r) => OpenAIError::Reqwest(r),
                reqwest_middleware::Error::Middleware(m) => OpenAIError::Boxed(m.into()),
            })
        })
    }
}

/// An async-openai client that sends through `http` (a client with [`crate::SpanlensMiddleware`]).
///
/// async-openai's built-in retry layer is not part of this path: put `reqwest_retry`'s middleware
/// before `SpanlensMiddleware` in `http` to retry, and each attempt is recorded.
pub fn client<C: Config>(config: C, http: ClientWithMiddleware) -> async_openai::Client<C> {
    async_openai::Client::with_config(config).with_http_service(MiddlewareService::new(http))
}
