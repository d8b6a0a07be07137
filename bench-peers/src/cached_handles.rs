//! Series handles resolved once, then found again in `RwLock<HashMap>`s.

use std::{
    collections::HashMap,
    sync::{PoisonError, RwLock},
};

use prometheus::{Histogram, IntCounter};

use crate::{
    api_key::{ApiKey, ApiKeyParts, ApiKeyRef},
    ctms::Families,
    layer::{Record, Sample},
};

/// Caches the handles of every series already seen.
#[derive(Debug)]
pub struct CachedHandles {
    families: Families,
    series: RwLock<HashMap<SeriesKey, Series>>,
    api: RwLock<HashMap<ApiKey, IntCounter>>,
}

/// Route index, method index, status code.
type SeriesKey = (usize, u8, u16);

#[derive(Debug)]
struct Series {
    requests: IntCounter,
    duration: Histogram,
}

impl Series {
    fn resolve(families: &Families, sample: &Sample<'_>) -> Self {
        let method = sample.method_label();
        let family = sample.family_label();
        Self {
            requests: families.requests.with_label_values(&[
                method,
                sample.template,
                sample.status.as_str(),
                family,
            ]),
            duration: families
                .duration
                .with_label_values(&[method, sample.template, family]),
        }
    }

    fn record(&self, sample: &Sample<'_>) {
        self.requests.inc();
        self.duration.observe(sample.elapsed.as_secs_f64());
    }
}

impl CachedHandles {
    fn record_series(&self, sample: &Sample<'_>) {
        let key = (sample.route, sample.method, sample.status.as_u16());
        {
            let series = self.series.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(handles) = series.get(&key) {
                handles.record(sample);
                return;
            }
        }
        let mut series = self.series.write().unwrap_or_else(PoisonError::into_inner);
        series
            .entry(key)
            .or_insert_with(|| Series::resolve(&self.families, sample))
            .record(sample);
    }

    fn record_api(&self, sample: &Sample<'_>, client_id: &str) {
        let probe = ApiKeyRef {
            route: sample.route,
            method: sample.method,
            family: sample.family(),
            client_id,
        };
        {
            let api = self.api.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(counter) = api.get(&probe as &dyn ApiKeyParts) {
                counter.inc();
                return;
            }
        }
        let key = ApiKey {
            route: probe.route,
            method: probe.method,
            family: probe.family,
            client_id: client_id.into(),
        };
        let mut api = self.api.write().unwrap_or_else(PoisonError::into_inner);
        api.entry(key)
            .or_insert_with(|| {
                self.families.api.with_label_values(&[
                    client_id,
                    sample.method_label(),
                    sample.template,
                    sample.family_label(),
                ])
            })
            .inc();
    }
}

impl Record for CachedHandles {
    fn new(families: Families) -> Self {
        Self {
            families,
            series: RwLock::default(),
            api: RwLock::default(),
        }
    }

    fn record(&self, sample: &Sample<'_>) {
        self.record_series(sample);
        if let Some(client_id) = sample.client_id {
            self.record_api(sample, client_id);
        }
    }
}
