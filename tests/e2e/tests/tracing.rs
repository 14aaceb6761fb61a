//! Issue 12, tracing: a client request's id and W3C trace reach the control plane with the
//! filter's calls, the control plane's spans are exported over OTLP in that trace, and Envoy's
//! access log line of the request carries both.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use miroir_e2e::{free_port, Fleet, FleetOptions, Spec};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use serde_json::json;

/// Spans received: (trace id as hex, span name, attributes as strings).
type Received = Arc<Mutex<Vec<(String, String, Vec<(String, String)>)>>>;

#[derive(Clone, Default)]
struct Collector {
    received: Received,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut received = self.received.lock().unwrap();
        for resource in request.into_inner().resource_spans {
            for scope in resource.scope_spans {
                for span in scope.spans {
                    let trace: String = span.trace_id.iter().map(|b| format!("{b:02x}")).collect();
                    let attributes = span
                        .attributes
                        .iter()
                        .map(|kv| {
                            let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                                Some(AnyValue::StringValue(s)) => s.clone(),
                                other => format!("{other:?}"),
                            };
                            (kv.key.clone(), value)
                        })
                        .collect();
                    received.push((trace, span.name, attributes));
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// Serves the collector on `port` from a thread of its own for the rest of the test process.
fn serve(port: u16) -> Received {
    let collector = Collector::default();
    let received = collector.received.clone();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().expect("a runtime");
        runtime.block_on(async move {
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(collector))
                .serve(([127, 0, 0, 1], port).into())
                .await
                .expect("the collector serves");
        });
    });
    received
}

#[test]
fn a_clients_trace_continues_in_the_control_planes_spans() {
    let port = free_port();
    let received = serve(port);
    let options = FleetOptions {
        otlp_endpoint: Some(format!("http://127.0.0.1:{port}")),
        ..FleetOptions::default()
    };
    let fleet = Fleet::start(
        "tracing-otlp",
        Spec::new(&[("n0", "g"), ("n1", "g")], 8, 1),
        options,
    );
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let client = fleet
        .client(0)
        .with_header("traceparent", &format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .with_header("x-request-id", "tracing-test-request");
    let (status, body) = client
        .post(
            "/indexes/movies/documents",
            &json!([{"id": 1, "title": "Carol"}]),
        )
        .pair();
    assert_eq!(status, 202, "{body}");
    fleet.eventually_within(
        "the registration's span at the collector",
        Duration::from_secs(60),
        || {
            let received = received.lock().unwrap();
            let found = received.iter().any(|(trace, name, attributes)| {
                trace == trace_id
                    && name == "http_request"
                    && attributes
                        .iter()
                        .any(|(k, v)| k == "request_id" && v == "tracing-test-request")
                    && attributes
                        .iter()
                        .any(|(k, v)| k == "path" && v == "/_miroir/internal/tasks")
            });
            found.then_some(()).ok_or_else(|| {
                format!(
                    "{} spans, none of the registration in trace {trace_id}: {:?}",
                    received.len(),
                    received.iter().take(5).collect::<Vec<_>>()
                )
            })
        },
    );
    // Envoy's access log (its stdout, in its log file here) has the request's line.
    fleet.eventually_within("the access log line", Duration::from_secs(30), || {
        let log = std::fs::read_to_string(fleet.envoy(0).log_path()).unwrap_or_default();
        log.lines()
            .find(|l| {
                l.contains("\"POST /indexes/movies/documents HTTP/1.1\" 202")
                    && l.contains("\"tracing-test-request\"")
                    && l.contains(trace_id)
            })
            .map(|_| ())
            .ok_or_else(|| "no access log line of the write yet".to_string())
    });
}
