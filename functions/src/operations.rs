//! The AWS operations each function calls, as IAM actions: declared in [`CALLS`] (what its
//! role must allow, checked against `infra/` by `tests/infra.rs` and against docs/settings.md#function-contract),
//! and observed at run time by [`Recorder`], an SDK interceptor on every client
//! [`crate::context::Context`] builds. [`undeclared`] lists what was observed but not
//! declared: the emulator system tests assert it is empty, so an SDK call added to a function
//! without declaring it (and so without allowing it in IAM) fails there.
//!
//! The function a call belongs to is the one whose handler runs it: [`crate::dispatch::dispatch`]
//! runs every handler inside [`scope`]. Calls made outside a scope (`solace local`'s own
//! polling, the demo's setup) are not recorded.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Mutex;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

use crate::function::Function;

/// The IAM actions each function's code needs, one per AWS operation it calls (see
/// [`iam_actions`] for how an SDK operation maps to actions). Sorted.
pub const CALLS: &[(Function, &[&str])] = &[
    (
        Function::Request,
        &[
            // a restore with create-table (aws_schema::create), its tags authorized as
            // TagResource
            "dynamodb:CreateTable",
            // the backup's schema (aws_schema::describe): DescribeTable and the settings
            // outside it, on the data table; a restore's destination, checked against it
            "dynamodb:DescribeContinuousBackups",
            "dynamodb:DescribeTable",
            "dynamodb:DescribeTimeToLive",
            // status::read_task: a cancel's task, the fan-out cursor
            "dynamodb:GetItem",
            // the backup's schema: the data table's tags
            "dynamodb:ListTagsOfResource",
            // status::create_task
            "dynamodb:PutItem",
            // DynamoTable::has_items: a restore's destination must be empty (Scan, Limit 1)
            "dynamodb:Scan",
            // a created table's tags (with CreateTable)
            "dynamodb:TagResource",
            // a created table's PITR and TTL (aws_schema::apply_settings)
            "dynamodb:UpdateContinuousBackups",
            // status::cancel_task, the fan-out cursor (claim, confirm, fail_unsent)
            "dynamodb:UpdateItem",
            "dynamodb:UpdateTimeToLive",
            // a backup with a retention: its bucket must have Object Lock
            "s3:GetBucketObjectLockConfiguration",
            // the backup's manifest: S3Objects::get (restore), S3Objects::put (backup);
            // ListBucket so that a missing manifest reads as NoSuchKey (see iam_actions)
            "s3:GetObject",
            "s3:ListBucket",
            // PutObjectRetention: the manifest of a backup with a retention
            "s3:PutObject",
            "s3:PutObjectRetention",
            // fan-out (SendMessageBatch), its continuation and rejections (SendMessage)
            "sqs:SendMessage",
        ],
    ),
    (
        Function::Backup,
        &[
            // a backup by export (aws_schema::describe_export): where its export stands
            "dynamodb:DescribeExport",
            // a backup by export: the table's ARN, then ExportTableToPointInTime of it
            "dynamodb:DescribeTable",
            "dynamodb:ExportTableToPointInTime",
            // status::end_segment reads the task when its update is refused (GetItem)
            "dynamodb:GetItem",
            // DynamoTable::scan on the data table
            "dynamodb:Scan",
            // status::end_segment, status::note_segment_error, the fence (fence.rs)
            "dynamodb:UpdateItem",
            // DynamoDB writes an export into the bucket with the caller's permissions:
            // multipart uploads, and the objects' ACL, besides PutObject
            "s3:AbortMultipartUpload",
            // S3Objects::head/get: the body a conditional write found (412), batch checksums
            // for the segment marker; ListBucket so that a missing key reads as NoSuchKey
            // (and an export's files are found by listing)
            "s3:GetObject",
            "s3:ListBucket",
            // S3Objects::put_new: batches, the segment marker, the completion record, with
            // their Object Lock retention when the backup has one; an export's data files
            "s3:PutObject",
            "s3:PutObjectAcl",
            "s3:PutObjectRetention",
            // Context::send_segment: the continuation
            "sqs:SendMessage",
        ],
    ),
    (
        Function::Restore,
        &[
            // DynamoTable::batch_write on the data table
            "dynamodb:BatchWriteItem",
            "dynamodb:GetItem",
            "dynamodb:UpdateItem",
            // S3Objects::get: the segment marker and batches; ListBucket for NoSuchKey
            "s3:GetObject",
            "s3:ListBucket",
            "sqs:SendMessage",
        ],
    ),
    (
        Function::Redrive,
        &[
            // status::read_task (the segment's last error) and end_segment
            "dynamodb:GetItem",
            "dynamodb:UpdateItem",
            // Context::send_segment: re-routing
            "sqs:SendMessage",
        ],
    ),
];

/// The IAM actions `function` declares in [`CALLS`].
pub fn declared(function: Function) -> &'static [&'static str] {
    CALLS
        .iter()
        .find(|(f, _)| *f == function)
        .map_or(&[], |(_, actions)| actions)
}

/// The IAM actions an SDK operation needs, from the service and operation names the SDK
/// gives it (`"SQS"`, `"SendMessageBatch"`). An operation not known here maps to itself
/// (`"S3:SelectObjectContent"`), which is never an IAM action name, so it shows up in
/// [`undeclared`] until it is added here, to [`CALLS`] and to the role.
pub fn iam_actions(service: &str, operation: &str) -> Vec<String> {
    let fixed: &[&str] = match (service, operation) {
        // A batch call is authorized as its single form.
        ("SQS", "SendMessage" | "SendMessageBatch") => &["sqs:SendMessage"],
        ("SQS", "DeleteMessage" | "DeleteMessageBatch") => &["sqs:DeleteMessage"],
        ("SQS", "ChangeMessageVisibility" | "ChangeMessageVisibilityBatch") => {
            &["sqs:ChangeMessageVisibility"]
        }
        (
            "SQS",
            "ReceiveMessage" | "GetQueueAttributes" | "GetQueueUrl" | "SetQueueAttributes"
            | "CreateQueue" | "DeleteQueue" | "PurgeQueue",
        )
        | (
            "DynamoDB",
            "GetItem"
            | "PutItem"
            | "UpdateItem"
            | "DeleteItem"
            | "Query"
            | "Scan"
            | "BatchGetItem"
            | "BatchWriteItem"
            | "DescribeTable"
            | "DeleteTable"
            | "UpdateTable"
            | "DescribeTimeToLive"
            | "DescribeContinuousBackups"
            | "ListTagsOfResource"
            | "UpdateTimeToLive"
            | "UpdateContinuousBackups"
            | "ExportTableToPointInTime"
            | "DescribeExport",
        ) => return vec![format!("{}:{operation}", service.to_ascii_lowercase())],
        // CreateTable with tags is also authorized as TagResource.
        ("DynamoDB", "CreateTable") => &["dynamodb:CreateTable", "dynamodb:TagResource"],
        // S3 answers a missing key with 404 NoSuchKey only to a caller allowed s3:ListBucket
        // on the bucket, and with 403 AccessDenied otherwise. The code relies on NoSuchKey
        // (no manifest or segment marker: a Solace v3 backup; no batch: the end of a
        // segment), so reading an object needs both.
        // A transaction is authorized as its parts: Solace's hold only updates.
        ("DynamoDB", "TransactWriteItems") => &["dynamodb:UpdateItem"],
        ("S3", "GetObject" | "HeadObject") => &["s3:GetObject", "s3:ListBucket"],
        // With Object Lock headers a PutObject also needs s3:PutObjectRetention; every
        // function that writes objects may write a backup's, so both are declared.
        ("S3", "PutObject") => &["s3:PutObject", "s3:PutObjectRetention"],
        ("S3", "CreateMultipartUpload" | "UploadPart" | "CompleteMultipartUpload") => {
            &["s3:PutObject"]
        }
        ("S3", "GetObjectLockConfiguration") => &["s3:GetBucketObjectLockConfiguration"],
        ("S3", "ListObjectsV2" | "ListObjects" | "HeadBucket") => &["s3:ListBucket"],
        ("S3", "DeleteObject" | "DeleteObjects") => &["s3:DeleteObject"],
        ("S3", "CopyObject") => &["s3:GetObject", "s3:PutObject"],
        ("S3", "AbortMultipartUpload") => &["s3:AbortMultipartUpload"],
        ("S3", "CreateBucket") => &["s3:CreateBucket"],
        _ => return vec![format!("{service}:{operation}")],
    };
    fixed.iter().map(|a| (*a).to_owned()).collect()
}

tokio::task_local! {
    static CURRENT: Function;
}

/// Runs `future` (a handler) as `function`: the calls it makes are recorded for it.
pub async fn scope<F: Future>(function: Function, future: F) -> F::Output {
    CURRENT.scope(function, future).await
}

/// The function whose handler is running on this task, if any.
pub fn current() -> Option<Function> {
    CURRENT.try_with(|f| *f).ok()
}

/// Operations seen, as (function, SDK service name, SDK operation name).
#[derive(Debug)]
struct Registry(Mutex<BTreeSet<(Function, String, String)>>);

impl Registry {
    const fn new() -> Self {
        Registry(Mutex::new(BTreeSet::new()))
    }

    fn record(&self, function: Function, service: &str, operation: &str) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).insert((
            function,
            service.to_owned(),
            operation.to_owned(),
        ));
    }

    fn recorded(&self) -> BTreeMap<Function, BTreeSet<String>> {
        let mut out: BTreeMap<Function, BTreeSet<String>> = BTreeMap::new();
        for (function, service, operation) in
            self.0.lock().unwrap_or_else(|p| p.into_inner()).iter()
        {
            out.entry(*function)
                .or_default()
                .extend(iam_actions(service, operation));
        }
        out
    }

    fn undeclared(&self) -> Vec<(Function, String)> {
        self.recorded()
            .into_iter()
            .flat_map(|(function, actions)| {
                actions
                    .into_iter()
                    .filter(move |a| !declared(function).contains(&a.as_str()))
                    .map(move |a| (function, a))
            })
            .collect()
    }
}

static REGISTRY: Registry = Registry::new();

/// The IAM actions of every operation recorded so far in this process, per function.
pub fn recorded() -> BTreeMap<Function, BTreeSet<String>> {
    REGISTRY.recorded()
}

/// What was recorded but is not in [`CALLS`]: calls the function's role may not allow.
pub fn undeclared() -> Vec<(Function, String)> {
    REGISTRY.undeclared()
}

/// The SDK interceptor that records each operation a client runs, once per operation (not
/// per retry), before it is serialized and sent: a call that fails is recorded too.
#[derive(Debug, Clone, Copy)]
pub struct Recorder {
    /// `None`: the function of the current [`scope`].
    function: Option<Function>,
    registry: &'static Registry,
}

impl Recorder {
    /// Records for the function whose handler runs the call ([`scope`]); nothing outside
    /// one. A task spawned by the handler is outside it.
    pub fn current() -> Self {
        Recorder {
            function: None,
            registry: &REGISTRY,
        }
    }

    /// Records for `function` wherever the call runs: for a client made for one function,
    /// whose calls may run on tasks the pipeline spawns. `None` is [`Recorder::current`].
    pub fn for_function(function: Option<Function>) -> Self {
        Recorder {
            function,
            registry: &REGISTRY,
        }
    }
}

impl Intercept for Recorder {
    fn name(&self) -> &'static str {
        "SolaceOperationRecorder"
    }

    // Not `read_before_execution`: client-level interceptors run that hook before the
    // operation's own configuration (which holds its `Metadata`) is in the bag.
    fn read_before_serialization(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let (Some(function), Some(metadata)) =
            (self.function.or_else(current), cfg.load::<Metadata>())
        {
            self.registry
                .record(function, metadata.service(), metadata.name());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdk_operations_map_to_iam_actions() {
        let cases: &[(&str, &str, &[&str])] = &[
            ("SQS", "SendMessageBatch", &["sqs:SendMessage"]),
            ("SQS", "SendMessage", &["sqs:SendMessage"]),
            ("SQS", "DeleteMessageBatch", &["sqs:DeleteMessage"]),
            ("DynamoDB", "GetItem", &["dynamodb:GetItem"]),
            ("DynamoDB", "BatchWriteItem", &["dynamodb:BatchWriteItem"]),
            ("DynamoDB", "Scan", &["dynamodb:Scan"]),
            (
                "DynamoDB",
                "DescribeTimeToLive",
                &["dynamodb:DescribeTimeToLive"],
            ),
            (
                "DynamoDB",
                "ListTagsOfResource",
                &["dynamodb:ListTagsOfResource"],
            ),
            (
                "DynamoDB",
                "CreateTable",
                &["dynamodb:CreateTable", "dynamodb:TagResource"],
            ),
            ("S3", "GetObject", &["s3:GetObject", "s3:ListBucket"]),
            ("S3", "HeadObject", &["s3:GetObject", "s3:ListBucket"]),
            (
                "S3",
                "PutObject",
                &["s3:PutObject", "s3:PutObjectRetention"],
            ),
            (
                "S3",
                "GetObjectLockConfiguration",
                &["s3:GetBucketObjectLockConfiguration"],
            ),
            ("S3", "ListObjectsV2", &["s3:ListBucket"]),
            // Unknown: itself, which no IAM policy or CALLS entry spells that way.
            ("S3", "SelectObjectContent", &["S3:SelectObjectContent"]),
            (
                "DynamoDB",
                "TransactGetItems",
                &["DynamoDB:TransactGetItems"],
            ),
            // Authorized as its parts, which in Solace are updates only.
            ("DynamoDB", "TransactWriteItems", &["dynamodb:UpdateItem"]),
        ];
        for (service, operation, actions) in cases {
            assert_eq!(
                iam_actions(service, operation),
                *actions,
                "{service}:{operation}"
            );
        }
    }

    #[test]
    fn calls_are_sorted_iam_action_names_of_every_function() {
        assert_eq!(
            CALLS.iter().map(|(f, _)| *f).collect::<Vec<_>>(),
            Function::ALL
        );
        for (function, actions) in CALLS {
            assert!(actions.is_sorted(), "{function:?}: {actions:?} not sorted");
            for action in *actions {
                let (service, name) = action.split_once(':').expect("service:Action");
                assert!(
                    matches!(service, "dynamodb" | "s3" | "sqs")
                        && name.starts_with(|c: char| c.is_ascii_uppercase())
                        && name.chars().all(|c| c.is_ascii_alphanumeric()),
                    "{function:?}: {action}"
                );
            }
        }
    }

    #[test]
    fn undeclared_lists_what_calls_lacks() {
        static TEST: Registry = Registry::new();
        TEST.record(Function::Backup, "DynamoDB", "Scan");
        TEST.record(Function::Backup, "S3", "PutObject");
        TEST.record(Function::Request, "SQS", "SendMessageBatch");
        TEST.record(Function::Redrive, "S3", "GetObject");
        TEST.record(Function::Restore, "DynamoDB", "Query");
        let recorded = TEST.recorded();
        assert_eq!(
            recorded[&Function::Request],
            BTreeSet::from(["sqs:SendMessage".to_owned()])
        );
        assert_eq!(
            TEST.undeclared(),
            vec![
                (Function::Restore, "dynamodb:Query".to_owned()),
                (Function::Redrive, "s3:GetObject".to_owned()),
                (Function::Redrive, "s3:ListBucket".to_owned()),
            ]
        );
    }

    /// A client with the recorder, against a port nothing listens on: the call fails, but
    /// after the recorder ran.
    fn dynamodb(recorder: Recorder) -> aws_sdk_dynamodb::Client {
        use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
        let conf = aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "test"))
            .endpoint_url("http://127.0.0.1:9")
            .retry_config(aws_smithy_types::retry::RetryConfig::disabled())
            .interceptor(recorder)
            .build();
        aws_sdk_dynamodb::Client::from_conf(conf)
    }

    #[tokio::test]
    async fn the_interceptor_records_calls_in_a_scope() {
        static TEST: Registry = Registry::new();
        let scoped = dynamodb(Recorder {
            function: None,
            registry: &TEST,
        });
        let fixed = dynamodb(Recorder {
            function: Some(Function::Backup),
            registry: &TEST,
        });

        // Outside a scope: nothing.
        assert!(
            scoped
                .describe_table()
                .table_name("t")
                .send()
                .await
                .is_err()
        );
        assert!(TEST.recorded().is_empty());

        scope(Function::Redrive, async {
            assert_eq!(current(), Some(Function::Redrive));
            assert!(scoped.get_item().table_name("t").send().await.is_err());
            // A task spawned in the scope is outside it; a fixed recorder still records.
            let (c, f) = (scoped.clone(), fixed.clone());
            tokio::spawn(async move {
                assert!(c.delete_table().table_name("t").send().await.is_err());
                assert!(f.scan().table_name("t").send().await.is_err());
            })
            .await
            .expect("spawned");
        })
        .await;
        assert_eq!(current(), None);

        assert_eq!(
            TEST.recorded(),
            BTreeMap::from([
                (
                    Function::Backup,
                    BTreeSet::from(["dynamodb:Scan".to_owned()])
                ),
                (
                    Function::Redrive,
                    BTreeSet::from(["dynamodb:GetItem".to_owned()])
                ),
            ])
        );
        assert!(TEST.undeclared().is_empty());
    }
}
