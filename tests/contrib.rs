//! The files of `contrib/` hold together: every alert of
//! `contrib/prometheus/*.yml` links to a section of `docs/runbooks.md` that
//! exists, and every section there is an alert; the SLO rules keep their
//! alert names, severities and objectives; the Kubernetes monitors have the
//! fields prometheus-operator requires and scrape the private `metrics`
//! port; every dashboard is listed in `contrib/README.md`.
//!
//! Reads files only: needs nothing installed (`promtool` runs the rules'
//! own unit tests, from `tests/end_to_end/prometheus.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_norway::Value;

/// Where every `runbook_url` points, up to the anchor.
const RUNBOOKS_URL: &str =
    "https://github.com/tower-prometheus/tower-prometheus/blob/main/docs/runbooks.md#";

fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

fn parse_yaml(path: &Path) -> Value {
    serde_norway::from_str(&read(path))
        .unwrap_or_else(|err| panic!("{} is not valid YAML: {err}", path.display()))
}

/// The files of `dir` whose names end with `suffix`, sorted.
fn files_ending(dir: &str, suffix: &str) -> Vec<PathBuf> {
    let dir = repo_path(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("{}: {err}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.ends_with(suffix))
        })
        .collect();
    files.sort();
    files
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .and_then(|name| name.to_str())
        .expect("a UTF-8 file name")
        .to_owned()
}

/// `contrib/prometheus/*.yml` that are rule files (a top-level `groups`),
/// parsed; the unit-test files (`rule_files`, `tests`) are left out.
fn rule_files() -> Vec<(String, Value)> {
    let files: Vec<(String, Value)> = files_ending("contrib/prometheus", ".yml")
        .into_iter()
        .map(|path| (file_name(&path), parse_yaml(&path)))
        .filter(|(_, yaml)| yaml.get("groups").is_some())
        .collect();
    let names: Vec<&str> = files.iter().map(|(name, _)| name.as_str()).collect();
    for expected in ["rules.yml", "slo.yml"] {
        assert!(names.contains(&expected), "{expected} not found: {names:?}");
    }
    files
}

/// One rule of a rule file.
struct Rule {
    file: String,
    group: String,
    yaml: Value,
}

impl Rule {
    fn str(&self, key: &str) -> Option<&str> {
        self.yaml.get(key).and_then(Value::as_str)
    }

    fn alert(&self) -> Option<&str> {
        self.str("alert")
    }

    fn label(&self, key: &str) -> Option<&str> {
        self.yaml.get("labels")?.get(key)?.as_str()
    }

    fn annotation(&self, key: &str) -> Option<&str> {
        self.yaml.get("annotations")?.get(key)?.as_str()
    }

    /// `file: group: name`, for messages.
    fn describe(&self) -> String {
        let name = self
            .alert()
            .or_else(|| self.str("record"))
            .unwrap_or("(a rule with neither `alert` nor `record`)");
        format!("{}: group {}: {name}", self.file, self.group)
    }
}

fn rules_of(file: &str, yaml: &Value) -> Vec<Rule> {
    let groups = yaml["groups"]
        .as_sequence()
        .unwrap_or_else(|| panic!("{file}: `groups` is not a list"));
    let mut rules = Vec::new();
    for group in groups {
        let name = group["name"]
            .as_str()
            .unwrap_or_else(|| panic!("{file}: a group without a name"));
        let list = group["rules"]
            .as_sequence()
            .unwrap_or_else(|| panic!("{file}: group {name}: `rules` is not a list"));
        rules.extend(list.iter().map(|rule| Rule {
            file: file.to_owned(),
            group: name.to_owned(),
            yaml: rule.clone(),
        }));
    }
    rules
}

fn all_rules() -> Vec<Rule> {
    rule_files()
        .iter()
        .flat_map(|(file, yaml)| rules_of(file, yaml))
        .collect()
}

/// GitHub's anchor for a Markdown heading: lower case, spaces to `-`,
/// everything but letters, digits, `-` and `_` dropped.
fn github_anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The headings of a Markdown text, as `(level, text)`, outside fenced code
/// blocks (where `#` starts a comment, not a heading).
fn headings(markdown: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    let mut fence: Option<&str> = None;
    for line in markdown.lines() {
        let trimmed = line.trim_start();
        if let Some(open) = fence {
            if trimmed.starts_with(open) {
                fence = None;
            }
            continue;
        }
        if trimmed.starts_with("```") {
            fence = Some("```");
            continue;
        }
        if trimmed.starts_with("~~~") {
            fence = Some("~~~");
            continue;
        }
        let level = line.chars().take_while(|&c| c == '#').count();
        if (1..=6).contains(&level) && line[level..].starts_with(' ') {
            let text = line[level..].trim().trim_end_matches('#').trim();
            found.push((level, text.to_owned()));
        }
    }
    found
}

#[test]
fn github_anchors_are_computed_as_github_does() {
    assert_eq!(github_anchor("CTMSHigh5xxRatio"), "ctmshigh5xxratio");
    assert_eq!(github_anchor("Operating it"), "operating-it");
    assert_eq!(
        github_anchor("What's new: v1.0 (beta)"),
        "whats-new-v10-beta"
    );
    assert_eq!(github_anchor("snake_case and-dash"), "snake_case-and-dash");
}

#[test]
fn headings_inside_code_blocks_are_not_headings() {
    let text =
        "# Title\n\n## First\n\n```promql\n# a comment\nup\n```\n\n## Second\n#not a heading\n";
    assert_eq!(
        headings(text),
        vec![
            (1, "Title".to_owned()),
            (2, "First".to_owned()),
            (2, "Second".to_owned()),
        ]
    );
}

/// Every alert of every rule file has a `runbook_url` whose anchor is a
/// section of `docs/runbooks.md` named after the alert, and every section
/// there is an alert of one of the rule files.
#[test]
fn every_alert_has_a_runbook_and_every_runbook_an_alert() {
    let runbooks = read(&repo_path("docs/runbooks.md"));
    let headings = headings(&runbooks);
    let titles: Vec<&(usize, String)> = headings.iter().filter(|(level, _)| *level == 1).collect();
    assert_eq!(
        titles.len(),
        1,
        "docs/runbooks.md has one title (`# ...`): {titles:?}"
    );
    // Each section heading is an alert name, and its anchor is the link.
    let mut sections: BTreeMap<String, String> = BTreeMap::new();
    for (level, text) in headings.iter().filter(|(level, _)| *level > 1) {
        assert_eq!(
            *level, 2,
            "docs/runbooks.md: `{text}` is a level-{level} heading; sections are `## <alert>`"
        );
        let anchor = github_anchor(text);
        let previous = sections.insert(anchor.clone(), text.clone());
        assert!(
            previous.is_none(),
            "docs/runbooks.md: two headings have the anchor #{anchor}"
        );
    }

    let mut problems = Vec::new();
    let mut alerts = BTreeSet::new();
    for rule in all_rules() {
        let Some(alert) = rule.alert() else {
            continue;
        };
        if !alerts.insert(alert.to_owned()) {
            problems.push(format!("{}: alert name used twice", rule.describe()));
        }
        let Some(url) = rule.annotation("runbook_url") else {
            problems.push(format!(
                "{}: no `runbook_url` annotation (expected {RUNBOOKS_URL}{})",
                rule.describe(),
                github_anchor(alert)
            ));
            continue;
        };
        let Some(anchor) = url.strip_prefix(RUNBOOKS_URL) else {
            problems.push(format!(
                "{}: runbook_url {url} does not start with {RUNBOOKS_URL}",
                rule.describe()
            ));
            continue;
        };
        match sections.get(anchor) {
            None => problems.push(format!(
                "{}: runbook_url points to #{anchor}, which no heading of docs/runbooks.md has \
                 (add a section `## {alert}`)",
                rule.describe()
            )),
            Some(heading) if heading != alert => problems.push(format!(
                "{}: runbook_url points to the section `## {heading}`, not to `## {alert}`",
                rule.describe()
            )),
            Some(_) => {}
        }
    }
    for (anchor, heading) in &sections {
        if !alerts.contains(heading) {
            problems.push(format!(
                "docs/runbooks.md: section `## {heading}` (#{anchor}) is no alert of \
                 contrib/prometheus/*.yml: remove or rename it"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// A second reading, line by line, of what the YAML parser found: each
/// `- alert:` line is one alert, and the block it opens (up to the next
/// rule or group) holds a `runbook_url:` line.
#[test]
fn the_yaml_reading_and_a_line_reading_find_the_same_alerts() {
    for (file, yaml) in rule_files() {
        let parsed: Vec<String> = rules_of(&file, &yaml)
            .iter()
            .filter_map(|rule| rule.alert().map(str::to_owned))
            .collect();
        let text = read(&repo_path(&format!("contrib/prometheus/{file}")));
        let mut read_by_lines = Vec::new();
        let mut current: Option<(String, bool)> = None;
        let mut finish = |current: &mut Option<(String, bool)>| {
            if let Some((alert, has_runbook)) = current.take() {
                assert!(has_runbook, "{file}: alert {alert} has no runbook_url line");
                read_by_lines.push(alert);
            }
        };
        for line in text.lines() {
            let trimmed = line.trim_start();
            if let Some(alert) = trimmed.strip_prefix("- alert:") {
                finish(&mut current);
                current = Some((alert.trim().to_owned(), false));
            } else if trimmed.starts_with("- record:") || trimmed.starts_with("- name:") {
                finish(&mut current);
            } else if trimmed.starts_with("runbook_url:") {
                if let Some((_, has_runbook)) = current.as_mut() {
                    *has_runbook = true;
                }
            }
        }
        finish(&mut current);
        assert_eq!(parsed, read_by_lines, "{file}");
    }
}

#[test]
fn the_alert_names_and_severities_are_those_documented() {
    let rules = all_rules();
    let alerts_of = |file: &str| -> BTreeMap<String, String> {
        rules
            .iter()
            .filter(|rule| rule.file == file)
            .filter_map(|rule| {
                let alert = rule.alert()?;
                let severity = rule
                    .label("severity")
                    .unwrap_or_else(|| panic!("{}: no severity label", rule.describe()));
                Some((alert.to_owned(), severity.to_owned()))
            })
            .collect()
    };
    let expected = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(alert, severity)| ((*alert).to_owned(), (*severity).to_owned()))
            .collect()
    };
    assert_eq!(
        alerts_of("rules.yml"),
        expected(&[
            ("CTMSHigh5xxRatio", "page"),
            ("CTMSHighLatencyP99", "warning"),
            ("CTMSTrafficDropped", "page"),
            ("CTMSTargetDown", "warning"),
            ("CTMSAllTargetsMissing", "page"),
        ])
    );
    assert_eq!(
        alerts_of("slo.yml"),
        expected(&[
            ("CTMSErrorBudgetFastBurn", "page"),
            ("CTMSErrorBudgetSlowBurn", "ticket"),
            ("CTMSRouteErrorBudgetFastBurn", "page"),
            ("CTMSRouteErrorBudgetSlowBurn", "ticket"),
            ("CTMSLatencyBudgetFastBurn", "page"),
            ("CTMSLatencyBudgetSlowBurn", "ticket"),
            ("CTMSRouteLatencyBudgetFastBurn", "page"),
            ("CTMSRouteLatencyBudgetSlowBurn", "ticket"),
        ])
    );
    // The burn-rate alerts wait for nothing but their windows.
    for rule in rules.iter().filter(|rule| rule.file == "slo.yml") {
        assert!(
            rule.yaml.get("for").is_none(),
            "{}: the burn-rate alerts have no `for:`",
            rule.describe()
        );
    }
}

/// The objectives are each recorded once, as `vector(<budget>)`; every
/// ratio is recorded per route and service-wide over every window; the
/// latency threshold is one bucket bound of the layer's default buckets,
/// the same everywhere.
#[test]
fn the_slo_rules_record_every_window_and_one_objective_each() {
    let rules: Vec<Rule> = all_rules()
        .into_iter()
        .filter(|rule| rule.file == "slo.yml")
        .collect();
    let mut records: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for rule in &rules {
        if let Some(record) = rule.str("record") {
            let expr = rule.str("expr").expect("a recording rule has an expr");
            records
                .entry(record.to_owned())
                .or_default()
                .push(expr.to_owned());
        }
    }
    for (record, budget) in [
        ("ctms:slo_availability:error_budget", 0.001),
        ("ctms:slo_latency:error_budget", 0.01),
    ] {
        let exprs = records.get(record).cloned().unwrap_or_default();
        assert_eq!(exprs.len(), 1, "{record} is recorded once: {exprs:?}");
        let value: f64 = exprs[0]
            .trim()
            .strip_prefix("vector(")
            .and_then(|rest| rest.strip_suffix(')'))
            .and_then(|number| number.parse().ok())
            .unwrap_or_else(|| panic!("{record} is `vector(<budget>)`: {}", exprs[0]));
        assert!(value > 0.0 && value < 1.0, "{record}: {value}");
        assert_eq!(value, budget, "{record}: the shipped objective");
    }
    for metric in ["ctms_requests_errors", "ctms_requests_slow"] {
        for window in ["5m", "30m", "1h", "2h", "6h", "1d", "3d"] {
            for level in ["path_template:", "ctms:"] {
                let name = if level == "ctms:" {
                    format!("ctms:{}:ratio_rate{window}", &metric["ctms_".len()..])
                } else {
                    format!("{level}{metric}:ratio_rate{window}")
                };
                let exprs = records.get(&name).cloned().unwrap_or_default();
                assert_eq!(exprs.len(), 1, "{name} is recorded once");
                assert!(
                    exprs[0].contains(&format!("[{window}]")),
                    "{name} reads a {window} window: {}",
                    exprs[0]
                );
                assert!(
                    exprs[0]
                        .contains(r#"path_template!~"/metrics|/__lbheartbeat__|/__heartbeat__""#),
                    "{name} leaves out probes and scrapes"
                );
            }
        }
    }
    let bounds: BTreeSet<&str> = rules
        .iter()
        .filter_map(|rule| rule.str("expr"))
        .flat_map(|expr| expr.split(r#"le=""#).skip(1))
        .map(|rest| rest.split('"').next().expect("a closing quote"))
        .collect();
    assert_eq!(bounds.len(), 1, "one latency threshold: {bounds:?}");
    let bound: f64 = bounds
        .iter()
        .next()
        .and_then(|bound| bound.parse().ok())
        .expect("the threshold is a number");
    assert!(
        tower_prometheus::limits::DEFAULT_BUCKETS.contains(&bound),
        "the latency threshold {bound} is no bucket bound of {:?}",
        tower_prometheus::limits::DEFAULT_BUCKETS
    );
}

/// Every rule file has a unit-test file that loads it.
#[test]
fn every_rule_file_is_unit_tested() {
    let mut tested = BTreeSet::new();
    for path in files_ending("contrib/prometheus", ".test.yml") {
        let yaml = parse_yaml(&path);
        let files = yaml["rule_files"]
            .as_sequence()
            .unwrap_or_else(|| panic!("{}: no rule_files", path.display()));
        tested.extend(files.iter().filter_map(Value::as_str).map(str::to_owned));
        assert!(
            yaml["tests"]
                .as_sequence()
                .is_some_and(|tests| !tests.is_empty()),
            "{}: no tests",
            path.display()
        );
    }
    for (file, _) in rule_files() {
        assert!(
            tested.contains(&file),
            "{file} is loaded by no contrib/prometheus/*.test.yml"
        );
    }
}

/// The prometheus-operator monitors: the fields the CRDs require, the
/// private `metrics` port and `/metrics`, a sample limit, and a job named
/// `ctms` (which the `up` alerts expect).
#[test]
fn the_kubernetes_monitors_scrape_the_private_metrics_port() {
    for (file, kind, endpoints_key) in [
        ("podmonitor.yml", "PodMonitor", "podMetricsEndpoints"),
        ("servicemonitor.yml", "ServiceMonitor", "endpoints"),
    ] {
        let path = repo_path(&format!("contrib/kubernetes/{file}"));
        let yaml = parse_yaml(&path);
        assert_eq!(
            yaml["apiVersion"].as_str(),
            Some("monitoring.coreos.com/v1"),
            "{file}: apiVersion"
        );
        assert_eq!(yaml["kind"].as_str(), Some(kind), "{file}: kind");
        assert!(
            yaml["metadata"]["name"]
                .as_str()
                .is_some_and(|name| !name.is_empty()),
            "{file}: metadata.name"
        );
        let spec = &yaml["spec"];
        let match_labels = spec["selector"]["matchLabels"]
            .as_mapping()
            .unwrap_or_else(|| panic!("{file}: spec.selector.matchLabels is required"));
        assert!(!match_labels.is_empty(), "{file}: an empty selector");
        let job_label = spec["jobLabel"]
            .as_str()
            .unwrap_or_else(|| panic!("{file}: spec.jobLabel names the job"));
        assert_eq!(
            spec["selector"]["matchLabels"][job_label].as_str(),
            Some("ctms"),
            "{file}: the selected {job_label} label, which becomes the job, is `ctms`"
        );
        let endpoints = spec[endpoints_key]
            .as_sequence()
            .unwrap_or_else(|| panic!("{file}: spec.{endpoints_key} is required"));
        assert!(
            !endpoints.is_empty(),
            "{file}: spec.{endpoints_key} is empty"
        );
        for endpoint in endpoints {
            assert_eq!(
                endpoint["port"].as_str(),
                Some("metrics"),
                "{file}: the port named `metrics`"
            );
            assert_eq!(endpoint["path"].as_str(), Some("/metrics"), "{file}: path");
        }
        let limit = spec["sampleLimit"]
            .as_u64()
            .unwrap_or_else(|| panic!("{file}: spec.sampleLimit is a positive integer"));
        // The example server's default configuration announces
        // series_bound=171064 (tests/end_to_end/ctms_server.rs checks it):
        // a lower limit could fail its scrapes under a hostile flood.
        assert!(
            limit >= 171_064,
            "{file}: sampleLimit {limit} is under the example's bound"
        );
        let text = read(&path);
        assert!(
            text.contains("series_bound"),
            "{file}: the comment on sampleLimit says where its number comes from"
        );
    }
}

/// Every dashboard is listed in `contrib/README.md`, with a uid of its own.
#[test]
fn every_dashboard_is_listed_with_a_uid_of_its_own() {
    let readme = read(&repo_path("contrib/README.md"));
    let mut uids = BTreeSet::new();
    let dashboards = files_ending("contrib/grafana", ".json");
    assert!(dashboards.len() >= 3, "{dashboards:?}");
    for path in dashboards {
        let name = file_name(&path);
        assert!(
            readme.contains(&format!("grafana/{name}")),
            "contrib/README.md does not list grafana/{name}"
        );
        let json: serde_json::Value = serde_json::from_str(&read(&path))
            .unwrap_or_else(|err| panic!("{name} is not JSON: {err}"));
        let uid = json["uid"].as_str().expect("a dashboard uid").to_owned();
        assert!(uids.insert(uid.clone()), "{name}: uid {uid} used twice");
    }
}
