//! Every metric of every request through `with_label_values`.

use crate::{
    ctms::Families,
    layer::{Record, Sample},
};

/// Looks each series up by its label values on every request.
#[derive(Debug)]
pub struct Naive {
    families: Families,
}

impl Record for Naive {
    fn new(families: Families) -> Self {
        Self { families }
    }

    fn record(&self, sample: &Sample<'_>) {
        let method = sample.method_label();
        let family = sample.family_label();
        self.families
            .duration
            .with_label_values(&[method, sample.template, family])
            .observe(sample.elapsed.as_secs_f64());
        self.families
            .requests
            .with_label_values(&[method, sample.template, sample.status.as_str(), family])
            .inc();
        if let Some(client_id) = sample.client_id {
            self.families
                .api
                .with_label_values(&[client_id, method, sample.template, family])
                .inc();
        }
    }
}
