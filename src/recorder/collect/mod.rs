//! The read side: a scrape sums the shards' cells into `MetricFamily`
//! values.
//!
//! A series is listed when it has counts or was pre-initialised. Series are
//! listed in the order the registry sorts them in — by label values, taken
//! in label-name order — so that its sort finds nothing to do:
//!
//! - `requests_total`: method, template, status code;
//! - `requests_duration_seconds`: method, template, status family;
//! - `api_requests_total`: client id, then as the duration histogram;
//! - `grpc_requests_total`: gRPC code name, gRPC method, gRPC service;
//! - `requests_in_flight`, `response_body_bytes_total`,
//!   `request_body_bytes_total`: method, template.
//!
//! The method and template orders are fixed at build ([`Order`]); client
//! ids are ranked at each scrape, since new ones arrive.

mod clients;
mod duration;

use std::{borrow::Cow, sync::atomic::Ordering};

use prometheus::proto::{self, MetricFamily};

use super::{
    cells::{Cells, MethodExtras},
    exemplars, Recorder, Tables,
};
use crate::{
    extras::{self, FamilyExtras, MetricExtras},
    grpc::{labels as grpc_labels, GrpcCode},
    labels::{CodeSet, MethodLabel, Status, StatusFamily},
    routes::{RouteId, Routes},
    schema::{family_value, status_code_value, Family, Profile},
};

/// Route ids and method labels in the order of their label values.
#[derive(Clone)]
pub(super) struct Order {
    routes: Box<[RouteId]>,
    methods: [MethodLabel; MethodLabel::COUNT],
}

impl Order {
    /// Computed at build; at a scrape, computed again if templates have
    /// been learned from requests since.
    pub(super) fn new(routes: &Routes, profile: Profile) -> Self {
        let mut by_template: Box<[RouteId]> = routes.ids().collect();
        by_template.sort_by(|&a, &b| routes.template(a).cmp(routes.template(b)));
        Self {
            routes: by_template,
            methods: profile.methods_in_value_order(),
        }
    }
}

/// One (route, method, family) group as a scrape sees it.
struct GroupView<'a> {
    method: MethodLabel,
    method_rank: usize,
    route: RouteId,
    route_rank: usize,
    family: StatusFamily,
    /// The cells of every shard that recorded in the group.
    cells: &'a [&'a Cells],
    /// The codes pre-initialised for the group.
    listed: CodeSet,
    /// Whether the known clients' API counters are pre-initialised.
    clients_listed: bool,
}

impl GroupView<'_> {
    /// The codes to list: those pre-initialised and those any shard counted.
    fn used_codes(&self) -> CodeSet {
        self.cells
            .iter()
            .fold(self.listed, |codes, cells| codes.union(cells.used()))
    }
}

impl Recorder {
    /// Routes and methods in label order, learned templates included.
    fn order(&self) -> Cow<'_, Order> {
        if self.tables.routes.learned_any() {
            Cow::Owned(Order::new(&self.tables.routes, self.tables.options.profile))
        } else {
            Cow::Borrowed(&self.order)
        }
    }

    /// One family, summed over the shards.
    pub(super) fn collect(&self, family: Family) -> MetricFamily {
        // Exemplars and native histograms, for a scrape that can show them.
        let tables = &*self.tables;
        let wants_extras =
            (tables.options.exemplars.is_some() || tables.native.is_some()) && extras::capturing();
        let mut deposit = (wants_extras && matches!(family, Family::Total | Family::Duration))
            .then(|| FamilyExtras::new(self.name(family), tables.options.profile.labels(family)));
        let metrics = match family {
            Family::Total => self.collect_total(deposit.as_mut()),
            Family::Duration if tables.per_code => self.collect_duration_per_code(deposit.as_mut()),
            Family::Duration => self.collect_duration(deposit.as_mut()),
            Family::Clients => self.collect_clients(),
            Family::Unmatched => vec![counter(Vec::new(), self.unmatched())],
            Family::Grpc => self.collect_grpc(),
            Family::InFlight => {
                self.collect_extras(|extras| gauge_value(extras.in_flight.load(Ordering::Relaxed)))
            }
            Family::ResponseBytes => self.collect_extras(|extras| {
                counter_value(extras.response_bytes.load(Ordering::Relaxed))
            }),
            Family::RequestBytes => self.collect_extras(|extras| {
                counter_value(extras.request_bytes.load(Ordering::Relaxed))
            }),
        };
        let mut collected = MetricFamily::default();
        collected.set_name(self.name(family));
        collected.set_help(tables.options.profile.help(family).to_owned());
        collected.set_field_type(family.metric_type());
        collected.set_metric(metrics);
        if let Some(deposit) = deposit {
            extras::deposit(deposit);
        }
        collected
    }

    fn unmatched(&self) -> u64 {
        self.shards
            .iter()
            .map(|shard| shard.unmatched.load(Ordering::Relaxed))
            .sum()
    }

    /// The gRPC family: every code of every gRPC route, pre-initialised,
    /// and of every other route once a gRPC call has been recorded on it,
    /// summed over the route's groups and shards.
    fn collect_grpc(&self) -> Vec<proto::Metric> {
        let tables = &*self.tables;
        // (method, service, counts by code) of the routes listed, in label
        // order.
        let mut routes: Vec<(&str, &str, [u64; GrpcCode::COUNT])> = tables
            .routes
            .ids()
            .filter_map(|route| {
                let preinit = tables
                    .grpc_routes
                    .get(route.index())
                    .copied()
                    .unwrap_or(false);
                if !preinit && !tables.directory.route_in_use(route) {
                    return None;
                }
                let mut counts = [0; GrpcCode::COUNT];
                let groups = MethodLabel::ALL
                    .iter()
                    .flat_map(|&m| StatusFamily::all().map(move |f| (m, f)))
                    .filter_map(|(m, f)| tables.directory.group(route, m, f));
                let cells = groups.flat_map(|group| group.cells());
                for cells in cells.filter(|cells| cells.has_grpc()) {
                    for code in GrpcCode::all() {
                        counts[code.index()] += cells.grpc(code);
                    }
                }
                if !preinit && counts.iter().all(|&count| count == 0) {
                    return None;
                }
                let (service, method) = grpc_labels(tables.routes.template(route));
                Some((method, service, counts))
            })
            .collect();
        routes.sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        let mut codes: Vec<GrpcCode> = GrpcCode::all().collect();
        let profile = tables.options.profile;
        let names = profile.names();
        codes.sort_unstable_by_key(|&code| profile.grpc_code_value(code));
        let mut metrics = Vec::with_capacity(codes.len() * routes.len());
        for &code in &codes {
            for &(method, service, ref counts) in &routes {
                let labels = vec![
                    label(names.grpc_code, profile.grpc_code_value(code)),
                    label(names.grpc_method, method),
                    label(names.grpc_service, service),
                ];
                metrics.push(counter(labels, counts[code.index()]));
            }
        }
        metrics
    }

    /// A (method, path_template) family read from the extras: listed when
    /// nonzero, when the route lists the method (pre-initialised), and once
    /// a request with the method has been recorded, so that a series that
    /// has appeared stays.
    fn collect_extras(
        &self,
        value: impl Fn(&MethodExtras) -> (proto::Metric, bool),
    ) -> Vec<proto::Metric> {
        let tables = &*self.tables;
        let mut metrics = Vec::new();
        let order = self.order();
        for &method in &order.methods {
            for &route in order.routes.iter() {
                let listed = tables
                    .preinit
                    .get(route.index())
                    .and_then(Option::as_deref)
                    .is_some_and(|preinit| preinit.lists_method(method));
                let (mut metric, nonzero) = match tables.directory.extras_in_use(route, method) {
                    Some(extras) => value(extras),
                    None if listed => value(&MethodExtras::default()),
                    None => continue,
                };
                if !nonzero && !listed && !tables.directory.method_in_use(route, method) {
                    continue;
                }
                metric.set_label(vec![
                    label(
                        tables.options.profile.names().method,
                        tables.options.profile.method_value(method),
                    ),
                    label(
                        tables.options.profile.names().route,
                        tables.routes.template(route),
                    ),
                ]);
                metrics.push(metric);
            }
        }
        metrics
    }

    /// Calls `visit` for every group with cells or pre-initialised series,
    /// in label order.
    fn for_each_group(&self, order: &Order, mut visit: impl FnMut(&Tables, &GroupView<'_>)) {
        let tables = &*self.tables;
        // Reused across groups: no allocation per group.
        let mut cells: Vec<&Cells> = Vec::with_capacity(self.shards.len());
        for (method_rank, &method) in order.methods.iter().enumerate() {
            for (route_rank, &route) in order.routes.iter().enumerate() {
                let preinit = tables.preinit.get(route.index()).and_then(Option::as_deref);
                if preinit.is_none() && !tables.directory.route_in_use(route) {
                    continue;
                }
                for family in StatusFamily::all() {
                    cells.clear();
                    if let Some(group) = tables.directory.group(route, method, family) {
                        cells.extend(group.cells());
                    }
                    let listed = preinit.map_or_else(CodeSet::default, |p| p.codes(method, family));
                    if cells.is_empty() && listed.is_empty() {
                        continue;
                    }
                    let view = GroupView {
                        method,
                        method_rank,
                        route,
                        route_rank,
                        family,
                        cells: &cells,
                        listed,
                        clients_listed: preinit.is_some_and(|p| p.client_series)
                            && !listed.is_empty(),
                    };
                    visit(tables, &view);
                }
            }
        }
    }

    fn collect_total(&self, mut extras: Option<&mut FamilyExtras>) -> Vec<proto::Metric> {
        let profile = self.tables.options.profile;
        let names = profile.names();
        let mut metrics = Vec::new();
        self.for_each_group(&self.order(), |tables, group| {
            let used = group.used_codes();
            for code in used.iter() {
                let count = group.cells.iter().map(|cells| cells.code(code)).sum();
                let status = Status::in_family(group.family, code);
                let labels = vec![
                    label(names.method, profile.method_value(group.method)),
                    label(names.route, tables.routes.template(group.route)),
                    label(names.status_code, &status_code_value(status)),
                    label(names.status_family, family_value(group.family)),
                ];
                if let Some(extras) = extras.as_deref_mut() {
                    let exemplar = group
                        .cells
                        .iter()
                        .map(|cells| cells.code_exemplar(code))
                        .fold(None, exemplars::latest);
                    let metric = MetricExtras {
                        counter: exemplar,
                        ..MetricExtras::default()
                    };
                    extras.insert(&labels, metric);
                }
                metrics.push(counter(labels, count));
            }
        });
        metrics
    }
}

fn label(name: &str, value: &str) -> proto::LabelPair {
    let mut pair = proto::LabelPair::default();
    pair.set_name(name.to_owned());
    pair.set_value(value.to_owned());
    pair
}

/// A gauge metric without labels yet, and whether it is nonzero.
fn gauge_value(value: i64) -> (proto::Metric, bool) {
    let mut metric = proto::Metric::default();
    let mut gauge = proto::Gauge::default();
    gauge.set_value(value as f64);
    metric.set_gauge(gauge);
    (metric, value != 0)
}

/// A counter metric without labels yet, and whether it is nonzero.
fn counter_value(count: u64) -> (proto::Metric, bool) {
    (counter(Vec::new(), count), count != 0)
}

fn counter(labels: Vec<proto::LabelPair>, count: u64) -> proto::Metric {
    let mut metric = proto::Metric::from_label(labels);
    let mut counter = proto::Counter::default();
    counter.set_value(count as f64);
    metric.set_counter(counter);
    metric
}
