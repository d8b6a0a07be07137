//! Series handles resolved once, then found again in `RwLock<HashMap>`s.

use std::{
    borrow::Borrow,
    collections::HashMap,
    hash::{Hash, Hasher},
    sync::{PoisonError, RwLock},
};

use prometheus::{Histogram, IntCounter};

use crate::{
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

/// Route index, method index, status family and client id, owned.
#[derive(Debug)]
struct ApiKey {
    route: usize,
    method: u8,
    family: u8,
    client_id: Box<str>,
}

/// The same key, borrowed from a request.
struct ApiKeyRef<'a> {
    route: usize,
    method: u8,
    family: u8,
    client_id: &'a str,
}

/// What the map hashes and compares, so that an [`ApiKeyRef`] finds an
/// [`ApiKey`] without building one.
trait ApiKeyParts {
    fn parts(&self) -> (usize, u8, u8, &str);
}

impl ApiKeyParts for ApiKey {
    fn parts(&self) -> (usize, u8, u8, &str) {
        (self.route, self.method, self.family, &self.client_id)
    }
}

impl ApiKeyParts for ApiKeyRef<'_> {
    fn parts(&self) -> (usize, u8, u8, &str) {
        (self.route, self.method, self.family, self.client_id)
    }
}

impl<'a> Borrow<dyn ApiKeyParts + 'a> for ApiKey {
    fn borrow(&self) -> &(dyn ApiKeyParts + 'a) {
        self
    }
}

impl Hash for dyn ApiKeyParts + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.parts().hash(state);
    }
}

impl PartialEq for dyn ApiKeyParts + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}

impl Eq for dyn ApiKeyParts + '_ {}

// Must hash and compare exactly as the borrowed form does.
impl Hash for ApiKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.parts().hash(state);
    }
}

impl PartialEq for ApiKey {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}

impl Eq for ApiKey {}

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
