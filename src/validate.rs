//! What `build` checks, and the tables it derives from the options on the
//! way: the recorder is made only from options that passed.

use crate::{
    grpc::is_grpc_route,
    labels::Status,
    limits::{MAX_BUCKETS, MAX_MATCHED_TEMPLATES, MAX_NATIVE_SCHEMA, MAX_ROUTES, MAX_SHARDS},
    options::Options,
    recorder::{seconds_to_ns, Prepared, RoutePreinit},
    routes::Routes,
    schema::is_valid_namespace,
    BuildError, TemplateError,
};

/// Checks every option, in the order the builder's docs list them, and
/// derives the recorder's tables from them.
pub(crate) fn check(options: &Options) -> Result<Prepared, BuildError> {
    let namespace = options.namespace();
    if !is_valid_namespace(namespace) {
        return Err(BuildError::InvalidNamespace {
            namespace: namespace.to_owned(),
        });
    }
    let bounds = match &options.buckets {
        Some(buckets) => check_buckets(buckets)?,
        None => options.profile.default_buckets().to_vec(),
    };
    let shards = match options.shards {
        None => default_shards(),
        Some(shards) if (1..=MAX_SHARDS).contains(&shards) => shards,
        Some(shards) => return Err(BuildError::out_of_range("shards", shards, 1, MAX_SHARDS)),
    };
    if let Some(schema) = options.native_schema {
        if !(0..=MAX_NATIVE_SCHEMA).contains(&schema) {
            return Err(BuildError::out_of_range(
                "native_histogram_schema",
                schema,
                0,
                MAX_NATIVE_SCHEMA,
            ));
        }
    }
    let routes = route_table(options)?;
    let clients = options.client_ids.table()?;
    let preinit = preinit(options, &routes)?;
    let grpc_routes = grpc_routes(options, &routes)?;
    Ok(Prepared {
        routes,
        bounds,
        clients,
        preinit,
        grpc_routes,
        shards,
    })
}

fn route_table(options: &Options) -> Result<Routes, BuildError> {
    let listed = &options.routes;
    if listed.is_empty() && !options.matched_templates {
        return Err(BuildError::NoRoutes);
    }
    let max_matched = options.max_matched_templates();
    if max_matched > MAX_MATCHED_TEMPLATES {
        return Err(BuildError::out_of_range(
            "max_matched_templates",
            max_matched,
            0,
            MAX_MATCHED_TEMPLATES,
        ));
    }
    if listed.len() > MAX_ROUTES {
        return Err(BuildError::out_of_range(
            "routes",
            listed.len(),
            1,
            MAX_ROUTES,
        ));
    }
    let mut routes = Routes::new(
        listed.iter().map(|route| route.template.as_str()),
        options.unmatched.as_deref(),
    )?;
    for (id, route) in routes.ids().zip(listed).collect::<Vec<_>>() {
        for alias in &route.aliases {
            routes.add_alias(alias, id)?;
        }
    }
    #[cfg(feature = "axum")]
    if options.matched_templates {
        routes.take_matched_templates(max_matched);
    }
    Ok(routes)
}

/// Which routes are gRPC routes, whose gRPC series start at zero, by
/// route id: templates of the shape `/package.Service/Method`, or any
/// `/Service/Method` marked [`grpc`](crate::Route::grpc).
fn grpc_routes(options: &Options, routes: &Routes) -> Result<Vec<bool>, BuildError> {
    let mut grpc = vec![false; routes.len()];
    for (id, route) in routes.ids().zip(&options.routes) {
        let is_grpc = is_grpc_route(&route.template, route.grpc);
        if route.grpc && !is_grpc {
            return Err(BuildError::template(
                &route.template,
                TemplateError::NotGrpc,
            ));
        }
        grpc[id.index()] = is_grpc;
    }
    Ok(grpc)
}

/// The series each route lists, by route id.
fn preinit(
    options: &Options,
    routes: &Routes,
) -> Result<Vec<Option<Box<RoutePreinit>>>, BuildError> {
    let mut preinit = vec![None; routes.len()];
    for (id, route) in routes.ids().zip(&options.routes) {
        let statuses = route
            .statuses
            .iter()
            .map(|&code| {
                Status::new(code).ok_or_else(|| BuildError::InvalidStatusCode {
                    template: route.template.clone(),
                    code,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let listed = RoutePreinit::new(&route.methods, &statuses, route.client_series);
        if !listed.is_empty() {
            preinit[id.index()] = Some(Box::new(listed));
        }
    }
    Ok(preinit)
}

/// Positive, finite, strictly increasing, at least a nanosecond apart (the
/// hot path compares whole nanoseconds), 1 to [`MAX_BUCKETS`] of them; a
/// trailing `+Inf` is dropped.
fn check_buckets(buckets: &[f64]) -> Result<Vec<f64>, BuildError> {
    let mut bounds = buckets.to_vec();
    if bounds.last() == Some(&f64::INFINITY) {
        bounds.pop();
    }
    let reason = if bounds.is_empty() {
        Some("no finite bound")
    } else if bounds.len() > MAX_BUCKETS {
        Some("too many bounds")
    } else if bounds.iter().any(|b| b.is_nan()) {
        Some("NaN is not a bound")
    } else if bounds.iter().any(|b| b.is_infinite()) {
        Some("only the last bound may be +Inf")
    } else if bounds.iter().any(|&b| b <= 0.0) {
        Some("durations are positive, so bounds must be too")
    } else if bounds.windows(2).any(|pair| pair[0] >= pair[1]) {
        Some("bounds must be strictly increasing")
    } else if bounds
        .windows(2)
        .any(|pair| seconds_to_ns(pair[0]) >= seconds_to_ns(pair[1]))
        || seconds_to_ns(bounds[0]) == 0
    {
        Some("bounds must be at least a nanosecond apart")
    } else {
        None
    };
    match reason {
        None => Ok(bounds),
        Some(reason) => Err(BuildError::InvalidBuckets {
            buckets: buckets.to_vec(),
            reason,
        }),
    }
}

fn default_shards() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cores * 2).min(64)
}
