//! A fault-injecting HTTP proxy between the SDK clients and the emulator.
//!
//! Tests point their [`SdkConfig`](aws_config::SdkConfig) at [`FaultProxy::endpoint`]; the
//! proxy forwards each request to the emulator, except that a request drawn (from a seeded
//! generator, at the rate its [`Rule`] gives) is answered with one of the faults AWS really
//! produces:
//!
//! | [`Fault`] | what the client sees | did the request take effect? |
//! |---|---|---|
//! | `Throttle` | the service's throttling error: DynamoDB `ProvisionedThroughputExceededException` or `ThrottlingException` (400), S3 `503 SlowDown`, SQS `ThrottlingException` (400) | no |
//! | `InternalError` | 500 with the service's own error code | no |
//! | `Unavailable` | 503 `ServiceUnavailable` | no |
//! | `ResetBefore` | the connection closed before any response | no |
//! | `ResetAfter` | the connection closed before any response | **yes**: forwarded first |
//! | `Delay` | no response until [`Plan::delay`] (past the client's timeout) | **yes** |
//! | `Truncate` | the status and headers, then half the body and a closed connection | **yes** |
//!
//! The last three are the dangerous ones: the caller's retry meets what its own first try
//! did (a conditional write's 412 or `ConditionalCheckFailedException`, a second copy of a
//! message). Every injected fault is logged ([`FaultProxy::injected`]) so a test asserts the
//! faults it meant to meet really happened.
//!
//! The proxy listens on 127.0.0.1, on a port the kernel picks, and stops when dropped.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// The AWS service a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Service {
    DynamoDb,
    S3,
    Sqs,
}

/// What the proxy does instead of (or after) forwarding a request; see the module's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    Throttle,
    InternalError,
    Unavailable,
    ResetBefore,
    ResetAfter,
    Delay,
    Truncate,
}

impl Fault {
    /// Every kind, in the order of the module's table.
    pub const ALL: [Fault; 7] = [
        Fault::Throttle,
        Fault::InternalError,
        Fault::Unavailable,
        Fault::ResetBefore,
        Fault::ResetAfter,
        Fault::Delay,
        Fault::Truncate,
    ];
}

/// One AWS call as the proxy names it: the service and the operation (`Scan`,
/// `ReceiveMessage`, `PutObject`, ...).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Call {
    pub service: Service,
    pub operation: String,
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}.{}", self.service, self.operation)
    }
}

/// The fault rate for the calls it matches: the first matching rule of a [`Plan`] applies.
#[derive(Debug, Clone)]
pub struct Rule {
    /// `None` matches every service.
    pub service: Option<Service>,
    /// `None` matches every operation.
    pub operation: Option<String>,
    /// The probability that a matching call is faulted, 0 to 1.
    pub rate: f64,
}

/// What to inject, and how often.
#[derive(Debug, Clone)]
pub struct Plan {
    pub seed: u64,
    pub rules: Vec<Rule>,
    /// The relative weight of each kind of fault among the faulted calls; a kind that cannot
    /// apply to a response (`Truncate` of an empty body) becomes `ResetAfter`.
    pub weights: Vec<(Fault, u32)>,
    /// How long a `Delay` holds the response: longer than the clients' timeouts.
    pub delay: Duration,
}

impl Plan {
    /// Every call of every service faulted at `rate`, every kind equally likely.
    pub fn uniform(seed: u64, rate: f64, delay: Duration) -> Self {
        Plan {
            seed,
            rules: vec![Rule {
                service: None,
                operation: None,
                rate,
            }],
            weights: Fault::ALL.iter().map(|&f| (f, 1)).collect(),
            delay,
        }
    }

    fn rate(&self, call: &Call) -> f64 {
        self.rules
            .iter()
            .find(|r| {
                r.service.is_none_or(|s| s == call.service)
                    && r.operation.as_deref().is_none_or(|o| o == call.operation)
            })
            .map_or(0.0, |r| r.rate)
    }
}

/// A fault the proxy injected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Injected {
    pub call: Call,
    pub fault: Fault,
}

struct State {
    plan: Plan,
    rng: Mutex<fastrand::Rng>,
    active: AtomicBool,
    /// Every call seen while active, by name.
    seen: Mutex<BTreeMap<Call, u64>>,
    injected: Mutex<Vec<Injected>>,
    upstream: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

/// The running proxy; stops (with every connection it holds) when dropped.
pub struct FaultProxy {
    endpoint: String,
    state: Arc<State>,
    server: tokio::task::JoinHandle<()>,
}

impl fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultProxy")
            .field("endpoint", &self.endpoint)
            .field("upstream", &self.state.upstream)
            .finish_non_exhaustive()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.server.abort();
    }
}

type ProxyBody = BoxBody<Bytes, std::io::Error>;

/// Why the proxy closes a connection without answering: hyper drops the connection when the
/// service fails.
#[derive(Debug)]
struct Reset(Fault);

impl fmt::Display for Reset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "injected {:?}", self.0)
    }
}

impl std::error::Error for Reset {}

impl FaultProxy {
    /// Starts a proxy for `upstream` (an `http://host:port` endpoint), inactive: it forwards
    /// everything until [`FaultProxy::set_active`] turns the plan on. Call it within a Tokio
    /// runtime, which runs the proxy.
    pub async fn start(upstream: &str, plan: Plan) -> anyhow::Result<FaultProxy> {
        let upstream = upstream.trim_end_matches('/').to_owned();
        anyhow::ensure!(
            upstream.starts_with("http://"),
            "the fault proxy forwards plain HTTP only, not {upstream:?}"
        );
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the fault proxy")?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let state = Arc::new(State {
            rng: Mutex::new(fastrand::Rng::with_seed(plan.seed)),
            plan,
            active: AtomicBool::new(false),
            seen: Mutex::default(),
            injected: Mutex::default(),
            upstream,
            client: Client::builder(TokioExecutor::new()).build_http(),
        });
        let shared = Arc::clone(&state);
        let server = tokio::spawn(async move {
            // Connections live in this set, so aborting the server drops them all.
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        let state = Arc::clone(&shared);
                        connections.spawn(async move {
                            let service = hyper::service::service_fn(move |req| {
                                handle(Arc::clone(&state), req)
                            });
                            // A connection ends in an error whenever a fault resets it.
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        });
                    }
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        });
        Ok(FaultProxy {
            endpoint,
            state,
            server,
        })
    }

    /// The URL to give the SDK as its endpoint.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// An [`SdkConfig`](aws_config::SdkConfig) for this proxy in `region`, whose clients give
    /// up on a response after `read_timeout` (shorter than [`Plan::delay`], so a delay is met
    /// as the timeout it stands for).
    pub async fn sdk_config(&self, region: &str, read_timeout: Duration) -> aws_config::SdkConfig {
        crate::sdk_config(&self.endpoint, region)
            .await
            .into_builder()
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(Duration::from_millis(3100))
                    .read_timeout(read_timeout)
                    .build(),
            )
            .build()
    }

    /// Turns fault injection on or off (forwarding continues either way).
    pub fn set_active(&self, active: bool) {
        self.state.active.store(active, Ordering::SeqCst);
    }

    /// Every fault injected so far, in order.
    pub fn injected(&self) -> Vec<Injected> {
        lock(&self.state.injected).clone()
    }

    /// How many calls of each name the proxy saw while active.
    pub fn seen(&self) -> BTreeMap<Call, u64> {
        lock(&self.state.seen).clone()
    }

    /// Faults injected, by kind.
    pub fn counts(&self) -> BTreeMap<Fault, u64> {
        let mut counts = BTreeMap::new();
        for i in lock(&self.state.injected).iter() {
            *counts.entry(i.fault).or_default() += 1;
        }
        counts
    }

    /// A table of calls seen and faults injected per service, for a test's output.
    pub fn report(&self) -> String {
        let seen = self.seen();
        let injected = self.injected();
        let mut out = String::from("service   calls  faulted  by kind\n");
        for service in [Service::DynamoDb, Service::S3, Service::Sqs] {
            let calls: u64 = seen
                .iter()
                .filter(|(c, _)| c.service == service)
                .map(|(_, n)| n)
                .sum();
            let mut kinds: BTreeMap<Fault, u64> = BTreeMap::new();
            for i in injected.iter().filter(|i| i.call.service == service) {
                *kinds.entry(i.fault).or_default() += 1;
            }
            let faulted: u64 = kinds.values().sum();
            out.push_str(&format!(
                "{:<9} {calls:>5} {faulted:>8}  {kinds:?}\n",
                format!("{service:?}")
            ));
        }
        out
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Result<Response<ProxyBody>, Reset> {
    let call = name(&req);
    let fault = if state.active.load(Ordering::SeqCst) {
        *lock(&state.seen).entry(call.clone()).or_default() += 1;
        draw(&state, &call)
    } else {
        None
    };
    let fault = match (fault, req.method() == hyper::Method::HEAD) {
        // A HEAD response has no body to cut.
        (Some(Fault::Truncate), true) => Some(Fault::ResetAfter),
        (f, _) => f,
    };
    if let Some(fault) = fault {
        lock(&state.injected).push(Injected {
            call: call.clone(),
            fault,
        });
    }
    match fault {
        Some(Fault::ResetBefore) => return Err(Reset(Fault::ResetBefore)),
        Some(f @ (Fault::Throttle | Fault::InternalError | Fault::Unavailable)) => {
            let throttle_kind = lock(&state.rng).bool();
            return Ok(error_response(call.service, f, throttle_kind, &req));
        }
        _ => {}
    }
    let Ok(response) = forward(&state, req).await else {
        // The emulator did not answer: the client sees a reset, which it is.
        return Err(Reset(Fault::ResetBefore));
    };
    match fault {
        Some(Fault::ResetAfter) => Err(Reset(Fault::ResetAfter)),
        Some(Fault::Delay) => {
            tokio::time::sleep(state.plan.delay).await;
            Ok(response.map(|b| Full::new(b).map_err(never).boxed()))
        }
        Some(Fault::Truncate) => {
            let (parts, body) = response.into_parts();
            if body.len() < 2 {
                return Err(Reset(Fault::Truncate));
            }
            let half = body.slice(..body.len() / 2);
            let mut response = Response::from_parts(parts, Truncated(Some(half)).boxed());
            response
                .headers_mut()
                .insert(hyper::header::CONTENT_LENGTH, body.len().into());
            Ok(response)
        }
        _ => Ok(response.map(|b| Full::new(b).map_err(never).boxed())),
    }
}

fn never(n: Infallible) -> std::io::Error {
    match n {}
}

fn draw(state: &State, call: &Call) -> Option<Fault> {
    let rate = state.plan.rate(call);
    let mut rng = lock(&state.rng);
    if rate <= 0.0 || rng.f64() >= rate {
        return None;
    }
    let total: u32 = state.plan.weights.iter().map(|(_, w)| w).sum();
    if total == 0 {
        return None;
    }
    let mut pick = rng.u32(..total);
    for &(fault, weight) in &state.plan.weights {
        if pick < weight {
            return Some(fault);
        }
        pick -= weight;
    }
    None
}

/// Sends `req` to the emulator and reads the whole response.
async fn forward(state: &State, req: Request<Incoming>) -> anyhow::Result<Response<Bytes>> {
    let (mut parts, body) = req.into_parts();
    let body = body.collect().await?.to_bytes();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    parts.uri = format!("{}{path}", state.upstream).parse()?;
    let response = state
        .client
        .request(Request::from_parts(parts, Full::new(body)))
        .await?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(Response::from_parts(parts, body))
}

/// The service and operation of a request: DynamoDB and SQS (JSON protocol) name it in
/// `X-Amz-Target`; S3 by method, path and query.
fn name(req: &Request<Incoming>) -> Call {
    if let Some(target) = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
    {
        let (prefix, operation) = target.split_once('.').unwrap_or(("", target));
        let service = if prefix.starts_with("AmazonSQS") {
            Service::Sqs
        } else {
            Service::DynamoDb
        };
        return Call {
            service,
            operation: operation.to_owned(),
        };
    }
    let path = req.uri().path().trim_start_matches('/');
    let has_key = path.split_once('/').is_some_and(|(_, key)| !key.is_empty());
    let query = req.uri().query().unwrap_or("");
    let sub = query
        .split('&')
        .map(|kv| kv.split('=').next().unwrap_or(""))
        .find(|k| !k.is_empty() && *k != "x-id")
        .unwrap_or("");
    let method = req.method().as_str();
    let operation = match (method, has_key, sub) {
        ("GET", true, _) => "GetObject".to_owned(),
        ("PUT", true, _) if req.headers().contains_key("x-amz-copy-source") => {
            "CopyObject".to_owned()
        }
        ("PUT", true, "retention") => "PutObjectRetention".to_owned(),
        ("PUT", true, _) => "PutObject".to_owned(),
        ("HEAD", true, _) => "HeadObject".to_owned(),
        ("DELETE", true, _) => "DeleteObject".to_owned(),
        ("GET", false, "list-type") => "ListObjectsV2".to_owned(),
        ("POST", false, "delete") => "DeleteObjects".to_owned(),
        (m, _, s) => format!("{m} ?{s}"),
    };
    Call {
        service: Service::S3,
        operation,
    }
}

/// The error each service answers with for `fault` (one of the three error kinds).
fn error_response<B>(
    service: Service,
    fault: Fault,
    first_kind: bool,
    req: &Request<B>,
) -> Response<ProxyBody> {
    let (status, code) = match (service, fault) {
        (Service::DynamoDb, Fault::Throttle) if first_kind => (
            StatusCode::BAD_REQUEST,
            "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
        ),
        (Service::DynamoDb, Fault::Throttle) => (
            StatusCode::BAD_REQUEST,
            "com.amazon.coral.availability#ThrottlingException",
        ),
        (Service::DynamoDb, Fault::InternalError) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "com.amazonaws.dynamodb.v20120810#InternalServerError",
        ),
        (Service::Sqs, Fault::Throttle) => (
            StatusCode::BAD_REQUEST,
            "com.amazonaws.sqs#ThrottlingException",
        ),
        (Service::Sqs, Fault::InternalError) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "com.amazonaws.sqs#InternalFailure",
        ),
        (Service::DynamoDb | Service::Sqs, _) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "com.amazon.coral.availability#ServiceUnavailableException",
        ),
        (Service::S3, Fault::Throttle) => (StatusCode::SERVICE_UNAVAILABLE, "SlowDown"),
        (Service::S3, Fault::InternalError) => (StatusCode::INTERNAL_SERVER_ERROR, "InternalError"),
        (Service::S3, _) => (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable"),
    };
    let (content_type, body) = match service {
        Service::S3 => (
            "application/xml",
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\
                 <Message>injected by the fault proxy</Message>\
                 <RequestId>FAULTPROXY</RequestId></Error>"
            ),
        ),
        Service::DynamoDb | Service::Sqs => (
            "application/x-amz-json-1.0",
            format!("{{\"__type\":\"{code}\",\"message\":\"injected by the fault proxy\"}}"),
        ),
    };
    let body = if req.method() == hyper::Method::HEAD {
        Bytes::new()
    } else {
        Bytes::from(body)
    };
    let mut response = Response::new(Full::new(body).map_err(never).boxed());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    headers.insert(
        "x-amzn-requestid",
        hyper::header::HeaderValue::from_static("FAULTPROXY"),
    );
    if service == Service::Sqs {
        let short = code.rsplit('#').next().unwrap_or(code);
        if let Ok(v) = hyper::header::HeaderValue::from_str(&format!("{short};Sender")) {
            headers.insert("x-amzn-query-error", v);
        }
    }
    response
}

/// A body that yields its first half and then fails, so the connection is cut short of its
/// `Content-Length`.
struct Truncated(Option<Bytes>);

impl Body for Truncated {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        Poll::Ready(Some(match self.0.take() {
            Some(half) => Ok(Frame::data(half)),
            None => Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "injected truncation",
            )),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_matching_rule_sets_the_rate() {
        let plan = Plan {
            seed: 1,
            rules: vec![
                Rule {
                    service: Some(Service::S3),
                    operation: Some("PutObject".into()),
                    rate: 0.5,
                },
                Rule {
                    service: Some(Service::S3),
                    operation: None,
                    rate: 0.1,
                },
            ],
            weights: vec![(Fault::Throttle, 1)],
            delay: Duration::from_secs(1),
        };
        let call = |service, op: &str| Call {
            service,
            operation: op.into(),
        };
        assert_eq!(plan.rate(&call(Service::S3, "PutObject")), 0.5);
        assert_eq!(plan.rate(&call(Service::S3, "GetObject")), 0.1);
        assert_eq!(plan.rate(&call(Service::DynamoDb, "Scan")), 0.0);
    }
}
