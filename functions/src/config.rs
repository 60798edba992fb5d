//! Configuration from environment variables (docs/settings.md), with defaults that suit
//! `solace local`.

use std::time::Duration;

use solace_pipeline::{Retention, RetentionMode};

use crate::allow::{BucketRule, TableRule};
use crate::function::Function;
use crate::message::Action;

/// A variable that is set but unusable.
#[derive(Debug, thiserror::Error)]
#[error("environment variable {name}={value:?}: {reason}")]
pub struct ConfigError {
    pub name: &'static str,
    pub value: String,
    pub reason: String,
}

/// The default names of the queues and status tables (docs/messages.md#queues): what
/// `solace local` creates, and what a deployment's names are made from.
pub mod names {
    pub const REQUEST_QUEUE: &str = "request-queue";
    pub const BACKUP_QUEUE: &str = "backup-queue";
    pub const RESTORE_QUEUE: &str = "restore-queue";
    pub const REQUEST_DLQ: &str = "request-dlq";
    pub const BACKUP_DLQ: &str = "backup-dlq";
    pub const RESTORE_DLQ: &str = "restore-dlq";
    pub const REJECTED_QUEUE: &str = "request-rejected";
    pub const BACKUP_STATUS_TABLE: &str = "backup-table";
    pub const RESTORE_STATUS_TABLE: &str = "restore-table";
}

/// The log level's variable (all functions; [`crate::lambda::init_logging`]).
pub const LOG_LEVEL_VAR: &str = "RUST_LOG";

/// The environment variables each function reads (docs/settings.md): the part of [`Config`] it
/// uses, and [`LOG_LEVEL_VAR`]. `tests/infra.rs` checks each function's Lambda sets exactly
/// these; the tests below check [`Config::from_lookup`] reads exactly the `SOLACE_` ones.
pub const ENV_VARS: &[(Function, &[&str])] = &[
    (
        Function::Request,
        &[
            LOG_LEVEL_VAR,
            "SOLACE_REQUEST_QUEUE_URL",
            "SOLACE_BACKUP_QUEUE_URL",
            "SOLACE_RESTORE_QUEUE_URL",
            "SOLACE_REJECTED_QUEUE_URL",
            "SOLACE_BACKUP_STATUS_TABLE",
            "SOLACE_RESTORE_STATUS_TABLE",
            "SOLACE_MAX_SEGMENTS",
            "SOLACE_EXPECTED_BUCKET_OWNER",
            "SOLACE_BACKUP_KMS_KEY_ARN",
            "SOLACE_RETENTION_MODE",
            "SOLACE_RETENTION_DAYS",
            "SOLACE_ALLOWED_TABLES",
            "SOLACE_ALLOWED_BUCKETS",
        ],
    ),
    (
        Function::Backup,
        &[
            LOG_LEVEL_VAR,
            "SOLACE_BACKUP_QUEUE_URL",
            "SOLACE_BACKUP_STATUS_TABLE",
            "SOLACE_BATCH_BYTES",
            "SOLACE_COMPRESSION_LEVEL",
            "SOLACE_DEADLINE_MARGIN_MS",
            "SOLACE_READ_CAPACITY_LIMIT",
            "SOLACE_EXPECTED_BUCKET_OWNER",
            "SOLACE_BACKUP_KMS_KEY_ARN",
        ],
    ),
    (
        Function::Restore,
        &[
            LOG_LEVEL_VAR,
            "SOLACE_RESTORE_QUEUE_URL",
            "SOLACE_RESTORE_STATUS_TABLE",
            "SOLACE_DEADLINE_MARGIN_MS",
            "SOLACE_WRITE_CAPACITY_LIMIT",
            "SOLACE_EXPECTED_BUCKET_OWNER",
        ],
    ),
    (
        Function::Redrive,
        &[
            LOG_LEVEL_VAR,
            "SOLACE_BACKUP_QUEUE_URL",
            "SOLACE_RESTORE_QUEUE_URL",
            "SOLACE_BACKUP_STATUS_TABLE",
            "SOLACE_RESTORE_STATUS_TABLE",
            "SOLACE_REDRIVE_LIMIT",
        ],
    ),
];

/// The environment variables `function` reads ([`ENV_VARS`]).
pub fn env_vars(function: Function) -> &'static [&'static str] {
    ENV_VARS
        .iter()
        .find(|(f, _)| *f == function)
        .map_or(&[], |(_, vars)| vars)
}

/// A variable's value by name, blank as unset.
type Vars<'a> = dyn Fn(&str) -> Option<String> + 'a;

fn parsed<T: std::str::FromStr>(
    var: &Vars,
    name: &'static str,
    default: T,
) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    Ok(optional(var, name)?.unwrap_or(default))
}

fn optional<T: std::str::FromStr>(var: &Vars, name: &'static str) -> Result<Option<T>, ConfigError>
where
    T::Err: std::fmt::Display,
{
    var(name)
        .map(|v| {
            v.trim().parse().map_err(|e: T::Err| ConfigError {
                name,
                value: v.clone(),
                reason: e.to_string(),
            })
        })
        .transpose()
}

/// `SOLACE_RETENTION_MODE` and `SOLACE_RETENTION_DAYS`: both or neither.
fn retention(var: &Vars) -> Result<Option<Retention>, ConfigError> {
    let mode = match var("SOLACE_RETENTION_MODE") {
        None => None,
        Some(v) => Some(match v.trim() {
            "GOVERNANCE" => RetentionMode::Governance,
            "COMPLIANCE" => RetentionMode::Compliance,
            _ => {
                return Err(ConfigError {
                    name: "SOLACE_RETENTION_MODE",
                    value: v,
                    reason: "must be GOVERNANCE or COMPLIANCE".into(),
                });
            }
        }),
    };
    let days: Option<u32> = optional(var, "SOLACE_RETENTION_DAYS")?;
    match (mode, days) {
        (None, None) => Ok(None),
        (Some(mode), Some(days)) if (1..=MAX_RETENTION_DAYS).contains(&days) => {
            Ok(Some(Retention { mode, days }))
        }
        (Some(_), Some(days)) => Err(ConfigError {
            name: "SOLACE_RETENTION_DAYS",
            value: days.to_string(),
            reason: format!("must be 1 to {MAX_RETENTION_DAYS}"),
        }),
        (Some(mode), None) => Err(ConfigError {
            name: "SOLACE_RETENTION_DAYS",
            value: String::new(),
            reason: format!("must be set with SOLACE_RETENTION_MODE={}", mode.as_str()),
        }),
        (None, Some(days)) => Err(ConfigError {
            name: "SOLACE_RETENTION_MODE",
            value: String::new(),
            reason: format!("must be set with SOLACE_RETENTION_DAYS={days}"),
        }),
    }
}

/// A variable holding JSON.
fn json<T: serde::de::DeserializeOwned>(
    var: &Vars,
    name: &'static str,
) -> Result<Option<T>, ConfigError> {
    var(name)
        .map(|v| {
            serde_json::from_str(&v).map_err(|e| ConfigError {
                name,
                value: v.clone(),
                reason: e.to_string(),
            })
        })
        .transpose()
}

/// The longest retention a backup may ask for (100 years).
pub const MAX_RETENTION_DAYS: u32 = 36_500;

/// The largest `SOLACE_BATCH_BYTES`: a batch closes on the first scan page boundary past it,
/// and a page is at most 1 MiB, so its batches stay within the restore decoder's cap.
pub const MAX_BATCH_BYTES: usize = solace_codec::batch::DEFAULT_MAX_INFLATED - (1 << 20);

/// Every setting any function reads; each function uses its own part.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The request queue: where a fan-out too long for one invocation continues.
    pub request_queue_url: String,
    pub backup_queue_url: String,
    pub restore_queue_url: String,
    pub rejected_queue_url: String,
    pub backup_status_table: String,
    pub restore_status_table: String,
    pub max_segments: u32,
    pub batch_bytes: usize,
    pub compression_level: u32,
    pub redrive_limit: u32,
    pub deadline_margin: Duration,
    pub read_capacity_limit: Option<f64>,
    pub write_capacity_limit: Option<f64>,
    pub expected_bucket_owner: Option<String>,
    /// The KMS key every object of a backup is encrypted with (SSE-KMS, S3 bucket key on);
    /// `None`: SSE-S3.
    pub backup_kms_key: Option<String>,
    /// The Object Lock retention of a backup whose request names none; `None`: no
    /// retention unless the request asks.
    pub default_retention: Option<Retention>,
    /// The tables tasks may touch (JSON `[{"region", "name"}]`, IAM wildcards); `None`:
    /// none (docs/request.md#allow-lists).
    pub allowed_tables: Option<Vec<TableRule>>,
    /// The buckets and key prefixes tasks may touch (JSON `[{"name", "prefix"}]`); `None`:
    /// none.
    pub allowed_buckets: Option<Vec<BucketRule>>,
    /// Items per scan page (DynamoDB's 1 MB limit applies anyway). Not an environment
    /// variable: `solace local` and tests set it for slow emulators.
    pub scan_page_limit: Option<i32>,
    /// Segments one request invocation fans out at most before it continues in a new
    /// message (docs/status.md#fan-out). Not an environment variable: the invocation's
    /// deadline bounds it too, and tests set it low.
    pub fan_out_per_invocation: u64,
}

impl Config {
    /// Reads the environment. Queue URLs default to empty: `solace local` fills them in.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the variables from `lookup` (a variable's value by name); blank is unset.
    /// Settings that cannot work are refused with the reason.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let var = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let config = Config {
            request_queue_url: var("SOLACE_REQUEST_QUEUE_URL").unwrap_or_default(),
            backup_queue_url: var("SOLACE_BACKUP_QUEUE_URL").unwrap_or_default(),
            restore_queue_url: var("SOLACE_RESTORE_QUEUE_URL").unwrap_or_default(),
            rejected_queue_url: var("SOLACE_REJECTED_QUEUE_URL").unwrap_or_default(),
            backup_status_table: var("SOLACE_BACKUP_STATUS_TABLE")
                .unwrap_or_else(|| names::BACKUP_STATUS_TABLE.into()),
            restore_status_table: var("SOLACE_RESTORE_STATUS_TABLE")
                .unwrap_or_else(|| names::RESTORE_STATUS_TABLE.into()),
            max_segments: parsed(&var, "SOLACE_MAX_SEGMENTS", 1000)?,
            batch_bytes: parsed(&var, "SOLACE_BATCH_BYTES", 8 << 20)?,
            compression_level: parsed(&var, "SOLACE_COMPRESSION_LEVEL", 6)?,
            redrive_limit: parsed(&var, "SOLACE_REDRIVE_LIMIT", 3)?,
            deadline_margin: Duration::from_millis(parsed(
                &var,
                "SOLACE_DEADLINE_MARGIN_MS",
                30_000,
            )?),
            read_capacity_limit: optional(&var, "SOLACE_READ_CAPACITY_LIMIT")?,
            write_capacity_limit: optional(&var, "SOLACE_WRITE_CAPACITY_LIMIT")?,
            expected_bucket_owner: var("SOLACE_EXPECTED_BUCKET_OWNER"),
            backup_kms_key: var("SOLACE_BACKUP_KMS_KEY_ARN"),
            default_retention: retention(&var)?,
            allowed_tables: json(&var, "SOLACE_ALLOWED_TABLES")?,
            allowed_buckets: json(&var, "SOLACE_ALLOWED_BUCKETS")?,
            scan_page_limit: None,
            fan_out_per_invocation: 200_000,
        };
        for (name, limit) in [
            ("SOLACE_READ_CAPACITY_LIMIT", config.read_capacity_limit),
            ("SOLACE_WRITE_CAPACITY_LIMIT", config.write_capacity_limit),
        ] {
            // Zero, negative, NaN or infinite would silently mean "no limit" (or none ever
            // reached): an operator who set a limit gets an error instead.
            if let Some(v) = limit.filter(|v| !(v.is_finite() && *v >= 0.001)) {
                return Err(ConfigError {
                    name,
                    value: v.to_string(),
                    reason: "must be a number of capacity units per second, at least 0.001".into(),
                });
            }
        }
        if config.compression_level > 9 {
            return Err(ConfigError {
                name: "SOLACE_COMPRESSION_LEVEL",
                value: config.compression_level.to_string(),
                reason: "must be 0 to 9".into(),
            });
        }
        if config.batch_bytes == 0 {
            return Err(ConfigError {
                name: "SOLACE_BATCH_BYTES",
                value: "0".into(),
                reason: "must be positive".into(),
            });
        }
        if config.batch_bytes > MAX_BATCH_BYTES {
            return Err(ConfigError {
                name: "SOLACE_BATCH_BYTES",
                value: config.batch_bytes.to_string(),
                reason: format!(
                    "must be at most {MAX_BATCH_BYTES}: a batch may pass it by one scan page (1 MiB), and a restore refuses batches that inflate past {} bytes, so a larger batch could never be restored",
                    solace_codec::batch::DEFAULT_MAX_INFLATED
                ),
            });
        }
        Ok(config)
    }

    /// The work queue of `action`'s segments: the one place that picks a queue.
    pub fn work_queue(&self, action: Action) -> &str {
        match action {
            // The backup function converts: it reads and writes the data buckets.
            Action::Backup | Action::Convert => &self.backup_queue_url,
            // The restore function verifies: it has the reading half of a restore's rights.
            Action::Restore | Action::Verify => &self.restore_queue_url,
        }
    }

    /// The status table of `action`'s tasks.
    pub fn status_table(&self, action: Action) -> &str {
        match action {
            Action::Backup | Action::Convert => &self.backup_status_table,
            Action::Restore | Action::Verify => &self.restore_status_table,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::BTreeSet;

    use super::*;

    /// The `SOLACE_` variables of [`ENV_VARS`], all functions together.
    fn declared() -> BTreeSet<&'static str> {
        ENV_VARS
            .iter()
            .flat_map(|(_, vars)| vars.iter().copied())
            .filter(|v| *v != LOG_LEVEL_VAR)
            .collect()
    }

    #[test]
    fn the_loader_reads_exactly_the_declared_variables() {
        let asked = RefCell::new(BTreeSet::new());
        let config = Config::from_lookup(|name| {
            asked.borrow_mut().insert(name.to_owned());
            None
        })
        .expect("defaults");
        let asked: BTreeSet<String> = asked.into_inner();
        let declared: BTreeSet<String> = declared().into_iter().map(str::to_owned).collect();
        assert_eq!(asked, declared);
        assert!(asked.iter().all(|v| v.starts_with("SOLACE_")));
        assert_eq!(
            ENV_VARS.iter().map(|(f, _)| *f).collect::<Vec<_>>(),
            Function::ALL
        );
        assert!(
            Function::ALL
                .iter()
                .all(|f| env_vars(*f).contains(&LOG_LEVEL_VAR))
        );
        assert_eq!(config.backup_status_table, "backup-table");
    }

    #[test]
    fn every_declared_variable_sets_something() {
        let defaults = Config::from_lookup(|_| None).expect("defaults");
        for name in declared() {
            // The retention pair is set together; every other variable alone.
            let pair = ["SOLACE_RETENTION_MODE", "SOLACE_RETENTION_DAYS"];
            let config = Config::from_lookup(|n| match n {
                "SOLACE_RETENTION_MODE" if pair.contains(&name) => Some("GOVERNANCE".to_owned()),
                "SOLACE_RETENTION_DAYS" if pair.contains(&name) => Some("5".to_owned()),
                "SOLACE_ALLOWED_TABLES" if n == name => {
                    Some(r#"[{"region": "*", "name": "orders"}]"#.to_owned())
                }
                "SOLACE_ALLOWED_BUCKETS" if n == name => Some(r#"[{"name": "b"}]"#.to_owned()),
                _ => (n == name).then(|| "5".to_owned()),
            })
            .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_ne!(config, defaults, "{name} changes nothing");
        }
    }

    #[test]
    fn batches_too_large_to_restore_are_refused() {
        let with = |bytes: usize| {
            Config::from_lookup(move |n| (n == "SOLACE_BATCH_BYTES").then(|| bytes.to_string()))
        };
        assert_eq!(
            with(MAX_BATCH_BYTES).expect("the largest").batch_bytes,
            MAX_BATCH_BYTES
        );
        let err = with(MAX_BATCH_BYTES + 1).expect_err("one byte more");
        assert_eq!(err.name, "SOLACE_BATCH_BYTES");
        assert!(err.reason.contains("could never be restored"), "{err}");
    }

    #[test]
    fn a_retention_needs_both_a_mode_and_a_number_of_days() {
        let with = |pairs: &[(&str, &str)]| {
            let pairs: Vec<(String, String)> = pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            Config::from_lookup(move |n| pairs.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone()))
        };
        let ok = with(&[
            ("SOLACE_RETENTION_MODE", "COMPLIANCE"),
            ("SOLACE_RETENTION_DAYS", "30"),
        ])
        .expect("a retention");
        assert_eq!(
            ok.default_retention,
            Some(Retention {
                mode: RetentionMode::Compliance,
                days: 30
            })
        );
        for (pairs, named) in [
            (
                &[("SOLACE_RETENTION_MODE", "COMPLIANCE")][..],
                "SOLACE_RETENTION_DAYS",
            ),
            (
                &[("SOLACE_RETENTION_DAYS", "30")][..],
                "SOLACE_RETENTION_MODE",
            ),
            (
                &[
                    ("SOLACE_RETENTION_MODE", "forever"),
                    ("SOLACE_RETENTION_DAYS", "30"),
                ][..],
                "SOLACE_RETENTION_MODE",
            ),
            (
                &[
                    ("SOLACE_RETENTION_MODE", "GOVERNANCE"),
                    ("SOLACE_RETENTION_DAYS", "0"),
                ][..],
                "SOLACE_RETENTION_DAYS",
            ),
        ] {
            let err = with(pairs).expect_err("refused");
            assert_eq!(err.name, named, "{pairs:?}");
        }
    }

    #[test]
    fn blank_is_unset_and_bad_values_are_named() {
        let config = Config::from_lookup(|_| Some("  ".to_owned())).expect("blank");
        assert_eq!(config, Config::from_lookup(|_| None).expect("defaults"));
        let err = Config::from_lookup(|n| (n == "SOLACE_BATCH_BYTES").then(|| "x".to_owned()))
            .expect_err("not a number");
        assert_eq!(err.name, "SOLACE_BATCH_BYTES");
    }

    #[test]
    fn a_capacity_limit_that_would_mean_no_limit_is_refused() {
        for name in ["SOLACE_READ_CAPACITY_LIMIT", "SOLACE_WRITE_CAPACITY_LIMIT"] {
            for bad in ["0", "-5", "NaN", "inf", "1e-9"] {
                let err =
                    Config::from_lookup(|n| (n == name).then(|| bad.to_owned())).expect_err(bad);
                assert_eq!(err.name, name, "{bad}");
            }
            let ok = Config::from_lookup(|n| (n == name).then(|| "250.5".to_owned()))
                .expect("a positive rate");
            assert!(
                ok.read_capacity_limit == Some(250.5) || ok.write_capacity_limit == Some(250.5)
            );
        }
    }
}
