//! Configuration from environment variables (functions/CONTRACT.md), with defaults that suit
//! `solace local`.

use std::time::Duration;

/// A variable that is set but unusable.
#[derive(Debug, thiserror::Error)]
#[error("environment variable {name}={value:?}: {reason}")]
pub struct ConfigError {
    pub name: &'static str,
    pub value: String,
    pub reason: String,
}

fn var(name: &'static str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn parsed<T: std::str::FromStr>(name: &'static str, default: T) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match var(name) {
        None => Ok(default),
        Some(v) => v.trim().parse().map_err(|e: T::Err| ConfigError {
            name,
            value: v,
            reason: e.to_string(),
        }),
    }
}

fn optional<T: std::str::FromStr>(name: &'static str) -> Result<Option<T>, ConfigError>
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

/// Every setting any function reads; each function uses its own part.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
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
    /// Items per scan page (DynamoDB's 1 MB limit applies anyway). Not an environment
    /// variable: `solace local` and tests set it for slow emulators.
    pub scan_page_limit: Option<i32>,
}

impl Config {
    /// Reads the environment. Queue URLs default to empty: `solace local` fills them in.
    pub fn from_env() -> Result<Self, ConfigError> {
        let config = Config {
            backup_queue_url: var("SOLACE_BACKUP_QUEUE_URL").unwrap_or_default(),
            restore_queue_url: var("SOLACE_RESTORE_QUEUE_URL").unwrap_or_default(),
            rejected_queue_url: var("SOLACE_REJECTED_QUEUE_URL").unwrap_or_default(),
            backup_status_table: var("SOLACE_BACKUP_STATUS_TABLE")
                .unwrap_or_else(|| "backup-table".into()),
            restore_status_table: var("SOLACE_RESTORE_STATUS_TABLE")
                .unwrap_or_else(|| "restore-table".into()),
            max_segments: parsed("SOLACE_MAX_SEGMENTS", 1000)?,
            batch_bytes: parsed("SOLACE_BATCH_BYTES", 8 << 20)?,
            compression_level: parsed("SOLACE_COMPRESSION_LEVEL", 6)?,
            redrive_limit: parsed("SOLACE_REDRIVE_LIMIT", 3)?,
            deadline_margin: Duration::from_millis(parsed("SOLACE_DEADLINE_MARGIN_MS", 30_000)?),
            read_capacity_limit: optional("SOLACE_READ_CAPACITY_LIMIT")?,
            write_capacity_limit: optional("SOLACE_WRITE_CAPACITY_LIMIT")?,
            expected_bucket_owner: var("SOLACE_EXPECTED_BUCKET_OWNER"),
            scan_page_limit: None,
        };
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
        Ok(config)
    }

    pub fn status_tables(&self) -> crate::status::StatusTables {
        crate::status::StatusTables {
            backup: self.backup_status_table.clone(),
            restore: self.restore_status_table.clone(),
        }
    }
}
