//! The registry glue: each family is its own [`Collector`], so that a clash
//! names the metric, and registration checks what the registry alone would
//! let through and a scrape would then break on.

use std::{
    collections::HashMap,
    fmt,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    thread::{self, ThreadId},
};

use prometheus::{
    core::{Collector, Desc},
    proto::{self, MetricFamily, MetricType},
    Registry,
};

use super::Recorder;
use crate::{
    schema::{Family, OTEL_RESERVED_LABELS, RESERVED_LABELS},
    BuildError,
};

/// Registers every family of `recorder` in `registry`, with the names their
/// samples derive (`_count`, `_sum`, `_bucket`; a counter's name without
/// `_total`) reserved, so that no other metric can ever put samples under
/// one of them. On failure, nothing stays registered.
pub(super) fn register(recorder: &Arc<Recorder>, registry: &Registry) -> Result<(), BuildError> {
    check_constant_labels(registry)?;
    let mut registered: Vec<Desc> = Vec::new();
    let result = register_all(recorder, registry, &mut registered);
    if result.is_err() {
        for desc in registered {
            // Unregistering matches collectors by their descriptors.
            let _ = registry.unregister(Box::new(Reservation(desc)));
        }
    }
    result
}

fn register_all(
    recorder: &Arc<Recorder>,
    registry: &Registry,
    registered: &mut Vec<Desc>,
) -> Result<(), BuildError> {
    let invalid = |_| BuildError::InvalidNamespace {
        namespace: recorder.options().namespace().to_owned(),
    };
    for family in recorder.families() {
        let name = recorder.name(family);
        let collector = FamilyCollector::new(recorder.clone(), family).map_err(invalid)?;
        let desc = collector.desc.clone();
        registry
            .register(Box::new(collector))
            .map_err(|source| BuildError::AlreadyRegistered {
                metric: name.clone(),
                source,
            })?;
        registered.push(desc);
        for derived in family.derived_names(&name) {
            let desc = Desc::new(
                derived.clone(),
                format!("Reserved for the samples of {name}."),
                Vec::new(),
                HashMap::new(),
            )
            .map_err(invalid)?;
            if registry
                .register(Box::new(Reservation(desc.clone())))
                .is_err()
            {
                return Err(BuildError::NameClash {
                    metric: name,
                    with: derived,
                });
            }
            registered.push(desc);
        }
    }
    Ok(())
}

/// Refuses a registry whose constant labels (`Registry::new_custom`) name
/// one of the layer's labels: every sample would carry that label twice,
/// and Prometheus would refuse every scrape.
///
/// The registry does not show its constant labels, so a probe family is
/// registered, gathered once, and unregistered. The probe answers only the
/// thread that builds, so a scrape running meanwhile does not see it.
fn check_constant_labels(registry: &Registry) -> Result<(), BuildError> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        "tower_prometheus_build_probe_{}",
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let Ok(probe) = Probe::new(&name) else {
        return Ok(());
    };
    let desc = probe.desc.clone();
    if registry.register(Box::new(probe)).is_err() {
        return Ok(());
    }
    let families = registry.gather();
    let _ = registry.unregister(Box::new(Reservation(desc)));
    let labels = families
        .iter()
        .filter(|family| family.name().ends_with(&name))
        .flat_map(|family| family.get_metric())
        .flat_map(|metric| metric.get_label());
    for label in labels {
        if RESERVED_LABELS.contains(&label.name()) || OTEL_RESERVED_LABELS.contains(&label.name()) {
            return Err(BuildError::ConstantLabelClash {
                label: label.name().to_owned(),
            });
        }
    }
    Ok(())
}

/// One family, registered as its own collector.
struct FamilyCollector {
    recorder: Arc<Recorder>,
    family: Family,
    desc: Desc,
}

impl FamilyCollector {
    fn new(recorder: Arc<Recorder>, family: Family) -> prometheus::Result<Self> {
        let profile = recorder.profile();
        let desc = Desc::new(
            recorder.name(family),
            profile.help(family).to_owned(),
            profile
                .labels(family)
                .iter()
                .map(|&l| l.to_owned())
                .collect(),
            HashMap::new(),
        )?;
        Ok(Self {
            recorder,
            family,
            desc,
        })
    }
}

impl Collector for FamilyCollector {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.desc]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        vec![self.recorder.collect(self.family)]
    }
}

impl fmt::Debug for FamilyCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FamilyCollector")
            .field("name", &self.desc.fq_name)
            .finish()
    }
}

/// Holds a name in the registry without collecting anything; also stands
/// for a registered collector when unregistering it.
#[derive(Debug)]
struct Reservation(Desc);

impl Collector for Reservation {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.0]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        Vec::new()
    }
}

/// A family of one unlabelled sample, collected only by the thread that
/// created it.
#[derive(Debug)]
struct Probe {
    desc: Desc,
    thread: ThreadId,
}

impl Probe {
    fn new(name: &str) -> prometheus::Result<Self> {
        Ok(Self {
            desc: Desc::new(
                name.to_owned(),
                "probe".to_owned(),
                Vec::new(),
                HashMap::new(),
            )?,
            thread: thread::current().id(),
        })
    }
}

impl Collector for Probe {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.desc]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        if thread::current().id() != self.thread {
            return Vec::new();
        }
        let mut metric = proto::Metric::default();
        metric.set_gauge(proto::Gauge::default());
        let mut family = MetricFamily::default();
        family.set_name(self.desc.fq_name.clone());
        family.set_help(self.desc.help.clone());
        family.set_field_type(MetricType::GAUGE);
        family.set_metric(vec![metric]);
        vec![family]
    }
}
