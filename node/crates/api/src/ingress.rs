//! What every request goes through before the gRPC services: connection bookkeeping and
//! the screening of `backstop.v1.Backstop` request messages.
//!
//! [`Ingress`] wraps tonic's routes. For each request it marks the request in flight on its
//! connection (see [`crate::conn`]) until the response body ends, and makes tonic's
//! `Request::remote_addr` work with the server's own connection type. For the unary
//! requests of `backstop.v1.Backstop` it reads the request body (within the read timeout
//! and [`MAX_REQUEST_BYTES`]) and [`screen`]s it: exactly one uncompressed gRPC message
//! that decodes as the method's request type, with every enum field holding a value of
//! its enum. A request that fails gets INVALID_ARGUMENT (as `api.proto` promises for
//! malformed requests) instead of the INTERNAL that tonic's codec answers, and never
//! reaches the service; a message above the size limit keeps tonic's OUT_OF_RANGE. The
//! body is then handed on unchanged.
//!
//! The check of enum values reads the wire format itself: prost decodes an `int32` enum
//! from a varint of up to 64 bits and keeps the low 32, so `2^32 + 6` would otherwise
//! arrive as 6.

use std::convert::Infallible;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use backstop_proto::v1 as pb;
use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use tonic::Status;
use tonic::body::Body;
use tonic::codegen::Service;
use tonic::codegen::http;
use tonic::service::Routes;

use crate::conn::ConnInfo;
use crate::metrics::API_SERVER;
use crate::server::MAX_REQUEST_BYTES;

/// Path prefix of the Backstop service's methods.
const SERVICE_PREFIX: &str = "/backstop.v1.Backstop/";

/// The unary methods of `backstop.v1.Backstop` whose requests are screened (the request
/// types are in [`check_message`]).
pub const METHODS: [&str; 17] = [
    "GetStatus",
    "ListPeers",
    "ListChains",
    "ListMembers",
    "ListIncidents",
    "GetIncident",
    "ListSignals",
    "ListBreakers",
    "StreamEvents",
    "GetStressReport",
    "ListProposals",
    "RaiseSignal",
    "RequestUnfreeze",
    "RequestUnpause",
    "RequestAlertClear",
    "ProposeGovernance",
    "ApproveProposal",
];

/// Length of the gRPC message header (flag and big-endian length).
const HEADER: usize = 5;

/// Enum fields of the request messages: (method, field number, field name, check of the
/// value on the wire, read as a 64-bit two's complement integer).
type EnumField = (
    &'static str,
    u32,
    &'static str,
    fn(i64) -> Result<(), Status>,
);

/// Every enum field of the request messages (a unit test checks the list against the
/// service's descriptor).
const ENUM_FIELDS: &[EnumField] = &[("RaiseSignal", 1, "kind", check_signal_kind)];

/// A `SignalKind` value (UNSPECIFIED included: the service refuses it with the same
/// message).
fn check_signal_kind(wire: i64) -> Result<(), Status> {
    match i32::try_from(wire) {
        Ok(v) if pb::SignalKind::try_from(v).is_ok() => Ok(()),
        _ => Err(crate::server::not_a_signal_kind(wire)),
    }
}

/// The routes, behind connection bookkeeping and request screening.
#[derive(Debug, Clone)]
pub struct Ingress {
    routes: Routes,
    read_timeout: Duration,
}

impl Ingress {
    /// Wraps `routes`; a request message must arrive within `read_timeout`.
    pub fn new(routes: Routes, read_timeout: Duration) -> Self {
        Self {
            routes,
            read_timeout,
        }
    }
}

impl Service<http::Request<Body>> for Ingress {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Service::<http::Request<Body>>::poll_ready(&mut self.routes, cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        let conn = request.extensions().get::<ConnInfo>().cloned();
        let guard = conn.map(|c| {
            request.extensions_mut().insert(c.tcp);
            c.state.begin_request()
        });
        let mut routes = self.routes.clone();
        let read_timeout = self.read_timeout;
        Box::pin(async move {
            let request = match screen_request(request, read_timeout).await {
                Ok(request) => request,
                Err(status) => return Ok(status.into_http()),
            };
            poll_fn(|cx| Service::<http::Request<Body>>::poll_ready(&mut routes, cx)).await?;
            let response = routes.call(request).await?;
            Ok(match guard {
                // The request stays in flight until its response body ends or is dropped.
                Some(guard) => response.map(|body| {
                    Body::new(body.map_frame(move |frame| {
                        let _in_flight = &guard;
                        frame
                    }))
                }),
                None => response,
            })
        })
    }
}

/// Reads and screens the message of a `backstop.v1.Backstop` request; other requests
/// pass untouched.
async fn screen_request(
    request: http::Request<Body>,
    read_timeout: Duration,
) -> Result<http::Request<Body>, Status> {
    let Some(method) = request.uri().path().strip_prefix(SERVICE_PREFIX) else {
        return Ok(request);
    };
    if !is_method(method) {
        // tonic answers UNIMPLEMENTED.
        return Ok(request);
    }
    if request
        .headers()
        .get("grpc-encoding")
        .is_some_and(|v| v.as_bytes() != b"identity")
    {
        // Compression is not enabled: tonic answers UNIMPLEMENTED.
        return Ok(request);
    }
    let method = method.to_owned();
    let (parts, body) = request.into_parts();
    let bytes = tokio::time::timeout(read_timeout, read_message(body))
        .await
        .map_err(|_| {
            Status::deadline_exceeded(format!(
                "the request message did not arrive within {} s",
                read_timeout.as_secs_f64()
            ))
        })??;
    if let Err(status) = screen(&method, &bytes) {
        API_SERVER.invalid_requests.inc();
        tracing::debug!(
            method = %crate::logsafe::Escaped(&method),
            code = ?status.code(),
            error = %crate::logsafe::Escaped(status.message()),
            "malformed request refused"
        );
        return Err(status);
    }
    Ok(http::Request::from_parts(
        parts,
        Body::new(Full::new(bytes)),
    ))
}

/// Reads a request body of one message: stops early, with the answer tonic would give or
/// INVALID_ARGUMENT, once the body is known to be too large or to hold a second message.
async fn read_message(mut body: Body) -> Result<Bytes, Status> {
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| Status::cancelled(format!("reading the request failed: {e}")))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        buf.extend_from_slice(&data);
        if buf.len() >= HEADER {
            let declared = declared_len(&buf);
            check_header(buf[0], declared)?;
            if buf.len() > HEADER + declared {
                return Err(Status::invalid_argument(
                    "a unary request carries exactly one message",
                ));
            }
        }
    }
    Ok(buf.freeze())
}

/// The message length of a gRPC message header.
fn declared_len(frame: &[u8]) -> usize {
    let len = u32::from_be_bytes([frame[1], frame[2], frame[3], frame[4]]);
    usize::try_from(len).unwrap_or(usize::MAX)
}

/// Checks the flag and the length of a gRPC message header.
fn check_header(flag: u8, declared: usize) -> Result<(), Status> {
    match flag {
        0 => {}
        1 => {
            return Err(Status::invalid_argument(
                "compressed message without a grpc-encoding",
            ));
        }
        f => {
            return Err(Status::invalid_argument(format!(
                "invalid compression flag {f} (valid flags are 0 and 1)"
            )));
        }
    }
    if declared > MAX_REQUEST_BYTES {
        // Same answer as tonic's own limit.
        return Err(Status::out_of_range(format!(
            "Error, decoded message length too large: found {declared} bytes, the limit is: {MAX_REQUEST_BYTES} bytes"
        )));
    }
    Ok(())
}

/// True for the methods of `backstop.v1.Backstop`.
fn is_method(method: &str) -> bool {
    check_message(method, &[]).is_some()
}

/// Checks the body of a request to `method` (a method of `backstop.v1.Backstop`): one
/// uncompressed gRPC message of at most [`MAX_REQUEST_BYTES`] that [`check_message`]
/// accepts. Errors are INVALID_ARGUMENT, or OUT_OF_RANGE for a message declared larger
/// than the limit.
pub fn screen(method: &str, body: &[u8]) -> Result<(), Status> {
    if body.is_empty() {
        return Err(Status::invalid_argument("missing request message"));
    }
    if body.len() < HEADER {
        return Err(Status::invalid_argument("truncated gRPC message header"));
    }
    let declared = declared_len(body);
    check_header(body[0], declared)?;
    let message = &body[HEADER..];
    if message.len() < declared {
        return Err(Status::invalid_argument(format!(
            "truncated request message: {} of {declared} bytes",
            message.len()
        )));
    }
    if message.len() > declared {
        return Err(Status::invalid_argument(
            "a unary request carries exactly one message",
        ));
    }
    check_message(method, message).unwrap_or(Ok(()))
}

/// Decodes `message` as the request type of `method`; `None` for an unknown method.
pub fn check_message(method: &str, message: &[u8]) -> Option<Result<(), Status>> {
    let decoded = match method {
        "GetStatus" => decode::<pb::GetStatusRequest>(message),
        "ListPeers" => decode::<pb::ListPeersRequest>(message),
        "ListChains" => decode::<pb::ListChainsRequest>(message),
        "ListMembers" => decode::<pb::ListMembersRequest>(message),
        "ListIncidents" => decode::<pb::ListIncidentsRequest>(message),
        "GetIncident" => decode::<pb::GetIncidentRequest>(message),
        "ListSignals" => decode::<pb::ListSignalsRequest>(message),
        "ListBreakers" => decode::<pb::ListBreakersRequest>(message),
        "StreamEvents" => decode::<pb::StreamEventsRequest>(message),
        "GetStressReport" => decode::<pb::GetStressReportRequest>(message),
        "RaiseSignal" => decode::<pb::RaiseSignalRequest>(message),
        "RequestUnfreeze" => decode::<pb::RequestUnfreezeRequest>(message),
        "RequestUnpause" => decode::<pb::RequestUnpauseRequest>(message),
        "RequestAlertClear" => decode::<pb::RequestAlertClearRequest>(message),
        "ListProposals" => decode::<pb::ListProposalsRequest>(message),
        "ProposeGovernance" => decode::<pb::ProposeGovernanceRequest>(message),
        "ApproveProposal" => decode::<pb::ApproveProposalRequest>(message),
        _ => return None,
    };
    Some(decoded.and_then(|()| {
        ENUM_FIELDS
            .iter()
            .filter(|(m, ..)| *m == method)
            .try_for_each(|&(_, number, _, check)| check_enum(message, number, check))
    }))
}

/// Decodes a message of type `M`.
fn decode<M: prost::Message + Default>(message: &[u8]) -> Result<(), Status> {
    M::decode(message)
        .map(drop)
        .map_err(|e| Status::invalid_argument(format!("invalid request message: {e}")))
}

/// Checks every occurrence of enum field `number` of an already decoded message.
fn check_enum(
    message: &[u8],
    number: u32,
    check: fn(i64) -> Result<(), Status>,
) -> Result<(), Status> {
    let malformed = || Status::invalid_argument("invalid request message");
    let mut rest = message;
    let mut depth = 0_u32;
    while !rest.is_empty() {
        let key = varint(&mut rest).ok_or_else(malformed)?;
        let field = key >> 3;
        match key & 7 {
            0 => {
                let value = varint(&mut rest).ok_or_else(malformed)?;
                if depth == 0 && field == u64::from(number) {
                    check(i64::from_ne_bytes(value.to_ne_bytes()))?;
                }
            }
            1 => rest = rest.get(8..).ok_or_else(malformed)?,
            2 => {
                let len = varint(&mut rest).ok_or_else(malformed)?;
                let len = usize::try_from(len).map_err(|_| malformed())?;
                rest = rest.get(len..).ok_or_else(malformed)?;
            }
            3 => depth = depth.saturating_add(1),
            4 => depth = depth.checked_sub(1).ok_or_else(malformed)?,
            5 => rest = rest.get(4..).ok_or_else(malformed)?,
            _ => return Err(malformed()),
        }
    }
    Ok(())
}

/// Reads a base-128 varint (at most 10 bytes).
fn varint(buf: &mut &[u8]) -> Option<u64> {
    let mut value = 0_u64;
    for i in 0..10 {
        let (&byte, rest) = buf.split_first()?;
        *buf = rest;
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use prost::Message;
    use tonic::Code;

    use super::*;

    /// Every method of the service with a valid request message.
    fn valid_requests() -> Vec<(&'static str, Vec<u8>)> {
        let id = format!("0x{}:1", "0a".repeat(32));
        let subject = format!("0x{}", "5a".repeat(32));
        vec![
            ("GetStatus", pb::GetStatusRequest {}.encode_to_vec()),
            ("ListPeers", pb::ListPeersRequest {}.encode_to_vec()),
            ("ListChains", pb::ListChainsRequest {}.encode_to_vec()),
            ("ListMembers", pb::ListMembersRequest {}.encode_to_vec()),
            (
                "ListIncidents",
                pb::ListIncidentsRequest { open_only: true }.encode_to_vec(),
            ),
            ("GetIncident", pb::GetIncidentRequest { id }.encode_to_vec()),
            ("ListSignals", pb::ListSignalsRequest {}.encode_to_vec()),
            (
                "ListBreakers",
                pb::ListBreakersRequest { active_only: true }.encode_to_vec(),
            ),
            ("StreamEvents", pb::StreamEventsRequest {}.encode_to_vec()),
            (
                "GetStressReport",
                pb::GetStressReportRequest {}.encode_to_vec(),
            ),
            (
                "RaiseSignal",
                pb::RaiseSignalRequest {
                    kind: pb::SignalKind::Operator as i32,
                    subject: subject.clone(),
                    reason: "drill".into(),
                }
                .encode_to_vec(),
            ),
            (
                "RequestUnfreeze",
                pb::RequestUnfreezeRequest {
                    chain_id: Some(31337),
                    member: subject.clone(),
                }
                .encode_to_vec(),
            ),
            (
                "RequestUnpause",
                pb::RequestUnpauseRequest { chain_id: 31337 }.encode_to_vec(),
            ),
            (
                "RequestAlertClear",
                pb::RequestAlertClearRequest {
                    chain_id: 31337,
                    subject: subject.clone(),
                }
                .encode_to_vec(),
            ),
            ("ListProposals", pb::ListProposalsRequest {}.encode_to_vec()),
            (
                "ProposeGovernance",
                pb::ProposeGovernanceRequest {
                    chain_id: None,
                    change: Some(pb::propose_governance_request::Change::RotateGuardians(
                        pb::RotateGuardiansChange {
                            guardians: vec![format!("0x{}", "a1".repeat(20))],
                            threshold: 1,
                            pause_threshold: 1,
                        },
                    )),
                }
                .encode_to_vec(),
            ),
            (
                "ApproveProposal",
                pb::ApproveProposalRequest {
                    id: subject.clone(),
                    digest: subject,
                }
                .encode_to_vec(),
            ),
        ]
    }

    fn framed(message: &[u8]) -> Vec<u8> {
        let mut out = vec![0];
        out.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
        out.extend_from_slice(message);
        out
    }

    fn push_varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push(u8::try_from(v & 0x7f).unwrap() | 0x80);
            v >>= 7;
        }
        out.push(u8::try_from(v).unwrap());
    }

    #[test]
    fn every_method_of_the_service_is_screened_with_its_enum_fields() {
        let set = prost_types::FileDescriptorSet::decode(pb::FILE_DESCRIPTOR_SET).unwrap();
        let file = set
            .file
            .iter()
            .find(|f| f.package() == "backstop.v1")
            .unwrap();
        let service = file
            .service
            .iter()
            .find(|s| s.name() == "Backstop")
            .unwrap();
        let valid = valid_requests();
        assert_eq!(service.method.len(), valid.len());
        for m in &service.method {
            assert!(is_method(m.name()), "{} is not screened", m.name());
            assert!(valid.iter().any(|(name, _)| *name == m.name()));
            let input = m.input_type().trim_start_matches(".backstop.v1.");
            let message = file
                .message_type
                .iter()
                .find(|t| t.name() == input)
                .unwrap();
            for f in &message.field {
                if f.r#type() == prost_types::field_descriptor_proto::Type::Enum {
                    assert!(
                        ENUM_FIELDS
                            .iter()
                            .any(|&(method, number, name, _)| method == m.name()
                                && i32::try_from(number).unwrap() == f.number()
                                && name == f.name()),
                        "enum field {}.{} is not checked",
                        input,
                        f.name()
                    );
                }
            }
        }
        assert!(!is_method("Nope"));
    }

    #[test]
    fn malformed_bodies_are_invalid_arguments() {
        for (method, message) in valid_requests() {
            assert!(screen(method, &framed(&message)).is_ok(), "{method}");
        }
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("GetStatus", vec![]),
            ("GetStatus", vec![0, 0, 0]),
            ("GetIncident", vec![0, 0, 0, 0, 9, 0x0a, 3]),
            ("GetIncident", framed(&[0x0a, 0x02, 0xff, 0xfe])),
            ("ListBreakers", framed(&[0xff, 0xff, 0xff])),
            ("ListBreakers", [framed(&[]), framed(&[])].concat()),
            ("GetStatus", vec![1, 0, 0, 0, 0]),
            ("GetStatus", vec![7, 0, 0, 0, 0]),
        ];
        for (method, body) in cases {
            let err = screen(method, &body).unwrap_err();
            assert_eq!(
                err.code(),
                Code::InvalidArgument,
                "{method} {body:?}: {err:?}"
            );
        }
        let err = screen("GetStatus", &[0, 0xff, 0xff, 0xff, 0xff]).unwrap_err();
        assert_eq!(err.code(), Code::OutOfRange);
    }

    #[test]
    fn enum_values_beyond_int32_or_unknown_are_refused() {
        let subject = format!("0x{}", "5a".repeat(32));
        let with_kind = |kind: u64| {
            let mut m = vec![0x08];
            push_varint(&mut m, kind);
            m.extend(
                pb::RaiseSignalRequest {
                    kind: 0,
                    subject: subject.clone(),
                    reason: String::new(),
                }
                .encode_to_vec(),
            );
            m
        };
        // prost alone truncates 2^32 + 6 to 6 (Operator).
        let truncated = pb::RaiseSignalRequest::decode(&with_kind((1 << 32) + 6)[..]).unwrap();
        assert_eq!(truncated.kind, 6);
        let err = screen("RaiseSignal", &framed(&with_kind((1 << 32) + 6))).unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert_eq!(
            err.message(),
            crate::server::not_a_signal_kind((1 << 32) + 6).message()
        );
        let err = screen("RaiseSignal", &framed(&with_kind(99))).unwrap_err();
        assert_eq!(
            err.message(),
            format!(
                "kind: 99 is not a signal kind (1..={}, see SignalKind)",
                crate::model::SignalKind::ALL.len()
            )
        );
        // -1 as an int32 is a ten-byte varint.
        let err = screen("RaiseSignal", &framed(&with_kind(u64::MAX))).unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(err.message().starts_with("kind: -1 is not"), "{err:?}");
        // A later occurrence wins in protobuf: every occurrence is checked.
        let mut twice = with_kind(6);
        twice.push(0x08);
        push_varint(&mut twice, (1 << 40) + 1);
        assert!(screen("RaiseSignal", &framed(&twice)).is_err());
        assert!(screen("RaiseSignal", &framed(&with_kind(6))).is_ok());
        assert!(screen("RaiseSignal", &framed(&with_kind(0))).is_ok());
        // A field 1 inside a group of an unknown field (9) is not `kind`.
        let mut grouped = vec![0x4b, 0x08, 0x63, 0x4c];
        grouped.extend(with_kind(6));
        assert!(screen("RaiseSignal", &framed(&grouped)).is_ok());
    }

    /// xorshift64*: deterministic, no dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            usize::try_from(self.next() % u64::try_from(n.max(1)).unwrap()).unwrap()
        }

        fn byte(&mut self) -> u8 {
            self.next().to_le_bytes()[0]
        }
    }

    /// A mutation of `input`: bit flips, byte changes, insertions, deletions, splices of
    /// interesting values, truncation.
    fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
        let mut out = input.to_vec();
        for _ in 0..=rng.below(4) {
            match rng.below(7) {
                0 if !out.is_empty() => {
                    let i = rng.below(out.len());
                    out[i] ^= 1 << rng.below(8);
                }
                1 if !out.is_empty() => {
                    let i = rng.below(out.len());
                    out[i] = rng.byte();
                }
                2 => {
                    let i = rng.below(out.len() + 1);
                    out.insert(i, rng.byte());
                }
                3 if !out.is_empty() => {
                    let i = rng.below(out.len());
                    out.remove(i);
                }
                4 => {
                    let i = rng.below(out.len() + 1);
                    let splice: &[u8] = match rng.below(4) {
                        0 => &[0x08, 0x86, 0x80, 0x80, 0x80, 0x10],
                        1 => &[0xff; 10],
                        2 => &[0x0a, 0x7f],
                        _ => &[0x13, 0x08, 0x01],
                    };
                    out.splice(i..i, splice.iter().copied());
                }
                5 => out.truncate(rng.below(out.len() + 1)),
                _ => {
                    let n = rng.below(16);
                    out.extend((0..n).map(|_| rng.byte()));
                }
            }
        }
        out
    }

    #[test]
    fn fuzz_request_decoding_never_panics_and_answers_ok_or_invalid_argument() {
        let valid = valid_requests();
        let mut rng = Rng(0x5eed_bac5_70b0_0001);
        let (mut ok, mut invalid, mut out_of_range) = (0_u32, 0_u32, 0_u32);
        for round in 0..40_000_u32 {
            let (method, message) = &valid[rng.below(valid.len())];
            let body = match round % 4 {
                // A mutated message in a well-formed frame.
                0 | 1 => framed(&mutate(&mut rng, message)),
                // A mutated frame.
                2 => mutate(&mut rng, &framed(message)),
                // Random bytes in a well-formed frame.
                _ => framed(&(0..rng.below(64)).map(|_| rng.byte()).collect::<Vec<_>>()),
            };
            match screen(method, &body) {
                Ok(()) => ok += 1,
                Err(e) if e.code() == Code::InvalidArgument => invalid += 1,
                // Only a frame whose header declares more than the limit.
                Err(e) if e.code() == Code::OutOfRange => {
                    assert!(body.len() >= HEADER && declared_len(&body) > MAX_REQUEST_BYTES);
                    out_of_range += 1;
                }
                Err(e) => panic!("{method} {body:?}: unexpected {e:?}"),
            }
        }
        assert!(ok > 1_000 && invalid > 1_000, "{ok} ok, {invalid} invalid");
        assert!(out_of_range < 2_000, "{out_of_range}");
    }
}
