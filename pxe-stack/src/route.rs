//! Dynamic HTTP routes: the contract between the HTTP server and the crates that generate content.
//!
//! A [`Handler`] sees a fully read request (bodies are small: iPXE scripts, Ignition configs,
//! hardware inventories) and answers with a complete response. It depends only on the `http` and
//! `bytes` crates, so `ignition-serve` and `introspect` implement it without pulling in a server.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};

use crate::host::Mac;

/// The future a [`Handler`] returns.
pub type HandlerFuture<'a> = Pin<Box<dyn Future<Output = Response<Bytes>> + Send + 'a>>;

/// One request to a dynamic route, with what the server knows about the host behind it.
#[derive(Debug)]
pub struct RouteRequest {
    /// The request, its body read in full (within the route's size limit).
    pub request: Request<Bytes>,
    /// The peer's socket address.
    pub peer: SocketAddr,
    /// The peer's MAC address, from the DHCP lease table, when known.
    pub mac: Option<Mac>,
}

/// A dynamic route's logic.
pub trait Handler: Send + Sync + 'static {
    /// Answer one request.
    fn handle(&self, req: RouteRequest) -> HandlerFuture<'_>;
}

/// A request's query string, decoded: the one parser every route and crate uses.
///
/// Values are percent-decoded (`+` is a space) and must be UTF-8; a key without `=` has an
/// empty value. A repeated key is refused rather than resolved: a request that says two things
/// about itself (two `mac`s, say) is not trusted with either.
///
/// ```
/// use pxe_stack::route::{Params, ParamsError};
/// let p = Params::parse("mac=52-54-00-12-34-56&stage=image%2Dwritten&x")?;
/// assert_eq!(p.get("mac"), Some("52-54-00-12-34-56"));
/// assert_eq!(p.get("stage"), Some("image-written"));
/// assert_eq!(p.get("x"), Some(""));
/// assert_eq!(p.get("y"), None);
/// assert!(matches!(Params::parse("mac=a&mac=a"), Err(ParamsError::Repeated { .. })));
/// # Ok::<(), ParamsError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(Vec<(String, String)>);

/// A query string that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParamsError {
    /// A key appears twice.
    #[error("parameter {key:?} given twice")]
    Repeated {
        /// The key.
        key: String,
    },
    /// A percent-decoded key or value is not UTF-8.
    #[error("query is not utf-8")]
    NotUtf8,
}

impl Params {
    /// Reads a query string (without the `?`).
    pub fn parse(query: &str) -> Result<Params, ParamsError> {
        fn decode(s: &str) -> Result<String, ParamsError> {
            let plus = s.replace('+', " ");
            percent_encoding::percent_decode_str(&plus)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| ParamsError::NotUtf8)
        }
        let mut pairs: Vec<(String, String)> = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let key = decode(k)?;
            if pairs.iter().any(|(seen, _)| *seen == key) {
                return Err(ParamsError::Repeated { key });
            }
            pairs.push((key, decode(v)?));
        }
        Ok(Params(pairs))
    }

    /// Reads a request's query string (none is empty).
    pub fn of<B>(request: &Request<B>) -> Result<Params, ParamsError> {
        Params::parse(request.uri().query().unwrap_or(""))
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find_map(|(k, v)| (k == key).then_some(v.as_str()))
    }

    /// Every key and value, in request order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// A response builder for the common cases, so handlers answer consistently.
pub mod reply {
    use super::*;

    /// `200 OK` with a body and content type.
    pub fn ok(content_type: &str, body: impl Into<Bytes>) -> Response<Bytes> {
        with_status(StatusCode::OK, content_type, body)
    }

    /// A response with any status, a body and a content type.
    pub fn with_status(
        status: StatusCode,
        content_type: &str,
        body: impl Into<Bytes>,
    ) -> Response<Bytes> {
        let mut resp = Response::new(body.into());
        *resp.status_mut() = status;
        if let Ok(v) = header::HeaderValue::from_str(content_type) {
            resp.headers_mut().insert(header::CONTENT_TYPE, v);
        }
        resp
    }

    /// A plain-text error with the given status; `message` must not carry secrets.
    pub fn error(status: StatusCode, message: &str) -> Response<Bytes> {
        let mut body = message.to_owned();
        body.push('\n');
        with_status(status, "text/plain; charset=utf-8", body)
    }

    /// `503 Service Unavailable` with `Retry-After`: content that is not ready yet.
    ///
    /// Ignition retries on 5xx and gives up on 4xx, so "not yet" must be a 503.
    pub fn not_ready(retry_after: Duration, message: &str) -> Response<Bytes> {
        let mut resp = error(StatusCode::SERVICE_UNAVAILABLE, message);
        let secs = retry_after.as_secs().max(1).to_string();
        if let Ok(v) = header::HeaderValue::from_str(&secs) {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}

/// Any `Fn(RouteRequest) -> Future<Response>` closure is a handler.
impl<F, Fut> Handler for F
where
    F: Fn(RouteRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Bytes>> + Send + 'static,
{
    fn handle(&self, req: RouteRequest) -> HandlerFuture<'_> {
        Box::pin(self(req))
    }
}
