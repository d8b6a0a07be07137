//! `api_requests_total`: each group's per-client counts merged over the
//! shards, ranked by client id, and labelled.

use prometheus::proto;

use super::{counter, label, Order};
use crate::{
    client_id::ClientSlot,
    labels::StatusFamily,
    recorder::{Recorder, Tables},
    schema::family_value,
};

impl Recorder {
    /// `api_requests_total`: each group's counts merged over the shards,
    /// ranked by client id, method, route and family, and labelled.
    pub(super) fn collect_clients(&self) -> Vec<proto::Metric> {
        // One order for the walk and the labels: a template learned
        // meanwhile must not shift the ranks.
        let order = self.order();
        let mut series = self.client_series(&order);
        let (named, rank) = self.client_ranks();
        // A slot claimed after the ranks were taken has none yet: it is
        // listed at the next scrape.
        let rank_of = |slot: ClientSlot| rank.get(slot.index()).copied().unwrap_or(usize::MAX);
        series.retain(|s| rank_of(s.slot) != usize::MAX);
        series.sort_unstable_by_key(|s| (rank_of(s.slot), s.method_rank, s.route_rank, s.family));

        let tables = &*self.tables;
        let profile = tables.options.profile;
        let names = profile.names();
        series
            .into_iter()
            .map(|s| {
                let labels = vec![
                    label(names.client_id, named[rank_of(s.slot)].1),
                    label(
                        names.method,
                        profile.method_value(order.methods[s.method_rank]),
                    ),
                    label(
                        names.route,
                        tables.routes.template(order.routes[s.route_rank]),
                    ),
                    label(names.status_family, family_value(s.family)),
                ];
                counter(labels, s.count)
            })
            .collect()
    }

    /// Every client series with a count or listed at zero, each group's
    /// counts summed over its shards.
    fn client_series(&self, order: &Order) -> Vec<ClientSeries> {
        let mut series = Vec::new();
        // (slot, count) of one group, over every shard.
        let mut counts: Vec<(ClientSlot, u64)> = Vec::new();
        self.for_each_group(order, |tables, group| {
            counts.clear();
            for cells in group.cells {
                counts.extend(
                    cells
                        .clients()
                        .filter_map(|(index, count)| Some((tables.clients.slot_at(index)?, count))),
                );
            }
            if group.clients_listed {
                counts.extend(
                    tables
                        .clients
                        .slots_in_use()
                        .filter(|&slot| is_listed(tables, slot))
                        .map(|slot| (slot, 0)),
                );
            }
            counts.sort_unstable_by_key(|&(slot, _)| slot);
            for same in counts.chunk_by(|a, b| a.0 == b.0) {
                let slot = same[0].0;
                let count = same.iter().map(|&(_, count)| count).sum();
                if count > 0 || group.clients_listed && is_listed(tables, slot) {
                    series.push(ClientSeries {
                        slot,
                        method_rank: group.method_rank,
                        route_rank: group.route_rank,
                        family: group.family,
                        count,
                    });
                }
            }
        });
        series
    }

    /// The client ids in use, sorted by name, and each slot's rank among
    /// them (`usize::MAX` for none), so that the series sort on small
    /// integers rather than on label strings.
    fn client_ranks(&self) -> (Vec<(ClientSlot, &str)>, Vec<usize>) {
        let clients = &self.tables.clients;
        let mut named: Vec<(ClientSlot, &str)> = clients
            .slots_in_use()
            .filter_map(|slot| Some((slot, clients.name(slot)?)))
            .collect();
        named.sort_unstable_by_key(|&(_, name)| name);
        let mut rank = vec![usize::MAX; clients.slots()];
        for (position, &(slot, _)) in named.iter().enumerate() {
            rank[slot.index()] = position;
        }
        (named, rank)
    }
}

/// One `api_requests_total` series before sorting: its sort key and count.
struct ClientSeries {
    slot: ClientSlot,
    method_rank: usize,
    route_rank: usize,
    family: StatusFamily,
    count: u64,
}

/// Whether a slot's API counters are pre-initialised on API routes.
fn is_listed(tables: &Tables, slot: ClientSlot) -> bool {
    if slot == tables.clients.overflow() {
        tables.overflow_listed
    } else {
        slot.index() < tables.known_clients
    }
}
