//! The deployment's allow-lists (docs/request.md#allow-lists): the tables (by region and name
//! pattern) and buckets (by name pattern and key prefix) a task may touch. The request
//! function checks every request against them before anything is written or fanned out; the
//! IAM roles allow the same resources (`infra/iam.tf`, from the same Terraform variables).
//!
//! Patterns use IAM's wildcards, `*` (any run of characters) and `?` (one character), so a
//! pattern means the same here as in the ARN the role is given. The matcher is the few lines
//! below rather than a glob crate: glob crates add path rules (`/`, `**`, character classes)
//! that IAM does not have, and the two ends must agree exactly.

use serde::{Deserialize, Serialize};

use crate::message::{Action, Request};

/// Tables a task may read (backup) or write (restore): `region` and `name` are patterns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableRule {
    pub region: String,
    pub name: String,
}

/// Buckets a task may write (backup) or read (restore, verify): `name` is a pattern; keys
/// must start with `prefix` (empty: any key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketRule {
    pub name: String,
    #[serde(default)]
    pub prefix: String,
}

/// Whether `text` matches `pattern` (`*` any run, `?` any one character, all else literal).
pub fn matches(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    // Iterative wildcard matching with one backtrack point: linear in practice, never
    // exponential.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Why a request is outside the allow-lists, or `None` when it is inside them.
/// `status_tables` are never a data table, whatever the lists say.
pub fn refusal(
    tables: Option<&[TableRule]>,
    buckets: Option<&[BucketRule]>,
    status_tables: &[&str],
    request: &Request,
) -> Option<String> {
    if !matches!(request.action, Action::Verify | Action::Convert) {
        if status_tables.contains(&request.table_name.as_str()) {
            return Some(format!(
                "table-name {:?} is a Solace status table: it is never backed up or restored into",
                request.table_name
            ));
        }
        let Some(tables) = tables else {
            return Some(
                "this deployment allows no tables (SOLACE_ALLOWED_TABLES is not set)".into(),
            );
        };
        let allowed = tables.iter().any(|rule| {
            matches(&rule.region, &request.table_region) && matches(&rule.name, &request.table_name)
        });
        if !allowed {
            return Some(format!(
                "table {:?} in {} is not in this deployment's allowed tables",
                request.table_name, request.table_region
            ));
        }
    }
    let Some(buckets) = buckets else {
        return Some(
            "this deployment allows no buckets (SOLACE_ALLOWED_BUCKETS is not set)".into(),
        );
    };
    let allowed = |bucket: &str, prefix: &str| {
        let prefix = solace_codec::normalized_prefix(prefix);
        buckets
            .iter()
            .any(|rule| matches(&rule.name, bucket) && prefix.starts_with(&rule.prefix))
    };
    if !allowed(&request.bucket_name, &request.bucket_prefix) {
        return Some(format!(
            "bucket {:?} with prefix {:?} is not in this deployment's allowed buckets",
            request.bucket_name, request.bucket_prefix
        ));
    }
    // A convert writes its copy elsewhere: that place is allowed too, or nothing is written.
    if let (Some(bucket), Some(prefix)) = (&request.to_bucket_name, &request.to_bucket_prefix) {
        if !allowed(bucket, prefix) {
            return Some(format!(
                "to-bucket {bucket:?} with prefix {prefix:?} is not in this deployment's allowed buckets"
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_use_iam_wildcards() {
        for (p, t, want) in [
            ("orders", "orders", true),
            ("orders", "orders-2", false),
            ("orders-*", "orders-2026", true),
            ("orders-*", "orders-", true),
            ("orders-*", "orders", false),
            ("*", "anything", true),
            ("*", "", true),
            ("us-?ast-1", "us-east-1", true),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
            ("*-restored", "orders-restored", true),
            ("", "", true),
            ("", "x", false),
        ] {
            assert_eq!(matches(p, t), want, "{p:?} vs {t:?}");
        }
        // No exponential blow-up on a hostile pattern.
        assert!(!matches(
            &"*a".repeat(50),
            &"a".repeat(60).replace('a', "b")
        ));
    }

    fn request(action: Action, table: &str, bucket: &str, prefix: &str) -> Request {
        Request {
            action,
            total_segments: 1,
            table_region: "us-east-1".into(),
            table_name: table.into(),
            bucket_region: "us-east-1".into(),
            bucket_name: bucket.into(),
            bucket_prefix: prefix.into(),
            allow_non_empty_table: false,
            allow_incomplete_backup: false,
            retention_mode: None,
            retention_days: None,
            create_table: false,
            create_table_billing_mode: None,
            create_table_read_capacity: None,
            create_table_write_capacity: None,
            create_table_skip_indexes: false,
            method: None,
            to_bucket_name: None,
            to_bucket_prefix: None,
        }
    }

    #[test]
    fn a_request_must_be_inside_both_lists_and_never_name_a_status_table() {
        let tables = [TableRule {
            region: "us-east-1".into(),
            name: "orders*".into(),
        }];
        let buckets = [BucketRule {
            name: "backups".into(),
            prefix: "orders/".into(),
        }];
        let check = |r: &Request| refusal(Some(&tables), Some(&buckets), &["backup-table"], r);
        assert_eq!(
            check(&request(Action::Backup, "orders", "backups", "orders/x/")),
            None
        );
        // `orders` and `orders/` are one folder.
        assert_eq!(
            check(&request(Action::Backup, "orders", "backups", "orders")),
            None
        );
        let refused = [
            (
                request(Action::Backup, "payroll", "backups", "orders/"),
                "allowed tables",
            ),
            (
                request(Action::Restore, "orders", "other", "orders/"),
                "allowed buckets",
            ),
            (
                request(Action::Backup, "orders", "backups", "payroll/"),
                "allowed buckets",
            ),
            (
                request(Action::Verify, "", "backups", "elsewhere/"),
                "allowed buckets",
            ),
            (
                request(Action::Restore, "backup-table", "backups", "orders/"),
                "status table",
            ),
        ];
        for (r, why) in refused {
            let reason = check(&r).unwrap_or_default();
            assert!(reason.contains(why), "{r:?}: {reason:?}");
        }
        // A verify names no table.
        assert_eq!(
            check(&request(Action::Verify, "", "backups", "orders/")),
            None
        );
        // A convert names no table, and its copy's place must be allowed too.
        let convert = |to_bucket: &str, to_prefix: &str| Request {
            to_bucket_name: Some(to_bucket.into()),
            to_bucket_prefix: Some(to_prefix.into()),
            ..request(Action::Convert, "", "backups", "orders/a/")
        };
        assert_eq!(check(&convert("backups", "orders/exports/")), None);
        let reason = check(&convert("backups", "payroll/")).unwrap_or_default();
        assert!(reason.contains("to-bucket"), "{reason:?}");
        let reason = check(&convert("elsewhere", "orders/")).unwrap_or_default();
        assert!(reason.contains("to-bucket"), "{reason:?}");
        // No lists at all: nothing is allowed.
        let none = refusal(
            None,
            None,
            &[],
            &request(Action::Backup, "orders", "b", "p/"),
        );
        assert!(none.is_some_and(|r| r.contains("SOLACE_ALLOWED_TABLES")));
    }
}
