//! SDK configuration and clients for the emulator, built the standard way.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::Credentials;

/// The region tests use unless they test regions.
pub const DEFAULT_REGION: &str = "us-east-1";

/// An [`SdkConfig`] for `endpoint` in `region`, with static test credentials.
///
/// Everything else (retries, timeouts, behaviour version) is the SDK's default, so the code
/// under test sees what it sees in production apart from the endpoint.
pub async fn sdk_config(endpoint: &str, region: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(region.to_owned()))
        .credentials_provider(Credentials::new(
            "testing",
            "testing",
            None,
            None,
            "solace-testkit",
        ))
        .load()
        .await
}

/// A DynamoDB client for `config`.
pub fn dynamodb_client(config: &SdkConfig) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(config)
}

/// An S3 client for `config`, with path-style addressing: the emulator is one host, with no
/// `<bucket>.<host>` names.
pub fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    let conf = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// An SQS client for `config`.
pub fn sqs_client(config: &SdkConfig) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(config)
}
