//! How an AWS SDK error is classified for the retry policy (shared by the adapters in `aws`
//! and `aws_schema`).

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_types::error::display::DisplayErrorContext;

use crate::store::{ErrorKind, StoreError};

/// Classifies an SDK error for the retry policy.
pub fn classify<E>(operation: &'static str, err: SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let kind = match &err {
        SdkError::ServiceError(se) => {
            let status = se.raw().status().as_u16();
            match se.err().code() {
                Some(
                    "ProvisionedThroughputExceededException"
                    | "ThrottlingException"
                    | "Throttling"
                    | "RequestLimitExceeded"
                    | "SlowDown"
                    | "TooManyRequestsException"
                    | "TransactionInProgressException",
                ) => ErrorKind::Throttled,
                // BadDigest: the body S3 received is not the one the checksum was computed
                // for (damaged on the way); ConditionalRequestConflict: a concurrent
                // conditional write of the key is in progress.
                Some(
                    "InternalServerError"
                    | "InternalError"
                    | "ServiceUnavailable"
                    | "RequestTimeout"
                    | "BadDigest"
                    | "ConditionalRequestConflict",
                ) => ErrorKind::Transient,
                _ if status == 429 || status == 503 => ErrorKind::Throttled,
                _ if status >= 500 => ErrorKind::Transient,
                _ => ErrorKind::Permanent,
            }
        }
        SdkError::ConstructionFailure(_) => ErrorKind::Permanent,
        _ => ErrorKind::Transient,
    };
    StoreError::new(kind, operation, DisplayErrorContext(&err).to_string())
}
