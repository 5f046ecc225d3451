//! `gitlab.agent.grpctool.test.Testing`: a service agentk can host so tunnel behaviour (unary,
//! streaming, long calls, errors with details) is checkable without Kubernetes. Modelled on upstream's
//! grpctool test service.

use std::pin::Pin;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use crate::proto::grpctool::test::testing_server::{Testing, TestingServer};
use crate::proto::grpctool::test::{HoldRequest, Request as TestRequest, Response as TestResponse};

/// `s1` values starting with this prefix make the service fail with the code that follows
/// (e.g. `error:5` → NotFound), carrying the rest of the text as the message and a detail.
pub const ERROR_PREFIX: &str = "error:";

/// The service implementation.
#[derive(Debug, Clone, Copy, Default)]
pub struct TestingService;

impl TestingService {
    pub fn server() -> TestingServer<Self> {
        TestingServer::new(Self)
    }
}

fn maybe_error(s1: &str) -> Result<(), Status> {
    let Some(rest) = s1.strip_prefix(ERROR_PREFIX) else {
        return Ok(());
    };
    let (code, msg) = rest.split_once(':').unwrap_or((rest, ""));
    let code = code.parse::<i32>().map(tonic::Code::from_i32).unwrap_or(tonic::Code::Unknown);
    let details = crate::proto::google::rpc::Status {
        code: code as i32,
        message: msg.to_owned(),
        details: vec![prost_types::Any {
            type_url: "type.googleapis.com/kasim.test.Detail".into(),
            value: msg.as_bytes().to_vec(),
        }],
    };
    Err(Status::with_details(code, msg, prost::Message::encode_to_vec(&details).into()))
}

type RespStream = Pin<Box<dyn Stream<Item = Result<TestResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Testing for TestingService {
    async fn request_response(&self, req: Request<TestRequest>) -> Result<Response<TestResponse>, Status> {
        let echo = req.metadata().get("x-echo").cloned();
        let r = req.into_inner();
        maybe_error(&r.s1)?;
        let mut resp = Response::new(TestResponse { s1: r.s1, payload: r.payload, seq: 0 });
        if let Some(v) = echo {
            resp.metadata_mut().insert("x-echo", v);
        }
        Ok(resp)
    }

    type StreamingRequestResponseStream = RespStream;

    async fn streaming_request_response(
        &self,
        req: Request<Streaming<TestRequest>>,
    ) -> Result<Response<RespStream>, Status> {
        let mut inbound = req.into_inner();
        let out = async_stream(move |tx| async move {
            let mut seq = 0;
            while let Some(m) = inbound.next().await {
                let m = match m {
                    Ok(m) => m,
                    Err(s) => {
                        let _ = tx.send(Err(s)).await;
                        return;
                    }
                };
                if let Err(s) = maybe_error(&m.s1) {
                    let _ = tx.send(Err(s)).await;
                    return;
                }
                seq += 1;
                if tx.send(Ok(TestResponse { s1: m.s1, payload: m.payload, seq })).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(out))
    }

    async fn hold(&self, req: Request<HoldRequest>) -> Result<Response<TestResponse>, Status> {
        let millis =
            u64::try_from(req.into_inner().hold_millis).map_err(|_| Status::invalid_argument("hold_millis < 0"))?;
        tokio::time::sleep(Duration::from_millis(millis)).await;
        Ok(Response::new(TestResponse { s1: "held".into(), payload: vec![], seq: 0 }))
    }
}

fn async_stream<F, Fut>(f: F) -> RespStream
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<TestResponse, Status>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(f(tx));
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}
