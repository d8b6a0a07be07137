//! A request's record while it runs: the [`Pending`] record finished when
//! the request ends, and what counts until its body ends ([`Tally`],
//! [`RequestBytes`]).

use std::{fmt, sync::Arc};

use super::{cells::ShardWriter, Shard, Tables};
use crate::{
    client_id::ClientSlot,
    clock::Stamp,
    extras::Exemplar,
    grpc::GrpcCode,
    labels::{MethodLabel, Status},
    routes::RouteId,
    sync::Ordering,
    ClientId, TraceId,
};

/// A request that has started and is not recorded yet.
pub(crate) struct Pending {
    pub(super) shard: Arc<Shard>,
    pub(super) route: RouteId,
    pub(super) method: MethodLabel,
    pub(super) client: RequestClient,
    /// Whether this is a gRPC call.
    pub(super) grpc: bool,
    /// The trace to keep as an exemplar.
    pub(super) trace: Option<TraceId>,
    pub(super) start: Stamp,
}

/// The client id a request brought, as far as it is known at `call`.
pub(super) enum RequestClient {
    None,
    /// An id with a slot already (or the overflow slot).
    Slot(ClientSlot),
    /// An id the table has not seen, which claims a slot only if it is the
    /// id recorded, so that an id a response's `ClientId` overrides never
    /// takes one.
    New(Box<str>),
}

impl Pending {
    /// Keeps the client id read from the request, recorded unless the
    /// response brings its own.
    #[inline]
    pub(crate) fn set_request_client(&mut self, id: &str) {
        match self.shard.tables.clients.find(id) {
            Some(slot) => self.set_client_slot(slot),
            None => self.client = RequestClient::New(id.into()),
        }
    }

    fn set_client_slot(&mut self, slot: ClientSlot) {
        self.client = RequestClient::Slot(slot);
    }

    /// A counter of this request's body bytes.
    pub(crate) fn request_bytes(&self) -> RequestBytes {
        RequestBytes {
            shard: self.shard.clone(),
            route: self.route,
            method: self.method,
            bytes: 0,
        }
    }

    /// Keeps the request's trace id, for its exemplar.
    #[inline]
    pub(crate) fn set_trace(&mut self, trace: Option<TraceId>) {
        self.trace = trace;
    }

    /// Marks the request as a gRPC call, recorded with its gRPC status at
    /// the end of its body, or as not one.
    pub(crate) fn set_grpc(&mut self, grpc: bool) {
        self.grpc = grpc;
    }

    /// Whether the request is a gRPC call.
    #[inline]
    pub(crate) fn is_grpc(&self) -> bool {
        self.grpc
    }

    /// Takes the response's client id, if it has one, in place of the
    /// request's: for a request recorded later than its response head.
    pub(crate) fn set_response_client(&mut self, id: Option<&ClientId>) {
        if let Some(id) = id {
            let slot = self.shard.tables.clients.slot(id.as_str());
            self.set_client_slot(slot);
        }
    }

    /// Records a request whose answer never came: 499 (`CANCELLED` for a
    /// gRPC call) when it was abandoned, 500 (`UNKNOWN`) when user code
    /// panicked or its body failed.
    pub(crate) fn finish_unanswered(self, abandoned: bool) {
        match (self.grpc, abandoned) {
            (true, true) => self.finish_grpc(GrpcCode::CANCELLED),
            (true, false) => self.finish_grpc(GrpcCode::UNKNOWN),
            (false, true) => self.finish(Status::CLIENT_CLOSED_REQUEST, None),
            (false, false) => self.finish(Status::INTERNAL_SERVER_ERROR, None),
        }
    }

    /// Records a gRPC call with its status code: in the CTMS families with
    /// the code's HTTP equivalent, and in the gRPC family.
    pub(crate) fn finish_grpc(self, code: GrpcCode) {
        let status = Status::new(code.http_status()).unwrap_or(Status::INTERNAL_SERVER_ERROR);
        self.record(status, None, Some(code));
    }

    /// Records the request with `status`, and the response's client id if
    /// it has one (else the request's).
    #[inline]
    pub(crate) fn finish(self, status: Status, response_client: Option<&ClientId>) {
        self.record(status, response_client, None);
    }

    #[inline]
    fn record(self, status: Status, response_client: Option<&ClientId>, grpc: Option<GrpcCode>) {
        let tables = &*self.shard.tables;
        let elapsed_ns = tables.clock.elapsed_ns(self.start);
        let client = match response_client {
            Some(id) => Some(tables.clients.slot(id.as_str())),
            None => match &self.client {
                RequestClient::New(id) => Some(tables.clients.slot(id)),
                RequestClient::Slot(slot) => Some(*slot),
                RequestClient::None => None,
            },
        };
        // The shard of the thread recording, which need not be the one
        // the request started on.
        let place = tables.place();
        let Some(cells) = tables
            .directory
            .cells(self.route, self.method, status.family(), place)
        else {
            return;
        };
        let bounds = &tables.bounds_ns;
        let bucket = bounds
            .iter()
            .position(|&bound| elapsed_ns <= bound)
            .unwrap_or(bounds.len());
        let slots = tables.clients.slots();
        cells.add(status, bucket, elapsed_ns, client.map(|slot| (slot, slots)));
        if let Some(code) = grpc {
            cells.add_grpc(code);
        }
        if tables.extras {
            add_extras(tables, &cells, status, bucket, elapsed_ns, self.trace);
        }
    }
}

/// The bytes of one request's body, added to its (route, method) when the
/// body is dropped.
pub(crate) struct RequestBytes {
    shard: Arc<Shard>,
    route: RouteId,
    method: MethodLabel,
    bytes: u64,
}

impl RequestBytes {
    /// Counts `bytes` read in a frame of the request body.
    #[inline]
    pub(crate) fn read(&mut self, bytes: usize) {
        self.bytes += bytes as u64;
    }
}

impl Drop for RequestBytes {
    fn drop(&mut self) {
        if let Some(extras) = self.shard.tables.directory.extras(self.route, self.method) {
            extras
                .request_bytes
                .fetch_add(self.bytes, Ordering::Relaxed);
        }
    }
}

impl fmt::Debug for RequestBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestBytes")
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

/// What is counted from a request's arrival to the end of its response
/// body, whenever the request is recorded: the in-flight gauge and the
/// response bytes. Dropping it ends the count, so it is exact however the
/// request ends (answered, failed, panicked, abandoned).
pub(crate) struct Tally {
    shard: Arc<Shard>,
    route: RouteId,
    method: MethodLabel,
    in_flight: bool,
    /// The response bytes sent so far, when they are counted.
    bytes: Option<u64>,
}

impl Tally {
    pub(super) fn new(shard: &Arc<Shard>, route: RouteId, method: MethodLabel) -> Self {
        let tables = &*shard.tables;
        if tables.options.in_flight {
            if let Some(extras) = tables.directory.extras(route, method) {
                extras.in_flight.fetch_add(1, Ordering::Relaxed);
            }
        }
        Self {
            shard: shard.clone(),
            route,
            method,
            in_flight: tables.options.in_flight,
            bytes: tables.options.response_bytes.then_some(0),
        }
    }

    /// Counts `bytes` sent in a frame of the response body.
    #[inline]
    pub(crate) fn sent(&mut self, bytes: usize) {
        if let Some(sent) = &mut self.bytes {
            *sent += bytes as u64;
        }
    }
}

impl Drop for Tally {
    fn drop(&mut self) {
        // Runs in unwinds too: atomic updates only, nothing that panics.
        let Some(extras) = self.shard.tables.directory.extras(self.route, self.method) else {
            return;
        };
        if self.in_flight {
            extras.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
        if let Some(bytes) = self.bytes {
            extras.response_bytes.fetch_add(bytes, Ordering::Relaxed);
        }
    }
}

impl fmt::Debug for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tally")
            .field("route", &self.route)
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Pending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pending")
            .field("route", &self.route)
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

/// Counts a request in the native histogram and keeps its exemplar, for a
/// layer that keeps either. Out of line: the common path only tests a flag.
#[cold]
#[inline(never)]
fn add_extras(
    tables: &Tables,
    cells: &ShardWriter<'_>,
    status: Status,
    bucket: usize,
    elapsed_ns: u64,
    trace: Option<TraceId>,
) {
    let exemplar = trace.map(|trace_id| Exemplar {
        trace_id,
        value: elapsed_ns as f64 / 1e9,
        timestamp: unix_seconds(),
    });
    if tables.per_code {
        // The code's own histogram carries the native buckets and the
        // bucket exemplar; the counter exemplar stays per code as always.
        cells.add_per_code(status, bucket, elapsed_ns, tables.native.as_ref(), exemplar);
        if let Some(exemplar) = exemplar {
            cells.add_exemplar(status, bucket, exemplar);
        }
        return;
    }
    if let Some(layout) = &tables.native {
        cells.add_native(layout, elapsed_ns);
    }
    if let Some(exemplar) = exemplar {
        cells.add_exemplar(status, bucket, exemplar);
    }
}

/// Seconds since the Unix epoch, for an exemplar's timestamp.
fn unix_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64())
}
